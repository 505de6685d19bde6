"""Licences in SQL (one per title and region)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from control_plane.db.schema import licences
from control_plane.licensing import Licence


def _licence(row) -> Licence:
    return Licence(row.title_id, row.region, row.start_at, row.end_at, bool(row.exclusive))


def _values(lic: Licence) -> dict:
    return {"title_id": lic.title_id, "region": lic.region, "start_at": lic.start, "end_at": lic.end,
            "exclusive": lic.exclusive}


async def for_title(conn: AsyncConnection, title_id: str) -> list[Licence]:
    q = select(licences).where(licences.c.title_id == title_id).order_by(licences.c.region)
    return [_licence(r) for r in await conn.execute(q)]


async def for_title_country(conn: AsyncConnection, title_id: str, country: str) -> list[Licence]:
    """The licences `licensing.playability` needs for one title in one country (zero or one)."""
    q = select(licences).where(licences.c.title_id == title_id, licences.c.region == country)
    return [_licence(r) for r in await conn.execute(q)]


async def for_region(conn: AsyncConnection, region: str) -> list[Licence]:
    return [_licence(r) for r in await conn.execute(select(licences).where(licences.c.region == region))]


async def get(conn: AsyncConnection, title_id: str, region: str) -> Licence | None:
    found = await for_title_country(conn, title_id, region)
    return found[0] if found else None


async def insert(conn: AsyncConnection, lic: Licence) -> None:
    await conn.execute(licences.insert().values(**_values(lic)))


async def replace(conn: AsyncConnection, lic: Licence) -> bool:
    """Insert or overwrite; True when it replaced an existing licence."""
    existed = await delete_one(conn, lic.title_id, lic.region)
    await insert(conn, lic)
    return existed


async def delete_one(conn: AsyncConnection, title_id: str, region: str) -> bool:
    q = delete(licences).where(licences.c.title_id == title_id, licences.c.region == region)
    return (await conn.execute(q)).rowcount > 0
