"""Operational endpoints: /metrics (Prometheus), /healthz, /readyz, and the OpenAPI document."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import text

from control_plane.api import openapi_doc, route_modules
from control_plane.api.bodies import json_response
from control_plane.api.openapi_doc import op
from control_plane.context import CONTEXT
from control_plane.db import fleet as fleet_repo
from control_plane.metrics import CONTENT_TYPE, LivenessCollector

OPENAPI_KEY = web.AppKey("oca_control_openapi", dict)
log = logging.getLogger("oca.control")


async def metrics(request: web.Request) -> web.Response:
    """This process's (or every worker's) metrics, plus each appliance's last report and rotation read
    from the database now; when the database does not answer, the rest is still served."""
    ctx = request.app[CONTEXT]
    ctx.metrics.telemetry_pending.set(ctx.buffer.pending)
    extra = []
    try:
        async with ctx.engine.connect() as conn:
            rows = await fleet_repo.liveness(conn)
        extra.append(LivenessCollector(rows, ctx.now(), ctx.config.fleet.stale_after))
    except Exception as e:
        log.warning("metrics: appliance liveness not read", extra={"fields": {"error": repr(e)}})
    return web.Response(body=ctx.metrics.render(*extra), headers={"Content-Type": CONTENT_TYPE})


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers."""
    ctx = request.app[CONTEXT]
    try:
        async with ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as e:
        return json_response({"error": {"code": "database_unavailable", "message": repr(e), "field": None}}, 503)
    return json_response({"status": "ready", "telemetry_pending": ctx.buffer.pending})


async def openapi(request: web.Request) -> web.Response:
    doc = request.app.get(OPENAPI_KEY)
    if doc is None:
        doc = openapi_doc.build(route_modules())
    return json_response(doc)


def register(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/openapi.json", openapi)


OPENAPI = {
    "/metrics": {"get": op("Prometheus metrics", auth=None, ok_content="text/plain",
                           ok_schema={"type": "string"})},
    "/healthz": {"get": op("Liveness", auth=None)},
    "/readyz": {"get": op("Readiness: the database answers", auth=None, errors=(503,))},
    "/api/v1/openapi.json": {"get": op("This document (OpenAPI 3.1)", auth=None, ok_schema={"type": "object"})},
}
