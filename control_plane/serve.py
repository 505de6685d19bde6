"""Running the control plane: listen, drain on SIGTERM/SIGINT, reload on SIGHUP."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from control_plane import logs
from control_plane.app import FLUSHER, create_app, reload
from control_plane.config import ControlConfig, load_config
from control_plane.context import CONTEXT
from oca.config import ConfigError
from oca.worker import listen_socket

log = logging.getLogger("oca.control")


async def run(config: ControlConfig, *, config_path: Path | None = None,
              ready: asyncio.Event | None = None, stop: asyncio.Event | None = None,
              worker: tuple[int, int] | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set), then drain: stop accepting, let requests in
    flight finish within `server.shutdown_timeout`, flush telemetry, close the database.

    `worker` = (slot, port): one of several workers (control_plane/workers.py), bound with
    SO_REUSEPORT to the port the supervisor holds."""
    app = create_app(config)
    access = logging.getLogger("oca.control.access") if config.server.access_log else None
    runner = web.AppRunner(app, access_log_class=logs.AccessLogger, access_log=access,
                           shutdown_timeout=config.server.shutdown_timeout)
    host, port = config.server.listen
    if worker is not None:
        app[CONTEXT].extras["worker_slot"], port = worker
    await runner.setup()
    try:
        if worker is None:
            site: web.BaseSite = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024,
                                             shutdown_timeout=config.server.shutdown_timeout)
        else:
            site = web.SockSite(runner, listen_socket(host, port, 1024),
                                shutdown_timeout=config.server.shutdown_timeout)
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0] if runner.addresses else (host, port)
    log.info("listening", extra={"fields": {"address": f"http://{bound[0]}:{bound[1]}"}})
    print(f"oca-control listening on http://{bound[0]}:{bound[1]}", flush=True)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(app, config_path))
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        log.info("draining", extra={"fields": {"telemetry_pending": app[CONTEXT].buffer.pending}})
        await runner.cleanup()
        log.info("stopped", extra={"fields": {"telemetry_flushed": app[FLUSHER].flushed_records}})


def _reload(app: web.Application, config_path: Path | None) -> None:
    metrics = app[CONTEXT].metrics
    if config_path is None:
        log.info("SIGHUP: running on embedded defaults, reloading the operator token file only")
        config = app[CONTEXT].config
    else:
        try:
            config = load_config(config_path)
        except ConfigError as e:
            metrics.config_reloads.labels("error").inc()
            log.error("SIGHUP: config rejected, keeping the running one", extra={"fields": {"error": str(e)}})
            return
    try:
        restart = reload(app, config)
    except ConfigError as e:
        metrics.config_reloads.labels("error").inc()
        log.error("SIGHUP: config rejected, keeping the running one", extra={"fields": {"error": str(e)}})
        return
    metrics.config_reloads.labels("ok").inc()
    logs.setup(config.log.level, config.log.format, worker=app[CONTEXT].extras.get("worker_slot"))
    log.info("SIGHUP: configuration reloaded", extra={"fields": {"needs_restart": restart}})
