"""The player page: plays a title through the manifest API with dash.js, hls.js or Shaka and shows
which appliance each segment came from, the rendition, the buffer and the steering decision.

`GET /player/` serves the page (control_plane/player/), `GET /player/lib/{file}` the player
libraries from `[player] assets_dir` (the npm packages pinned in tests/e2e/package-lock.json),
`GET /player/info?title=` the title and the appliances' base URLs (public: every manifest shows
them anyway), `GET /player/steer?title=` the steering answer for the requesting client (so the page
needs no CORS from steering). Without `[player] assets_dir` the page answers 404 with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from control_plane.api.bodies import json_response
from control_plane.api.openapi_doc import op, query_param
from control_plane.context import CONTEXT
from control_plane.db import catalog as catalog_repo
from control_plane.db import fleet as fleet_repo
from control_plane.errors import ApiError, not_found
from control_plane.validation import check_identifier
from oca.config import Section

PAGE_DIR = Path(__file__).resolve().parent.parent / "player"
PAGE_FILES = {"": ("index.html", "text/html"), "player.js": ("player.js", "text/javascript")}
# The only files /player/lib/ serves: name → path inside the assets directory (node_modules).
LIBRARIES = {
    "dash.all.min.js": "dashjs/dist/modern/umd/dash.all.min.js",
    "hls.min.js": "hls.js/dist/hls.min.js",
    "shaka-player.compiled.js": "shaka-player/dist/shaka-player.compiled.js",
}
STEER_TIMEOUT = aiohttp.ClientTimeout(total=3)


@dataclass(frozen=True)
class PlayerSettings:
    assets_dir: Path | None = None      # a node_modules directory with dashjs, hls.js and shaka-player
    steering_url: str | None = None     # oca-steering base URL; default: [playback] steering_url


def read_player_section(s: Section) -> PlayerSettings:
    """``[player]`` of oca-control.toml (see docs/examples/oca-control.toml)."""
    out = PlayerSettings(s.path("assets_dir", None, must_be_dir=True), s.str("steering_url", None))
    s.done()
    return out


CONFIG_SECTIONS = {"player": read_player_section}


def _settings(ctx) -> PlayerSettings:
    configured = getattr(ctx.config, "player", None) or PlayerSettings()
    if configured.steering_url is None:
        playback = getattr(ctx.config, "playback", None)
        return PlayerSettings(configured.assets_dir, getattr(playback, "steering_url", None))
    return configured


def _title_param(request: web.Request) -> str:
    return check_identifier(request.query.get("title", ""), "title")


async def to_page(request: web.Request) -> web.Response:
    raise web.HTTPFound("/player/")


async def page(request: web.Request) -> web.StreamResponse:
    name, content_type = PAGE_FILES.get(request.match_info.get("file", ""), (None, None))
    if name is None:
        raise ApiError(404, "not_found", "no such file on the player page")
    return web.FileResponse(PAGE_DIR / name, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})


async def library(request: web.Request) -> web.StreamResponse:
    player = _settings(request.app[CONTEXT])
    relative = LIBRARIES.get(request.match_info["file"])
    if relative is None:
        raise ApiError(404, "not_found", f"unknown player library; one of {', '.join(LIBRARIES)}")
    if player.assets_dir is None or not (player.assets_dir / relative).is_file():
        raise ApiError(404, "player_assets_missing", "player libraries are not installed: set [player] assets_dir to a "
                        "node_modules directory with dashjs, hls.js and shaka-player (make run does)")
    return web.FileResponse(player.assets_dir / relative,
                            headers={"Content-Type": "text/javascript", "Cache-Control": "max-age=3600"})


async def info(request: web.Request) -> web.Response:
    ctx, title_id = request.app[CONTEXT], _title_param(request)
    async with ctx.engine.connect() as conn:
        title = await catalog_repo.get_title(conn, title_id)
        states = await fleet_repo.all_states(conn, with_keys=False)
    if title is None:
        raise not_found("title", title_id)
    appliances = [{"id": s.spec.id, "kind": s.spec.kind, "base_url": s.spec.base_url} for s in states]
    return json_response({"title": title.to_json(), "appliances": appliances})


async def steer(request: web.Request) -> web.Response:
    ctx, title_id = request.app[CONTEXT], _title_param(request)
    base = _settings(ctx).steering_url
    if base is None:
        raise ApiError(503, "steering_not_configured", "set [player] steering_url to show steering decisions")
    client = request.remote or ""
    try:
        async with aiohttp.ClientSession(timeout=STEER_TIMEOUT) as session, session.get(
                f"{base}/api/v1/steer", params={"ip": client, "title": title_id}) as resp:
            body = await resp.json(content_type=None)
            return json_response(body, resp.status)
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise ApiError(502, "steering_unavailable", f"steering did not answer: {e!r}") from None


def register(app: web.Application) -> None:
    app.router.add_get("/player", to_page)
    app.router.add_get("/player/", page)
    app.router.add_get("/player/{file:player\\.js}", page)
    app.router.add_get("/player/lib/{file}", library)
    app.router.add_get("/player/info", info)
    app.router.add_get("/player/steer", steer)


_TITLE = (query_param("title", {"type": "string"}, "the title to play (required)"),)
OPENAPI = {
    "/player": {"get": op("Redirects to /player/", auth=None, ok=302)},
    "/player/{file}": {"get": op("The player page's script", auth=None, ok_content="text/javascript",
                                 ok_schema={"type": "string"})},
    "/player/": {"get": op("The player page (HTML)", auth=None, ok_content="text/html", ok_schema={"type": "string"})},
    "/player/lib/{file}": {"get": op("A player library (dash.js, hls.js, Shaka)", auth=None,
                                     ok_content="text/javascript", ok_schema={"type": "string"}, errors=(404,))},
    "/player/info": {"get": op("The title and the appliances' base URLs, for the player page", auth=None,
                               params=_TITLE, errors=(404, 422))},
    "/player/steer": {"get": op("The steering answer for the requesting client", auth=None, params=_TITLE,
                                errors=(422, 502, 503))},
}
