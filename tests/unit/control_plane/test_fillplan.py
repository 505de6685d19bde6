"""The fill planner: ranking, ties, head/tail fractions, capacity exactly full, and source order."""

from __future__ import annotations

import pytest

from control_plane.fillplan import (
    FileSpec,
    Fleet,
    OriginSource,
    PeerSource,
    SourceBox,
    SourceIndex,
    Target,
    plan_fill,
    rank_titles,
)


def files(**sizes: list[int]) -> dict[str, list[FileSpec]]:
    return {t: [FileSpec(f"{t}/r{i}.mp4", t, s, "0" * 64) for i, s in enumerate(ss)] for t, ss in sizes.items()}


def placed(plan) -> list[tuple[str, str]]:
    return [(p.file.key, p.tier) for p in plan.placements]


def target(ssd: int, hdd: int) -> Target:
    return Target("a", "site", "region", ssd, hdd)


def test_rank_by_score_then_id_and_only_licensed_with_views():
    scores = {"b": 5.0, "a": 5.0, "c": 9.0, "d": 0.0, "e": 7.0, "f": 1.0}
    assert rank_titles(scores, licensed={"a", "b", "c", "d", "f"}, available={"a", "b", "c", "d", "e"}) == [
        "c", "a", "b"]


@pytest.mark.parametrize("ssd,hdd,expected", [
    # The head (ceil(5 × 0.2) = 1 title) exactly fills the SSD.
    (300, 10_000, [("t1/r0.mp4", "ssd"), ("t1/r1.mp4", "ssd"), ("t2/r0.mp4", "hdd"), ("t3/r0.mp4", "hdd"),
                   ("t4/r0.mp4", "hdd")]),
    # One byte short: the head title goes to HDD instead.
    (299, 10_000, [("t1/r0.mp4", "hdd"), ("t1/r1.mp4", "hdd"), ("t2/r0.mp4", "hdd"), ("t3/r0.mp4", "hdd"),
                   ("t4/r0.mp4", "hdd")]),
    # HDD exactly full with t2 + t3 (100 + 100); t4 does not fit and is skipped.
    (300, 200, [("t1/r0.mp4", "ssd"), ("t1/r1.mp4", "ssd"), ("t2/r0.mp4", "hdd"), ("t3/r0.mp4", "hdd")]),
    # A big title that does not fit is skipped; a smaller lower-ranked one uses the room.
    (0, 250, [("t2/r0.mp4", "hdd"), ("t3/r0.mp4", "hdd")]),
    (0, 0, []),
])
def test_capacity(ssd, hdd, expected):
    scores = {"t1": 50.0, "t2": 40.0, "t3": 30.0, "t4": 20.0, "t5": 10.0}
    plan = plan_fill(target(ssd, hdd), scores, scores.keys(),
                     files(t1=[200, 100], t2=[100], t3=[100], t4=[100], t5=[100]))
    assert placed(plan) == expected
    assert [p.rank for p in plan.placements] == list(range(1, len(expected) + 1))
    assert plan.ssd_used <= ssd and plan.hdd_used <= hdd
    assert plan.candidates == 5


def test_long_tail_beyond_cached_fraction_is_not_placed():
    scores = {f"t{i}": float(100 - i) for i in range(10)}
    plan = plan_fill(target(10**9, 10**9), scores, scores.keys(), files(**{t: [1] for t in scores}))
    tiers = [tier for _, tier in placed(plan)]
    assert tiers == ["ssd", "ssd"] + ["hdd"] * 6             # top 20% SSD, next 60% HDD, last 20% not cached
    assert [k for k, _ in placed(plan)] == [f"t{i}/r0.mp4" for i in range(8)]


def test_fractions_are_parameters():
    scores = {"a": 3.0, "b": 2.0, "c": 1.0}
    plan = plan_fill(target(10, 10), scores, scores, files(a=[1], b=[1], c=[1]), ssd_head_fraction=1.0,
                     cached_fraction=1.0)
    assert [t for _, t in placed(plan)] == ["ssd"] * 3


def test_ties_break_by_title_id():
    scores = {"b": 1.0, "a": 1.0, "c": 1.0}
    plan = plan_fill(target(0, 2), scores, scores, files(a=[1], b=[1], c=[1]), cached_fraction=1.0)
    assert [k for k, _ in placed(plan)] == ["a/r0.mp4", "b/r0.mp4"]
    assert plan.skipped == 1


def test_titles_without_ready_files_are_not_candidates():
    scores = {"a": 2.0, "b": 1.0}
    plan = plan_fill(target(10, 10), scores, scores, {"a": [], **files(b=[1])})
    assert placed(plan) == [("b/r0.mp4", "ssd")] and plan.candidates == 1


def test_sources_same_site_then_region_then_origins():
    me = Target("me", "s1", "eu", 0, 0)
    k = "t1/r0.mp4"
    fleet = Fleet(
        peers=(SourceBox("region-busy", "s2", "eu", 0.9, "http://rb", frozenset({k})),
               SourceBox("region-idle", "s2", "eu", 0.1, "http://ri", frozenset({k})),
               SourceBox("site-busy", "s1", "eu", 0.8, "http://sb", frozenset({k})),
               SourceBox("me", "s1", "eu", 0.0, "http://me", frozenset({k})),
               SourceBox("far", "s9", "us", 0.0, "http://far", frozenset({k})),
               SourceBox("empty", "s1", "eu", 0.0, "http://e", frozenset())),
        origins=(SourceBox("o2", "o", "eu", 0.5, "http://o2"), SourceBox("o1", "o", "eu", 0.5, "http://o1")))
    index = SourceIndex(me, fleet, max_peers=2)
    assert index.sources(k) == (PeerSource("site-busy", "http://sb"), PeerSource("region-idle", "http://ri"),
                                OriginSource("o1", "http://o1"), OriginSource("o2", "http://o2"))
    assert index.sources("t2/x.mp4") == (OriginSource("o1", "http://o1"), OriginSource("o2", "http://o2"))
    assert SourceIndex(me, fleet, max_peers=0).sources(k)[0] == OriginSource("o1", "http://o1")


@pytest.mark.parametrize(("country", "fleet_wide", "expected"), [
    ({"a": 2.0}, {"b": 9.0}, ({"a": 2.0}, "country")),        # views in the country: only those count
    ({}, {"b": 9.0, "a": 1.0}, ({"b": 9.0, "a": 1.0}, "fleet")),   # none yet: what is popular elsewhere
    ({"a": 0.0}, {"b": 9.0}, ({"b": 9.0}, "fleet")),          # decayed to nothing counts as none
    ({}, {}, ({}, "none")),                                   # a fleet without a single view
])
def test_effective_scores_fall_back_to_the_fleet(country, fleet_wide, expected):
    from control_plane.fillplan import effective_scores

    scores, source = effective_scores(country, fleet_wide)
    assert (dict(scores), source) == expected
