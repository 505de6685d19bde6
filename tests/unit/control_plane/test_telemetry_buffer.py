"""The telemetry buffer: aggregation, bounds (503), and no loss across a failed flush."""

from __future__ import annotations

import pytest

from control_plane.errors import ApiError
from control_plane.telemetry import Event, Heartbeat, TelemetryBuffer, parse_event, parse_heartbeat

HB = Heartbeat(1, 10.0, 3_000_000, "d")


class Clock:
    t = 120.0

    def __call__(self) -> float:
        return self.t


def buffer(**kw) -> tuple[TelemetryBuffer, Clock]:
    clock = Clock()
    args = {"max_pending": 100, "max_keys": 100, "bucket": 60.0, "retry_after": 2.4, "clock": clock} | kw
    return TelemetryBuffer(**args), clock


def test_aggregates_per_bucket_region_title():
    buf, clock = buffer()
    buf.add_heartbeat("t1", "DE", HB)
    buf.add_heartbeat("t1", "DE", HB)
    buf.add_event("t1", "DE", Event("play", 0))
    clock.t = 179.9
    buf.add_event("t1", "DE", Event("stop", 0))
    clock.t = 180.0
    buf.add_event("t1", "FR", Event("seek", 0))
    batch = buf.take()
    assert batch.records == 5
    assert batch.rows == {(120.0, "DE", "t1"): [2, 1, 0, 0, 1, 6_000_000, 20.0],
                          (180.0, "FR", "t1"): [0, 0, 0, 1, 0, 0, 0.0]}


def test_bounds_raise_503_with_retry_after():
    buf, _ = buffer(max_pending=2)
    buf.add_heartbeat("t1", "DE", HB)
    buf.add_heartbeat("t1", "DE", HB)
    with pytest.raises(ApiError) as e:
        buf.add_heartbeat("t1", "DE", HB)
    assert e.value.status == 503 and e.value.headers == {"Retry-After": "2"}
    buf2, _ = buffer(max_keys=1)
    buf2.add_heartbeat("t1", "DE", HB)
    buf2.add_heartbeat("t1", "DE", HB)                # same row: fine
    with pytest.raises(ApiError):
        buf2.add_heartbeat("t2", "DE", HB)


def test_records_in_flight_still_count_and_restore_merges():
    buf, _ = buffer(max_pending=3)
    buf.add_heartbeat("t1", "DE", HB)
    buf.add_heartbeat("t1", "DE", HB)
    batch = buf.take()
    assert (buf.pending, buf.waiting()) == (2, 0)
    buf.add_heartbeat("t1", "DE", HB)
    with pytest.raises(ApiError):                     # the batch being written still occupies the bound
        buf.add_heartbeat("t1", "DE", HB)
    buf.restore(batch)                                # the write failed
    assert (buf.pending, buf.waiting()) == (3, 3)
    again = buf.take()
    assert again.records == 3 and again.rows[(120.0, "DE", "t1")][0] == 3
    buf.done(again)
    assert buf.pending == 0


@pytest.mark.parametrize("body", [
    {"positionMs": 0, "bufferHealth": 0, "bitrate": 0, "deviceId": "x", "extra": 1},
    {"positionMs": 7 * 24 * 3600 * 1000, "bufferHealth": 86400, "bitrate": 10**12, "deviceId": "x" * 128},
])
def test_parse_heartbeat_accepts(body):
    assert isinstance(parse_heartbeat(body), Heartbeat)


@pytest.mark.parametrize("body,field", [
    ({"positionMs": 0, "bufferHealth": float("nan"), "bitrate": 0, "deviceId": "x"}, "bufferHealth"),
    ({"positionMs": 0, "bufferHealth": 1, "bitrate": 0, "deviceId": "x" * 129}, "deviceId"),
    ({"positionMs": False, "bufferHealth": 1, "bitrate": 0, "deviceId": "x"}, "positionMs"),
])
def test_parse_heartbeat_rejects(body, field):
    with pytest.raises(ApiError) as e:
        parse_heartbeat(body)
    assert (e.value.status, e.value.field) == (422, field)


def test_parse_event():
    assert parse_event({"type": "pause", "positionMs": 5}) == Event("pause", 5)
    with pytest.raises(ApiError):
        parse_event({"type": "PLAY", "positionMs": 5})
