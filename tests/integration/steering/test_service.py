"""The steering service on loopback against a snapshot server on loopback."""

from __future__ import annotations

import copy
import re

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from steering.config import ContentSteeringConfig, RankingConfig, SnapshotConfig, SteeringConfig
from steering.service import HOLDER, create_daemon_app
from tests.unit.steering.fleetdocs import write_geoip

from .conftest import TOKEN, wait_for


def config_for(server, tmp_path, **ranking) -> SteeringConfig:
    asn_db, country_db = write_geoip(tmp_path, asn={"198.51.100.0/24": 64777},
                                     country={"198.51.100.0/24": "FR", "2001:db8:ff::/48": "FR"})
    return SteeringConfig(
        listen=("127.0.0.1", 0), snapshot=SnapshotConfig(server.url, TOKEN, interval=0.05, timeout=2.0),
        asn_db=asn_db, country_db=country_db, ranking=RankingConfig(**ranking),
        content_steering=ContentSteeringConfig(ttl=10))


class Steering:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.runner = web.AppRunner(app)
        self.session: aiohttp.ClientSession | None = None
        self.base = ""

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self.session = aiohttp.ClientSession()

    async def get(self, path: str, **params):
        async with self.session.get(self.base + path, params=params) as resp:
            ctype = resp.headers.get("Content-Type", "")
            body = await resp.json() if "json" in ctype else await resp.text()
            return resp.status, body, resp.headers

    async def stop(self) -> None:
        await self.session.close()
        await self.runner.cleanup()

    @property
    def generation(self):
        model = self.app[HOLDER].model
        return None if model is None else model.generation


@pytest.fixture
async def steering(snapshot_server, tmp_path):
    service = Steering(create_daemon_app(config_for(snapshot_server, tmp_path), registry=CollectorRegistry()))
    await service.start()

    async def ready():
        return (await service.get("/healthz"))[0] == 200
    await wait_for(ready, what="first model")
    yield service
    await service.stop()


def ids(body):
    return [c["appliance_id"] for c in body["candidates"]]


async def test_steer_by_bgp_prefix_ipv4_and_ipv6(steering):
    status, body, _ = await steering.get("/api/v1/steer", ip="203.0.113.9", key="t1/a.mp4")
    assert status == 200
    assert body["version"] == 1 and body["key"] == "t1/a.mp4" and body["title"] is None
    assert body["client"] == {"ip": "203.0.113.9", "matched_prefix": "203.0.113.0/24", "asn": 64500,
                              "country": "DE", "region": "eu-central", "source": "bgp"}
    assert ids(body) == ["isp1-a", "isp1-b", "origin"]
    first = body["candidates"][0]
    assert first["base_url"] == "http://isp1-a.example:8080" and first["rank"] == 1
    assert "203.0.113.0/24" in first["reason"] and first["tier"] == "prefix"
    assert body["model"]["generation"] == "g1" and body["model"]["age_s"] >= 0
    status, body, _ = await steering.get("/api/v1/steer", ip="2001:db8:1::5", title="t1")
    assert status == 200 and ids(body) == ["isp1-a", "isp1-b", "origin"] and body["title"] == "t1"


async def test_steer_by_geoip_for_uncovered_clients(steering):
    status, body, _ = await steering.get("/api/v1/steer", ip="::ffff:198.51.100.20", key="t1/a.mp4", limit="1")
    assert status == 200
    assert body["client"]["source"] == "geoip" and body["client"]["country"] == "FR"
    assert body["client"]["asn"] == 64777 and ids(body) == ["ixp-fr"]
    status, body, _ = await steering.get("/api/v1/steer", ip="192.0.2.1", key="t1/a.mp4")
    assert body["client"]["source"] == "none" and ids(body) == ["origin"]
    status, body, _ = await steering.get("/api/v1/steer", ip="192.0.2.1", key="t5/none.mp4")
    assert status == 200 and body["candidates"] == []


