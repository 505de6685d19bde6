"""oca.http.handler: the per-request decision, without sockets (a `--root` index over tmp files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oca.config import Section, read_edge_config
from oca.contentkey import InvalidKey
from oca.files import FdCache, IndexView, RootSource
from oca.http.handler import Context, Reply, Request, handle, request_key
from oca.http.response import Clock
from oca.tokens import Key, KeyRing, sign_query

SECRET = "z" * 40


def ctx_for(root: Path, **sections: dict) -> Context:
    data = {"tokens": {"mode": "open"}, **sections}
    config = read_edge_config(Section(data, "test"))
    ring = KeyRing([Key("k1", SECRET.encode())]) if config.tokens.mode == "require" else None
    ctx = Context(config, ring, IndexView(RootSource(root), FdCache(16)), Clock(lambda: 1_800_000_000.0))
    ctx.clock.now()
    return ctx


def req(target: str, method: str = "GET", **headers: str) -> Request:
    h = {k.replace("_", "-").lower().encode(): v.encode() for k, v in headers.items()}
    h.setdefault(b"host", b"edge")
    return Request(method.encode(), target.encode(), h, "1.1", True, "127.0.0.1", 0.0)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "t1").mkdir()
    (tmp_path / "t1" / "a.mp4").write_bytes(bytes(1000))
    return tmp_path


def test_full(root: Path) -> None:
    r = handle(req("/t1/a.mp4"), ctx_for(root))
    assert (r.status, r.segments, r.body_len, r.range_kind) == (200, [(0, 1000)], 1000, "none")
    assert b"Content-Length: 1000\r\n" in r.head and b"Accept-Ranges: bytes\r\n" in r.head


def test_range_plan_becomes_segments(root: Path) -> None:
    r = handle(req("/t1/a.mp4", range="bytes=10-19"), ctx_for(root))
    assert (r.status, r.segments, r.range_kind) == (206, [(10, 10)], "single")
    assert b"Content-Range: bytes 10-19/1000\r\n" in r.head
    m = handle(req("/t1/a.mp4", range="bytes=0-1,5-6"), ctx_for(root))
    assert m.status == 206 and m.range_kind == "multi"
    assert [s for s in m.segments if isinstance(s, tuple)] == [(0, 2), (5, 2)]
    assert sum(len(s) if isinstance(s, bytes) else s[1] for s in m.segments) == m.body_len


def test_head_sends_no_body(root: Path) -> None:
    r = handle(req("/t1/a.mp4", "HEAD", range="bytes=0-1"), ctx_for(root))
    assert (r.status, r.segments, r.range_kind) == (200, [], None)


@pytest.mark.parametrize(("target", "method", "status"), [
    ("/t1/b.mp4", "GET", 404), ("/../x", "GET", 400), ("/", "GET", 404), ("/t1/a.mp4", "POST", 405),
    ("/t1/a.mp4", "OPTIONS", 204),
])
def test_statuses(root: Path, target: str, method: str, status: int) -> None:
    assert handle(req(target, method), ctx_for(root)).status == status


def test_tokens_required(root: Path) -> None:
    ctx = ctx_for(root, tokens={"mode": "require", "keys_file": str(root / "t1" / "a.mp4")})
    ok = handle(req("/t1/a.mp4?" + sign_query("/t1/a.mp4", "k1", SECRET, 1_800_000_100)), ctx)
    assert ok.status == 200 and ok.kid == "k1"
    bad = handle(req("/t1/a.mp4?" + sign_query("/t1/a.mp4", "k1", SECRET, 1_799_999_999)), ctx)
    assert (bad.status, bad.token_failure, bad.note) == (403, "expired", "token_expired")


def test_redirect_keeps_query(root: Path) -> None:
    ctx = ctx_for(root, miss={"action": "redirect", "redirect_base": "http://next:8080"})
    r: Reply = handle(req("/t2/x.mp4?a=1&b=2"), ctx)
    assert r.status == 302 and b"Location: http://next:8080/t2/x.mp4?a=1&b=2\r\n" in r.head and r.miss


def test_draining_closes(root: Path) -> None:
    ctx = ctx_for(root)
    ctx.draining = True
    r = handle(req("/t1/a.mp4"), ctx)
    assert r.close and b"Connection: close\r\n" in r.head


@pytest.mark.parametrize(("raw", "key"), [(b"/t1/a.mp4", "t1/a.mp4"), (b"/t1/%61.mp4", "t1/a.mp4")])
def test_request_key(raw: bytes, key: str) -> None:
    assert request_key(raw) == key


@pytest.mark.parametrize("raw", [b"/%2e%2e/x", b"/%252e/x", b"t1/a", b"/a%00", b"/a//b", b"/\xc3\xa4"])
def test_request_key_rejects(raw: bytes) -> None:
    with pytest.raises(InvalidKey):
        request_key(raw)
