"""Named API tokens (operator, service) in SQL, stored as SHA-256 hashes."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from control_plane.db.schema import api_tokens


async def role_for_hash(conn: AsyncConnection, token_hash: str) -> str | None:
    q = select(api_tokens.c.role).where(api_tokens.c.token_hash == token_hash)
    return (await conn.execute(q)).scalar_one_or_none()


async def insert(conn: AsyncConnection, name: str, role: str, token_hash: str, now: float) -> None:
    await conn.execute(api_tokens.insert().values(name=name, role=role, token_hash=token_hash, created_at=now))


async def list_all(conn: AsyncConnection) -> list[dict]:
    q = select(api_tokens.c.name, api_tokens.c.role, api_tokens.c.created_at).order_by(api_tokens.c.name)
    return [dict(r._mapping) for r in await conn.execute(q)]


async def delete_one(conn: AsyncConnection, name: str) -> bool:
    return (await conn.execute(delete(api_tokens).where(api_tokens.c.name == name))).rowcount > 0
