"""The fill agent: one run (manifest → plan → execute → summary) and the service loop around the window.

`Agent.run_once` is what `oca-fill run --once` does. `Agent.serve` is the long-running service:
it sleeps until this appliance's window opens, runs, looks for a new manifest every `poll_interval`
while the window is open (a 304 costs nothing; failed items are retried), retries an unreachable
control plane every `retry_interval`, and stops starting downloads when the window closes (the ones
in flight may finish for `drain_timeout`, then pause). `stop()` does the same for SIGTERM.
`reload()` (SIGHUP) swaps in a new configuration: the rate cap at once, the rest from the next cycle;
downloads in flight go on.

The clock, the session and the registry are injected (tests drive them); the store is opened once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from enum import Enum

import aiohttp

from fill.config import FillConfig
from fill.controlplane import Fresh, ManifestCache, NotModified, Rejected, Unreachable, fetch_manifest
from fill.fetcher import Fetcher
from fill.manifest import Manifest
from fill.metrics import FillMetrics
from fill.planner import Fetch, Held, Plan, Staged, plan
from fill.progress import Progress
from fill.runner import Runner, RunSummary
from fill.throttle import TokenBucket
from fill.window import Closed, Open
from oca.store import Store

log = logging.getLogger("oca.fill")


class CycleStatus(Enum):
    COMPLETE = "complete"           # everything planned is done
    INCOMPLETE = "incomplete"       # some items failed, or the run was stopped before the end
    UNREACHABLE = "unreachable"     # no manifest: the store was left as it was
    REJECTED = "rejected"


@dataclass(frozen=True)
class CycleResult:
    status: CycleStatus
    summary: RunSummary | None = None
    plan: Plan | None = None
    reason: str = ""


def inventory(store: Store) -> tuple[list[Held], dict[str, int], list[Staged]]:
    """What the planner needs from the store: held files on healthy disks, capacity of healthy disks,
    and the partial downloads (none a process is writing right now).

    Files on a failed disk are left out (they cannot be served; the plan may fetch them again onto the
    healthy disks), and so is that disk's capacity."""
    usage = store.usage()
    ok_disks = {u.id for u in usage if u.state == "ok"}
    capacity: dict[str, int] = {}
    for u in usage:
        capacity.setdefault(u.tier, 0)
        if u.id in ok_disks:
            capacity[u.tier] += u.capacity
    held = [Held(e.key, e.tier, e.size, e.sha256, e.state == "ready") for e in store.entries()
            if e.disk in ok_disks]
    staged = [Staged(p.key, p.sha256, p.have) for p in store.partials() if not p.in_use]
    return held, capacity, staged


