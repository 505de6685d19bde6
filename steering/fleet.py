"""The fleet model steering answers from, built from the control plane's fleet snapshot.

Build → validate → swap (docs/contracts.md, "Fleet snapshot"): `FleetModel.build` turns a snapshot
document into an immutable model or raises `SnapshotError` naming the offending field; nothing is
swapped in until the whole model exists, and `ModelHolder.swap` replaces it in one assignment, so a
request never sees half a model. `steering/poller.py` fetches snapshots with ETags and keeps the last good
model when the control plane is down or sends something that does not validate.
"""

from __future__ import annotations

import hashlib
import json
import sys
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import chain
from typing import Any, NamedTuple

from steering.prefixes import PrefixTable, parse_prefix

SNAPSHOT_VERSION = 1
RARE_HOLDERS_MAX = 64    # content held by at most this many boxes: ranking scans its holders
_MASK64 = (1 << 64) - 1


class Kind(StrEnum):
    EMBEDDED = "embedded"   # inside an ISP's network, serves that ISP's clients
    IXP = "ixp"             # at an internet exchange point, serves a region
    ORIGIN = "origin"       # holds every ready rendition; the last resort


class SnapshotError(ValueError):
    """The snapshot does not follow the contract; `where` is the field path (``appliances[3].asn``)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"fleet snapshot: {where}: {message}" if where else f"fleet snapshot: {message}")
        self.where, self.message = where, message


def stable_hash64(text: str) -> int:
    """A 64-bit hash that is the same in every process and replica (unlike `hash()`, which is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True, eq=False)
class Appliance:
    index: int
    id: str
    kind: Kind
    site: str
    region: str | None
    country: str | None
    asn: int | None
    base_url: str
    healthy: bool
    fresh: bool
    load_ratio: float
    holds_all: bool
    keys: frozenset[str]
    titles: frozenset[str]    # titles of which this appliance holds every ready rendition
    seed: int                 # stable_hash64(id), mixed with the content's hash for rendezvous hashing
    # Process-local digests of the snapshot's raw key and prefix lists: the next build reuses what they
    # produced when they did not change (see FleetModel.build's `previous`).
    keys_sig: int = 0
    prefix_sig: int = 0

    @property
    def eligible(self) -> bool:
        """Fresh and healthy: the only appliances steering may ever name."""
        return self.fresh and self.healthy


class Group(NamedTuple):
    """Eligible appliances a ranking tier scans together, and the content every one of them holds:
    popular content is checked once per group instead of once per member."""

    members: tuple[Appliance, ...]
    common_keys: frozenset[str]
    common_titles: frozenset[str]
    indices: array          # the members' indices, packed (int64) for the compiled group scan

    @classmethod
    def of(cls, members: list[Appliance]) -> Group:
        if not members:
            return EMPTY_GROUP
        return cls(tuple(members), frozenset.intersection(*(a.keys for a in members)),
                   frozenset.intersection(*(a.titles for a in members)), array("q", (a.index for a in members)))


EMPTY_GROUP = Group((), frozenset(), frozenset(), array("q"))
# Kind codes in `Packed.kinds`: 0 stands for an appliance steering may not name (stale or unhealthy).
KIND_CODE = {Kind.EMBEDDED: 1, Kind.IXP: 2, Kind.ORIGIN: 3}


class Packed(NamedTuple):
    """What ranking reads of every appliance, by index, in flat arrays: the compiled group scan reads
    these 290 KB (17 bytes an appliance at 17,000; they stay in the CPU caches) instead of three objects scattered
    over the model's heap per appliance, which made the scan wait on memory (docs/steering.md)."""

    seeds: array            # uint64 Appliance.seed
    loads: array            # double Appliance.load_ratio
    kinds: bytes            # KIND_CODE[kind] when fresh and healthy, else 0

    @classmethod
    def of(cls, appliances: list[Appliance]) -> Packed:
        return cls(array("Q", (a.seed for a in appliances)), array("d", (a.load_ratio for a in appliances)),
                   bytes(KIND_CODE[a.kind] if a.eligible else 0 for a in appliances))


