"""One steering decision end to end (locate → rank, through a cache) and its JSON answer (docs/contracts.md)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

from steering.fleet import FleetModel
from steering.geo import GeoLookup
from steering.locate import locate
from steering.ranking import DEFAULT_LOAD_LIMIT, TIER_LABEL, Client, Content, Ranked, explain, rank

ANSWER_VERSION = 1


class Decision(NamedTuple):
    client: Client
    content: Content
    candidates: list[Ranked]

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

    def __init__(self, model: FleetModel, max_entries: int = 200_000) -> None:
        self.model, self.max_entries = model, max_entries
        # OrderedDict: popping the oldest is O(1); a plain dict leaves deleted slots at its front that
        # `next(iter(d))` must skip, which made eviction slower the longer the cache ran.
        self._entries: OrderedDict[tuple[Any, ...], list[Ranked]] = OrderedDict()
        self.hits = self.misses = 0

    def rank(self, client: Client, content: Content, load_limit: float, limit: int | None) -> list[Ranked]:
        owners = tuple(m.appliances for m in client.matches)
        key = (owners, client.asn, client.country, client.region, content, limit, load_limit)
        ranked = self._entries.get(key)
        if ranked is not None:
            self.hits += 1
            return ranked
        self.misses += 1
        ranked = rank(self.model, client, content, load_limit=load_limit, limit=limit)
        if len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        self._entries[key] = ranked
        return ranked


def steer(model: FleetModel, geo: GeoLookup | None, ip: str, content: Content, *,
          load_limit: float = DEFAULT_LOAD_LIMIT, limit: int | None = None,
          cache: RankingCache | None = None) -> Decision:
    """Raises prefixes.InvalidAddress for a bad `ip`; the content is taken as already validated.

    `cache`, when given, must belong to `model`."""
    client = locate(model, geo, ip)
    if cache is not None:
        return Decision(client, content, cache.rank(client, content, load_limit, limit))
    return Decision(client, content, rank(model, client, content, load_limit=load_limit, limit=limit))


def answer_document(decision: Decision, model: FleetModel, model_age_s: float) -> dict[str, Any]:
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
        "candidates": [{
            "rank": r.rank, "appliance_id": r.appliance.id, "kind": r.appliance.kind.value,
            "base_url": r.appliance.base_url, "tier": TIER_LABEL[r.tier], "reason": explain(r, client),
            "load_ratio": r.appliance.load_ratio, "overloaded": r.overloaded,
        } for r in decision.candidates],
        "model": {"generation": model.generation, "age_s": round(model_age_s, 3)},
    }
