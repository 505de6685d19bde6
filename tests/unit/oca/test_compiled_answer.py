"""The edge's compiled request path (oca/http/_serve.c) against the Python path it shortens.

Two workers' worth of state over the same files — one with the compiled path, one without — get
the same requests on fresh connections (a socket pair each), twice: the first time warms the caches
the compiled path reads (validated paths, index lookups, open descriptors, verified tokens), the
second is where it answers. Everything a client or an operator sees must be the same: the bytes on
the wire, the access-log lines (but for the duration) and the metrics (but for timings).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bench.edge_hotpath import SocketTransport
from oca.accesslog import AccessLog
from oca.config import Section, read_edge_config
from oca.files import FdCache, IndexView, RootSource, ServedFile
from oca.http import compiled
from oca.http.handler import Context
from oca.http.protocol import EdgeProtocol, Shared
from oca.http.response import Clock
from oca.metrics import WorkerMetrics
from oca.tokens import Key, KeyRing, sign_query

pytestmark = pytest.mark.skipif(compiled.Head is None, reason="oca/http/_serve.c is not built: run `make test`")

NOW = 1_800_000_000.0
SECRET = "s" * 40
CLIENT = "203.0.113.9"
ETAG_SEEN = "the file's ETag"  # stands for it in generated headers


class _TieredRoot(RootSource):
    """A `--root` index whose files claim to be on an ssd tier (as the store's are: no fstat per request)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.files = {k: ServedFile(f.key, "ssd", "d1", f.path, f.size, f.etag, f.mtime_ns)
                      for k, f in self.files.items()}


class Worker:
    def __init__(self, root: Path, log: Path, *, compiled_path: bool, tokens: bool, cors: list[str],
                 tier: str, limits: dict | None = None) -> None:
        keys_file = str(root / "t1" / "a.mp4")  # read_edge_config checks it exists; the ring is given below
        sections: dict = {"tokens": {"mode": "require", "keys_file": keys_file} if tokens else {"mode": "open"},
                          "server": {"compiled_path": compiled_path}}
        if cors:
            sections["cors"] = {"allowed_origins": cors}
        if limits:
            sections["limits"] = limits
        config = read_edge_config(Section(sections, "test"))
        ring = KeyRing([Key("k1", SECRET.encode())]) if tokens else None
        source = RootSource(root) if tier == "root" else _TieredRoot(root)
        self.fds = FdCache(16)
        self.ctx = Context(config, ring, IndexView(source, self.fds), Clock(lambda: NOW))
        self.log = log
        self.shared = Shared(self.ctx, self.fds, WorkerMetrics(), AccessLog(log, buffer_bytes=1 << 30))

    def exchange(self, raw: bytes) -> bytes:
        """`raw` on a new connection; everything the worker sent back."""
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        proto = EdgeProtocol(self.shared)
        proto.connection_made(SocketTransport(a, (CLIENT, 40000)))  # type: ignore[arg-type]
        proto.data_received(raw)
        out = b""
        try:
            while chunk := b.recv(1 << 20):
                out += chunk
        except BlockingIOError:
            pass
        proto.connection_lost(None)
        a.close()
        b.close()
        return out

    def exchange_head(self) -> object:
        """The head reader a new connection gets."""
        a, b = socket.socketpair()
        proto = EdgeProtocol(self.shared)
        proto.connection_made(SocketTransport(a, (CLIENT, 40000)))  # type: ignore[arg-type]
        head = proto.head
        proto.connection_lost(None)
        a.close()
        b.close()
        return head

    def log_lines(self) -> list[str]:
        self.shared.access.flush()
        self.shared.access.close()
        self.shared.access = AccessLog(self.log, buffer_bytes=1 << 30)
        return [re.sub(r" \d+\.\d{6} ", " DURATION ", line) for line in self.log.read_text().splitlines()]

    def counts(self) -> dict:
        snap = self.shared.metrics.snapshot()
        snap["requests_timed"] = sum(snap.pop("buckets"))
        for timing_or_share in ("duration_sum", "compiled"):
            snap.pop(timing_or_share)
        return snap


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    (root / "t1").mkdir()
    (root / "t1" / "a.mp4").write_bytes(os.urandom(1000))
    (root / "t1" / "seg-1.m4s").write_bytes(os.urandom(70_000))  # more than flow.MORE_MAX
    (root / "t1" / "empty.mp4").write_bytes(b"")
    return root


def pair(root: Path, tmp: Path, **kw: object) -> tuple[Worker, Worker]:
    return (Worker(root, tmp / "compiled.log", compiled_path=True, **kw),   # type: ignore[arg-type]
            Worker(root, tmp / "python.log", compiled_path=False, **kw))    # type: ignore[arg-type]


