"""One steering decision end to end (locate → rank, through a cache) and its JSON answer (docs/contracts.md)."""

from __future__ import annotations

from array import array
from collections import OrderedDict
from typing import Any, NamedTuple

import orjson

from steering.fleet import FleetModel
from steering.geo import GeoLookup
from steering.locate import locate
from steering.metrics import DecisionCounts
from steering.ranking import (
    DEFAULT_LOAD_LIMIT,
    PREFIX_TIERS,
    TIER_LABEL,
    Client,
    Content,
    Ranked,
    Tier,
    explain,
    rank,
    reason_text,
)

ANSWER_VERSION = 1


class CachedRanking:
    """A ranking shared by every client in the same place asking for the same content, and its answer's
    JSON from the client's ASN to the end of the candidates once an answer rendered it (`answer_json`):
    the same for every client the entry serves, but for the prefixes in prefix tiers' reasons."""

    __slots__ = ("candidates", "json", "tier_slot")

    def __init__(self, candidates: list[Ranked]) -> None:
        self.candidates = candidates
        self.json: tuple[bytes | int, ...] | None = None
        # Decision.tier_label's position in metrics.TIER_LABELS: the tiers in order (values 1..N), then "none".
        self.tier_slot = candidates[0].tier - 1 if candidates else len(Tier)


class Decision(NamedTuple):
    client: Client
    content: Content
    candidates: list[Ranked]
    cached: CachedRanking | None = None

    @property
    def tier_label(self) -> str:
        """Metric label: the first candidate's tier, or ``none`` when nobody can serve it."""
        return TIER_LABEL[self.candidates[0].tier] if self.candidates else "none"


class RankingCache:
    """Rankings of one model, shared by every client in the same place asking for the same content.

    A ranking depends only on the model and on (the owners of each covering prefix, ASN, country,
    region, content, limit, load limit) — not on the address itself — so clients behind any of an
    appliance's prefixes share one entry (`Ranked.detail` holds the prefix's position, not the prefix).
    Bounded: the oldest entry goes first (FIFO; cheap and good enough for Zipf-shaped demand). A new
    model gets a new cache, so an entry never outlives the state it was computed from.
    """

    def __init__(self, model: FleetModel, max_entries: int = 200_000, answer_bytes: int = 64 << 20) -> None:
        self.model, self.max_entries, self.answer_bytes = model, max_entries, answer_bytes
        # OrderedDict: popping the oldest is O(1); a plain dict leaves deleted slots at its front that
        # `next(iter(d))` must skip, which made eviction slower the longer the cache ran.
        self._entries: OrderedDict[tuple[Any, ...], CachedRanking] = OrderedDict()
        self.counts = array("q", [0, 0])    # hits, misses (steering/_answer.c counts its hits here too)
        # steering/_answer.c's finished answers of the current lane ("KEY SLOT" → tier slot byte + the
        # answer after the address, for clients the flat /24 index alone places), which it fills and
        # bounds itself: their size in bytes, at most answer_bytes.
        self.answers: dict[str, bytes] = {}
        self.answers_size = array("q", [0])

    @property
    def hits(self) -> int:
        return self.counts[0]

    @property
    def misses(self) -> int:
        return self.counts[1]

    def rank(self, client: Client, content: Content, load_limit: float, limit: int | None) -> CachedRanking:
        matches = client.matches
        # Most clients are behind one prefix: its owners stand for the owners of every covering prefix
        # (a tuple of ints never equals one of tuples, so the two forms cannot collide).
        owners = matches[0].appliances if len(matches) == 1 else tuple(m.appliances for m in matches)
        # Plain values only: the collector untracks such a tuple, instead of walking it in every collection.
        key = (owners, client.asn, client.country, client.region, content.key, content.title, limit, load_limit)
        entry = self._entries.get(key)
        if entry is not None:
            self.counts[0] += 1
            return entry
        self.counts[1] += 1
        entry = CachedRanking(rank(self.model, client, content, load_limit=load_limit, limit=limit))
        if len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        self._entries[key] = entry
        return entry

    def answer_lane(self, geo: GeoLookup | None, load_limit: float, limit: int,
                    decisions: DecisionCounts) -> tuple[Any, ...]:
        """What `cached_answer` (steering/_answer.c) reads to answer from this cache: what locating a
        client takes (the model's `locate_parts`, GeoIP), the entries, the key's parts that do not come
        from the request, the tail; what it counts into: `decisions` (as api "steer") and this cache's
        hits; and its finished answers, which hold this lane's limits: a new lane starts them empty."""
        model = self.model
        counting = (decisions.counts, decisions.buckets, decisions.seconds, decisions.bounds,
                    decisions.index[("steer", TIER_LABEL[Tier.PREFIX])], self.counts)
        self.answers, self.answers_size = {}, array("q", [0])
        return (model.locate_parts, geo.lookup if geo is not None else None, self._entries, limit,
                load_limit, _model_json(model), counting, (self.answers, self.answers_size, self.answer_bytes))


