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

from collections.abc import Container, Sequence
from enum import IntEnum
from typing import NamedTuple

from steering.fleet import KIND_CODE, RARE_HOLDERS_MAX, Appliance, FleetModel, Group, Kind, Packed, stable_hash64
from steering.prefixes import Match

DEFAULT_LOAD_LIMIT = 0.8
_MASK64 = (1 << 64) - 1
_FIB64 = 0x9E3779B97F4A7C15     # 2^64 / golden ratio, odd


class Tier(IntEnum):
    PREFIX = 1        # embedded, a BGP prefix it learned covers the client
    ASN = 2           # embedded, in the client's autonomous system
    IXP_PREFIX = 3    # exchange point, a BGP prefix it learned covers the client
    IXP_COUNTRY = 4   # exchange point in the client's country
    IXP_REGION = 5    # exchange point in the client's region
    ORIGIN = 6

    @property
    def label(self) -> str:
        """Stable metric and answer label: ``prefix``, ``asn``, ``ixp-prefix``, ..."""
        return TIER_LABEL[self]


TIER_LABEL = {t: t.name.lower().replace("_", "-") for t in Tier}   # looked up per answer: precomputed


# Per-decision values are NamedTuples: immutable like frozen dataclasses, but built ~5x faster (a frozen
# dataclass sets each field through object.__setattr__), and a decision builds several of them.
class Client(NamedTuple):
    address: str
    asn: int | None
    country: str | None
    region: str | None
    matches: tuple[Match, ...]     # covering BGP prefixes, most specific first
    source: str                    # bgp | geoip | none


class Content(NamedTuple):
    """Exactly one of key and title is set."""

    key: str | None = None
    title: str | None = None

    @property
    def hash_input(self) -> str:
        return self.key if self.key is not None else f"title:{self.title}"


class Ranked(NamedTuple):
    rank: int
    appliance: Appliance
    tier: Tier
    overloaded: bool
    # What put it in its tier: for the two prefix tiers the position of the covering prefix in
    # Client.matches (so a ranking can be shared by clients behind different prefixes of the same
    # appliances), else the ASN, country or region.
    detail: int | str
    load_limit: float


PREFIX_TIERS = frozenset((Tier.PREFIX, Tier.IXP_PREFIX))   # `Ranked.detail` is a position in Client.matches


def explain(r: Ranked, client: Client) -> str:
    """Why `r` is in the answer for `client`, for logs and debugging."""
    return reason_text(r, client.matches[r.detail].prefix if r.tier in PREFIX_TIERS else r.detail)


def reason_text(r: Ranked, detail: str | int) -> str:
    """The reason text for `r` with its tier's detail filled in: the covering prefix (prefix tiers), the
    ASN, the country or the region. `explain` passes the client's prefix; `decision.answer_json`
    passes a mark it later replaces with each client's own prefix."""
    reason = _REASONS[r.tier].format(detail)
    if r.overloaded:
        reason = (f"{reason}; overloaded (load {r.appliance.load_ratio:.2f} >= limit {r.load_limit:.2f}), "
                  "ranked after appliances under the limit")
    return reason


def content_hash(content: Content, model: FleetModel | None = None) -> int:
    """The content's rendezvous hash; the model keeps those of its ready keys and titles precomputed."""
    text = content.hash_input
    h = model.content_hashes.get(text) if model is not None else None
    return h if h is not None else stable_hash64(text)


def hrw_weight(content_h: int, seed: int) -> int:
    """Rendezvous weight: Fibonacci (multiplicative) hashing of content hash XOR appliance seed.

    Both inputs are already uniform (BLAKE2b), so one multiply by 2^64/φ suffices to break the XOR's
    bit-trie ordering: over 40,000 keys and 8 boxes every box is first for 12.4–12.8% and every ordered
    (first, second) pair occurs 1.6–1.9% of the time, as with the 3x dearer splitmix64 finalizer.
    """
    return ((content_h ^ seed) * _FIB64) & _MASK64


HOLDERS_SCAN_MAX = RARE_HOLDERS_MAX   # content held by at most this many boxes: classify its holders instead


