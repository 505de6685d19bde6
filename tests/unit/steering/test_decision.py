import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from steering.decision import RankingCache, answer_document, render_answer, steer
from steering.fleet import FleetModel
from steering.ranking import Content

from .fleetdocs import appliance, snapshot

KEYS = ["t1/a.mp4", "t1/b.mp4"]


def model():
    return FleetModel.build(snapshot([
        appliance("a", v4=["203.0.113.0/24", "203.0.200.0/24", "198.51.100.0/24"], v6=["2001:db8::/32"], keys=KEYS),
        appliance("b", v4=["203.0.0.0/16"], keys=KEYS, load=0.9),
        appliance("c", keys=["t1/a.mp4"]),
        appliance("x", "ixp", asn=None, keys=KEYS),
        appliance("origin", "origin", asn=None, country=None, region=None),
    ]))


IPS = ["203.0.113.5", "198.51.100.7", "203.0.9.9", "2001:db8::5", "192.0.2.1", "::ffff:203.0.113.6"]
CONTENTS = [Content(key="t1/a.mp4"), Content(key="t1/b.mp4"), Content(key="t9/x.mp4"), Content(title="t1")]


@settings(max_examples=60, deadline=None)
@given(requests=st.lists(st.tuples(st.sampled_from(IPS), st.sampled_from(CONTENTS),
                                   st.sampled_from([None, 1, 3])), min_size=1, max_size=40),
       size=st.sampled_from([1, 3, 1000]))
def test_cached_answers_equal_fresh_ones(requests, size):
    m = model()
    cache = RankingCache(m, max_entries=size)
    for ip, content, limit in requests:
        cached = steer(m, None, ip, content, limit=limit, cache=cache)
        fresh = steer(m, None, ip, content, limit=limit)
        assert answer_document(cached, m, 0.0) == answer_document(fresh, m, 0.0)
        # The service's renderer (pieces cached with the ranking) writes exactly the document's JSON.
        for decision in (cached, fresh, cached):
            assert render_answer(decision, m, 1.23456) == orjson.dumps(answer_document(decision, m, 1.23456))
    assert len(cache._entries) <= size
    assert cache.hits + cache.misses == len(requests)


def test_clients_behind_different_prefixes_of_the_same_appliance_share_a_ranking_but_not_a_reason():
    m = model()
    cache = RankingCache(m)
    one = steer(m, None, "203.0.113.5", Content(key="t1/a.mp4"), cache=cache)
    two = steer(m, None, "203.0.200.7", Content(key="t1/a.mp4"), cache=cache)   # also under b's /16
    assert cache.hits == 1 and one.candidates is two.candidates
    reasons = [answer_document(d, m, 0.0)["candidates"][0]["reason"] for d in (one, two)]
    assert "203.0.113.0/24" in reasons[0] and "203.0.200.0/24" in reasons[1]


def test_rendered_answers_carry_each_clients_own_prefix_even_with_a_nul_in_an_id():
    m = FleetModel.build(snapshot([
        appliance("a\x00b", v4=["203.0.113.0/24", "203.0.200.0/24", "203.0.0.0/16"], keys=KEYS, load=0.95),
    ]))
    cache = RankingCache(m)
    for ip, prefix in (("203.0.113.5", "203.0.113.0/24"), ("203.0.200.7", "203.0.200.0/24")):
        decision = steer(m, None, ip, Content(key="t1/a.mp4"), cache=cache)
        body = orjson.loads(render_answer(decision, m, 0.0))
        assert body == answer_document(decision, m, 0.0)
        assert body["candidates"][0]["reason"].startswith(f"embedded appliance whose BGP prefix {prefix} covers")
        assert "overloaded" in body["candidates"][0]["reason"]
    assert cache.hits == 1
