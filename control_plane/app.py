"""The application factory: `create_app(config, *, clock=...)` wires the context and every route module.

Routes are not listed here: each module in control_plane/api/ registers its own (see
control_plane/api/__init__.py), so other parts extend the API by adding a module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from control_plane import credentials
from control_plane.api import openapi_doc, route_modules
from control_plane.api.middleware import errors_and_metrics
from control_plane.api.system import OPENAPI_KEY
from control_plane.clientgeo import GeoIPCountry
from control_plane.config import ControlConfig
from control_plane.context import CONTEXT, Context, TitleDirectory
from control_plane.db import migrate
from control_plane.db.engine import create_engine
from control_plane.flusher import Flusher
from control_plane.metrics import ControlMetrics
from control_plane.telemetry import TelemetryBuffer
from oca.config import ConfigError

log = logging.getLogger("oca.control")
FLUSHER = web.AppKey("oca_control_flusher", Flusher)


def load_secrets(config: ControlConfig) -> dict:
    """Operator token hashes, GeoIP reader and URL-signing key ring named by `config`; ConfigError
    names the key when a file cannot be used."""
    try:
        hashes = credentials.load_operator_hashes(config.auth.operator_token_files)
    except (OSError, ValueError) as e:
        raise ConfigError(config.file, "auth.operator_token_files", str(e)) from None
    geo = None
    if config.geoip.country_db is not None:
        try:
            geo = GeoIPCountry(config.geoip.country_db)
        except (OSError, ValueError) as e:
            raise ConfigError(config.file, "geoip.country_db", f"cannot open: {e}") from None
    ring = None
    signing = config.signing
    if signing.key_ring is not None:
        from oca.tokens import load_key_ring

        ring = load_key_ring(str(signing.key_ring))
        kid = signing.key_id
        if kid is not None and (ring.get(kid) is None or ring.get(kid).retired):
            raise ConfigError(config.file, "signing.key_id", f"no active key {kid!r} in {signing.key_ring}")
        if not ring.active():
            raise ConfigError(config.file, "signing.key_ring", "the key ring has no active key")
    return {"operator_hashes": hashes, "geo_lookup": geo, "key_ring": ring}


def create_app(config: ControlConfig, *, clock: Callable[[], float] = time.time, engine: AsyncEngine | None = None,
               metrics: ControlMetrics | None = None) -> web.Application:
    """The aiohttp application. `engine` defaults to one built from `config.database` (and is then
    disposed on cleanup); `clock` (Unix seconds) drives staleness, popularity and licences."""
    own_engine = engine is None
    engine = engine or create_engine(config.database.url, pool_size=config.database.pool_size)
    t = config.telemetry
    ctx = Context(config=config, clock=clock, engine=engine, metrics=metrics or ControlMetrics(),
                  buffer=TelemetryBuffer(max_pending=t.max_pending, max_keys=t.max_keys, bucket=t.bucket,
                                         retry_after=t.retry_after, clock=clock),
                  titles=TitleDirectory(engine, clock), **load_secrets(config))
    limit = max(config.server.max_body, config.fleet.max_report_size, config.telemetry.max_body)
    app = web.Application(middlewares=[errors_and_metrics], client_max_size=limit + 1)
    app[CONTEXT] = ctx
    modules = route_modules()
    for module in modules:
        module.register(app)
        if hasattr(module, "on_startup"):
            app.on_startup.append(module.on_startup)
        if hasattr(module, "on_cleanup"):
            app.on_cleanup.append(module.on_cleanup)
    app[OPENAPI_KEY] = openapi_doc.build(modules)
    flusher = Flusher(ctx)
    app[FLUSHER] = flusher
    ctx.nudge_flusher = flusher.nudge

    async def startup(app: web.Application) -> None:
        try:
            if config.database.migrate_on_start:
                for step in await migrate.upgrade(engine, clock=clock):
                    log.info("migrated", extra={"fields": {"number": step.number, "name": step.name}})
            missing = await migrate.pending(engine)
            if missing:
                raise RuntimeError(f"the database needs {len(missing)} migration(s) (first: {missing[0].number} "
                                   f"{missing[0].name}): run `oca-control db upgrade`")
            await ctx.titles.reload()
        except BaseException:
            if own_engine:          # cleanup hooks do not run when startup fails
                await engine.dispose()
            raise
        flusher.start()

    async def cleanup(app: web.Application) -> None:
        await flusher.stop(config.server.shutdown_timeout)
        if isinstance(ctx.geo_lookup, GeoIPCountry):
            ctx.geo_lookup.close()
        if own_engine:
            await engine.dispose()

    app.on_startup.insert(0, startup)
    app.on_cleanup.append(cleanup)
    return app


def reload(app: web.Application, new: ControlConfig) -> list[str]:
    """SIGHUP: swap in what can change at run time (tokens, GeoIP, key ring, limits, staleness,
    fill policy, logging). Returns the keys that need a restart to take effect."""
    ctx = app[CONTEXT]
    old = ctx.config
    secrets = load_secrets(new)          # raises ConfigError before anything is swapped
    restart = [name for name, a, b in (("server.listen", old.server.listen, new.server.listen),
                                       ("server.workers", old.server.workers, new.server.workers),
                                       ("database.url", old.database.url, new.database.url),
                                       ("database.pool_size", old.database.pool_size, new.database.pool_size))
               if a != b]
    kept = replace(new, server=replace(new.server, listen=old.server.listen, workers=old.server.workers),
                   database=old.database)
    old_geo = ctx.geo_lookup
    ctx.config = kept
    ctx.operator_hashes, ctx.geo_lookup, ctx.key_ring = (secrets["operator_hashes"], secrets["geo_lookup"],
                                                         secrets["key_ring"])
    b, t = ctx.buffer, kept.telemetry
    b.max_pending, b.max_keys, b.retry_after = t.max_pending, t.max_keys, t.retry_after
    ctx.snapshot_cache = None
    if isinstance(old_geo, GeoIPCountry):
        old_geo.close()
    return restart
