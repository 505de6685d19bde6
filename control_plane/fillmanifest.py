"""Fill-manifest documents (contracts.md "Fill manifest"), rendered purely from a plan.

`fingerprint` digests a plan and its sources compactly, so the stored generation moves only when
the content changes (not on every request, and not because URLs were re-signed); `render_items`
turns the plan into the ranked items, signing every peer URL (peers require the URL token of
oca/tokens.py) with an expiry covering the fill window. Origin URLs are not signed (an origin
serves openly). At full scale (17,000 titles × 5 renditions on a 300 TB appliance: ~68,000
items, ~25 MB of JSON) both are single passes with one HMAC per item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from control_plane.fillplan import PeerSource, Plan, SourceIndex

Signer = Callable[[str, int], str]      # (path, expires) → query string without "?"


def fingerprint(plan: Plan, index: SourceIndex, *, peers_allowed: bool) -> str:
    """SHA-256 over (rank, key, tier, size, sha256, source ids) of every placement."""
    h = hashlib.sha256()
    lines = []
    for p in plan.placements:
        srcs = ",".join(s.appliance_id for s in index.sources(p.file.key)
                        if peers_allowed or not isinstance(s, PeerSource))
        lines.append(f"{p.rank} {p.file.key} {p.tier} {p.file.size} {p.file.sha256} {srcs}\n")
        if len(lines) >= 4096:
            h.update("".join(lines).encode())
            lines.clear()
    h.update("".join(lines).encode())
    return h.hexdigest()


def render_items(plan: Plan, index: SourceIndex, *, signer: Signer | None, expires: int) -> list[dict]:
    """Items in rank order. Each source has ``kind`` and ``url`` (peers also ``appliance_id``);
    without a signer peers are left out: they would answer 403 to an unsigned URL."""
    items = []
    for p in plan.placements:
        key = p.file.key
        sources = []
        query = None
        for s in index.sources(key):
            if isinstance(s, PeerSource):
                if signer is None:
                    continue
                if query is None:       # the edge checks the token against "/" + content key
                    query = signer("/" + key, expires)
                sources.append({"kind": "peer", "appliance_id": s.appliance_id,
                                "url": f"{s.base_url}/{key}?{query}"})
            else:
                sources.append({"kind": "origin", "url": f"{s.base_url}/{key}"})
        items.append({"rank": p.rank, "key": key, "title_id": p.file.title_id, "size": p.file.size,
                      "sha256": p.file.sha256, "tier": p.tier, "sources": sources})
    return items


def has_peers(items: list[dict]) -> bool:
    return any(s["kind"] == "peer" for item in items for s in item["sources"])


def document(appliance_id: str, generation: int, generated_at: str, items: list[dict]) -> dict:
    return {"version": 1, "appliance_id": appliance_id, "generation": generation,
            "generated_at": generated_at, "items": items}
