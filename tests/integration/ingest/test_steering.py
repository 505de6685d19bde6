"""The manifest API with the real steering service (steering polls this control plane's fleet
snapshot), content-steering links in the manifests, and the in-process fallback when steering is down."""

from __future__ import annotations

import json

import m3u8
from mpegdash.parser import MPEGDASHParser
from prometheus_client import CollectorRegistry

from bench.manifest import layout
from control_plane.api.playback_manifest import PlaybackSettings
from control_plane.context import CONTEXT
from control_plane.db.schema import renditions
from control_plane.ingest_jobs import rendition_layouts
from steering.config import ContentSteeringConfig, RankingConfig, SnapshotConfig, SteeringConfig
from steering.service import HOLDER, create_daemon_app
from tests.integration.control_plane import builders as b
from tests.integration.steering.conftest import wait_for
from tests.integration.steering.test_service import Steering

from .conftest import OPERATOR_TOKEN, start, stop
from .test_api import DE, register_fleet

FILES = {"t1/avc-360p-700k.mp4": layout("video", "avc1.64001e", 700_000, 640, 360),
         "t1/aac-en-128k.mp4": layout("audio", "mp4a.40.2", 128_000)}


async def seed_title(cp) -> None:
    """A title with ready renditions, written as ingest writes them (no encode needed here)."""
    assert (await cp.call("POST", "/api/v1/titles", b.title("t1")))[0] == 201
    licence = {"region": "DE", "start": "2026-01-01T00:00:00Z"}
    assert (await cp.call("POST", "/api/v1/titles/t1/licenses", licence))[0] == 201
    async with cp.app[CONTEXT].engine.begin() as conn:
        for key, lay in FILES.items():
            await conn.execute(renditions.insert().values(
                key=key, title_id="t1", kind=lay["kind"], codec=lay["codecs"], status="ready", size=1,
                sha256="0" * 64, language="en", created_at=0.0, updated_at=0.0))
            await conn.execute(rendition_layouts.insert().values(
                key=key, title_id="t1", layout_json=json.dumps(lay), frame_rate=25.0, language="en"))


async def test_manifest_asks_the_steering_service(tmp_path):
    steering = None
    # The control plane holds the fleet; steering polls its snapshot; the manifest API then asks steering.
    cp = await start(tmp_path, playback=PlaybackSettings(cache_ttl=0.0))
    try:
        await seed_title(cp)
        await register_fleet(cp, list(FILES))
        registry = CollectorRegistry()
        config = SteeringConfig(
            listen=("127.0.0.1", 0),
            snapshot=SnapshotConfig(f"{cp.url}/api/v1/fleet/snapshot", OPERATOR_TOKEN, interval=0.05, timeout=5.0),
            asn_db=None, country_db=None, ranking=RankingConfig(), content_steering=ContentSteeringConfig())
        steering = Steering(create_daemon_app(config, registry=registry))
        await steering.start()

        async def model_loaded():
            return steering.app[HOLDER].model is not None
        await wait_for(model_loaded, timeout=20, what="a steering model")
        from control_plane.api.playback_manifest import STATE

        state = cp.app[STATE]
        state.settings = PlaybackSettings(cache_ttl=0.0, steering_url=steering.base,
                                          content_steering_url=steering.base)
        import aiohttp

        state.http = aiohttp.ClientSession()
        try:
            status, text, _ = await cp.call("GET", "/api/v1/playback/t1/manifest", token=None, headers=DE)
            assert status == 200, text
            steered = sum(registry.get_sample_value("oca_steering_decisions_total", {"api": "steer", "tier": t}) or 0
                          for t in ("prefix", "asn", "ixp-prefix", "ixp-country", "ixp-region", "origin"))
            assert steered >= 1
            _, answer, _ = await steering.get("/api/v1/steer", ip="127.0.0.1", title="t1")
            order = [c["appliance_id"] for c in answer["candidates"]]
            mpd = MPEGDASHParser.parse(text.decode())
            rep = mpd.periods[0].adaptation_sets[0].representations[0]
            assert [u.service_location for u in rep.base_urls] == order  # steering's order, not ours
            pathways = "%2C".join(order)
            link = f"{steering.base}/api/v1/content-steering/dash?title=t1&amp;pathways={pathways}"
            assert (f'<ContentSteering defaultServiceLocation="{order[0]}" queryBeforeStart="true">{link}'
                    "</ContentSteering>") in text.decode()
            status, text, _ = await cp.call("GET", "/api/v1/playback/t1/manifest?format=hls", token=None, headers=DE)
            pl = m3u8.loads(text.decode())
            assert pl.content_steering.uri.startswith(f"{steering.base}/api/v1/content-steering/hls?title=t1")
            # The steering service answers the link the manifest carries.
            async with state.http.get(pl.content_steering.uri) as r:
                answer = await r.json()
            assert r.status == 200 and set(answer["PATHWAY-PRIORITY"]) == set(order), answer

            await steering.stop()
            steering = None
            status, text, _ = await cp.call("GET", "/api/v1/playback/t1/manifest", token=None, headers=DE)
            assert status == 200  # steering down: ranked in-process from the fleet table
            rep = MPEGDASHParser.parse(text.decode()).periods[0].adaptation_sets[0].representations[0]
            assert [u.service_location for u in rep.base_urls] == ["ixp-1", "origin-1"]
        finally:
            await state.http.close()
            state.http = None
    finally:
        if steering is not None:
            await steering.stop()
        await stop(cp)
