"""Fill-manifest inputs and the stored generation per appliance."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from control_plane.db.fleet import _state
from control_plane.db.schema import appliance_inventory, appliances, fill_manifests, renditions
from control_plane.fillplan import FileSpec
from control_plane.fleet import ApplianceState


async def ready_files(conn: AsyncConnection) -> dict[str, list[FileSpec]]:
    """title → its ready renditions as planner files."""
    q = select(renditions.c.key, renditions.c.title_id, renditions.c.size, renditions.c.sha256).where(
        renditions.c.status == "ready")
    out: dict[str, list[FileSpec]] = {}
    for key, title_id, size, sha in await conn.execute(q):
        out.setdefault(title_id, []).append(FileSpec(key, title_id, size, sha))
    return out


async def neighbourhood(conn: AsyncConnection, region: str) -> list[ApplianceState]:
    """Appliances of `region` (peers; with their keys) and every origin (without keys: they hold all)."""
    rows = (await conn.execute(select(appliances).where(
        or_(appliances.c.region == region, appliances.c.kind == "origin")))).all()
    peer_ids = [r.id for r in rows if r.kind != "origin"]
    keys: dict[str, set[str]] = {}
    if peer_ids:
        q = select(appliance_inventory.c.appliance_id, appliance_inventory.c.key).where(
            appliance_inventory.c.appliance_id.in_(peer_ids))
        for aid, key in await conn.execute(q):
            keys.setdefault(aid, set()).add(key)
    return [_state(r, frozenset(keys.get(r.id, ()))) for r in rows]


async def stored(conn: AsyncConnection, appliance_id: str) -> Sequence | None:
    """(generation, digest, urls_expire_at) of the stored manifest, locked; the body is read apart."""
    m = fill_manifests.c
    q = select(m.generation, m.digest, m.urls_expire_at).where(m.appliance_id == appliance_id).with_for_update()
    return (await conn.execute(q)).first()


async def stored_body(conn: AsyncConnection, appliance_id: str) -> str:
    q = select(fill_manifests.c.body).where(fill_manifests.c.appliance_id == appliance_id)
    return (await conn.execute(q)).scalar_one()


async def save(conn: AsyncConnection, appliance_id: str, *, generation: int, digest: str, body: str,
               urls_expire_at: float, now: float, existed: bool) -> None:
    values = {"generation": generation, "digest": digest, "body": body, "urls_expire_at": urls_expire_at,
              "built_at": now}
    if existed:
        await conn.execute(update(fill_manifests).where(fill_manifests.c.appliance_id == appliance_id)
                           .values(**values))
    else:
        await conn.execute(fill_manifests.insert().values(appliance_id=appliance_id, **values))
