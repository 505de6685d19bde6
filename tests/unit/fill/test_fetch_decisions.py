"""The fetcher's pure decisions: what a status and its headers mean, backoff, validators; progress text."""

import pytest

from fill.fetcher import NextSource, Retry, backoff_delay, check_partial_response, redact, strong_etag
from fill.progress import Snapshot, human_bytes, human_duration, human_rate, render

SIZE = 1000


@pytest.mark.parametrize("status,headers,offset,expected", [
    (200, {"Content-Length": "1000"}, 0, None),
    (200, {}, 0, None),                                                   # chunked: size checked while streaming
    (200, {"Content-Length": "1000"}, 400, None),                          # range ignored / If-Range: restart
    (200, {"Content-Length": "999"}, 0, NextSource("size_mismatch")),
    (200, {"Content-Length": "abc"}, 0, NextSource("size_mismatch")),
    (206, {"Content-Range": "bytes 400-999/1000"}, 400, None),
    (206, {"Content-Range": "bytes 400-999/*"}, 400, None),
    (206, {"Content-Range": "bytes 400-999/2000"}, 400, NextSource("size_mismatch")),
    (206, {"Content-Range": "bytes 0-999/1000"}, 400, NextSource("bad_content_range")),
    (206, {"Content-Range": "bytes 400-499/1000"}, 400, NextSource("bad_content_range")),
    (206, {}, 400, NextSource("bad_content_range")),
    (206, {"Content-Range": "items 1-2/3"}, 400, NextSource("bad_content_range")),
    (404, {}, 0, NextSource("status_404")),
    (403, {}, 0, NextSource("status_403")),
    (416, {}, 400, NextSource("status_416")),
    (429, {}, 0, Retry("status_429")),
    (500, {}, 0, Retry("status_500")),
    (503, {}, 0, Retry("status_503")),
])
def test_status_and_headers(status, headers, offset, expected):
    got = check_partial_response(status, headers, offset, SIZE)
    if expected is None:
        assert got is None
    else:
        assert type(got) is type(expected) and got.reason == expected.reason


def test_backoff_is_exponential_capped_and_jittered():
    assert [backoff_delay(n, 1.0, 30.0, 1.0) for n in (1, 2, 3, 6, 10)] == [1.0, 2.0, 4.0, 30.0, 30.0]
    assert backoff_delay(3, 1.0, 30.0, 0.0) == 2.0                        # jitter: 50–100 %


@pytest.mark.parametrize("value,expected", [('"abc"', '"abc"'), ('W/"abc"', None), (None, None), ("abc", None),
                                            ('"', None)])
def test_only_strong_etags_go_into_if_range(value, expected):
    assert strong_etag(value) == expected


def test_redact_drops_the_signed_query():
    assert redact("http://10.0.0.5:8080/t1/a.mp4?exp=1&kid=k&sig=ff") == "http://10.0.0.5:8080/t1/a.mp4"


def test_progress_line():
    snap = Snapshot(3, 1, 10, 512 * 1024 * 1024, 2 * 1024**3, 25_000_000, 12.0)
    line = render(snap, width=8)
    assert line == ("[##......] 3/10 items (1 failed)  512.0 MiB/2.0 GiB  200.0 Mbit/s  ETA 1m04s")
    assert "ETA ?" in render(Snapshot(0, 0, 1, 0, 10, 0.0, 1.0))
    assert "ETA 0s" in render(Snapshot(1, 0, 1, 10, 10, 0.0, 1.0))


@pytest.mark.parametrize("fn,value,text", [
    (human_bytes, 0, "0 B"), (human_bytes, 1536, "1.5 KiB"), (human_bytes, 3 * 1024**4, "3.0 TiB"),
    (human_rate, 150_000_000, "1.2 Gbit/s"), (human_rate, 10, "80 bit/s"),
    (human_duration, 59, "59s"), (human_duration, 3600 * 2 + 61, "2h01m"),
])
def test_human_units(fn, value, text):
    assert fn(value) == text
