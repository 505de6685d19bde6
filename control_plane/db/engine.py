"""Database URLs and engines: SQLite through aiosqlite, PostgreSQL through asyncpg, one API.

Operators write plain URLs (``sqlite:///var/lib/oca-control/control.db``,
``postgresql://oca@db.example/oca`` or ``postgresql://oca@/oca?host=/run/postgresql``);
`async_url` picks the async driver.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


def async_url(url: str) -> str:
    """Map ``sqlite://`` / ``postgresql://`` to their async drivers; async URLs pass unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    return f"{_DRIVERS.get(scheme, scheme)}://{rest}"


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An AsyncEngine for `url`. SQLite gets WAL (readers do not block the writer), a busy timeout
    and enforced foreign keys on every connection."""
    full = make_url(async_url(url))
    if full.get_backend_name() == "sqlite":
        engine = create_async_engine(full, pool_size=pool_size, max_overflow=0, pool_pre_ping=False)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(full, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_postgresql(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"
