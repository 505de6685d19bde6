"""Table tests for every ranking rule and tie, then properties with hypothesis."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steering.fleet import FleetModel
from steering.ranking import Client, Content, Tier, content_hash, explain, hrw_weight, rank

from .fleetdocs import appliance, snapshot

K = "t1/a.mp4"
ALL = ["t1/a.mp4", "t1/b.mp4"]


def client(model, ip="203.0.113.9", asn=64500, country="DE", region="eu-central"):
    bits = 128 if ":" in ip else 32
    return Client(ip, asn, country, region, tuple(model.prefixes.lookup(ip, bits)), "test")


def ranked_ids(apps, *, key=K, title=None, load_limit=0.8, limit=None, **client_kw):
    """The ranking, computed both ways (walking the client's groups, classifying the holders): equal."""
    model = FleetModel.build(snapshot(apps))
    content = Content(title=title) if title else Content(key=key)
    answers = [[r.appliance.id for r in rank(model, client(model, **client_kw), content, load_limit=load_limit,
                                             limit=limit, holders_scan_max=scan)] for scan in (-1, 10**6)]
    assert answers[0] == answers[1]
    return answers[0]


def emb(name, **kw):
    kw.setdefault("keys", ALL)
    return appliance(name, **kw)


def ixp(name, **kw):
    kw.setdefault("keys", ALL)
    kw.setdefault("asn", None)
    return appliance(name, "ixp", **kw)


ORIGIN = appliance("origin", "origin", asn=None, country=None, region=None)

# (rule, appliances, client overrides, expected order)
TABLE = [
    ("covering embedded before same-ASN embedded",
     [emb("asn"), emb("cover", v4=["203.0.113.0/24"])], {}, ["cover", "asn"]),
    ("more specific covering prefix first",
     [emb("wide", v4=["203.0.0.0/16"]), emb("narrow", v4=["203.0.113.0/24"])], {}, ["narrow", "wide"]),
    ("same-ASN embedded before exchange point in country",
     [ixp("x"), emb("asn")], {}, ["asn", "x"]),
    ("embedded of another ASN is never named",
     [emb("other", asn=64999), ixp("x")], {}, ["x"]),
    ("embedded covering prefix named even in another ASN (the ISP announced the client to it)",
     [emb("cover", asn=64999, v4=["203.0.113.0/24"])], {}, ["cover"]),
    ("exchange point covering the client before exchange point in country",
     [ixp("country"), ixp("cover", country="FR", region="eu-west", v4=["203.0.113.0/24"])], {},
     ["cover", "country"]),
    ("exchange point in country before exchange point in region",
     [ixp("region", country="AT"), ixp("country")], {}, ["country", "region"]),
    ("exchange point elsewhere is not named",
     [ixp("far", country="US", region="us-east"), ORIGIN], {}, ["origin"]),
    ("exchange point in region before origin",
     [ORIGIN, ixp("region", country="AT")], {}, ["region", "origin"]),
    ("appliance lacking the key is not named",
     [emb("lacks", v4=["203.0.113.0/24"], keys=["t1/b.mp4"]), ORIGIN], {}, ["origin"]),
    ("stale appliance is not named",
     [emb("stale", v4=["203.0.113.0/24"], fresh=False), ORIGIN], {}, ["origin"]),
    ("unhealthy appliance is not named",
     [emb("sick", v4=["203.0.113.0/24"], healthy=False), ORIGIN], {}, ["origin"]),
    ("overloaded covering embedded falls behind the exchange point and origin",
     [emb("busy", v4=["203.0.113.0/24"], load=0.95), ixp("x"), ORIGIN], {}, ["x", "origin", "busy"]),
    ("load exactly at the limit counts as overloaded",
     [emb("edge", v4=["203.0.113.0/24"], load=0.8), ORIGIN], {}, ["origin", "edge"]),
    ("overloaded appliances keep their tier order among themselves",
     [ixp("busy-x", load=0.9), emb("busy-e", v4=["203.0.113.0/24"], load=0.99), ORIGIN], {},
     ["origin", "busy-e", "busy-x"]),
    ("overloaded appliance is kept when nothing else exists",
     [emb("busy", v4=["203.0.113.0/24"], load=3.0)], {}, ["busy"]),
    ("origin holds only ready renditions",
     [ORIGIN], {"key": "t9/unknown.mp4"}, []),
    ("client with no prefix, ASN or location and no origin: nobody",
     [emb("e"), ixp("x")], {"asn": None, "country": None, "region": None}, []),
    ("client with no prefix, ASN or location: origin",
     [emb("e"), ixp("x"), ORIGIN], {"asn": None, "country": None, "region": None}, ["origin"]),
    ("IPv6 prefixes cover IPv6 clients",
     [emb("v6", v6=["2001:db8:1::/48"], asn=64999), ORIGIN], {"ip": "2001:db8:1::7"}, ["v6", "origin"]),
]


@pytest.mark.parametrize("rule, apps, client_kw, expected", TABLE, ids=[row[0] for row in TABLE])
def test_rule(rule, apps, client_kw, expected):
    assert ranked_ids(apps, **client_kw) == expected


def test_title_needs_every_rendition():
    apps = [emb("half", v4=["203.0.113.0/24"], keys=["t1/a.mp4"]), emb("whole"), ORIGIN]
    assert ranked_ids(apps, title="t1") == ["whole", "origin"]


def test_reasons_name_the_rule_and_overload():
    model = FleetModel.build(snapshot([emb("cover", v4=["203.0.113.0/24"]), emb("busy", load=0.9), ixp("x"),
                                       ixp("r", country="AT"), ORIGIN]))
    result = rank(model, client(model), Content(key=K))
    assert [(r.rank, r.tier) for r in result] == [
        (1, Tier.PREFIX), (2, Tier.IXP_COUNTRY), (3, Tier.IXP_REGION), (4, Tier.ORIGIN), (5, Tier.ASN)]
    reasons = [explain(r, client(model)) for r in result]
    assert "BGP prefix 203.0.113.0/24 covers the client" in reasons[0]
    assert "country DE" in reasons[1] and "region eu-central" in reasons[2] and "origin" in reasons[3]
    assert "AS64500" in reasons[4] and "overloaded (load 0.90 >= limit 0.80)" in reasons[4]
    assert result[4].overloaded and not result[0].overloaded


def test_limit_truncates_after_ordering():
    apps = [emb("busy", v4=["203.0.113.0/24"], load=0.9), ixp("x"), ORIGIN]
    assert ranked_ids(apps, limit=2) == ["x", "origin"]


def test_load_limit_is_a_parameter():
    apps = [emb("e", v4=["203.0.113.0/24"], load=0.85), ORIGIN]
    assert ranked_ids(apps, load_limit=0.9) == ["e", "origin"]


def test_ties_go_to_rendezvous_hashing_on_the_content():
    names = [f"e{i}" for i in range(8)]
    model = FleetModel.build(snapshot([emb(n, v4=["203.0.113.0/24"], keys=["t1/a.mp4", "t2/a.mp4"])
                                       for n in names], titles={}))
    for key in ("t1/a.mp4", "t2/a.mp4"):
        order = [r.appliance.id for r in rank(model, client(model), Content(key=key))]
        h = content_hash(Content(key=key))
        by_weight = sorted(names, key=lambda n: -hrw_weight(h, model.appliances[names.index(n)].seed))
        assert order == by_weight
    # Different content lands first on different boxes (that is the point of hashing on the content).
    keys = [f"k{i}" for i in range(40)]
    spread = FleetModel.build(snapshot([emb(n, v4=["203.0.113.0/24"], keys=keys) for n in names], titles={}))
    firsts = {rank(spread, client(spread), Content(key=k))[0].appliance.id for k in keys}
    assert len(firsts) >= 4


def test_removing_an_appliance_only_moves_the_content_it_was_first_for():
    names = [f"e{i}" for i in range(6)]
    keys = [f"k{i}" for i in range(60)]
    full = FleetModel.build(snapshot([emb(n, v4=["203.0.113.0/24"], keys=keys) for n in names], titles={}))
    less = FleetModel.build(snapshot([emb(n, v4=["203.0.113.0/24"], keys=keys) for n in names[1:]], titles={}))
    for key in keys:
        before = rank(full, client(full), Content(key=key))[0].appliance.id
        after = rank(less, client(less), Content(key=key))[0].appliance.id
        assert before == "e0" or before == after


# --- properties ---------------------------------------------------------------------------------

KEYS = ["t1/a.mp4", "t1/b.mp4", "t2/a.mp4"]
PREFIXES = ["203.0.113.0/24", "203.0.0.0/16", "198.51.100.0/24", "2001:db8::/32", "2001:db8:1::/48"]


@st.composite
def fleets(draw):
    count = draw(st.integers(1, 12))
    apps = []
    for i in range(count):
        kind = draw(st.sampled_from(["embedded", "ixp", "origin"]))
        chosen = draw(st.lists(st.sampled_from(PREFIXES), unique=True, max_size=3))
        apps.append(appliance(
            f"a{i}", kind, asn=draw(st.sampled_from([64500, 64501, None])),
            country=draw(st.sampled_from(["DE", "FR", None])), region=draw(st.sampled_from(["eu", "us", None])),
            v4=[p for p in chosen if ":" not in p], v6=[p for p in chosen if ":" in p],
            keys=draw(st.lists(st.sampled_from(KEYS), unique=True)), healthy=draw(st.booleans()),
            fresh=draw(st.booleans()), load=draw(st.one_of(st.floats(0, 2), st.sampled_from([0, 1, 2]))),
            holds_all=draw(st.booleans())))
    return snapshot(apps, titles={"t1": ["t1/a.mp4", "t1/b.mp4"], "t2": ["t2/a.mp4"]})


@settings(max_examples=150, deadline=None)
@given(doc=fleets(), ip=st.sampled_from(["203.0.113.5", "203.0.7.1", "192.0.2.1", "2001:db8:1::1", "2001:db8::1"]),
       key=st.sampled_from(KEYS + ["t9/none.mp4"]), asn=st.sampled_from([64500, 64501, None]),
       country=st.sampled_from(["DE", "FR", None]), limit=st.sampled_from([None, 1, 3]))
def test_never_names_an_appliance_lacking_the_file_or_stale_and_is_stable(doc, ip, key, asn, country, limit):
    model = FleetModel.build(doc)
    who = client(model, ip=ip, asn=asn, country=country, region="eu")
    result = rank(model, who, Content(key=key), limit=limit)
    for r in result:
        assert r.appliance.fresh and r.appliance.healthy
        assert key in r.appliance.keys or (r.appliance.holds_all and key in model.ready_keys)
    assert [r.rank for r in result] == list(range(1, len(result) + 1))
    assert len({r.appliance.id for r in result}) == len(result)
    flags = [r.overloaded for r in result]
    assert flags == sorted(flags)                     # every appliance under the limit before any above it
    if limit is not None:
        assert len(result) <= limit
    again = rank(FleetModel.build(doc), who, Content(key=key), limit=limit)
    assert [(r.appliance.id, r.tier, explain(r, who)) for r in again] == [(r.appliance.id, r.tier, explain(r, who))
                                                                    for r in result]


@settings(max_examples=100, deadline=None)
@given(doc=fleets(), title=st.sampled_from(["t1", "t2"]))
def test_title_answers_hold_every_rendition(doc, title):
    model = FleetModel.build(doc)
    for r in rank(model, client(model, ip="203.0.113.5"), Content(title=title)):
        assert all(model.holds_key(r.appliance, k) for k in model.titles[title])


@settings(max_examples=150, deadline=None)
@given(doc=fleets(), ip=st.sampled_from(["203.0.113.5", "203.0.7.1", "192.0.2.1", "2001:db8:1::1"]),
       content=st.sampled_from([Content(key=k) for k in KEYS + ["t9/none.mp4"]] + [Content(title="t1")]),
       asn=st.sampled_from([64500, 64501, None]), country=st.sampled_from(["DE", "FR", None]),
       limit=st.sampled_from([None, 1, 3]), load_limit=st.sampled_from([0.8, 1, 0.0]))
def test_every_candidate_search_gives_the_same_answer(doc, ip, content, asn, country, limit, load_limit):
    """rank() walks the client's groups (compiled, or the Python reference) or classifies the content's
    holders, whichever is cheaper: all three answer alike, down to every field of every entry."""
    from steering import ranking

    model = FleetModel.build(doc)
    who = client(model, ip=ip, asn=asn, country=country, region="eu")
    by_holders = rank(model, who, content, load_limit=load_limit, limit=limit, holders_scan_max=10**6)
    by_groups = rank(model, who, content, load_limit=load_limit, limit=limit, holders_scan_max=-1)
    assert by_groups == by_holders
    assert all(type(r) is ranking.Ranked for r in by_groups)
    wanted, ready = (content.key, model.ready_keys) if content.key else (content.title, model.titles)
    args = (ranking.group_chunks(model, who, content), model.appliances, model.packed, content_hash(content, model),
            limit if limit is not None else len(model.appliances) + 1, load_limit, wanted, content.key is not None,
            ready, ranking.Ranked)
    assert ranking.scan_groups_py(*args) == by_groups


def test_a_rebuilt_model_ranks_from_its_own_groups():
    """Each model memoises its places' group chunks; a rebuild (health changed) must not see the old ones."""
    first = FleetModel.build(snapshot([emb("a"), emb("b"), ixp("x")]))
    assert [r.appliance.id for r in rank(first, client(first), Content(key=K), holders_scan_max=-1)][:2] \
        in (["a", "b"], ["b", "a"])
    second = FleetModel.build(snapshot([emb("a"), emb("b", healthy=False), ixp("x")]), previous=first)
    assert [r.appliance.id for r in rank(second, client(second), Content(key=K), holders_scan_max=-1)] == ["a", "x"]


def test_the_place_memo_stays_bounded(monkeypatch):
    from steering import ranking

    monkeypatch.setattr(ranking, "PLACES_MAX", 2)
    model = FleetModel.build(snapshot([emb("a"), ixp("x")]))
    for asn in (64500, 64501, 64502, 64503, 64500):
        expected = ["a", "x"] if asn == 64500 else ["x"]
        assert [r.appliance.id for r in rank(model, client(model, asn=asn), Content(key=K), holders_scan_max=-1)] \
            == expected
        assert len(model.place_chunks) <= 2


def test_the_group_scan_is_compiled():
    """`pip install -e .` builds steering/_groupscan.c (setup.py); without it rank() falls back to the
    Python scan, correct but slower (docs/steering.md, "Building")."""
    try:
        from steering._groupscan import scan
    except ImportError as e:
        pytest.fail(f"steering._groupscan is not built ({e}): run `pip install -e .` with gcc and the Python "
                    "headers installed (apt-get install gcc python3-dev)")
    from steering import ranking

    assert ranking.SCAN is scan


def test_the_compiled_scan_rejects_malformed_chunks():
    from steering._groupscan import scan

    from steering.ranking import Ranked

    model = FleetModel.build(snapshot([emb("a")]))
    for chunks in ([("not", "a", "chunk")], [(Tier.ASN, 1, ["a list"], frozenset(), 1)],
                   [(Tier.PREFIX, 0, (99,), frozenset(), 1)], [(Tier.PREFIX, 0, (-1,), frozenset(), 1)],
                   [(Tier.PREFIX, 0, ("0",), frozenset(), 1)]):
        with pytest.raises((TypeError, IndexError)):
            scan(chunks, model.appliances, model.packed, 1, 5, 0.8, K, True, model.ready_keys, Ranked)


def test_rendezvous_weights_spread_content_evenly():
    """Every box is first for about its share of the content, and the runner-up is not tied to the first."""
    from collections import Counter

    from steering.fleet import stable_hash64

    seeds = [stable_hash64(f"emb-{i}") for i in range(8)]
    firsts, pairs = Counter(), Counter()
    for k in range(8000):
        h = content_hash(Content(key=f"t{k}/avc-720p.mp4"))
        order = sorted(range(8), key=lambda i: -hrw_weight(h, seeds[i]))
        firsts[order[0]] += 1
        pairs[tuple(order[:2])] += 1
    assert all(850 <= n <= 1150 for n in firsts.values())             # 1,000 expected each
    assert len(pairs) == 56 and all(80 <= n <= 220 for n in pairs.values())   # ~143 expected each
