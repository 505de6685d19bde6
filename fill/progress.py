"""Fill progress for people: a one-line bar on a terminal, periodic log lines otherwise.

The numbers (items, bytes, rate over the last few seconds, ETA) are kept here; `render` is pure so the
format is tested without a terminal. The shell (`Progress.ticker`) redraws the bar a few times a
second on a TTY, or logs one line every `log_interval` seconds when stdout is a file or the journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

log = logging.getLogger("oca.fill.progress")
RATE_WINDOW_S = 10.0


@dataclass(frozen=True)
class Snapshot:
    items_done: int
    items_failed: int
    items_total: int
    bytes_done: int
    bytes_total: int
    rate: float                 # bytes/s over the recent window
    elapsed: float


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_rate(bytes_per_s: float) -> str:
    bits = bytes_per_s * 8
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= scale:
            return f"{bits / scale:.1f} {unit}"
    return f"{bits:.0f} bit/s"


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def render(snap: Snapshot, *, width: int = 24) -> str:
    """``[#######.......]  3/10 items  1.2 GiB/4.0 GiB  180.0 Mbit/s  ETA 2m05s`` (ETA '?' when unknown)."""
    fraction = snap.bytes_done / snap.bytes_total if snap.bytes_total else 1.0
    filled = min(width, int(fraction * width))
    bar = "#" * filled + "." * (width - filled)
    remaining = max(0, snap.bytes_total - snap.bytes_done)
    eta = human_duration(remaining / snap.rate) if snap.rate > 0 else ("0s" if not remaining else "?")
    failed = f" ({snap.items_failed} failed)" if snap.items_failed else ""
    return (f"[{bar}] {snap.items_done}/{snap.items_total} items{failed}  "
            f"{human_bytes(snap.bytes_done)}/{human_bytes(snap.bytes_total)}  "
            f"{human_rate(snap.rate)}  ETA {eta}")


class Progress:
    def __init__(self, items_total: int, bytes_total: int, *, stream: TextIO | None, log_interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`stream` is the terminal to draw on, or None to log instead."""
        self.items_total, self.bytes_total = items_total, bytes_total
        self.stream, self.log_interval, self.clock = stream, log_interval, clock
        self.items_done = self.items_failed = 0
        self.bytes_done = 0
        self.started = clock()
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])

    def add_bytes(self, n: int) -> None:
        self.bytes_done += n

    def item_finished(self, ok: bool, *, size_left: int = 0) -> None:
        """An item ended; a failed one takes its unfetched bytes out of the total so the ETA stays honest."""
        if ok:
            self.items_done += 1
        else:
            self.items_failed += 1
            self.bytes_total -= size_left

    def snapshot(self) -> Snapshot:
        now = self.clock()
        self._samples.append((now, self.bytes_done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()
        t0, b0 = self._samples[0]
        rate = (self.bytes_done - b0) / (now - t0) if now > t0 else 0.0
        return Snapshot(self.items_done, self.items_failed, self.items_total, self.bytes_done, self.bytes_total,
                        rate, now - self.started)

    async def ticker(self) -> None:
        """Redraw (TTY) or log (otherwise) until cancelled."""
        interval = 0.5 if self.stream is not None else self.log_interval
        while True:
            await asyncio.sleep(interval)
            self.show()

    def show(self) -> None:
        line = render(self.snapshot())
        if self.stream is not None:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
        else:
            log.info("fill progress: %s", line)

    def close(self) -> None:
        if self.stream is not None:
            self.show()
            self.stream.write("\n")
            self.stream.flush()
