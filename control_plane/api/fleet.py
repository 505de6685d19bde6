"""The fleet snapshot steering reads: ``GET /api/v1/fleet/snapshot`` (ETag / 304)."""

from __future__ import annotations

from aiohttp import web

from control_plane import fleet
from control_plane.api.auth import require_reader
from control_plane.api.bodies import json_response
from control_plane.api.conditional import etag, not_modified, response_304
from control_plane.api.openapi_doc import op, ref
from control_plane.context import CONTEXT, Context
from control_plane.db import catalog as catalog_repo
from control_plane.db import fleet as fleet_repo


async def current_snapshot(ctx: Context) -> dict:
    """The snapshot document, rebuilt at most every `fleet.snapshot_cache` seconds (build, then swap)."""
    now = ctx.now()
    cached = ctx.snapshot_cache
    if cached is not None and 0 <= now - cached[0] < ctx.config.fleet.snapshot_cache:
        return cached[1]
    async with ctx.engine.connect() as conn:
        states = await fleet_repo.all_states(conn)
        titles = await catalog_repo.ready_keys_by_title(conn)
    doc = fleet.snapshot_document(states, titles, now, ctx.config.fleet.stale_after)
    ctx.snapshot_cache = (now, doc, etag(doc["generation"]))
    return doc


async def snapshot(request: web.Request) -> web.Response:
    await require_reader(request)
    ctx = request.app[CONTEXT]
    doc = await current_snapshot(ctx)
    tag = etag(doc["generation"])
    if not_modified(request, tag):
        return response_304(tag)
    return json_response(doc, headers={"ETag": tag, "Cache-Control": "no-cache"})


def register(app: web.Application) -> None:
    app.router.add_get("/api/v1/fleet/snapshot", snapshot)


OPENAPI = {
    "/api/v1/fleet/snapshot": {
        "get": op("Everything steering needs, versioned (generation = ETag)", auth="reader",
                  ok_schema=ref("FleetSnapshot"), etag=True),
    },
}
