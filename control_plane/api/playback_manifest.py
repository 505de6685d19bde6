"""Playback manifest API (reference design): ``GET /api/v1/playback/{titleId}/manifest?format=dash|hls``.

404 unknown title · 451 not licensed in the client's country (RFC 7725; country from
`Context.country_of`) · 409 no ready rendition yet · 503 no appliance can serve it. Otherwise:
steering (the steering service when ``steering_url`` is set, else `playback.rank_locally`) → ranked
appliances → every file's URL signed with `oca.tokens.sign_query` (expiry, optionally the client's
/24 or /48) → `manifests.render_dash` / `render_hls_master`. HLS media playlists are served by
``GET /api/v1/playback/{titleId}/hls/{pathway}/{file}.m3u8?b=<base>&<token>``: the multivariant
playlist links to them with the appliance's base URL and the file's token, so rendering one needs
no steering call and no SQL.

Per-request cost is kept low (target ≥ 3,500 manifests/s, see bench/manifest.py): title, licences,
layouts and fleet states are cached for ``cache_ttl`` seconds (default 2 s), then read again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from sqlalchemy import select

from control_plane import licensing
from control_plane.api.openapi_doc import op, path_param, query_param
from control_plane.clientgeo import client_ip
from control_plane.context import CONTEXT, Context
from control_plane.db import catalog as catalog_repo
from control_plane.db import fleet as fleet_repo
from control_plane.db import licences as licences_repo
from control_plane.db.schema import renditions
from control_plane.errors import ApiError, not_found
from control_plane.ingest_jobs import rendition_layouts
from control_plane.manifests import (
    ManifestError,
    Rendition,
    SteeringServer,
    TextTrack,
    TitleMedia,
    render_dash,
    render_hls_master,
    render_hls_media,
    render_hls_subtitles,
)
from control_plane.packaging import layout_from_dict
from control_plane.playback import Candidate, locations, rank_locally
from control_plane.validation import check_identifier
from oca.config import Section
from oca.tokens import sign_query

log = logging.getLogger("oca.control.playback")
_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
MAX_CACHED_TITLES = 50_000
MAX_RENDERED = 20_000
_TYPES = {"dash": "application/dash+xml", "hls": "application/vnd.apple.mpegurl"}


@dataclass(frozen=True)
class PlaybackSettings:
    url_ttl: float = 6 * 3600.0  # signed URL lifetime: covers a long film plus pauses
    bind_client_prefix: bool = False  # put the client's /24 (IPv4) or /48 (IPv6) in the token
    steering_url: str | None = None  # e.g. http://127.0.0.1:8100 (oca-steering); None: rank in-process
    # Base URL of the steering service's content-steering endpoints (oca-steering: /api/v1/content-steering/
    # {dash,hls}); when set, manifests carry <ContentSteering> / #EXT-X-CONTENT-STEERING pointing there.
    content_steering_url: str | None = None
    cache_ttl: float = 2.0
    max_locations: int = 3


@dataclass
class TitleEntry:
    loaded_at: float
    exists: bool
    licences: list
    media: TitleMedia | None


@dataclass
class PlaybackState:
    settings: PlaybackSettings
    titles: dict[str, TitleEntry] = field(default_factory=dict)
    fleet: tuple[float, list] | None = None
    http: aiohttp.ClientSession | None = None
    loading: dict[str, asyncio.Future] = field(default_factory=dict)
    rendered: dict[tuple, bytes] = field(default_factory=dict)
    fleet_loading: asyncio.Future | None = None


STATE = web.AppKey("oca_playback_state", PlaybackState)


def parse_playback_section(s: Section) -> PlaybackSettings:
    """``[playback]`` of oca-control.toml (docs/examples/oca-control.toml documents each key)."""
    d = PlaybackSettings()
    out = PlaybackSettings(
        url_ttl=s.duration("url_ttl", d.url_ttl), bind_client_prefix=s.bool("bind_client_prefix", False),
        steering_url=s.str("steering_url", None), content_steering_url=s.str("content_steering_url", None),
        cache_ttl=s.duration("cache_ttl", d.cache_ttl), max_locations=s.int("max_locations", 3, min=1, max=16))
    for name in ("steering_url", "content_steering_url"):
        value = getattr(out, name)
        if value is not None and not value.startswith(("http://", "https://")):
            raise s.error(name, f"expected an http(s) base URL, got {value!r}")
    if out.url_ttl < 60:
        raise s.error("url_ttl", "must be at least 60s (players need time to fetch the whole title)")
    s.done()
    return out


def settings_for(ctx: Context) -> PlaybackSettings:
    return getattr(ctx.config, "playback", None) or ctx.extras.get("playback_settings") or PlaybackSettings()


async def _title(ctx: Context, state: PlaybackState, title_id: str) -> TitleEntry:
    """The cached title; an expired entry is served while ONE background load refreshes it (so a
    burst of requests at expiry does not turn into a burst of identical SQL reads)."""
    entry = state.titles.get(title_id)
    if entry is not None and time.monotonic() - entry.loaded_at < state.settings.cache_ttl:
        return entry
    loading = state.loading.get(title_id)
    if loading is None:
        loading = asyncio.ensure_future(_load_title(ctx, state, title_id))
        state.loading[title_id] = loading
        loading.add_done_callback(lambda _: state.loading.pop(title_id, None))
    if entry is not None and state.settings.cache_ttl > 0:
        return entry
    return await asyncio.shield(loading)


async def _load_title(ctx: Context, state: PlaybackState, title_id: str) -> TitleEntry:
    now = time.monotonic()
    async with ctx.engine.connect() as conn:
        title = await catalog_repo.get_title(conn, title_id)
        lics = await licences_repo.for_title(conn, title_id) if title else []
        rows = (await conn.execute(
            select(renditions.c.key, renditions.c.kind, renditions.c.language, rendition_layouts.c.layout_json,
                   rendition_layouts.c.frame_rate)
            .select_from(renditions.outerjoin(rendition_layouts, rendition_layouts.c.key == renditions.c.key))
            .where(renditions.c.title_id == title_id, renditions.c.status == "ready")
            .order_by(renditions.c.key))).all() if title else []
    # Parsing a long title's layouts takes milliseconds: off the event loop.
    media = await asyncio.to_thread(_media, title_id, rows) if rows else None
    entry = TitleEntry(now, title is not None, lics, media)
    if len(state.titles) >= MAX_CACHED_TITLES:  # unknown ids must not grow the cache without bound
        state.titles.clear()
    state.titles[title_id] = entry
    return entry


def _media(title_id: str, rows) -> TitleMedia | None:
    video, audio, text = [], [], []
    for key, kind, language, layout_json, frame_rate in rows:
        if kind == "subtitle":
            text.append(TextTrack(key, language or "und"))
        elif layout_json is not None:
            r = Rendition(key, layout_from_dict(json.loads(layout_json)), frame_rate or 0.0, language or "und")
            (video if kind == "video" else audio).append(r)
    return TitleMedia(title_id, tuple(video), tuple(audio), tuple(text)) if video else None


async def _fleet(ctx: Context, state: PlaybackState) -> list:
    """Fleet states, cached like titles (stale while one refresh runs)."""
    if state.fleet is not None and time.monotonic() - state.fleet[0] < state.settings.cache_ttl:
        return state.fleet[1]
    if state.fleet_loading is None:
        state.fleet_loading = asyncio.ensure_future(_load_fleet(ctx, state))
    if state.fleet is not None and state.settings.cache_ttl > 0:
        return state.fleet[1]
    return await asyncio.shield(state.fleet_loading)


async def _load_fleet(ctx: Context, state: PlaybackState) -> list:
    try:
        now = time.monotonic()
        async with ctx.engine.connect() as conn:
            states = await fleet_repo.all_states(conn, with_keys=True)
        state.fleet = (now, states)
        return states
    finally:
        state.fleet_loading = None


async def _candidates(ctx: Context, state: PlaybackState, title_id: str, keys: list[str],
                      ip: str | None) -> list[Candidate]:
    s = state.settings
    if s.steering_url and state.http is not None and ip is not None:
        try:
            async with state.http.get(f"{s.steering_url}/api/v1/steer", params={"ip": ip, "title": title_id}) as r:
                if r.status == 200:
                    body = await r.json()
                    return [Candidate(c["appliance_id"], c.get("kind", ""), c["base_url"].rstrip("/"),
                                      c.get("reason", "")) for c in body.get("candidates", [])][:s.max_locations]
                log.warning("steering answered %s; ranking in-process", r.status)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as e:
            log.warning("steering unreachable (%s); ranking in-process", e)
    states = await _fleet(ctx, state)
    return rank_locally(states, keys, ip, ctx.now(), ctx.config.fleet.stale_after, limit=s.max_locations)


EXPIRY_STEP = 60  # expiries are rounded up to the minute: identical tokens → a rendered manifest is reusable


def _signer(ctx: Context, settings: PlaybackSettings, ip: str | None):
    """(cache key part, signer) — the signer is None without a key ring (unsigned URLs)."""
    key = ctx.signing_key()
    if key is None:
        return None, None
    kid, secret = key.id, key.secret
    expires = -(-int(ctx.now() + settings.url_ttl) // EXPIRY_STEP) * EXPIRY_STEP
    prefix = None
    if settings.bind_client_prefix and ip:
        addr = ipaddress.ip_address(ip)
        prefix = str(ipaddress.ip_network(f"{ip}/{24 if addr.version == 4 else 48}", strict=False))
    return (kid, expires, prefix), lambda path: sign_query(path, kid, secret, expires, prefix)


def _licence_error(verdict, title_id: str, country: str) -> ApiError:
    match verdict:
        case licensing.NotYet(starts_at=at):
            return ApiError(451, "licence_not_started", f"title {title_id!r} is licensed in {country} from {at:.0f}")
        case licensing.Expired(ended_at=at):
            return ApiError(451, "licence_expired", f"the licence of {title_id!r} in {country} ended at {at:.0f}")
        case _:
            return ApiError(451, "not_licensed", f"title {title_id!r} is not licensed in {country}")


async def manifest(request: web.Request) -> web.Response:
    ctx, state = request.app[CONTEXT], request.app[STATE]
    title_id = check_identifier(request.match_info["title_id"], "titleId")
    fmt = request.query.get("format", "dash")
    if fmt not in _TYPES:
        raise ApiError(400, "bad_query", "format must be dash or hls", "format")
    entry = await _title(ctx, state, title_id)
    if not entry.exists:
        raise not_found("title", title_id)
    country = ctx.country_of(request)
    verdict = licensing.playability(entry.licences, title_id, country, ctx.now())
    if not isinstance(verdict, licensing.Playable):
        raise _licence_error(verdict, title_id, country)
    media = entry.media
    if media is None:
        raise ApiError(409, "no_ready_rendition", f"title {title_id!r} has no ready rendition yet (see "
                       f"/api/v1/content/{title_id}/encoding-status)")
    g = ctx.config.geoip
    ip = client_ip(request.remote, request.headers, trusted_proxies=g.trusted_proxies,
                   forwarded_header=g.forwarded_header)
    keys = [r.key for r in (*media.video, *media.audio)] + [t.key for t in media.text]
    ranked = await _candidates(ctx, state, title_id, keys, ip)
    if not ranked:
        raise ApiError(503, "no_appliance", f"no healthy appliance holds {title_id!r} right now",
                       headers={"Retry-After": "5"})
    token, sign = _signer(ctx, state.settings, ip)
    # Clients with the same ranked appliances get the same text until the expiry step turns over.
    cache_key = (title_id, fmt, entry.loaded_at, tuple(ranked), token)
    body = state.rendered.get(cache_key)
    if body is None:
        body = _render(fmt, media, ranked, keys, sign, _steering_uri(state.settings, fmt, title_id, ranked)).encode()
        if len(state.rendered) >= MAX_RENDERED:
            state.rendered.clear()
        state.rendered[cache_key] = body
    return web.Response(body=body, content_type=_TYPES[fmt], charset="utf-8", headers=_HEADERS)


def _steering_uri(settings: PlaybackSettings, fmt: str, title_id: str, ranked: list[Candidate]) -> str | None:
    """The content-steering server URL for this manifest: the steering service orders exactly the
    pathways (appliance ids) the manifest offers (docs/steering.md)."""
    if not settings.content_steering_url:
        return None
    query = urlencode({"title": title_id, "pathways": ",".join(c.appliance_id for c in ranked)})
    return f"{settings.content_steering_url.rstrip('/')}/api/v1/content-steering/{fmt}?{query}"


def _render(fmt: str, media: TitleMedia, ranked: list[Candidate], keys: list[str], sign, steering_uri) -> str:
    steering = SteeringServer(steering_uri, ranked[0].appliance_id) if steering_uri else None
    if fmt == "dash":
        return render_dash(media, locations(ranked, keys, sign), steering)
    return render_hls_master(media, locations(ranked, keys, sign, playlist_base="hls/"), steering)


async def media_playlist(request: web.Request) -> web.Response:
    ctx, state = request.app[CONTEXT], request.app[STATE]
    title_id = check_identifier(request.match_info["title_id"], "titleId")
    key = f"{title_id}/{request.match_info['file']}"
    base = request.query.get("b", "")
    if not base.startswith(("http://", "https://")):
        raise ApiError(400, "bad_query", "b must be the appliance's http(s) base URL", "b")
    entry = await _title(ctx, state, title_id)
    media = entry.media
    found = None if media is None else next((r for r in (*media.video, *media.audio) if r.key == key), None)
    track = None if media is None else next((t for t in media.text if t.key == key), None)
    if found is None and track is None:
        raise not_found("ready rendition", key)
    token = "&".join(p for p in request.query_string.split("&") if not p.startswith("b="))
    url = f"{base.rstrip('/')}/{key}" + (f"?{token}" if token else "")
    try:
        text = render_hls_media(found, url) if found else render_hls_subtitles(media.duration_s, url)
    except ManifestError as e:
        raise ApiError(400, "bad_query", str(e)) from None
    if any(c in url for c in '"\r\n'):
        raise ApiError(400, "bad_query", "the URL would break the playlist")
    return web.Response(text=text, content_type=_TYPES["hls"], headers=_HEADERS)


CONFIG_SECTIONS = {"playback": parse_playback_section}


def register(app: web.Application) -> None:
    app.router.add_get("/api/v1/playback/{title_id}/manifest", manifest)
    app.router.add_get("/api/v1/playback/{title_id}/hls/{pathway}/{file}.m3u8", media_playlist)


async def on_startup(app: web.Application) -> None:
    settings = settings_for(app[CONTEXT])
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) if settings.steering_url else None
    app[STATE] = PlaybackState(settings, http=http)


async def on_cleanup(app: web.Application) -> None:
    if STATE in app and app[STATE].http is not None:
        await app[STATE].http.close()


OPENAPI = {
    "/api/v1/playback/{title_id}/manifest": {"get": op(
        "DASH (default) or HLS manifest with signed URLs of several appliances in failover order",
        auth=None, ok_content="application/dash+xml", ok_schema={"type": "string"},
        errors=(400, 404, 409, 451, 503),
        params=(path_param("title_id"), query_param("format", {"enum": ["dash", "hls"]})))},
    "/api/v1/playback/{title_id}/hls/{pathway}/{file}.m3u8": {"get": op(
        "HLS media playlist of one rendition on one appliance (linked from the HLS manifest)",
        auth=None, ok_content="application/vnd.apple.mpegurl", ok_schema={"type": "string"},
        errors=(400, 404), params=(path_param("title_id"), path_param("pathway"), path_param("file")))},
}
