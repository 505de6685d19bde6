"""Appliances, their last reports and their inventories in SQL."""

from __future__ import annotations

import json

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from control_plane.db.schema import appliance_inventory, appliances
from control_plane.db.upsert import insert_for
from control_plane.fleet import (
    ApplianceSpec,
    ApplianceState,
    Liveness,
    Patch,
    Replace,
    Report,
    UnknownGeneration,
    decide_inventory,
)

_SPEC_COLS = ("id", "kind", "site", "region", "country", "asn", "base_url", "capacity_ssd", "capacity_hdd",
              "link_capacity_bps")


def _spec(row) -> ApplianceSpec:
    return ApplianceSpec(**{c: row._mapping[c] for c in _SPEC_COLS})


def _state(row, keys: frozenset[str] = frozenset()) -> ApplianceState:
    return ApplianceState(spec=_spec(row), last_report_at=row.last_report_at, health_status=row.health_status,
                          load_ratio=row.load_ratio, inventory_generation=row.inventory_generation,
                          prefixes=json.loads(row.prefixes_json) if row.prefixes_json else {}, keys=keys)


async def insert(conn: AsyncConnection, spec: ApplianceSpec, token_hash: str, now: float) -> None:
    await conn.execute(appliances.insert().values(
        **{c: getattr(spec, c) for c in _SPEC_COLS}, token_hash=token_hash, created_at=now, updated_at=now))


async def update_spec(conn: AsyncConnection, spec: ApplianceSpec, now: float) -> bool:
    values = {c: getattr(spec, c) for c in _SPEC_COLS if c != "id"}
    q = update(appliances).where(appliances.c.id == spec.id).values(**values, updated_at=now)
    return (await conn.execute(q)).rowcount > 0


async def set_token_hash(conn: AsyncConnection, appliance_id: str, token_hash: str, now: float) -> bool:
    q = update(appliances).where(appliances.c.id == appliance_id).values(token_hash=token_hash, updated_at=now)
    return (await conn.execute(q)).rowcount > 0


async def delete_one(conn: AsyncConnection, appliance_id: str) -> bool:
    await conn.execute(delete(appliance_inventory).where(appliance_inventory.c.appliance_id == appliance_id))
    return (await conn.execute(delete(appliances).where(appliances.c.id == appliance_id))).rowcount > 0


async def token_hash(conn: AsyncConnection, appliance_id: str) -> str | None:
    q = select(appliances.c.token_hash).where(appliances.c.id == appliance_id)
    return (await conn.execute(q)).scalar_one_or_none()


async def get_state(conn: AsyncConnection, appliance_id: str, *, with_keys: bool = False) -> ApplianceState | None:
    row = (await conn.execute(select(appliances).where(appliances.c.id == appliance_id))).first()
    if row is None:
        return None
    keys = await held_keys(conn, appliance_id) if with_keys else frozenset()
    return _state(row, keys)


async def held_keys(conn: AsyncConnection, appliance_id: str) -> frozenset[str]:
    q = select(appliance_inventory.c.key).where(appliance_inventory.c.appliance_id == appliance_id)
    return frozenset((await conn.execute(q)).scalars())


async def all_states(conn: AsyncConnection, *, with_keys: bool = True) -> list[ApplianceState]:
    """Every appliance, with the keys it holds (one query for all inventories)."""
    keys: dict[str, set[str]] = {}
    if with_keys:
        q = select(appliance_inventory.c.appliance_id, appliance_inventory.c.key)
        for appliance_id, key in await conn.execute(q):
            keys.setdefault(appliance_id, set()).add(key)
    rows = await conn.execute(select(appliances).order_by(appliances.c.id))
    return [_state(r, frozenset(keys.get(r.id, ()))) for r in rows]


async def liveness(conn: AsyncConnection) -> list[Liveness]:
    """Every appliance's report time and health: what /metrics needs, without inventories or prefixes."""
    q = select(appliances.c.id, appliances.c.kind, appliances.c.last_report_at, appliances.c.health_status)
    return [Liveness(*row) for row in await conn.execute(q.order_by(appliances.c.id))]


async def inventory_totals(conn: AsyncConnection) -> dict[str, tuple[int, int]]:
    """appliance id → (files held, bytes held), for `oca-control status`."""
    q = select(appliance_inventory.c.appliance_id, func.count(), func.coalesce(func.sum(appliance_inventory.c.size), 0)
               ).group_by(appliance_inventory.c.appliance_id)
    return {a: (int(n), int(b)) for a, n, b in await conn.execute(q)}


async def apply_report(conn: AsyncConnection, appliance_id: str, report: Report,
                       now: float) -> tuple[Replace | Patch | UnknownGeneration | None, int | None]:
    """Record a report. The appliance row is locked (PostgreSQL) so two reports of one appliance
    apply in order. Returns the inventory decision (None when the report carried no inventory) and
    the generation held afterwards; on UnknownGeneration nothing is written and the caller answers 409."""
    q = select(appliances.c.inventory_generation).where(appliances.c.id == appliance_id).with_for_update()
    held = (await conn.execute(q)).scalar_one_or_none()
    decision = None if report.inventory is None else decide_inventory(held, report.inventory)
    if isinstance(decision, UnknownGeneration):
        return decision, held
    values = {"last_report_at": now, "health_status": report.health_status,
              "health_json": json.dumps(report.health), "load_json": json.dumps(report.load),
              "load_ratio": report.load_ratio, "prefixes_json": json.dumps(report.prefixes)}
    inv = appliance_inventory
    match decision:
        case Replace(items=items, generation=gen):
            await conn.execute(delete(inv).where(inv.c.appliance_id == appliance_id))
            await _add_items(conn, appliance_id, items)
            values["inventory_generation"] = gen
        case Patch(added=added, removed=removed, generation=gen):
            gone = set(removed) | {i.key for i in added}   # re-added keys replace the stored row
            if gone:
                await conn.execute(delete(inv).where(inv.c.appliance_id == appliance_id, inv.c.key.in_(gone)))
            await _add_items(conn, appliance_id, added)
            values["inventory_generation"] = gen
    await conn.execute(update(appliances).where(appliances.c.id == appliance_id).values(**values))
    return decision, values.get("inventory_generation", held)


async def _add_items(conn: AsyncConnection, appliance_id: str, items) -> None:
    if not items:
        return
    latest = {i.key: i for i in items}      # a key listed twice: the last one wins
    rows = [{"appliance_id": appliance_id, "key": i.key, "size": i.size, "sha256": i.sha256, "tier": i.tier}
            for i in latest.values()]
    stmt = insert_for(conn, appliance_inventory)
    for start in range(0, len(rows), 5000):
        await conn.execute(stmt, rows[start:start + 5000])


async def report_details(conn: AsyncConnection, appliance_id: str) -> dict | None:
    q = select(appliances.c.health_json, appliances.c.load_json).where(appliances.c.id == appliance_id)
    row = (await conn.execute(q)).first()
    if row is None:
        return None
    return {"health": json.loads(row.health_json) if row.health_json else None,
            "load": json.loads(row.load_json) if row.load_json else None}
