"""The compiled cached answer (steering/_answer.c) against the Python path it short-cuts.

Whenever it answers, it must write exactly the bytes `render_answer` writes for the same query through
`steer`; it must answer every plain query whose ranking the Python path cached and rendered; and it must
leave everything else (titles, odd encodings, bad input, cache misses) to the Python path.
"""

from array import array
from dataclasses import replace
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steering.decision import RankingCache, age_json, cached_answer, render_answer, steer
from steering.fleet import FleetModel
from steering.geo import NO_ANSWER, GeoAnswer
from steering.locate import LOCATE, locate, locate_py
from steering.metrics import DecisionCounts
from steering.prefixes import InvalidAddress, PrefixTable
from steering.ranking import Client, Content

from .fleetdocs import appliance, snapshot

KEYS = ["t1/a.mp4", "t1/b.mp4", "t9/x.mp4"]
LOAD_LIMIT, DEFAULT_LIMIT = 0.8, 5


class Geo:
    """GeoIP as decision.locate sees it: 192.0.2.0/24 is in AS 64500 (DE), 198.18.0.0/15 only in FR."""

    def lookup(self, address: str) -> GeoAnswer:
        if address.startswith("192.0.2."):
            return GeoAnswer(64500, "DE")
        if address.startswith("198.18."):
            return GeoAnswer(None, "FR")
        return NO_ANSWER


def model(flat: bool) -> FleetModel:
    docs = [
        appliance("a", v4=["203.0.113.0/24", "203.0.200.0/24", "198.51.100.128/25"], v6=["2001:db8::/32"],
                  keys=KEYS[:2]),
        appliance("b", v4=["203.0.0.0/16", "198.51.100.0/24"], keys=KEYS[:2], load=0.9),
        appliance("c", v4=["100.64.0.0/24"], asn=None, keys=KEYS[:1]),   # no place: GeoIP completes it
        appliance("x", "ixp", asn=None, country="FR", keys=KEYS),
        appliance("origin", "origin", asn=None, country=None, region=None),
    ]
    m = FleetModel.build(snapshot(docs))
    if not flat:
        return m
    table = PrefixTable.build(((n, d["prefixes"]["ipv4"], d["prefixes"]["ipv6"]) for n, d in enumerate(docs)),
                              flat_min=0)
    assert table.flat_index()[0] is not None
    return replace(m, prefixes=table)


IPS = ["203.0.113.5", "203.0.200.7", "203.0.9.9", "198.51.100.7", "198.51.100.200", "2001:db8::5",
       "2001:DB8:0:0::9", "192.0.2.1", "198.18.3.4", "10.1.2.3", "2001:db9::1", "100.64.0.9"]


def python_answer(m, geo, cache, ip, key, limit, age):
    decision = steer(m, geo, ip, Content(key=key), load_limit=LOAD_LIMIT, limit=limit or DEFAULT_LIMIT, cache=cache)
    return render_answer(decision, m, age)


@pytest.fixture(autouse=True)
def _compiled():
    if cached_answer is None:
        pytest.fail("steering._answer is not built: run `pip install -e .` with gcc and the Python headers "
                    "(Debian: gcc python3-dev)")


@settings(max_examples=80, deadline=None)
@given(flat=st.booleans(), with_geo=st.booleans(), size=st.sampled_from([1, 4, 1000]),
       queries=st.lists(st.tuples(st.sampled_from(IPS), st.sampled_from(KEYS), st.sampled_from([None, 1, 3]),
                                  st.booleans()), min_size=1, max_size=30))
def test_a_compiled_answer_is_the_python_answer(flat, with_geo, size, queries):
    m, geo = model(flat), Geo() if with_geo else None
    cache = RankingCache(m, max_entries=size)
    lane = cache.answer_lane(geo, LOAD_LIMIT, DEFAULT_LIMIT, DecisionCounts())
    for ip, key, limit, quoted in queries:
        params = {"ip": ip, "key": key} | ({"limit": str(limit)} if limit else {})
        path = "/api/v1/steer?" + (urlencode(params) if quoted else "&".join(f"{k}={v}" for k, v in params.items()))
        before = cached_answer(path, lane, age_json(2.5))
        expected = python_answer(m, geo, cache, ip, key, limit, 2.5)
        after = cached_answer(path, lane, age_json(2.5))
        for found in (before, after):
            if found is not None:
                assert found == expected
        # Rendered and cached now: only a prefix owner without a place (c) needs Python.
        if not ip.startswith("100.64."):
            assert after is not None, path


