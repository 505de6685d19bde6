"""One steering decision end to end (locate → rank) and its JSON answer (docs/contracts.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from steering.fleet import FleetModel
from steering.geo import GeoLookup
from steering.locate import locate
from steering.ranking import DEFAULT_LOAD_LIMIT, Client, Content, Ranked, rank

ANSWER_VERSION = 1


@dataclass(frozen=True, slots=True)
class Decision:
    client: Client
    content: Content
    candidates: list[Ranked]

    @property
    def tier_label(self) -> str:
        """Metric label: the first candidate's tier, or ``none`` when nobody can serve it."""
        return self.candidates[0].tier.label if self.candidates else "none"


def steer(model: FleetModel, geo: GeoLookup | None, ip: str, content: Content, *,
          load_limit: float = DEFAULT_LOAD_LIMIT, limit: int | None = None) -> Decision:
    """Raises prefixes.InvalidAddress for a bad `ip`; the content is taken as already validated."""
    client = locate(model, geo, ip)
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
            "rank": r.rank, "appliance_id": r.appliance.id, "kind": str(r.appliance.kind),
            "base_url": r.appliance.base_url, "tier": r.tier.label, "reason": r.reason,
            "load_ratio": r.appliance.load_ratio, "overloaded": r.overloaded,
        } for r in decision.candidates],
        "model": {"generation": model.generation, "age_s": round(model_age_s, 3)},
    }
