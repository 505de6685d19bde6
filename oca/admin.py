"""The edge's admin port (aiohttp; never the serving port): /metrics, /healthz, /readyz."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from oca.metrics import EdgeCollector


def admin_app(state: Callable[[], dict[str, Any]]) -> web.Application:
    """`state()` returns the supervisor's current view (see `Supervisor.state`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgeCollector(state))

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        s = state()
        # Alive: the supervisor answers and at least one worker runs.
        return web.json_response({"alive": s["workers"] > 0, "workers": s["worker_list"],
                                  "disks": s["disks"]}, status=200 if s["workers"] > 0 else 503)

    async def readyz(request: web.Request) -> web.Response:
        s = state()
        return web.json_response({"ready": s["ready"], "reason": s["not_ready_reason"]},
                                 status=200 if s["ready"] else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