def rank(model: FleetModel, client: Client, content: Content, *, load_limit: float = DEFAULT_LOAD_LIMIT,
         limit: int | None = None, holders_scan_max: int = HOLDERS_SCAN_MAX) -> list[Ranked]:
    """Rank the appliances for `client` and `content`; at most `limit` entries (None: all).

    Two ways to find the candidates give the same answer (a property test checks it); the cheaper one
    is used. Content held by many boxes: walk the client's groups in rank order and stop once `limit`
    appliances under the load limit are found (nothing later could enter the answer). Content held by
    few: classify its holders. Either way a decision touches a few dozen appliances at most, even when a
    region has hundreds of exchange points.
    """
    by_key = content.key is not None
    if by_key:
        wanted, ready = content.key, model.ready_keys
        holders = model.key_holders.get(wanted)
        common = holders is None and wanted in model.common_keys
    else:
        wanted, ready = content.title, model.titles
        holders = model.title_holders.get(wanted)
        common = holders is None and wanted in model.common_titles
    want = limit if limit is not None else len(model.appliances) + 1
    if common or len(holders or ()) > holders_scan_max:
        return SCAN(group_chunks(model, client, content), model.appliances, model.packed, content_hash(content, model),
                    want, load_limit, wanted, by_key, ready, Ranked)
    under, over = _rows_from_holders(model, client, content, holders or (), wanted in ready, load_limit)
    under.sort()
    over.sort()
    return [Ranked(n, row[5], row[0], row[6], row[4], load_limit)
            for n, row in enumerate((under + over)[:want], start=1)]


# (tier, order inside the tier, -weight, appliance index, detail, appliance, overloaded): sorting compares
# up to the index, which is unique, so never the appliance itself.
Row = tuple[Tier, int, int, int, int | str, Appliance, bool]

# What the group scan walks, in rank order: (tier, detail, appliance indices, common, kind code). Only
# the fresh and healthy appliances of that kind count (groups hold no others; a covering prefix's owners
# may be of any kind), and every one of them holds the content when it is in `common`.
Chunk = tuple[Tier, int | str, Sequence[int], frozenset[str], int]
_NO_COMMON: frozenset[str] = frozenset()
_EMBEDDED, _IXP, _ORIGIN = KIND_CODE[Kind.EMBEDDED], KIND_CODE[Kind.IXP], KIND_CODE[Kind.ORIGIN]
_PREFIX, _IXP_PREFIX = Tier.PREFIX, Tier.IXP_PREFIX     # an Enum member costs a class lookup each time


def group_chunks(model: FleetModel, client: Client, content: Content) -> list[Chunk]:
    """The client's candidate groups in the order of rule 2: covering embedded (most specific prefix
    first), the ASN's embedded, covering exchange points, the country's, the region's, the origins."""
    by_key = content.key is not None
    place = (client.asn, client.country, client.region, by_key)
    groups = model.place_chunks.get(place)
    if groups is None:
        groups = _place_chunks(model, place)
    matches = client.matches
    if not matches:
        return [*groups[0], *groups[1]]
    if len(matches) == 1:     # most clients: spelled out, as this runs on every decision
        owners = matches[0].appliances
        return [(_PREFIX, 0, owners, _NO_COMMON, _EMBEDDED), *groups[0], (_IXP_PREFIX, 0, owners, _NO_COMMON, _IXP),
                *groups[1]]
    return [*[(_PREFIX, order, m.appliances, _NO_COMMON, _EMBEDDED) for order, m in enumerate(matches)],
            *groups[0], *[(_IXP_PREFIX, order, m.appliances, _NO_COMMON, _IXP) for order, m in enumerate(matches)],
            *groups[1]]


PLACES_MAX = 100_000    # memo entries per model; GeoIP can pair ASNs and countries in many ways


def _place_chunks(model: FleetModel, place: tuple[int | None, str | None, str | None, bool]
                  ) -> tuple[tuple[Chunk, ...], tuple[Chunk, ...]]:
    """A place's group chunks: the ASN's, and those after the covering exchange points. Memoised per model
    (looking a place's groups up and wrapping them cost more than scanning an ASN group takes)."""
    asn, country, region, by_key = place

    def chunks(*groups: tuple[Tier, Group | None, int | str, int]) -> tuple[Chunk, ...]:
        return tuple((tier, detail, g.indices, g.common_keys if by_key else g.common_titles, kind)
                     for tier, g, detail, kind in groups if g is not None and g.members)

    memo = (chunks((Tier.ASN, model.embedded_by_asn.get(asn) if asn is not None else None, asn or 0, _EMBEDDED)),
            chunks((Tier.IXP_COUNTRY, model.ixp_by_country.get(country) if country else None, country or "", _IXP),
                   (Tier.IXP_REGION, model.ixp_by_region.get(region) if region else None, region or "", _IXP),
                   (Tier.ORIGIN, model.origins, "", _ORIGIN)))
    if len(model.place_chunks) >= PLACES_MAX:
        model.place_chunks.clear()
    model.place_chunks[place] = memo
    return memo


