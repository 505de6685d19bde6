"""Titles and their renditions: CRUD for operators (reads also for service tokens)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from control_plane import catalog
from control_plane.api.auth import require_operator, require_reader
from control_plane.api.bodies import json_response, query_int, read_json
from control_plane.api.openapi_doc import op, path_param, query_param, ref
from control_plane.context import CONTEXT
from control_plane.db import catalog as repo
from control_plane.errors import conflict, not_found
from control_plane.validation import check_identifier


def _title_id(request: web.Request) -> str:
    return check_identifier(request.match_info["title_id"], "titleId")


async def list_titles(request: web.Request) -> web.Response:
    await require_reader(request)
    ctx = request.app[CONTEXT]
    limit = query_int(request, "limit", 100, 1, 1000)
    async with ctx.engine.connect() as conn:
        found = await repo.list_titles(conn, after=request.query.get("after"), limit=limit)
    body = {"titles": [t.to_json() for t in found], "next": found[-1].id if len(found) == limit else None}
    return json_response(body)


async def create_title(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx = request.app[CONTEXT]
    title = catalog.parse_title(await read_json(request, ctx.config.server.max_body))
    try:
        async with ctx.engine.begin() as conn:
            if await repo.get_title(conn, title.id) is not None:
                raise conflict("title_exists", f"title {title.id!r} already exists", "id")
            await repo.insert_title(conn, title, ctx.now())
    except IntegrityError:
        raise conflict("title_exists", f"title {title.id!r} already exists", "id") from None
    ctx.titles.added(title.id)
    return json_response(title.to_json(), 201, {"Location": f"/api/v1/titles/{title.id}"})


async def get_title(request: web.Request) -> web.Response:
    await require_reader(request)
    ctx, title_id = request.app[CONTEXT], _title_id(request)
    async with ctx.engine.connect() as conn:
        title = await repo.get_title(conn, title_id)
        if title is None:
            raise not_found("title", title_id)
        rends = await repo.list_renditions(conn, title_id)
    return json_response(title.to_json() | {"renditions": [r.to_json() for r in rends]})


async def put_title(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx, title_id = request.app[CONTEXT], _title_id(request)
    title = catalog.parse_title(await read_json(request, ctx.config.server.max_body), title_id=title_id)
    async with ctx.engine.begin() as conn:
        if await repo.update_title(conn, title, ctx.now()):
            return json_response(title.to_json())
        await repo.insert_title(conn, title, ctx.now())
    ctx.titles.added(title.id)
    return json_response(title.to_json(), 201)


async def patch_title(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx, title_id = request.app[CONTEXT], _title_id(request)
    body = await read_json(request, ctx.config.server.max_body)
    async with ctx.engine.begin() as conn:
        current = await repo.get_title(conn, title_id)
        if current is None:
            raise not_found("title", title_id)
        title = catalog.patch_title(current, body)
        await repo.update_title(conn, title, ctx.now())
    return json_response(title.to_json())


async def delete_title(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx, title_id = request.app[CONTEXT], _title_id(request)
    async with ctx.engine.begin() as conn:
        if not await repo.delete_title(conn, title_id):
            raise not_found("title", title_id)
    ctx.titles.removed(title_id)
    return web.Response(status=204)


async def list_renditions(request: web.Request) -> web.Response:
    await require_reader(request)
    ctx, title_id = request.app[CONTEXT], _title_id(request)
    async with ctx.engine.connect() as conn:
        if await repo.get_title(conn, title_id) is None:
            raise not_found("title", title_id)
        rends = await repo.list_renditions(conn, title_id)
    return json_response({"renditions": [r.to_json() for r in rends]})


async def create_rendition(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx, title_id = request.app[CONTEXT], _title_id(request)
    rendition = catalog.parse_rendition(title_id, await read_json(request, ctx.config.server.max_body))
    try:
        async with ctx.engine.begin() as conn:
            if await repo.get_title(conn, title_id) is None:
                raise not_found("title", title_id)
            if await repo.get_rendition(conn, rendition.key) is not None:
                raise conflict("rendition_exists", f"rendition {rendition.key!r} already exists", "key")
            await repo.insert_rendition(conn, rendition, ctx.now())
    except IntegrityError:
        raise conflict("rendition_exists", f"rendition {rendition.key!r} already exists", "key") from None
    return json_response(rendition.to_json(), 201, {"Location": f"/api/v1/renditions/{rendition.key}"})


async def get_rendition(request: web.Request) -> web.Response:
    await require_reader(request)
    ctx, key = request.app[CONTEXT], request.match_info["key"]
    async with ctx.engine.connect() as conn:
        rendition = await repo.get_rendition(conn, key)
    if rendition is None:
        raise not_found("rendition", key)
    return json_response(rendition.to_json())


async def patch_rendition(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx, key = request.app[CONTEXT], request.match_info["key"]
    body = await read_json(request, ctx.config.server.max_body)
    async with ctx.engine.begin() as conn:
        current = await repo.get_rendition(conn, key)
        if current is None:
            raise not_found("rendition", key)
        rendition = catalog.patch_rendition(current, body)
        await repo.update_rendition(conn, rendition, ctx.now())
    return json_response(rendition.to_json())


async def delete_rendition(request: web.Request) -> web.Response:
    await require_operator(request)
    ctx, key = request.app[CONTEXT], request.match_info["key"]
    async with ctx.engine.begin() as conn:
        if not await repo.delete_rendition(conn, key):
            raise not_found("rendition", key)
    return web.Response(status=204)


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/titles", list_titles)
    r.add_post("/api/v1/titles", create_title)
    r.add_get("/api/v1/titles/{title_id}", get_title)
    r.add_put("/api/v1/titles/{title_id}", put_title)
    r.add_patch("/api/v1/titles/{title_id}", patch_title)
    r.add_delete("/api/v1/titles/{title_id}", delete_title)
    r.add_get("/api/v1/titles/{title_id}/renditions", list_renditions)
    r.add_post("/api/v1/titles/{title_id}/renditions", create_rendition)
    r.add_get("/api/v1/renditions/{key:.+}", get_rendition)
    r.add_patch("/api/v1/renditions/{key:.+}", patch_rendition)
    r.add_delete("/api/v1/renditions/{key:.+}", delete_rendition)


_T = (path_param("title_id", "title id"),)
_K = (path_param("key", "content key (may contain /)"),)
_TITLE_LIST = {"type": "object", "properties": {"titles": {"type": "array", "items": ref("Title")},
                                                "next": {"type": ["string", "null"]}}}
OPENAPI = {
    "/api/v1/titles": {
        "get": op("List titles (by id; page with after=<last id>)", auth="reader", ok_schema=_TITLE_LIST,
                  params=(query_param("after", {"type": "string"}),
                          query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}))),
        "post": op("Create a title", auth="operator", body=ref("Title"), ok=201, ok_schema=ref("Title"),
                   errors=(409,)),
    },
    "/api/v1/titles/{title_id}": {
        "get": op("A title with its renditions", auth="reader", ok_schema=ref("Title"), errors=(404,), params=_T),
        "put": op("Create or replace a title", auth="operator", body=ref("Title"), ok_schema=ref("Title"),
                  params=_T),
        "patch": op("Change some fields of a title", auth="operator", body={"type": "object"},
                    ok_schema=ref("Title"), errors=(404,), params=_T),
        "delete": op("Delete a title, its renditions and licences", auth="operator", ok=204, errors=(404,),
                     params=_T),
    },
    "/api/v1/titles/{title_id}/renditions": {
        "get": op("A title's renditions", auth="reader", errors=(404,), params=_T,
                  ok_schema={"type": "object", "properties": {"renditions": {"type": "array",
                                                                              "items": ref("Rendition")}}}),
        "post": op("Add a rendition (one file)", auth="operator", body=ref("Rendition"), ok=201,
                   ok_schema=ref("Rendition"), errors=(404, 409), params=_T),
    },
    "/api/v1/renditions/{key}": {
        "get": op("One rendition by content key", auth="reader", ok_schema=ref("Rendition"), errors=(404,),
                  params=_K),
        "patch": op("Change a rendition (e.g. status encoding → ready with size and sha256)", auth="operator",
                    body={"type": "object"}, ok_schema=ref("Rendition"), errors=(404,), params=_K),
        "delete": op("Delete a rendition", auth="operator", ok=204, errors=(404,), params=_K),
    },
}
