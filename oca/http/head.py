"""Reading a request head: httptools' callbacks for one connection, bounding and collecting the head.

The parser calls `on_message_begin`, `on_url`, `on_header` (once per field) and
`on_headers_complete`. The head is bounded as it arrives — request target (414, RFC 9112 §3), header
count and bytes (431, RFC 6585 §5), raised as `LimitExceeded`, which the protocol answers — and the
header timeout starts with its first byte when nothing is in flight. Field names are lowercased and
repeated fields joined with ", " (RFC 9110 §5.3). A complete head goes to `conn.request_ready`.

`Head` here is the reference; `oca.http._serve.Head` is the same in C, and its headers-complete step
runs the compiled answer without going back to Python (tests compare the two).
"""

from __future__ import annotations

from time import monotonic
from typing import Any


class LimitExceeded(Exception):
    def __init__(self, status: int, note: str) -> None:
        super().__init__(note)
        self.status, self.note = status, note


class Head:
    __slots__ = ("conn", "url", "headers", "hbytes", "hcount", "hosts", "in_head", "partial", "head_started")

    def __init__(self, conn: Any) -> None:  # an EdgeProtocol
        self.conn = conn
        self.url: bytes | None = None
        self.headers: dict[bytes, bytes] | None = None
        self.hbytes = self.hcount = self.hosts = self.partial = 0
        self.in_head = False          # bytes of a head arrived, its end not yet
        self.head_started = 0.0

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.hbytes = self.hcount = self.hosts = 0
        self.in_head = True
        self.partial = 0
        self.head_started = monotonic()
        conn = self.conn
        if conn.current is None:
            conn.deadline = self.head_started + conn.s.ctx.limits.header_timeout
            conn.deadline_kind = "header"

    def on_url(self, url: bytes) -> None:
        self.url += url  # type: ignore[operator]
        if len(self.url) > self.conn.s.ctx.limits.max_request_line:  # type: ignore[arg-type]
            raise LimitExceeded(414, "request_target_too_long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.hcount += 1
        self.hbytes += len(name) + len(value) + 4
        lim = self.conn.s.ctx.limits
        if self.hcount > lim.max_headers or self.hbytes > lim.max_header_bytes:
            raise LimitExceeded(431, "header_fields_too_large")
        name = name.lower()
        if name == b"host":
            self.hosts += 1
        headers: dict[bytes, bytes] = self.headers  # type: ignore[assignment]
        old = headers.get(name)
        headers[name] = value if old is None else old + b", " + value

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.partial = 0
        p = self.conn.parser
        url, headers, self.url, self.headers = self.url, self.headers, None, None  # an idle connection keeps nothing
        self.conn.request_ready(p.get_method(), url, headers, p.get_http_version(), p.should_keep_alive(),
                                monotonic(), self.hosts)
