"""`oca-steering` configuration (docs/examples/oca-steering.toml documents every key)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from oca.config import Section, load_toml
from steering.ranking import DEFAULT_LOAD_LIMIT


@dataclass(frozen=True)
class SnapshotConfig:
    url: str
    token: str | None
    interval: float
    timeout: float


@dataclass(frozen=True)
class RankingConfig:
    load_limit: float = DEFAULT_LOAD_LIMIT
    max_candidates: int = 5
    cache_entries: int = 200_000
    answer_cache_mib: int = 64
    country_regions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContentSteeringConfig:
    ttl: int = 10
    min_throughput_bps: int = 0
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


@dataclass(frozen=True)
class SteeringConfig:
    listen: tuple[str, int]
    snapshot: SnapshotConfig
    asn_db: Path | None
    country_db: Path | None
    ranking: RankingConfig
    content_steering: ContentSteeringConfig
    compiled_path: bool = True     # plain cached steer queries answered at the connection (steering/connection.py)


def load_steering_config(path: str | Path) -> SteeringConfig:
    """Read and validate the file; raises oca.config.ConfigError naming file and key."""
    root = load_toml(path)
    server = root.section("server")
    listen = server.address("listen", "0.0.0.0:8100")
    compiled_path = server.bool("compiled_path", True)
    server.done()
    snapshot = _read_snapshot(root.section("snapshot", required=True))
    geoip = root.section("geoip")
    asn_db = geoip.path("asn_db", None, must_be_file=True)
    country_db = geoip.path("country_db", None, must_be_file=True)
    geoip.done()
    ranking = _read_ranking(root.section("ranking"))
    cs = root.section("content_steering")
    content_steering = ContentSteeringConfig(
        ttl=int(cs.duration("ttl", 10)) or 1,
        min_throughput_bps=cs.int("min_throughput_bps", 0, min=0),
        trusted_proxies=_read_networks(cs, "trusted_proxies"),
    )
    cs.done()
    root.done()
    return SteeringConfig(listen, snapshot, asn_db, country_db, ranking, content_steering, compiled_path)


def _read_networks(s: Section, name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for n, text in enumerate(s.str_list(name, [])):
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as e:
            raise s.error(f"{name}[{n}]", str(e)) from None
    return tuple(networks)


def _read_snapshot(s: Section) -> SnapshotConfig:
    url = s.str("url")
    if not url.startswith(("http://", "https://")):
        raise s.error("url", f"expected an http(s) URL, got {url!r}")
    token = s.secret("token", required=False)
    interval = s.duration("interval", 5.0)
    if interval <= 0:
        raise s.error("interval", "must be positive")
    timeout = s.duration("timeout", 10.0)
    s.done()
    return SnapshotConfig(url, token, interval, timeout or 10.0)


def _read_ranking(s: Section) -> RankingConfig:
    load_limit = s.float("load_limit", DEFAULT_LOAD_LIMIT, min=0.0)
    max_candidates = s.int("max_candidates", 5, min=1, max=1000)
    cache_entries = s.int("cache_entries", 200_000, min=0)
    answer_cache_mib = s.int("answer_cache_mib", 64, min=0, max=1 << 20)
    regions_section = s.section("country_regions")
    regions = {}
    for country in list(regions_section.data):
        if len(country) != 2 or not country.isalpha():
            raise regions_section.error(country, "expected an ISO 3166-1 alpha-2 country code as the key")
        regions[country.upper()] = regions_section.str(country)
    regions_section.done()
    s.done()
    return RankingConfig(load_limit, max_candidates, cache_entries, answer_cache_mib, regions)
