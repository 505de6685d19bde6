"""`oca serve`'s parent process: N workers on one port, restarted when they die; signals; admin port.

- Reserves the port with a bound, non-listening SO_REUSEPORT socket (so ``:0`` picks one port for
  every worker), then starts N workers (`oca.worker`), each listening on its own socket there.
- A worker that exits unexpectedly is restarted (with a growing delay if it keeps dying at start);
  its counters are folded into the totals so /metrics never goes backwards.
- SIGTERM/SIGINT: /readyz turns false at once, workers drain (stop accepting, finish in-flight
  responses up to ``server.drain_timeout``), then the supervisor exits 0.
- SIGHUP: the config file is validated first; if it is good every worker reloads it (key ring and
  index too) without closing a connection; if not, the error is logged and nothing changes.
- SIGUSR1: forwarded, workers reopen the access log.

The admin port (aiohttp) lives here: /metrics, /healthz, /readyz. Prints one JSON line on stdout
when every worker is ready: ``{"event": "ready", "listen": "HOST:PORT", "admin": ..., "pids": [...]}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from oca.admin import admin_app
from oca.config import ConfigError, load_oca_config
from oca.metrics import Aggregate
from oca.serve_spec import ServeSpec
from oca.worker import listen_socket

log = logging.getLogger("oca.supervisor")
DISK_CHECK_INTERVAL = 5.0
START_TIMEOUT = 60.0


@dataclass
class WorkerHandle:
    slot: int
    proc: asyncio.subprocess.Process
    started: float
    ready: bool = False
    reloaded: int = 0
    reader: asyncio.Task | None = None


@dataclass
class Supervisor:
    spec: ServeSpec
    workers: int
    admin: tuple[str, int] | None
    drain_timeout: float
    handles: dict[int, WorkerHandle] = field(default_factory=dict)
    aggregate: Aggregate = field(default_factory=Aggregate)
    restarts: int = 0
    reloads: int = 0
    reload_requested: int = 0
    draining: bool = False
    started: bool = False
    disks: dict[str, tuple[str, str]] = field(default_factory=dict)

    # -- state for the admin port -----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        alive = [h for h in self.handles.values() if h.proc.returncode is None and h.ready]
        usable = any(state == "ok" for state, _ in self.disks.values())
        reason = ("draining" if self.draining else "starting" if not self.started
                  else "no worker running" if not alive else "no usable disk" if not usable else "")
        return {"totals": self.aggregate.total(), "workers": len(alive), "restarts": self.restarts,
                "reloads": self.reloads, "ready": not reason, "not_ready_reason": reason,
                "disks": {d: s for d, (s, _) in self.disks.items()},
                "worker_list": [{"slot": h.slot, "pid": h.proc.pid, "ready": h.ready}
                                for h in sorted(self.handles.values(), key=lambda h: h.slot)]}

    # -- main -------------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        loop.add_signal_handler(signal.SIGUSR1, lambda: self._signal_workers(signal.SIGUSR1))
        host, port = self.spec.listen
        try:
            reserve = listen_socket(host, port, 0, listen=False)  # holds the port; never accepts
        except OSError as e:
            log.error("cannot bind %s: %s", _fmt(self.spec.listen), e.strerror or e)
            return 1
        self.spec = replace(self.spec, listen=reserve.getsockname()[:2])
        self.disk_probe = _DiskProbe(self.spec)
        self.disks = await loop.run_in_executor(None, self.disk_probe.check)
        runner = None
        admin_addr = None
        if self.admin is not None:
            runner = web.AppRunner(admin_app(self.state), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.admin[0], self.admin[1], reuse_address=True)
            try:
                await site.start()
            except OSError as e:
                log.error("cannot listen on the admin address %s: %s", _fmt(self.admin), e.strerror or e)
                await runner.cleanup()
                reserve.close()
                return 1
            admin_addr = runner.addresses[0][:2]
        watchers = [asyncio.create_task(self._keep_running(slot, stop)) for slot in range(self.workers)]
        chores = asyncio.create_task(self._chores())
        try:
            await asyncio.wait_for(self._all_ready(stop), START_TIMEOUT)
        except TimeoutError:
            log.error("workers did not become ready within %ss", START_TIMEOUT)
            stop.set()
        if not stop.is_set():
            self.started = True
            print(json.dumps({"event": "ready", "listen": _fmt(self.spec.listen),
                              "admin": _fmt(admin_addr) if admin_addr else None,
                              "pids": [h.proc.pid for h in self.handles.values()]}), flush=True)
            log.info("serving on %s with %d workers", _fmt(self.spec.listen), self.workers)
        await stop.wait()
        await self._shutdown(watchers)
        chores.cancel()
        reserve.close()
        if runner is not None:
            await runner.cleanup()
        self.disk_probe.close()
        log.info("stopped")
        return 0

    async def _all_ready(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if len(self.handles) == self.workers and all(h.ready for h in self.handles.values()):
                return
            await asyncio.sleep(0.02)

    async def _spawn(self, slot: int) -> WorkerHandle:
        rfd, wfd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "oca.worker", "--spec", self.spec.to_json(), "--slot", str(slot),
                "--status-fd", str(wfd), pass_fds=(wfd,), stdin=asyncio.subprocess.DEVNULL)
        finally:
            os.close(wfd)
        handle = WorkerHandle(slot, proc, time.monotonic())
        handle.reader = asyncio.create_task(self._read_status(handle, rfd))
        self.handles[slot] = handle
        return handle

    async def _keep_running(self, slot: int, stop: asyncio.Event) -> None:
        delay = 0.0
        while not stop.is_set() and not self.draining:
            handle = await self._spawn(slot)
            code = await handle.proc.wait()
            if handle.reader is not None:
                await asyncio.wait([handle.reader], timeout=2)
            self.aggregate.worker_exited(slot)
            if self.draining or stop.is_set():
                return
            self.restarts += 1
            lived = time.monotonic() - handle.started
            delay = min(5.0, max(0.1, delay * 2)) if lived < 2.0 else 0.0
            log.error("worker %d (pid %d) exited with %s; restarting in %.1fs", slot, handle.proc.pid, code,
                      delay)
            if delay:
                await asyncio.sleep(delay)

    async def _read_status(self, handle: WorkerHandle, rfd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 22)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(rfd, "rb", 0))
        try:
            while line := await reader.readline():
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                event = msg.get("event")
                if event == "metrics":
                    self.aggregate.update(handle.slot, msg["snapshot"])
                elif event == "ready":
                    handle.ready = True
                    handle.reloaded = self.reload_requested
                elif event == "reloaded" and msg.get("ok"):
                    handle.reloaded = self.reload_requested
                    self._count_reload()
        finally:
            transport.close()

    def _count_reload(self) -> None:
        live = [h for h in self.handles.values() if h.proc.returncode is None and h.ready]
        if self.reload_requested > self.reloads and all(h.reloaded >= self.reload_requested for h in live):
            self.reloads = self.reload_requested

    async def reload(self) -> None:
        """SIGHUP: validate, then have every worker reload."""
        if self.spec.config_path is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, load_oca_config, self.spec.config_path)
            except ConfigError as e:
                log.error("SIGHUP: configuration not reloaded: %s", e)
                return
        self.disk_probe.close()
        self.disk_probe = _DiskProbe(self.spec)
        self.reload_requested += 1
        log.info("SIGHUP: reloading %d workers", len(self.handles))
        self._signal_workers(signal.SIGHUP)
        try:  # and look at the disks now rather than at the next periodic check
            self.disks = await asyncio.get_running_loop().run_in_executor(None, self.disk_probe.check)
        except Exception:
            log.exception("disk check failed")

    def _signal_workers(self, sig: int) -> None:
        for h in self.handles.values():
            if h.proc.returncode is None and h.ready:
                with contextlib.suppress(ProcessLookupError):
                    h.proc.send_signal(sig)

    async def _chores(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(DISK_CHECK_INTERVAL)
            try:
                self.disks = await loop.run_in_executor(None, self.disk_probe.check)
            except Exception:
                log.exception("disk check failed")

    async def _shutdown(self, watchers: list[asyncio.Task]) -> None:
        self.draining = True
        log.info("draining: not ready; workers finish in-flight responses (up to %ss)", self.drain_timeout)
        for h in self.handles.values():
            if h.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    h.proc.send_signal(signal.SIGTERM)
        procs = [h.proc for h in self.handles.values()]
        waits = [asyncio.ensure_future(p.wait()) for p in procs]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=self.drain_timeout + 5)
            for p in procs:
                if p.returncode is None:
                    log.error("worker pid %d did not stop; killing it", p.pid)
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
            if pending:
                await asyncio.wait(pending, timeout=5)
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)


class _DiskProbe:
    """Disk states for /readyz and /metrics: the store's disk check, or the root dir's readability."""

    def __init__(self, spec: ServeSpec) -> None:
        self.spec = spec
        self.store = None
        self.lock = threading.Lock()  # check() runs in the executor; close() may come from the loop

    def check(self) -> dict[str, tuple[str, str]]:
        with self.lock:
            return self._check()

    def _check(self) -> dict[str, tuple[str, str]]:
        if self.spec.config_path is None:
            ok = os.access(self.spec.root, os.R_OK | os.X_OK)
            return {"root": ("ok", "") if ok else ("failed", "root directory not readable")}
        if self.store is None:
            from oca.store import Store

            self.store = Store.open(load_oca_config(self.spec.config_path).store, cleanup=False)
        return {d: (s.state, s.reason) for d, s in self.store.check_disks().items()}

    def close(self) -> None:
        with self.lock:
            if self.store is not None:
                self.store.close()
                self.store = None


def _fmt(addr: tuple[str, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