class Agent:
    def __init__(self, config: FillConfig, store: Store, session: aiohttp.ClientSession, metrics: FillMetrics, *,
                 wall_clock: Callable[[], float] = time.time, tty: bool | None = None) -> None:
        self.config, self.store, self.session, self.metrics = config, store, session, metrics
        self.wall_clock = wall_clock
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.cache = ManifestCache(config.state_dir, config.control_plane.appliance_id)
        self.throttle = TokenBucket(config.rate.rate_bytes(self.local_now()), burst=config.burst)
        self.fetcher = Fetcher(session, store, self.throttle, config.fetch)
        self.runner = Runner(store, self.fetcher, metrics, concurrency=config.fetch.concurrency)
        self._stopping = asyncio.Event()
        self._reloaded = asyncio.Event()
        self._update_rate()

    # -- time -----------------------------------------------------------------------------------------
    def local_now(self) -> datetime:
        t = self.wall_clock()
        return datetime.fromtimestamp(t, self.config.timezone) if self.config.timezone else \
            datetime.fromtimestamp(t).astimezone()

    def window_state(self) -> Open | Closed:
        if self.config.window is None:
            return Open(self.local_now() + timedelta(days=1))
        return self.config.window.state(self.local_now())

    def _update_rate(self) -> None:
        rate = self.config.rate.rate_bytes(self.local_now())
        self.throttle.set_rate(rate)
        self.metrics.rate_limit.set(rate or 0)

    # -- stopping -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop starting new work; in-flight downloads go on until `pause` (the CLI calls it later)."""
        if not self._stopping.is_set():
            log.info("stopping: no new downloads; in-flight ones finish or pause")
        self._stopping.set()

    def pause(self) -> None:
        self.runner.pause()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- reload ---------------------------------------------------------------------------------------
    def reload(self, new: FillConfig) -> tuple[list[str], list[str]]:
        """Use `new` from now on (SIGHUP). Returns (keys that changed and apply, keys that need a restart).

        The store and the admin port stay as they are (they need a restart). The rate cap applies at
        once; window, fetch settings, control plane and intervals from the next cycle — a wait in
        progress is recomputed with the new intervals and window. Downloads in flight are not touched."""
        old = self.config
        restart = []
        if new.store != old.store or new.store_config != old.store_config:
            restart.append("store_config")
        if new.metrics_listen != old.metrics_listen:
            restart.append("metrics.listen")
        new = replace(new, store=old.store, store_config=old.store_config, metrics_listen=old.metrics_listen)
        changed = []
        for f in fields(FillConfig):
            a, b = getattr(old, f.name), getattr(new, f.name)
            if f.name == "file" or a == b:
                continue
            if f.name in ("control_plane", "fetch"):      # name the keys (never the values: the token)
                changed += [f"{f.name}.{g.name}" for g in fields(a) if getattr(a, g.name) != getattr(b, g.name)]
            else:
                changed.append(f.name)
        self.config = new
        if new.state_dir != old.state_dir or new.control_plane.appliance_id != old.control_plane.appliance_id:
            self.cache = ManifestCache(new.state_dir, new.control_plane.appliance_id)
        self.fetcher.configure(new.fetch)
        self.runner.concurrency = new.fetch.concurrency
        self.throttle.set_burst(new.burst)
        self._update_rate()
        self._reloaded.set()
        return changed, restart

    # -- one run --------------------------------------------------------------------------------------
    async def run_once(self, *, respect_window: bool = False) -> CycleResult:
        """Fetch the manifest, plan and execute. With `respect_window`, starting stops when the window closes."""
        got = await self._manifest()
        if isinstance(got, CycleResult):
            return await self._finish(got)
        manifest = got
        held, capacity, staged = await asyncio.to_thread(inventory, self.store)
        the_plan = plan(manifest, held, capacity, default_tier=self.store.config.default_tier, staged=staged)
        if the_plan.empty:
            log.info("manifest generation %d: nothing to do (%d held, %d skipped)", manifest.generation,
                     the_plan.kept, len(the_plan.skipped))
        state = self.window_state()
        closes_at = state.closes_at if respect_window and isinstance(state, Open) else None

        def may_start() -> bool:
            if self._stopping.is_set():
                return False
            return closes_at is None or self.local_now() < closes_at

        pause_at_close = None
        if closes_at is not None:
            # the window closed: downloads still running get drain_timeout to finish, then pause
            delay = closes_at.timestamp() - self.wall_clock() + self.config.fetch.drain_timeout
            pause_at_close = asyncio.get_running_loop().call_later(max(0.0, delay), self.runner.pause)
        try:
            summary = await self._execute(the_plan, manifest.generation, may_start)
        finally:
            if pause_at_close is not None:
                pause_at_close.cancel()
        for line in summary.lines():
            log.info("%s", line)
        status = CycleStatus.COMPLETE if summary.complete else CycleStatus.INCOMPLETE
        return await self._finish(CycleResult(status, summary, the_plan))

    async def _manifest(self) -> Manifest | CycleResult:
        """The manifest to act on, or the result of a run that cannot act (the store stays as it is)."""
        fetched = await fetch_manifest(self.session, self.config.control_plane, self.cache)
        match fetched:
            case Unreachable(reason=reason):
                self.metrics.manifest_fetches.labels("unreachable").inc()
                log.warning("control plane unreachable (%s): keeping the store as it is", reason)
                return CycleResult(CycleStatus.UNREACHABLE, reason=reason)
            case Rejected(reason=reason):
                self.metrics.manifest_fetches.labels("rejected").inc()
                log.error("manifest rejected (%s): keeping the store and the last good manifest", reason)
                return CycleResult(CycleStatus.REJECTED, reason=reason)
            case Fresh(manifest=manifest):
                self.metrics.manifest_fetches.labels("fresh").inc()
                log.info("manifest generation %d: %d items", manifest.generation, len(manifest.items))
            case NotModified(manifest=manifest):
                self.metrics.manifest_fetches.labels("not_modified").inc()
        self.metrics.manifest_generation.set(manifest.generation)
        return manifest

    async def _finish(self, result: CycleResult) -> CycleResult:
        """Record the run in the metrics (and the textfile, for node-exporter alerts on failed runs)."""
        self.metrics.last_run_end.set(self.wall_clock())
        self.metrics.last_run_success.set(1 if result.status is CycleStatus.COMPLETE else 0)
        if self.config.metrics_textfile is not None:
            await asyncio.to_thread(self.metrics.write_textfile, self.config.metrics_textfile)
        return result

    async def _execute(self, the_plan: Plan, generation: int, may_start: Callable[[], bool]) -> RunSummary:
        progress = None
        ticker = None
        if the_plan.fetch_bytes:
            progress = Progress(len(the_plan.of(Fetch)), the_plan.fetch_bytes,
                                stream=sys.stderr if self.tty else None, log_interval=self.config.log_interval)
            ticker = asyncio.create_task(progress.ticker())
        rate_task = asyncio.create_task(self._rate_ticker())
        try:
            return await self.runner.execute(the_plan, generation, may_start=may_start, progress=progress)
        finally:
            rate_task.cancel()
            if ticker is not None:
                ticker.cancel()
            await asyncio.gather(rate_task, *([ticker] if ticker else []), return_exceptions=True)
            if progress is not None:
                progress.close()

    async def _rate_ticker(self) -> None:
        while True:
            await asyncio.sleep(10)
            self._update_rate()

    # -- the service ------------------------------------------------------------------------------------
    async def serve(self) -> None:
        """Run in every window until `stop()`."""
        while not self.stopping:
            state = self.window_state()
            self.metrics.window_open.set(1 if isinstance(state, Open) else 0)
            if isinstance(state, Closed):
                log.info("fill window closed; opens at %s", state.opens_at.isoformat(timespec="minutes"))
                await self._wait(state.opens_at.timestamp() - self.wall_clock())
                continue
            self._update_rate()
            result = await self.run_once(respect_window=True)
            ran_at = self.wall_clock()
            failed = result.status in (CycleStatus.UNREACHABLE, CycleStatus.REJECTED)
            while not self.stopping:
                # recomputed after a reload: new intervals or a new window count from the end of the run
                cp = self.config.control_plane
                wait = ran_at + (cp.retry_interval if failed else cp.poll_interval) - self.wall_clock()
                state = self.window_state()
                if isinstance(state, Open):
                    # wake up at the window's end too, to report it closed
                    wait = min(wait, max(1.0, state.closes_at.timestamp() - self.wall_clock()))
                else:
                    wait = 0.0
                if not await self._wait(wait):
                    break

    async def _wait(self, seconds: float) -> bool:
        """Sleep `seconds` or until `stop()`; True if a reload cut the sleep short (recompute it)."""
        self._reloaded.clear()
        if seconds <= 0 or self.stopping:
            return False
        waits = [asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._reloaded.wait())]
        try:
            await asyncio.wait(waits, timeout=min(seconds, 3600.0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return self._reloaded.is_set() and not self.stopping
