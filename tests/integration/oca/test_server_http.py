"""The edge server on loopback, driven by raw sockets: RFC 9110/9112 behaviour and the limits."""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.integration.oca.edge_harness import Edge, Reader, fetch, make_store, parse_multipart, request, wait_for

VIDEO = os.urandom(300_000)
SMALL = bytes(range(256)) * 4
BIG = os.urandom(4 << 20)  # more than the sockets take at once (the reader keeps a small buffer)
FILES = {"t1/video.mp4": VIDEO, "t1/small.bin": SMALL, "empty.bin": b"", "hdd/warm.mp4": SMALL, "t1/big.bin": BIG}
LIMITS = """
[limits]
header_timeout = "600ms"
idle_timeout = "700ms"
max_request_line = "1KiB"
max_header_bytes = "2KiB"
max_headers = 20
max_ranges = 4
[cors]
allowed_origins = ["https://player.example"]
max_age = "10m"
"""


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    tmp = tmp_path_factory.mktemp("edge-http")
    (tmp / "outside.txt").write_text("secret outside the store")
    config = make_store(tmp, FILES, extra=LIMITS)
    server = Edge.start(["--config", str(config)], tmp)
    server.tmp = tmp  # type: ignore[attr-defined]
    yield server
    assert server.stop() == 0


# -- plain GET / HEAD -----------------------------------------------------------------------------
def test_full_get_and_validators(edge: Edge) -> None:
    r = fetch(edge, "/t1/video.mp4")
    assert r.status == 200 and r.body == VIDEO
    assert r.header("content-length") == str(len(VIDEO))
    assert r.header("content-type") == "video/mp4"
    assert r.header("accept-ranges") == "bytes"
    etag = r.header("etag")
    assert etag and etag.startswith('"') and not etag.startswith("W/")
    assert r.header("last-modified").endswith(" GMT") and r.header("date").endswith(" GMT")


def test_head_has_headers_and_no_body_and_ignores_range(edge: Edge) -> None:
    with edge.connect() as s:
        s.sendall(request("/t1/video.mp4", method="HEAD", headers={"Range": "bytes=0-9"}) +
                  request("/t1/small.bin"))
        reader = Reader(s)
        head = reader.read(head_only=True)
        assert head.status == 200 and head.header("content-length") == str(len(VIDEO))
        nxt = reader.read()            # the next response starts right after the head: no body was sent
        assert nxt.status == 200 and nxt.body == SMALL


def test_tier_file_served(edge: Edge) -> None:
    assert fetch(edge, "/hdd/warm.mp4").body == SMALL


# -- ranges ---------------------------------------------------------------------------------------
N = len(VIDEO)


@pytest.mark.parametrize(("spec", "first", "last"), [
    ("0-0", 0, 0), ("100-199", 100, 199), ("1000-", 1000, N - 1), ("-500", N - 500, N - 1),
    (f"-{N * 3}", 0, N - 1), (f"{N - 10}-{N * 5}", N - 10, N - 1), ("5-18446744073709551616", 5, N - 1),
    ("0-99,100-199", 0, 199),   # adjacent: coalesced into one range
])
def test_single_ranges(edge: Edge, spec: str, first: int, last: int) -> None:
    r = fetch(edge, "/t1/video.mp4", headers={"Range": f"bytes={spec}"})
    assert r.status == 206
    assert r.header("content-range") == f"bytes {first}-{last}/{N}"
    assert r.body == VIDEO[first:last + 1]


def test_multi_range_bytes_exact(edge: Edge) -> None:
    r = fetch(edge, "/t1/video.mp4", headers={"Range": "bytes=200-299, 0-9, 5-14, -20"})
    assert r.status == 206
    ctype = r.header("content-type")
    assert ctype.startswith("multipart/byteranges; boundary=")
    parts = parse_multipart(r.body, ctype.split("boundary=")[1])
    expected = [(200, 299), (0, 14), (N - 20, N - 1)]   # request order; 0-9 and 5-14 coalesced
    assert [(h["content-range"], h["content-type"]) for h, _ in parts] == [
        (f"bytes {a}-{b}/{N}", "video/mp4") for a, b in expected]
    assert [data for _, data in parts] == [VIDEO[a:b + 1] for a, b in expected]
    assert int(r.header("content-length")) == len(r.body)


