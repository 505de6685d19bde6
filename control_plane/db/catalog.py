"""Titles and renditions in SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from control_plane.catalog import Rendition, Title
from control_plane.db.schema import renditions, titles

_TITLE_COLS = ("id", "type", "name", "language", "year", "maturity_rating", "duration_s", "synopsis")
_REND_COLS = ("key", "title_id", "kind", "codec", "status", "width", "height", "bitrate_bps", "language",
              "size", "sha256")


def _title(row) -> Title:
    return Title(**{c: row._mapping[c] for c in _TITLE_COLS})


def _rendition(row) -> Rendition:
    return Rendition(**{c: row._mapping[c] for c in _REND_COLS})


async def get_title(conn: AsyncConnection, title_id: str) -> Title | None:
    row = (await conn.execute(select(titles).where(titles.c.id == title_id))).first()
    return _title(row) if row else None


async def list_titles(conn: AsyncConnection, *, after: str | None = None, limit: int = 100) -> list[Title]:
    q = select(titles).order_by(titles.c.id).limit(limit)
    if after:
        q = q.where(titles.c.id > after)
    return [_title(r) for r in await conn.execute(q)]


async def title_ids(conn: AsyncConnection) -> set[str]:
    return set((await conn.execute(select(titles.c.id))).scalars())


async def count_titles(conn: AsyncConnection) -> int:
    return (await conn.execute(select(func.count()).select_from(titles))).scalar_one()


async def insert_title(conn: AsyncConnection, title: Title, now: float) -> None:
    await conn.execute(titles.insert().values(**title.to_json(), created_at=now, updated_at=now))


async def update_title(conn: AsyncConnection, title: Title, now: float) -> bool:
    values = {k: v for k, v in title.to_json().items() if k != "id"}
    result = await conn.execute(update(titles).where(titles.c.id == title.id).values(**values, updated_at=now))
    return result.rowcount > 0


async def delete_title(conn: AsyncConnection, title_id: str) -> bool:
    # Renditions and licences go with it (ON DELETE CASCADE; SQLite needs PRAGMA foreign_keys=ON).
    await conn.execute(delete(renditions).where(renditions.c.title_id == title_id))
    return (await conn.execute(delete(titles).where(titles.c.id == title_id))).rowcount > 0


async def get_rendition(conn: AsyncConnection, key: str) -> Rendition | None:
    row = (await conn.execute(select(renditions).where(renditions.c.key == key))).first()
    return _rendition(row) if row else None


async def list_renditions(conn: AsyncConnection, title_id: str) -> list[Rendition]:
    q = select(renditions).where(renditions.c.title_id == title_id).order_by(renditions.c.key)
    return [_rendition(r) for r in await conn.execute(q)]


async def ready_renditions(conn: AsyncConnection) -> list[Rendition]:
    q = select(renditions).where(renditions.c.status == "ready").order_by(renditions.c.key)
    return [_rendition(r) for r in await conn.execute(q)]


async def ready_keys_by_title(conn: AsyncConnection) -> dict[str, list[str]]:
    q = select(renditions.c.title_id, renditions.c.key).where(renditions.c.status == "ready")
    out: dict[str, list[str]] = {}
    for title_id, key in await conn.execute(q):
        out.setdefault(title_id, []).append(key)
    return out


async def insert_rendition(conn: AsyncConnection, r: Rendition, now: float) -> None:
    await conn.execute(renditions.insert().values(**r.to_json(), created_at=now, updated_at=now))


async def insert_renditions(conn: AsyncConnection, rows: Sequence[Rendition], now: float) -> None:
    if rows:
        await conn.execute(renditions.insert(), [r.to_json() | {"created_at": now, "updated_at": now}
                                                 for r in rows])


async def update_rendition(conn: AsyncConnection, r: Rendition, now: float) -> bool:
    values = {k: v for k, v in r.to_json().items() if k != "key"}
    result = await conn.execute(update(renditions).where(renditions.c.key == r.key)
                                .values(**values, updated_at=now))
    return result.rowcount > 0


async def delete_rendition(conn: AsyncConnection, key: str) -> bool:
    return (await conn.execute(delete(renditions).where(renditions.c.key == key))).rowcount > 0
