"""`oca-fill` configuration: one TOML file (docs/examples/oca-fill.toml documents every key).

The store comes from the appliance's own oca.toml (`store_config`), so the edge and the fill agent
always agree on the disks and the index. Errors name the file and the key (`oca.config.Section`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fill.window import FillWindow, RatePeriod, RateSchedule, appliance_jitter, parse_clock
from oca.config import ConfigError, Section, StoreConfig, load_toml, read_store_config

_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z/]*)\s*$")
_RATE_UNITS = {"": 1, "bps": 1, "bit": 1, "kbps": 1e3, "kbit": 1e3, "mbps": 1e6, "mbit": 1e6,
               "gbps": 1e9, "gbit": 1e9}


def parse_rate_bps(value: Any) -> int | None:
    """Bits per second from ``200000000``, ``"200Mbit"``, ``"1.2Gbps"``; 0 or ``"unlimited"`` → None."""
    if isinstance(value, bool):
        raise ValueError("expected a rate such as 200Mbit, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("rate must not be negative")
        return int(value) or None
    if isinstance(value, str):
        if value.strip().lower() == "unlimited":
            return None
        m = _RATE.match(value)
        if m and m.group(2).lower() in _RATE_UNITS:
            return int(float(m.group(1)) * _RATE_UNITS[m.group(2).lower()]) or None
    raise ValueError(f"expected a rate such as 200Mbit, 1.2Gbps, a bit count or 'unlimited', got {value!r}")


@dataclass(frozen=True)
class ControlPlaneConfig:
    url: str                    # base URL, e.g. http://cp.example:8000
    appliance_id: str
    token: str
    timeout: float
    retry_interval: float       # unreachable or bad manifest: try again after this long
    poll_interval: float        # in the window, look for a new manifest this often

    @property
    def manifest_url(self) -> str:
        return f"{self.url.rstrip('/')}/api/v1/appliances/{self.appliance_id}/fill-manifest"


@dataclass(frozen=True)
class FetchConfig:
    concurrency: int
    connect_timeout: float
    read_timeout: float         # no byte for this long: the attempt fails
    attempts_per_source: int
    backoff_initial: float
    backoff_max: float
    drain_timeout: float        # after stop: how long in-flight downloads may finish before pausing


@dataclass(frozen=True)
class FillConfig:
    file: str
    store: StoreConfig
    state_dir: Path
    control_plane: ControlPlaneConfig
    window: FillWindow | None   # None: always open
    timezone: ZoneInfo | None   # None: the system's local time
    rate: RateSchedule
    burst: int | None
    fetch: FetchConfig
    metrics_listen: tuple[str, int] | None
    metrics_textfile: Path | None
    log_interval: float
    store_config: Path | None = None   # the oca.toml `store` was read from (a change needs a restart)


def read_fill_config(path: str | Path) -> FillConfig:
    root = load_toml(path)
    store_path = root.path("store_config", "/etc/oca/oca.toml", must_be_file=True)
    store = read_store_config(load_toml(store_path))
    state_dir = root.path("state_dir", "/var/lib/oca-fill")
    cp = _control_plane(root.section("control_plane", required=True))
    window, tz = _window(root.section("window"), cp.appliance_id)
    rate, burst = _rate(root.section("rate"))
    fetch = _fetch(root.section("fetch"))
    metrics = root.section("metrics")
    listen = metrics.address("listen", None)
    textfile = metrics.path("textfile", None)
    metrics.done()
    log_interval = root.duration("log_interval", "30s")
    root.done()
    return FillConfig(str(path), store, state_dir, cp, window, tz, rate, burst, fetch, listen, textfile,
                      log_interval, store_path)


def _control_plane(s: Section) -> ControlPlaneConfig:
    url = s.str("url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise s.error("url", f"expected an http(s) base URL, got {url!r}")
    appliance_id = s.str("appliance_id")
    if "/" in appliance_id:
        raise s.error("appliance_id", "must not contain '/'")
    token = s.secret("token", required=True)
    cfg = ControlPlaneConfig(url, appliance_id, token, s.duration("timeout", "30s"),
                             s.duration("retry_interval", "5m"), s.duration("poll_interval", "15m"))
    s.done()
    return cfg


def _window(s: Section, appliance_id: str) -> tuple[FillWindow | None, ZoneInfo | None]:
    enabled = s.bool("enabled", True)
    start = _clock(s, "start", "02:00")
    end = _clock(s, "end", "14:00")
    jitter = s.duration("jitter", "2h")
    tz_name = s.str("timezone", "", allow_empty=True)
    tz = None
    if tz_name:
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise s.error("timezone", f"unknown time zone {tz_name!r}") from None
    length = (_secs(end) - _secs(start)) % 86400
    if length and not jitter < length < 86400 - jitter:
        # checked against the largest offset any appliance can get, not just this one's
        raise s.error("jitter", f"a start jitter of up to ±{jitter:.0f}s does not fit a {length}s window "
                      "(it must be shorter than the window, and the window plus the jitter under 24 h)")
    try:
        window = FillWindow.build(start, end, jitter_s=appliance_jitter(appliance_id, jitter))
    except ValueError as e:
        raise s.error("jitter", str(e)) from None
    s.done()
    return (window if enabled else None), tz


def _clock(s: Section, name: str, default: str | None = None):
    try:
        return parse_clock(s.str(name) if default is None else s.str(name, default))
    except ValueError as e:
        raise s.error(name, str(e)) from None


def _rate(s: Section) -> tuple[RateSchedule, int | None]:
    limit = _rate_value(s, "limit", "1.2Gbit")
    burst = s.size("burst", None)
    periods = []
    for p in s.sections("schedule"):
        start, end = _clock(p, "start"), _clock(p, "end")
        if start == end:
            raise p.error("end", "a period must not be empty (start == end)")
        periods.append(RatePeriod(_secs(start), _secs(end), _rate_value(p, "limit", None, required=True)))
        p.done()
    s.done()
    return RateSchedule(limit, tuple(periods)), burst


def _rate_value(s: Section, name: str, default: Any, *, required: bool = False) -> int | None:
    if required and not s.has(name):
        raise s.error(name, "required key is missing")
    raw = s._raw(name, default)  # a rate is a number or a string: no typed getter fits
    try:
        return parse_rate_bps(raw)
    except ValueError as e:
        raise s.error(name, str(e)) from None


def _secs(t) -> int:
    return t.hour * 3600 + t.minute * 60


def _fetch(s: Section) -> FetchConfig:
    cfg = FetchConfig(
        concurrency=s.int("concurrency", 4, min=1, max=256),
        connect_timeout=s.duration("connect_timeout", "10s"),
        read_timeout=s.duration("read_timeout", "30s"),
        attempts_per_source=s.int("attempts_per_source", 3, min=1, max=100),
        backoff_initial=s.duration("backoff_initial", "1s"),
        backoff_max=s.duration("backoff_max", "30s"),
        drain_timeout=s.duration("drain_timeout", "5m"),
    )
    if cfg.connect_timeout <= 0 or cfg.read_timeout <= 0:
        raise s.error("read_timeout" if cfg.connect_timeout > 0 else "connect_timeout", "must be positive")
    s.done()
    return cfg


__all__ = ["ConfigError", "FillConfig", "read_fill_config", "parse_rate_bps"]