@pytest.mark.parametrize("spec", ["bytes=0-", "bytes=-5", "bytes=0-0"])
def test_416_on_empty_file(edge: Edge, spec: str) -> None:
    r = fetch(edge, "/empty.bin", headers={"Range": spec})
    assert r.status == 416 and r.header("content-range") == "bytes */0"


def test_empty_file_without_range(edge: Edge) -> None:
    r = fetch(edge, "/empty.bin")
    assert r.status == 200 and r.body == b"" and r.header("content-length") == "0"


def test_416_past_the_end(edge: Edge) -> None:
    r = fetch(edge, "/t1/video.mp4", headers={"Range": f"bytes={N}-"})
    assert r.status == 416 and r.header("content-range") == f"bytes */{N}"


@pytest.mark.parametrize("spec", ["bytes=9-0", "bytes=abc", "items=0-9", "bytes=0-1-2",
                                  "bytes=0-0,2-2,4-4,6-6,8-8",        # more than max_ranges (4)
                                  "bytes=0-200000,100000-299999"])    # adds up to more than the file
def test_ignored_ranges_get_the_whole_file(edge: Edge, spec: str) -> None:
    r = fetch(edge, "/t1/video.mp4", headers={"Range": spec})
    assert r.status == 200 and r.body == VIDEO and r.header("content-range") is None


