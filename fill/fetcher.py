"""Download one manifest item into the store: sources in order, resume, verify, publish.

For each source (peers first, origin last, as the manifest orders them) up to `attempts_per_source`
attempts, with exponential backoff between them. An attempt resumes the item's staging file:

* ``Range: bytes=<offset>-`` from where the partial ends, with ``If-Range: <ETag>`` when the partial
  came with a strong ETag, so a source whose file changed answers 200 with the whole file
  (RFC 9110 §13.1.5: If-Range needs a strong validator) and the partial restarts from 0. A partial
  without a validator is resumed with Range alone: the SHA-256 in the manifest still pins the bytes.
* the body is streamed in bounded pieces through the shared token bucket into `Staging.write`, which
  hashes as it writes; writes run in a worker thread so hashing and disk I/O do not stall the loop.
* `Staging.commit` checks size and SHA-256 and publishes atomically; on a mismatch the store deletes
  the partial and the next source is tried from 0.

Outcomes per attempt are closed: the body is complete; a transient failure worth retrying at the same
source (connection error, timeout, 5xx, 429, a body cut short — what arrived is kept); or a failure
that moves on to the next source (404 and other 4xx, a size that disagrees with the manifest, bytes
that fail verification). Cancellation (stop, window end) leaves the partial in place for the next run.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from fill.config import FetchConfig
from fill.manifest import Item, Source
from fill.throttle import TokenBucket
from oca.store import Entry, Staging, Store, StoreError, TierFull, VerifyFailed

log = logging.getLogger("oca.fill.fetcher")
FLUSH_BYTES = 1 << 20          # write to disk in pieces of about this size (bounded memory per download)
READ_BUFSIZE = 1 << 20         # aiohttp's per-response buffer: big reads, few pause/resume cycles
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


# -- outcomes -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Complete:
    """The staging file holds `size` bytes: ready to verify and publish."""


@dataclass(frozen=True)
class Retry:
    reason: str                 # short, for metrics labels: "connect", "timeout", "status_503", "short_body"
    detail: str = ""


@dataclass(frozen=True)
class NextSource:
    reason: str                 # "status_404", "size_mismatch", "bad_content_range", "corrupt", ...
    detail: str = ""


AttemptOutcome = Complete | Retry | NextSource


@dataclass(frozen=True)
class Failure:
    source_kind: str
    url: str                    # without the query string (signed tokens stay out of logs)
    reason: str
    detail: str


@dataclass(frozen=True)
class Fetched:
    key: str
    entry: Entry
    source_kind: str
    received: int               # bytes received over the network for this item in this run
    resumed_from: int           # bytes already in the partial when the successful attempt began
    failures: tuple[Failure, ...] = ()


@dataclass(frozen=True)
class Failed:
    key: str
    reason: str                 # the last failure's reason, or "tier_full" / "store_error"
    failures: tuple[Failure, ...] = ()


FetchResult = Fetched | Failed


class FetchObserver:
    """What the fetcher tells the runner (metrics, progress). Subclass and override what you need."""

    def on_bytes(self, source_kind: str, n: int) -> None: ...

    def on_failure(self, key: str, failure: Failure) -> None: ...


def client_session() -> aiohttp.ClientSession:
    """The session downloads use: no transparent decompression (bytes are hashed as sent), 1 MiB reads.
    Memory per download stays bounded: about READ_BUFSIZE buffered plus FLUSH_BYTES pending."""
    return aiohttp.ClientSession(auto_decompress=False, read_bufsize=READ_BUFSIZE)


def redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def backoff_delay(attempt: int, initial: float, maximum: float, rand: float) -> float:
    """Delay before retry number `attempt` (1, 2, ...): exponential, capped, with 50–100 % jitter."""
    return min(maximum, initial * 2 ** (attempt - 1)) * (0.5 + rand / 2)


def strong_etag(value: str | None) -> str | None:
    """The ETag if it is strong (RFC 9110 §8.8.3), else None: a weak one must not go into If-Range."""
    if value and value.startswith('"') and value.endswith('"') and len(value) >= 2:
        return value
    return None


def check_partial_response(status: int, headers: Any, offset: int, size: int) -> AttemptOutcome | None:
    """Decide from status and headers alone. None: stream the body (after truncating when status is 200)."""
    if status == 200:
        length = headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) != size):
            return NextSource("size_mismatch", f"Content-Length {length}, manifest says {size}")
        return None
    if status == 206:
        m = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
        if m is None:
            return NextSource("bad_content_range", f"Content-Range {headers.get('Content-Range')!r}")
        first, last, total = int(m.group(1)), int(m.group(2)), m.group(3)
        if total != "*" and int(total) != size:
            return NextSource("size_mismatch", f"Content-Range total {total}, manifest says {size}")
        if first != offset or last != size - 1:
            return NextSource("bad_content_range", f"asked for bytes={offset}-, got {first}-{last}")
        return None
    if status == 429 or status >= 500:
        return Retry(f"status_{status}")
    return NextSource(f"status_{status}")


async def in_thread(fn: Callable[..., Any], *args: Any, discard: Callable[[Any], None] | None = None) -> Any:
    """Run blocking file work in a thread. If we are cancelled meanwhile, let it finish first, so the
    staging file is never closed under a write in progress; `discard` disposes of a result nobody will
    get (a staging file opened just as the download was cancelled: close it, or its lock stays held)."""
    fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        if discard is not None and fut.exception() is None:
            discard(fut.result())
        raise


@dataclass
class _Progress:
    received: int = 0
    failures: list[Failure] = field(default_factory=list)


class Fetcher:
    def __init__(self, session: aiohttp.ClientSession, store: Store, throttle: TokenBucket, config: FetchConfig,
                 *, observer: FetchObserver | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.session, self.store, self.throttle = session, store, throttle
        self.observer = observer or FetchObserver()
        self._sleep, self._rand = sleep, rand
        self.configure(config)

    def configure(self, config: FetchConfig) -> None:
        """Use `config` from the next attempt on (a reload); attempts in flight keep their timeouts."""
        self.config = config
        self._timeout = aiohttp.ClientTimeout(total=None, connect=config.connect_timeout,
                                              sock_connect=config.connect_timeout, sock_read=config.read_timeout)

    async def fetch(self, item: Item, tier: str) -> FetchResult:
        """Bring `item` into the store on `tier`, or say why not."""
        progress = _Progress()
        staging: Staging | None = None
        try:
            for source in item.sources:
                for attempt in range(self.config.attempts_per_source):
                    if attempt:
                        await self._sleep(backoff_delay(attempt, self.config.backoff_initial,
                                                        self.config.backoff_max, self._rand()))
                    if staging is None:
                        staging = await in_thread(self._stage, item, tier, discard=Staging.close)
                    started_at = staging.offset
                    outcome = await self._attempt(source, staging, progress)
                    if isinstance(outcome, Complete):
                        try:
                            entry = await in_thread(staging.commit)
                        except VerifyFailed as e:           # the store deleted the partial
                            staging = None
                            outcome = NextSource("corrupt", str(e))
                        else:
                            staging = None
                            return Fetched(item.key, entry, source.kind, progress.received, started_at,
                                           tuple(progress.failures))
                    self._record(item, source, outcome, progress)
                    if isinstance(outcome, NextSource):
                        break
        except TierFull as e:
            return Failed(item.key, "tier_full", (*progress.failures, Failure("", "", "tier_full", str(e))))
        except StoreError as e:
            return Failed(item.key, "store_error", (*progress.failures, Failure("", "", "store_error", str(e))))
        except OSError as e:                                # the disk: ENOSPC, EIO (network errors are caught above)
            log.error("fill %s: disk error: %s", item.key, e)
            return Failed(item.key, "io_error", (*progress.failures, Failure("", "", "io_error", str(e))))
        finally:
            if staging is not None:
                staging.close()                              # keeps the partial for the next run
        last = progress.failures[-1].reason if progress.failures else "no_source"
        return Failed(item.key, last, tuple(progress.failures))

    def _stage(self, item: Item, tier: str) -> Staging:
        return self.store.stage(item.key, size=item.size, sha256=item.sha256, tier=tier)

    def _record(self, item: Item, source: Source, outcome: Retry | NextSource, progress: _Progress) -> None:
        failure = Failure(source.kind, redact(source.url), outcome.reason, outcome.detail)
        progress.failures.append(failure)
        self.observer.on_failure(item.key, failure)
        log.warning("fill %s from %s %s: %s %s", item.key, source.kind, failure.url, outcome.reason, outcome.detail)

    async def _attempt(self, source: Source, staging: Staging, progress: _Progress) -> AttemptOutcome:
        if staging.offset == staging.size:
            return Complete()
        headers = {"Accept-Encoding": "identity"}
        if staging.offset:
            headers["Range"] = f"bytes={staging.offset}-"
            if staging.validator:
                headers["If-Range"] = staging.validator
        try:
            async with self.session.get(source.url, headers=headers, timeout=self._timeout) as resp:
                decision = check_partial_response(resp.status, resp.headers, staging.offset, staging.size)
                if decision is not None:
                    return decision
                if resp.status == 200 and staging.offset:
                    await in_thread(staging.truncate)   # no range, or If-Range said the file changed
                etag = strong_etag(resp.headers.get("ETag"))
                if etag != staging.validator:
                    await in_thread(staging.set_validator, etag)
                return await self._stream(resp, source.kind, staging, progress)
        except aiohttp.ClientPayloadError as e:
            return Retry("short_body", str(e))
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            return Retry("timeout", str(e) or type(e).__name__)
        except aiohttp.ClientConnectionError as e:
            return Retry("connect", str(e) or type(e).__name__)
        except aiohttp.ClientError as e:
            return Retry("http_error", str(e) or type(e).__name__)

    async def _stream(self, resp: aiohttp.ClientResponse, kind: str, staging: Staging,
                      progress: _Progress) -> AttemptOutcome:
        pending: list[bytes] = []
        pending_len = 0
        try:
            # iter_chunks hands over aiohttp's buffers one by one; iter_any would join them (a copy)
            async for piece, _ in resp.content.iter_chunks():
                await self.throttle.acquire(len(piece))
                self.observer.on_bytes(kind, len(piece))
                progress.received += len(piece)
                pending.append(piece)
                pending_len += len(piece)
                if staging.offset + pending_len > staging.size:
                    # more bytes than the manifest's size: another file; what came from here is suspect
                    await in_thread(staging.truncate)
                    return NextSource("too_long", f"more than the expected {staging.size} bytes")
                if pending_len >= FLUSH_BYTES:
                    await in_thread(_write_all, staging, pending)
                    pending, pending_len = [], 0
        except BaseException:
            # keep what arrived before a cut, a stall or a cancel: the next attempt resumes after it
            if pending:
                await in_thread(_write_all, staging, pending)
            raise
        if pending:
            await in_thread(_write_all, staging, pending)
        if staging.offset < staging.size:
            return Retry("short_body", f"body ended at {staging.offset} of {staging.size} bytes")
        return Complete()


def _write_all(staging: Staging, pieces: list[bytes]) -> None:
    """One thread hop for many pieces; each is hashed and written as it is (no joining copy)."""
    for piece in pieces:
        staging.write(piece)
