"""Decide the answer to one parsed request: status, head bytes and body plan. No socket I/O.

The protocol shell (`oca.http.protocol`) parses bytes into a `Request`, calls `handle`, and writes
the `Reply`: its head, then each body segment — bytes, or ``(offset, count)`` of the reply's file,
sent with sendfile. Everything a response depends on is injected through `Context`: settings, the
key ring, the index view and the clock; the outcome carries the fields the access log and the
metrics need (range kind, token outcome, tier, a short reason).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import httptools

from oca import ranges, tokens
from oca.conditional import Conditions, Precondition, evaluate, if_range_holds
from oca.config import EdgeConfig
from oca.contentkey import InvalidKey, validate_key
from oca.files import IndexView, ServedFile
from oca.http.response import ALLOW, SERVER, STATUS_LINES, Clock, log_field, simple


class Request:
    """One parsed request. Header names are lowercase bytes; repeated fields are joined with ", "."""

    __slots__ = ("method", "url", "headers", "version", "keep_alive", "client", "started", "hosts")

    def __init__(self, method: bytes, url: bytes, headers: dict[bytes, bytes], version: str,
                 keep_alive: bool, client: str, started: float, hosts: int = 1) -> None:
        self.method, self.url, self.headers, self.version = method, url, headers, version
        self.keep_alive, self.client, self.started, self.hosts = keep_alive, client, started, hosts


class Reply:
    """What to send, plus what to log. `segments` is empty unless the body comes from `file`."""

    __slots__ = ("status", "head", "segments", "file", "body_len", "close", "path", "range_kind",
                 "kid", "token_failure", "miss", "note")

    def __init__(self, status: int, head: bytes, *, close: bool = False, path: str = "-",
                 file: ServedFile | None = None, segments: list | None = None, body_len: int = 0,
                 range_kind: str | None = None, kid: str | None = None, token_failure: str | None = None,
                 miss: bool = False, note: str = "-") -> None:
        self.status, self.head, self.close, self.path = status, head, close, path
        self.file, self.segments, self.body_len = file, segments, body_len
        self.range_kind, self.kid, self.token_failure = range_kind, kid, token_failure
        self.miss, self.note = miss, note


@dataclass
class Context:
    """Everything a decision depends on; the worker swaps `config` and `ring` on SIGHUP."""

    config: EdgeConfig
    ring: tokens.KeyRing | None
    view: IndexView
    clock: Clock
    draining: bool = False

    def __post_init__(self) -> None:
        self.configure(self.config, self.ring)

    def configure(self, config: EdgeConfig, ring: tokens.KeyRing | None) -> None:
        self.config, self.ring = config, ring
        self.limits = config.limits
        self.verified = tokens.VerifiedTokens(ring) if ring is not None else None
        self.keys: dict[bytes, tuple[str, str]] = {}  # raw request path → (content key, "/" + key)
        self.lane: tuple | None = None  # built by EdgeProtocol for oca.http.compiled from this config
        self.require_tokens = config.tokens.mode == "require"
        self.max_ranges = config.limits.max_ranges
        origins = config.cors.allowed_origins
        self.cors_any = "*" in origins
        self.cors_origins = frozenset(o.encode("ascii") for o in origins)
        self.miss_base = config.miss.redirect_base if config.miss.action == "redirect" else None


_EXPOSE = b"Access-Control-Expose-Headers: Content-Range, Content-Length, ETag, Accept-Ranges\r\n"
_PREFLIGHT_HEADERS = (b"Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n"
                      b"Access-Control-Allow-Headers: Range, If-Range, If-None-Match, If-Modified-Since, "
                      b"If-Match, If-Unmodified-Since\r\n")
_CONDITIONAL = (b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since")


def _cors(req: Request, ctx: Context) -> bytes:
    if not ctx.cors_origins and not ctx.cors_any:
        return b""
    origin = req.headers.get(b"origin")
    if origin is None or not (ctx.cors_any or origin in ctx.cors_origins):
        return b""
    if ctx.cors_any:
        return b"Access-Control-Allow-Origin: *\r\n" + _EXPOSE
    return b"Access-Control-Allow-Origin: " + origin + b"\r\nVary: Origin\r\n" + _EXPOSE


def _conn(req: Request, ctx: Context) -> tuple[bytes, bool]:
    """The Connection line and whether to close after this response (RFC 9112 §9.3, §9.6)."""
    if not req.keep_alive or ctx.draining:
        return b"Connection: close\r\n", True
    if req.version == "1.0":
        return b"Connection: keep-alive\r\n", False
    return b"", False


def _error(status: int, req: Request, ctx: Context, note: str, *, path: str = "-", extra: bytes = b"",
           close: bool = False, kid: str | None = None, token_failure: str | None = None,
           miss: bool = False) -> Reply:
    conn, must_close = _conn(req, ctx)
    close = close or must_close
    if not close:
        extra += conn
    head = simple(status, ctx.clock, close=close, extra=extra + _cors(req, ctx),
                  head_only=req.method == b"HEAD")
    return Reply(status, head, close=close, path=path, note=note, kid=kid, token_failure=token_failure,
                 miss=miss)


def request_key(raw_path: bytes) -> str:
    """The content key a request path names: percent-decoded exactly once, then validated.

    Raises InvalidKey. ``/a/%2e%2e/b`` decodes to ``a/../b`` (rejected); ``%252e`` decodes to
    ``%2e`` (rejected: ``%`` is not a key character) — there is no second decoding to exploit.
    """
    decoded = unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path
    if not decoded.startswith(b"/"):
        raise InvalidKey(decoded, "path does not start with '/'")
    try:
        key = decoded[1:].decode("ascii")
    except UnicodeDecodeError:
        raise InvalidKey(decoded, "non-ASCII byte") from None
    return validate_key(key)


def handle(req: Request, ctx: Context) -> Reply:
    """The whole decision for one request (RFC 9110 / 9112), in order: method, target, token,
    lookup, preconditions (§13.2.2), range (§14)."""
    method = req.method
    if req.version == "1.1" and req.hosts != 1:
        return _error(400, req, ctx, "host_header", close=True)  # RFC 9112 §3.2
    h = req.headers
    if b"transfer-encoding" in h or h.get(b"content-length", b"0") != b"0":
        # Nothing here takes a request body (RFC 9110 §9.3.1: a GET body has no meaning); reading
        # and discarding one would let a client hold a connection busy at will.
        return _error(413, req, ctx, "request_body", close=True)
    if method != b"GET" and method != b"HEAD":
        if method == b"OPTIONS":
            return _options(req, ctx)
        return _error(405, req, ctx, "method_not_allowed", extra=ALLOW)
    target = req.url
    if target[:1] == b"/":  # origin-form (RFC 9112 §3.2.1): path [ "?" query ]
        raw_path, _, raw_query = target.partition(b"?")
    else:  # absolute-form, which a server MUST accept (RFC 9112 §3.2.2)
        try:
            url = httptools.parse_url(target)
        except httptools.HttpParserInvalidURLError:
            return _error(400, req, ctx, "invalid_target", close=True)
        raw_path, raw_query = url.path or b"", url.query or b""
    known = ctx.keys.get(raw_path)
    if known is None:
        try:
            key = request_key(raw_path)
        except InvalidKey:
            return _error(404 if raw_path == b"/" else 400, req, ctx, "invalid_key", path=log_field(raw_path))
        if len(ctx.keys) >= 65536:
            ctx.keys.clear()
        known = ctx.keys[raw_path] = (key, "/" + key)
    key, path = known
    kid = None
    if ctx.require_tokens:
        query = raw_query.decode("latin-1")
        check = ctx.verified.check(path, query, ctx.clock.now(), req.client)
        if not isinstance(check, tokens.Ok):
            return _error(403, req, ctx, f"token_{check.reason}", path=path, token_failure=check.reason)
        kid = check.kid
    f = ctx.view.lookup(key)
    if f is None:
        return _miss(req, ctx, key, raw_query.decode("latin-1"), path, kid)
    return _serve(req, ctx, f, path, kid)


def _miss(req: Request, ctx: Context, key: str, query: str, path: str, kid: str | None) -> Reply:
    if ctx.miss_base is None:
        return _error(404, req, ctx, "not_in_index", path=path, kid=kid, miss=True)
    location = f"{ctx.miss_base}/{key}" + (f"?{query}" if query else "")
    extra = b"Location: " + location.encode("latin-1") + b"\r\n"
    return _error(302, req, ctx, "redirected", path=path, extra=extra, kid=kid, miss=True)


def _serve(req: Request, ctx: Context, f: ServedFile, path: str, kid: str | None) -> Reply:
    h = req.headers
    if h.keys().isdisjoint(_CONDITIONAL):
        pre = Precondition.PROCEED
    else:
        pre = evaluate(_conditions(h), f.etag, f.last_modified)
    if pre is Precondition.NOT_MODIFIED:
        conn, close = _conn(req, ctx)
        # RFC 9110 §15.4.5: a 304 carries the validators a 200 would have, and no content.
        head = b"".join((STATUS_LINES[304], ctx.clock.date_line, SERVER,
                         b"ETag: ", f.etag.encode("latin-1"), b"\r\n", _cors(req, ctx), conn, b"\r\n"))
        return Reply(304, head, close=close, path=path, file=f, kid=kid, note="not_modified")
    if pre is Precondition.PRECONDITION_FAILED:
        return _error(412, req, ctx, "precondition_failed", path=path, kid=kid)
    plan = ranges.FULL
    range_value = h.get(b"range")
    if range_value is not None and req.method == b"GET":  # RFC 9110 §14.2: Range is for GET only
        if_range = h.get(b"if-range")
        if if_range is not None and not if_range_holds(if_range.decode("latin-1"), f.etag, f.last_modified):
            plan = ranges.Ignored("if_range")
        else:
            plan = ranges.plan_range(range_value.decode("latin-1"), f.size, max_ranges=ctx.max_ranges)
    return _ranged(req, ctx, f, path, kid, plan)


def _conditions(h: dict[bytes, bytes]) -> Conditions:
    def get(name: bytes) -> str | None:
        v = h.get(name)
        return v.decode("latin-1") if v is not None else None
    return Conditions(get(b"if-match"), get(b"if-none-match"), get(b"if-modified-since"),
                      get(b"if-unmodified-since"))


def _ranged(req: Request, ctx: Context, f: ServedFile, path: str, kid: str | None,
            plan: ranges.RangePlan) -> Reply:
    conn, close = _conn(req, ctx)
    head_only = req.method == b"HEAD"
    size = f.size
    # A type dispatch rather than `match`: this runs for every request and class patterns cost more.
    kind = type(plan)
    if kind is ranges.Partial:
        first, last = plan.range
        status, length = 206, last - first + 1
        extra = b"Content-Range: bytes %d-%d/%d\r\n" % (first, last, size)
        segments: list = [(first, length)]
        tail = f.head_tail
    elif kind is ranges.Multi:
        body = ranges.multipart_body(plan.ranges, size, f.content_type, secrets.token_hex(12))
        status, length, extra = 206, body.content_length, b""
        segments = []
        for part_head, r in body.parts:
            segments += (part_head, (r.first, r.length))
        segments.append(body.trailer)
        tail = (f"Content-Type: {body.content_type}\r\n").encode("ascii") + \
            f.head_tail[f.head_tail.index(b"\r\n") + 2:]
    elif kind is ranges.Unsatisfiable:
        extra = b"Content-Range: bytes */%d\r\n" % size
        reply = _error(416, req, ctx, "range_not_satisfiable", path=path, extra=extra, kid=kid)
        reply.range_kind, reply.file = plan.kind, f
        return reply
    else:  # Full, Ignored
        status, length, extra = 200, size, b""
        segments = [(0, size)] if size else []
        tail = f.head_tail
    head = b"".join((STATUS_LINES[status], ctx.clock.date_line, SERVER, b"Content-Length: %d\r\n" % length,
                     extra, tail, _cors(req, ctx), conn, b"\r\n"))
    if head_only:
        segments, length = [], 0
    note = plan.reason if isinstance(plan, ranges.Ignored) else "-"
    kind = plan.kind if req.method == b"GET" else None
    return Reply(status, head, close=close, path=path, file=f, segments=segments, body_len=length,
                 range_kind=kind, kid=kid, note=note)


def _options(req: Request, ctx: Context) -> Reply:
    """CORS preflight (Fetch standard §3.2.3) or a plain OPTIONS: 204 with Allow."""
    extra = ALLOW
    origin = req.headers.get(b"origin")
    asked = req.headers.get(b"access-control-request-method")
    if origin is not None and asked in (b"GET", b"HEAD") and (ctx.cors_any or origin in ctx.cors_origins):
        allow_origin = b"*" if ctx.cors_any else origin
        extra += (b"Access-Control-Allow-Origin: " + allow_origin + b"\r\n" + _PREFLIGHT_HEADERS
                  + b"Access-Control-Max-Age: %d\r\n" % ctx.config.cors.max_age)
        if not ctx.cors_any:
            extra += b"Vary: Origin\r\n"
        note = "preflight"
    else:
        note = "options" if origin is None else "preflight_refused"
    conn, close = _conn(req, ctx)
    head = simple(204, ctx.clock, close=close, extra=extra if close else extra + conn)
    return Reply(204, head, close=close, note=note)