# -- conditionals ---------------------------------------------------------------------------------
def test_conditionals(edge: Edge) -> None:
    first = fetch(edge, "/t1/small.bin")
    etag, lm = first.header("etag"), first.header("last-modified")
    # players send If-None-Match together with Range
    r = fetch(edge, "/t1/small.bin", headers={"If-None-Match": etag, "Range": "bytes=0-9"})
    assert r.status == 304 and r.body == b"" and r.header("etag") == etag
    assert fetch(edge, "/t1/small.bin", headers={"If-Modified-Since": lm}).status == 304
    assert fetch(edge, "/t1/small.bin", headers={"If-None-Match": '"nope"', "If-Modified-Since": lm}).status == 200
    assert fetch(edge, "/t1/small.bin", headers={"If-Match": '"nope"'}).status == 412
    assert fetch(edge, "/t1/small.bin", headers={"If-Match": etag}).status == 200
    assert fetch(edge, "/t1/small.bin", headers={"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}).status == 412
    # If-Range: strong ETag or exact date → range; weak or other → whole file
    assert fetch(edge, "/t1/small.bin", headers={"If-Range": etag, "Range": "bytes=0-9"}).status == 206
    assert fetch(edge, "/t1/small.bin", headers={"If-Range": lm, "Range": "bytes=0-9"}).status == 206
    weak = fetch(edge, "/t1/small.bin", headers={"If-Range": "W/" + etag, "Range": "bytes=0-9"})
    assert weak.status == 200 and weak.body == SMALL
    assert fetch(edge, "/t1/small.bin", headers={"If-Range": '"other"', "Range": "bytes=0-9"}).status == 200


# -- connection management ------------------------------------------------------------------------
def test_pipelining_answers_in_order(edge: Edge) -> None:
    with edge.connect() as s:
        s.sendall(request("/t1/small.bin", headers={"Range": "bytes=0-9"})
                  + request("/t1/video.mp4")
                  + request("/missing.mp4")
                  + request("/t1/small.bin", headers={"Range": "bytes=10-19"}))
        reader = Reader(s)
        got = [reader.read() for _ in range(4)]
    assert [r.status for r in got] == [206, 200, 404, 206]
    assert got[0].body == SMALL[0:10] and got[1].body == VIDEO and got[3].body == SMALL[10:20]


def test_deep_pipelining_pauses_reading_and_keeps_order(edge: Edge) -> None:
    """More than limits.max_pipelined (32) requests at once: reading pauses, nothing is lost."""
    n = 120
    with edge.connect() as s:
        s.sendall(b"".join(request("/t1/small.bin", headers={"Range": f"bytes={i}-{i}"}) for i in range(n)))
        reader = Reader(s)
        assert [reader.read().body for _ in range(n)] == [SMALL[i:i + 1] for i in range(n)]


def test_pipelining_in_tiny_pieces(edge: Edge) -> None:
    data = request("/t1/small.bin", headers={"Range": "bytes=0-3"}) * 3
    with edge.connect() as s:
        for i in range(0, len(data), 7):
            s.sendall(data[i:i + 7])
        reader = Reader(s)
        assert [reader.read().body for _ in range(3)] == [SMALL[:4]] * 3


def test_http10_closes_unless_keep_alive(edge: Edge) -> None:
    with edge.connect() as s:
        s.sendall(request("/t1/small.bin", version="1.0", host=None))
        reader = Reader(s)
        r = reader.read()
        assert r.status == 200 and r.body == SMALL and r.header("connection") == "close"
        assert reader.closed()
    with edge.connect() as s:
        s.sendall(request("/t1/small.bin", version="1.0", host=None, headers={"Connection": "keep-alive"}))
        reader = Reader(s)
        r = reader.read()
        assert r.header("connection") == "keep-alive"
        s.sendall(request("/t1/small.bin", version="1.0", host=None, headers={"Connection": "keep-alive"}))
        assert reader.read().body == SMALL


def test_connection_close(edge: Edge) -> None:
    with edge.connect() as s:
        s.sendall(request("/t1/small.bin", headers={"Connection": "close"}))
        reader = Reader(s)
        assert reader.read().header("connection") == "close"
        assert reader.closed()


def test_keep_alive_serves_many(edge: Edge) -> None:
    with edge.connect() as s:
        reader = Reader(s)
        for i in range(50):
            s.sendall(request("/t1/small.bin", headers={"Range": f"bytes={i}-{i}"}))
            assert reader.read().body == SMALL[i:i + 1]


# -- methods, CORS --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "TRACE"])
def test_other_methods_405(edge: Edge, method: str) -> None:
    r = fetch(edge, "/t1/small.bin", method=method)
    assert r.status == 405 and r.header("allow") == "GET, HEAD, OPTIONS"


def test_cors_preflight_and_get(edge: Edge) -> None:
    r = fetch(edge, "/t1/video.mp4", method="OPTIONS", headers={
        "Origin": "https://player.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"})
    assert r.status == 204
    assert r.header("access-control-allow-origin") == "https://player.example"
    assert "Range" in r.header("access-control-allow-headers")
    assert r.header("access-control-max-age") == "600"
    refused = fetch(edge, "/t1/video.mp4", method="OPTIONS", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert refused.status == 204 and refused.header("access-control-allow-origin") is None
    g = fetch(edge, "/t1/small.bin", headers={"Origin": "https://player.example", "Range": "bytes=0-1"})
    assert g.header("access-control-allow-origin") == "https://player.example"
    assert {"Content-Range", "Content-Length", "ETag"} <= set(
        x.strip() for x in g.header("access-control-expose-headers").split(","))
    assert fetch(edge, "/t1/small.bin", headers={"Origin": "https://evil.example"}).header(
        "access-control-allow-origin") is None


# -- strictness -----------------------------------------------------------------------------------
@pytest.mark.parametrize("target", [
    "/../outside.txt", "/t1/../../outside.txt", "/%2e%2e/outside.txt", "/%2E%2E/%2e%2e/outside.txt",
    "/t1%2f..%2f..%2foutside.txt", "/%252e%252e/outside.txt", "/t1/./small.bin", "//t1/small.bin",
    "/t1/small.bin%00", "/t1/sm%C3%A4ll.bin", "/t1\\small.bin",
])
def test_path_traversal_and_bad_keys_rejected(edge: Edge, target: str) -> None:
    r = fetch(edge, target)
    assert r.status == 400
    assert b"secret outside" not in r.body


def test_percent_encoding_is_decoded_once(edge: Edge) -> None:
    r = fetch(edge, "/t1/%73mall.bin")   # %73 = "s": a legal key after one decoding
    assert r.status == 200 and r.body == SMALL


def test_absolute_form_target(edge: Edge) -> None:
    assert fetch(edge, "http://edge/t1/small.bin").body == SMALL


def test_missing_or_double_host_is_400(edge: Edge) -> None:
    assert fetch(edge, "/t1/small.bin", host=None).status == 400
    assert fetch(edge, "/t1/small.bin", headers={"Host": "again"}).status == 400


def test_miss_is_404(edge: Edge) -> None:
    assert fetch(edge, "/t9/nothing.mp4").status == 404
    assert fetch(edge, "/").status == 404


def test_request_target_too_long_414(edge: Edge) -> None:
    with edge.connect() as s:
        s.sendall(request("/" + "a" * 2000))
        reader = Reader(s)
        assert reader.read().status == 414
        assert reader.closed()


def test_header_section_too_large_431(edge: Edge) -> None:
    with edge.connect() as s:
        s.sendall(request("/t1/small.bin", headers={"X-Big": "b" * 3000}))
        reader = Reader(s)
        assert reader.read().status == 431
        assert reader.closed()


def test_too_many_headers_431(edge: Edge) -> None:
    r = fetch(edge, "/t1/small.bin", headers={f"X-H{i}": "1" for i in range(30)})
    assert r.status == 431


def test_endless_header_line_431(edge: Edge) -> None:
    """A header that never ends is cut off near the limit, not buffered forever."""
    with edge.connect() as s:
        s.sendall(b"GET /t1/small.bin HTTP/1.1\r\nHost: e\r\nX-Long: ")
        sent = 0
        while not select.select([s], [], [], 0.01)[0] and sent < 1_000_000:
            try:
                s.sendall(b"z" * 1024)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1024
        assert sent < 100_000   # answered long before a megabyte
        assert Reader(s).read().status == 431


GARBAGE = [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,   # a TLS ClientHello
           b"HELLO\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /a HTTP/1.1\r\nBad Header\r\n\r\n"]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_gets_400_and_close(edge: Edge, garbage: bytes) -> None:
    with edge.connect() as s:
        s.sendall(garbage)
        reader = Reader(s)
        assert reader.read().status == 400
        assert reader.closed()


@pytest.mark.parametrize("headers", [{"Content-Length": "5"}, {"Transfer-Encoding": "chunked"}])
def test_request_bodies_refused(edge: Edge, headers: dict[str, str]) -> None:
    with edge.connect() as s:
        s.sendall(request("/t1/small.bin", headers=headers) + b"hello")
        reader = Reader(s)
        assert reader.read().status == 413
        assert reader.closed()


def test_error_after_good_pipelined_request_keeps_order(edge: Edge) -> None:
    with edge.connect() as s:
        s.sendall(request("/t1/small.bin") + b"NOT HTTP AT ALL\r\n\r\n")
        reader = Reader(s)
        assert reader.read().body == SMALL
        assert reader.read().status == 400
        assert reader.closed()


# -- timeouts -------------------------------------------------------------------------------------
def test_slowloris_header_timeout_408(edge: Edge) -> None:
    with edge.connect() as s:
        s.sendall(b"GET /t1/small.bin HTTP/1.1\r\n")
        reader = Reader(s)
        start = time.monotonic()
        # Keep trickling header bytes: the deadline runs from the first byte, not the last.
        while time.monotonic() - start < 5:
            try:
                s.sendall(b"X: y\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([s], [], [], 0.1)[0]:
                break
        assert reader.read().status == 408
        assert reader.closed()


def test_idle_keep_alive_timeout_closes(edge: Edge) -> None:
    with edge.connect() as s:
        s.sendall(request("/t1/small.bin"))
        reader = Reader(s)
        assert reader.read().status == 200
        assert reader.closed(timeout=5)
    wait_for(lambda: edge.metric('oca_timeouts_total{kind="idle"}') >= 1, what="idle timeout metric")


# -- admin, metrics, access log -------------------------------------------------------------------
def test_admin_endpoints_and_metrics(edge: Edge) -> None:
    fetch(edge, "/t1/small.bin", headers={"Range": "bytes=0-1"})
    fetch(edge, "/hdd/warm.mp4")
    assert edge.admin_get("/healthz")[0] == 200
    assert edge.admin_get("/readyz") == (200, '{"ready": true, "reason": ""}')
    wait_for(lambda: edge.metric('oca_hits_total{tier="hdd"}') >= 1, what="hdd hit")
    _, text = edge.admin_get("/metrics")
    for name in ("oca_http_responses_total{code=\"206\"}", "oca_bytes_sent_total", "oca_active_connections",
                 "oca_request_duration_seconds_bucket", 'oca_range_requests_total{kind="single"}',
                 'oca_hits_total{tier="ssd"}', "oca_sendfile_errors_total", 'oca_disk_state{disk="ssd/0",state="ok"}',
                 "oca_misses_total", "oca_workers 1.0"):
        assert name in text, name


def test_access_log_line(edge: Edge) -> None:
    fetch(edge, "/t1/small.bin?x=1", headers={"Range": "bytes=0-9", "User-Agent": 'dash.js "5"'})
    log = edge.tmp / "access.log"  # type: ignore[attr-defined]

    def line() -> str | None:
        for ln in log.read_text().splitlines() if log.exists() else []:
            if "dash.js" in ln:
                return ln
        return None
    text = wait_for(line, what="access log line")
    fields = text.split(" ")
    assert fields[2:6] == ["GET", "/t1/small.bin", "206", "10"]
    assert fields[6] == '"bytes=0-9"' and fields[8] == "ssd" and fields[9] == "-"
    assert text.endswith('"dash.js \\"5\\"" -')


def test_compiled_path_answers_and_hands_over_a_slow_readers_response(edge: Edge) -> None:
    """oca/http/_serve.c answers warm plain GETs; a body the socket does not take at once (the client
    is not reading) continues in the Python flow, and arrives whole."""
    before = edge.metric("oca_compiled_answers_total")
    for _ in range(3):
        assert fetch(edge, "/t1/small.bin", headers={"Range": "bytes=5-9"}).body == SMALL[5:10]
    assert fetch(edge, "/t1/big.bin", headers={"Range": "bytes=0-0"}).body == BIG[:1]  # opened, cached
    with edge.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(request("/t1/big.bin") + request("/t1/video.mp4"))  # the second waits for the first
        time.sleep(0.3)                            # let the server's socket fill and sendfile see EAGAIN
        reader = Reader(s)
        assert [reader.read().body for _ in range(2)] == [BIG, VIDEO]
    wait_for(lambda: edge.metric("oca_compiled_answers_total") >= before + 3, what="compiled answers counted")


def test_connection_counted_while_open(edge: Edge) -> None:
    with edge.connect() as s:
        reader = Reader(s)

        def busy_and_counted() -> bool:
            s.sendall(request("/t1/small.bin"))   # keeps the connection from idling out
            reader.read()
            return edge.metric("oca_active_connections") >= 1
        wait_for(busy_and_counted, what="active connection gauge")


def test_outside_file_untouched(edge: Edge) -> None:
    assert (edge.tmp / "outside.txt").read_text() == "secret outside the store"  # type: ignore[attr-defined]