def test_the_finished_answers_answer_a_neighbour_as_python_does():
    m = model(flat=True)
    cache = RankingCache(m, answer_bytes=6000)
    lane = cache.answer_lane(None, LOAD_LIMIT, DEFAULT_LIMIT, DecisionCounts())
    python_answer(m, None, cache, "203.0.9.9", "t1/a.mp4", None, 0.0)
    first = cached_answer("/api/v1/steer?ip=203.0.9.9&key=t1/a.mp4", lane, b"0.0")
    assert first is not None
    [(name, stored)] = cache.answers.items()
    assert name.startswith("t1/a.mp4 ") and cache.answers_size[0] == len(name) + len(stored)
    assert first.endswith(stored[1:] + b"0.0}}")      # the tier slot, then the answer after the address
    hits, compiled = cache.hits, DecisionCounts()
    # the same /24, behind one prefix (203.0.0.0/16): from the finished answers, counted like the rest
    counted_lane = cache.answer_lane(None, LOAD_LIMIT, DEFAULT_LIMIT, compiled)
    assert cache.answers == {}                        # a new lane starts them empty
    python_answer(m, None, cache, "203.0.9.9", "t1/a.mp4", None, 0.0)
    assert cached_answer("/api/v1/steer?ip=203.0.9.9&key=t1/a.mp4", counted_lane, b"0.0") is not None
    neighbour = cached_answer("/api/v1/steer?ip=203.0.9.77&key=t1/a.mp4", counted_lane, b"1.5")
    assert neighbour == python_answer(m, None, cache, "203.0.9.77", "t1/a.mp4", None, 1.5)
    assert len(cache.answers) == 1 and cache.hits == hits + 4   # Python's two, the two compiled
    assert compiled.counts[-1] == 2 and sum(compiled.counts[:-1]) == 2 and sum(compiled.buckets) == 2
    # an explicit limit, a key not seen: not from the finished answers
    assert cached_answer("/api/v1/steer?ip=203.0.9.77&key=t1/a.mp4&limit=1", counted_lane, b"0.0") is None
    assert cached_answer("/api/v1/steer?ip=203.0.9.77&key=t1/b.mp4", counted_lane, b"0.0") is None
    # bounded in bytes (answers and keys): past answer_bytes it starts again empty
    cache.answer_bytes = 2200
    small_lane = cache.answer_lane(None, LOAD_LIMIT, DEFAULT_LIMIT, DecisionCounts())
    sizes = []
    for key in KEYS:
        python_answer(m, None, cache, "203.0.9.1", key, None, 0.0)
        assert cached_answer(f"/api/v1/steer?ip=203.0.9.1&key={key}", small_lane, b"0.0") is not None
        sizes.append(cache.answers_size[0])
        assert sizes[-1] == sum(len(k) + len(v) for k, v in cache.answers.items()) <= 2200
    assert sizes[1] > sizes[0] > sizes[2] > 0 and list(cache.answers) == ["t9/x.mp4 " + name.split()[1]]


def test_finished_answers_hold_their_lane_s_limits():
    """A reload that changes the default limit or the load limit keeps the cache (its keys hold both)
    but not the finished answers, which hold them implicitly."""
    m = model(flat=True)
    cache = RankingCache(m)
    path = "/api/v1/steer?ip=203.0.9.9&key=t1/a.mp4"
    for load_limit, limit in ((LOAD_LIMIT, DEFAULT_LIMIT), (LOAD_LIMIT, 1), (0.95, 1)):
        lane = cache.answer_lane(None, load_limit, limit, DecisionCounts())
        decision = steer(m, None, "203.0.9.9", Content(key="t1/a.mp4"), load_limit=load_limit, limit=limit,
                         cache=cache)
        expected = render_answer(decision, m, 0.0)
        assert cached_answer(path, lane, b"0.0") == expected       # through the full lookup, kept
        assert cached_answer(path, lane, b"0.0") == expected       # from the finished answers
        assert len(cache.answers) == 1


def test_finished_answers_can_be_turned_off():
    m = model(flat=True)
    cache = RankingCache(m, answer_bytes=0)
    lane = cache.answer_lane(None, LOAD_LIMIT, DEFAULT_LIMIT, DecisionCounts())
    expected = python_answer(m, None, cache, "203.0.9.9", "t1/a.mp4", None, 0.0)
    for _ in range(2):
        assert cached_answer("/api/v1/steer?ip=203.0.9.9&key=t1/a.mp4", lane, b"0.0") == expected
    assert cache.answers == {} and cache.answers_size[0] == 0


def test_a_multi_prefix_client_gets_every_prefix_in_its_reasons():
    m = model(flat=True)
    cache = RankingCache(m)
    lane = cache.answer_lane(None, LOAD_LIMIT, DEFAULT_LIMIT, DecisionCounts())
    path = "/api/v1/steer?ip=198.51.100.200&key=t1%2Fa.mp4"
    expected = python_answer(m, None, cache, "198.51.100.200", "t1/a.mp4", None, 0.0)
    found = cached_answer(path, lane, age_json(0.0))
    assert found == expected
    assert b"198.51.100.128/25" in found and b"198.51.100.0/24" in found


