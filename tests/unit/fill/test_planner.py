"""The fill planner, table-driven: evict first, move, fetch in rank order while it fits."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fill.manifest import Item, Manifest, Source
from fill.planner import DropPartial, Evict, EvictReason, Fetch, Held, Move, SkipReason, Staged, plan

SRC = (Source("origin", "http://origin/x", None),)


def sha(n: int) -> str:
    return f"{n:064x}"


def item(rank, key, size, tier="hdd", digest=None):
    return Item(rank, key, None, size, digest or sha(rank), tier, SRC)


def manifest(*items):
    return Manifest("a", 1, "2026-11-25T00:00:00Z", tuple(items))


def held(key, size, tier="hdd", digest=None, ready=True, rank=0):
    return Held(key, tier, size, digest or sha(rank), ready)


def summary(p):
    out = []
    for a in p.actions:
        match a:
            case Evict(key=k, reason=r):
                out.append(("evict", k, r.value))
            case Move(key=k, to_tier=t):
                out.append(("move", k, t))
            case Fetch(item=i, tier=t):
                out.append(("fetch", i.key, t))
            case DropPartial(key=k, size=n):
                out.append(("drop", k, n))
    return out


def skips(p):
    return [(s.key, s.reason.value) for s in p.skipped]


def test_empty_store_fetches_everything_in_rank_order():
    p = plan(manifest(item(1, "a", 10), item(2, "b", 10, "ssd")), [], {"ssd": 100, "hdd": 100},
             default_tier="hdd")
    assert summary(p) == [("fetch", "a", "hdd"), ("fetch", "b", "ssd")]
    assert p.fetch_bytes == 20 and p.used_after == {"ssd": 10, "hdd": 10}


def test_everything_held_is_an_empty_plan():
    p = plan(manifest(item(1, "a", 10)), [held("a", 10, rank=1)], {"hdd": 10}, default_tier="hdd")
    assert p.empty and p.kept == 1 and not p.skipped


def test_evictions_come_first_and_make_room():
    m = manifest(item(1, "new", 60))
    p = plan(m, [held("old-b", 50), held("old-a", 50)], {"hdd": 100}, default_tier="hdd")
    assert summary(p) == [("evict", "old-a", "not_listed"), ("evict", "old-b", "not_listed"),
                          ("fetch", "new", "hdd")]


def test_capacity_exactly_full_fits():
    p = plan(manifest(item(1, "a", 40), item(2, "b", 60)), [], {"hdd": 100}, default_tier="hdd")
    assert summary(p) == [("fetch", "a", "hdd"), ("fetch", "b", "hdd")]
    assert p.used_after["hdd"] == 100


def test_capacity_exactly_full_already_held_plans_nothing():
    p = plan(manifest(item(1, "a", 40), item(2, "b", 60)),
             [held("a", 40, rank=1), held("b", 60, rank=2)], {"hdd": 100}, default_tier="hdd")
    assert p.empty and p.kept == 2


def test_one_byte_over_is_skipped():
    p = plan(manifest(item(1, "a", 40), item(2, "b", 61)), [], {"hdd": 100}, default_tier="hdd")
    assert summary(p) == [("fetch", "a", "hdd")]
    assert skips(p) == [("b", "no_room")]


def test_manifest_larger_than_disk_fills_by_rank_and_keeps_held_items():
    # b is held; c and d are missing; only 30 bytes are free: c (rank 3, 40) does not fit, d (rank 4, 30) does.
    m = manifest(item(1, "a", 50), item(2, "b", 20), item(3, "c", 40), item(4, "d", 30), item(5, "e", 1))
    p = plan(m, [held("b", 20, rank=2), held("x", 50)], {"hdd": 100}, default_tier="hdd")
    assert summary(p) == [("evict", "x", "not_listed"), ("fetch", "a", "hdd"), ("fetch", "d", "hdd")]
    assert skips(p) == [("c", "no_room"), ("e", "no_room")]
    assert p.used_after["hdd"] == 100


def test_listed_items_are_never_evicted_for_room():
    m = manifest(item(1, "big", 100), item(2, "small", 10))
    p = plan(m, [held("small", 10, rank=2)], {"hdd": 100}, default_tier="hdd")
    assert summary(p) == []
    assert skips(p) == [("big", "no_room")]


def test_changed_and_quarantined_copies_are_replaced():
    m = manifest(item(1, "a", 10), item(2, "b", 10), item(3, "c", 10))
    inv = [held("a", 10, digest=sha(99)), held("b", 10, rank=2, ready=False), held("c", 11, rank=3)]
    p = plan(m, inv, {"hdd": 30}, default_tier="hdd")
    assert summary(p) == [("evict", "a", "changed"), ("evict", "b", "quarantined"), ("evict", "c", "changed"),
                          ("fetch", "a", "hdd"), ("fetch", "b", "hdd"), ("fetch", "c", "hdd")]


def test_tier_move_when_target_changes():
    m = manifest(item(1, "hot", 10, "ssd"), item(2, "cool", 10, "hdd"))
    inv = [held("hot", 10, "hdd", rank=1), held("cool", 10, "ssd", rank=2)]
    p = plan(m, inv, {"ssd": 10, "hdd": 100}, default_tier="hdd")
    # ssd is full until "cool" leaves it: the second pass moves "hot" after "cool".
    assert summary(p) == [("move", "cool", "hdd"), ("move", "hot", "ssd")]
    assert p.used_after == {"ssd": 10, "hdd": 10}


def test_move_that_never_fits_stays():
    m = manifest(item(1, "hot", 20, "ssd"))
    p = plan(m, [held("hot", 20, "hdd", rank=1)], {"ssd": 10, "hdd": 100}, default_tier="hdd")
    assert summary(p) == [] and skips(p) == [("hot", "no_room_to_move")]


def test_missing_tier_falls_back_to_default():
    p = plan(manifest(item(1, "a", 10, "ssd")), [held("a", 10, "hdd", rank=1)], {"hdd": 100},
             default_tier="hdd")
    assert p.empty
    p = plan(manifest(item(1, "a", 10, "ssd")), [], {"hdd": 100}, default_tier="hdd")
    assert summary(p) == [("fetch", "a", "hdd")]


def test_empty_manifest_evicts_all():
    p = plan(manifest(), [held("b", 1), held("a", 1, "ssd")], {"ssd": 5, "hdd": 5}, default_tier="hdd")
    assert summary(p) == [("evict", "a", "not_listed"), ("evict", "b", "not_listed")]
    assert all(a.reason is EvictReason.NOT_LISTED for a in p.actions)


@pytest.mark.parametrize(("staged", "expected"), [
    ([Staged("gone", sha(9), 40)], [("drop", "gone", 40)]),                   # not listed any more
    ([Staged("a", sha(7), 5)], [("drop", "a", 5)]),                           # listed, but republished
    ([Staged("a", sha(1), 5)], []),                                           # resumes with its fetch
    ([Staged("b", sha(2), 5)], []),                                           # listed, no room now: kept
])
def test_partials_of_unwanted_files_are_dropped_after_evictions(staged, expected):
    p = plan(manifest(item(1, "a", 10), item(2, "b", 95)), [held("old", 5)], {"hdd": 100},
             default_tier="hdd", staged=staged)
    assert summary(p) == [("evict", "old", "not_listed"), *expected, ("fetch", "a", "hdd")]


def test_skip_reasons_are_closed():
    assert {r.value for r in SkipReason} == {"no_room", "no_room_to_move"}


# -- properties over random inputs ------------------------------------------------------------------

keys = st.sampled_from([f"k{i}" for i in range(8)])


@st.composite
def scenarios(draw):
    listed = draw(st.lists(keys, unique=True, max_size=8))
    items = [item(r + 1, k, draw(st.integers(0, 50)), draw(st.sampled_from(["ssd", "hdd"])),
                  digest=sha(1000 + int(k[1:]))) for r, k in enumerate(listed)]
    inv = []
    for k in draw(st.lists(keys, unique=True, max_size=8)):
        same = draw(st.booleans())
        it = next((i for i in items if i.key == k), None)
        size = it.size if (it and same) else draw(st.integers(0, 50))
        digest = it.sha256 if (it and same) else sha(7)
        inv.append(Held(k, draw(st.sampled_from(["ssd", "hdd"])), size, digest, draw(st.booleans())))
    cap = {"ssd": draw(st.integers(0, 150)), "hdd": draw(st.integers(0, 300))}
    return manifest(*items), inv, cap


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_plan_invariants(case):
    m, inv, cap = case
    p = plan(m, inv, cap, default_tier="hdd")
    assert p == plan(m, list(reversed(inv)), cap, default_tier="hdd")      # deterministic
    wanted = {i.key: i for i in m.items}
    held_by_key = {h.key: h for h in inv}
    for a in p.of(Evict):
        i, h = wanted.get(a.key), held_by_key[a.key]
        # never evicts a valid copy of something listed
        assert i is None or not h.ready or (h.size, h.sha256) != (i.size, i.sha256)
    fetched = [a.key for a in p.of(Fetch)]
    assert fetched == [i.key for i in m.items if i.key in fetched]          # rank order
    # fetch only what is not validly held; evictions come before moves before fetches
    kinds = [type(a).__name__ for a in p.actions]
    assert kinds == sorted(kinds, key=["Evict", "Move", "Fetch"].index)
    # simulate the actions: no tier ever exceeds capacity after evictions (unless it already did)
    used = {"ssd": 0, "hdd": 0}
    for h in inv:
        used[h.tier] += h.size
    for a in p.actions:
        match a:
            case Evict(tier=t, size=s):
                used[t] -= s
            case Move(from_tier=f, to_tier=t, size=s):
                used[f] -= s
                used[t] += s
                assert used[t] <= cap[t]
            case Fetch(tier=t, size=s):
                used[t] += s
                assert used[t] <= cap[t]
    assert used == dict(p.used_after)
