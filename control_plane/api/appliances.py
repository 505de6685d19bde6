"""The fleet registry (operators) and appliance reports (each appliance with its own token)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from control_plane import credentials, fleet
from control_plane.api.auth import require_appliance, require_operator, require_reader
from control_plane.api.bodies import json_response, read_json
from control_plane.api.openapi_doc import op, path_param, ref
from control_plane.context import CONTEXT, Context
from control_plane.db import fleet as repo
from control_plane.errors import conflict, not_found
from control_plane.validation import check_identifier, format_time


def _id(request: web.Request) -> str:
    return check_identifier(request.match_info["appliance_id"], "applianceId")


def state_json(ctx: Context, s: fleet.ApplianceState) -> dict:
    now, stale = ctx.now(), ctx.config.fleet.stale_after
    return s.spec.to_json() | {
        "healthy": fleet.is_healthy(s, now, stale), "fresh": fleet.is_fresh(s, now, stale),
        "last_report_at": format_time(s.last_report_at),
        "last_report_age_s": None if s.last_report_at is None else round(now - s.last_report_at, 3),
        "health_status": s.health_status, "load_ratio": s.load_ratio,
        "inventory_generation": s.inventory_generation}


async def list_appliances(request: web.Request) -> web.Response:
    await require_reader(request)
    ctx = request.app[CONTEXT]
    async with ctx.engine.connect() as conn:
        states = await repo.all_states(conn, with_keys=False)
        totals = await repo.inventory_totals(conn)
    out = []
    for s in states:
        files, size = totals.get(s.spec.id, (0, 0))
        out.append(state_json(ctx, s) | {"files_held": files, "bytes_held": size})
    return json_response({"appliances": out})


async def register_appliance(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx = request.app[CONTEXT]
    spec = fleet.parse_spec(await read_json(request, ctx.config.server.max_body))
    token = credentials.new_token()
    try:
        async with ctx.engine.begin() as conn:
            if await repo.token_hash(conn, spec.id) is not None:
                raise conflict("appliance_exists", f"appliance {spec.id!r} is already registered", "id")
            await repo.insert(conn, spec, credentials.hash_token(token), ctx.now())
    except IntegrityError:
        raise conflict("appliance_exists", f"appliance {spec.id!r} is already registered", "id") from None
    # The token is shown once: only its hash is stored.
    return json_response(spec.to_json() | {"token": token}, 201, {"Location": f"/api/v1/appliances/{spec.id}"})


async def get_appliance(request: web.Request) -> web.Response:
    await require_reader(request)
    ctx, appliance_id = request.app[CONTEXT], _id(request)
    async with ctx.engine.connect() as conn:
        s = await repo.get_state(conn, appliance_id)
        if s is None:
            raise not_found("appliance", appliance_id)
        details = await repo.report_details(conn, appliance_id)
        totals = (await repo.inventory_totals(conn)).get(appliance_id, (0, 0))
    return json_response(state_json(ctx, s) | details | {"prefixes": dict(s.prefixes), "files_held": totals[0],
                                                         "bytes_held": totals[1]})


async def put_appliance(request: web.Request) -> web.Response:
    """Change a registration (not its token: POST .../token rotates it)."""
    await require_operator(request)
    ctx, appliance_id = request.app[CONTEXT], _id(request)
    spec = fleet.parse_spec(await read_json(request, ctx.config.server.max_body), appliance_id=appliance_id)
    async with ctx.engine.begin() as conn:
        if not await repo.update_spec(conn, spec, ctx.now()):
            raise not_found("appliance", appliance_id)
    return json_response(spec.to_json())


async def delete_appliance(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx, appliance_id = request.app[CONTEXT], _id(request)
    async with ctx.engine.begin() as conn:
        if not await repo.delete_one(conn, appliance_id):
            raise not_found("appliance", appliance_id)
    return web.Response(status=204)


async def rotate_token(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx, appliance_id = request.app[CONTEXT], _id(request)
    token = credentials.new_token()
    async with ctx.engine.begin() as conn:
        if not await repo.set_token_hash(conn, appliance_id, credentials.hash_token(token), ctx.now()):
            raise not_found("appliance", appliance_id)
    return json_response({"id": appliance_id, "token": token})


async def report(request: web.Request) -> web.Response:
    ctx, appliance_id = request.app[CONTEXT], _id(request)
    await require_appliance(request, appliance_id, allow_operator=False)
    parsed = fleet.parse_report(appliance_id, await read_json(request, ctx.config.fleet.max_report_size))
    async with ctx.engine.begin() as conn:
        decision, held = await repo.apply_report(conn, appliance_id, parsed, ctx.now())
    if isinstance(decision, fleet.UnknownGeneration):
        ctx.metrics.reports.labels("unknown_generation").inc()
        raise fleet.unknown_generation_error(decision)
    ctx.metrics.reports.labels("accepted").inc()
    # Without inventory in the report, `generation` is the one already held (null before the first full one).
    return json_response({"accepted": True, "generation": held})


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/appliances", list_appliances)
    r.add_post("/api/v1/appliances", register_appliance)
    r.add_get("/api/v1/appliances/{appliance_id}", get_appliance)
    r.add_put("/api/v1/appliances/{appliance_id}", put_appliance)
    r.add_delete("/api/v1/appliances/{appliance_id}", delete_appliance)
    r.add_post("/api/v1/appliances/{appliance_id}/token", rotate_token)
    r.add_post("/api/v1/appliances/{appliance_id}/report", report)


_A = (path_param("appliance_id"),)
_WITH_TOKEN = {"allOf": [ref("Appliance"), {"type": "object", "properties": {"token": {"type": "string"}}}]}
OPENAPI = {
    "/api/v1/appliances": {
        "get": op("The fleet with liveness, load and what each holds", auth="reader",
                  ok_schema={"type": "object", "properties": {"appliances": {"type": "array"}}}),
        "post": op("Register an appliance; the response carries its token, shown only this once",
                   auth="operator", body=ref("Appliance"), ok=201, ok_schema=_WITH_TOKEN, errors=(409,)),
    },
    "/api/v1/appliances/{appliance_id}": {
        "get": op("One appliance with its last report", auth="reader", errors=(404,), params=_A,
                  ok_schema={"type": "object"}),
        "put": op("Change a registration", auth="operator", body=ref("Appliance"), ok_schema=ref("Appliance"),
                  errors=(404,), params=_A),
        "delete": op("Remove an appliance from the fleet", auth="operator", ok=204, errors=(404,), params=_A),
    },
    "/api/v1/appliances/{appliance_id}/token": {
        "post": op("Rotate the appliance's token (the old one stops working)", auth="operator", errors=(404,),
                   params=_A, ok_schema={"type": "object", "properties": {"id": {"type": "string"},
                                                                           "token": {"type": "string"}}}),
    },
    "/api/v1/appliances/{appliance_id}/report": {
        "post": op("Appliance report: health, load, inventory (full or delta), BGP prefixes",
                   auth="appliance", body=ref("ApplianceReport"), errors=(404, 409), params=_A,
                   ok_schema={"type": "object", "properties": {"accepted": {"type": "boolean"},
                                                               "generation": {"type": ["integer", "null"]}}}),
    },
}
