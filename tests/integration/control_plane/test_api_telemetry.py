"""Playback telemetry: validation, regions, batching to SQL, back-pressure, popularity decay."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from control_plane.config import GeoConfig, PopularityConfig, TelemetryConfig
from control_plane.db.schema import playback_stats
from tests.integration.control_plane import builders as b

HB = {"positionMs": 1000, "bufferHealth": 12.5, "bitrate": 3_000_000, "deviceId": "dev-1"}
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


async def stats(control) -> dict:
    async with control.ctx.engine.connect() as conn:
        cols = [func.sum(playback_stats.c[n]) for n in ("heartbeats", "plays", "pauses", "seeks", "stops")]
        q = select(playback_stats.c.region, *cols).group_by(playback_stats.c.region)
        return {r[0]: tuple(int(x) for x in r[1:]) for r in await conn.execute(q)}


async def test_heartbeat_and_events_are_batched(make_control):
    control = await make_control(geoip=GeoConfig(trusted_proxies=LOOPBACK))
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    for _ in range(3):
        status, body, _ = await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None,
                                             headers={"X-Client-Country": "de"})
        assert status == 204
    for kind in ("play", "pause", "seek", "stop"):
        status, _, _ = await control.call("POST", "/api/v1/playback/t1/event", {"type": kind, "positionMs": 5},
                                          token=None, headers={"X-Client-Country": "DE"})
        assert status == 204
    await control.call("POST", "/api/v1/playback/t1/event", {"type": "play", "positionMs": 0}, token=None)
    assert await stats(control) == {}                       # nothing written per request
    assert control.ctx.buffer.pending == 8
    assert await control.flusher.flush_once()
    assert await stats(control) == {"DE": (3, 1, 1, 1, 1), "unknown": (0, 1, 0, 0, 0)}
    assert control.ctx.buffer.pending == 0
    # A second flush adds to the same rows (same minute bucket).
    await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None, headers={"X-Client-Country": "DE"})
    assert await control.flusher.flush_once()
    assert (await stats(control))["DE"] == (4, 1, 1, 1, 1)


@pytest.mark.parametrize("body,field", [
    ({**HB, "positionMs": "10"}, "positionMs"), ({**HB, "positionMs": -1}, "positionMs"),
    ({**HB, "bufferHealth": None}, "bufferHealth"), ({**HB, "bitrate": 1.5}, "bitrate"),
    ({**HB, "deviceId": 7}, "deviceId"), ({k: v for k, v in HB.items() if k != "deviceId"}, "deviceId"),
    ([HB], "(body)"),
])
async def test_heartbeat_validation(control, body, field):
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    status, err, _ = await control.call("POST", "/api/v1/playback/t1/heartbeat", body, token=None)
    assert status == 422 and err["error"]["field"] == field


async def test_event_validation_and_errors(control):
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    path = "/api/v1/playback/t1/event"
    status, err, _ = await control.call("POST", path, {"type": "rewind", "positionMs": 1}, token=None)
    assert status == 422 and err["error"]["field"] == "type"
    assert (await control.call("POST", path, raw=b"{{", token=None))[0] == 400
    assert (await control.call("POST", path, raw=b"x" * 5000, token=None))[0] == 413
    padded = {"type": "play", "positionMs": 0, "pad": "x" * 5000}
    assert (await control.call("POST", path, padded, token=None))[0] == 413
    status, err, _ = await control.call("POST", "/api/v1/playback/nope/event", {"type": "play", "positionMs": 1},
                                        token=None)
    assert status == 404 and err["error"]["code"] == "not_found"
    assert (await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None,
                               headers={"Content-Type": "text/plain"}))[0] == 415


async def test_backpressure_503_and_nothing_dropped(make_control):
    control = await make_control(telemetry=replace(TelemetryConfig(), max_pending=3, retry_after=7,
                                                   flush_interval=3600))
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    for _ in range(3):
        assert (await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None))[0] == 204
    status, err, headers = await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None)
    assert status == 503 and err["error"]["code"] == "telemetry_backlog" and headers["Retry-After"] == "7"
    assert await control.flusher.flush_once()
    assert (await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None))[0] == 204
    assert await control.flusher.flush_once()
    assert (await stats(control))["unknown"][0] == 4     # every accepted record, and only those
    _, text, _ = await control.call("GET", "/metrics", token=None)
    assert b"oca_control_telemetry_backpressure_total 1.0" in text
    assert b'oca_control_telemetry_records_total{kind="heartbeat"} 4.0' in text


async def test_distinct_rows_bound(make_control):
    control = await make_control(telemetry=replace(TelemetryConfig(), max_keys=1, flush_interval=3600),
                                 geoip=GeoConfig(trusted_proxies=LOOPBACK))
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    assert (await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None,
                               headers={"X-Client-Country": "DE"}))[0] == 204
    assert (await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None,
                               headers={"X-Client-Country": "FR"}))[0] == 503


async def test_untrusted_peer_cannot_set_country(control):
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None, headers={"X-Client-Country": "DE"})
    assert await control.flusher.flush_once()
    assert set(await stats(control)) == {"unknown"}


async def test_geoip_country_from_forwarded_client(make_control, tmp_path):
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    path = tmp_path / "country.mmdb"
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "NL"}})
    writer.to_db_file(str(path))
    control = await make_control(geoip=GeoConfig(country_db=path, trusted_proxies=LOOPBACK))
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    headers = {"X-Forwarded-For": "198.51.100.7", "X-Client-Country": "DE"}
    await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None, headers=headers)
    # Not in the database: the trusted proxy's header is the fallback.
    await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None,
                       headers={"X-Forwarded-For": "192.0.2.1", "X-Client-Country": "DE"})
    assert await control.flusher.flush_once()
    assert {k: v[0] for k, v in (await stats(control)).items()} == {"NL": 1, "DE": 1}


async def test_popularity_decays_with_half_life(make_control):
    control = await make_control(popularity=PopularityConfig(half_life=3600.0, heartbeat_weight=0.5),
                                 geoip=GeoConfig(trusted_proxies=LOOPBACK))
    for t in ("t1", "t2"):
        await control.call("POST", "/api/v1/titles", b.title(t))
    h = {"X-Client-Country": "DE"}
    play = {"type": "play", "positionMs": 0}
    for _ in range(4):
        await control.call("POST", "/api/v1/playback/t1/event", play, token=None, headers=h)
    await control.call("POST", "/api/v1/playback/t2/heartbeat", HB, token=None, headers=h)
    await control.call("POST", "/api/v1/playback/t2/event", {"type": "pause", "positionMs": 0}, token=None, headers=h)
    assert await control.flusher.flush_once()
    status, body, _ = await control.call("GET", "/api/v1/popularity?region=DE")
    assert status == 200 and body["half_life_s"] == 3600
    assert body["titles"] == [{"title_id": "t1", "views": 4.0}, {"title_id": "t2", "views": 0.5}]
    control.clock.advance(3600)
    body = (await control.call("GET", "/api/v1/popularity?region=DE"))[1]
    assert body["titles"][0] == {"title_id": "t1", "views": 2.0}
    await control.call("POST", "/api/v1/playback/t1/event", {"type": "play", "positionMs": 0}, token=None, headers=h)
    assert await control.flusher.flush_once()
    body = (await control.call("GET", "/api/v1/popularity?region=DE&limit=1"))[1]
    assert body["titles"] == [{"title_id": "t1", "views": 3.0}]
    assert (await control.call("GET", "/api/v1/popularity"))[0] == 400
    assert (await control.call("GET", "/api/v1/popularity?region=DE", token=None))[0] == 401


async def test_shutdown_flushes_the_buffer(database_url, tmp_path):
    from tests.integration.control_plane.conftest import config_for, start_control, stop_control

    control = await start_control(config_for(database_url, tmp_path))
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    for _ in range(5):
        await control.call("POST", "/api/v1/playback/t1/heartbeat", HB, token=None)
    engine_url = database_url
    await stop_control(control)
    from control_plane.db.engine import create_engine
    engine = create_engine(engine_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            total = (await conn.execute(select(func.sum(playback_stats.c.heartbeats)))).scalar_one()
    finally:
        await engine.dispose()
    assert total == 5
