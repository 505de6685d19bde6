"""What every route handler needs, in one object stored on the application under `CONTEXT`.

Route modules (control_plane/api/*.py) read it with ``request.app[CONTEXT]``: the config (swapped
whole on SIGHUP), the injected clock, the database engine, metrics, the telemetry buffer, the
operator token hashes, the GeoIP lookup and the URL-signing key ring.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from control_plane import clientgeo
from control_plane.config import ControlConfig
from control_plane.db import catalog as catalog_repo
from control_plane.metrics import ControlMetrics
from control_plane.telemetry import TelemetryBuffer

log = logging.getLogger("oca.control")


class TitleDirectory:
    """Which title ids exist, for the telemetry hot path (no SQL per heartbeat). A miss reloads the
    set from SQL at most once per `min_interval` seconds (another replica may have added the title)."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float], min_interval: float = 1.0) -> None:
        self.engine, self.clock, self.min_interval = engine, clock, min_interval
        self._ids: frozenset[str] = frozenset()
        self._loaded_at: float | None = None

    async def reload(self) -> None:
        async with self.engine.connect() as conn:
            self._ids = frozenset(await catalog_repo.title_ids(conn))
        self._loaded_at = self.clock()

    def known(self, title_id: str) -> bool:
        """The hot path: no await when the id is already known."""
        return title_id in self._ids

    async def exists(self, title_id: str) -> bool:
        if title_id in self._ids:
            return True
        if self._loaded_at is None or self.clock() - self._loaded_at >= self.min_interval:
            self._loaded_at = self.clock()      # claim the reload: concurrent misses do not pile up
            await self.reload()
        return title_id in self._ids

    def added(self, title_id: str) -> None:
        self._ids = self._ids | {title_id}

    def removed(self, title_id: str) -> None:
        self._ids = self._ids - {title_id}


@dataclass
class Context:
    config: ControlConfig
    clock: Callable[[], float]
    engine: AsyncEngine
    metrics: ControlMetrics
    buffer: TelemetryBuffer
    titles: TitleDirectory
    operator_hashes: frozenset[str] = frozenset()
    geo_lookup: clientgeo.Lookup | None = None
    key_ring: Any = None                      # oca.tokens.KeyRing (signing.key_ring), or None
    snapshot_cache: tuple[float, dict, str] | None = None
    nudge_flusher: Callable[[], None] = lambda: None
    extras: dict[str, Any] = field(default_factory=dict)   # for parts that extend the app

    def country_of(self, request: web.Request) -> str:
        """The client's country (ISO alpha-2) or "unknown", see control_plane/clientgeo.py."""
        g = self.config.geoip
        return clientgeo.resolve_country(request.remote, request.headers, lookup=self.geo_lookup,
                                         trusted_proxies=g.trusted_proxies, country_header=g.country_header,
                                         forwarded_header=g.forwarded_header)

    def now(self) -> float:
        return self.clock()

    def signing_key(self):
        """The `oca.tokens.Key` to sign URLs with: `signing.key_id`, else the last active key of the
        ring; None without a key ring (unsigned URLs only)."""
        ring = self.key_ring
        if ring is None:
            return None
        wanted = self.config.signing.key_id
        key = ring.get(wanted) if wanted else (ring.active() or [None])[-1]
        return None if key is None or key.retired else key


CONTEXT = web.AppKey("oca_control_context", Context)


def default_clock() -> float:
    return time.time()
