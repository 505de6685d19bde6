"""One edge worker process: its own SO_REUSEPORT listening socket, the protocol, periodic chores.

Started by the supervisor (`oca.supervisor`) as ``python -m oca.worker``; never by hand. It reports
to the supervisor over a pipe (JSON lines: ``ready``, ``metrics`` about once a second, ``reloaded``),
and obeys signals the supervisor forwards:

- SIGTERM / SIGINT: stop accepting (close the listening socket), close idle connections, let busy
  ones finish their current response, exit when none is left or after ``server.drain_timeout``.
- SIGHUP: re-read the config file and the key ring, reopen the index; connections stay open.
- SIGUSR1: reopen the access log (after logrotate moved it).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import logging
import os
import resource
import signal
import socket
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from time import monotonic

import uvloop

from oca import tokens
from oca.accesslog import AccessLog
from oca.applog import setup_json_logging
from oca.config import ConfigError, EdgeConfig, StoreConfig, load_oca_config
from oca.files import FdCache, IndexSource, IndexView, RootSource, StoreSource, tree_signature
from oca.http.handler import Context
from oca.http.protocol import EdgeProtocol, Shared
from oca.http.response import Clock
from oca.metrics import WorkerMetrics
from oca.serve_spec import ServeSpec

log = logging.getLogger("oca.worker")
REPORT_INTERVAL = 1.0


def listen_socket(host: str, port: int, backlog: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT, so every worker can have its own (created with
    IPPROTO_TCP so asyncio and uvloop treat it as TCP: EDGE_PERF.md, TCP_NODELAY)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        if listen:
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Loaded:
    """What a (re)load produces: edge config, key ring, and how to open the index source."""

    def __init__(self, edge: EdgeConfig, ring: tokens.KeyRing | None, store_config: StoreConfig | None) -> None:
        self.edge, self.ring, self.store_config = edge, ring, store_config


def load(spec: ServeSpec) -> Loaded:
    """Read and validate the configuration and key ring the spec names (raises ConfigError)."""
    if spec.config_path is not None:
        config = load_oca_config(spec.config_path)
        edge = config.edge
        ring = tokens.load_key_ring(str(edge.tokens.keys_file)) if edge.tokens.mode == "require" else None
        return Loaded(edge, ring, config.store)
    return Loaded(spec.edge, None, None)


def open_source(spec: ServeSpec, store_config: StoreConfig | None) -> IndexSource:
    """Open the index: the store's LMDB (in the worker, never inherited) or the scanned root dir."""
    if store_config is not None:
        from oca.store import Store

        return StoreSource(Store.open(store_config, cleanup=False))
    return RootSource(spec.root)


