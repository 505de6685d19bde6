"""Pure ranking: which appliances a client should use for a content key or title, in order, and why.

Input: the fleet model, the located client, the content, the load limit. Output: an ordered list of
`Ranked` with a reason each. No I/O, no clock: the same inputs always give the same answer.

Rules, in order (docs/steering.md):
1. Only appliances that hold the content (the key, or every ready rendition of the title), are fresh
   (reported within the control plane's staleness window) and healthy are ever named.
2. Tiers: embedded appliance whose BGP prefix covers the client (most specific prefix first) → embedded
   appliance in the client's ASN → exchange-point appliance whose BGP prefix covers the client →
   exchange-point appliance in the client's country → in the client's region → origin.
3. An appliance at or above the load limit (default 0.8 of link capacity) falls behind every appliance
   under it, keeping its tier order among the overloaded; it is never dropped, so a client still gets an
   answer when every holder is busy.
4. Within a tier, ties go to rendezvous (highest-random-weight) hashing on the content: each file
   concentrates on the same few boxes across all clients and replicas, which keeps their caches warm,
   and removing one box only moves the files it was first for (Thaler & Ravishankar, 1998).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from steering.fleet import Appliance, FleetModel
from steering.prefixes import Match

DEFAULT_LOAD_LIMIT = 0.8
_MASK64 = (1 << 64) - 1


class Tier(IntEnum):
    PREFIX = 1        # embedded, a BGP prefix it learned covers the client
    ASN = 2           # embedded, in the client's autonomous system
    IXP_PREFIX = 3    # exchange point, a BGP prefix it learned covers the client
    IXP_COUNTRY = 4   # exchange point in the client's country
    IXP_REGION = 5    # exchange point in the client's region
    ORIGIN = 6

    @property
    def label(self) -> str:
        """Stable metric label."""
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True, slots=True)
class Client:
    address: str
    asn: int | None
    country: str | None
    region: str | None
    matches: tuple[Match, ...]     # covering BGP prefixes, most specific first
    source: str                    # bgp | geoip | none


@dataclass(frozen=True, slots=True)
class Content:
    """Exactly one of key and title is set."""

    key: str | None = None
    title: str | None = None

    @property
    def hash_input(self) -> str:
        return self.key if self.key is not None else f"title:{self.title}"


@dataclass(frozen=True, slots=True)
class Ranked:
    rank: int
    appliance: Appliance
    tier: Tier
    overloaded: bool
    reason: str


def content_hash(content: Content) -> int:
    return int.from_bytes(hashlib.blake2b(content.hash_input.encode(), digest_size=8).digest(), "big")


def hrw_weight(content_h: int, seed: int) -> int:
    """Rendezvous weight: splitmix64's finalizer over content hash XOR appliance seed (uniform, cheap)."""
    z = content_h ^ seed
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def rank(model: FleetModel, client: Client, content: Content, *, load_limit: float = DEFAULT_LOAD_LIMIT,
         limit: int | None = None) -> list[Ranked]:
    """Rank the appliances for `client` and `content`; at most `limit` entries (None: all)."""
    apps = model.appliances
    holds = _holds(model, content)
    content_h = content_hash(content)
    seen: set[int] = set()
    # (tier, sub-order inside the tier, -weight, index, reason) — sorted once at the end.
    rows: list[tuple[int, int, int, int, str]] = []

    def add(tier: Tier, order: int, indices: tuple[int, ...], reason: str, *, kind_embedded: bool) -> None:
        for i in indices:
            if i in seen:
                continue
            a = apps[i]
            if (a.kind == "embedded") != kind_embedded or not (a.fresh and a.healthy and holds(a)):
                continue
            seen.add(i)
            rows.append((tier, order, -hrw_weight(content_h, a.seed), i, reason))

    for order, match in enumerate(client.matches):
        add(Tier.PREFIX, order, match.appliances,
            f"embedded appliance whose BGP prefix {match.prefix} covers the client", kind_embedded=True)
    if client.asn is not None:
        add(Tier.ASN, 0, model.embedded_by_asn.get(client.asn, ()),
            f"embedded appliance in the client's AS{client.asn}", kind_embedded=True)
    for order, match in enumerate(client.matches):
        ixps = tuple(i for i in match.appliances if apps[i].kind == "ixp")
        add(Tier.IXP_PREFIX, order, ixps,
            f"exchange-point appliance whose BGP prefix {match.prefix} covers the client",
            kind_embedded=False)
    if client.country:
        add(Tier.IXP_COUNTRY, 0, model.ixp_by_country.get(client.country, ()),
            f"exchange-point appliance in the client's country {client.country}", kind_embedded=False)
    if client.region:
        add(Tier.IXP_REGION, 0, model.ixp_by_region.get(client.region, ()),
            f"exchange-point appliance in the client's region {client.region}", kind_embedded=False)
    add(Tier.ORIGIN, 0, model.origins, "origin: holds every ready rendition", kind_embedded=False)
    rows.sort()
    return _place_overloaded(rows, apps, load_limit, limit)


def _holds(model: FleetModel, content: Content) -> Callable[[Appliance], bool]:
    if content.key is not None:
        key = content.key
        return lambda a: model.holds_key(a, key)
    title = content.title
    assert title is not None
    return lambda a: model.holds_title(a, title)


def _place_overloaded(rows: list[tuple[int, int, int, int, str]], apps: tuple[Appliance, ...],
                      load_limit: float, limit: int | None) -> list[Ranked]:
    under = [r for r in rows if apps[r[3]].load_ratio < load_limit]
    over = [r for r in rows if apps[r[3]].load_ratio >= load_limit]
    ordered = (under + over) if limit is None else (under + over)[:limit]
    result = []
    for n, (tier, _order, _w, i, reason) in enumerate(ordered, start=1):
        a = apps[i]
        overloaded = a.load_ratio >= load_limit
        if overloaded:
            reason = (f"{reason}; overloaded (load {a.load_ratio:.2f} >= limit {load_limit:.2f}), "
                      "ranked after appliances under the limit")
        result.append(Ranked(n, a, Tier(tier), overloaded, reason))
    return result
