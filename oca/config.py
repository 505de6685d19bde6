"""TOML configuration: precise validation shared by every daemon, and the `oca` daemon's own config.

Every daemon reads one TOML file with `tomllib` and validates it into frozen dataclasses. Reading
goes through `Section`, which knows its file and dotted path, so any error names the file, the key
and what was expected, e.g. ``oca.toml: store.tiers.ssd.disks[1].path: directory does not exist``.
Unknown keys are errors too (a typo must not silently fall back to a default). CLIs turn a
`ConfigError` into that one line on stderr and exit code 2 (`EXIT_CONFIG`).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_CONFIG = 2
_MISSING: Any = object()

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2,
    "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


class ConfigError(Exception):
    """A configuration problem: which file, which key, what was expected."""

    def __init__(self, file: str, key: str, message: str) -> None:
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")
        self.file, self.key, self.message = file, key, message


class Section:
    """One TOML table being validated. Getters consume keys; `done()` rejects the rest as unknown."""

    def __init__(self, data: dict[str, Any], file: str, path: str = "") -> None:
        self.data, self.file, self.where = data, file, path
        self._used: set[str] = set()

    # -- plumbing ---------------------------------------------------------------------------
    def key(self, name: str) -> str:
        if not name:
            return self.where
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), message)

    def has(self, name: str) -> bool:
        return name in self.data

    def _raw(self, name: str, default: Any) -> Any:
        self._used.add(name)
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            raise self.error(name, "required key is missing")
        return default

    def done(self) -> None:
        """Reject keys nobody asked for: most are typos of a real key."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise self.error(unknown[0], "unknown key")

    # -- scalars ----------------------------------------------------------------------------
    def str(self, name: str, default: Any = _MISSING, *, allow_empty: bool = False) -> Any:
        value = self._raw(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {_tname(value)}")
        if not value and not allow_empty:
            raise self.error(name, "must not be empty")
        return value

    def bool(self, name: str, default: Any = _MISSING) -> Any:
        value = self._raw(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {_tname(value)}")
        return value

    def int(self, name: str, default: Any = _MISSING, *, min: int | None = None,
            max: int | None = None) -> Any:
        value = self._raw(name, default)
        if value is default and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"expected an integer, got {_tname(value)}")
        return self._bounded(name, value, min, max)

    def float(self, name: str, default: Any = _MISSING, *, min: float | None = None,
              max: float | None = None) -> Any:
        value = self._raw(name, default)
        if value is default and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"expected a number, got {_tname(value)}")
        return self._bounded(name, float(value), min, max)

    def size(self, name: str, default: Any = _MISSING) -> Any:
        """Bytes, as an integer or a string with a unit: ``"500GB"``, ``"2TiB"``, ``"64KiB"``."""
        value = self._raw(name, default)
        if value is default and default is None:
            return None
        try:
            return parse_size(value)
        except ValueError as e:
            raise self.error(name, str(e)) from None

    def duration(self, name: str, default: Any = _MISSING) -> Any:
        """Seconds, as a number or a string with a unit: ``"250ms"``, ``"30s"``, ``"5m"``, ``"2h"``."""
        value = self._raw(name, default)
        if value is default and default is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as e:
            raise self.error(name, str(e)) from None

    def choice(self, name: str, choices: tuple[str, ...] | list[str], default: Any = _MISSING) -> Any:
        value = self.str(name, default)
        if value not in choices:
            raise self.error(name, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    def str_list(self, name: str, default: Any = _MISSING) -> Any:
        value = self._raw(name, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, "expected a list of strings")
        return tuple(value)

    def address(self, name: str, default: Any = _MISSING) -> Any:
        """``HOST:PORT`` (``[v6]:PORT`` for IPv6) → (host, port)."""
        value = self.str(name, default)
        if value is None:
            return None
        try:
            return parse_address(value)
        except ValueError as e:
            raise self.error(name, str(e)) from None

    def path(self, name: str, default: Any = _MISSING, *, must_be_dir: bool = False,
             must_be_file: bool = False) -> Any:
        """A filesystem path, relative paths taken from the config file's directory."""
        value = self.str(name, default)
        if value is None:
            return None
        path = Path(value)
        if not path.is_absolute():
            path = Path(self.file).resolve().parent / path
        if must_be_dir and not path.is_dir():
            raise self.error(name, f"directory does not exist: {path}")
        if must_be_file and not path.is_file():
            raise self.error(name, f"file does not exist: {path}")
        return path

    def secret(self, name: str, *, required: bool) -> str | None:
        """A secret given inline (`name`) or, better for production, in a file (`name_file`, whose
        whitespace-stripped content must not be empty). At most one of the two; `required`: exactly one."""
        file_key = f"{name}_file"
        if self.has(name) and self.has(file_key):
            raise self.error(file_key, f"give either {name} or {file_key}, not both")
        if required and not (self.has(name) or self.has(file_key)):
            raise self.error(name, f"required: give {name} or {file_key}")
        if not self.has(file_key):
            return self.str(name, None)
        path = self.path(file_key, must_be_file=True)
        try:
            value = path.read_text().strip()
        except OSError as e:
            raise self.error(file_key, f"cannot read: {e}") from None
        if not value:
            raise self.error(file_key, f"{path} is empty")
        return value

    def _bounded(self, name: str, value: Any, lo: Any, hi: Any) -> Any:
        if lo is not None and value < lo:
            raise self.error(name, f"must be at least {lo}, got {value}")
        if hi is not None and value > hi:
            raise self.error(name, f"must be at most {hi}, got {value}")
        return value

    # -- nested tables ----------------------------------------------------------------------
    def section(self, name: str, *, required: bool = False) -> Section:
        value = self._raw(name, _MISSING if required else {})
        if not isinstance(value, dict):
            raise self.error(name, f"expected a table, got {_tname(value)}")
        return Section(value, self.file, self.key(name))

    def sections(self, name: str, *, required: bool = False) -> list[Section]:
        """An array of tables (``[[name]]`` or ``name = [{...}, ...]``), paths ``name[i]``."""
        value = self._raw(name, _MISSING if required else [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(name, "expected an array of tables")
        return [Section(v, self.file, f"{self.key(name)}[{i}]") for i, v in enumerate(value)]

    def subtables(self, name: str) -> dict[str, Section]:
        """A table of tables keyed by name (``[name.ssd]``, ``[name.hdd]``)."""
        outer = self.section(name)
        result = {}
        for sub in list(outer.data):
            result[sub] = outer.section(sub)
        return result


def load_toml(path: str | os.PathLike[str]) -> Section:
    """Read a TOML file into a root `Section`; missing files and syntax errors become ConfigError."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(name, "", "config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(name, "", f"cannot read config file: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(name, "", f"invalid TOML: {e}") from None
    return Section(data, name)


def parse_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a size such as 500GB, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("size must not be negative")
        return value
    if isinstance(value, str):
        m = _QUANTITY.match(value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ValueError(f"expected a size such as 500GB, 2TiB or a byte count, got {value!r}")


def parse_duration(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("duration must not be negative")
        return float(value)
    if isinstance(value, str):
        m = _QUANTITY.match(value)
        if m and m.group(2).lower() in _DURATION_UNITS:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]
    raise ValueError(f"expected a duration such as 30s, 250ms, 5m or seconds, got {value!r}")


def parse_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return (host or "0.0.0.0", int(port))


def _tname(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


# ------------------------------------------------------------------------------------------------
# The `oca` daemon's configuration: the store (tiers of disks) and the edge server.
# ------------------------------------------------------------------------------------------------

TIERS = ("ssd", "hdd")


@dataclass(frozen=True)
class DiskConfig:
    id: str            # "<tier>/<n>", stable: it is recorded in the index and in the disk's marker file
    tier: str
    path: Path
    capacity: int      # bytes this store may fill on the disk


@dataclass(frozen=True)
class StoreConfig:
    index_path: Path           # LMDB environment directory
    map_size: int              # initial LMDB map size; it grows by doubling when full
    default_tier: str
    disks: tuple[DiskConfig, ...]
    partial_max_age: float     # seconds a resumable partial download is kept in staging

    def tier_disks(self, tier: str) -> tuple[DiskConfig, ...]:
        return tuple(d for d in self.disks if d.tier == tier)

    def disk(self, disk_id: str) -> DiskConfig | None:
        return next((d for d in self.disks if d.id == disk_id), None)


def read_store_config(root: Section, *, check_dirs: bool = True) -> StoreConfig:
    """Validate the ``[store]`` table. `check_dirs=False` for `oca store init`, which creates them."""
    store = root.section("store", required=True)
    index_path = store.path("index_path")
    map_size = store.size("map_size", "1GiB")
    if map_size < 1024 * 1024:
        raise store.error("map_size", "must be at least 1MiB")
    default_tier = store.choice("default_tier", TIERS, "hdd")
    partial_max_age = store.duration("partial_max_age", "7d")
    disks: list[DiskConfig] = []
    tiers = store.subtables("tiers")
    for tier_name, tier in tiers.items():
        if tier_name not in TIERS:
            raise tier.error("", f"unknown tier {tier_name!r} (expected one of {', '.join(TIERS)})")
        for n, disk in enumerate(tier.sections("disks", required=True)):
            path = disk.path("path", must_be_dir=check_dirs)
            capacity = disk.size("capacity")
            disk.done()
            disks.append(DiskConfig(f"{tier_name}/{n}", tier_name, path, capacity))
        tier.done()
    if not disks:
        raise store.error("tiers", "at least one tier with at least one disk is required")
    seen: dict[Path, str] = {}
    for d in disks:
        if d.path in seen:
            raise ConfigError(root.file, f"store.tiers.{d.tier}.disks",
                              f"{d.path} is already used by disk {seen[d.path]}")
        seen[d.path] = d.id
    if default_tier not in {d.tier for d in disks}:
        raise store.error("default_tier", f"tier {default_tier!r} has no disks")
    store.done()
    return StoreConfig(index_path, map_size, default_tier, tuple(disks), partial_max_age)


# ------------------------------------------------------------------------------------------------
# The edge server's sections: [server] [limits] [files] [tokens] [cors] [miss] [log] [admin].
# docs/examples/oca.toml documents every key; docs/edge.md explains the choices.
# ------------------------------------------------------------------------------------------------

TOKEN_MODES = ("require", "open")
MISS_ACTIONS = ("404", "redirect")


@dataclass(frozen=True)
class ServerConfig:
    listen: tuple[str, int]
    workers: int             # 0 = one per core available to the process
    backlog: int
    max_connections: int     # per worker; more are answered 503 and closed
    drain_timeout: float     # SIGTERM: seconds to finish in-flight responses
    compiled_path: bool = True  # answer plain segment requests in C (oca/http/_serve.c); false: all in Python


@dataclass(frozen=True)
class LimitsConfig:
    max_request_line: int    # bytes of request-target; longer → 414 (RFC 9112 §3)
    max_header_bytes: int    # bytes of the header section; more → 431 (RFC 6585 §5)
    max_headers: int         # header fields; more → 431
    header_timeout: float    # a started request must have all its headers within this (slowloris) → 408
    idle_timeout: float      # keep-alive connection with no request → closed
    send_timeout: float      # a response making no progress (client not reading) → closed
    max_ranges: int          # more range-specs → Range ignored, 200 (oca/ranges.py)
    max_pipelined: int       # requests queued behind the one being answered before reading pauses


@dataclass(frozen=True)
class FilesConfig:
    open_files: int          # cached open file descriptors per worker
    refresh_interval: float  # how often a worker checks the index generation for changes
    hits_flush_interval: float  # how often per-key hit counts are written to the index


@dataclass(frozen=True)
class TokensConfig:
    mode: str                # "require" (appliances) | "open" (origin, dev)
    keys_file: Path | None   # key ring (oca/tokens.py documents the format); required in require mode


@dataclass(frozen=True)
class CorsConfig:
    allowed_origins: tuple[str, ...]  # exact origins, or "*"; empty = no CORS headers
    max_age: int                      # seconds a browser may cache a preflight answer


@dataclass(frozen=True)
class MissConfig:
    action: str              # "404" | "redirect"
    redirect_base: str | None  # e.g. "http://ixp-1.example:8080"; the key and query string are appended


@dataclass(frozen=True)
class LogConfig:
    access_log: Path | None  # None = no access log
    buffer_bytes: int        # a worker writes its buffered lines when they reach this size ...
    flush_interval: float    # ... or this often
    level: str               # application log level


@dataclass(frozen=True)
class AdminConfig:
    listen: tuple[str, int]  # /metrics, /healthz, /readyz (never on the serving port)


@dataclass(frozen=True)
class EdgeConfig:
    server: ServerConfig
    limits: LimitsConfig
    files: FilesConfig
    tokens: TokensConfig
    cors: CorsConfig
    miss: MissConfig
    log: LogConfig
    admin: AdminConfig


@dataclass(frozen=True)
class OcaConfig:
    path: Path
    store: StoreConfig
    edge: EdgeConfig
    reporter: dict[str, Any]  # [reporter] table, validated by oca/reporter.py


def read_edge_config(root: Section) -> EdgeConfig:
    """Validate the edge's sections of `root` (absent sections take their defaults)."""
    s = root.section("server")
    server = ServerConfig(s.address("listen", "0.0.0.0:8080"), s.int("workers", 0, min=0, max=256),
                          s.int("backlog", 1024, min=1), s.int("max_connections", 10000, min=1),
                          s.duration("drain_timeout", "30s"), s.bool("compiled_path", True))
    s.done()
    s = root.section("limits")
    limits = LimitsConfig(s.size("max_request_line", "8KiB"), s.size("max_header_bytes", "16KiB"),
                          s.int("max_headers", 100, min=1), s.duration("header_timeout", "10s"),
                          s.duration("idle_timeout", "60s"), s.duration("send_timeout", "60s"),
                          s.int("max_ranges", 16, min=1, max=1000), s.int("max_pipelined", 32, min=1))
    for name in ("max_request_line", "max_header_bytes"):
        if getattr(limits, name) < 256:
            raise s.error(name, "must be at least 256 bytes")
    for name in ("header_timeout", "idle_timeout", "send_timeout"):
        if getattr(limits, name) <= 0:
            raise s.error(name, "must be more than 0")
    s.done()
    s = root.section("files")
    files = FilesConfig(s.int("open_files", 4096, min=16), s.duration("refresh_interval", "250ms"),
                        s.duration("hits_flush_interval", "10s"))
    s.done()
    s = root.section("tokens")
    mode = s.choice("mode", TOKEN_MODES, "require")
    keys_file = s.path("keys_file", None, must_be_file=True)
    if mode == "require" and keys_file is None:
        raise s.error("keys_file", "required when mode = \"require\"")
    s.done()
    tokens = TokensConfig(mode, keys_file)
    cors = _read_cors(root.section("cors"))
    s = root.section("miss")
    action = s.choice("action", MISS_ACTIONS, "404")
    base = s.str("redirect_base", None)
    if action == "redirect":
        if base is None:
            raise s.error("redirect_base", "required when action = \"redirect\"")
        if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", base):
            raise s.error("redirect_base", f"expected an http(s) base URL without query, got {base!r}")
        base = base.rstrip("/")
    s.done()
    miss = MissConfig(action, base)
    s = root.section("log")
    log = LogConfig(s.path("access_log", None), s.size("buffer", "64KiB"), s.duration("flush_interval", "1s"),
                    s.choice("level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"))
    s.done()
    s = root.section("admin")
    admin = AdminConfig(s.address("listen", "127.0.0.1:9100"))
    s.done()
    return EdgeConfig(server, limits, files, tokens, cors, miss, log, admin)


def _read_cors(s: Section) -> CorsConfig:
    origins = s.str_list("allowed_origins", [])
    for n, origin in enumerate(origins):
        if origin != "*" and not re.match(r"^https?://[^/?#\s]+$", origin):
            raise s.error(f"allowed_origins[{n}]", f"expected \"*\" or scheme://host[:port], got {origin!r}")
    max_age = int(s.duration("max_age", "1h"))
    s.done()
    return CorsConfig(tuple(origins), max_age)


def default_edge_config() -> EdgeConfig:
    """Every edge key at its default, with tokens open (the `oca serve --root` shortcut)."""
    return read_edge_config(Section({"tokens": {"mode": "open"}}, "<defaults>"))


def load_oca_config(path: str | os.PathLike[str]) -> OcaConfig:
    """Read and validate the appliance's ``oca.toml``: [store] plus the edge's sections."""
    root = load_toml(path)
    store = read_store_config(root)
    edge = read_edge_config(root)
    reporter = root.section("reporter").data
    root.done()
    return OcaConfig(Path(path).resolve(), store, edge, reporter)
