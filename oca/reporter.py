"""The appliance reporter: tells the control plane what this box holds, how loaded it is, whether its
disks are healthy and which client prefixes its BGP session learned (docs/contracts.md, "Appliance report").

Pure parts build the report from plain values (`build_report`, `health_section`, `load_section`,
`InventoryTracker.next_inventory`); `Reporter` is the thin I/O shell that reads the store, the kernel
routing table and the NIC counters, POSTs the report with the appliance token every interval, answers a
409 (the control plane lost our generation) with a full snapshot at once, and keeps going while the
control plane is down. `Reporter.reconfigure` swaps in a new configuration (SIGHUP in `oca report`),
effective at the next report.

Configuration: the ``[reporter]`` table of ``oca.toml`` (docs/steering.md documents every key).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp

from oca.config import Section
from oca.index import READY
from oca.kernel_routes import KernelRoutes, RouteReadError, read_table, read_table_pyroute2
from oca.store import DiskUsage, Entry, Store

log = logging.getLogger(__name__)

REPORT_VERSION = 1
_BITRATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:bps|bit/s|bit)?\s*$", re.IGNORECASE)
_BITRATE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# -- configuration ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReporterConfig:
    appliance_id: str
    control_plane_url: str          # base URL; the report goes to {url}/api/v1/appliances/{id}/report
    token: str
    interval: float
    timeout: float
    interface: str | None           # NIC whose transmit rate is the load
    link_capacity_bps: int
    route_table: int | None         # kernel table BIRD exports to; None: no BGP (static prefixes only)
    route_reader: str               # "netlink" (fast, full tables) | "pyroute2"
    netns: str | None               # read routes and link stats in this network namespace
    prefixes_static: tuple[str, ...]
    serve_port: int | None          # count established connections to this port (None: don't)
    edge_ready_url: str | None = None   # the edge's /readyz; not ready → health "failed" (None: don't probe)

    @property
    def report_url(self) -> str:
        return f"{self.control_plane_url}/api/v1/appliances/{self.appliance_id}/report"


def parse_bitrate(value: Any) -> int:
    """Bits per second from an integer or ``"10Gbps"``, ``"400G"``, ``"1.5 Mbit"`` (SI units)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        m = _BITRATE.match(value)
        if m and float(m.group(1)) > 0:
            return int(float(m.group(1)) * _BITRATE_UNITS[m.group(2).lower()])
    raise ValueError(f"expected a positive bit rate such as 10Gbps or 400G, got {value!r}")


def read_reporter_config(s: Section) -> ReporterConfig:
    """Validate the ``[reporter]`` table (`root.section("reporter")` of oca.toml)."""
    appliance_id = s.str("appliance_id")
    if not _ID.match(appliance_id):
        raise s.error("appliance_id", "expected 1-64 characters of A-Z a-z 0-9 . _ -")
    url = s.str("control_plane_url")
    if not url.startswith(("http://", "https://")):
        raise s.error("control_plane_url", f"expected an http(s) URL, got {url!r}")
    token = s.secret("token", required=True)
    interval = s.duration("interval", "30s")
    if interval <= 0:
        raise s.error("interval", "must be positive")
    timeout = s.duration("timeout", "10s") or 10.0
    interface = s.str("interface", None)
    try:
        capacity = parse_bitrate(s.str("link_capacity", "10Gbps"))
    except ValueError as e:
        raise s.error("link_capacity", str(e)) from None
    table = s.int("route_table", 100, min=0, max=2**32 - 1)
    reader = s.choice("route_reader", ("netlink", "pyroute2"), "netlink")
    netns = s.str("netns", None)
    static = s.str_list("prefixes_static", [])
    for n, prefix in enumerate(static):
        try:
            _canonical_prefix(prefix)
        except ValueError as e:
            raise s.error(f"prefixes_static[{n}]", str(e)) from None
    port = s.int("serve_port", 8080, min=0, max=65535)
    ready_url = s.str("edge_ready_url", None)
    if ready_url is not None and not ready_url.startswith(("http://", "https://")):
        raise s.error("edge_ready_url", f"expected an http(s) URL, got {ready_url!r}")
    s.done()
    return ReporterConfig(appliance_id, url.rstrip("/"), token, interval, timeout, interface, capacity,
                          table or None, reader, netns, static, port or None, ready_url)


def _canonical_prefix(text: str) -> tuple[str, int]:
    net = ipaddress.ip_network(text, strict=True)
    return str(net), net.version


# -- pure report building -------------------------------------------------------------------------

def health_section(usage: Iterable[DiskUsage], errors: Iterable[str], *, serving: bool = True) -> dict[str, Any]:
    """ok when every disk is ok and nothing went wrong; failed when no disk is ok or the edge does not
    serve (steering must stop sending players to a box whose server is down); else degraded."""
    usage = list(usage)
    disks = [{"id": d.id, "tier": d.tier, "state": d.state, "capacity_bytes": d.capacity, "used_bytes": d.used}
             for d in usage]
    errors = [*(f"disk {d.id} failed: {d.reason or 'unknown reason'}" for d in usage if d.state != "ok"),
              *errors]
    all_failed = bool(disks) and all(d["state"] != "ok" for d in disks)
    status = "failed" if all_failed or not serving else ("degraded" if errors else "ok")
    return {"status": status, "disks": disks, "errors": errors}