@pytest.mark.parametrize("params, status, code", [
    ({"key": "t1/a.mp4"}, 400, "missing_ip"),
    ({"ip": "nope", "key": "t1/a.mp4"}, 400, "invalid_ip"),
    ({"ip": "192.0.2.1"}, 400, "missing_content"),
    ({"ip": "192.0.2.1", "key": "t1/a.mp4", "title": "t1"}, 400, "missing_content"),
    ({"ip": "192.0.2.1", "key": "../etc/passwd"}, 400, "invalid_key"),
    ({"ip": "192.0.2.1", "title": "t404"}, 404, "unknown_title"),
    ({"ip": "192.0.2.1", "key": "t1/a.mp4", "limit": "0"}, 400, "invalid_limit"),
])
async def test_bad_requests(steering, params, status, code):
    got, body, _ = await steering.get("/api/v1/steer", **params)
    assert (got, body["error"]["code"]) == (status, code)


async def test_no_model_yet_is_503(tmp_path):
    from tests.unit.steering.fleetdocs import snapshot

    from .conftest import SnapshotServer
    down = SnapshotServer(snapshot([]))          # never started: connection refused
    down.port = 9                                # discard port on loopback: nothing listens
    service = Steering(create_daemon_app(config_for(down, tmp_path), registry=CollectorRegistry()))
    await service.start()
    try:
        assert (await service.get("/healthz"))[0] == 503
        status, body, _ = await service.get("/api/v1/steer", ip="192.0.2.1", key="t1/a.mp4")
        assert status == 503 and body["error"]["code"] == "no_model"
    finally:
        await service.stop()


async def test_polls_with_etag_and_swaps_new_snapshots(steering, snapshot_server):
    await wait_for(lambda: _true(any(s == 304 for _, s in snapshot_server.requests)), what="a 304")
    assert ('"g1"', 304) in snapshot_server.requests
    doc = copy.deepcopy(snapshot_server.doc)
    doc["generation"] = "g2"
    doc["appliances"][0]["healthy"] = False        # isp1-a fails: steering must stop naming it quickly
    snapshot_server.doc = doc
    await wait_for(lambda: _true(steering.generation == "g2"), what="model g2")
    _, body, _ = await steering.get("/api/v1/steer", ip="203.0.113.9", key="t1/a.mp4")
    assert ids(body) == ["isp1-b", "origin"] and body["model"]["generation"] == "g2"


async def test_keeps_answering_when_the_control_plane_dies(steering, snapshot_server):
    await snapshot_server.stop()
    before = steering.app[HOLDER].confirmed_at

    async def failing():
        _, text, _ = await steering.get("/metrics")
        found = re.search(r'oca_steering_snapshot_fetches_total\{outcome="fetch_error"\} ([0-9.]+)', text)
        return found is not None and float(found.group(1)) >= 2
    await wait_for(failing, what="two failed fetches")
    status, body, _ = await steering.get("/api/v1/steer", ip="203.0.113.9", key="t1/a.mp4")
    assert status == 200 and ids(body) == ["isp1-a", "isp1-b", "origin"]
    assert steering.app[HOLDER].confirmed_at == before         # the model is not refreshed by failures
    assert (await steering.get("/healthz"))[0] == 200


async def test_garbage_snapshot_keeps_the_last_good_model(steering, snapshot_server):
    for garbage in (b"{not json", b'{"version": 2}', b'{"version": 1, "generation": "g9", "appliances": 3}'):
        snapshot_server.garbage = garbage
        count = len(snapshot_server.requests)
        await wait_for(lambda c=count: _true(len(snapshot_server.requests) >= c + 2), what="garbage fetched")
        status, body, _ = await steering.get("/api/v1/steer", ip="203.0.113.9", key="t1/a.mp4")
        assert status == 200 and body["model"]["generation"] == "g1" and ids(body)[0] == "isp1-a"
    _, text, _ = await steering.get("/metrics")
    assert 'oca_steering_snapshot_fetches_total{outcome="invalid"}' in text
    assert 'oca_steering_snapshot_fetches_total{outcome="invalid"} 0.0' not in text
    snapshot_server.garbage = None
    snapshot_server.doc = {**snapshot_server.doc, "generation": "g3"}
    await wait_for(lambda: _true(steering.generation == "g3"), what="recovery to g3")


