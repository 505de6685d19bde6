"""Pieces of the real-player tests: edge servers (`oca serve --root`), the page/manifest server, the
node driver. Synchronous on purpose: module-scoped fixtures start them once for all players."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

E2E_DIR = Path(__file__).resolve().parent
NODE_MODULES = E2E_DIR / "node_modules"
CHROMIUM = "/usr/bin/chromium"
LIBRARIES = {
    "dash.all.min.js": "dashjs/dist/modern/umd/dash.all.min.js",
    "hls.min.js": "hls.js/dist/hls.min.js",
    "shaka-player.compiled.js": "shaka-player/dist/shaka-player.compiled.js",
}


def missing_prerequisites() -> str | None:
    if not (NODE_MODULES / "playwright-core").is_dir():
        return "tests/e2e/node_modules is missing: run `npm ci` in tests/e2e (the bootstrap does)"
    if not os.access(CHROMIUM, os.X_OK) or shutil.which("node") is None:
        return "chromium or node is not installed (scripts/system-packages.txt)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


OCA = str(Path(sys.executable).with_name("oca"))
KEY_ID, SECRET = "e2e-1", "e2e secret: at least thirty-two characters long"


def make_store(workdir: Path, files: dict[str, Path], keys: Path) -> Path:
    """An appliance store holding `files` (key → path), edges requiring URLs signed with a key of the
    ring `keys`, CORS for any origin. Returns the oca.toml path; several edge processes may serve the
    same store (LMDB readers)."""
    (workdir / "disk0").mkdir(parents=True)
    config = workdir / "oca.toml"
    config.write_text(
        f'[store]\nindex_path = "{workdir / "index"}"\ndefault_tier = "ssd"\n'
        f'[[store.tiers.ssd.disks]]\npath = "{workdir / "disk0"}"\ncapacity = "1GB"\n'
        f'[tokens]\nmode = "require"\nkeys_file = "{keys}"\n'
        '[cors]\nallowed_origins = ["*"]\n'
    )
    subprocess.run([OCA, "store", "init", "--config", str(config)], check=True, capture_output=True, timeout=60)
    for key, path in files.items():
        subprocess.run([OCA, "store", "add", "--config", str(config), key, str(path)], check=True,
                       capture_output=True, timeout=60)
    return config


class Edge:
    """One `oca serve --config` process (its own session, so kill() takes its workers too)."""

    def __init__(self, config: Path, name: str) -> None:
        self.name, self.port = name, free_port()
        self.proc = subprocess.Popen(
            [OCA, "serve", "--config", str(config), "--listen", f"127.0.0.1:{self.port}", "--workers", "1",
             "--admin", f"127.0.0.1:{free_port()}"],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        wait_until(lambda: _accepts(self.port) or self.proc.poll() is not None, 30, f"edge {name} to listen")
        if self.proc.poll() is not None:
            raise RuntimeError(f"edge {name} exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stderr.close()


class PageServer:
    """Serves page.html, the player libraries and whatever extra routes a test adds, in a thread."""

    def __init__(self, routes: Callable[[web.Application], None]) -> None:
        self.port = free_port()
        self.app = web.Application()
        self.app.router.add_get("/page.html", self._page)
        self.app.router.add_get("/lib/{name}", self._library)
        routes(self.app)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("page server did not start")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(E2E_DIR / "page.html")

    async def _library(self, request: web.Request) -> web.StreamResponse:
        relative = LIBRARIES.get(request.match_info["name"])
        if relative is None:
            raise web.HTTPNotFound()
        return web.FileResponse(NODE_MODULES / relative)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, coro, timeout: float = 300):
        """Run a coroutine on the server's loop (e.g. start a control plane next to the page)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


def run_driver(page_url: str, scenarios: list[dict], workdir: Path, timeout: float = 400) -> dict[str, dict]:
    """Run all scenarios in one chromium; return their results by scenario name."""
    spec = workdir / "scenarios.json"
    spec.write_text(json.dumps({"chromium": CHROMIUM, "pageUrl": page_url, "scenarios": scenarios}))
    done = subprocess.run(["node", str(E2E_DIR / "driver.mjs"), str(spec)], cwd=E2E_DIR, capture_output=True,
                          text=True, timeout=timeout)
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
            results[result["name"]] = result
    if done.returncode != 0 or len(results) != len(scenarios):
        raise RuntimeError(f"driver failed (exit {done.returncode}): {done.stderr[-3000:]}")
    return results