def load_section(tx_bps: int, link_capacity_bps: int, active_connections: int | None) -> dict[str, Any]:
    """`active_connections` is left out when not counted (the contract has no null for it)."""
    load = {"tx_bps": tx_bps, "link_capacity_bps": link_capacity_bps, "ratio": round(tx_bps / link_capacity_bps, 6)}
    if active_connections is not None:
        load["active_connections"] = active_connections
    return load


def prefixes_section(routes: KernelRoutes | None, static: Iterable[str], table: int | None) -> dict[str, Any]:
    v4, v6 = set(routes.ipv4 if routes else ()), set(routes.ipv6 if routes else ())
    static = tuple(static)
    for prefix in static:
        text, version = _canonical_prefix(prefix)
        (v4 if version == 4 else v6).add(text)
    sources = ([f"kernel-table:{table}"] if table is not None else []) + (["static"] if static else [])
    return {"ipv4": sorted(v4), "ipv6": sorted(v6), "source": "+".join(sources) or "none"}


def item(entry: Entry) -> dict[str, Any]:
    return {"key": entry.key, "size": entry.size, "sha256": entry.sha256, "tier": entry.tier}


def build_report(appliance_id: str, sent_at: float, health: dict[str, Any], load: dict[str, Any],
                 inventory: dict[str, Any], prefixes: dict[str, Any]) -> dict[str, Any]:
    return {"version": REPORT_VERSION, "appliance_id": appliance_id,
            "sent_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent_at)),
            "health": health, "load": load, "inventory": inventory, "prefixes": prefixes}


class InventoryTracker:
    """Full snapshot or delta against the generation the control plane last accepted."""

    def __init__(self) -> None:
        self.accepted: int | None = None

    def next_inventory(self, store: Store) -> dict[str, Any]:
        if self.accepted is not None:
            delta = store.changes_since(self.accepted)
            if delta is not None:
                generation, upserted, removed = delta
                return {"kind": "delta", "base_generation": self.accepted, "generation": generation,
                        "added": [item(e) for e in upserted], "removed": removed}
        # Read the generation first: an entry published while we iterate is then in the snapshot AND in
        # the next delta, and applying it twice is harmless (an added key replaces the held one).
        generation = store.generation()
        failed = {disk for disk, state in store.disk_states().items() if state.state != "ok"}
        items = [item(e) for e in store.entries() if e.state == READY and e.disk not in failed]
        return {"kind": "full", "generation": generation, "items": items}

    def on_accepted(self, generation: int) -> None:
        self.accepted = generation

    def resync(self) -> None:
        """The control plane does not have our base generation: the next report is a full snapshot."""
        self.accepted = None


class TxRate:
    """Transmit rate from successive byte counters (wraps and resets count as a fresh start)."""

    def __init__(self) -> None:
        self._last: tuple[int, float] | None = None

    def update(self, tx_bytes: int, now: float) -> int | None:
        last, self._last = self._last, (tx_bytes, now)
        if last is None or now <= last[1] or tx_bytes < last[0]:
            return None
        return int((tx_bytes - last[0]) * 8 / (now - last[1]))


# -- I/O: counters, connections, routes ---------------------------------------------------------------

def read_tx_bytes(interface: str, netns: str | None = None) -> int:
    """The NIC's transmitted byte counter (IFLA_STATS64) via pyroute2."""
    from pyroute2 import IPRoute

    ipr = IPRoute(netns=netns, flags=0) if netns else IPRoute()
    try:
        links = ipr.get_links(ifname=interface)
    finally:
        ipr.close()
    if not links:
        raise OSError(f"interface {interface!r} not found")
    return int(links[0].get_attr("IFLA_STATS64")["tx_bytes"])


def count_established(port: int, proc: Path = Path("/proc/net")) -> int:
    """Established TCP connections whose local port is `port`, from /proc/net/tcp and tcp6."""
    wanted, count = f":{port:04X}", 0
    for name in ("tcp", "tcp6"):
        try:
            with open(proc / name) as f:
                next(f, None)
                for line in f:
                    fields = line.split(None, 4)
                    if len(fields) > 3 and fields[3] == "01" and fields[1].endswith(wanted):
                        count += 1
        except FileNotFoundError:
            continue
    return count


def read_routes(config: ReporterConfig) -> KernelRoutes | None:
    if config.route_table is None:
        return None
    reader = read_table if config.route_reader == "netlink" else read_table_pyroute2
    return reader(config.route_table, netns=config.netns)


# -- the shell ------------------------------------------------------------------------------------------

class ReportOutcome(StrEnum):
    ACCEPTED = "accepted"
    RESYNC = "resync"            # 409 unknown_generation: a full snapshot follows at once
    REJECTED = "rejected"        # 4xx/5xx: logged, tried again next interval
    UNREACHABLE = "unreachable"  # connection failed or timed out
    FAILED = "failed"            # the report could not be built (store error): logged, tried again


