"""A fleet-snapshot server on loopback (docs/contracts.md: ETag, If-None-Match → 304, bearer token) that a
test can change, break (garbage) or stop, and helpers to wait on conditions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

TOKEN = "steering-test-token"


class SnapshotServer:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.garbage: bytes | None = None
        self.requests: list[tuple[str | None, int]] = []     # (If-None-Match, status)
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/fleet/snapshot"

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.requests.append((None, 401))
            return web.json_response({"error": {"code": "unauthorized"}}, status=401)
        if self.garbage is not None:
            self.requests.append((None, 200))
            return web.Response(body=self.garbage, content_type="application/json")
        etag = f'"{self.doc["generation"]}"'
        inm = request.headers.get("If-None-Match")
        status = 304 if inm == etag else 200
        self.requests.append((inm, status))
        if status == 304:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=json.dumps(self.doc).encode(), content_type="application/json",
                            headers={"ETag": etag})

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/fleet/snapshot", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "") -> None:
    """Poll `condition` until it is true; fail after `timeout` seconds (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def snapshot_server():
    from tests.unit.steering.fleetdocs import appliance, snapshot

    server = SnapshotServer(snapshot([
        appliance("isp1-a", v4=["203.0.113.0/24"], v6=["2001:db8:1::/48"], keys=["t1/a.mp4", "t1/b.mp4"]),
        appliance("isp1-b", keys=["t1/a.mp4", "t1/b.mp4"], load=0.2),
        appliance("ixp-fr", "ixp", asn=None, country="FR", region="eu-west", keys=["t1/a.mp4", "t1/b.mp4"]),
        appliance("origin", "origin", asn=None, country=None, region=None),
    ]))
    await server.start()
    yield server
    await server.stop()


APPLIANCE_TOKEN = "appliance-token-isp1-a"


class ReportSink:
    """The control plane's report endpoint as docs/contracts.md says: generations, deltas, 409."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []
        self.inventory: dict[str, dict[str, Any]] = {}
        self.generation: int | None = None
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {APPLIANCE_TOKEN}":
            return web.json_response({"error": {"code": "unauthorized"}}, status=401)
        report = await request.json()
        assert report["appliance_id"] == request.match_info["id"]
        self.reports.append(report)
        inv = report["inventory"]
        if inv["kind"] == "full":
            self.inventory = {i["key"]: i for i in inv["items"]}
        elif inv["base_generation"] != self.generation:
            return web.json_response({"error": {"code": "unknown_generation", "message": "send full"}},
                                     status=409)
        else:
            for key in inv["removed"]:
                self.inventory.pop(key, None)
            self.inventory.update({i["key"]: i for i in inv["added"]})
        self.generation = inv["generation"]
        return web.json_response({"accepted": True, "generation": self.generation})

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/appliances/{id}/report", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def report_sink():
    sink = ReportSink()
    await sink.start()
    yield sink
    await sink.stop()


def write_oca_toml(tmp, control_plane_url: str, extra: str = "") -> Any:
    """An oca.toml with a two-tier store under `tmp` and a [reporter] table; returns its path."""
    from oca.config import load_toml, read_store_config
    from oca.store import init_disks

    for d in ("ssd0", "hdd0"):
        (tmp / d).mkdir(exist_ok=True)
    path = tmp / "oca.toml"
    path.write_text(f"""
[store]
index_path = "{tmp}/index"
default_tier = "hdd"
[[store.tiers.ssd.disks]]
path = "{tmp}/ssd0"
capacity = "10MB"
[[store.tiers.hdd.disks]]
path = "{tmp}/hdd0"
capacity = "20MB"

[tokens]
mode = "open"

[reporter]
appliance_id = "isp1-a"
control_plane_url = "{control_plane_url}"
token = "{APPLIANCE_TOKEN}"
interval = "100ms"
link_capacity = "10Gbps"
serve_port = 0
{extra}
""")
    init_disks(read_store_config(load_toml(path), check_dirs=False))
    return path
