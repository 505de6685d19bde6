import ipaddress

import pytest

from steering import content_steering as cs
from steering.fleet import FleetModel
from steering.ranking import Client, Content, rank

from .fleetdocs import appliance, snapshot

P = ["203.0.113.0/24"]
KEYS = ["t1/a.mp4", "t1/b.mp4"]


def ranking(*apps):
    model = FleetModel.build(snapshot(list(apps)))
    who = Client("203.0.113.9", 64500, "DE", "eu-central", tuple(model.prefixes.lookup("203.0.113.9", 32)), "bgp")
    return rank(model, who, Content(title="t1"))


@pytest.mark.parametrize("protocol, query, expected", [
    (cs.Protocol.HLS, {"_HLS_pathway": "a", "_HLS_throughput": "5000000"}, cs.PlayerState("a", 5000000)),
    (cs.Protocol.DASH, {"_DASH_pathway": '"a"', "_DASH_throughput": "77"}, cs.PlayerState("a", 77)),
    (cs.Protocol.DASH, {"_HLS_pathway": "a"}, cs.PlayerState(None, None)),        # the other protocol's names
    (cs.Protocol.HLS, {"_HLS_pathway": '""', "_HLS_throughput": "fast"}, cs.PlayerState(None, None)),
    (cs.Protocol.HLS, {}, cs.PlayerState(None, None)),                            # Shaka's first request
])
def test_read_player_state(protocol, query, expected):
    assert cs.read_player_state(protocol, query) == expected


@pytest.mark.parametrize("text, expected", [
    (None, None), ("", None), ("a", ("a",)), ("a, b,,a ,c", ("a", "b", "c")), (",", None)])
def test_parse_pathways(text, expected):
    assert cs.parse_pathways(text) == expected


def _ids(r):
    return [x.appliance.id for x in r]


def test_priority_follows_the_ranking_without_player_state():
    r = ranking(appliance("x", "ixp", asn=None, keys=KEYS), appliance("e", v4=P, keys=KEYS))
    assert cs.pathway_priority(r, None, cs.PlayerState(None, None)) == ["e", "x"]


def test_current_pathway_sticks_when_equal_to_the_first():
    r = ranking(*(appliance(n, v4=P, keys=KEYS) for n in ("a", "b", "c")))
    second = _ids(r)[1]
    assert cs.pathway_priority(r, None, cs.PlayerState(second, None))[0] == second


def test_current_pathway_in_a_worse_tier_does_not_stick():
    r = ranking(appliance("x", "ixp", asn=None, keys=KEYS), appliance("e", v4=P, keys=KEYS))
    assert cs.pathway_priority(r, None, cs.PlayerState("x", None)) == ["e", "x"]


def test_overloaded_current_pathway_moves_behind():
    r = ranking(appliance("busy", v4=P, keys=KEYS, load=0.9), appliance("x", "ixp", asn=None, keys=KEYS))
    assert cs.pathway_priority(r, None, cs.PlayerState("busy", None)) == ["x", "busy"]


def test_slow_current_pathway_moves_behind_the_next_usable_one():
    r = ranking(*(appliance(n, v4=P, keys=KEYS) for n in ("a", "b", "c")))
    first, second, third = _ids(r)
    slow = cs.PlayerState(first, 1_000_000)
    assert cs.pathway_priority(r, None, slow, min_throughput_bps=2_000_000) == [second, first, third]
    fast = cs.PlayerState(first, 5_000_000)
    assert cs.pathway_priority(r, None, fast, min_throughput_bps=2_000_000) == [first, second, third]


def test_offered_pathways_restrict_the_answer_and_unusable_ones_are_left_out():
    r = ranking(appliance("e", v4=P, keys=KEYS), appliance("x", "ixp", asn=None, keys=KEYS),
                appliance("dead", v4=P, keys=KEYS, healthy=False), appliance("busy", v4=P, keys=KEYS, load=0.9))
    assert cs.pathway_priority(r, ("dead", "busy", "x", "gone"), cs.PlayerState("dead", None)) == ["x", "busy"]
    assert cs.pathway_priority(r, ("dead", "gone"), cs.PlayerState(None, None)) == []


def test_manifests():
    hls = cs.steering_manifest(cs.Protocol.HLS, ["a", "b"], ttl_s=10, reload="/s?title=t1")
    assert hls == {"VERSION": 1, "TTL": 10, "RELOAD-URI": "/s?title=t1", "PATHWAY-PRIORITY": ["a", "b"]}
    dash = cs.steering_manifest(cs.Protocol.DASH, ["a", "b"], ttl_s=5, reload="/s")
    assert dash["SERVICE-LOCATION-PRIORITY"] == dash["PATHWAY-PRIORITY"] == ["a", "b"]
    assert dash["VERSION"] == 1 and dash["TTL"] == 5


def test_reload_uri_drops_the_player_parameters():
    query = {"title": "t1", "pathways": "a,b", "_HLS_pathway": "a", "_DASH_throughput": "9"}
    assert cs.reload_uri("/api/v1/content-steering/hls", query) == \
        "/api/v1/content-steering/hls?title=t1&pathways=a%2Cb"
    assert cs.reload_uri("/p", {"_HLS_pathway": "a"}) == "/p"


LB = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize("remote, header, trusted, expected", [
    ("198.51.100.7", None, LB, "198.51.100.7"),                           # direct connection
    ("198.51.100.7", "203.0.113.9", LB, "198.51.100.7"),                 # untrusted peer: header ignored
    ("10.1.2.3", "203.0.113.9", LB, "203.0.113.9"),                      # via our balancer
    ("10.1.2.3", "6.6.6.6, 203.0.113.9, 10.9.9.9", LB, "203.0.113.9"),  # right-most untrusted; forged left
    ("fd00::1", "2001:db8::5", LB, "2001:db8::5"),
    ("10.1.2.3", "10.4.4.4", LB, "10.4.4.4"),                            # only proxies: the left-most
    ("10.1.2.3", "garbage", LB, "10.1.2.3"),
    ("10.1.2.3", "203.0.113.9", (), "10.1.2.3"),                         # no trusted proxies configured
])
def test_client_address(remote, header, trusted, expected):
    assert cs.client_address(remote, header, trusted) == expected
