"""The steering HTTP service (aiohttp): steering answers, content-steering manifests, metrics, health.

Routes (docs/steering.md):
- ``GET /api/v1/steer?ip=IP&key=KEY`` (or ``&title=ID``; optional ``&limit=N``) → the ranked answer of
  docs/contracts.md. 200 with an empty ``candidates`` list when nobody can serve the content.
- ``GET /api/v1/content-steering/hls`` and ``/dash`` (``?key=`` or ``?title=``, optional ``pathways=``) →
  a steering manifest for the connecting client.
- ``GET /metrics`` (Prometheus), ``GET /healthz`` (200 once a model is loaded, else 503).
The service only does I/O: locating and ranking are `steering.decision`, manifests
`steering.content_steering`. `Daemon.reload` (SIGHUP) swaps in a new configuration at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from oca.config import ConfigError
from oca.contentkey import InvalidKey, validate_key
from steering import content_steering as cs
from steering.config import ContentSteeringConfig, RankingConfig, SteeringConfig
from steering.connection import SERVER_FIELD, compiled_connections
from steering.decision import Decision, RankingCache, age_json, cached_answer, compiled_response, render_answer, steer
from steering.fleet import FleetModel, ModelHolder
from steering.geo import GeoDatabaseError, GeoLookup
from steering.metrics import SteeringMetrics
from steering.poller import SnapshotPoller
from steering.prefixes import InvalidAddress
from steering.ranking import Content

log = logging.getLogger(__name__)

HOLDER: web.AppKey[ModelHolder] = web.AppKey("holder", ModelHolder)
METRICS: web.AppKey[SteeringMetrics] = web.AppKey("metrics", SteeringMetrics)
POLLER: web.AppKey[SnapshotPoller] = web.AppKey("poller", SnapshotPoller)
HANDLERS: web.AppKey[SteeringHandlers] = web.AppKey("handlers")
DAEMON: web.AppKey[Daemon] = web.AppKey("daemon")
_JSON = "application/json"
_STEER_QUERY = "/api/v1/steer?"
# Set on a request the front door offered to the cache without an answer.
_FRONT_DOOR_TRIED: web.RequestKey[bool] = web.RequestKey("front_door_tried", bool)
# Players fetch steering manifests from pages served by other origins (RFC 6454; Fetch standard CORS).
_CORS = {"Access-Control-Allow-Origin": "*"}


class RequestError(Exception):
    """A request we refuse: the HTTP status, a stable code for clients and metrics, a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Settings:
    ranking: RankingConfig
    content_steering: ContentSteeringConfig
    compiled_path: bool = True      # connections opened from now on answer cached queries compiled


@dataclass(frozen=True)
class Runtime:
    """What a request reads besides the model; replaced whole (one assignment) on reload."""
    settings: Settings
    geo: GeoLookup | None


