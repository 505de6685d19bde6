"""INSERT ... ON CONFLICT DO UPDATE for both dialects (SQLite ≥ 3.24 and PostgreSQL share the syntax)."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_for(conn: AsyncConnection, table: Table):
    """The dialect's `insert` construct, which has `on_conflict_do_update` / `on_conflict_do_nothing`."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


async def upsert_add(conn: AsyncConnection, table: Table, rows: list[dict], keys: list[str],
                     add: list[str], assign: list[str] = ()) -> None:
    """Insert `rows`; on a key conflict ADD the `add` columns to the stored values (atomic in SQL,
    so two replicas flushing at once both count) and overwrite the `assign` columns."""
    if not rows:
        return
    stmt = insert_for(conn, table)
    updates = {c: table.c[c] + stmt.excluded[c] for c in add}
    updates.update({c: stmt.excluded[c] for c in assign})
    await conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), rows)
