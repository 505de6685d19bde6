"""Fleet registry, appliance reports (full/delta/409), staleness and the fleet snapshot (ETag/304)."""

from __future__ import annotations

import pytest

from tests.integration.control_plane import builders as b
from tests.integration.control_plane.conftest import T0


async def register(control, **kw) -> str:
    status, body, _ = await control.call("POST", "/api/v1/appliances", b.appliance(**kw))
    assert status == 201, body
    return body["token"]


async def test_register_returns_token_once_and_stores_hash(control):
    status, body, headers = await control.call("POST", "/api/v1/appliances", b.appliance())
    assert status == 201 and len(body["token"]) >= 40 and headers["Location"] == "/api/v1/appliances/isp1-a"
    assert body["capacity"] == {"ssd": 10_000, "hdd": 100_000}
    status, again, _ = await control.call("GET", "/api/v1/appliances/isp1-a")
    assert status == 200 and "token" not in again and "token_hash" not in again
    async with control.ctx.engine.connect() as conn:
        from sqlalchemy import select

        from control_plane.db.schema import appliances
        stored = (await conn.execute(select(appliances.c.token_hash))).scalar_one()
    assert stored != body["token"] and len(stored) == 64
    assert (await control.call("POST", "/api/v1/appliances", b.appliance()))[0] == 409


@pytest.mark.parametrize("change,field", [
    ({"kind": "cache"}, "kind"), ({"country": "Germany"}, "country"), ({"asn": -1}, "asn"),
    ({"asn": "64500"}, "asn"), ({"base_url": "ftp://x"}, "base_url"), ({"capacity": {"ssd": "1TB"}}, "capacity.ssd"),
    ({"link_capacity_bps": 1.5}, "link_capacity_bps"), ({"site": ""}, "site"),
])
async def test_register_validation(control, change, field):
    status, err, _ = await control.call("POST", "/api/v1/appliances", {**b.appliance(), **change})
    assert status == 422 and err["error"]["field"] == field


async def test_update_rotate_delete(control):
    old = await register(control)
    status, body, _ = await control.call("PUT", "/api/v1/appliances/isp1-a", b.appliance(hdd=5))
    assert status == 200 and body["capacity"]["hdd"] == 5
    assert (await control.call("PUT", "/api/v1/appliances/nope", {**b.appliance(), "id": "nope"}))[0] == 404
    status, body, _ = await control.call("POST", "/api/v1/appliances/isp1-a/token")
    new = body["token"]
    assert status == 200 and new != old
    assert (await control.call("POST", "/api/v1/appliances/isp1-a/report", b.report(), token=old))[0] == 403
    assert (await control.call("POST", "/api/v1/appliances/isp1-a/report", b.report(), token=new))[0] == 200
    assert (await control.call("POST", "/api/v1/appliances/nope/token"))[0] == 404
    assert (await control.call("DELETE", "/api/v1/appliances/isp1-a"))[0] == 204
    assert (await control.call("GET", "/api/v1/appliances/isp1-a"))[0] == 404
    assert (await control.call("DELETE", "/api/v1/appliances/isp1-a"))[0] == 404


async def test_report_auth(control):
    token = await register(control)
    other = await register(control, aid="isp1-b")
    path = "/api/v1/appliances/isp1-a/report"
    status, err, _ = await control.call("POST", path, b.report(), token=None)
    assert status == 401 and err["error"]["code"] == "unauthenticated"
    assert (await control.call("POST", path, b.report(), token=other))[0] == 403
    # The operator is not the appliance: reports come only from the appliance itself.
    assert (await control.call("POST", path, b.report()))[0] == 403
    # Unknown appliance: 403 for a stranger (ids are not revealed), 404 for the operator.
    assert (await control.call("POST", "/api/v1/appliances/ghost/report", b.report("ghost"), token=token))[0] == 403
    assert (await control.call("POST", "/api/v1/appliances/ghost/report", b.report("ghost")))[0] == 404
    assert (await control.call("POST", path, b.report(), token=token))[1] == {"accepted": True, "generation": None}


