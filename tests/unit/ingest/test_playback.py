"""In-process ranking and manifest locations (pure)."""

from urllib.parse import parse_qs, urlsplit

import pytest

from control_plane.fleet import ApplianceSpec, ApplianceState
from control_plane.playback import Candidate, locations, rank_locally

NOW = 1_000_000.0
KEYS = ["t1/a.mp4", "t1/b.mp4"]


def state(aid, kind="embedded", *, keys=KEYS, load=0.1, health="ok", age=5.0, v4=(), v6=()):
    spec = ApplianceSpec(aid, kind, "site", "eu", "DE", 64500, f"http://{aid}:8080", 1, 1, 10**10)
    return ApplianceState(spec, NOW - age, health, load, 1, {"ipv4": list(v4), "ipv6": list(v6)}, frozenset(keys))


def ids(candidates):
    return [c.appliance_id for c in candidates]


@pytest.mark.parametrize(
    ("states", "ip", "expected"),
    [
        ([state("o", "origin", keys=()), state("x", "ixp"), state("e", v4=["203.0.113.0/24"])], "203.0.113.9",
         ["e", "x", "o"]),
        ([state("e", v4=["198.51.100.0/24"]), state("x", "ixp")], "203.0.113.9", ["x"]),  # prefix elsewhere
        ([state("e", v4=["203.0.113.0/24"], load=0.85), state("x", "ixp")], "203.0.113.9", ["x"]),  # overloaded
        ([state("e", v6=["2001:db8::/32"])], "2001:db8::1", ["e"]),
        ([state("e", v4=["203.0.113.0/24"], keys=KEYS[:1])], "203.0.113.9", []),  # does not hold every file
        ([state("x", "ixp", health="failed"), state("y", "ixp", age=1000)], "203.0.113.9", []),  # failed, stale
        ([state("x2", "ixp", load=0.5), state("x1", "ixp", load=0.5), state("x0", "ixp", load=0.2)], None,
         ["x0", "x1", "x2"]),  # ties: lower load, then id
        ([state("e", v4=["bogus", "203.0.113.0/24"])], "203.0.113.9", ["e"]),
        ([state("e", v4=["203.0.113.0/24"])], "not-an-ip", []),
    ],
)
def test_rank_locally(states, ip, expected):
    assert ids(rank_locally(states, KEYS, ip, NOW, 90.0)) == expected


def test_rank_limit_and_reason():
    states = [state(f"x{i}", "ixp") for i in range(5)] + [state("e", v4=["203.0.113.0/24"])]
    ranked = rank_locally(states, KEYS, "203.0.113.9", NOW, 90.0, limit=2)
    assert ids(ranked) == ["e", "x0"] and "203.0.113.0/24" in ranked[0].reason


def test_locations_sign_every_key_and_link_playlists():
    cands = [Candidate("isp1-a", "embedded", "http://10.0.0.5:8080", ""), Candidate("o", "origin", "http://o", "")]
    locs = locations(cands, KEYS, lambda path: f"exp=1&kid=k&sig={path}", playlist_base="hls/")
    assert [loc.pathway for loc in locs] == ["isp1-a", "o"]
    assert locs[0].urls["t1/a.mp4"] == "http://10.0.0.5:8080/t1/a.mp4?exp=1&kid=k&sig=/t1/a.mp4"
    link = urlsplit(locs[0].playlists["t1/b.mp4"])
    assert link.path == "hls/isp1-a/b.mp4.m3u8"
    assert parse_qs(link.query) == {"b": ["http://10.0.0.5:8080"], "exp": ["1"], "kid": ["k"], "sig": ["/t1/b.mp4"]}


def test_locations_unsigned_without_playlists():
    locs = locations([Candidate("o", "origin", "http://o", "")], KEYS, None)
    assert locs[0].urls == {"t1/a.mp4": "http://o/t1/a.mp4", "t1/b.mp4": "http://o/t1/b.mp4"}
    assert locs[0].playlists is None