class Worker:
    def __init__(self, spec: ServeSpec, slot: int, status_fd: int) -> None:
        self.spec, self.slot, self.status_fd = spec, slot, status_fd
        self.metrics = WorkerMetrics()
        self.stopping = asyncio.Event()
        self.status: asyncio.WriteTransport | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hits")
        self._hits_future: Future | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loaded = load(self.spec)
        edge = loaded.edge
        self.store_config = loaded.store_config
        self.fds = FdCache(edge.files.open_files)
        view = IndexView(open_source(self.spec, loaded.store_config), self.fds)
        self.ctx = Context(edge, loaded.ring, view, Clock())
        self.access = AccessLog(edge.log.access_log, buffer_bytes=edge.log.buffer_bytes) \
            if edge.log.access_log else None
        self.shared = Shared(self.ctx, self.fds, self.metrics, self.access, on_closed=self._on_closed)
        host, port = self.spec.listen
        sock = listen_socket(host, port, edge.server.backlog)
        self.server = await loop.create_server(lambda: EdgeProtocol(self.shared), sock=sock)
        self.status, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(self.status_fd, "wb", 0))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        loop.add_signal_handler(signal.SIGUSR1, self.reopen_log)
        # Long-lived objects built so far never need collecting; fewer, cheaper collections keep
        # the cyclic GC from adding pauses to responses (the hot path allocates few cycles).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20000, 50, 100)
        self._send({"event": "ready", "pid": os.getpid()})
        chores = asyncio.create_task(self._chores())
        rescans = asyncio.create_task(self._rescan()) if self.spec.root and self.spec.rescan else None
        await self.stopping.wait()
        await self._drain()
        chores.cancel()
        if rescans is not None:
            rescans.cancel()
        await self._hits_idle()
        self._flush_hits()
        await self._hits_idle()
        self._executor.shutdown()
        self._send({"event": "metrics", "snapshot": self._snapshot()})
        if self.access is not None:
            self.access.close()
        self.ctx.view.source.close()
        self.status.close()
        return 0

    # -- periodic work ----------------------------------------------------------------------------
    async def _rescan(self) -> None:
        """`--root --rescan`: index the directory again when its tree changed (an origin serving what
        ingest publishes). The walk and the scan run in a thread; only the swap is in the loop."""
        loop = asyncio.get_running_loop()
        root = self.spec.root
        seen = await loop.run_in_executor(None, tree_signature, root)
        while True:
            await asyncio.sleep(self.spec.rescan)
            now = await loop.run_in_executor(None, tree_signature, root)
            if now == seen and now is not None:     # None: changed just now, maybe again in the same tick
                continue
            source = await loop.run_in_executor(None, RootSource, root)
            self.ctx.view.swap_source(source).close()
            seen = now
            log.info("rescanned %s: %d files", root, len(source.files))

    async def _chores(self) -> None:
        edge = self.ctx.config
        lim = edge.limits
        tick = max(0.05, min(0.5, lim.header_timeout / 4, lim.idle_timeout / 4, lim.send_timeout / 4,
                             edge.files.refresh_interval))
        next_report = next_flush = next_refresh = next_hits = monotonic()
        while True:
            await asyncio.sleep(tick)
            edge = self.ctx.config
            now = monotonic()
            for conn in list(self.shared.connections):
                conn.sweep(now)
            if now >= next_refresh:
                next_refresh = now + edge.files.refresh_interval
                try:
                    self.ctx.view.refresh()
                except Exception:
                    log.exception("index refresh failed")
            if self.access is not None and now >= next_flush:
                next_flush = now + edge.log.flush_interval
                self.access.flush()
            if now >= next_hits:
                next_hits = now + edge.files.hits_flush_interval
                self._flush_hits()
            if now >= next_report:
                next_report = now + REPORT_INTERVAL
                self._send({"event": "metrics", "snapshot": self._snapshot()})

    def _snapshot(self) -> dict:
        if self.access is not None:
            self.metrics.log_dropped = self.access.dropped_lines
        return self.metrics.snapshot()

    def _flush_hits(self) -> None:
        """Hand the per-key hit counts to a thread: an LMDB write commits with fsync, which must
        not stall the event loop (it showed as p99 spikes). One write at a time; counts keep
        accumulating meanwhile."""
        if self._hits_future is not None and not self._hits_future.done():
            return
        hits, self.shared.key_hits = self.shared.key_hits, {}
        if hits:
            self._hits_future = self._executor.submit(_record_hits, self.ctx.view.source, hits)

    async def _hits_idle(self) -> None:
        if self._hits_future is not None:
            await asyncio.wrap_future(self._hits_future)

    def _send(self, message: dict) -> None:
        if self.status is not None and not self.status.is_closing():
            message["slot"] = self.slot
            self.status.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    # -- signals ----------------------------------------------------------------------------------
    def reload(self) -> None:
        asyncio.ensure_future(self._reload())

    async def _reload(self) -> None:
        """SIGHUP: build the new config and ring off to the side, reopen the index, swap them in."""
        try:
            loaded = load(self.spec)
        except (ConfigError, OSError) as e:
            log.error("reload failed, keeping the running configuration: %s", e)
            self._send({"event": "reloaded", "ok": False, "error": str(e)})
            return
        # LMDB allows one handle per environment and process: close the index, then open it again
        # (with the new [store] settings; if that fails, with the old ones). Not under a hits write.
        await self._hits_idle()
        view = self.ctx.view
        view.source.close()
        try:
            view.swap_source(open_source(self.spec, loaded.store_config))
            self.store_config = loaded.store_config
        except Exception as e:
            log.error("reload: cannot open the index with the new settings (%s); reopening the old one", e)
            view.swap_source(open_source(self.spec, self.store_config))
            self._send({"event": "reloaded", "ok": False, "error": str(e)})
            return
        old_log = self.ctx.config.log.access_log
        self.ctx.configure(loaded.edge, loaded.ring)
        if loaded.edge.log.access_log != old_log:
            if self.access is not None:
                self.access.close()
            self.access = AccessLog(loaded.edge.log.access_log, buffer_bytes=loaded.edge.log.buffer_bytes) \
                if loaded.edge.log.access_log else None
            self.shared.access = self.access
        log.info("reloaded configuration, key ring and index")
        self._send({"event": "reloaded", "ok": True})

    def reopen_log(self) -> None:
        if self.access is not None:
            self.access.reopen()

    async def _drain(self) -> None:
        self.ctx.draining = True
        self.server.close()  # stop accepting: the other workers' sockets take new connections
        for conn in list(self.shared.connections):
            conn.drain()
        self._drained = asyncio.Event()
        self._on_closed()
        try:
            await asyncio.wait_for(self._drained.wait(), self.ctx.config.server.drain_timeout)
        except TimeoutError:
            left = list(self.shared.connections)
            log.warning("drain timeout: closing %d connections with responses in flight", len(left))
            for conn in left:
                conn.abort()
            await asyncio.sleep(0)

    def _on_closed(self) -> None:
        drained = getattr(self, "_drained", None)
        if drained is not None and not self.shared.connections:
            drained.set()


def _die_with_parent() -> None:
    """Ask Linux for SIGTERM (a normal drain) if the supervisor dies, so no orphan keeps the port."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the supervisor was already gone before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _record_hits(source: IndexSource, hits: dict[str, int]) -> None:
    try:
        source.record_hits(hits)
    except Exception:
        log.exception("could not record %d hit counters", len(hits))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oca-worker")
    parser.add_argument("--spec", required=True, help="JSON ServeSpec written by the supervisor")
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--status-fd", type=int, required=True)
    args = parser.parse_args(argv)
    spec = ServeSpec.from_json(Path(args.spec).read_text()) if not args.spec.startswith("{") \
        else ServeSpec.from_json(args.spec)
    setup_json_logging(spec.log_level, worker=args.slot)
    _die_with_parent()
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # every connection is a descriptor (plus the cached files): take what we may
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except OSError as e:    # a seccomp filter denying @resources (the origin's unit): keep the soft one
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, hard, e)
    try:
        return uvloop.run(Worker(spec, args.slot, args.status_fd).run())
    except ConfigError as e:
        log.error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