def signed(path: str, expires: float = NOW + 100, cp: str | None = None) -> str:
    return path + "?" + sign_query(path, "k1", SECRET, int(expires), cp)


def request(target: str, *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}", *(["Host: edge"] if version == "1.1" else []), *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_BOUNDARY = re.compile(rb"[0-9a-f]{24}")  # a multipart boundary is random per response


def assert_same(c: Worker, p: Worker, raw: bytes) -> tuple[bytes, int]:
    """`raw` twice to both workers, the same bytes back each time; the compiled answers of the second."""
    for _ in range(2):
        before = c.shared.metrics.compiled
        got, want = c.exchange(raw), p.exchange(raw)
        assert _BOUNDARY.sub(b"B", got) == _BOUNDARY.sub(b"B", want), raw
    return got, c.shared.metrics.compiled - before


# -- which requests the compiled path answers --------------------------------------------------
ANSWERED = [
    request("/t1/a.mp4"),
    request("/t1/a.mp4", "Range: bytes=0-99"),
    request("/t1/a.mp4", "Range: bytes=900-"),
    request("/t1/a.mp4", "Range: bytes=990-5000"),
    request("/t1/a.mp4", "Range: bytes=999-999"),
    request("/t1/a.mp4", "Range: bytes=10-19", "User-Agent: \"q\" \\ \t \xe9", "Accept: */*"),
    request("/t1/a.mp4", "Range: bytes=0-0", method="HEAD"),
    request("/t1/%61.mp4", "Range: bytes=1-2"),
    request("/t1/seg-1.m4s", "Range: bytes=0-65535"),
    request("/t1/seg-1.m4s"),
    request("/t1/a.mp4", "Range: bytes=0-9", "Connection: keep-alive", version="1.0"),
    request("/t1/a.mp4", "Range: bytes=0-9", "Origin: https://player.example"),
    request("/t1/a.mp4", "Range: bytes=0-9", "Origin: https://other.example"),
    request("/t1/empty.mp4"),                                     # no body: no descriptor needed
    request("/t1/a.mp4", method="HEAD"),
    request("/t1/a.mp4", "If-None-Match: \"x\""),                 # no match: 200
    request("/t1/a.mp4", "If-None-Match: *"),                     # 304
    request("/t1/a.mp4", "If-None-Match: ETAG", "Range: bytes=0-9"),  # what players send: 304
    request("/t1/a.mp4", "If-None-Match: \"x\", W/ETAG", method="HEAD"),  # weak comparison: 304
    request("/t1/a.mp4", "If-None-Match: \"x\" \"y\""),           # malformed: matches nothing, 200
    request("/t1/a.mp4", "If-None-Match: ETAG", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT"),
    request("/t1/a.mp4", "Range: bytes=0-9", "If-Range: ETAG"),   # holds: 206
    request("/t1/a.mp4", "Range: bytes=0-9", "If-Range: W/ETAG"),  # weak never holds: 200, whole file
    request("/t1/a.mp4", "Range: bytes=0-9", "If-Range: \"x\""),
    request("/t1/a.mp4", "If-Range: \"x\""),                       # no Range: If-Range ignored
]
DECLINED = [
    request("/t1/a.mp4", "Range: bytes=-100"),
    request("/t1/a.mp4", "Range: bytes=0-1,5-6"),
    request("/t1/a.mp4", "Range: bytes=5-1"),
    request("/t1/a.mp4", "Range: bytes=1000-"),
    request("/t1/a.mp4", "Range: bytes = 0-1"),
    request("/t1/a.mp4", "Range: bytes=0000000000000000001-2"),
    request("/t1/empty.mp4", "Range: bytes=0-1"),
    request("/t1/a.mp4", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT"),
    request("/t1/a.mp4", "If-Match: *"),
    request("/t1/a.mp4", "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT"),
    request("/t1/a.mp4", "Range: bytes=0-1", "If-Range: Thu, 01 Jan 1970 00:00:00 GMT"),
    request("/t1/a.mp4", "Content-Length: 0"),
    request("/t1/a.mp4", "Connection: close"),
    request("/t1/a.mp4", version="1.0"),
    request("/t1/a.mp4", "Host: second"),
    request("/t1/missing.mp4"),
    request("/t1/../a.mp4"),
    request("http://edge/t1/a.mp4"),
    request("/t1/a.mp4", method="POST"),
    request("/t1/a.mp4", method="OPTIONS"),
]


@pytest.mark.parametrize("tier", ["root", "ssd"])
def test_answered_and_declined(root: Path, tmp_path: Path, tier: str) -> None:
    c, p = pair(root, tmp_path, tokens=False, cors=["https://player.example"], tier=tier)
    etag = c.ctx.view.lookup("t1/a.mp4").etag.encode()  # type: ignore[union-attr]
    for raw in ANSWERED + DECLINED:
        answered = raw in ANSWERED
        raw = raw.replace(b"ETAG", etag)
        assert assert_same(c, p, raw)[1] == (1 if answered else 0), raw
    assert c.log_lines() == p.log_lines()
    assert c.counts() == p.counts()


def test_heads_are_read_and_bounded_alike(root: Path, tmp_path: Path) -> None:
    """The compiled Head against head.Head: field names folded, repeats joined, the same limits."""
    c, p = pair(root, tmp_path, tokens=False, cors=[], tier="ssd",
                limits={"max_request_line": 256, "max_headers": 5, "max_header_bytes": 512})
    cases = {  # request: (answered compiled, status)
        request("/t1/a.mp4", "RANGE: bytes=0-9", "user-AGENT: a", "X-A: 1", "x-a: 2"): (1, 206),
        request("/t1/a.mp4", "Range: bytes=0-9", "Range: bytes=1-2"): (0, 200),  # "bytes=0-9, bytes=1-2": ignored
        request("/t1/a.mp4?" + "x" * 250): (0, 414),
        request("/t1/a.mp4", *[f"X-{i}: 1" for i in range(5)]): (0, 431),    # six fields with Host
        request("/t1/a.mp4", "X-Big: " + "y" * 510): (0, 431),
        request("/t1/a.mp4", "Range: bytes=0-9", "HOST: again"): (0, 400),   # two Host fields
    }
    for raw, (answered, status) in cases.items():
        got, compiled_answers = assert_same(c, p, raw)
        assert (compiled_answers, got[9:12]) == (answered, b"%d" % status), raw
    assert c.log_lines() == p.log_lines()
    assert c.counts() == p.counts()
    assert type(c.exchange_head()) is compiled.Head and type(p.exchange_head()) is not compiled.Head


def test_tokens(root: Path, tmp_path: Path) -> None:
    c, p = pair(root, tmp_path, tokens=True, cors=[], tier="ssd")
    cases = {
        signed("/t1/a.mp4"): 1,
        signed("/t1/a.mp4") + "&other=1": 1,          # remembered as its exact query
        signed("/t1/a.mp4", expires=NOW - 1): 0,     # 403 expired
        signed("/t1/a.mp4", cp="203.0.113.0/24"): 1,  # bound to the client's network
        signed("/t1/a.mp4", cp="203.0.113.8/29"): 1,
        signed("/t1/a.mp4", cp="203.0.113.9/32"): 1,
        signed("/t1/a.mp4", cp="203.0.113.0/29"): 0,  # another network: 403 from Python
        signed("/t1/a.mp4", cp="198.51.100.0/24"): 0,
        signed("/t1/a.mp4", cp="2001:db8::/48"): 0,
        signed("/t1/seg-1.m4s")[:-1] + "0": 0,        # bad signature
        "/t1/a.mp4": 0,                               # missing
    }
    for target, answered in cases.items():
        assert assert_same(c, p, request(target, "Range: bytes=0-9"))[1] == answered, target
    assert c.log_lines() == p.log_lines()
    assert c.counts() == p.counts()


def test_draining_is_left_to_python(root: Path, tmp_path: Path) -> None:
    c, p = pair(root, tmp_path, tokens=False, cors=[], tier="ssd")
    raw = request("/t1/a.mp4", "Range: bytes=0-9")
    assert_same(c, p, raw)
    c.ctx.draining = p.ctx.draining = True
    got, answered = assert_same(c, p, raw)
    assert b"Connection: close\r\n" in got and answered == 0


def test_pipelined_answers_keep_their_order(root: Path, tmp_path: Path) -> None:
    c, p = pair(root, tmp_path, tokens=False, cors=[], tier="ssd")
    raw = b"".join([request("/t1/a.mp4", "Range: bytes=0-9"), request("/t1/a.mp4", "Range: bytes=10-19"),
                    request("/t1/a.mp4", method="HEAD"), request("/t1/missing.mp4"),
                    request("/t1/a.mp4", "Range: bytes=20-29"), b"BAD REQUEST\r\n\r\n"])
    got, answered = assert_same(c, p, raw)
    assert [int(s) for s in re.findall(rb"HTTP/1.1 (\d{3})", got)] == [206, 206, 200, 404, 206, 400]
    assert answered == 3  # from the 404 on, requests wait in the queue: the Python path answers them
    assert c.log_lines() == p.log_lines()


def test_a_new_configuration_drops_the_lane(root: Path, tmp_path: Path) -> None:
    c, _ = pair(root, tmp_path, tokens=False, cors=[], tier="ssd")
    raw = request("/t1/a.mp4", "Range: bytes=0-9", "Origin: https://player.example")
    assert b"Access-Control" not in c.exchange(raw) + c.exchange(raw)
    c.ctx.configure(read_edge_config(Section({"tokens": {"mode": "open"}, "cors": {"allowed_origins": ["*"]}},
                                             "test")), None)
    assert c.ctx.lane is None
    assert b"Access-Control-Allow-Origin: *\r\n" in c.exchange(raw) + c.exchange(raw)
    assert c.shared.metrics.compiled == 2


# -- the property: any request, same answer ----------------------------------------------------
_numbers = st.one_of(st.integers(0, 1100), st.integers(0, 10**20)).map(str)
_small = st.integers(0, 1100).map(str)
_ranges = st.one_of(
    st.builds(lambda a, b: f"bytes={a}-{b}", _small, _small),
    st.builds(lambda a, b: f"bytes={a}-{b}", _numbers, _numbers),
    st.builds(lambda a: f"bytes={a}-", _numbers),
    st.builds(lambda a: f"bytes=-{a}", _numbers),
    st.builds(lambda a, b, c: f"bytes={a}-{b},{c}-", _numbers, _numbers, _numbers),
    st.text(st.sampled_from("bytes=0123456789-, \t"), max_size=20),
)
_etag_lists = st.lists(st.sampled_from([ETAG_SEEN, f"W/{ETAG_SEEN}", '"x"', "W/", '"', "*", ",", " ", "\t", "x"]),
                      max_size=5).map("".join)
_headers = st.lists(st.one_of(
    _ranges.map(lambda r: f"Range: {r}"),
    _etag_lists.map(lambda v: f"If-None-Match: {v}"),
    _etag_lists.map(lambda v: f"If-Range: {v}"),
    st.sampled_from(["ORIGIN: https://player.example", "range: bytes=0-9", "X-Twice: 1", "x-twice: 2",
                     "Origin: https://player.example", "Origin: https://other.example", "Connection: close",
                     "Connection: keep-alive", "If-None-Match: \"x\"", f"If-None-Match: {ETAG_SEEN}",
                     f"If-None-Match: \"x\",W/{ETAG_SEEN}", f"If-None-Match: {ETAG_SEEN} \"x\"", "If-None-Match: *",
                     "If-None-Match: , ,", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT",
                     f"If-Range: {ETAG_SEEN}", f"If-Range: W/{ETAG_SEEN}", f"If-Range: {ETAG_SEEN}, \"x\"",
                     "If-Range: \"x\"", "Content-Length: 0", "Host: again", "Upgrade: h2c",
                     "Accept-Encoding: gzip", "X-Custom: 1"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xff, blacklist_characters="\x7f"), max_size=30)
    .map(lambda ua: f"User-Agent: {ua.strip()}"),
), max_size=4)
_targets = st.sampled_from(["/t1/a.mp4", "/t1/%61.mp4", "/t1/seg-1.m4s", "/t1/empty.mp4", "/t1/missing.mp4",
                            "/", "/t1/a.mp4?x=1"])


@pytest.mark.parametrize(("tokens", "cors", "tier"), [(False, [], "root"), (False, ["*"], "ssd"),
                                                       (True, ["https://player.example"], "ssd")])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=_targets, headers=_headers, method=st.sampled_from(["GET", "GET", "HEAD", "POST"]),
       version=st.sampled_from(["1.1", "1.1", "1.0"]), data=st.data())
def test_any_request_gets_the_python_paths_answer(root: Path, tmp_path: Path, tokens: bool, cors: list[str],
                                                  tier: str, target: str, headers: list[str], method: str,
                                                  version: str, data: st.DataObject) -> None:
    c, p = _workers(root, tmp_path, tokens, cors, tier)
    if tokens and data.draw(st.integers(0, 3)):
        path = target.partition("?")[0]
        target = signed(path.replace("%61", "a"), expires=data.draw(st.sampled_from([NOW + 100] * 3 + [NOW - 1])))
    etag = c.ctx.view.lookup("t1/a.mp4").etag  # type: ignore[union-attr]
    headers = [h.replace(ETAG_SEEN, etag) for h in headers]
    event("answered compiled" if assert_same(c, p, request(target, *headers, method=method, version=version))[1]
          else "answered by Python")
    assert c.counts() == p.counts()
    assert c.log_lines() == p.log_lines()


_WORKERS: dict = {}


def _workers(root: Path, tmp_path: Path, tokens: bool, cors: list[str], tier: str) -> tuple[Worker, Worker]:
    """One pair per configuration for all examples: warm caches are the point."""
    key = (tokens, tuple(cors), tier)
    if key not in _WORKERS:
        tmp = tmp_path / "-".join(map(str, key)).replace("/", "_")
        tmp.mkdir(parents=True, exist_ok=True)
        _WORKERS[key] = pair(root, tmp, tokens=tokens, cors=cors, tier=tier)
    return _WORKERS[key]
