"""Playback telemetry: heartbeats and events from players. Open (no token), small bodies only.

The hot path does no SQL: validate, resolve the client's country, fold into the in-memory
buffer (control_plane/telemetry.py), answer 204. 503 + Retry-After when the backlog is full.
"""

from __future__ import annotations

from aiohttp import web

from control_plane import telemetry
from control_plane.api.bodies import read_json
from control_plane.api.openapi_doc import op, path_param, ref
from control_plane.context import CONTEXT
from control_plane.errors import ApiError, not_found
from control_plane.validation import is_identifier

_NO_CONTENT = 204


async def _accept(request: web.Request, kind: str) -> web.Response:
    ctx = request.app[CONTEXT]
    title_id = request.match_info["title_id"]
    body = await read_json(request, ctx.config.telemetry.max_body)
    record = telemetry.parse_heartbeat(body) if kind == "heartbeat" else telemetry.parse_event(body)
    if not ctx.titles.known(title_id) and (not is_identifier(title_id) or not await ctx.titles.exists(title_id)):
        raise not_found("title", title_id)
    region = ctx.country_of(request)
    buffer = ctx.buffer
    try:
        if kind == "heartbeat":
            buffer.add_heartbeat(title_id, region, record)
        else:
            buffer.add_event(title_id, region, record)
    except ApiError:
        ctx.metrics.telemetry_rejected.inc()
        ctx.nudge_flusher()
        raise
    ctx.metrics.record_counter(kind)()
    if buffer.waiting() >= ctx.config.telemetry.flush_batch:
        ctx.nudge_flusher()
    return web.Response(status=_NO_CONTENT)


async def heartbeat(request: web.Request) -> web.Response:
    return await _accept(request, "heartbeat")


async def event(request: web.Request) -> web.Response:
    return await _accept(request, "event")


def register(app: web.Application) -> None:
    app.router.add_post("/api/v1/playback/{title_id}/heartbeat", heartbeat)
    app.router.add_post("/api/v1/playback/{title_id}/event", event)


_T = (path_param("title_id"),)
OPENAPI = {
    "/api/v1/playback/{title_id}/heartbeat": {
        "post": op("Player heartbeat (about every 10 s); region from the client address", auth=None,
                   body=ref("Heartbeat"), ok=204, errors=(404, 503), params=_T),
    },
    "/api/v1/playback/{title_id}/event": {
        "post": op("Player event play|pause|seek|stop; play events are the views behind popularity",
                   auth=None, body=ref("PlaybackEvent"), ok=204, errors=(404, 503), params=_T),
    },
}
