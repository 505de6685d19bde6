"""`oca-control serve` with `server.workers` > 1: a supervisor and N worker processes on one port.

One Python process answers ~15,000 heartbeats/s here (docs/control-plane.md, bench); a box with more
cores gets more by running more processes. Each worker is a whole control plane (its own event loop,
database pool and telemetry buffer) bound to the same address with SO_REUSEPORT, so the kernel
spreads connections over them. Everything they share lives in SQL (telemetry flushes only add), so
only two things need a role:

- worker 0 runs the ingest jobs; the others store and cancel them (`[ingest] run_jobs`);
- /metrics from any worker adds up every worker's values: prometheus_client's multiprocess mode,
  in a directory the supervisor creates for the run and removes at the end.

The supervisor holds the port (a bound, never-listening SO_REUSEPORT socket, which also turns port 0
into a real one), migrates the database once when `database.migrate_on_start` is set, starts the
workers one by one, restarts one that dies, forwards SIGHUP (each worker reloads its configuration)
and on SIGTERM/SIGINT drains them all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

from control_plane.config import ControlConfig
from control_plane.db import migrate
from control_plane.db.engine import create_engine
from oca.worker import listen_socket

log = logging.getLogger("oca.control.workers")

START_TIMEOUT = 60.0        # a worker that has not said "listening" by then failed to start
RESTART_DELAY = 1.0         # between a worker's death and its replacement


class WorkerFailed(Exception):
    """A worker exited before it was listening (its own log says why)."""


class Supervisor:
    def __init__(self, config: ControlConfig, config_path: Path, port: int, metrics_dir: Path) -> None:
        self.config, self.config_path, self.port = config, config_path, port
        self.env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        self.metrics_dir = metrics_dir
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = False
        self.restarts = 0

    async def spawn(self, slot: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "control_plane.cli", "serve", "--config", str(self.config_path),
            "--worker", str(slot), "--port", str(self.port), env=self.env, stdout=asyncio.subprocess.PIPE)
        self.procs[slot] = proc
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)   # type: ignore[union-attr]
        except TimeoutError:
            proc.kill()
            line = b""
        if not line.startswith(b"oca-control listening"):
            await proc.wait()
            raise WorkerFailed(f"worker {slot} exited with code {proc.returncode} before listening")
        log.info("worker started", extra={"fields": {"slot": slot, "pid": proc.pid}})

    async def keep(self, slot: int) -> None:
        """Restart worker `slot` whenever it dies, until the supervisor stops."""
        while True:
            proc = self.procs[slot]
            code = await proc.wait()
            mark_process_dead(proc.pid, str(self.metrics_dir))
            if self.stopping:
                return
            log.error("worker died; restarting it", extra={"fields": {"slot": slot, "pid": proc.pid, "code": code}})
            self.restarts += 1
            await asyncio.sleep(RESTART_DELAY)
            try:
                await self.spawn(slot)
            except WorkerFailed as e:
                log.error("worker restart failed; trying again", extra={"fields": {"error": str(e)}})

    def signal_all(self, sig: int) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(sig)

    async def stop_all(self) -> None:
        self.stopping = True
        self.signal_all(signal.SIGTERM)
        waits = [p.wait() for p in self.procs.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), self.config.server.shutdown_timeout + 5)
        except TimeoutError:
            log.error("workers did not stop in time; killing them")
            self.signal_all(signal.SIGKILL)
            await asyncio.gather(*(p.wait() for p in self.procs.values()))


async def supervise(config: ControlConfig, config_path: Path | None) -> int:
    """Run `config.server.workers` workers until SIGTERM/SIGINT; 0 after a clean drain, 1 when a
    worker or the port could not be started."""
    if config_path is None:
        print("oca-control: server.workers > 1 needs --config", file=sys.stderr)
        return 1
    host, port = config.server.listen
    try:
        reserve = listen_socket(host, port, 0, listen=False)     # holds the port; never accepts
    except OSError as e:
        print(f"oca-control: cannot listen on {host}:{port}: {e.strerror or e}", file=sys.stderr)
        return 1
    port = reserve.getsockname()[1]
    metrics_dir = Path(tempfile.mkdtemp(prefix="oca-control-metrics-"))
    sup = Supervisor(config, config_path, port, metrics_dir)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def shut_down() -> None:
        sup.stopping = True      # at once: Ctrl-C also reaches the workers, whose exits are not deaths
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shut_down)
    loop.add_signal_handler(signal.SIGHUP, sup.signal_all, signal.SIGHUP)
    watchers: list[asyncio.Task] = []
    try:
        if config.database.migrate_on_start:
            await _migrate(config)
        for slot in range(config.server.workers):
            await sup.spawn(slot)
        watchers = [asyncio.create_task(sup.keep(slot)) for slot in sup.procs]
        print(f"oca-control listening on http://{host}:{port} ({config.server.workers} workers)", flush=True)
        log.info("serving", extra={"fields": {"workers": config.server.workers, "port": port}})
        await stop.wait()
        return 0
    except WorkerFailed as e:
        print(f"oca-control: {e}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await sup.stop_all()
        for task in watchers:
            task.cancel()
        reserve.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("stopped", extra={"fields": {"restarts": sup.restarts}})


async def _migrate(config: ControlConfig) -> None:
    """Once, before the workers start: N workers migrating at once would race for the same steps."""
    engine = create_engine(config.database.url, pool_size=1)
    try:
        for step in await migrate.upgrade(engine):
            log.info("migrated", extra={"fields": {"number": step.number, "name": step.name}})
    finally:
        await engine.dispose()
