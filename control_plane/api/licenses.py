"""Licences per title and region: ``/api/v1/titles/{title_id}/licenses[/{region}]``."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from control_plane import licensing
from control_plane.api.auth import require_operator, require_reader
from control_plane.api.bodies import json_response, read_json
from control_plane.api.openapi_doc import op, path_param, query_param, ref
from control_plane.context import CONTEXT
from control_plane.db import catalog as catalog_repo
from control_plane.db import licences as repo
from control_plane.errors import ApiError, conflict, not_found
from control_plane.validation import check_identifier, parse_time


def _ids(request: web.Request) -> tuple[str, str | None]:
    title_id = check_identifier(request.match_info["title_id"], "titleId")
    region = request.match_info.get("region")
    if region is not None and (len(region) != 2 or not region.isascii() or not region.isupper()):
        raise ApiError(400, "bad_region", "region must be an ISO 3166-1 alpha-2 code such as DE", "region")
    return title_id, region


async def _title_or_404(conn, title_id: str) -> None:
    if await catalog_repo.get_title(conn, title_id) is None:
        raise not_found("title", title_id)


async def list_licences(request: web.Request) -> web.Response:
    await require_reader(request)
    ctx = request.app[CONTEXT]
    title_id, _ = _ids(request)
    async with ctx.engine.connect() as conn:
        await _title_or_404(conn, title_id)
        found = await repo.for_title(conn, title_id)
    return json_response({"licenses": [lic.to_json() for lic in found]})


async def create_licence(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx = request.app[CONTEXT]
    title_id, _ = _ids(request)
    licence = licensing.parse_licence(title_id, await read_json(request, ctx.config.server.max_body))
    try:
        async with ctx.engine.begin() as conn:
            await _title_or_404(conn, title_id)
            if await repo.get(conn, title_id, licence.region) is not None:
                raise conflict("license_exists", f"title {title_id!r} already has a licence for "
                               f"{licence.region}; PUT .../licenses/{licence.region} replaces it", "region")
            await repo.insert(conn, licence)
    except IntegrityError:
        raise conflict("license_exists", f"title {title_id!r} already has a licence for {licence.region}",
                       "region") from None
    return json_response(licence.to_json(), 201,
                         {"Location": f"/api/v1/titles/{title_id}/licenses/{licence.region}"})


async def get_licence(request: web.Request) -> web.Response:
    await require_reader(request)
    ctx = request.app[CONTEXT]
    title_id, region = _ids(request)
    async with ctx.engine.connect() as conn:
        await _title_or_404(conn, title_id)
        licence = await repo.get(conn, title_id, region)
    if licence is None:
        raise not_found("licence", f"{title_id}/{region}")
    return json_response(licence.to_json())


async def put_licence(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx = request.app[CONTEXT]
    title_id, region = _ids(request)
    licence = licensing.parse_licence(title_id, await read_json(request, ctx.config.server.max_body),
                                      region=region)
    async with ctx.engine.begin() as conn:
        await _title_or_404(conn, title_id)
        replaced = await repo.replace(conn, licence)
    return json_response(licence.to_json(), 200 if replaced else 201)


async def delete_licence(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx = request.app[CONTEXT]
    title_id, region = _ids(request)
    async with ctx.engine.begin() as conn:
        await _title_or_404(conn, title_id)
        if not await repo.delete_one(conn, title_id, region):
            raise not_found("licence", f"{title_id}/{region}")
    return web.Response(status=204)


async def playability(request: web.Request) -> web.Response:
    """Operator check: is the title playable in ?country=XX at ?at=<RFC 3339> (default now)?"""
    await require_reader(request)
    ctx = request.app[CONTEXT]
    title_id, _ = _ids(request)
    country = request.query.get("country", "")
    at_text = request.query.get("at")
    at = ctx.now() if at_text is None else parse_time(at_text, "at")
    async with ctx.engine.connect() as conn:
        await _title_or_404(conn, title_id)
        found = await repo.for_title_country(conn, title_id, country)
    verdict = licensing.playability(found, title_id, country, at)
    return json_response({"title_id": title_id, "country": country, "playable": isinstance(
        verdict, licensing.Playable), "reason": type(verdict).__name__})


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/titles/{title_id}/licenses", list_licences)
    r.add_post("/api/v1/titles/{title_id}/licenses", create_licence)
    r.add_get("/api/v1/titles/{title_id}/licenses/{region}", get_licence)
    r.add_put("/api/v1/titles/{title_id}/licenses/{region}", put_licence)
    r.add_delete("/api/v1/titles/{title_id}/licenses/{region}", delete_licence)
    r.add_get("/api/v1/titles/{title_id}/playability", playability)


_T = (path_param("title_id"),)
_TR = (path_param("title_id"), path_param("region", "ISO 3166-1 alpha-2"))
OPENAPI = {
    "/api/v1/titles/{title_id}/licenses": {
        "get": op("A title's licences", auth="reader", errors=(404,), params=_T,
                  ok_schema={"type": "object", "properties": {"licenses": {"type": "array",
                                                                            "items": ref("Licence")}}}),
        "post": op("Add a licence (one per title and region; 409 if the region has one)", auth="operator",
                   body=ref("Licence"), ok=201, ok_schema=ref("Licence"), errors=(404, 409), params=_T),
    },
    "/api/v1/titles/{title_id}/licenses/{region}": {
        "get": op("One licence", auth="reader", ok_schema=ref("Licence"), errors=(400, 404), params=_TR),
        "put": op("Create or replace the region's licence", auth="operator", body=ref("Licence"),
                  ok_schema=ref("Licence"), errors=(404,), params=_TR),
        "delete": op("Delete the region's licence", auth="operator", ok=204, errors=(400, 404), params=_TR),
    },
    "/api/v1/titles/{title_id}/playability": {
        "get": op("Is the title playable in a country at a time? (licence check, [start, end))",
                  auth="reader", errors=(400, 404, 422),
                  params=_T + (query_param("country", {"type": "string"}),
                               query_param("at", {"type": "string", "format": "date-time"}))),
    },
}
