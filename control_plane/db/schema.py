"""The current shape of the control plane's tables, used by the repository modules to build SQL.

The tables are CREATEd by the numbered migrations in `migrations/` (the history), not from here;
a test checks that a migrated database has exactly these columns. Times are Unix seconds (float)
in UTC: one representation on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

titles = Table(
    "titles", metadata,
    Column("id", String(64), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("name", String(500), nullable=False),
    Column("language", String(35), nullable=False),
    Column("year", Integer),
    Column("maturity_rating", String(16)),
    Column("duration_s", Integer),
    Column("synopsis", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

renditions = Table(
    "renditions", metadata,
    Column("key", String(512), primary_key=True),
    Column("title_id", String(64), ForeignKey("titles.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("codec", String(64), nullable=False),
    Column("width", Integer),
    Column("height", Integer),
    Column("bitrate_bps", BigInteger),
    Column("language", String(35)),
    Column("size", BigInteger),
    Column("sha256", String(64)),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

licences = Table(
    "licences", metadata,
    Column("title_id", String(64), ForeignKey("titles.id", ondelete="CASCADE"), primary_key=True),
    Column("region", String(2), primary_key=True),
    Column("start_at", Float, nullable=False),
    Column("end_at", Float),
    Column("exclusive", Boolean, nullable=False),
)

appliances = Table(
    "appliances", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("site", String(64), nullable=False),
    Column("region", String(64), nullable=False),
    Column("country", String(2), nullable=False),
    Column("asn", BigInteger, nullable=False),
    Column("base_url", String(1000), nullable=False),
    Column("capacity_ssd", BigInteger, nullable=False),
    Column("capacity_hdd", BigInteger, nullable=False),
    Column("link_capacity_bps", BigInteger, nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("last_report_at", Float),
    Column("health_status", String(16)),
    Column("health_json", Text),
    Column("load_json", Text),
    Column("load_ratio", Float),
    Column("inventory_generation", BigInteger),
    Column("prefixes_json", Text),
)

appliance_inventory = Table(
    "appliance_inventory", metadata,
    Column("appliance_id", String(64), ForeignKey("appliances.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("tier", String(8), nullable=False),
)

fill_manifests = Table(
    "fill_manifests", metadata,
    Column("appliance_id", String(64), ForeignKey("appliances.id", ondelete="CASCADE"), primary_key=True),
    Column("generation", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("urls_expire_at", Float, nullable=False),
    Column("built_at", Float, nullable=False),
)

popularity = Table(
    "popularity", metadata,
    Column("region", String(16), primary_key=True),
    Column("title_id", String(64), primary_key=True),
    # Σ weight·2^((t − epoch)/half_life): adding a view is a plain SQL addition (see popularity.py).
    Column("score", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

playback_stats = Table(
    "playback_stats", metadata,
    Column("bucket_start", Float, primary_key=True),
    Column("region", String(16), primary_key=True),
    Column("title_id", String(64), primary_key=True),
    Column("heartbeats", BigInteger, nullable=False),
    Column("plays", BigInteger, nullable=False),
    Column("pauses", BigInteger, nullable=False),
    Column("seeks", BigInteger, nullable=False),
    Column("stops", BigInteger, nullable=False),
    Column("bitrate_sum", Float, nullable=False),
    Column("buffer_health_sum", Float, nullable=False),
)

settings = Table(
    "settings", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)
