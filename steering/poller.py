"""Fetch the fleet snapshot with ETags and swap in each new model that validates.

Outcomes are closed (`PollOutcome`): a fetch error or an invalid snapshot keeps the last good model (the
control plane being down must not take steering down with it), a 304 confirms the model is current.
The build runs in a worker thread so a large snapshot (a million prefixes: seconds) does not stop the
event loop from answering with the previous model meanwhile. `reconfigure` (SIGHUP) swaps the source and
pacing in one assignment and polls at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple

import aiohttp

from steering.fleet import FleetModel, ModelHolder, SnapshotError
from steering.metrics import SteeringMetrics

log = logging.getLogger(__name__)


class PollOutcome(StrEnum):
    UPDATED = "updated"
    NOT_MODIFIED = "not_modified"
    FETCH_ERROR = "fetch_error"
    INVALID = "invalid"


class _Source(NamedTuple):
    url: str
    headers: dict[str, str]
    timeout: aiohttp.ClientTimeout
    interval: float


def _source(url: str, token: str | None, timeout: float, interval: float) -> _Source:
    return _Source(url, {"Authorization": f"Bearer {token}"} if token else {},
                   aiohttp.ClientTimeout(total=timeout), interval)


class SnapshotPoller:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str | None, holder: ModelHolder,
                 metrics: SteeringMetrics, *, timeout: float = 10.0,
                 build: Callable[[bytes], FleetModel] = FleetModel.from_json) -> None:
        self._session, self._holder, self._metrics = session, holder, metrics
        self._source = _source(url, token, timeout, 5.0)
        self._build = build
        self._etag: str | None = None
        self._wake = asyncio.Event()
        self.last_error: str | None = None

    def reconfigure(self, url: str, token: str | None, *, timeout: float, interval: float,
                    refetch: bool = False) -> None:
        """New source and pacing, swapped in one assignment; the next poll starts now. A new URL or token
        (or `refetch`: the build settings changed) forgets the ETag, so the next answer is a full snapshot."""
        new = _source(url, token, timeout, interval)
        if refetch or new.url != self._source.url or new.headers != self._source.headers:
            self._etag = None
        self._source = new
        self._wake.set()

    async def poll_once(self) -> PollOutcome:
        outcome = await self._poll()
        self._metrics.fetches.labels(str(outcome)).inc()
        return outcome

    async def run(self, interval: float) -> None:
        """Poll forever, `interval` seconds apart (the pacing of a periodic job, not synchronisation) or at
        once after `reconfigure`, which also sets the interval from then on."""
        self._source = self._source._replace(interval=interval)
        while True:
            self._wake.clear()
            await self.poll_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._source.interval)

    async def _poll(self) -> PollOutcome:
        source = self._source
        headers = dict(source.headers)
        if self._etag is not None and self._holder.model is not None:
            headers["If-None-Match"] = self._etag
        try:
            async with self._session.get(source.url, headers=headers, timeout=source.timeout) as resp:
                if resp.status == 304:
                    self._holder.confirm()
                    return PollOutcome.NOT_MODIFIED
                if resp.status != 200:
                    return self._failed(f"HTTP {resp.status} from {source.url}", PollOutcome.FETCH_ERROR)
                body = await resp.read()
                etag = resp.headers.get("ETag")
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            return self._failed(f"cannot fetch {source.url}: {e!r}", PollOutcome.FETCH_ERROR)
        started = time.perf_counter()
        try:
            model = await asyncio.get_running_loop().run_in_executor(None, self._build, body)
        except SnapshotError as e:
            return self._failed(str(e), PollOutcome.INVALID)
        self._metrics.build_seconds.set(time.perf_counter() - started)
        previous = self._holder.model
        self._holder.swap(model)
        # Reconfigured meanwhile: this ETag belongs to the old source or settings; fetch afresh.
        self._etag = etag if self._source is source else None
        self.last_error = None
        self._metrics.appliances.set(len(model.appliances))
        for family, count in model.prefixes.counts.items():
            self._metrics.prefixes.labels(family).set(count)
        # Loads and report times change the model every few seconds: only a change of shape is news.
        shape = (len(model.appliances), len(model.prefixes))
        same = previous is not None and (len(previous.appliances), len(previous.prefixes)) == shape
        log.log(logging.DEBUG if same else logging.INFO, "fleet model %s: %d appliances, %d prefixes",
                model.generation, *shape)
        return PollOutcome.UPDATED

    def _failed(self, message: str, outcome: PollOutcome) -> PollOutcome:
        if message != self.last_error:
            log.warning("%s; keeping the last good model", message)
        self.last_error = message
        return outcome
