"""Initial schema: catalog, licences, fleet, inventory, fill manifests, popularity, stats, tokens.

Frozen history: the tables are written out here as they were at step 1, not imported from
schema.py, so later steps can change schema.py without rewriting the past.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)


def upgrade(conn: Connection) -> None:
    md = MetaData()
    Table("titles", md,
          Column("id", String(64), primary_key=True), Column("type", String(16), nullable=False),
          Column("name", String(500), nullable=False), Column("language", String(35), nullable=False),
          Column("year", Integer), Column("maturity_rating", String(16)), Column("duration_s", Integer),
          Column("synopsis", Text), Column("created_at", Float, nullable=False),
          Column("updated_at", Float, nullable=False))
    Table("renditions", md,
          Column("key", String(512), primary_key=True),
          Column("title_id", String(64), ForeignKey("titles.id", ondelete="CASCADE"), nullable=False,
                 index=True),
          Column("kind", String(16), nullable=False), Column("codec", String(64), nullable=False),
          Column("width", Integer), Column("height", Integer), Column("bitrate_bps", BigInteger),
          Column("language", String(35)), Column("size", BigInteger), Column("sha256", String(64)),
          Column("status", String(16), nullable=False), Column("created_at", Float, nullable=False),
          Column("updated_at", Float, nullable=False))
    Table("licences", md,
          Column("title_id", String(64), ForeignKey("titles.id", ondelete="CASCADE"), primary_key=True),
          Column("region", String(2), primary_key=True), Column("start_at", Float, nullable=False),
          Column("end_at", Float), Column("exclusive", Boolean, nullable=False))
    Table("appliances", md,
          Column("id", String(64), primary_key=True), Column("kind", String(16), nullable=False),
          Column("site", String(64), nullable=False), Column("region", String(64), nullable=False),
          Column("country", String(2), nullable=False), Column("asn", BigInteger, nullable=False),
          Column("base_url", String(1000), nullable=False),
          Column("capacity_ssd", BigInteger, nullable=False), Column("capacity_hdd", BigInteger, nullable=False),
          Column("link_capacity_bps", BigInteger, nullable=False),
          Column("token_hash", String(64), nullable=False),
          Column("created_at", Float, nullable=False), Column("updated_at", Float, nullable=False),
          Column("last_report_at", Float), Column("health_status", String(16)), Column("health_json", Text),
          Column("load_json", Text), Column("load_ratio", Float), Column("inventory_generation", BigInteger),
          Column("prefixes_json", Text))
    Table("appliance_inventory", md,
          Column("appliance_id", String(64), ForeignKey("appliances.id", ondelete="CASCADE"),
                 primary_key=True),
          Column("key", String(512), primary_key=True), Column("size", BigInteger, nullable=False),
          Column("sha256", String(64), nullable=False), Column("tier", String(8), nullable=False))
    Table("fill_manifests", md,
          Column("appliance_id", String(64), ForeignKey("appliances.id", ondelete="CASCADE"),
                 primary_key=True),
          Column("generation", BigInteger, nullable=False), Column("digest", String(64), nullable=False),
          Column("body", Text, nullable=False), Column("urls_expire_at", Float, nullable=False),
          Column("built_at", Float, nullable=False))
    Table("popularity", md,
          Column("region", String(16), primary_key=True), Column("title_id", String(64), primary_key=True),
          Column("score", Float, nullable=False), Column("updated_at", Float, nullable=False))
    Table("playback_stats", md,
          Column("bucket_start", Float, primary_key=True), Column("region", String(16), primary_key=True),
          Column("title_id", String(64), primary_key=True),
          Column("heartbeats", BigInteger, nullable=False), Column("plays", BigInteger, nullable=False),
          Column("pauses", BigInteger, nullable=False), Column("seeks", BigInteger, nullable=False),
          Column("stops", BigInteger, nullable=False), Column("bitrate_sum", Float, nullable=False),
          Column("buffer_health_sum", Float, nullable=False))
    Table("settings", md,
          Column("name", String(64), primary_key=True), Column("value", Text, nullable=False))
    Table("api_tokens", md,
          Column("name", String(64), primary_key=True), Column("role", String(16), nullable=False),
          Column("token_hash", String(64), nullable=False, unique=True),
          Column("created_at", Float, nullable=False))
    md.create_all(conn)
