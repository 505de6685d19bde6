"""The fill rate cap: one token bucket shared by every concurrent download.

Each download asks the bucket for the bytes of a chunk before writing it. Tokens accrue at `rate`
bytes per second up to `burst`; a request larger than what is there goes into debt and waits until the
debt is paid, so a chunk bigger than the burst still works. The bucket starts empty, and idle time earns at
most one burst (0.1 s of rate), so over any period the bytes granted are at most rate × period + one burst:
over a minute at 150 MB/s that is +0.17 %, well inside ±5 %.
Waiters are served first come, first served (a lock is held while sleeping), so no download starves.

`rate=None` means unlimited: `acquire` only counts. The rate can change at any time (`set_rate`, used by
the window-dependent schedule); the new rate applies from that moment. Clock and sleep are injected so
tests run a minute of fill in no time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_BURST_S = 0.1
MIN_BURST_BYTES = 64 * 1024


class TokenBucket:
    def __init__(self, rate: float | None, *, burst: float | None = None, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        """`rate` in bytes/s (None: unlimited); `burst` in bytes (default: 0.1 s of rate, ≥ 64 KiB)."""
        self._clock, self._sleep = clock, sleep
        self._lock = asyncio.Lock()
        self._fixed_burst = burst
        self._set(rate)
        # Start empty: a run begins with no credit, so even a short run stays at the cap (a full bucket
        # at start would add one burst, +4 % over 64 MiB at 200 Mbit/s).
        self._tokens = 0.0
        self._last = clock()
        self.granted = 0            # bytes handed out since creation (for accounting and tests)
        self.waited = 0.0           # seconds callers spent waiting

    @property
    def rate(self) -> float | None:
        return self._rate

    def _set(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive or None (unlimited), got {rate}")
        self._rate = rate
        if self._fixed_burst is not None:
            self.burst = float(self._fixed_burst)
        else:
            self.burst = max(MIN_BURST_BYTES, (rate or 0) * DEFAULT_BURST_S)

    def set_rate(self, rate: float | None) -> None:
        """Change the rate from now on; tokens earned so far are kept (clipped to the new burst)."""
        if rate == self._rate:
            return
        self._refill()
        self._set(rate)
        self._tokens = min(self._tokens, self.burst)

    def set_burst(self, burst: float | None) -> None:
        """Change the fixed burst (None: 0.1 s of the rate) from now on (a configuration reload)."""
        if burst == self._fixed_burst:
            return
        self._refill()
        self._fixed_burst = burst
        self._set(self._rate)
        self._tokens = min(self._tokens, self.burst)

    def _refill(self) -> None:
        now = self._clock()
        if self._rate is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self._rate)
        self._last = now

    async def acquire(self, n: int) -> None:
        """Wait until `n` bytes may be sent; first come, first served."""
        if n <= 0:
            return
        if self._rate is None:
            self.granted += n
            return
        async with self._lock:
            self._refill()
            self._tokens -= n
            self.granted += n
            # Less than a byte of debt is float rounding, not debt (and would loop on a frozen clock).
            while self._tokens < -0.5 and self._rate is not None:
                delay = -self._tokens / self._rate
                start = self._clock()
                await self._sleep(delay)
                self.waited += self._clock() - start
                self._refill()
