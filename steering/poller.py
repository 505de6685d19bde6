"""Fetch the fleet snapshot with ETags and swap in each new model that validates.

Outcomes are closed (`PollOutcome`): a fetch error or an invalid snapshot keeps the last good model (the
control plane being down must not take steering down with it), a 304 confirms the model is current.
The build runs in a worker thread so a large snapshot (a million prefixes: seconds) does not stop the
event loop from answering with the previous model meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum

import aiohttp

from steering.fleet import FleetModel, ModelHolder, SnapshotError
from steering.metrics import SteeringMetrics

log = logging.getLogger(__name__)


class PollOutcome(StrEnum):
    UPDATED = "updated"
    NOT_MODIFIED = "not_modified"
    FETCH_ERROR = "fetch_error"
    INVALID = "invalid"


class SnapshotPoller:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str | None, holder: ModelHolder,
                 metrics: SteeringMetrics, *, timeout: float = 10.0,
                 build: Callable[[bytes], FleetModel] = FleetModel.from_json) -> None:
        self._session, self._url, self._holder, self._metrics = session, url, holder, metrics
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._build = build
        self._etag: str | None = None
        self.last_error: str | None = None

    async def poll_once(self) -> PollOutcome:
        outcome = await self._poll()
        self._metrics.fetches.labels(str(outcome)).inc()
        return outcome

    async def run(self, interval: float) -> None:
        """Poll forever, `interval` seconds apart (the pacing of a periodic job, not synchronisation)."""
        while True:
            await self.poll_once()
            await asyncio.sleep(interval)

    async def _poll(self) -> PollOutcome:
        headers = dict(self._headers)
        if self._etag is not None and self._holder.model is not None:
            headers["If-None-Match"] = self._etag
        try:
            async with self._session.get(self._url, headers=headers, timeout=self._timeout) as resp:
                if resp.status == 304:
                    self._holder.confirm()
                    return PollOutcome.NOT_MODIFIED
                if resp.status != 200:
                    return self._failed(f"HTTP {resp.status} from {self._url}", PollOutcome.FETCH_ERROR)
                body = await resp.read()
                etag = resp.headers.get("ETag")
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            return self._failed(f"cannot fetch {self._url}: {e!r}", PollOutcome.FETCH_ERROR)
        started = time.perf_counter()
        try:
            model = await asyncio.get_running_loop().run_in_executor(None, self._build, body)
        except SnapshotError as e:
            return self._failed(str(e), PollOutcome.INVALID)
        self._metrics.build_seconds.set(time.perf_counter() - started)
        self._holder.swap(model)
        self._etag = etag
        self.last_error = None
        self._metrics.appliances.set(len(model.appliances))
        for family, count in model.prefixes.counts.items():
            self._metrics.prefixes.labels(family).set(count)
        log.info("fleet model %s: %d appliances, %d prefixes", model.generation, len(model.appliances),
                 len(model.prefixes))
        return PollOutcome.UPDATED

    def _failed(self, message: str, outcome: PollOutcome) -> PollOutcome:
        if message != self.last_error:
            log.warning("%s; keeping the last good model", message)
        self.last_error = message
        return outcome