async def test_content_steering_manifests(steering):
    status, body, headers = await steering.get("/api/v1/content-steering/hls", title="t1",
                                               pathways="origin,isp1-b,isp1-a")
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    # The client is 127.0.0.1: no prefix, no GeoIP record → only the origin can be ranked now.
    assert body == {"VERSION": 1, "TTL": 10, "RELOAD-URI":
                    "/api/v1/content-steering/hls?title=t1&pathways=origin%2Cisp1-b%2Cisp1-a",
                    "PATHWAY-PRIORITY": ["origin"]}
    status, body, _ = await steering.get("/api/v1/content-steering/dash", key="t1/a.mp4",
                                         _DASH_pathway='"origin"', _DASH_throughput="5000000")
    assert status == 200 and body["PATHWAY-PRIORITY"] == body["SERVICE-LOCATION-PRIORITY"] == ["origin"]
    assert "_DASH_" not in body["RELOAD-URI"]
    status, body, _ = await steering.get("/api/v1/content-steering/hls", key="t5/none.mp4")
    assert status == 503 and body["error"]["code"] == "no_pathway"


async def test_content_steering_moves_players_off_an_overloaded_appliance(steering, snapshot_server):
    doc = copy.deepcopy(snapshot_server.doc)
    doc["generation"] = "g2"
    doc["appliances"][3]["load_ratio"] = 0.95      # the origin, the only candidate for loopback clients
    doc["appliances"].append({**doc["appliances"][3], "id": "origin-2", "load_ratio": 0.1})
    snapshot_server.doc = doc
    await wait_for(lambda: _true(steering.generation == "g2"), what="model g2")
    _, body, _ = await steering.get("/api/v1/content-steering/hls", title="t1", pathways="origin,origin-2",
                                    _HLS_pathway="origin")
    assert body["PATHWAY-PRIORITY"] == ["origin-2", "origin"]


async def test_metrics_count_decisions_by_tier_and_latency(steering):
    await steering.get("/api/v1/steer", ip="203.0.113.9", key="t1/a.mp4")
    await steering.get("/api/v1/steer", ip="192.0.2.1", key="t1/a.mp4")
    await steering.get("/api/v1/steer", ip="bad", key="t1/a.mp4")
    await steering.get("/api/v1/steer", ip="203.0.113.77", key="t1/a.mp4")   # same place, same content: cached
    status, text, _ = await steering.get("/metrics")
    assert status == 200
    assert 'oca_steering_decisions_total{api="steer",tier="prefix"} 2.0' in text
    assert 'oca_steering_decisions_total{api="steer",tier="origin"} 1.0' in text
    assert 'oca_steering_rejected_requests_total{reason="invalid_ip"} 1.0' in text
    assert "oca_steering_decision_seconds_count 3.0" in text
    assert "oca_steering_ranking_cache_hit_ratio 0.333" in text
    assert "oca_steering_model_age_seconds" in text and "oca_steering_model_appliances 4.0" in text
    assert 'oca_steering_model_prefixes{family="ipv6"} 1.0' in text


async def _true(value: bool) -> bool:
    return value


async def test_content_steering_behind_a_trusted_balancer(snapshot_server, tmp_path):
    import dataclasses
    import ipaddress

    config = config_for(snapshot_server, tmp_path)
    config = dataclasses.replace(config, content_steering=ContentSteeringConfig(
        ttl=10, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)))
    service = Steering(create_daemon_app(config, registry=CollectorRegistry()))
    await service.start()
    try:
        async def ready():
            return (await service.get("/healthz"))[0] == 200
        await wait_for(ready, what="first model")
        async with service.session.get(service.base + "/api/v1/content-steering/hls",
                                       params={"title": "t1", "pathways": "origin,isp1-a"},
                                       headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}) as resp:
            body = await resp.json()
        assert body["PATHWAY-PRIORITY"] == ["isp1-a", "origin"]      # located by the forwarded address
    finally:
        await service.stop()
