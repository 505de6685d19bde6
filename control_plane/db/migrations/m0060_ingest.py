"""Ingest jobs, their outputs (one row per file being made) and the packaged files' box layouts.

`ingest_jobs` / `ingest_outputs` persist the job queue so a restart resumes it; `rendition_layouts`
holds what the playback manifests address inside each ready rendition file (init and index byte
ranges, fragment sizes and durations, RFC 6381 codecs), keyed like `renditions`.
Owned by the ingest part (control_plane/ingest_jobs.py); frozen history like every step.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Float, Integer, MetaData, String, Table, Text


def upgrade(conn: Connection) -> None:
    md = MetaData()
    Table("ingest_jobs", md,
          Column("id", String(64), primary_key=True),
          Column("title_id", String(64), nullable=False, index=True),
          Column("master_url", Text, nullable=False),
          Column("metadata_json", Text, nullable=False),
          Column("sidecars_json", Text, nullable=False),
          Column("state", String(16), nullable=False, index=True),
          Column("stage", String(16), nullable=False),
          Column("info_json", Text),
          Column("error", Text),
          Column("attempts", Integer, nullable=False),
          Column("created_at", Float, nullable=False),
          Column("updated_at", Float, nullable=False))
    Table("ingest_outputs", md,
          Column("job_id", String(64), primary_key=True),
          Column("name", String(200), primary_key=True),
          Column("kind", String(16), nullable=False),
          Column("state", String(16), nullable=False),
          Column("percent", Float, nullable=False),
          Column("size", BigInteger),
          Column("sha256", String(64)),
          Column("detail_json", Text),
          Column("error", Text),
          Column("updated_at", Float, nullable=False))
    Table("rendition_layouts", md,
          Column("key", String(512), primary_key=True),
          Column("title_id", String(64), nullable=False, index=True),
          Column("layout_json", Text, nullable=False),
          Column("frame_rate", Float, nullable=False),
          Column("language", String(35), nullable=False))
    md.create_all(conn)
