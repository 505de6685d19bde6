"""Playback telemetry: validate heartbeats and events, aggregate them in memory, hand out batches.

Nothing is written per heartbeat: `TelemetryBuffer` folds each accepted record into a counter
row per (time bucket, region, title). The flusher (`control_plane/flusher.py`) swaps the buffer
out (`take`), writes the batch in one transaction and, if the write fails, merges it back
(`restore`) so nothing accepted is lost. The buffer is bounded: once `max_pending` records (or
`max_keys` distinct rows) wait unflushed, `add_*` raises a 503 with Retry-After — back-pressure
to the player instead of a silent drop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from control_plane import validation as v
from control_plane.errors import ApiError

EVENT_TYPES = ("play", "pause", "seek", "stop")
_EVENT_COLUMN = {"play": 1, "pause": 2, "seek": 3, "stop": 4}
# Row layout: heartbeats, plays, pauses, seeks, stops, bitrate_sum, buffer_health_sum
ROW_FIELDS = ("heartbeats", "plays", "pauses", "seeks", "stops", "bitrate_sum", "buffer_health_sum")
MAX_POSITION_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Heartbeat:
    position_ms: int
    buffer_health: float
    bitrate: int
    device_id: str


@dataclass(frozen=True)
class Event:
    type: str
    position_ms: int


def parse_heartbeat(body: object) -> Heartbeat:
    """``{positionMs, bufferHealth (seconds), bitrate (bps), deviceId}``; other fields are ignored."""
    b = v.obj(body)
    return Heartbeat(v.integer(b, "positionMs", hi=MAX_POSITION_MS),
                     v.number(b, "bufferHealth", hi=86400.0),
                     v.integer(b, "bitrate", hi=10**12),
                     v.string(b, "deviceId", max_len=128))


def parse_event(body: object) -> Event:
    """``{type: play|pause|seek|stop, positionMs}``; other fields are ignored."""
    b = v.obj(body)
    return Event(v.string(b, "type", choices=EVENT_TYPES), v.integer(b, "positionMs", hi=MAX_POSITION_MS))


Key = tuple[float, str, str]   # (bucket_start, region, title_id)


@dataclass(frozen=True)
class Batch:
    rows: dict[Key, list[float]]
    records: int


class TelemetryBuffer:
    """Counter rows waiting to be flushed; see the module docstring. Not thread-safe (one event loop)."""

    def __init__(self, *, max_pending: int, max_keys: int, bucket: float, retry_after: float,
                 clock: Callable[[], float]) -> None:
        self.max_pending, self.max_keys, self.bucket = max_pending, max_keys, bucket
        self.retry_after, self.clock = retry_after, clock
        self._rows: dict[Key, list[float]] = {}
        self.pending = 0        # records accepted and not yet flushed (including a batch being written)
        self.in_flight = 0

    def _row(self, region: str, title_id: str) -> list[float]:
        if self.pending >= self.max_pending:
            raise self._full("pending records")
        now = self.clock()
        key = (now - now % self.bucket, region, title_id)
        row = self._rows.get(key)
        if row is None:
            if len(self._rows) >= self.max_keys:
                raise self._full("distinct rows")
            row = self._rows[key] = [0, 0, 0, 0, 0, 0.0, 0.0]
        self.pending += 1
        return row

    def _full(self, what: str) -> ApiError:
        seconds = max(1, round(self.retry_after))
        return ApiError(503, "telemetry_backlog", f"telemetry backlog is full ({what}); retry later",
                        headers={"Retry-After": str(seconds)})

    def add_heartbeat(self, title_id: str, region: str, hb: Heartbeat) -> None:
        row = self._row(region, title_id)
        row[0] += 1
        row[5] += hb.bitrate
        row[6] += hb.buffer_health

    def add_event(self, title_id: str, region: str, event: Event) -> None:
        self._row(region, title_id)[_EVENT_COLUMN[event.type]] += 1

    def waiting(self) -> int:
        """Records in the buffer not yet handed to the flusher."""
        return self.pending - self.in_flight

    def take(self) -> Batch:
        """Swap the buffer out for flushing; `pending` stays counted until `done` or `restore`."""
        rows, self._rows = self._rows, {}
        batch = Batch(rows, self.pending - self.in_flight)
        self.in_flight += batch.records
        return batch

    def done(self, batch: Batch) -> None:
        self.in_flight -= batch.records
        self.pending -= batch.records

    def restore(self, batch: Batch) -> None:
        """The write failed: merge the batch back so it is retried with the next one."""
        self.in_flight -= batch.records
        for key, row in batch.rows.items():
            mine = self._rows.get(key)
            if mine is None:
                self._rows[key] = row
            else:
                for i, value in enumerate(row):
                    mine[i] += value
