"""The `oca-control` daemon's configuration: one TOML file validated into frozen dataclasses.

Every key is documented in docs/examples/oca-control.toml. `defaults(data_dir, listen)` gives the
zero-set-up configuration `oca-control serve --listen HOST:PORT --data-dir DIR` runs on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from oca.config import ConfigError, Section, load_toml, parse_address

DEFAULT_LISTEN = ("0.0.0.0", 8000)
DEFAULT_CONFIG_PATH = "/etc/oca/oca-control.toml"


@dataclass(frozen=True)
class ServerConfig:
    listen: tuple[str, int] = DEFAULT_LISTEN
    shutdown_timeout: float = 10.0
    access_log: bool = True
    max_body: int = 1024 * 1024               # write APIs (titles, licences, appliances)
    workers: int = 1                          # processes sharing the port (control_plane/workers.py)


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///oca-control.db"
    pool_size: int = 10
    migrate_on_start: bool = False


@dataclass(frozen=True)
class AuthConfig:
    operator_token_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class GeoConfig:
    country_db: Path | None = None
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    country_header: str = "X-Client-Country"
    forwarded_header: str = "X-Forwarded-For"


@dataclass(frozen=True)
class FleetConfig:
    stale_after: float = 90.0
    snapshot_cache: float = 1.0
    max_report_size: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class TelemetryConfig:
    max_body: int = 4096
    flush_interval: float = 1.0
    flush_batch: int = 50_000
    max_pending: int = 500_000
    max_keys: int = 200_000
    retry_after: float = 2.0
    bucket: float = 60.0


@dataclass(frozen=True)
class PopularityConfig:
    half_life: float = 3 * 86400.0
    heartbeat_weight: float = 0.0


@dataclass(frozen=True)
class FillConfig:
    licence_window: float = 86400.0
    ssd_head_fraction: float = 0.2
    cached_fraction: float = 0.8
    max_peer_sources: int = 3
    url_ttl: float = 86400.0
    inputs_cache: float = 30.0


@dataclass(frozen=True)
class SigningConfig:
    """URL signing (oca/tokens.py): fill-manifest peer URLs, playback-manifest appliance URLs."""
    key_ring: Path | None = None
    key_id: str | None = None


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "json"


@dataclass(frozen=True)
class ControlConfig:
    file: str = "(defaults)"
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    geoip: GeoConfig = field(default_factory=GeoConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    popularity: PopularityConfig = field(default_factory=PopularityConfig)
    fill: FillConfig = field(default_factory=FillConfig)
    signing: SigningConfig = field(default_factory=SigningConfig)
    log: LogConfig = field(default_factory=LogConfig)
    # Sections owned by route modules (``CONFIG_SECTIONS`` in control_plane/api/*.py), by name;
    # also readable as attributes: ``config.ingest``.
    extensions: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        extensions = self.__dict__.get("extensions", {})
        if name in extensions:
            return extensions[name]
        raise AttributeError(name)


def load_config(path: str | Path) -> ControlConfig:
    """Read and validate the TOML file; ConfigError names the file and the key."""
    return read_config(load_toml(path))


def read_config(root: Section) -> ControlConfig:
    config = ControlConfig(
        file=root.file,
        server=_server(root.section("server")),
        database=_database(root.section("database")),
        auth=_auth(root.section("auth")),
        geoip=_geo(root.section("geoip")),
        fleet=_fleet(root.section("fleet")),
        telemetry=_telemetry(root.section("telemetry")),
        popularity=_popularity(root.section("popularity")),
        fill=_fill(root.section("fill")),
        signing=_signing(root.section("signing")),
        log=_log(root.section("log")),
        extensions=_extensions(root),
    )
    root.done()
    return config


def extension_readers() -> dict[str, Callable[[Section], Any]]:
    """Section name → reader, from every route module's ``CONFIG_SECTIONS`` (see control_plane/api)."""
    from control_plane.api import route_modules

    readers: dict[str, Callable[[Section], Any]] = {}
    for module in route_modules():
        for name, reader in getattr(module, "CONFIG_SECTIONS", {}).items():
            if name in readers or name in _CORE_SECTIONS:
                raise RuntimeError(f"config section [{name}] is claimed twice ({module.__name__})")
            readers[name] = reader
    return readers


_CORE_SECTIONS = ("server", "database", "auth", "geoip", "fleet", "telemetry", "popularity", "fill", "signing", "log")


def _extensions(root: Section) -> dict[str, Any]:
    """Each present extension section, validated by its owner's reader (which calls ``done()``)."""
    return {name: reader(root.section(name)) for name, reader in extension_readers().items() if root.has(name)}


def defaults(data_dir: Path, listen: tuple[str, int] = DEFAULT_LISTEN) -> ControlConfig:
    """Embedded defaults: SQLite in `data_dir`, migrated on start, the operator token file in it."""
    base = ControlConfig(file=f"(defaults, data dir {data_dir})")
    return replace(
        base,
        server=replace(base.server, listen=listen),
        database=replace(base.database, url=f"sqlite:///{data_dir.resolve() / 'control.db'}",
                         migrate_on_start=True),
        auth=AuthConfig(operator_token_files=(data_dir.resolve() / "operator.token",)),
    )