async def test_full_then_delta_then_unknown_generation(control):
    token = await register(control)
    path = "/api/v1/appliances/isp1-a/report"
    inv = b.full(40, b.item("t1/a.mp4"), b.item("t1/b.mp4", tier="hdd"))
    status, body, _ = await control.call("POST", path, b.report(inventory=inv), token=token)
    assert (status, body) == (200, {"accepted": True, "generation": 40})
    moved = b.item("t1/b.mp4", tier="ssd")
    d = b.delta(40, 42, added=[b.item("t2/c.mp4"), moved], removed=["t1/a.mp4"])
    status, body, _ = await control.call("POST", path, b.report(inventory=d), token=token)
    assert (status, body) == (200, {"accepted": True, "generation": 42})
    snap = (await control.call("GET", "/api/v1/fleet/snapshot"))[1]
    assert snap["appliances"][0]["keys"] == ["t1/b.mp4", "t2/c.mp4"]
    # A delta against a generation the control plane does not hold → 409, nothing applied.
    stale = b.delta(40, 43, removed=["t1/b.mp4"])
    status, err, _ = await control.call("POST", path, b.report(inventory=stale), token=token)
    assert status == 409 and err["error"]["code"] == "unknown_generation"
    assert err["error"]["field"] == "inventory.base_generation"
    control.clock.advance(2)
    assert (await control.call("GET", "/api/v1/fleet/snapshot"))[1]["appliances"][0]["keys"] == [
        "t1/b.mp4", "t2/c.mp4"]
    # The appliance answers with a full snapshot, which is always accepted.
    status, body, _ = await control.call("POST", path, b.report(inventory=b.full(43)), token=token)
    assert body["generation"] == 43
    # A report without inventory updates health/load only and echoes the generation held.
    status, body, _ = await control.call("POST", path, b.report(), token=token)
    assert (status, body) == (200, {"accepted": True, "generation": 43})


async def test_delta_before_any_full_is_409(control):
    token = await register(control)
    status, err, _ = await control.call("POST", "/api/v1/appliances/isp1-a/report",
                                        b.report(inventory=b.delta(0, 1)), token=token)
    assert status == 409 and err["error"]["code"] == "unknown_generation"


@pytest.mark.parametrize("mutate,field", [
    (lambda r: r.update(version=2), "version"),
    (lambda r: r.update(appliance_id="isp1-b"), "appliance_id"),
    (lambda r: r["health"].update(status="fine"), "health.status"),
    (lambda r: r["load"].update(ratio="high"), "load.ratio"),
    (lambda r: r.update(sent_at="now"), "sent_at"),
    (lambda r: r.update(inventory={"kind": "full", "generation": 1, "items": [{"key": "/etc/passwd", "size": 1,
                                                                                "sha256": "0" * 64, "tier": "ssd"}]}),
     "inventory.items[0].key"),
    (lambda r: r.update(inventory={"kind": "full", "generation": 1, "items": [
        {"key": "t1/a", "size": 1, "sha256": "XYZ", "tier": "ssd"}]}), "inventory.items[0].sha256"),
    (lambda r: r.update(inventory={"kind": "delta", "base_generation": 5, "generation": 4}), "inventory.generation"),
    (lambda r: r.update(prefixes={"ipv4": ["2001:db8::/32"]}), "prefixes.ipv4[0]"),
    (lambda r: r.update(prefixes={"ipv4": ["10.0.0.1/8"]}), "prefixes.ipv4[0]"),
    (lambda r: r.pop("health"), "health"),
])
async def test_report_validation(control, mutate, field):
    token = await register(control)
    body = b.report()
    mutate(body)
    status, err, _ = await control.call("POST", "/api/v1/appliances/isp1-a/report", body, token=token)
    assert status == 422 and err["error"]["field"] == field, err


async def test_report_bad_json_and_size(make_control):
    from dataclasses import replace

    from control_plane.config import FleetConfig
    control = await make_control(fleet=replace(FleetConfig(), max_report_size=2000))
    token = await register(control)
    path = "/api/v1/appliances/isp1-a/report"
    assert (await control.call("POST", path, raw=b"{nope", token=token))[0] == 400
    big = b.report(inventory=b.full(1, *[b.item(f"t{i}/file.mp4") for i in range(50)]))
    status, err, _ = await control.call("POST", path, big, token=token)
    assert status == 413 and err["error"]["code"] == "body_too_large"