@dataclass(frozen=True, eq=False)
class FleetModel:
    generation: str
    generated_at: str
    stale_after_s: float
    appliances: tuple[Appliance, ...]
    prefixes: PrefixTable
    titles: dict[str, tuple[str, ...]]
    ready_keys: frozenset[str]                    # every rendition of every title: what origins hold
    # Indexes over eligible (fresh and healthy) appliances only; ranking never names the others.
    embedded_by_asn: dict[int, Group]
    ixp_by_country: dict[str, Group]
    ixp_by_region: dict[str, Group]
    origins: Group
    packed: Packed
    # Content held by at most RARE_HOLDERS_MAX eligible appliances (holds_all ones aside) → who holds it;
    # content held by more is in common_keys / common_titles.
    key_holders: dict[str, tuple[int, ...]]
    title_holders: dict[str, tuple[int, ...]]
    common_keys: frozenset[str]
    common_titles: frozenset[str]
    all_holders: tuple[int, ...]                  # holds_all appliances (origins)
    country_region: dict[str, str] = field(default_factory=dict)
    # Rendezvous hash of every ready key and title ("title:ID"), computed once per catalog: BLAKE2b costs
    # more than the rest of locating a client.
    content_hashes: dict[str, int] = field(default_factory=dict)
    # By appliance index: (ASN, country, region) of a client behind a prefix it learned, when it has an ASN
    # and a country (else None: locate asks GeoIP for what is missing). One read instead of three objects.
    bgp_places: tuple[tuple[int, str, str | None] | None, ...] = ()
    # ranking.group_chunks' memo of each client place's group chunks (they depend on the model only).
    place_chunks: dict[Any, Any] = field(default_factory=dict, repr=False)
    # What the compiled locate reads (steering/_answer.c): the flat /24 index and its matches, the
    # prefix lookup, bgp_places, country_region. Derived from the fields above, never passed in.
    locate_parts: tuple[Any, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        blocks, block_matches = self.prefixes.flat_index()
        object.__setattr__(self, "locate_parts", (blocks, block_matches, self.prefixes.lookup, self.bgp_places,
                                                  self.country_region))

    def holds_key(self, appliance: Appliance, key: str) -> bool:
        return key in appliance.keys or (appliance.holds_all and key in self.ready_keys)

    def holds_title(self, appliance: Appliance, title: str) -> bool:
        return title in appliance.titles or (appliance.holds_all and title in self.titles)

    @classmethod
    def from_json(cls, body: bytes | str, *, country_region: dict[str, str] | None = None,
                  previous: FleetModel | None = None) -> FleetModel:
        """Parse and build; invalid JSON is a SnapshotError too."""
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise SnapshotError("", f"not JSON: {e}") from None
        return cls.build(doc, country_region=country_region, previous=previous)

    @classmethod
    def build(cls, doc: Any, *, country_region: dict[str, str] | None = None,
              previous: FleetModel | None = None) -> FleetModel:
        """Validate a snapshot document (already parsed JSON) and build the model, or raise SnapshotError.

        `country_region` maps ISO country codes to region names for clients located by GeoIP; countries
        it does not name take the region most of the fleet's appliances in that country declare.

        `previous` (the model in service) makes a rebuild cheap when only health, load or freshness
        changed, which at fleet scale is nearly every snapshot: an appliance whose key list is unchanged
        (same digest, same catalog) keeps its key and title sets, and when no appliance's prefixes and
        no appliance's position changed the prefix table is reused whole (it was validated when built).
        """
        root = _Reader(doc, "")
        if root.get("version", int) != SNAPSHOT_VERSION:
            raise SnapshotError("version", f"unsupported version (this steering reads {SNAPSHOT_VERSION})")
        generation = root.get("generation", str)
        generated_at = root.get("generated_at", str)
        stale_after_s = float(root.get("stale_after_s", (int, float)))
        titles = _read_titles(root.sub("titles", dict))
        key_title = {key: title for title, keys in titles.items() for key in keys}
        title_sizes = {title: len(keys) for title, keys in titles.items()}
        interned = {key: key for key in key_title}
        same_catalog = previous if previous is not None and previous.titles == titles else None
        before = {a.id: a for a in same_catalog.appliances} if same_catalog is not None else {}
        appliances: list[Appliance] = []
        raw_prefixes: list[_Reader] = []
        seen: set[str] = set()
        for index, item in enumerate(root.sub("appliances", list).items()):
            appliance, prefixes_reader = _read_appliance(index, item, key_title, title_sizes, interned, before)
            if appliance.id in seen:
                raise SnapshotError(f"appliances[{index}].id", f"duplicate appliance id {appliance.id!r}")
            seen.add(appliance.id)
            appliances.append(appliance)
            raw_prefixes.append(prefixes_reader)
        unchanged = previous is not None and len(previous.appliances) == len(appliances) and all(
            (a.id, a.prefix_sig) == (p.id, p.prefix_sig)
            for a, p in zip(appliances, previous.appliances, strict=True))
        if unchanged:
            assert previous is not None
            prefixes = previous.prefixes
        else:
            prefixes = PrefixTable.build(
                (index, _read_prefixes(r.sub("ipv4", list), 32), _read_prefixes(r.sub("ipv6", list), 128))
                for index, r in enumerate(raw_prefixes))
        regions = _country_regions(appliances, country_region or {})
        return cls(
            generation=generation, generated_at=generated_at, stale_after_s=stale_after_s,
            appliances=tuple(appliances), prefixes=prefixes, titles=titles,
            ready_keys=frozenset(key_title), **_groups(appliances), country_region=regions,
            content_hashes=same_catalog.content_hashes if same_catalog is not None else _content_hashes(titles),
            bgp_places=tuple((a.asn, a.country, regions.get(a.country)) if a.asn is not None and a.country else None
                             for a in appliances),
        )


def _groups(appliances: list[Appliance]) -> dict[str, Any]:
    by_asn: dict[int, list[Appliance]] = {}
    by_country: dict[str, list[Appliance]] = {}
    by_region: dict[str, list[Appliance]] = {}
    origins: list[Appliance] = []
    all_holders: list[int] = []
    for a in appliances:
        if not a.eligible:
            continue
        if a.holds_all:
            all_holders.append(a.index)
        if a.kind is Kind.EMBEDDED and a.asn is not None:
            by_asn.setdefault(a.asn, []).append(a)
        elif a.kind is Kind.IXP:
            if a.country:
                by_country.setdefault(a.country, []).append(a)
            if a.region:
                by_region.setdefault(a.region, []).append(a)
        elif a.kind is Kind.ORIGIN:
            origins.append(a)
    return {
        "embedded_by_asn": {k: Group.of(v) for k, v in by_asn.items()},
        "ixp_by_country": {k: Group.of(v) for k, v in by_country.items()},
        "ixp_by_region": {k: Group.of(v) for k, v in by_region.items()},
        "origins": Group.of(origins),
        "packed": Packed.of(appliances),
        **_holders(appliances),
        "all_holders": tuple(all_holders),
    }


def _holders(appliances: list[Appliance]) -> dict[str, Any]:
    """Who holds each rarely held key and title (for ranking's holder scan); the rest are `common_*`.

    Counting runs in C (Counter over chained frozensets); only rare content gets a holder list, which
    keeps this to a second for 7 million held keys instead of a Python loop over each of them.
    """
    holders = [a for a in appliances if a.eligible and not a.holds_all]
    result: dict[str, Any] = {}
    for name, attribute in (("key", "keys"), ("title", "titles")):
        counts = Counter(chain.from_iterable(getattr(a, attribute) for a in holders))
        rare = frozenset(k for k, n in counts.items() if n <= RARE_HOLDERS_MAX)
        lists: dict[str, list[int]] = {}
        for a in holders:
            for item in getattr(a, attribute) & rare:
                lists.setdefault(item, []).append(a.index)
        result[f"{name}_holders"] = {k: tuple(v) for k, v in lists.items()}
        result[f"common_{attribute}"] = frozenset(counts) - rare
    return result


def _content_hashes(titles: dict[str, tuple[str, ...]]) -> dict[str, int]:
    keys = chain.from_iterable(titles.values())
    return {text: stable_hash64(text) for text in chain(keys, (f"title:{t}" for t in titles))}


def _country_regions(appliances: list[Appliance], configured: dict[str, str]) -> dict[str, str]:
    votes: dict[str, Counter[str]] = {}
    for a in appliances:
        if a.country and a.region:
            votes.setdefault(a.country, Counter())[a.region] += 1
    derived = {country: counter.most_common(1)[0][0] for country, counter in votes.items()}
    return {**derived, **configured}


def _read_titles(reader: _Reader) -> dict[str, tuple[str, ...]]:
    titles: dict[str, tuple[str, ...]] = {}
    for title, keys in reader.value.items():
        where = reader.path(title)
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise SnapshotError(where, "expected a list of content keys")
        titles[sys.intern(title)] = tuple(dict.fromkeys(sys.intern(k) for k in keys))
    return titles


def _read_appliance(index: int, item: Any, key_title: dict[str, str], title_sizes: dict[str, int],
                    interned: dict[str, str], before: dict[str, Appliance]) -> tuple[Appliance, _Reader]:
    """One appliance, and its (not yet validated) ``prefixes`` object for the prefix table."""
    r = _Reader(item, f"appliances[{index}]")
    if not isinstance(item, dict):
        raise SnapshotError(r.where, "expected an object")
    appliance_id = r.get("id", str)
    kind_text = r.get("kind", str)
    try:
        kind = Kind(kind_text)
    except ValueError:
        raise SnapshotError(r.path("kind"), f"unknown kind {kind_text!r} (embedded, ixp or origin)") from None
    base_url = r.get("base_url", str)
    if not base_url.startswith(("http://", "https://")):
        raise SnapshotError(r.path("base_url"), f"expected an http(s) URL, got {base_url!r}")
    asn = r.optional("asn", int)
    country = r.optional("country", str)
    load = r.get("load_ratio", (int, float))
    try:
        load = float(load)      # JSON allows integers no double holds
    except OverflowError:
        load = float("nan")
    if not load >= 0:           # also NaN, which Python's JSON parser accepts
        raise SnapshotError(r.path("load_ratio"), "must be a number, not negative")
    keys_reader = r.sub("keys", list)
    keys_sig = hash(tuple(keys_reader.strings()))
    earlier = before.get(appliance_id)
    if earlier is not None and earlier.keys_sig == keys_sig:
        keys, titles = earlier.keys, earlier.titles
    else:
        # map() keeps these loops in C: a snapshot lists millions of held keys. `interned` maps each ready
        # rendition key to one shared string, so 16,000 appliances holding a key store one copy of it.
        keys = frozenset(map(interned.get, keys_reader.value, keys_reader.value))
        counts = Counter(map(key_title.get, keys))
        counts.pop(None, None)
        titles = frozenset(t for t, n in counts.items() if n == title_sizes[t])
    prefixes = r.sub("prefixes", dict)
    v4_raw, v6_raw = prefixes.sub("ipv4", list).strings(), prefixes.sub("ipv6", list).strings()
    prefix_sig = hash((tuple(v4_raw), tuple(v6_raw)))
    appliance = Appliance(
        index=index, id=appliance_id, kind=kind, site=r.optional("site", str) or "",
        region=r.optional("region", str), country=country.upper() if country else None, asn=asn,
        base_url=base_url.rstrip("/"), healthy=r.get("healthy", bool), fresh=r.get("fresh", bool),
        load_ratio=load, holds_all=r.get("holds_all", bool), keys=keys, titles=titles,
        seed=stable_hash64(appliance_id), keys_sig=keys_sig, prefix_sig=prefix_sig,
    )
    return appliance, prefixes


def _read_prefixes(reader: _Reader, bits: int) -> list[str]:
    result = []
    for i, text in enumerate(reader.value):
        try:
            prefix, family = parse_prefix(text)
        except ValueError as e:
            raise SnapshotError(reader.path(i), str(e)) from None
        if family != bits:
            raise SnapshotError(reader.path(i), f"{text!r} is not an IPv{4 if bits == 32 else 6} prefix")
        result.append(prefix)
    return result


class _Reader:
    """Typed access to one JSON object with field paths for errors."""

    def __init__(self, value: Any, where: str) -> None:
        self.value, self.where = value, where

    def path(self, name: str | int) -> str:
        if isinstance(name, int):
            return f"{self.where}[{name}]"
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, types: type | tuple[type, ...]) -> Any:
        if not isinstance(self.value, dict) or name not in self.value:
            raise SnapshotError(self.path(name), "required field is missing")
        return self._check(name, self.value[name], types)

    def optional(self, name: str, types: type | tuple[type, ...]) -> Any:
        value = self.value.get(name) if isinstance(self.value, dict) else None
        return None if value is None else self._check(name, value, types)

    def sub(self, name: str, types: type) -> _Reader:
        return _Reader(self.get(name, types), self.path(name))

    def items(self) -> list[Any]:
        return self.value

    def strings(self) -> list[str]:
        if set(map(type, self.value)) <= {str} and "" not in self.value:     # the common case, in C
            return self.value
        for i, value in enumerate(self.value):
            if not isinstance(value, str) or not value:
                raise SnapshotError(self.path(i), "expected a non-empty string")
        return self.value

    def _check(self, name: str, value: Any, types: type | tuple[type, ...]) -> Any:
        # JSON true/false are Python bools, which are ints: keep them out of integer fields.
        wants_bool = types is bool
        if isinstance(value, bool) != wants_bool or not isinstance(value, types):
            expected = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
            raise SnapshotError(self.path(name), f"expected {expected}, got {type(value).__name__}")
        return value


class ModelHolder:
    """The current model and when it was last confirmed current. Swapped in one assignment."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.model: FleetModel | None = None
        self.confirmed_at: float | None = None

    def swap(self, model: FleetModel) -> None:
        self.model, self.confirmed_at = model, self._clock()

    def confirm(self) -> None:
        """The control plane said the snapshot is unchanged (304): the model is current again."""
        if self.model is not None:
            self.confirmed_at = self._clock()

    def age(self) -> float | None:
        """Seconds since the model was last built or confirmed; None before the first model."""
        return None if self.confirmed_at is None else max(0.0, self._clock() - self.confirmed_at)
