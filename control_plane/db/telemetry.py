"""Write one telemetry batch: counter rows per (bucket, region, title) and the views they add."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from control_plane.db import popularity as popularity_repo
from control_plane.db.schema import playback_stats
from control_plane.db.upsert import upsert_add
from control_plane.telemetry import ROW_FIELDS, Batch


async def write_batch(conn: AsyncConnection, batch: Batch, now: float, *, half_life: float,
                      heartbeat_weight: float) -> None:
    rows = []
    views: dict[tuple[str, str], float] = {}
    for (bucket, region, title_id), row in sorted(batch.rows.items()):
        rows.append({"bucket_start": bucket, "region": region, "title_id": title_id,
                     **dict(zip(ROW_FIELDS, row, strict=True))})
        weight = row[1] + heartbeat_weight * row[0]          # plays + weighted heartbeats
        views[(region, title_id)] = views.get((region, title_id), 0.0) + weight
    await upsert_add(conn, playback_stats, rows, ["bucket_start", "region", "title_id"], add=list(ROW_FIELDS))
    await popularity_repo.add_views(conn, views, now, half_life)
