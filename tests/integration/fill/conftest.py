"""Real servers on loopback for the fill agent's tests.

* `edge`: our edge in open mode (`oca serve --root DIR`), as origin and as peer;
* `BadServer`: an aiohttp server that misbehaves on purpose (truncates, corrupts, stalls, 404/5xx,
  ignores Range, changes its ETag);
* `ManifestServer`: the control plane's fill-manifest endpoint as docs/contracts.md specifies it
  (Bearer token, ETag/304), serving whatever document the test sets, or failing on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from tests.storekit import write_store_config

REPO = Path(__file__).resolve().parents[3]
OCA = str(Path(sys.executable).with_name("oca"))
TOKEN = "appliance-secret-token"


@dataclass(frozen=True)
class File:
    key: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def make_files(n: int, size: int, *, prefix: str = "t", seed: int = 0) -> list[File]:
    return [File(f"{prefix}{i}/v-{size}.mp4", hashlib.shake_256(f"{seed}-{i}".encode()).digest(size))
            for i in range(n)]


def put_files(root: Path, files: list[File]) -> None:
    for f in files:
        path = root / f.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data)


def item(rank: int, f: File, sources: list[dict], tier: str = "hdd") -> dict:
    return {"rank": rank, "key": f.key, "title_id": f.key.split("/")[0], "size": f.size, "sha256": f.sha256,
            "tier": tier, "sources": sources}


def origin(url: str, f: File) -> dict:
    return {"kind": "origin", "url": f"{url}/{f.key}"}


def peer(url: str, f: File, appliance_id: str = "peer-1") -> dict:
    return {"kind": "peer", "appliance_id": appliance_id, "url": f"{url}/{f.key}?exp=9999999999&kid=k&sig=00"}


def manifest_doc(items: list[dict], generation: int = 1, appliance_id: str = "isp1-a") -> dict:
    return {"version": 1, "appliance_id": appliance_id, "generation": generation,
            "generated_at": "2026-11-25T18:00:00Z", "items": items}


# -- the edge in open mode --------------------------------------------------------------------------------
class Edge:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc = subprocess.Popen([OCA, "serve", "--root", str(root), "--listen", "127.0.0.1:0",
                                      "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     cwd=REPO, text=True)
        line = self.proc.stdout.readline()
        ready = json.loads(line)
        assert ready["event"] == "ready", line
        self.url = f"http://{ready['listen']}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def edge_factory():
    edges: list[Edge] = []

    def start(root: Path) -> Edge:
        edges.append(Edge(root))
        return edges[-1]

    yield start
    for e in edges:
        e.stop()


# -- in-process aiohttp servers ----------------------------------------------------------------------------
async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


@dataclass
class BadServer:
    """Serves `files` by key under a mode prefix: /<mode>/<key>. Counts requests per (mode, key)."""

    files: dict[str, bytes]
    hits: dict[tuple[str, str], int] = field(default_factory=dict)
    ranges: list[str | None] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        mode, key = request.match_info["mode"], request.match_info["key"]
        n = self.hits[(mode, key)] = self.hits.get((mode, key), 0) + 1
        self.ranges.append(request.headers.get("Range"))
        data = self.files.get(key)
        if data is None or mode == "404":
            return web.Response(status=404)
        if mode == "500":
            return web.Response(status=500)
        if mode == "flaky" and n <= 2:                       # 503 twice, then good
            return web.Response(status=503)
        if mode == "corrupt":
            data = data[:-1] + bytes([data[-1] ^ 1])
        if mode in ("longer", "wronglen"):                     # chunked / with a Content-Length
            data = data + b"extra"
        start = 0
        rng = request.headers.get("Range")
        honour = mode not in ("norange", "longer", "wronglen")
        if mode == "newetag" and request.headers.get("If-Range") is not None:
            honour = False
        status = 200
        headers = {"ETag": '"v1"' if mode != "newetag" else f'"v{n}"'}
        if rng and honour:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        resp = web.StreamResponse(status=status, headers=headers)
        if mode == "longer":
            resp.enable_chunked_encoding()
        else:
            resp.content_length = len(body)
        await resp.prepare(request)
        if mode == "truncate" and n == 1 or mode == "cut":  # send half, then drop the connection
            await resp.write(body[: len(body) // 2])
            request.transport.close()
            return resp
        if mode == "stall" and n == 1:                       # send half, then go silent
            await resp.write(body[: len(body) // 2])
            await self.release.wait()
            return resp
        await resp.write(body)
        await resp.write_eof()
        return resp


@pytest.fixture
async def bad_server():
    servers = []

    async def start(files: list[File]) -> BadServer:
        bad = BadServer({f.key: f.data for f in files})
        app = web.Application()
        app.router.add_get("/{mode}/{key:.+}", bad.handle)
        runner, bad.url = await start_app(app)
        servers.append((bad, runner))
        return bad

    yield start
    for bad, runner in servers:
        bad.release.set()
        await runner.cleanup()


@dataclass
class ManifestServer:
    doc: dict | None = None
    mode: str = "ok"                 # ok | down | garbage | forbidden
    requests: int = 0
    not_modified: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {TOKEN}" or self.mode == "forbidden":
            return web.json_response({"error": {"code": "forbidden"}}, status=403)
        if self.mode == "down":
            return web.Response(status=503)
        if self.mode == "garbage":
            body = json.dumps({**self.doc, "generation": self.doc["generation"] + 1, "items": "nope"}).encode()
            return web.Response(body=body, content_type="application/json",
                                headers={"ETag": '"garbage"'})
        assert self.doc is not None
        if request.match_info["id"] != self.doc["appliance_id"]:
            return web.json_response({"error": {"code": "not_found"}}, status=404)
        tag = f'"{self.doc["generation"]}"'
        if request.headers.get("If-None-Match") == tag:
            self.not_modified += 1
            return web.Response(status=304, headers={"ETag": tag})
        return web.json_response(self.doc, headers={"ETag": tag})


@pytest.fixture
async def manifest_server():
    server = ManifestServer()
    app = web.Application()
    app.router.add_get("/api/v1/appliances/{id}/fill-manifest", server.handle)
    runner, server.url = await start_app(app)
    yield server
    await runner.cleanup()


# -- an appliance: store + fill config ------------------------------------------------------------------------
def write_fill_config(root: Path, cp_url: str, *, ssd=("20MB",), hdd=("50MB",), rate: str = "unlimited",
                      extra: str = "", fetch: str = "", window: str = "enabled = false") -> Path:
    store_toml = write_store_config(root / "appliance", ssd=ssd, hdd=hdd)
    from oca.config import load_toml, read_store_config
    from oca.store import init_disks

    init_disks(read_store_config(load_toml(store_toml)))
    (root / "token").write_text(TOKEN + "\n")
    path = root / "oca-fill.toml"
    path.write_text(f"""
store_config = "{store_toml}"
state_dir = "{root / 'state'}"
log_interval = "1s"
[control_plane]
url = "{cp_url}"
appliance_id = "isp1-a"
token_file = "token"
timeout = "5s"
retry_interval = "1s"
poll_interval = "1s"
[window]
{window}
[rate]
limit = "{rate}"
[fetch]
concurrency = 3
connect_timeout = "2s"
read_timeout = "1s"
attempts_per_source = 2
backoff_initial = "10ms"
backoff_max = "50ms"
drain_timeout = "2s"
{fetch}
[metrics]
textfile = "{root / 'fill.prom'}"
{extra}
""")
    return path


async def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `predicate` until true (not a sleep as synchronisation: it waits on the condition)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


async def run_cli(*args: str, timeout: float = 120) -> CliResult:
    """Run `oca-fill` without blocking the loop (the test's servers live in it)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "fill.cli", *args, cwd=REPO, env=cli_env(),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return CliResult(proc.returncode, out.decode(), err.decode())


@contextlib.contextmanager
def opened_store(config_path: Path):
    from fill.config import read_fill_config
    from oca.store import Store

    store = Store.open(read_fill_config(config_path).store)
    try:
        yield store
    finally:
        store.close()