class SteeringHandlers:
    def __init__(self, settings: Settings, holder: ModelHolder, geo: GeoLookup | None,
                 metrics: SteeringMetrics, clock: Callable[[], float] = time.perf_counter) -> None:
        self.runtime = Runtime(settings, geo)
        self.holder, self.metrics, self.clock = holder, metrics, clock
        self._cache: RankingCache | None = None
        # (model, runtime, cache, lane) of the compiled cached answer; rebuilt when one of them changes.
        self._lane: tuple[FleetModel, Runtime, RankingCache, tuple[Any, ...]] | None = None
        metrics.cache_hit_ratio.set_function(self._cache_hit_ratio)

    async def steer(self, request: web.Request) -> web.Response:
        if _FRONT_DOOR_TRIED not in request:     # served without the front door (tests, embedding)
            cached = self.answer_from_cache(request.raw_path)
            if cached is not None:
                return cached
        rt = self.runtime
        try:
            query = request.query
            model = self._model()
            ip = query.get("ip")
            if not ip:
                raise RequestError(400, "missing_ip", "query parameter ip is required")
            content = _content(query, model)
            limit = _limit(query.get("limit"), rt.settings.ranking.max_candidates)
            decision = self._decide(rt, "steer", model, ip, content, limit)
        except RequestError as e:
            return self._error(e)
        return web.Response(body=render_answer(decision, model, self.holder.age() or 0.0), content_type=_JSON)

    async def content_steering(self, request: web.Request) -> web.Response:
        protocol = cs.Protocol(request.match_info["protocol"])
        rt = self.runtime
        settings = rt.settings.content_steering
        try:
            query = request.query
            model = self._model()
            content = _content(query, model)
            ip = cs.client_address(request.remote or "", request.headers.get("X-Forwarded-For"),
                                   settings.trusted_proxies)
            decision = self._decide(rt, protocol.value, model, ip, content, None)
        except RequestError as e:
            return self._error(e, headers=_CORS)
        flat = {k: v for k, v in query.items()}
        offered = cs.parse_pathways(query.get("pathways"))
        priority = cs.pathway_priority(
            decision.candidates, offered, cs.read_player_state(protocol, flat),
            min_throughput_bps=settings.min_throughput_bps)
        if not priority:
            return self._error(RequestError(503, "no_pathway", "no appliance can serve this content now"),
                               headers=_CORS)
        doc = cs.steering_manifest(protocol, priority, ttl_s=settings.ttl,
                                   reload=cs.reload_uri(request.path, flat))
        return web.Response(body=orjson.dumps(doc), content_type=_JSON,
                            headers={**_CORS, "Cache-Control": "no-store"})

    async def metrics_page(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        model = self.holder.model
        if model is None:
            return web.json_response({"status": "no_model"}, status=503)
        return web.json_response({"status": "ok", "model": {
            "generation": model.generation, "age_s": round(self.holder.age() or 0.0, 3),
            "appliances": len(model.appliances), "prefixes": model.prefixes.counts}})

    def answer_from_cache(self, path: str) -> web.Response | None:
        """The answer of a plain steer query whose ranking is cached and rendered, written in one compiled
        call (steering/_answer.c), which also counts it in the metrics and the cache's hits; None sends
        the request down the Python path, which answers the rest (and every error) and fills the cache."""
        lane = self._current_lane()
        if lane is None:
            return None
        body = cached_answer(path, lane[3], age_json(self.holder.age() or 0.0))
        return None if body is None else web.Response(body=body, content_type=_JSON)

    def respond(self, data: bytes, idle: bool) -> bytes | None | bool:
        """A connection's read answered whole when it is one plain steer request head whose ranking is
        cached (steering/connection.py), and the connection `idle`; else None when it is one plain
        request head all the same (aiohttp's parser will stand at a boundary after it), False otherwise."""
        lane = self._current_lane() if idle else None
        if lane is None:
            return compiled_response(data, None, b"", SERVER_FIELD)
        return compiled_response(data, lane[3], age_json(self.holder.age() or 0.0), SERVER_FIELD)

    def _current_lane(self) -> tuple[FleetModel, Runtime, RankingCache, tuple[Any, ...]] | None:
        model, rt, lane = self.holder.model, self.runtime, self._lane
        if lane is None or lane[0] is not model or lane[1] is not rt or lane[2] is not self._cache:
            lane = self._lane = self._new_lane(model, rt)
        return lane

    def _new_lane(self, model: FleetModel | None,
                  rt: Runtime) -> tuple[FleetModel, Runtime, RankingCache, tuple[Any, ...]] | None:
        ranking = rt.settings.ranking
        cache = self._cache_for(model, ranking) if model is not None else None
        if cache is None or cached_answer is None:
            return None
        return model, rt, cache, cache.answer_lane(rt.geo, ranking.load_limit, ranking.max_candidates,
                                                   self.metrics.decisions)

    def _model(self) -> FleetModel:
        model = self.holder.model
        if model is None:
            raise RequestError(503, "no_model", "no fleet snapshot loaded yet")
        return model

    def _decide(self, rt: Runtime, api: str, model: FleetModel, ip: str, content: Content,
                limit: int | None) -> Decision:
        started = self.clock()
        ranking = rt.settings.ranking
        try:
            decision = steer(model, rt.geo, ip, content, load_limit=ranking.load_limit,
                             limit=limit, cache=self._cache_for(model, ranking))
        except InvalidAddress as e:
            raise RequestError(400, "invalid_ip", str(e)) from None
        self.metrics.decided(api, decision.tier_label, self.clock() - started)
        return decision

    def _cache_for(self, model: FleetModel, ranking: RankingConfig) -> RankingCache | None:
        """The current model's ranking cache (a new model or size starts an empty one; entries are keyed
        by load limit and limit, so a reload of those does not need a new cache)."""
        size, answer_bytes = ranking.cache_entries, ranking.answer_cache_mib << 20
        if size == 0:
            self._cache = self._lane = None      # neither keeps a model alive once the cache is off
            return None
        cache = self._cache
        if (cache is None or cache.model is not model or cache.max_entries != size
                or cache.answer_bytes != answer_bytes):
            # The lane holds the old cache and model: dropped with them, even when only content steering
            # (which never reads the lane) is asked for.
            self._cache, self._lane = RankingCache(model, size, answer_bytes), None
        return self._cache

    def _cache_hit_ratio(self) -> float:
        cache = self._cache
        if cache is None or cache.hits + cache.misses == 0:
            return 0.0
        return cache.hits / (cache.hits + cache.misses)

    def _error(self, e: RequestError, headers: dict[str, str] | None = None) -> web.Response:
        self.metrics.rejected.labels(e.code).inc()
        body = orjson.dumps({"error": {"code": e.code, "message": e.message}})
        return web.Response(status=e.status, body=body, content_type=_JSON, headers=headers)


def _content(query: Any, model: FleetModel) -> Content:
    key, title = query.get("key"), query.get("title")
    if (key is None) == (title is None):
        raise RequestError(400, "missing_content", "give exactly one of key and title")
    if key is not None:
        try:
            return Content(key=validate_key(key))
        except InvalidKey as e:
            raise RequestError(400, "invalid_key", str(e)) from None
    if title not in model.titles:
        raise RequestError(404, "unknown_title", f"title {title!r} has no ready renditions")
    return Content(title=title)


def _limit(text: str | None, default: int) -> int:
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 1000:
        raise RequestError(400, "invalid_limit", f"limit must be an integer 1..1000, got {text!r}")
    return int(text)


def create_app(settings: Settings, holder: ModelHolder, geo: GeoLookup | None,
               metrics: SteeringMetrics) -> web.Application:
    """The routes over a model holder someone else keeps current (the daemon's poller, or a test)."""
    handlers = SteeringHandlers(settings, holder, geo, metrics)
    app = web.Application()
    app[HOLDER], app[METRICS], app[HANDLERS] = holder, metrics, handlers
    app.router.add_get("/api/v1/steer", handlers.steer)
    app.router.add_get("/api/v1/content-steering/{protocol:hls|dash}", handlers.content_steering)
    app.router.add_get("/metrics", handlers.metrics_page)
    app.router.add_get("/healthz", handlers.healthz)
    return app


def front_door(server: web.Server, handlers: SteeringHandlers) -> None:
    """Answer plain cached steer queries before aiohttp's router sees them; pass the rest to the app.

    Why: aiohttp's Application path (URL dispatcher, match info, the handler coroutine) costs 3–4 µs a
    request, half of what the compiled answer costs (docs/steering.md, "Bench"). The front door wraps the
    app's request handler in the low-level `web.Server` that `AppRunner` made for it (before any
    connection, which binds the handler when it opens): a GET whose raw target starts with the steer path
    is answered from the cache when `answer_from_cache` can; everything else, including every other steer
    request, takes the app's route to the same handlers. Before that, the server's connections answer
    what they can as it arrives (steering/connection.py): the front door sees what they leave to aiohttp.
    """
    app_handler = server.request_handler

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        path = request.raw_path
        if path.startswith(_STEER_QUERY) and request.method == "GET":
            answer = handlers.answer_from_cache(path)
            if answer is not None:
                return answer
            request[_FRONT_DOOR_TRIED] = True      # the steer handler does not ask the cache again
        return await app_handler(request)

    server.request_handler = handle
    if compiled_response is not None:
        compiled_connections(server, handlers)


async def serve_app(app: web.Application, host: str, port: int) -> None:
    """What `web.run_app` does for one TCP site, with the front door: runs until cancelled or until a
    SIGTERM/SIGINT raises `web.GracefulExit`, then shuts the app down (in-flight requests finish)."""
    await serve_runner(web.AppRunner(app, handle_signals=True, access_log=None), host, port,
                       prepare=lambda runner: front_door(runner.server, app[HANDLERS]))


async def serve_runner(runner: web.BaseRunner, host: str, port: int,
                       prepare: Callable[[web.BaseRunner], None] | None = None) -> None:
    """Set `runner` up, let `prepare` see it before the site opens, serve on one TCP site until cancelled
    (or GracefulExit), then clean up."""
    await runner.setup()
    try:
        if prepare is not None:
            prepare(runner)
        await web.TCPSite(runner, host, port).start()
        while True:
            await asyncio.sleep(3600)
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def frozen_build() -> Iterator[None]:
    """Build a model with the cyclic garbage collector off, then freeze what exists (gc.freeze).

    At fleet scale a model is 1.2 million GC-tracked objects with no reference cycles (reference counting
    frees it when the next one replaces it). Collections during a build only walked it again and again:
    14 full ones took 9 of a 19.5 s build, each holding the GIL for up to 1.2 s while answers waited.
    Frozen, the collector skips it for good. Cyclic garbage that other threads make during the build is
    frozen with it and never collected: a little memory per build, against second-long stalls.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if enabled:
            gc.enable()


def _open_geo(config: SteeringConfig) -> GeoLookup | None:
    return GeoLookup(config.asn_db, config.country_db) if (config.asn_db or config.country_db) else None


class Daemon:
    """The daemon's configuration at run time. `reload` (SIGHUP) builds the new settings and GeoIP readers
    off to the side, then swaps them into the handlers in one assignment and re-points the poller."""

    def __init__(self, config: SteeringConfig, handlers: SteeringHandlers, metrics: SteeringMetrics) -> None:
        self.config, self.handlers, self.metrics = config, handlers, metrics
        self.poller: SnapshotPoller | None = None

    def reload(self, load: Callable[[], SteeringConfig]) -> bool:
        """Read the configuration again with `load`; on any error log it and keep the running one."""
        try:
            new = load()
        except ConfigError as e:
            return self._rejected(str(e))
        old = self.config
        if new.listen != old.listen:
            log.warning("SIGHUP: server.listen changed from %s to %s: needs a restart, ignored",
                        _address(old.listen), _address(new.listen))
            new = replace(new, listen=old.listen)
        try:
            geo = _open_geo(new)               # reopened even when unchanged: the files may be new
        except GeoDatabaseError as e:
            return self._rejected(str(e))
        changed = [name for name, a, b in (
            ("snapshot", old.snapshot, new.snapshot), ("geoip", (old.asn_db, old.country_db),
                                                       (new.asn_db, new.country_db)),
            ("ranking", old.ranking, new.ranking), ("content_steering", old.content_steering,
                                                    new.content_steering),
            ("server.compiled_path (new connections)", old.compiled_path, new.compiled_path)) if a != b]
        old_geo = self.handlers.runtime.geo
        self.handlers.runtime = Runtime(Settings(new.ranking, new.content_steering, new.compiled_path), geo)
        self.config = new
        if self.poller is not None:
            # New regions change the model itself: rebuild it from a full snapshot.
            self.poller.reconfigure(new.snapshot.url, new.snapshot.token, timeout=new.snapshot.timeout,
                                    interval=new.snapshot.interval,
                                    refetch=new.ranking.country_regions != old.ranking.country_regions)
        if old_geo is not None:
            old_geo.close()                    # requests read the runtime once, synchronously
        self.metrics.config_reloads.labels("ok").inc()
        log.info("SIGHUP: configuration reloaded (changed: %s; GeoIP databases reopened: %s)",
                 ", ".join(changed) or "nothing", "yes" if geo is not None else "none configured")
        return True

    def _rejected(self, error: str) -> bool:
        self.metrics.config_reloads.labels("error").inc()
        log.error("SIGHUP: configuration not reloaded, keeping the running one: %s", error)
        return False


def _address(listen: tuple[str, int]) -> str:
    host, port = listen
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def create_daemon_app(config: SteeringConfig, *, clock: Callable[[], float] = time.monotonic,
                      registry: CollectorRegistry | None = None,
                      reload_config: Callable[[], SteeringConfig] | None = None) -> web.Application:
    """The whole daemon: routes, GeoIP readers and the snapshot poller (started with the app). With
    `reload_config` (how to read the configuration again), SIGHUP reloads it (`Daemon.reload`)."""
    holder = ModelHolder(clock)
    metrics = SteeringMetrics(registry or CollectorRegistry(), holder.age)
    app = create_app(Settings(config.ranking, config.content_steering, config.compiled_path), holder,
                     _open_geo(config), metrics)
    daemon = app[DAEMON] = Daemon(config, app[HANDLERS], metrics)

    def build(body: bytes) -> FleetModel:
        # Only the poller swaps models, one build at a time: the model in service is the one to reuse.
        regions = daemon.handlers.runtime.settings.ranking.country_regions
        with frozen_build():
            return FleetModel.from_json(body, country_region=regions, previous=holder.model)

    async def poll_snapshots(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            snap = daemon.config.snapshot
            poller = SnapshotPoller(session, snap.url, snap.token, holder, metrics,
                                    timeout=snap.timeout, build=build)
            app[POLLER] = daemon.poller = poller
            if reload_config is not None:
                loop.add_signal_handler(signal.SIGHUP, daemon.reload, reload_config)
            task = asyncio.create_task(poller.run(snap.interval))
            yield
            if reload_config is not None:
                loop.remove_signal_handler(signal.SIGHUP)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        geo = daemon.handlers.runtime.geo
        if geo is not None:
            geo.close()

    app.cleanup_ctx.append(poll_snapshots)
    return app