async def test_snapshot_etag_and_staleness(control):
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    await control.call("POST", "/api/v1/titles/t1/renditions", b.rendition("t1/avc-720p.mp4"))
    await control.call("POST", "/api/v1/titles/t1/renditions", b.rendition("t1/enc.mp4", status="encoding"))
    token = await register(control)
    await register(control, aid="origin-1", kind="origin", site="origin")
    path = "/api/v1/appliances/isp1-a/report"
    await control.call("POST", path, b.report(inventory=b.full(1, b.item("t1/avc-720p.mp4")), ratio=0.25),
                       token=token)
    status, snap, headers = await control.call("GET", "/api/v1/fleet/snapshot")
    assert status == 200 and headers["ETag"] == f'"{snap["generation"]}"'
    assert snap["version"] == 1 and snap["stale_after_s"] == 90
    assert snap["titles"] == {"t1": ["t1/avc-720p.mp4"]}
    by_id = {a["id"]: a for a in snap["appliances"]}
    a = by_id["isp1-a"]
    assert (a["healthy"], a["fresh"], a["load_ratio"], a["keys"]) == (True, True, 0.25, ["t1/avc-720p.mp4"])
    assert a["prefixes"] == {"ipv4": ["203.0.113.0/24"], "ipv6": ["2001:db8::/32"]}
    assert a["last_report_at"] == "2027-01-15T08:00:00Z" and a["holds_all"] is False
    assert by_id["origin-1"]["holds_all"] is True and by_id["origin-1"]["healthy"] is True
    # Conditional GET.
    status, _, h304 = await control.call("GET", "/api/v1/fleet/snapshot", headers={"If-None-Match": headers["ETag"]})
    assert status == 304 and h304["ETag"] == headers["ETag"]
    status, _, _ = await control.call("GET", "/api/v1/fleet/snapshot", headers={"If-None-Match": '"other", W/'
                                                                                 + headers["ETag"]})
    assert status == 304
    # Exactly at the limit it is still fresh; one second later it is out of rotation.
    control.clock.advance(90)
    status, snap2, _ = await control.call("GET", "/api/v1/fleet/snapshot", headers={"If-None-Match": headers["ETag"]})
    assert status == 304
    control.clock.advance(1)
    status, snap3, headers3 = await control.call("GET", "/api/v1/fleet/snapshot",
                                                 headers={"If-None-Match": headers["ETag"]})
    assert status == 200 and headers3["ETag"] != headers["ETag"]
    a = {x["id"]: x for x in snap3["appliances"]}["isp1-a"]
    assert (a["healthy"], a["fresh"]) == (False, False)
    assert {x["id"]: x for x in snap3["appliances"]}["origin-1"]["healthy"] is True
    # A failed report is fresh but not healthy.
    await control.call("POST", path, b.report(status="failed"), token=token)
    control.clock.advance(2)
    snap4 = (await control.call("GET", "/api/v1/fleet/snapshot"))[1]
    a = {x["id"]: x for x in snap4["appliances"]}["isp1-a"]
    assert (a["healthy"], a["fresh"]) == (False, True)


async def test_metrics_name_each_appliance_its_last_report_and_rotation(control):
    token = await register(control)
    await register(control, aid="isp2-a")                       # never reports
    await register(control, aid="origin-1", kind="origin", site="origin")
    await control.call("POST", "/api/v1/appliances/isp1-a/report", b.report(), token=token)

    async def series() -> dict[str, float]:
        status, text, _ = await control.call("GET", "/metrics", token=None)
        assert status == 200
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.decode().splitlines()
                if line.startswith("oca_control_appliance_")}

    got = await series()
    assert got['oca_control_appliance_last_report_timestamp_seconds{appliance="isp1-a",kind="embedded"}'] == T0
    assert not any('appliance="isp2-a"' in k for k in got if "last_report" in k)
    assert {k: v for k, v in got.items() if "in_rotation" in k} == {
        'oca_control_appliance_in_rotation{appliance="isp1-a",kind="embedded"}': 1.0,
        'oca_control_appliance_in_rotation{appliance="isp2-a",kind="embedded"}': 0.0,
        'oca_control_appliance_in_rotation{appliance="origin-1",kind="origin"}': 1.0}
    control.clock.advance(91)                                   # past fleet.stale_after (90 s)
    assert (await series())['oca_control_appliance_in_rotation{appliance="isp1-a",kind="embedded"}'] == 0.0


async def test_snapshot_auth_and_service_token(control):
    assert (await control.call("GET", "/api/v1/fleet/snapshot", token=None))[0] == 401
    assert (await control.call("GET", "/api/v1/fleet/snapshot", token="nope"))[0] == 403
    from control_plane import credentials
    from control_plane.db import tokens
    async with control.ctx.engine.begin() as conn:
        await tokens.insert(conn, "steering", "service", credentials.hash_token("svc-token"), 0.0)
    assert (await control.call("GET", "/api/v1/fleet/snapshot", token="svc-token"))[0] == 200
    # A service token reads; it does not write.
    assert (await control.call("POST", "/api/v1/titles", b.title(), token="svc-token"))[0] == 403


async def test_fleet_list_shows_holdings(control):
    token = await register(control)
    await control.call("POST", "/api/v1/appliances/isp1-a/report",
                       b.report(inventory=b.full(1, b.item("t1/a.mp4", 100), b.item("t1/b.mp4", 50))), token=token)
    status, body, _ = await control.call("GET", "/api/v1/appliances")
    a = body["appliances"][0]
    assert status == 200 and (a["files_held"], a["bytes_held"], a["healthy"]) == (2, 150, True)
    control.clock.advance(30)
    status, one, _ = await control.call("GET", "/api/v1/appliances/isp1-a")
    assert one["last_report_age_s"] == 30 and one["health"]["status"] == "ok" and one["load"]["ratio"] == 0.1
