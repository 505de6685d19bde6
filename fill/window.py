"""The off-peak fill window and the window-dependent rate schedule. Pure: the caller passes the time.

Open Connect fills appliances off-peak, roughly 02:00–14:00 local time, each box starting at its own
offset within ±2 h so a region's boxes do not all hit their peers and the origin at once. The offset is
derived from the appliance id (SHA-256), so it is stable across restarts and needs no coordination.
Only the start is jittered: the end is where the evening peak begins, and the operator's hard limit.

Times are local wall-clock times of day (the caller passes an aware datetime in the appliance's zone);
a window may wrap midnight (22:00–06:00). `start == end` means open all day.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, time, timedelta

_DAY_S = 86400


@dataclass(frozen=True)
class Open:
    closes_at: datetime


@dataclass(frozen=True)
class Closed:
    opens_at: datetime


WindowState = Open | Closed


def appliance_jitter(appliance_id: str, max_jitter_s: float) -> float:
    """A stable offset in [-max_jitter_s, +max_jitter_s] seconds for this appliance (uniform over ids)."""
    if max_jitter_s <= 0:
        return 0.0
    digest = hashlib.sha256(appliance_id.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64      # [0, 1)
    return round((2 * fraction - 1) * max_jitter_s)


def parse_clock(value: str) -> time:
    """``"HH:MM"`` (24 h) → time; ValueError otherwise."""
    hours, sep, minutes = value.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and len(hours) in (1, 2)):
        raise ValueError(f"expected a time of day HH:MM, got {value!r}")
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ValueError(f"expected a time of day HH:MM, got {value!r}")
    return time(h, m)


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


@dataclass(frozen=True)
class FillWindow:
    start_s: int        # seconds after local midnight, jitter already applied, in [0, 86400)
    end_s: int          # seconds after local midnight

    @classmethod
    def build(cls, start: time, end: time, *, jitter_s: float = 0.0) -> FillWindow:
        """The window [start + jitter, end). The jitter must leave the window non-empty."""
        length = (_seconds(end) - _seconds(start)) % _DAY_S or _DAY_S
        if length == _DAY_S:
            return cls(0, 0)
        if not 0 < length - jitter_s < _DAY_S:
            raise ValueError(f"a start jitter of {jitter_s:+.0f}s does not fit a {length}s window")
        return cls(int(_seconds(start) + jitter_s) % _DAY_S, _seconds(end))

    @property
    def always_open(self) -> bool:
        return self.start_s == self.end_s

    def state(self, now: datetime) -> WindowState:
        """Open (until when) or Closed (until when) at the aware local datetime `now`."""
        if self.always_open:
            return Open(now + timedelta(days=1))
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        length = (self.end_s - self.start_s) % _DAY_S
        for day in (-1, 0, 1):
            opens = midnight + timedelta(days=day, seconds=self.start_s)
            closes = opens + timedelta(seconds=length)
            if opens <= now < closes:
                return Open(closes)
            if now < opens:
                return Closed(opens)
        return Closed(midnight + timedelta(days=2, seconds=self.start_s))  # unreachable for a valid window


@dataclass(frozen=True)
class RatePeriod:
    start_s: int
    end_s: int
    rate_bps: int | None        # bits per second; None: unlimited

    def covers(self, now: datetime) -> bool:
        s = now.hour * 3600 + now.minute * 60 + now.second
        if self.start_s <= self.end_s:
            return self.start_s <= s < self.end_s
        return s >= self.start_s or s < self.end_s        # wraps midnight


@dataclass(frozen=True)
class RateSchedule:
    """A default rate and periods of the day with their own rate; the first period that covers wins."""

    default_bps: int | None
    periods: tuple[RatePeriod, ...] = ()

    def rate_bps(self, now: datetime) -> int | None:
        for period in self.periods:
            if period.covers(now):
                return period.rate_bps
        return self.default_bps

    def rate_bytes(self, now: datetime) -> float | None:
        bps = self.rate_bps(now)
        return None if bps is None else bps / 8
