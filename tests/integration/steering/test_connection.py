"""The compiled answer at the connection (steering/connection.py) against aiohttp answering alone.

Two steering services on loopback share one model and a stopped clock: one with `compiled_path` on, one
with it off. Whatever bytes a client sends, both must answer the same bytes (but for the Date field's
value), in the same order, and close the connection alike; the one with the compiled path must answer
plain cached queries without aiohttp's request handling (its server's `requests_count` stays put).
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from steering.config import ContentSteeringConfig, RankingConfig
from steering.connection import SteeringConnection, SteeringServer, compiled_connections
from steering.fleet import ModelHolder
from steering.metrics import SteeringMetrics
from steering.service import HANDLERS, METRICS, Settings, create_app, front_door
from tests.unit.steering.test_cached_answer import Geo, model

HOST = b"Host: steering.test\r\n"
# Clients the model places by a single prefix (flat index), by several, over IPv6, through GeoIP.
CACHED = ["ip=203.0.9.9&key=t1/a.mp4", "ip=203.0.9.77&key=t1%2Fa.mp4", "ip=198.51.100.200&key=t1/b.mp4",
          "ip=2001:db8::5&key=t1/a.mp4", "ip=192.0.2.1&key=t9/x.mp4", "ip=203.0.113.5&key=t1/b.mp4"]


def get(query: str, *fields: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET /api/v1/steer?" + query.encode() + b" " + version + b"\r\n" + b"".join(fields) + b"\r\n"


@dataclass
class Served:
    port: int
    runner: web.AppRunner

    @property
    def requests(self) -> int:
        """Requests aiohttp's own loop handled (web.Server.requests_count)."""
        return self.runner.server.requests_count

    def metric(self, name: str) -> float:
        registry = self.runner.app[METRICS].registry
        return sum(s.value for m in registry.collect() for s in m.samples if s.name == name)


