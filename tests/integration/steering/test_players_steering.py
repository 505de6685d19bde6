"""Real players follow the real steering service: dash.js and hls.js in headless Chromium play a title from
two real edges (`oca serve`) through manifests carrying content steering (DASH `<ContentSteering>`, HLS
`#EXT-X-CONTENT-STEERING`) that point at `oca-steering`'s content-steering endpoints; steering ranks from a
fleet snapshot the test changes mid-play:

- flip: appliance A becomes overloaded (load 0.95) → steering puts B first → the player moves to B;
- kill: A's edge is SIGKILLed and the snapshot marks it unhealthy → the player moves to B.

Either way playback must reach 15 s with no player error and no stall after the change, and media must come
from B after it. A segment request already sent to A when it died fails; dash.js reports it (ERROR 27 or 28,
kept apart as `recovered` by the page) and loads that segment from B: only A may appear in those.
Uses the player harness of tests/e2e (node_modules, chromium); skipped with the reason when it is missing.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import time

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from control_plane.manifests import Location, SteeringServer, render_dash, render_hls_master, render_hls_media
from steering.config import ContentSteeringConfig, RankingConfig, SnapshotConfig, SteeringConfig
from steering.service import create_daemon_app
from tests.e2e.control import Control
from tests.e2e.harness import KEY_ID, SECRET, Edge, PageServer, free_port, make_store, missing_prerequisites, run_driver
from tests.e2e.test_players import _media, signed
from tests.integration.ingest.samples import make_master

from .conftest import TOKEN, SnapshotServer

pytestmark = pytest.mark.slow
PLAYERS = ("dashjs", "hlsjs")
SCENARIOS = ("flip-dashjs", "flip-hlsjs", "kill-dashjs", "kill-hlsjs")
PLAY_S, ACT_AT_S = 15, 4


def snapshot_for(edges: dict[str, Edge], keys: list[str], generation: str) -> dict:
    from tests.unit.steering.fleetdocs import appliance, snapshot

    # The players connect from 127.0.0.1: each scenario's A is an embedded appliance whose BGP prefix
    # covers it (tier prefix), B an exchange point whose prefix covers it too (tier ixp-prefix): A first.
    apps = [appliance(f"A-{s}", v4=["127.0.0.0/8"], keys=keys, base_url=edges[f"A-{s}"].base_url)
            for s in SCENARIOS]
    apps.append(appliance("B", "ixp", asn=None, v4=["127.0.0.0/8"], keys=keys, base_url=edges["B"].base_url))
    return snapshot(apps, titles={"t1": keys}, generation=generation)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    reason = missing_prerequisites()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("steered-players")
    master = make_master(root / "master.mp4", seconds=24, size="960x540", rate=25)
    edges: dict[str, Edge] = {}
    hooks: dict = {}

    def routes(app: web.Application) -> None:
        for method, path, name in (("GET", "/dash/{s}.mpd", "dash"), ("GET", "/hls/{s}.m3u8", "hls"),
                                   ("GET", "/hls/{s}/{edge}/{file}.m3u8", "hls_media"),
                                   ("POST", "/act/{s}", "act")):
            async def handler(request, name=name):
                return await hooks[name](request)
            app.router.add_route(method, path, handler)

    server = PageServer(routes)
    control = snapshots = steering_runner = None
    try:
        keys_file = root / "keys.toml"
        keys_file.write_text(f'[[keys]]\nid = "{KEY_ID}"\nsecret = "{SECRET}"\n')
        control = Control(root / "control", keys_file, KEY_ID)
        server.run(control.start())
        status = server.run(control.ingest("t1", master))
        outputs = [o for o in status["renditions"] if o["kind"] in ("video", "audio")]
        media = _media(outputs, control.content)
        keys = [o["key"] for o in outputs]
        store = make_store(root / "store", {o["key"]: control.content / o["key"] for o in outputs}, keys_file)
        for name in ("B", *(f"A-{s}" for s in SCENARIOS)):
            edges[name] = Edge(store, name)

        snapshots = SnapshotServer(snapshot_for(edges, keys, "g0"))
        server.run(snapshots.start())
        steering_port = free_port()
        config = SteeringConfig(
            listen=("127.0.0.1", steering_port),
            snapshot=SnapshotConfig(snapshots.url, TOKEN, interval=0.1, timeout=5.0), asn_db=None, country_db=None,
            ranking=RankingConfig(), content_steering=ContentSteeringConfig(ttl=2))
        steering_app = create_daemon_app(config, registry=CollectorRegistry())

        async def start_steering() -> web.AppRunner:
            runner = web.AppRunner(steering_app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", steering_port).start()
            return runner
        steering_runner = server.run(start_steering())
        steering_url = f"http://127.0.0.1:{steering_port}"
        yield from _run(root, media, keys, edges, server, snapshots, steering_url, hooks)
    finally:
        if steering_runner is not None:
            server.run(steering_runner.cleanup())
        if snapshots is not None:
            server.run(snapshots.stop())
        if control is not None:
            server.run(control.stop())
        server.close()
        for edge in edges.values():
            edge.kill()


def _run(root, media, keys, edges, server, snapshots, steering_url, hooks):
    def locations(s: str) -> list[Location]:
        out = []
        for name in (f"A-{s}", "B"):
            urls = {k: signed(edges[name], k) for k in keys}
            playlists = {k: f"{s}/{name}/{k.rsplit('/', 1)[1]}.m3u8" for k in keys}
            out.append(Location(name, urls, playlists))
        return out

    def steering(s: str, fmt: str) -> SteeringServer:
        return SteeringServer(f"{steering_url}/api/v1/content-steering/{fmt}?title=t1&pathways=A-{s},B", f"A-{s}")

    async def dash(request):
        s = request.match_info["s"]
        return web.Response(text=render_dash(media, locations(s), steering(s, "dash")),
                            content_type="application/dash+xml")

    async def hls(request):
        s = request.match_info["s"]
        return web.Response(text=render_hls_master(media, locations(s), steering(s, "hls")),
                            content_type="application/vnd.apple.mpegurl")

    async def hls_media(request):
        key = f"t1/{request.match_info['file']}"
        rendition = next(r for r in (*media.video, *media.audio) if r.key == key)
        url = signed(edges[request.match_info["edge"]], key)
        return web.Response(text=render_hls_media(rendition, url), content_type="application/vnd.apple.mpegurl")

    generations = iter(range(1, 100))

    async def act(request):
        s = request.match_info["s"]
        doc = copy.deepcopy(snapshots.doc)
        target = next(a for a in doc["appliances"] if a["id"] == f"A-{s}")
        if s.startswith("flip-"):
            target["load_ratio"] = 0.95
        else:
            await asyncio.to_thread(edges[f"A-{s}"].kill)
            target["healthy"] = False
        doc["generation"] = f"g{next(generations)}"
        snapshots.doc = doc
        return web.Response(text="done")

    hooks.update(dash=dash, hls=hls, hls_media=hls_media, act=act)
    scenarios = []
    only = os.environ.get("OCA_E2E_ONLY")  # e.g. "kill-dashjs" while debugging a player
    for s in SCENARIOS:
        if only and s not in only.split(","):
            continue
        player = s.split("-", 1)[1]
        fmt = "hls/{}.m3u8" if player == "hlsjs" else "dash/{}.mpd"
        scenarios.append({"name": s, "player": player, "manifestUrl": f"{server.url}/{fmt.format(s)}",
                          "playSeconds": PLAY_S, "timeoutSeconds": 60,
                          "kill": {"atSeconds": ACT_AT_S, "url": f"{server.url}/act/{s}"}})
    started = time.monotonic()
    out = run_driver(f"{server.url}/page.html", scenarios, root)
    out["_seconds"] = time.monotonic() - started
    out["_edges"] = {name: edge.base_url for name, edge in edges.items()}
    out["_metrics"] = server.run(_metrics(steering_url))
    yield out


async def _metrics(url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as r:
        return await r.text()


def _show(r: dict) -> str:
    return json.dumps(r)[:4000]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_player_moves_to_the_appliance_steering_now_ranks_first(results, scenario):
    r = results[scenario]
    assert r["errors"] == [], _show(r)
    assert r["currentTime"] >= PLAY_S, _show(r)
    assert r["stallsAfterKill"] == 0, _show(r)
    b_host = results["_edges"]["B"].removeprefix("http://")
    assert r["hostsAfterKill"].get(b_host, 0) >= 1, _show(r)
    # Failed segment downloads the player recovered from (dash.js): only ever on the appliance that died.
    a_url = results["_edges"][f"A-{scenario}"]
    assert all(a_url + "/" in e for e in r["recovered"]), _show(r)
    if scenario.startswith("flip-"):
        assert r["recovered"] == [], _show(r)


def test_players_polled_the_steering_service(results):
    metrics = results["_metrics"]
    for api in ("dash", "hls"):
        line = next(x for x in metrics.splitlines()
                    if x.startswith(f'oca_steering_decisions_total{{api="{api}",tier="prefix"}}'))
        assert float(line.split()[-1]) >= 1, metrics
