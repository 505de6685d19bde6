"""Playback decisions, pure: which appliances serve a client (when steering is not configured), and
the signed URLs and media-playlist links a manifest carries for each of them.

`rank_locally` is the in-process stand-in for the steering service (contracts.md "Steering
answer"), following the reference design's order: ISP-embedded appliances whose prefixes cover the
client and whose load is under `max_load`, then exchange points, then origins; only healthy, fresh
appliances that hold every file of the title (origins hold everything); ties by lower load, then id.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from control_plane.fleet import ApplianceState, is_healthy
from control_plane.manifests import Location

_KIND_ORDER = {"embedded": 0, "ixp": 1, "origin": 2}


@dataclass(frozen=True)
class Candidate:
    appliance_id: str
    kind: str
    base_url: str
    reason: str


@functools.lru_cache(maxsize=65536)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """Parsed once: the same reported prefixes are matched on every manifest request."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


@functools.lru_cache(maxsize=65536)
def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def _covers(prefixes: dict, ip: str | None) -> str | None:
    addr = _address(ip) if ip is not None else None
    if addr is None:
        return None
    family = "ipv4" if addr.version == 4 else "ipv6"
    for text in prefixes.get(family, ()):
        net = _network(text)
        if net is not None and addr in net:
            return text
    return None


def rank_locally(states: Iterable[ApplianceState], keys: Sequence[str], client_ip: str | None, now: float,
                 stale_after: float, max_load: float = 0.8, limit: int = 3) -> list[Candidate]:
    """Appliances able to serve all `keys` to `client_ip`, best first (at most `limit`)."""
    scored = []
    for s in states:
        spec = s.spec
        if not is_healthy(s, now, stale_after):
            continue
        if spec.kind != "origin" and not set(keys) <= s.keys:
            continue
        load = s.load_ratio or 0.0
        if spec.kind == "embedded":
            prefix = _covers(s.prefixes, client_ip)
            if prefix is None or load >= max_load:
                continue
            reason = f"embedded appliance whose prefix {prefix} covers the client"
        elif spec.kind == "ixp":
            reason = "exchange-point appliance holding the title"
        else:
            reason = "origin"
        scored.append(((_KIND_ORDER.get(spec.kind, 3), load, spec.id), Candidate(spec.id, spec.kind,
                                                                                   spec.base_url, reason)))
    return [c for _, c in sorted(scored, key=lambda t: t[0])][:limit]


Signer = Callable[[str], str]  # path ("/" + key) → token query string (without "?")


def locations(candidates: Sequence[Candidate], keys: Sequence[str], sign: Signer | None,
              playlist_base: str | None = None) -> list[Location]:
    """One manifest `Location` per candidate: the signed URL of every key; with `playlist_base`,
    also the (relative) URL of each key's HLS media playlist for that pathway."""
    out = []
    for c in candidates:
        urls, playlists = {}, {}
        for key in keys:
            query = sign("/" + key) if sign else ""
            urls[key] = f"{c.base_url}/{key}" + (f"?{query}" if query else "")
            if playlist_base is not None:
                name = key.rsplit("/", 1)[-1]
                params = urlencode({"b": c.base_url}) + (f"&{query}" if query else "")
                playlists[key] = f"{playlist_base}{quote(c.appliance_id, safe='')}/{name}.m3u8?{params}"
        out.append(Location(c.appliance_id, urls, playlists if playlist_base is not None else None))
    return out
