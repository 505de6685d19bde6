"""``GET /api/v1/popularity?region=DE``: the decayed view counts the fill planner ranks by."""

from __future__ import annotations

from aiohttp import web

from control_plane.api.auth import require_reader
from control_plane.api.bodies import json_response, query_int
from control_plane.api.openapi_doc import op, query_param
from control_plane.context import CONTEXT
from control_plane.db import popularity as repo
from control_plane.errors import ApiError


async def popularity(request: web.Request) -> web.Response:
    await require_reader(request)
    ctx = request.app[CONTEXT]
    region = request.query.get("region")
    if not region:
        raise ApiError(400, "bad_query", "region is required (ISO alpha-2 or 'unknown')", "region")
    limit = query_int(request, "limit", 100, 1, 100_000)
    half_life = ctx.config.popularity.half_life
    async with ctx.engine.connect() as conn:
        scores = await repo.scores(conn, region, ctx.now(), half_life)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return json_response({"region": region, "half_life_s": half_life,
                          "titles": [{"title_id": t, "views": round(s, 6)} for t, s in ranked]})


def register(app: web.Application) -> None:
    app.router.add_get("/api/v1/popularity", popularity)


OPENAPI = {
    "/api/v1/popularity": {
        "get": op("Time-decayed view counts per title in a region (half-life in the answer)", auth="reader",
                  errors=(400,), params=(query_param("region", {"type": "string"}),
                                         query_param("limit", {"type": "integer"})),
                  ok_schema={"type": "object"}),
    },
}