@pytest.mark.parametrize("query", [
    "ip=203.0.113.5&title=t1",                       # titles: the Python path
    "ip=203.0.113.5&key=t1/a.mp4&title=t1",
    "ip=203.0.113.5&key=t1/a.mp4&extra=1",           # unknown parameter
    "ip=203.0.113.5&ip=203.0.113.6&key=t1/a.mp4",    # repeated parameter
    "ip=203.0.113.5&key=t1/a.mp4&",                  # empty field
    "ip=203.0.113.5&key",
    "key=t1/a.mp4",                                  # no address
    "ip=&key=t1/a.mp4",
    "ip=203.0.113.5&key=",
    "ip=203.0.113.5&key=t1/a+b.mp4",                 # '+' (a space once form-decoded)
    "ip=203.0.113.5&key=t1%2",                       # cut percent escape
    "ip=203.0.113.5&key=t1%zz",
    "ip=203.0.113.5&key=t1%00a",                     # NUL
    "ip=203.0.113.5&key=t1/%C3%A9.mp4",              # non-ASCII
    "ip=203.0.113.5&key=t1/../a.mp4",                # invalid keys: validate_key's rules
    "ip=203.0.113.5&key=/t1/a.mp4",
    "ip=203.0.113.5&key=t1//a.mp4",
    "ip=203.0.113.5&key=t1/a.mp4/",
    "ip=203.0.113.5&key=t1/./a.mp4",
    "ip=203.0.113.5&key=t1/a%20b",
    "ip=203.0.113.5&key=" + "k" * 513,
    "ip=203.0.113.999&key=t1/a.mp4",                 # invalid addresses
    "ip=203.0.113&key=t1/a.mp4",
    "ip=2001:db8::1%25eth0&key=t1/a.mp4",
    "ip=::ffff:203.0.113.5&key=t1/a.mp4",            # IPv4-mapped: normalize_ip rewrites it
    "ip=203.0.113.5&key=t1/a.mp4&limit=0",           # limits outside 1..1000
    "ip=203.0.113.5&key=t1/a.mp4&limit=1001",
    "ip=203.0.113.5&key=t1/a.mp4&limit=-1",
    "ip=203.0.113.5&key=t1/a.mp4&limit=3a",
    "ip=203.0.113.5&key=t1/a.mp4&limit=",
    "ip=203.0.113.5&key=t9/x.mp4",                   # not cached (nobody asked before)
])
def test_anything_but_a_plain_cached_query_is_left_to_python(query):
    m = model(flat=True)
    cache = RankingCache(m)
    for key in KEYS[:2]:
        for limit in (None, 3):
            python_answer(m, None, cache, "203.0.113.5", key, limit, 0.0)
    lane = cache.answer_lane(None, LOAD_LIMIT, DEFAULT_LIMIT, DecisionCounts())
    assert cached_answer("/api/v1/steer?ip=203.0.113.5&key=t1/a.mp4", lane, b"0.0") is not None
    assert cached_answer(f"/api/v1/steer?{query}", lane, b"0.0") is None


def test_leading_zeros_in_a_limit_are_the_same_limit():
    m = model(flat=True)
    cache = RankingCache(m)
    expected = python_answer(m, None, cache, "203.0.113.5", "t1/a.mp4", 3, 0.0)
    found = cached_answer("/api/v1/steer?limit=003&key=t1/a.mp4&ip=203.0.113.5",
                          cache.answer_lane(None, LOAD_LIMIT, DEFAULT_LIMIT, DecisionCounts()), b"0.0")
    assert found == expected


def test_an_entry_ranked_but_not_yet_rendered_is_left_to_python():
    m = model(flat=True)
    cache = RankingCache(m)
    steer(m, None, "203.0.113.5", Content(key="t1/a.mp4"), load_limit=LOAD_LIMIT, limit=DEFAULT_LIMIT, cache=cache)
    lane = cache.answer_lane(None, LOAD_LIMIT, DEFAULT_LIMIT, DecisionCounts())
    assert cached_answer("/api/v1/steer?ip=203.0.113.5&key=t1/a.mp4", lane, b"0.0") is None


@pytest.mark.parametrize("lane", [
    (), ("not", "a", "lane"),
    ((b"blocks", [None], None, (), {}), None, {}, 5, 0.8, b"", ()),     # a bytes object is not an int32 index
    ((None, [None], None, ()), None, {}, 5, 0.8, b"", ()),               # parts of 4
])
def test_a_malformed_lane_raises_instead_of_crashing(lane):
    with pytest.raises(TypeError):
        cached_answer("/api/v1/steer?ip=203.0.113.5&key=t1/a.mp4", lane, b"0.0")


