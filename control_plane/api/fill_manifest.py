"""``GET /api/v1/appliances/{id}/fill-manifest``: what the appliance should hold (ETag / 304).

Gathers the planner's inputs from SQL, runs the pure planner (control_plane/fillplan.py),
renders the document (control_plane/fillmanifest.py), and keeps the generation: it grows only
when the items change, or when the peer URLs are re-signed because half their lifetime passed.
"""

from __future__ import annotations

import logging
import time

import orjson
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from control_plane import fillmanifest, fillplan, fleet, licensing
from control_plane.api.auth import require_appliance
from control_plane.api.conditional import etag, not_modified, response_304
from control_plane.api.openapi_doc import op, path_param, ref
from control_plane.context import CONTEXT, Context
from control_plane.db import fillmanifests as repo
from control_plane.db import fleet as fleet_repo
from control_plane.db import licences as licences_repo
from control_plane.db import popularity as popularity_repo
from control_plane.errors import ApiError, not_found
from control_plane.validation import check_identifier, format_time

NO_EXPIRY = 1e18
log = logging.getLogger("oca.control.fill")


class PlanInputs:
    """The planner's inputs that do not depend on the appliance, read from SQL at most every
    `fill.inputs_cache` seconds: ready renditions (the whole catalog, the biggest read), and per
    country its licences and popularity scores. Each entry is built, then swapped in whole."""

    def __init__(self) -> None:
        self._files: tuple[float, dict] | None = None
        self._country: dict[str, tuple[float, list, dict]] = {}

    async def files(self, conn, now: float, ttl: float) -> dict:
        if self._files is None or not 0 <= now - self._files[0] < ttl:
            self._files = (now, await repo.ready_files(conn))
        return self._files[1]

    async def country(self, conn, country: str, now: float, ttl: float, half_life: float) -> tuple[list, dict]:
        """The country's licences and the popularity to rank by (`fillplan.effective_scores`: the
        country's, or the fleet's while nothing was viewed there)."""
        found = self._country.get(country)
        if found is None or not 0 <= now - found[0] < ttl:
            local = await popularity_repo.scores(conn, country, now, half_life)
            # The fleet-wide sum is read only when the country's own views will not be used.
            fleet_wide = {} if fillplan.has_views(local) else await popularity_repo.scores(conn, None, now, half_life)
            scores, source = fillplan.effective_scores(local, fleet_wide)
            if source != "country":
                log.info("fill manifests for %s rank by %s popularity: no views there yet", country, source)
            found = self._country[country] = (now, await licences_repo.for_region(conn, country), scores)
        return found[1], found[2]


PLAN_INPUTS = web.AppKey("oca_control_fill_plan_inputs", PlanInputs)


def signer_for(ctx: Context) -> fillmanifest.Signer | None:
    """Peer URLs are signed with the context's signing key; None without a key ring."""
    key = ctx.signing_key()
    if key is None:
        return None
    from oca.tokens import sign_query

    return lambda path, expires: sign_query(path, key.id, key.secret, expires)


def source_fleet(states: list[fleet.ApplianceState], now: float, stale_after: float) -> fillplan.Fleet:
    peers, origins = [], []
    for s in states:
        if not fleet.is_healthy(s, now, stale_after):
            continue
        box = fillplan.SourceBox(s.spec.id, s.spec.site, s.spec.region, s.load_ratio or 0.0, s.spec.base_url,
                                 s.keys)
        (origins if s.spec.kind == "origin" else peers).append(box)
    return fillplan.Fleet(tuple(peers), tuple(origins))


async def build(ctx: Context, inputs: PlanInputs, appliance_id: str) -> tuple[int, bytes]:
    """The current manifest (generation, JSON body), stored with its generation."""
    now, cfg = ctx.now(), ctx.config
    async with ctx.engine.begin() as conn:
        target = await fleet_repo.get_state(conn, appliance_id)
        if target is None:
            raise not_found("appliance", appliance_id)
        spec = target.spec
        if spec.kind == "origin":
            raise ApiError(409, "origin_has_no_manifest", "origin appliances hold every ready rendition "
                           "and do not run the fill agent")
        ttl = cfg.fill.inputs_cache
        licences, scores = await inputs.country(conn, spec.country, now, ttl, cfg.popularity.half_life)
        licensed = licensing.titles_licensed_for_window(licences, spec.country, now, cfg.fill.licence_window)
        files = await inputs.files(conn, now, ttl)
        sources = source_fleet(await repo.neighbourhood(conn, spec.region), now, cfg.fleet.stale_after)
        where = fillplan.Target(spec.id, spec.site, spec.region, spec.capacity_ssd, spec.capacity_hdd)
        plan = fillplan.plan_fill(where, scores, licensed, files, ssd_head_fraction=cfg.fill.ssd_head_fraction,
                                  cached_fraction=cfg.fill.cached_fraction)
        signer = signer_for(ctx)
        index = fillplan.SourceIndex(where, sources, cfg.fill.max_peer_sources)
        digest = fillmanifest.fingerprint(plan, index, peers_allowed=signer is not None)
        row = await repo.stored(conn, appliance_id)
        if row is not None and row.digest == digest and row.urls_expire_at - now >= cfg.fill.url_ttl / 2:
            return row.generation, (await repo.stored_body(conn, appliance_id)).encode()
        generation = 1 if row is None else row.generation + 1
        expires = int(now + cfg.fill.url_ttl)
        items = fillmanifest.render_items(plan, index, signer=signer, expires=expires)
        body = orjson.dumps(fillmanifest.document(appliance_id, generation, format_time(now), items))
        await repo.save(conn, appliance_id, generation=generation, digest=digest, body=body.decode(),
                        urls_expire_at=expires if fillmanifest.has_peers(items) else NO_EXPIRY, now=now,
                        existed=row is not None)
    return generation, body


async def fill_manifest(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    appliance_id = check_identifier(request.match_info["appliance_id"], "applianceId")
    await require_appliance(request, appliance_id, allow_operator=True)
    started = time.perf_counter()
    inputs = request.app[PLAN_INPUTS]
    try:
        generation, body = await build(ctx, inputs, appliance_id)
    except IntegrityError:      # a concurrent request stored the first generation: read it back
        generation, body = await build(ctx, inputs, appliance_id)
    ctx.metrics.manifest_seconds.observe(time.perf_counter() - started)
    tag = etag(str(generation))
    if not_modified(request, tag):
        return response_304(tag)
    return web.Response(body=body, content_type="application/json",
                        headers={"ETag": tag, "Cache-Control": "no-cache"})


def register(app: web.Application) -> None:
    app[PLAN_INPUTS] = PlanInputs()
    app.router.add_get("/api/v1/appliances/{appliance_id}/fill-manifest", fill_manifest)


OPENAPI = {
    "/api/v1/appliances/{appliance_id}/fill-manifest": {
        "get": op("Ranked files this appliance should hold, with target tier and signed sources",
                  auth="appliance", ok_schema=ref("FillManifest"), etag=True, errors=(404, 409),
                  params=(path_param("appliance_id"),)),
    },
}