class Reporter:
    def __init__(self, config: ReporterConfig, store: Store, session: aiohttp.ClientSession, *,
                 clock: Callable[[], float] = time.time,
                 routes: Callable[[ReporterConfig], KernelRoutes | None] = read_routes,
                 tx_bytes: Callable[[str, str | None], int] = read_tx_bytes,
                 connections: Callable[[int], int] = count_established) -> None:
        self.config, self.store, self.session, self.clock = config, store, session, clock
        self._routes, self._tx_bytes, self._connections = routes, tx_bytes, connections
        self.inventory = InventoryTracker()
        self._rate = TxRate()
        self._tx_bps = 0
        self.last_report: dict[str, Any] | None = None
        self.sample_tx()

    def reconfigure(self, config: ReporterConfig) -> list[str]:
        """Swap in a new configuration (one assignment; a report being built keeps the one it started
        with, the next report uses the new one). Returns the names of the fields that changed."""
        old = self.config
        changed = [f.name for f in fields(ReporterConfig) if getattr(old, f.name) != getattr(config, f.name)]
        if (old.interface, old.netns) != (config.interface, config.netns):
            self._rate, self._tx_bps = TxRate(), 0          # counters of another NIC: start afresh
        if (old.appliance_id, old.control_plane_url) != (config.appliance_id, config.control_plane_url):
            self.inventory.resync()                          # that endpoint has not accepted our generation
        self.config = config
        return changed

    def sample_tx(self, config: ReporterConfig | None = None) -> list[str]:
        """Update the transmit rate; returns the errors met (for the report's health)."""
        config = config or self.config
        if config.interface is None:
            return []
        try:
            rate = self._rate.update(self._tx_bytes(config.interface, config.netns), self.clock())
        except OSError as e:
            return [f"link stats of {config.interface}: {e}"]
        if rate is not None:
            self._tx_bps = rate
        return []

    async def build(self, config: ReporterConfig | None = None) -> dict[str, Any]:
        config = config or self.config      # one configuration for the whole report, even across a reload
        errors = self.sample_tx(config)
        loop = asyncio.get_running_loop()
        routes = None
        try:
            # A full table takes ~0.5 s to read: off the event loop.
            routes = await loop.run_in_executor(None, self._routes, config)
        except (OSError, RouteReadError) as e:
            errors.append(f"kernel table {config.route_table}: {e}")
        self.store.check_disks()
        serving = await self._edge_ready(config, errors)
        active = self._connections(config.serve_port) if config.serve_port else None
        prefixes = prefixes_section(routes, config.prefixes_static, config.route_table)
        return build_report(
            config.appliance_id, self.clock(), health_section(self.store.usage(), errors, serving=serving),
            load_section(self._tx_bps, config.link_capacity_bps, active),
            self.inventory.next_inventory(self.store), prefixes)

    async def _edge_ready(self, config: ReporterConfig, errors: list[str]) -> bool:
        """Ask the edge's /readyz (short timeout); a dead or draining edge makes the box unhealthy."""
        if config.edge_ready_url is None:
            return True
        try:
            async with self.session.get(config.edge_ready_url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                await resp.read()
                if resp.status == 200:
                    return True
                errors.append(f"edge not ready: {config.edge_ready_url} answered HTTP {resp.status}")
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            errors.append(f"edge not serving: {config.edge_ready_url}: {e!r}")
        return False

    async def report_once(self) -> ReportOutcome:
        config = self.config
        report = await self.build(config)
        self.last_report = report
        headers = {"Authorization": f"Bearer {config.token}"}
        try:
            async with self.session.post(config.report_url, json=report, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=config.timeout)) as resp:
                body = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            log.warning("control plane unreachable (%r); will report again", e)
            return ReportOutcome.UNREACHABLE
        if status == 200:
            self.inventory.on_accepted(report["inventory"]["generation"])
            return ReportOutcome.ACCEPTED
        if status == 409:
            log.info("control plane lost inventory generation %s; sending a full snapshot",
                     report["inventory"].get("base_generation"))
            self.inventory.resync()
            return ReportOutcome.RESYNC
        log.error("report rejected: HTTP %d %s", status, body[:300].decode(errors="replace"))
        if report["inventory"]["kind"] == "delta":
            self.inventory.resync()
        return ReportOutcome.REJECTED

    async def _report_guarded(self) -> ReportOutcome:
        """One report; an unexpected error (the index unreadable, say) is logged and the loop goes on."""
        try:
            return await self.report_once()
        except Exception:
            log.exception("could not build or send the report; trying again next interval")
            return ReportOutcome.FAILED

    async def run(self, *, once: bool = False) -> ReportOutcome:
        """Report every interval (forever, or once: a 409 is answered by a full snapshot either way)."""
        while True:
            outcome = await self._report_guarded()
            if outcome is ReportOutcome.RESYNC:
                outcome = await self._report_guarded()
            if once:
                return outcome
            await asyncio.sleep(self.config.interval)
