"""Carry out a fill plan against the store: evict, move, then download with N concurrent fetchers.

The planner decided (fill/planner.py); this shell acts, counts and reports. Evictions run first and
always (a licence that expired must not keep its files for another night); moves and downloads start
only while `may_start()` says so (the window is open and no stop was asked for). Downloads already
running when starting stops are left to finish; `pause()` cancels them, which keeps their partials
for the next run. Blocking store work (remove, move, commit) runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fill.fetcher import Failed, Failure, Fetched, Fetcher, FetchObserver, in_thread
from fill.metrics import FillMetrics
from fill.planner import DropPartial, Evict, Fetch, Move, Plan
from fill.progress import Progress, human_bytes, human_duration, human_rate
from oca.store import Store, StoreError

log = logging.getLogger("oca.fill.runner")


@dataclass
class RunSummary:
    generation: int
    evicted: int = 0
    evicted_bytes: int = 0
    dropped_partials: int = 0   # partial downloads of files no longer wanted
    moved: int = 0
    move_failed: int = 0
    fetched: int = 0
    fetched_bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)      # (key, reason)
    not_started: int = 0        # planned downloads left for a later run (window closed, stop)
    paused: int = 0             # downloads interrupted; their partials resume next time
    skipped: int = 0            # no room (from the plan)
    received: Counter = field(default_factory=Counter)             # bytes by source kind
    elapsed: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.failed and not self.not_started and not self.paused and not self.move_failed

    def lines(self) -> list[str]:
        rate = sum(self.received.values()) / self.elapsed if self.elapsed > 0 else 0.0
        by_kind = ", ".join(f"{k} {human_bytes(v)}" for k, v in sorted(self.received.items())) or "nothing"
        out = [f"fill run for manifest generation {self.generation}: "
               f"{'complete' if self.complete else 'incomplete'} in {human_duration(self.elapsed)}",
               f"  fetched {self.fetched} ({human_bytes(self.fetched_bytes)}); received {by_kind} "
               f"at {human_rate(rate)}",
               f"  evicted {self.evicted} ({human_bytes(self.evicted_bytes)}); moved {self.moved}"
               + (f", {self.move_failed} moves failed" if self.move_failed else "")
               + (f"; dropped {self.dropped_partials} partial downloads" if self.dropped_partials else "")]
        if self.failed:
            out.append(f"  failed {len(self.failed)}: " + ", ".join(f"{k} ({r})" for k, r in self.failed[:10])
                       + (" ..." if len(self.failed) > 10 else ""))
        if self.not_started or self.paused or self.skipped:
            out.append(f"  left for later: {self.not_started} not started, {self.paused} paused; "
                       f"{self.skipped} do not fit")
        return out


class _Observer(FetchObserver):
    def __init__(self, metrics: FillMetrics, progress: Progress | None, summary: RunSummary) -> None:
        self.metrics, self.progress, self.summary = metrics, progress, summary
        self._counters: dict[str, Any] = {}

    def on_bytes(self, source_kind: str, n: int) -> None:
        counter = self._counters.get(source_kind)
        if counter is None:
            counter = self._counters[source_kind] = self.metrics.bytes.labels(source_kind)
        counter.inc(n)
        self.summary.received[source_kind] += n
        if self.progress is not None:
            self.progress.add_bytes(n)

    def on_failure(self, key: str, failure: Failure) -> None:
        self.metrics.source_failures.labels(failure.source_kind, failure.reason).inc()


class Runner:
    def __init__(self, store: Store, fetcher: Fetcher, metrics: FillMetrics, *, concurrency: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.fetcher, self.metrics = store, fetcher, metrics
        self.concurrency, self.clock = concurrency, clock
        self._tasks: set[asyncio.Task] = set()
        self._paused = False

    def pause(self) -> None:
        """Interrupt downloads in flight (their partials stay for the next run)."""
        self._paused = True
        for task in self._tasks:
            task.cancel()

    async def execute(self, plan: Plan, generation: int, *, may_start: Callable[[], bool],
                      progress: Progress | None = None) -> RunSummary:
        started = self.clock()
        self._paused = False
        summary = RunSummary(generation, skipped=len(plan.skipped))
        for skip in plan.skipped:
            self.metrics.skipped.labels(skip.reason.value).inc()
        for action in plan.of(Evict):
            await self._evict(action, summary)
        for action in plan.of(DropPartial):
            if await in_thread(self.store.discard_partial, action.key):
                summary.dropped_partials += 1
                log.info("dropped the partial download of %s (%s): no longer wanted", action.key,
                         human_bytes(action.size))
        for action in plan.of(Move):
            if not may_start() or self._paused:
                break
            await self._move(action, summary)
        fetches = plan.of(Fetch)
        self.fetcher.observer = _Observer(self.metrics, progress, summary)
        await self._fetch_all(fetches, summary, may_start, progress)
        summary.not_started = len(fetches) - summary.fetched - len(summary.failed) - summary.paused
        if summary.not_started:
            self.metrics.skipped.labels("stopped").inc(summary.not_started)
        summary.elapsed = self.clock() - started
        return summary

    async def _evict(self, action: Evict, summary: RunSummary) -> None:
        try:
            removed = await in_thread(self.store.remove, action.key)
        except StoreError as e:
            log.error("evict %s failed: %s", action.key, e)
            return
        if removed:
            summary.evicted += 1
            summary.evicted_bytes += action.size
            self.metrics.evictions.labels(action.reason.value).inc()
            self.metrics.evicted_bytes.inc(action.size)
            log.info("evicted %s (%s, %s, %s)", action.key, action.tier, human_bytes(action.size),
                     action.reason.value)

    async def _move(self, action: Move, summary: RunSummary) -> None:
        try:
            await in_thread(self.store.move, action.key, action.to_tier)
        except StoreError as e:
            summary.move_failed += 1
            self.metrics.moves.labels("failed").inc()
            log.error("move %s %s -> %s failed: %s", action.key, action.from_tier, action.to_tier, e)
            return
        summary.moved += 1
        self.metrics.moves.labels("done").inc()
        log.info("moved %s %s -> %s", action.key, action.from_tier, action.to_tier)

    async def _fetch_all(self, fetches: tuple[Fetch, ...], summary: RunSummary, may_start: Callable[[], bool],
                         progress: Progress | None) -> None:
        queue = deque(fetches)

        async def worker() -> None:
            while queue and may_start() and not self._paused:
                action = queue.popleft()
                task = asyncio.ensure_future(self.fetcher.fetch(action.item, action.tier))
                self._tasks.add(task)
                self.metrics.in_flight.inc()
                try:
                    result = await task
                except asyncio.CancelledError:
                    if not self._paused:
                        raise
                    summary.paused += 1
                    log.info("paused %s (partial kept for the next run)", action.key)
                    continue
                finally:
                    self._tasks.discard(task)
                    self.metrics.in_flight.dec()
                self._finished(action, result, summary, progress)

        workers = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(fetches)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*workers, *self._tasks, return_exceptions=True)

    def _finished(self, action: Fetch, result: Fetched | Failed, summary: RunSummary,
                  progress: Progress | None) -> None:
        match result:
            case Fetched(source_kind=kind, received=received, resumed_from=resumed):
                summary.fetched += 1
                summary.fetched_bytes += action.size
                self.metrics.items.labels("done").inc()
                log.info("fetched %s (%s) from %s%s", action.key, human_bytes(action.size), kind,
                         f", resumed at {resumed}" if resumed else "")
                if progress is not None:
                    # bytes that were already in a partial count as done too
                    progress.add_bytes(max(0, action.size - received))
                    progress.item_finished(True)
            case Failed(reason=reason):
                summary.failed.append((action.key, reason))
                self.metrics.items.labels("failed").inc()
                log.error("fetch %s failed after %d attempt(s): %s", action.key, len(result.failures), reason)
                if progress is not None:
                    progress.item_finished(False, size_left=action.size)
