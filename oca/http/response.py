"""Response heads: status lines, the cached Date line, small complete responses, log-field escaping."""

from __future__ import annotations

import time
from email.utils import formatdate

REASONS = {
    200: "OK", 204: "No Content", 206: "Partial Content", 302: "Found", 304: "Not Modified",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 412: "Precondition Failed", 413: "Content Too Large", 414: "URI Too Long",
    416: "Range Not Satisfiable", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    503: "Service Unavailable",
}
STATUS_LINES = {code: f"HTTP/1.1 {code} {text}\r\n".encode("ascii") for code, text in REASONS.items()}
SERVER = b"Server: oca\r\n"
ALLOW = b"Allow: GET, HEAD, OPTIONS\r\n"


class Clock:
    """Wall-clock seconds plus the ``Date:`` header line, rebuilt once per second (RFC 9110 §6.6.1)."""

    __slots__ = ("_now", "_second", "date_line", "iso")

    def __init__(self, now=time.time) -> None:  # noqa: ANN001 — injected clock
        self._now = now
        self._second = -1
        self.date_line = b""
        self.iso = ""

    def now(self) -> float:
        t = self._now()
        if int(t) != self._second:
            self._second = int(t)
            self.date_line = b"Date: " + formatdate(self._second, usegmt=True).encode("ascii") + b"\r\n"
            self.iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._second))
        return t


def simple(status: int, clock: Clock, *, close: bool, extra: bytes = b"", body: bytes | None = None,
           head_only: bool = False) -> bytes:
    """A complete small response: status, Date, a short text body (default: the reason phrase)."""
    if body is None:
        body = b"" if status in (204, 304) else f"{status} {REASONS[status]}\n".encode("ascii")
    parts = [STATUS_LINES[status], clock.date_line, SERVER]
    if status not in (204, 304):
        parts.append(b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(body))
    parts.append(extra)
    if close:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    if not head_only:
        parts.append(body)
    return b"".join(parts)


_SAFE = frozenset(range(0x20, 0x7f)) - {ord('"'), ord("\\")}


def log_field(raw: bytes) -> str:
    """Bytes from the request → a log-safe string: quotes, backslashes and controls escaped."""
    if _SAFE.issuperset(raw):
        return raw.decode("ascii")
    out = []
    for b in raw:
        if b in _SAFE:
            out.append(chr(b))
        elif b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)