def scan_groups_py(chunks: list[Chunk], apps: Sequence[Appliance], packed: Packed, content_h: int, want: int,
                   load_limit: float, wanted: str, is_key: bool, ready: Container[str],
                   ranked: type[Ranked]) -> list[Ranked]:
    """Walk `chunks` in order: inside a chunk the holders go by rendezvous weight (then index), an
    appliance taken by an earlier chunk is skipped, those at or over the load limit follow all under it
    (rule 3); stop at the first chunk boundary with `want` under the limit.

    The reference for the compiled scan (steering/_groupscan.c), which gives the same answer (a property
    test checks it) reading `packed` where this reads the appliances themselves."""
    seen: set[int] = set()
    under: list[tuple[Tier, Appliance, bool, int | str]] = []
    over: list[tuple[Tier, Appliance, bool, int | str]] = []
    for tier, detail, indices, common, kind in chunks:
        members = [a for a in map(apps.__getitem__, indices) if KIND_CODE[a.kind] == kind and a.eligible]
        if wanted not in common:
            members = [a for a in members
                       if wanted in (a.keys if is_key else a.titles) or (a.holds_all and wanted in ready)]
        for _, index, a in sorted([(-hrw_weight(content_h, a.seed), a.index, a) for a in members]):
            if index not in seen:
                seen.add(index)
                overloaded = a.load_ratio >= load_limit
                (over if overloaded else under).append((tier, a, overloaded, detail))
        if len(under) >= want:
            break
    rows = under[:want] + over[:max(0, want - len(under))]
    return [ranked(n, a, tier, overloaded, detail, load_limit)
            for n, (tier, a, overloaded, detail) in enumerate(rows, start=1)]


try:    # built by `pip install -e .` (setup.py); tests fail with a clear reason when it is missing
    from steering._groupscan import scan as SCAN
except ImportError:
    SCAN = scan_groups_py


def _rows_from_holders(model: FleetModel, client: Client, content: Content, holders: tuple[int, ...],
                       ready: bool, load_limit: float) -> tuple[list[Row], list[Row]]:
    apps = model.appliances
    content_h = content_hash(content, model)
    covering: dict[int, int] = {}
    for order, match in enumerate(client.matches):
        for i in match.appliances:
            covering.setdefault(i, order)
    under: list[Row] = []
    over: list[Row] = []
    for i in holders + model.all_holders if ready else holders:
        a = apps[i]
        placed = _place(a, covering.get(i), client)
        if placed is None:
            continue
        tier, order = placed
        detail = _detail(tier, order, client)
        overloaded = a.load_ratio >= load_limit
        (over if overloaded else under).append((tier, order, -hrw_weight(content_h, a.seed), i, detail, a, overloaded))
    return under, over


def _place(a: Appliance, covering_order: int | None, client: Client) -> tuple[Tier, int] | None:
    """The tier an eligible holder falls in for this client, or None when it is not for this client."""
    if a.kind is Kind.EMBEDDED:
        if covering_order is not None:
            return Tier.PREFIX, covering_order
        if client.asn is not None and a.asn == client.asn:
            return Tier.ASN, 0
        return None
    if a.kind is Kind.IXP:
        if covering_order is not None:
            return Tier.IXP_PREFIX, covering_order
        if client.country and a.country == client.country:
            return Tier.IXP_COUNTRY, 0
        if client.region and a.region == client.region:
            return Tier.IXP_REGION, 0
        return None
    return Tier.ORIGIN, 0


def _detail(tier: Tier, order: int, client: Client) -> str | int:
    if tier in (Tier.PREFIX, Tier.IXP_PREFIX):
        return order
    if tier is Tier.ASN:
        return client.asn or 0
    if tier is Tier.IXP_COUNTRY:
        return client.country or ""
    if tier is Tier.IXP_REGION:
        return client.region or ""
    return ""


_TIER_KIND = {Tier.PREFIX: Kind.EMBEDDED, Tier.ASN: Kind.EMBEDDED, Tier.IXP_PREFIX: Kind.IXP,
              Tier.IXP_COUNTRY: Kind.IXP, Tier.IXP_REGION: Kind.IXP, Tier.ORIGIN: Kind.ORIGIN}
_REASONS = {
    Tier.PREFIX: "embedded appliance whose BGP prefix {} covers the client",
    Tier.ASN: "embedded appliance in the client's AS{}",
    Tier.IXP_PREFIX: "exchange-point appliance whose BGP prefix {} covers the client",
    Tier.IXP_COUNTRY: "exchange-point appliance in the client's country {}",
    Tier.IXP_REGION: "exchange-point appliance in the client's region {}",
    Tier.ORIGIN: "origin: holds every ready rendition{}",
}
