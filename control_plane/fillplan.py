"""The fill planner: which files an appliance should hold, on which tier, fetched from where.

Pure. Inputs are the appliance's capacities, popularity scores in its region, the titles
licensed there for the whole coming fill window, the ready renditions per title, and the
fleet (peers and origins). Output is the ranked list of placements, each with its ordered
sources. The shell (`manifests.py`) signs peer URLs and renders the contracts.md document.

Policy (the reference design): titles ranked by decayed views (ties: title id ascending);
only titles with views are candidates (the long tail is not placed); the head — the first
``ssd_head_fraction`` of candidates (20%) — targets the SSD tier as far as it fits, the rest of
the first ``cached_fraction`` (80%) targets HDD; titles are placed whole (every ready rendition)
and a title that does not fit is skipped so smaller, lower-ranked titles can still use the room.
A title no longer licensed for the window is simply absent, so the fill agent evicts it.

Sources, in order: healthy peers (not origins, not the appliance itself) at the same site, then
in the same region, that hold the file (least loaded first, then id), at most ``max_peers``; then
healthy origins (least loaded first).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FileSpec:
    key: str
    title_id: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Target:
    """The appliance being planned for."""
    id: str
    site: str
    region: str
    capacity_ssd: int
    capacity_hdd: int


@dataclass(frozen=True)
class Placement:
    rank: int
    file: FileSpec
    tier: str


@dataclass(frozen=True)
class Plan:
    placements: tuple[Placement, ...]
    ssd_used: int
    hdd_used: int
    candidates: int          # titles with views, licensed, with ready renditions
    skipped: int             # candidates inside the cached fraction that did not fit


@dataclass(frozen=True)
class Fleet:
    """Other appliances as sources: `peers` and `origins` are (id, site, region, load, base_url, keys)."""
    peers: tuple[SourceBox, ...]
    origins: tuple[SourceBox, ...]


@dataclass(frozen=True)
class SourceBox:
    id: str
    site: str
    region: str
    load_ratio: float
    base_url: str
    keys: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PeerSource:
    appliance_id: str
    base_url: str


@dataclass(frozen=True)
class OriginSource:
    appliance_id: str
    base_url: str


Source = PeerSource | OriginSource


def effective_scores(country: Mapping[str, float], fleet_wide: Mapping[str, float]) -> tuple[Mapping[str, float], str]:
    """The popularity a manifest ranks by, and which: the appliance's country once any title was viewed
    there, else the whole fleet's (a country's first appliance starts with what is popular elsewhere,
    among the titles licensed to it, instead of an empty manifest); `none` before any view at all."""
    if has_views(country):
        return country, "country"
    if has_views(fleet_wide):
        return fleet_wide, "fleet"
    return {}, "none"


def has_views(scores: Mapping[str, float]) -> bool:
    """Any title with a decayed view count above zero."""
    return any(v > 0.0 for v in scores.values())


def rank_titles(scores: Mapping[str, float], licensed: Iterable[str], available: Iterable[str]) -> list[str]:
    """Titles with a positive score, licensed and with ready files, by score desc then id asc."""
    eligible = set(licensed) & set(available)
    ranked = [t for t in eligible if scores.get(t, 0.0) > 0.0]
    ranked.sort(key=lambda t: (-scores[t], t))
    return ranked


def plan_fill(target: Target, scores: Mapping[str, float], licensed: Iterable[str],
              files: Mapping[str, Sequence[FileSpec]], *, ssd_head_fraction: float = 0.2,
              cached_fraction: float = 0.8) -> Plan:
    """Place ranked titles into the target's SSD and HDD capacity; see the module docstring."""
    ranked = rank_titles(scores, licensed, (t for t, fs in files.items() if fs))
    head_n = math.ceil(len(ranked) * ssd_head_fraction)
    cached_n = math.ceil(len(ranked) * cached_fraction)
    ssd_free, hdd_free = target.capacity_ssd, target.capacity_hdd
    placements: list[Placement] = []
    skipped = 0
    for position, title_id in enumerate(ranked[:cached_n]):
        title_files = sorted(files[title_id], key=lambda f: f.key)
        size = sum(f.size for f in title_files)
        if position < head_n and size <= ssd_free:
            tier, ssd_free = "ssd", ssd_free - size
        elif size <= hdd_free:
            tier, hdd_free = "hdd", hdd_free - size
        else:
            skipped += 1
            continue
        base = len(placements)
        placements.extend(Placement(base + i + 1, f, tier) for i, f in enumerate(title_files))
    return Plan(tuple(placements), target.capacity_ssd - ssd_free, target.capacity_hdd - hdd_free,
                len(ranked), skipped)


class SourceIndex:
    """Which nearby peers hold which key, built once per manifest (O(keys held nearby))."""

    def __init__(self, target: Target, fleet: Fleet, max_peers: int) -> None:
        nearby = [p for p in fleet.peers if p.id != target.id and p.region == target.region]
        # Same site first, then the rest of the region; least loaded first; id breaks ties.
        nearby.sort(key=lambda p: (p.site != target.site, p.load_ratio, p.id))
        self._origins: tuple[Source, ...] = tuple(
            OriginSource(o.id, o.base_url) for o in sorted(fleet.origins, key=lambda o: (o.load_ratio, o.id)))
        holders: dict[str, list[Source]] = {}
        if max_peers > 0:
            for peer in nearby:
                source = PeerSource(peer.id, peer.base_url)
                for key in peer.keys:
                    found = holders.get(key)
                    if found is None:
                        holders[key] = [source]
                    elif len(found) < max_peers:
                        found.append(source)
        self._sources = {key: (*peers, *self._origins) for key, peers in holders.items()}

    def sources(self, key: str) -> tuple[Source, ...]:
        """Peers holding `key` (nearest, least loaded first, at most max_peers), then origins."""
        return self._sources.get(key, self._origins)