def test_compiled_answers_are_counted_as_the_python_path_counts_decisions():
    m = model(flat=True)
    python, compiled = DecisionCounts(), DecisionCounts()
    cache = RankingCache(m)
    lane = cache.answer_lane(Geo(), LOAD_LIMIT, DEFAULT_LIMIT, compiled)
    queries = [("203.0.113.5", "t1/a.mp4"), ("192.0.2.1", "t1/b.mp4"), ("10.1.2.3", "t1/a.mp4"),
               ("198.18.3.4", "t9/x.mp4")]
    for ip, key in queries:     # ranked and rendered by the Python path: one miss each
        decision = steer(m, Geo(), ip, Content(key=key), load_limit=LOAD_LIMIT, limit=DEFAULT_LIMIT, cache=cache)
        render_answer(decision, m, 0.0)
        python.add("steer", decision.tier_label, 1e-6)
    for ip, key in queries * 2:
        assert cached_answer(f"/api/v1/steer?ip={ip}&key={key}", lane, b"0.0") is not None
    assert (cache.hits, cache.misses) == (8, 4)
    steer_counts = {k: n for k, n in compiled.index.items() if compiled.counts[n]}
    assert {k: compiled.counts[n] for k, n in steer_counts.items()} == \
        {k: 2 * python.counts[python.index[k]] for k in steer_counts}
    assert sum(compiled.counts[:-1]) == 8 and compiled.counts[-1] == 8     # the last: compiled answers
    assert sum(compiled.buckets) == 8 and 0 < compiled.seconds[0] < 1


@pytest.mark.parametrize("counting", [
    (), (None,) * 6,
    (array("q", [0]), array("q", [0]), array("d", [0.0]), array("d", [1.0]), 0, array("q", [0])),  # too few
])
def test_malformed_counting_arrays_raise(counting):
    m = model(flat=True)
    cache = RankingCache(m)
    python_answer(m, None, cache, "203.0.113.5", "t1/a.mp4", None, 0.0)
    lane = cache.answer_lane(None, LOAD_LIMIT, DEFAULT_LIMIT, DecisionCounts())
    lane = lane[:6] + (counting,) + lane[7:]
    with pytest.raises((TypeError, IndexError), match="counting|tier slot|integer"):
        cached_answer("/api/v1/steer?ip=203.0.113.5&key=t1/a.mp4", lane, b"0.0")


def test_a_replaced_model_is_not_kept_alive_by_the_lane():
    import gc
    import time
    import weakref

    from prometheus_client import CollectorRegistry

    from steering.config import ContentSteeringConfig, RankingConfig
    from steering.fleet import ModelHolder
    from steering.metrics import SteeringMetrics
    from steering.service import Settings, SteeringHandlers

    holder = ModelHolder(time.monotonic)
    handlers = SteeringHandlers(Settings(RankingConfig(), ContentSteeringConfig()), holder, None,
                                SteeringMetrics(CollectorRegistry(), holder.age))
    old = model(flat=True)
    holder.swap(old)
    assert handlers.answer_from_cache("/api/v1/steer?ip=203.0.113.5&key=t1/a.mp4") is None   # a miss
    assert handlers._lane is not None
    gone = weakref.ref(old)
    del old
    holder.swap(model(flat=True))
    # Only content steering is asked for after the swap: its decision replaces the cache, and the lane.
    handlers._decide(handlers.runtime, "hls", holder.model, "203.0.113.5", Content(key="t1/a.mp4"), None)
    gc.collect()
    assert gone() is None


@settings(max_examples=100, deadline=None)
@given(flat=st.booleans(), with_geo=st.booleans(),
       ips=st.lists(st.one_of(st.sampled_from(IPS + ["::ffff:203.0.113.6", "::ffff:192.0.2.1", "not-an-ip",
                                                     "203.0.113.5\x00", "203.0.113.05", " 203.0.113.5", ""]),
                              st.ip_addresses().map(str)), min_size=1, max_size=30))
def test_compiled_locate_equals_the_python_locate(flat, with_geo, ips):
    m, geo = model(flat), Geo() if with_geo else None
    for ip in ips:
        try:
            expected = locate_py(m, geo, ip)
        except InvalidAddress:
            with pytest.raises(InvalidAddress):
                locate(m, geo, ip)
            assert LOCATE(ip, m.locate_parts, geo.lookup if geo else None, Client) is None
            continue
        compiled = LOCATE(ip, m.locate_parts, geo.lookup if geo else None, Client)
        assert locate(m, geo, ip) == expected
        if compiled is not None:
            assert type(compiled) is Client and compiled == expected
        elif not ip.startswith("::ffff:") and not ip.startswith("100.64."):
            pytest.fail(f"{ip!r} was left to Python")
