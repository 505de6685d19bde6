"""The fleet: appliance registrations, their reports, liveness, and the snapshot steering reads.

Pure: parses registration and report bodies (contracts.md "Appliance report"), decides what an
inventory report does to the stored inventory (`decide_inventory`), judges freshness and health,
and builds the fleet snapshot document with a content-derived generation. The repository
(`db/fleet.py`) performs the writes this module decides.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

from control_plane import validation as v
from control_plane.errors import ApiError, invalid
from oca.contentkey import InvalidKey, validate_key

KINDS = ("embedded", "ixp", "origin")
HEALTH = ("ok", "degraded", "failed")
TIERS = ("ssd", "hdd")
REPORT_VERSION = 1


@dataclass(frozen=True)
class ApplianceSpec:
    """What an operator registers."""
    id: str
    kind: str
    site: str
    region: str
    country: str
    asn: int
    base_url: str
    capacity_ssd: int
    capacity_hdd: int
    link_capacity_bps: int

    def to_json(self) -> dict:
        d = asdict(self)
        d["capacity"] = {"ssd": d.pop("capacity_ssd"), "hdd": d.pop("capacity_hdd")}
        return d


@dataclass(frozen=True)
class Item:
    key: str
    size: int
    sha256: str
    tier: str


@dataclass(frozen=True)
class FullInventory:
    generation: int
    items: tuple[Item, ...]


@dataclass(frozen=True)
class DeltaInventory:
    base_generation: int
    generation: int
    added: tuple[Item, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    sent_at: float
    health_status: str
    health: dict
    load: dict
    load_ratio: float
    inventory: FullInventory | DeltaInventory | None
    prefixes: dict


# -- what an inventory report does (closed outcomes) --------------------------------------------

@dataclass(frozen=True)
class Replace:
    items: tuple[Item, ...]
    generation: int


@dataclass(frozen=True)
class Patch:
    added: tuple[Item, ...]
    removed: tuple[str, ...]
    generation: int


@dataclass(frozen=True)
class UnknownGeneration:
    held: int | None
    base: int


InventoryDecision = Replace | Patch | UnknownGeneration


def decide_inventory(held_generation: int | None, inventory: FullInventory | DeltaInventory) -> InventoryDecision:
    """A full snapshot always replaces (the appliance may have been rebuilt); a delta applies only
    on top of the generation the control plane holds, else the appliance must send a full one."""
    match inventory:
        case FullInventory(generation=gen, items=items):
            return Replace(items, gen)
        case DeltaInventory(base_generation=base, generation=gen, added=added, removed=removed):
            if held_generation is None or base != held_generation:
                return UnknownGeneration(held_generation, base)
            return Patch(added, removed, gen)
    raise TypeError(inventory)


def unknown_generation_error(outcome: UnknownGeneration) -> ApiError:
    return ApiError(409, "unknown_generation",
                    f"delta against generation {outcome.base}, but the control plane holds "
                    f"{'none' if outcome.held is None else outcome.held}: send a full inventory",
                    "inventory.base_generation")


# -- parsing -------------------------------------------------------------------------------------

def parse_spec(body: dict, *, appliance_id: str | None = None) -> ApplianceSpec:
    v.obj(body)
    allowed = {"id", "kind", "site", "region", "country", "asn", "base_url", "capacity", "link_capacity_bps"}
    for name in body:
        if name not in allowed:
            raise invalid(name, "unknown field", "unknown_field")
    ident = v.identifier(body, "id", appliance_id)
    if appliance_id is not None and ident != appliance_id:
        raise invalid("id", f"the body says {ident!r} but the URL says {appliance_id!r}")
    capacity = v.obj(v.get(body, "capacity", "", {}), "capacity")
    return ApplianceSpec(
        id=ident,
        kind=v.string(body, "kind", choices=KINDS),
        site=v.identifier(body, "site"),
        region=v.identifier(body, "region"),
        country=v.country(body, "country"),
        asn=v.integer(body, "asn", lo=0, hi=4294967295),
        base_url=_base_url(v.string(body, "base_url", max_len=1000)),
        capacity_ssd=v.integer(capacity, "ssd", 0, prefix="capacity."),
        capacity_hdd=v.integer(capacity, "hdd", 0, prefix="capacity."),
        link_capacity_bps=v.integer(body, "link_capacity_bps", lo=0),
    )


def _base_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise invalid("base_url", "expected an http(s) URL without query, e.g. http://10.0.0.5:8080")
    return text.rstrip("/")


def parse_report(appliance_id: str, body: dict) -> Report:
    """The appliance report of contracts.md; 422 names the first bad field."""
    v.obj(body)
    version = v.integer(body, "version", lo=None)
    if version != REPORT_VERSION:
        raise invalid("version", f"unsupported report version {version} (this server reads {REPORT_VERSION})",
                      "unsupported_version")
    if v.string(body, "appliance_id", max_len=64) != appliance_id:
        raise invalid("appliance_id", "does not match the appliance id in the URL")
    health = v.obj(v.get(body, "health", "", None), "health")
    load = v.obj(v.get(body, "load", "", None), "load")
    inventory = body.get("inventory")
    return Report(
        sent_at=v.timestamp(body, "sent_at"),
        health_status=v.string(health, "status", prefix="health.", choices=HEALTH),
        health=_health(health),
        load=_load(load),
        load_ratio=v.number(load, "ratio", prefix="load."),
        inventory=None if inventory is None else _inventory(v.obj(inventory, "inventory")),
        prefixes=_prefixes(body.get("prefixes")),
    )


def _health(health: dict) -> dict:
    disks = v.get(health, "disks", "health.", [])
    if not isinstance(disks, list):
        raise invalid("health.disks", "expected an array")
    out_disks = []
    for i, disk in enumerate(disks):
        p = f"health.disks[{i}]."
        v.obj(disk, p[:-1])
        out_disks.append({"id": v.string(disk, "id", prefix=p, max_len=64),
                          "tier": v.string(disk, "tier", prefix=p, choices=TIERS),
                          "state": v.string(disk, "state", prefix=p, max_len=32),
                          "capacity_bytes": v.integer(disk, "capacity_bytes", prefix=p),
                          "used_bytes": v.integer(disk, "used_bytes", prefix=p)})
    errors = v.get(health, "errors", "health.", [])
    if not isinstance(errors, list) or not all(isinstance(e, str) and len(e) <= 500 for e in errors):
        raise invalid("health.errors", "expected an array of short strings")
    return {"status": health["status"], "disks": out_disks, "errors": errors[:50]}


def _load(load: dict) -> dict:
    return {"tx_bps": v.integer(load, "tx_bps", 0, prefix="load."),
            "link_capacity_bps": v.integer(load, "link_capacity_bps", 0, prefix="load."),
            "ratio": v.number(load, "ratio", prefix="load."),
            "active_connections": v.integer(load, "active_connections", 0, prefix="load.")}


def _items(raw: object, field_name: str) -> tuple[Item, ...]:
    if not isinstance(raw, list):
        raise invalid(field_name, "expected an array")
    out = []
    for i, item in enumerate(raw):
        p = f"{field_name}[{i}]."
        v.obj(item, p[:-1])
        key = v.string(item, "key", prefix=p, max_len=512)
        try:
            validate_key(key)
        except InvalidKey as e:
            raise invalid(p + "key", e.reason) from None
        out.append(Item(key, v.integer(item, "size", prefix=p), v.sha256(item, "sha256", prefix=p),
                        v.string(item, "tier", prefix=p, choices=TIERS)))
    return tuple(out)


def _inventory(inv: dict) -> FullInventory | DeltaInventory:
    kind = v.string(inv, "kind", prefix="inventory.", choices=("full", "delta"))
    generation = v.integer(inv, "generation", prefix="inventory.")
    if kind == "full":
        return FullInventory(generation, _items(inv.get("items", []), "inventory.items"))
    base = v.integer(inv, "base_generation", prefix="inventory.")
    if generation < base:
        raise invalid("inventory.generation", "a delta's generation cannot be below its base_generation")
    removed = inv.get("removed", [])
    if not isinstance(removed, list) or not all(isinstance(k, str) for k in removed):
        raise invalid("inventory.removed", "expected an array of content keys")
    return DeltaInventory(base, generation, _items(inv.get("added", []), "inventory.added"), tuple(removed))


def _prefixes(raw: object) -> dict:
    if raw is None:
        return {"ipv4": [], "ipv6": [], "source": None}
    prefixes = v.obj(raw, "prefixes")
    out: dict = {"source": v.string(prefixes, "source", None, prefix="prefixes.", max_len=200)}
    for family, version in (("ipv4", 4), ("ipv6", 6)):
        values = prefixes.get(family, [])
        if not isinstance(values, list):
            raise invalid(f"prefixes.{family}", "expected an array of prefixes")
        nets = []
        for i, text in enumerate(values):
            try:
                net = ipaddress.ip_network(text, strict=True) if isinstance(text, str) else None
            except ValueError:
                net = None
            if net is None or net.version != version:
                raise invalid(f"prefixes.{family}[{i}]", f"not an IPv{version} prefix: {text!r}")
            nets.append(str(net))
        out[family] = nets
    return out


# -- liveness and the snapshot ---------------------------------------------------------------------

@dataclass(frozen=True)
class ApplianceState:
    """A registered appliance with what its last report said."""
    spec: ApplianceSpec
    last_report_at: float | None = None
    health_status: str | None = None
    load_ratio: float | None = None
    inventory_generation: int | None = None
    prefixes: Mapping = field(default_factory=dict)
    keys: frozenset[str] = frozenset()

    @property
    def kind(self) -> str:
        return self.spec.kind


class Liveness(NamedTuple):
    """What deciding freshness and rotation needs of an appliance (a light query for /metrics)."""
    appliance_id: str
    kind: str
    last_report_at: float | None
    health_status: str | None


def is_fresh(state: ApplianceState | Liveness, now: float, stale_after: float) -> bool:
    """Reported within `stale_after` seconds. Origins are always fresh: they hold everything and
    are not expected to run the reporter."""
    if state.kind == "origin":
        return True
    return state.last_report_at is not None and now - state.last_report_at <= stale_after


def is_healthy(state: ApplianceState | Liveness, now: float, stale_after: float) -> bool:
    """In rotation: fresh, and its last report (if any; origins may never report) did not say failed."""
    if not is_fresh(state, now, stale_after):
        return False
    return state.health_status != "failed"


def snapshot_document(states: Iterable[ApplianceState], titles: Mapping[str, Iterable[str]], now: float,
                      stale_after: float) -> dict:
    """The fleet snapshot of contracts.md. `generation` is a digest of everything but
    `generated_at`, so it changes exactly when a field changes (fresh/healthy flip with time)."""
    appliances = []
    for s in sorted(states, key=lambda st: st.spec.id):
        spec = s.spec
        appliances.append({
            "id": spec.id, "kind": spec.kind, "site": spec.site, "region": spec.region,
            "country": spec.country, "asn": spec.asn, "base_url": spec.base_url,
            "healthy": is_healthy(s, now, stale_after), "fresh": is_fresh(s, now, stale_after),
            "last_report_at": v.format_time(s.last_report_at),
            "load_ratio": s.load_ratio if s.load_ratio is not None else 0.0,
            "link_capacity_bps": spec.link_capacity_bps,
            "holds_all": spec.kind == "origin",
            "prefixes": {"ipv4": list(s.prefixes.get("ipv4", [])), "ipv6": list(s.prefixes.get("ipv6", []))},
            "keys": sorted(s.keys),
        })
    body = {"version": 1, "stale_after_s": stale_after, "appliances": appliances,
            "titles": {t: sorted(keys) for t, keys in sorted(titles.items())}}
    generation = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
    return {"version": 1, "generation": generation, "generated_at": v.format_time(now), **{
        k: body[k] for k in ("stale_after_s", "appliances", "titles")}}
