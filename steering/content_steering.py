"""Content Steering manifests: a running player asks which pathway (appliance) to use next.

HLS: the Steering Manifest of the HLS Content Steering specification (Apple, v1.2; draft-pantos-hls-rfc8216bis
§7): ``VERSION``, ``TTL`` (seconds until the next request), ``RELOAD-URI``, ``PATHWAY-PRIORITY``. The player
adds ``_HLS_pathway`` (the pathway it uses now) and ``_HLS_throughput`` (bits/s) to the request.
DASH: ETSI TS 103 998 with ``SERVICE-LOCATION-PRIORITY`` and ``_DASH_pathway`` / ``_DASH_throughput``. We also
send ``PATHWAY-PRIORITY`` in DASH answers: dash.js ignored an answer carrying only SERVICE-LOCATION-PRIORITY,
and it sends ``_DASH_pathway="A"`` with literal quotes (../shared/PLAYER_NOTES.md).

A pathway ID is an appliance id: the control plane names each BaseURL / variant after the appliance it
points at. The manifest's steering URL may carry ``pathways=a,b,c`` (the appliances the manifest offers);
the answer then orders those of them steering would choose now and leaves out the rest (stale,
unhealthy, not holding the content). Listing a dead appliance even last made dash.js stall after its
edge was killed (tests/integration/steering/test_players_steering.py); players treat a pathway missing
from the list as not to be used, and steering lists it again once the snapshot says it is back.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlencode

from steering.ranking import Ranked

STEERING_VERSION = 1


class Protocol(StrEnum):
    HLS = "hls"
    DASH = "dash"

    @property
    def param_prefix(self) -> str:
        return "_HLS_" if self is Protocol.HLS else "_DASH_"


@dataclass(frozen=True, slots=True)
class PlayerState:
    """What the player told us: its current pathway and measured throughput (either may be missing)."""

    pathway: str | None
    throughput_bps: int | None


def read_player_state(protocol: Protocol, query: dict[str, str]) -> PlayerState:
    """Read ``_HLS_pathway``/``_DASH_pathway`` (quotes stripped) and the throughput (garbage: absent)."""
    prefix = protocol.param_prefix
    pathway = query.get(prefix + "pathway")
    if pathway is not None:
        pathway = pathway.strip().strip('"').strip() or None
    raw = query.get(prefix + "throughput", "").strip().strip('"')
    throughput = int(raw) if raw.isascii() and raw.isdigit() else None
    return PlayerState(pathway, throughput)


def parse_pathways(text: str | None) -> tuple[str, ...] | None:
    """``pathways=a,b,c`` → ("a", "b", "c"); absent or empty → None (any appliance may be named)."""
    if not text:
        return None
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    return names or None


def pathway_priority(ranked: list[Ranked], offered: tuple[str, ...] | None, player: PlayerState, *,
                     min_throughput_bps: int = 0) -> list[str]:
    """Order the pathways. `ranked` is the full ranking (no limit) for this client and content.

    - With `offered`, only those pathways appear, and only the ones the ranking contains.
    - Stickiness: the player's current pathway moves to the front when it ranks in the same tier as the
      first candidate and is not overloaded, so an equal alternative does not make it switch (each
      switch costs a new connection and a cold range read).
    - If the player reports a throughput below `min_throughput_bps` (0 disables) on its current pathway,
      that pathway moves behind the next candidate that is not overloaded.
    """
    usable = [r for r in ranked if offered is None or r.appliance.id in offered]
    order = [r.appliance.id for r in usable]
    current = next((r for r in usable if r.appliance.id == player.pathway), None)
    if current is not None and usable:
        slow = (min_throughput_bps > 0 and player.throughput_bps is not None
                and player.throughput_bps < min_throughput_bps)
        if slow:
            order = _demote(order, current.appliance.id, usable)
        elif not current.overloaded and current.tier == usable[0].tier and not usable[0].overloaded:
            order.remove(current.appliance.id)
            order.insert(0, current.appliance.id)
    return order


def _demote(order: list[str], pathway: str, usable: list[Ranked]) -> list[str]:
    position = order.index(pathway)
    for r in usable[position + 1:]:
        if not r.overloaded:
            order = [p for p in order if p != pathway]
            order.insert(order.index(r.appliance.id) + 1, pathway)
            break
    return order


def client_address(remote: str, forwarded_for: str | None,
                   trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> str:
    """The player's address: the connection's peer, unless that peer is one of our trusted proxies (a load
    balancer in front of the steering replicas); then the right-most X-Forwarded-For entry that is not a
    trusted proxy (entries to its left were written by the client and cannot be trusted)."""
    if not trusted or not forwarded_for or not _in(remote, trusted):
        return remote
    entries = [e.strip() for e in forwarded_for.split(",") if e.strip()]
    for entry in reversed(entries):
        if not _in(entry, trusted):
            return entry if _valid(entry) else remote
    return entries[0] if entries and _valid(entries[0]) else remote


def _in(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def reload_uri(path: str, query: dict[str, str]) -> str:
    """The URI the player polls next: our own path and query without the player's ``_HLS_``/``_DASH_``
    parameters (it adds fresh ones on every request)."""
    kept = {k: v for k, v in query.items() if not k.startswith(("_HLS_", "_DASH_"))}
    return f"{path}?{urlencode(kept)}" if kept else path


def steering_manifest(protocol: Protocol, priority: list[str], *, ttl_s: int,
                      reload: str) -> dict[str, object]:
    """The JSON steering manifest for `protocol`."""
    doc: dict[str, object] = {"VERSION": STEERING_VERSION, "TTL": ttl_s, "RELOAD-URI": reload}
    if protocol is Protocol.DASH:
        doc["SERVICE-LOCATION-PRIORITY"] = list(priority)
    doc["PATHWAY-PRIORITY"] = list(priority)
    return doc