def _server(s: Section) -> ServerConfig:
    d = ServerConfig()
    out = ServerConfig(listen=s.address("listen", f"{d.listen[0]}:{d.listen[1]}"),
                       shutdown_timeout=s.duration("shutdown_timeout", d.shutdown_timeout),
                       access_log=s.bool("access_log", d.access_log),
                       max_body=s.size("max_body", d.max_body),
                       workers=s.int("workers", d.workers, min=1, max=64))
    s.done()
    return out


def _database(s: Section) -> DatabaseConfig:
    d = DatabaseConfig()
    url = s.str("url", d.url)
    if not url.startswith(("sqlite:", "sqlite+aiosqlite:", "postgresql:", "postgresql+asyncpg:", "postgres:")):
        raise s.error("url", "expected a sqlite:///PATH or postgresql://... URL")
    out = DatabaseConfig(url=url, pool_size=s.int("pool_size", d.pool_size, min=1, max=1000),
                         migrate_on_start=s.bool("migrate_on_start", d.migrate_on_start))
    s.done()
    return out


def _auth(s: Section) -> AuthConfig:
    files = s.str_list("operator_token_files", [])
    base = Path(s.file).resolve().parent
    out = AuthConfig(operator_token_files=tuple(p if Path(p).is_absolute() else base / p
                                                for p in map(Path, files)))
    s.done()
    return out


def _geo(s: Section) -> GeoConfig:
    d = GeoConfig()
    nets = []
    for i, text in enumerate(s.str_list("trusted_proxies", [])):
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise s.error(f"trusted_proxies[{i}]", f"not an IP network: {text!r}") from None
    out = GeoConfig(country_db=s.path("country_db", None, must_be_file=True), trusted_proxies=tuple(nets),
                    country_header=s.str("country_header", d.country_header),
                    forwarded_header=s.str("forwarded_header", d.forwarded_header))
    s.done()
    return out


def _fleet(s: Section) -> FleetConfig:
    d = FleetConfig()
    out = FleetConfig(stale_after=s.duration("stale_after", d.stale_after),
                      snapshot_cache=s.duration("snapshot_cache", d.snapshot_cache),
                      max_report_size=s.size("max_report_size", d.max_report_size))
    if out.stale_after <= 0:
        raise s.error("stale_after", "must be positive")
    s.done()
    return out


def _telemetry(s: Section) -> TelemetryConfig:
    d = TelemetryConfig()
    out = TelemetryConfig(max_body=s.size("max_body", d.max_body),
                          flush_interval=s.duration("flush_interval", d.flush_interval),
                          flush_batch=s.int("flush_batch", d.flush_batch, min=1),
                          max_pending=s.int("max_pending", d.max_pending, min=1),
                          max_keys=s.int("max_keys", d.max_keys, min=1),
                          retry_after=s.duration("retry_after", d.retry_after),
                          bucket=s.duration("bucket", d.bucket))
    if out.flush_interval <= 0:
        raise s.error("flush_interval", "must be positive")
    if out.bucket < 1:
        raise s.error("bucket", "must be at least 1s")
    s.done()
    return out


def _popularity(s: Section) -> PopularityConfig:
    d = PopularityConfig()
    out = PopularityConfig(half_life=s.duration("half_life", d.half_life),
                           heartbeat_weight=s.float("heartbeat_weight", d.heartbeat_weight, min=0.0))
    if out.half_life < 60:
        raise s.error("half_life", "must be at least 60s")
    s.done()
    return out


def _fill(s: Section) -> FillConfig:
    d = FillConfig()
    out = FillConfig(licence_window=s.duration("licence_window", d.licence_window),
                     ssd_head_fraction=s.float("ssd_head_fraction", d.ssd_head_fraction, min=0.0, max=1.0),
                     cached_fraction=s.float("cached_fraction", d.cached_fraction, min=0.0, max=1.0),
                     max_peer_sources=s.int("max_peer_sources", d.max_peer_sources, min=0, max=32),
                     url_ttl=s.duration("url_ttl", d.url_ttl),
                     inputs_cache=s.duration("inputs_cache", d.inputs_cache))
    if out.ssd_head_fraction > out.cached_fraction:
        raise s.error("ssd_head_fraction", "must not exceed cached_fraction")
    if out.url_ttl < 60:
        raise s.error("url_ttl", "must be at least 60s")
    s.done()
    return out


def _signing(s: Section) -> SigningConfig:
    out = SigningConfig(key_ring=s.path("key_ring", None, must_be_file=True), key_id=s.str("key_id", None))
    s.done()
    return out


def _log(s: Section) -> LogConfig:
    out = LogConfig(level=s.choice("level", ("debug", "info", "warning", "error"), "info"),
                    format=s.choice("format", ("json", "text"), "json"))
    s.done()
    return out


def parse_listen(text: str) -> tuple[str, int]:
    """`--listen HOST:PORT` for the CLI; ConfigError names the flag."""
    try:
        return parse_address(text)
    except ValueError as e:
        raise ConfigError("--listen", "", str(e)) from None
