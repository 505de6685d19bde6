"""Builders for fleet snapshot documents (docs/contracts.md) and GeoIP databases used by the steering tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

NOW = "2026-11-25T17:00:00Z"


def appliance(appliance_id: str, kind: str = "embedded", *, asn: int | None = 64500, country: str | None = "DE",
              region: str | None = "eu-central", v4: Iterable[str] = (), v6: Iterable[str] = (),
              keys: Iterable[str] = (), healthy: bool = True, fresh: bool = True, load: float = 0.1,
              holds_all: bool | None = None, base_url: str | None = None) -> dict[str, Any]:
    return {
        "id": appliance_id, "kind": kind, "site": f"site-{appliance_id}", "region": region, "country": country,
        "asn": asn, "base_url": base_url or f"http://{appliance_id}.example:8080",
        "healthy": healthy, "fresh": fresh, "last_report_at": NOW, "load_ratio": load,
        "link_capacity_bps": 10_000_000_000,
        "holds_all": kind == "origin" if holds_all is None else holds_all,
        "prefixes": {"ipv4": list(v4), "ipv6": list(v6)}, "keys": list(keys),
    }


def snapshot(appliances: list[dict[str, Any]], titles: dict[str, list[str]] | None = None,
             generation: str = "g1") -> dict[str, Any]:
    return {"version": 1, "generation": generation, "generated_at": NOW, "stale_after_s": 90,
            "appliances": appliances, "titles": titles if titles is not None else {"t1": ["t1/a.mp4", "t1/b.mp4"]}}


def write_geoip(tmp: Path, asn: dict[str, int], country: dict[str, str]) -> tuple[Path, Path]:
    """Write an ASN and a Country MaxMind DB (GeoLite2 shapes) mapping networks to values; IPv4 and IPv6."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    asn_path, country_path = tmp / "asn.mmdb", tmp / "country.mmdb"
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    # Broader networks first, narrower after (../shared/BGP_NOTES.md).
    for net, number in sorted(asn.items(), key=lambda item: int(item[0].split("/")[1])):
        writer.insert_network(IPSet([net]), {"autonomous_system_number": number,
                                             "autonomous_system_organization": f"AS{number}"})
    writer.to_db_file(str(asn_path))
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    for net, code in sorted(country.items(), key=lambda item: int(item[0].split("/")[1])):
        writer.insert_network(IPSet([net]), {"country": {"iso_code": code, "names": {"en": code}}})
    writer.to_db_file(str(country_path))
    return asn_path, country_path
