"""The telemetry flusher: every `flush_interval` (or sooner when a batch is large) it swaps the
buffer out and writes it in one transaction. A failed write is merged back and retried; the
buffer's bound turns a long outage into 503s for players, never into lost records. On shutdown
`stop()` flushes what is left (retrying until its deadline).
"""

from __future__ import annotations

import asyncio
import logging
import time

from control_plane.context import Context
from control_plane.db import telemetry as telemetry_repo

log = logging.getLogger("oca.control.telemetry")


class Flusher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.flushed_records = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="telemetry-flusher")

    def nudge(self) -> None:
        """Called by the routes when the buffer holds a full batch: flush now rather than at the tick."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), self.ctx.config.telemetry.flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush_once()

    async def flush_once(self) -> bool:
        """Write what is buffered; True on success (or nothing to do)."""
        ctx = self.ctx
        buffer = ctx.buffer
        if buffer.waiting() == 0:
            return True
        batch = buffer.take()
        started = time.perf_counter()
        try:
            async with ctx.engine.begin() as conn:
                await telemetry_repo.write_batch(conn, batch, ctx.clock(),
                                                 half_life=ctx.config.popularity.half_life,
                                                 heartbeat_weight=ctx.config.popularity.heartbeat_weight)
        except asyncio.CancelledError:
            buffer.restore(batch)
            raise
        except Exception as e:  # the database is down or refused: keep the batch, retry next tick
            buffer.restore(batch)
            ctx.metrics.flushes.labels("error").inc()
            log.warning("telemetry flush failed; will retry", extra={"fields": {
                "error": repr(e), "records": batch.records, "pending": buffer.pending}})
            return False
        buffer.done(batch)
        self.flushed_records += batch.records
        ctx.metrics.flushes.labels("ok").inc()
        ctx.metrics.flush_seconds.observe(time.perf_counter() - started)
        ctx.metrics.telemetry_pending.set(buffer.pending)
        return True

    async def stop(self, deadline_s: float = 10.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        end = time.monotonic() + deadline_s
        while self.ctx.buffer.pending and time.monotonic() < end:
            if not await self.flush_once():
                await asyncio.sleep(0.2)
        if self.ctx.buffer.pending:
            log.error("telemetry records could not be flushed before shutdown",
                      extra={"fields": {"records": self.ctx.buffer.pending}})
