"""The serving path: a bare asyncio.Protocol over httptools, bodies by os.sendfile (EDGE_PERF.md).

Per connection: bytes → httptools → `Request`s queued in arrival order (pipelining) → `handle`
decides → the head goes out with `transport.write`, file bytes with ``os.sendfile`` on the socket.
Order between head and body is kept by sending file bytes only when the transport's buffer is
empty (write-buffer limits are 0/0, so `pause_writing`/`resume_writing` say exactly when it
drains). On EAGAIN the connection waits for writability on a dup of the socket descriptor (uvloop
refuses `add_writer` on a descriptor its transport owns).

Limits: request target and header section sizes (414 / 431), header count, header-read timeout
(408, slowloris), idle keep-alive timeout, send timeout (a client that stops reading), requests
queued behind the current one (reading pauses), connections per worker (503). Parse errors → 400
and close, after the responses to the requests before it. Timeouts are checked by `sweep`, called
by the worker a few times a second, instead of a timer per request.

A failed read of a file (EIO, the file shorter than the index says) closes the connection — the
client was promised Content-Length bytes — and quarantines the file in the index.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from time import monotonic

import httptools

from oca.accesslog import AccessLog
from oca.files import FdCache, FileChanged, OpenFile, ServedFile
from oca.http import compiled
from oca.http.flow import BodyFlow
from oca.http.handler import Context, Reply, Request, handle
from oca.http.head import Head, LimitExceeded
from oca.http.response import Clock, log_field, simple
from oca.metrics import WorkerMetrics

log = logging.getLogger("oca.http")

_REJECT = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
           b"Connection: close\r\n\r\n")
_NO_HEADERS: dict[bytes, bytes] = {}


@dataclass
class Shared:
    """What every connection of a worker shares (all injected by the worker)."""

    ctx: Context
    fds: FdCache
    metrics: WorkerMetrics
    access: AccessLog | None = None
    connections: set = field(default_factory=set)
    key_hits: dict[str, int] = field(default_factory=dict)
    on_closed: object = None   # callable() after a connection closes (drain bookkeeping)

    @property
    def clock(self) -> Clock:
        return self.ctx.clock


class _Fatal:
    """A queued "answer this error and close" (parse error, oversized head), kept in order."""

    __slots__ = ("status", "note")

    def __init__(self, status: int, note: str) -> None:
        self.status, self.note = status, note


class EdgeProtocol(BodyFlow, asyncio.Protocol):
    __slots__ = ("s", "transport", "fd", "wfd", "client", "parser", "queue", "closed", "broken",
                 "reading_paused", "awaiting_drain", "writer_on", "wsock", "current", "cur_req", "cur_file",
                 "seg_i", "seg_done",
                 "sent", "deadline", "deadline_kind", "head")

    def __init__(self, shared: Shared) -> None:
        self.s = shared
        self.transport: asyncio.Transport | None = None
        self.fd = self.wfd = -1
        self.client = "-"
        self.queue: list = []  # pipelined requests; a list: an idle connection costs 56 bytes, not 600
        self.closed = self.broken = self.reading_paused = self.awaiting_drain = False
        self.writer_on = False
        self.wsock: socket.socket | None = None
        self.current: Reply | None = None
        self.cur_req: Request | None = None
        self.cur_file: OpenFile | None = None
        self.seg_i = self.seg_done = self.sent = 0
        self.deadline = 0.0
        self.deadline_kind = "idle"

    # -- connection lifecycle ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        s = self.s
        self.transport = transport  # type: ignore[assignment]
        if len(s.connections) >= s.ctx.config.server.max_connections or s.ctx.draining:
            s.metrics.rejected += 1
            transport.write(_REJECT)  # type: ignore[attr-defined]
            transport.close()
            self.closed = True
            return
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # EDGE_PERF.md: no Nagle stalls
        except OSError:
            pass
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else "-"
        transport.set_write_buffer_limits(high=0, low=0)  # type: ignore[attr-defined]
        self.head = compiled.Head(self, s, LimitExceeded, Request) \
            if compiled.Head is not None and s.ctx.config.server.compiled_path else Head(self)
        self.parser = httptools.HttpRequestParser(self.head)
        s.connections.add(self)
        s.metrics.active += 1
        # A new connection gets the (shorter) header timeout to send its first byte: a client that
        # connects and says nothing is the first slowloris move. It is closed quietly, as if idle.
        lim = s.ctx.config.limits
        self.deadline = monotonic() + min(lim.header_timeout, lim.idle_timeout)
        self.deadline_kind = "idle"

    def connection_lost(self, exc: Exception | None) -> None:
        if self.fd < 0:
            return  # rejected at connection_made
        s = self.s
        if self in s.connections:
            s.connections.discard(self)
            s.metrics.active -= 1
        self.closed = True
        if self.wsock is not None:
            self._writer_off()
            self.wsock.close()
            self.wsock, self.wfd = None, -1
        if self.current is not None:
            self._record(self.current, self.cur_req, "client_gone" if self.current.note == "-" else None)
            self._release()
        self.queue.clear()
        if s.on_closed is not None:
            s.on_closed()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()

    @property
    def idle(self) -> bool:
        return self.current is None and not self.queue

    # -- parsing ----------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.broken or self.closed:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as e:
            # httptools wraps what a callback raised; the original is the context.
            cause = e.__context__
            if isinstance(cause, LimitExceeded):
                self._fail(cause.status, cause.note)
            else:
                log.error("parser callback failed: %r", cause)
                self._fail(500, "internal_error")
        except httptools.HttpParserUpgrade:
            # RFC 9110 §7.8: a server may ignore Upgrade. The parser stops here, so answer what
            # was asked and close after it.
            self.broken = True
            self.queue.append(_Fatal(0, "upgrade ignored"))
        except httptools.HttpParserError as e:
            self._fail(400, f"parse_error:{str(e).replace(' ', '_')[:60]}")
        else:
            head = self.head
            if head.in_head:  # bytes of a head still incomplete: httptools buffers them unbounded
                end = data.rfind(b"\r\n\r\n")
                head.partial = len(data) - end - 4 if end >= 0 else head.partial + len(data)
                lim = self.s.ctx.limits
                if head.partial > lim.max_request_line + lim.max_header_bytes + 1024:
                    self._fail(431, "head_too_large")
        if self.current is None and self.queue:
            self._run_queue()
        if self.queue and len(self.queue) > self.s.ctx.limits.max_pipelined and not self.reading_paused \
                and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def request_ready(self, method: bytes, url: bytes, headers: dict[bytes, bytes], version: str,
                      keep_alive: bool, started: float, hosts: int) -> None:
        """A complete request head from `head.Head`: queued for `_run_queue`. (The compiled Head first
        tries to answer it at once, when nothing is in flight or queued, and queues it otherwise.)"""
        self.queue.append(Request(method, url, headers, version, keep_alive, self.client, started, hosts))

    def lane(self) -> tuple:
        """The compiled Head's lane for this worker's configuration (built once per configuration)."""
        ctx = self.s.ctx
        if ctx.lane is None:
            ctx.lane = compiled.lane(self.s)
        return ctx.lane

    def _fail(self, status: int, note: str) -> None:
        self.broken = True
        self.head.in_head = False
        self.queue.append(_Fatal(status, note))
        if not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    # -- answering --------------------------------------------------------------------------------
    def _run_queue(self) -> None:
        while self.queue and self.current is None and not self.closed:
            item = self.queue.pop(0)  # short: reading pauses past limits.max_pipelined
            if type(item) is _Fatal:
                self._answer_fatal(item)
                return
            if not self._start(item):
                return  # waiting for the socket; resumed by _writable / resume_writing
        if not self.closed and self.current is None:
            if self.s.ctx.draining:
                self.close()
                return
            self._go_idle()
            if self.reading_paused and not self.broken:
                self.reading_paused = False
                self.transport.resume_reading()

    def _go_idle(self) -> None:
        if self.head.in_head:
            self.deadline = self.head.head_started + self.s.ctx.limits.header_timeout
            self.deadline_kind = "header"
        else:
            self.deadline = monotonic() + self.s.ctx.limits.idle_timeout
            self.deadline_kind = "idle"

    def _answer_fatal(self, item: _Fatal) -> None:
        if item.status:
            s = self.s
            s.clock.now()
            self.transport.write(simple(item.status, s.clock, close=True))
            reply = Reply(item.status, b"", close=True, note=item.note)
            self._record(reply, None, None)
        self.close()

    def _start(self, req: Request) -> bool:
        """Begin answering `req`; True when the reply went out completely."""
        s = self.s
        s.clock.now()
        try:
            reply = handle(req, s.ctx)
        except Exception:
            log.exception("handler failed for %r", req.url[:200])
            reply = Reply(500, simple(500, s.clock, close=True), close=True, note="internal_error")
        if reply.segments:
            try:
                of = s.fds.acquire(reply.file)
            except OSError as e:
                self._open_failed(reply.file, e)
                of = None
            if of is None:
                reply = handle(req, s.ctx)   # out of service (or re-indexed): answer again
                of = self._open(reply) if reply.segments else None
                if reply.segments and of is None:
                    reply = Reply(503, simple(503, s.clock, close=True), close=True, note="disk_fault")
            self.cur_file = of
        self.current, self.cur_req = reply, req
        self.seg_i = self.seg_done = self.sent = 0
        segs = reply.segments
        if not segs:
            self.transport.write(reply.head)
        elif type(segs[0]) is bytes:
            self._write_more(reply.head + segs[0], segs[1][1])
            self.sent = len(segs[0])
            self.seg_i = 1
        else:
            self._write_more(reply.head, segs[0][1])
        if segs and self._pump():
            return False
        self._complete()
        return not reply.close

    def _take_over(self, method: bytes, url: bytes, headers: dict[bytes, bytes], version: str, keep_alive: bool,
                   hosts: int, started: float, status: int, head: bytes, f: ServedFile, first: int,
                   count: int, range_kind: str | None, kid: str | None, path: str, head_sent: int,
                   body_sent: int, note: str) -> None:
        """The compiled path's answer that the socket did not take whole: continue it as `_start` would."""
        self.s.metrics.compiled += 1
        req = Request(method, url, headers, version, keep_alive, self.client, started, hosts)
        segments = [(first, count)] if count else []
        reply = Reply(status, head, path=path, file=f, segments=segments, body_len=count, range_kind=range_kind,
                      kid=kid, note=note)
        self.current, self.cur_req, self.cur_file = reply, req, self._open(reply)
        if self.cur_file is None:   # cannot happen: the compiled path sent from this very descriptor
            self.current.note = "disk_fault"
            self.abort()
            return
        self.seg_i, self.seg_done, self.sent = 0, body_sent, body_sent
        if head_sent < len(head):
            self.transport.write(head[head_sent:])   # `_pump` waits for it to drain
        if segments and self._pump():
            return
        self._complete()
        if not self.closed:
            self._go_idle()

    def _open(self, reply: Reply) -> OpenFile | None:
        try:
            return self.s.fds.acquire(reply.file)
        except OSError as e:
            self._open_failed(reply.file, e)
            return None

    def _open_failed(self, f: ServedFile, e: OSError) -> None:
        if f.tier == "root" and isinstance(e, FileChanged):
            self.s.ctx.view.quarantine(f, str(e))  # `--root`: an edited file is indexed again, not a fault
        else:
            self._disk_fault(f, f"open failed: {e.strerror or e}", sendfile=False)

    def _disk_fault(self, f, reason: str, *, sendfile: bool) -> None:  # noqa: ANN001
        m = self.s.metrics
        m.disk_faults += 1
        if sendfile:
            m.sendfile_errors += 1
        if self.current is not None:
            self.current.note = "disk_fault"
        log.error("disk fault on %s (%s): %s; quarantined", f.key, f.path, reason)
        self.s.ctx.view.quarantine(f, reason)

    def _release(self) -> None:
        if self.writer_on:
            self._writer_off()
        if self.cur_file is not None:
            self.s.fds.release(self.cur_file)
            self.cur_file = None
        self.current = self.cur_req = None

    def _complete(self) -> None:
        reply = self.current
        self._record(reply, self.cur_req, None)
        self._release()
        if reply.close or self.s.ctx.draining:
            self.close()

    # -- bookkeeping ------------------------------------------------------------------------------
    def _record(self, reply: Reply, req: Request | None, note: str | None) -> None:
        s = self.s
        m = s.metrics
        status = reply.status
        m.responses[status] = m.responses.get(status, 0) + 1
        m.bytes_sent += self.sent if reply.segments else 0
        duration = monotonic() - req.started if req is not None else 0.0
        m.observe(duration)
        if reply.range_kind is not None:
            m.ranges[reply.range_kind] = m.ranges.get(reply.range_kind, 0) + 1
        f = reply.file
        if f is not None and (status == 200 or status == 206):
            m.hits[f.tier] = m.hits.get(f.tier, 0) + 1
            s.key_hits[f.key] = s.key_hits.get(f.key, 0) + 1
        elif reply.miss:
            m.misses += 1
        if reply.token_failure is not None:
            m.token_failures[reply.token_failure] = m.token_failures.get(reply.token_failure, 0) + 1
        if s.access is not None:
            h = req.headers if req is not None else _NO_HEADERS
            rng, ua = h.get(b"range"), h.get(b"user-agent")
            s.access.write(
                f"{s.clock.iso} {self.client} {req.method.decode('latin-1') if req else '-'} {reply.path} "
                f"{status} {self.sent if reply.segments else 0} \"{log_field(rng) if rng else '-'}\" "
                f"{duration:.6f} {f.tier if f is not None else '-'} {reply.kid or '-'} "
                f"\"{log_field(ua) if ua else '-'}\" {note or reply.note}\n")

    def sweep(self, now: float) -> None:
        """Close the connection if its deadline passed (called periodically by the worker)."""
        if self.closed or not self.deadline or now < self.deadline:
            return
        kind = self.deadline_kind
        if kind == "idle" and not self.idle:
            return
        m = self.s.metrics
        m.timeouts[kind] = m.timeouts.get(kind, 0) + 1
        if kind == "header" and self.current is None:
            self.s.clock.now()
            self.broken = True
            self.transport.write(simple(408, self.s.clock, close=True))
            self._record(Reply(408, b"", close=True, note="header_timeout"), None, None)
            self.close()
        elif kind == "send":
            if self.current is not None:
                self.current.note = "send_timeout"
            self.abort()
        else:
            self.close()

    def drain(self) -> None:
        """SIGTERM: idle connections close now; busy ones after their current response."""
        if self.current is None:
            self.close()
