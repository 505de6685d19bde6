"""Fill-manifest documents (contracts.md "Fill manifest"), rendered purely from a plan.

`unsigned_items` turns a `fillplan.Plan` and a `fillplan.SourceIndex` into the ranked items with
source URLs not yet signed; `digest` fingerprints them so the stored generation only moves when
the content changes; `sign_items` adds the URL tokens peers require (oca/tokens.py), with an
expiry covering the fill window. Origin URLs are not signed (an origin serves openly).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from control_plane.fillplan import OriginSource, PeerSource, Plan, SourceIndex

Signer = Callable[[str, int], str]      # (path, expires) → query string without "?"


def unsigned_items(plan: Plan, index: SourceIndex, *, peers_allowed: bool = True) -> list[dict]:
    """Items in rank order; each source has ``kind``, ``url`` (and ``appliance_id`` for peers).
    `peers_allowed=False` (no URL-signing key configured) leaves peers out: they would answer 403."""
    items = []
    for p in plan.placements:
        sources = []
        for s in index.sources(p.file.key):
            match s:
                case PeerSource(appliance_id=aid, base_url=base) if peers_allowed:
                    sources.append({"kind": "peer", "appliance_id": aid, "url": f"{base}/{p.file.key}"})
                case OriginSource(base_url=base):
                    sources.append({"kind": "origin", "url": f"{base}/{p.file.key}"})
        items.append({"rank": p.rank, "key": p.file.key, "title_id": p.file.title_id, "size": p.file.size,
                      "sha256": p.file.sha256, "tier": p.tier, "sources": sources})
    return items


def digest(items: list[dict]) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def sign_items(items: list[dict], signer: Signer, expires: int) -> list[dict]:
    """Copies of `items` whose peer URLs carry a token for ``/<key>`` valid until `expires`."""
    out = []
    for item in items:
        path = "/" + item["key"]      # the edge verifies the token against "/" + content key
        query = None
        sources = []
        for s in item["sources"]:
            if s["kind"] == "peer":
                query = query or signer(path, expires)
                s = {**s, "url": f"{s['url']}?{query}"}
            sources.append(s)
        out.append({**item, "sources": sources})
    return out


def document(appliance_id: str, generation: int, generated_at: str, items: list[dict]) -> dict:
    return {"version": 1, "appliance_id": appliance_id, "generation": generation,
            "generated_at": generated_at, "items": items}