class Services:
    """Both services, on an event loop in a thread of their own, so tests talk to them with blocking
    sockets (and hypothesis can drive them)."""

    def __init__(self, keepalive_timeout: float = 75.0) -> None:
        self.loop = asyncio.new_event_loop()
        self.keepalive_timeout = keepalive_timeout
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        holder = ModelHolder(lambda: 50.0)            # a stopped clock: the answers' model age stays 0.0
        holder.swap(model(flat=True))
        self.on = self.call(self._start(holder, True))
        self.off = self.call(self._start(holder, False))

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def _start(self, holder: ModelHolder, compiled: bool) -> Served:
        metrics = SteeringMetrics(CollectorRegistry(), holder.age)
        app = create_app(Settings(RankingConfig(), ContentSteeringConfig(), compiled_path=compiled), holder, Geo(),
                         metrics)

        async def slow(request: web.Request) -> web.Response:
            await asyncio.sleep(0.3)
            return web.Response(text="slow")
        app.router.add_get("/slow", slow)
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=self.keepalive_timeout)
        await runner.setup()
        front_door(runner.server, app[HANDLERS])
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return Served(site._server.sockets[0].getsockname()[1], runner)

    def close(self) -> None:
        for served in (self.on, self.off):
            self.call(served.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    s = Services()
    for served in (s.on, s.off):            # rank and render every cached query once (the Python path)
        exchange(served.port, [get(q, HOST) for q in CACHED])
    yield s
    s.close()


def read_response(sock: socket.socket, buffer: bytearray) -> bytes | None:
    """One response (Content-Length framed, or up to the end), or None at the end of the stream."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None if not buffer else bytes(buffer)
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    length = re.search(rb"(?i)\r\nContent-Length: *(\d+)", bytes(buffer[:end]))
    while length is not None and len(buffer) < end + int(length.group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
    size = end + int(length.group(1)) if length else len(buffer)
    response = bytes(buffer[:size])
    del buffer[:size]
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", response)


def exchange(port: int, writes: list[bytes], pause: float = 0.0) -> tuple[list[bytes], bool]:
    """Send each write (apart by `pause`), then read the responses, one per request line sent, until the
    server closes or 2 s pass without one; and whether the server closed."""
    expected = b"".join(writes).count(b" HTTP/1.")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for data in writes:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                break                       # the server answered an error and closed: read what it sent
            time.sleep(pause)
        sock.settimeout(2.0)
        responses, buffer = [], bytearray()
        try:
            while (response := read_response(sock, buffer)) is not None:
                responses.append(response)
                if len(responses) == expected:
                    sock.settimeout(0.05)       # anything more, or the close, comes at once
        except TimeoutError:
            return responses, False
        except ConnectionResetError:
            pass
        return responses, True


def both(services: Services, writes: list[bytes], pause: float = 0.0) -> tuple[list[bytes], int]:
    """The exchange with both services, which must agree; and how many requests aiohttp handled in the
    one with the compiled path."""
    before = services.on.requests
    on = exchange(services.on.port, writes, pause)
    handled = services.on.requests - before
    assert on == exchange(services.off.port, writes, pause)
    return on[0], handled


@pytest.mark.parametrize("query", CACHED)
def test_a_plain_cached_query_is_answered_at_the_connection_as_aiohttp_answers_it(services, query):
    compiled = services.on.metric("oca_steering_compiled_answers_total")
    decisions = services.on.metric("oca_steering_decisions_total")
    responses, handled = both(services, [get(query, HOST), get(query, HOST, b"Connection: keep-alive\r\n")],
                              pause=0.05)
    assert handled == 0 and len(responses) == 2 and responses[0] == responses[1]
    assert responses[0].startswith(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ")
    assert services.on.metric("oca_steering_compiled_answers_total") == compiled + 2
    assert services.on.metric("oca_steering_decisions_total") == decisions + 2


@pytest.mark.parametrize("writes", [
    [get(CACHED[0], HOST, b"Connection: close\r\n")],
    [get(CACHED[0], HOST, version=b"HTTP/1.0")],
    [get(CACHED[0], HOST, version=b"HTTP/1.0"), get(CACHED[0], HOST)],
    [get(CACHED[0])],                                                  # no Host
    [get(CACHED[0], HOST, HOST)],
    [get(CACHED[0], HOST, b"Content-Length: 0\r\n")],
    [get(CACHED[0], HOST, b"Content-Length: 3\r\n") + b"abc", get(CACHED[0], HOST)],
    [get(CACHED[0], HOST, b"Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n", get(CACHED[0], HOST)],
    [get(CACHED[0], HOST, b"X: a\r\n", b" folded\r\n")],
    [get(CACHED[0], HOST).replace(b"\r\n", b"\n")],
    [get(CACHED[0], HOST).replace(b"GET", b"HEAD"), get(CACHED[0], HOST)],
    [get(CACHED[0], HOST).replace(b"GET", b"get")],
    [get(CACHED[0], b"Host : x\r\n")],
    [get(CACHED[0], HOST, b"Upgrade: websocket\r\n")],
    [get(CACHED[0], HOST, b"Expect: 100-continue\r\n")],
    [get(CACHED[0], HOST) + get(CACHED[1], HOST)],                      # pipelined in one write
    [get(CACHED[0], HOST)[:20], get(CACHED[0], HOST)[20:], get(CACHED[1], HOST)],   # a head split in two
    [get("ip=203.0.113.5&title=t1", HOST), get(CACHED[0], HOST)],
    [get("ip=203.0.113.5&key=t1/a.mp4&limit=1", HOST)],
    [get("ip=not-an-ip&key=t1/a.mp4", HOST), get("ip=203.0.113.5&key=..", HOST), get("key=t1/a.mp4", HOST)],
    [get("ip=::ffff:203.0.9.9&key=t1/a.mp4", HOST), get("ip=100.64.0.9&key=t1/a.mp4", HOST)],
    [b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n", get(CACHED[0], HOST)],
    [b"GET /api/v1/steer/?ip=1.2.3.4&key=k HTTP/1.1\r\n" + HOST + b"\r\n"],
    [b"garbage\r\n\r\n", get(CACHED[0], HOST)],
])
def test_everything_else_is_answered_by_aiohttp_exactly_as_without_the_compiled_path(services, writes):
    both(services, writes, pause=0.05)


def test_after_a_read_that_was_not_one_plain_head_the_connection_stays_with_aiohttp(services):
    _, handled = both(services, [get(CACHED[0], HOST)[:20], get(CACHED[0], HOST)[20:], get(CACHED[0], HOST)],
                      pause=0.05)
    assert handled == 2
    _, handled = both(services, [get("ip=203.0.113.5&title=t1", HOST), get(CACHED[0], HOST)], pause=0.05)
    assert handled == 1     # a plain head aiohttp answered (titles always are) leaves its parser at a boundary


def test_a_request_arriving_while_aiohttp_is_busy_waits_its_turn(services):
    responses, handled = both(services, [b"GET /slow HTTP/1.1\r\n" + HOST + b"\r\n", get(CACHED[0], HOST)],
                              pause=0.05)
    assert handled == 2 and responses[0].endswith(b"slow") and b'"version":1' in responses[1]


def test_a_client_that_does_not_read_meets_aiohttp_s_flow_control(services):
    """With the transport's buffer over its high-water mark (writing paused), aiohttp answers: it waits
    for the buffer to drain before the next request, where a compiled answer would only add to it."""
    with socket.create_connection(("127.0.0.1", services.on.port), timeout=5) as sock:
        buffer = bytearray()
        sock.sendall(get(CACHED[0], HOST))
        assert b'"version":1' in read_response(sock, buffer)
        [connection] = [c for c in services.on.runner.server.connections
                        if c.transport is not None and c.transport.get_extra_info("peername") == sock.getsockname()]
        services.loop.call_soon_threadsafe(connection.pause_writing)
        before = services.on.requests
        sock.sendall(get(CACHED[0], HOST))
        time.sleep(0.2)
        services.loop.call_soon_threadsafe(connection.resume_writing)
        assert b'"version":1' in read_response(sock, buffer)
        assert services.on.requests == before + 1


def test_a_fault_in_the_compiled_answer_leaves_the_request_to_aiohttp(services, monkeypatch):
    def broken(data: bytes, idle: bool) -> bytes:
        raise RuntimeError("a bug")
    monkeypatch.setattr(services.on.runner.app[HANDLERS], "respond", broken)
    responses, handled = both(services, [get(CACHED[0], HOST), get(CACHED[0], HOST)], pause=0.05)
    assert handled == 2 and len(responses) == 2 and b'"version":1' in responses[1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(
    st.sampled_from([b"GET", b"get", b"POST"]),     # HEAD: in the table above (its answer has no body)
    st.sampled_from([q.encode() for q in CACHED] + [b"ip=203.0.113.5&title=t1", b"ip=1.2.3.4&key=t1/a.mp4%",
                                                    b"ip=203.0.9.9&key=t1/a.mp4&key=t1/b.mp4", b"key=t1/a.mp4"]),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]),
    st.lists(st.sampled_from([HOST, b"host:x\r\n", b"Connection: keep-alive\r\n", b"Connection: close\r\n",
                              b"Accept: */*\r\n", b"X-Odd:  \t\r\n", b"Content-Length: 0\r\n", b"X :y\r\n"]),
             max_size=4),
    st.sampled_from([b"\r\n", b"\n"])), min_size=1, max_size=4), st.booleans())
def test_any_sequence_of_requests_gets_the_same_answers(services, requests, together):
    writes = []
    for method, query, version, fields, eol in requests:
        head = method + b" /api/v1/steer?" + query + b" " + version + b"\r\n" + b"".join(fields) + b"\r\n"
        writes.append(head.replace(b"\r\n", eol))
    both(services, [b"".join(writes)] if together else writes, pause=0.02)


def test_a_connection_answered_at_the_connection_is_kept_alive_then_closed_when_idle():
    s = Services(keepalive_timeout=1.0)
    try:
        exchange(s.on.port, [get(CACHED[0], HOST)])
        before = s.on.requests
        with socket.create_connection(("127.0.0.1", s.on.port), timeout=5) as sock:
            buffer = bytearray()
            for _ in range(6):        # 1.8 s of answers 0.3 s apart: past the 1 s timeout, never idle for it
                sock.sendall(get(CACHED[0], HOST))
                assert b'"version":1' in read_response(sock, buffer)
                time.sleep(0.3)
            started = time.monotonic()
            assert read_response(sock, buffer) is None        # closed once idle for the timeout
            assert 0.5 < time.monotonic() - started < 3.0
        assert s.on.requests == before
    finally:
        s.close()


def test_compiled_connections_fit_the_installed_aiohttp():
    """SteeringConnection leans on a few RequestHandler attributes: an aiohttp without them must fail here,
    not quietly serve without the compiled path."""
    async def make() -> web.Server:
        return web.Server(lambda request: web.Response())
    loop = asyncio.new_event_loop()
    try:
        server = loop.run_until_complete(make())
        assert compiled_connections(server, handlers=object()) and type(server) is SteeringServer
        assert issubclass(SteeringConnection, web.RequestHandler)
    finally:
        loop.close()
