"""Popularity rows and their epoch in SQL (the arithmetic is in control_plane/popularity.py)."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from control_plane import popularity as pop
from control_plane.db.schema import popularity, settings
from control_plane.db.upsert import insert_for, upsert_add

EPOCH_SETTING = "popularity_epoch"
PRUNE_BELOW = 1e-3      # decayed views under this are forgotten at a rebase


async def epoch(conn: AsyncConnection, now: float) -> float:
    """The stored epoch, its row locked until the transaction ends (PostgreSQL), so a replica's
    rebase cannot slip between reading the epoch and adding views scaled to it; the first caller
    sets it to `now`."""
    q = select(settings.c.value).where(settings.c.name == EPOCH_SETTING).with_for_update()
    value = (await conn.execute(q)).scalar_one_or_none()
    if value is not None:
        return float(value)
    stmt = insert_for(conn, settings).values(name=EPOCH_SETTING, value=repr(now))
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    return float((await conn.execute(q)).scalar_one())


async def add_views(conn: AsyncConnection, views: dict[tuple[str, str], float], now: float,
                    half_life: float) -> None:
    """Add weighted views (region, title) → weight, counted at `now`."""
    if not views:
        return
    e = await epoch(conn, now)
    if pop.needs_rebase(now, e, half_life):
        e = await rebase(conn, e, now, half_life)
    rows = [{"region": r, "title_id": t, "score": pop.stored_increment(w, now, e, half_life), "updated_at": now}
            for (r, t), w in sorted(views.items()) if w > 0]
    await upsert_add(conn, popularity, rows, ["region", "title_id"], add=["score"], assign=["updated_at"])


async def rebase(conn: AsyncConnection, old: float, new: float, half_life: float) -> float:
    """Move the epoch from `old` to `new`, rescaling every row once. The epoch is swapped first and
    only if it is still `old`: a replica that lost the race uses the winner's epoch instead."""
    moved = await conn.execute(update(settings).where(settings.c.name == EPOCH_SETTING,
                                                      settings.c.value == repr(old)).values(value=repr(new)))
    if moved.rowcount != 1:
        return await epoch(conn, new)
    factor = pop.rebase_factor(old, new, half_life)
    await conn.execute(update(popularity).values(score=popularity.c.score * factor))
    await conn.execute(delete(popularity).where(popularity.c.score < PRUNE_BELOW))
    return new


async def scores(conn: AsyncConnection, region: str | None, now: float, half_life: float) -> dict[str, float]:
    """title → decayed view count at `now` in `region`; `None`: summed over every region."""
    q = select(settings.c.value).where(settings.c.name == EPOCH_SETTING)
    value = (await conn.execute(q)).scalar_one_or_none()
    if value is None:
        return {}
    e = float(value)
    if region is None:
        q2 = select(popularity.c.title_id, func.sum(popularity.c.score)).group_by(popularity.c.title_id)
    else:
        q2 = select(popularity.c.title_id, popularity.c.score).where(popularity.c.region == region)
    return {t: pop.current_score(s, now, e, half_life) for t, s in await conn.execute(q2)}