def steer(model: FleetModel, geo: GeoLookup | None, ip: str, content: Content, *,
          load_limit: float = DEFAULT_LOAD_LIMIT, limit: int | None = None,
          cache: RankingCache | None = None) -> Decision:
    """Raises prefixes.InvalidAddress for a bad `ip`; the content is taken as already validated.

    `cache`, when given, must belong to `model`."""
    client = locate(model, geo, ip)
    if cache is not None:
        entry = cache.rank(client, content, load_limit, limit)
        return Decision(client, content, entry.candidates, entry)
    return Decision(client, content, rank(model, client, content, load_limit=load_limit, limit=limit))


def answer_document(decision: Decision, model: FleetModel, model_age_s: float) -> dict[str, Any]:
    client = decision.client
    return {**_head(decision),
            "candidates": [_candidate(r, explain(r, client)) for r in decision.candidates],
            "model": _model(model, model_age_s)}


# The answer's parts, shared by `answer_document` and `render_answer` (which must write the same bytes).
def _head(decision: Decision) -> dict[str, Any]:
    client = decision.client
    return {
        "version": ANSWER_VERSION,
        "client": {
            "ip": client.address,
            "matched_prefix": client.matches[0].prefix if client.matches else None,
            "asn": client.asn, "country": client.country, "region": client.region,
            "source": client.source,
        },
        "key": decision.content.key,
        "title": decision.content.title,
    }


def _candidate(r: Ranked, reason: str) -> dict[str, Any]:
    a = r.appliance
    return {"rank": r.rank, "appliance_id": a.id, "kind": a.kind.value, "base_url": a.base_url,
            "tier": TIER_LABEL[r.tier], "reason": reason, "load_ratio": a.load_ratio, "overloaded": r.overloaded}


def _model(model: FleetModel, model_age_s: float) -> dict[str, Any]:
    return {"generation": model.generation, "age_s": round(model_age_s, 3)}


def _model_json(model: FleetModel) -> bytes:
    """The answer's tail up to the model's age, which `age_json` renders per answer."""
    return b',"model":{"generation":' + orjson.dumps(model.generation) + b',"age_s":'


def age_json(model_age_s: float) -> bytes:
    return orjson.dumps(round(model_age_s, 3))


def _place_json(decision: Decision) -> bytes:
    """The answer from the client's ASN on, up to its candidates: the same for every client of a cached
    ranking (its key holds the ASN, country, region and content; whether prefixes matched and the ASN or
    country decide the source)."""
    client, content = decision.client, decision.content
    place = orjson.dumps({"asn": client.asn, "country": client.country, "region": client.region,
                          "source": client.source})
    return b"".join((place[1:], b',"key":', orjson.dumps(content.key), b',"title":', orjson.dumps(content.title),
                     b',"candidates":'))


# A prefix tier's reason names the client's covering prefix, which differs between clients sharing a
# ranking: it is rendered with this mark, and the JSON split around it (orjson writes NUL as \u0000).
_PREFIX_MARK = "\x00"
_PREFIX_MARK_JSON = b"\\u0000"


def answer_json(decision: Decision) -> tuple[bytes | int, ...]:
    """The answer's JSON from the client's ASN to the end of its candidates, as pieces: bytes, or the
    position in Client.matches of the prefix that goes between two pieces (so never two bytes in a row:
    each piece is an object to reach per answer). Computed once per cached ranking; `render_answer` and
    steering/_answer.c join them."""
    pieces: list[bytes | int] = [_place_json(decision) + b"["]
    for n, r in enumerate(decision.candidates):
        prefix_tier = r.tier in PREFIX_TIERS
        text = orjson.dumps(_candidate(r, reason_text(r, _PREFIX_MARK if prefix_tier else r.detail)))
        head = b"," if n else b""
        if prefix_tier:
            # The last mark: only the reason's fixed text and numbers follow it, while an id or URL
            # before it could hold a NUL of its own.
            before, after = text.rsplit(_PREFIX_MARK_JSON, 1)
            pieces[-1] += head + before
            pieces += [r.detail, after]
        else:
            pieces[-1] += head + text
    pieces[-1] += b"]"
    return tuple(pieces)


def render_answer(decision: Decision, model: FleetModel, model_age_s: float) -> bytes:
    """`orjson.dumps(answer_document(...))`, byte for byte, without re-rendering a cached ranking.

    steering/_answer.c writes the same bytes from the same parts (`CachedRanking.json`)."""
    cached = decision.cached
    if cached is None:
        pieces = answer_json(decision)
    else:
        if cached.json is None:
            cached.json = answer_json(decision)
        pieces = cached.json
    client = decision.client
    matches = client.matches
    # Addresses passed inet_pton and prefixes are canonical: neither needs JSON escaping.
    first = b'"' + matches[0].prefix.encode() + b'"' if matches else b"null"
    body = b"".join([p if isinstance(p, bytes) else matches[p].prefix.encode() for p in pieces])
    return b"".join((b'{"version":%d,"client":{"ip":"' % ANSWER_VERSION, client.address.encode(),
                     b'","matched_prefix":', first, b",", body, _model_json(model), age_json(model_age_s),
                     b"}}"))


try:    # built by `pip install -e .` (setup.py); without it every answer takes the Python path
    from steering._answer import answer as cached_answer
    from steering._answer import respond as compiled_response
except ImportError:
    cached_answer = compiled_response = None
