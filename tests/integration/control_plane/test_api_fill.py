"""Fill manifests over HTTP: ranking from real play events, licences, tiers, signed peer sources, ETag."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from control_plane.config import FillConfig, GeoConfig, SigningConfig
from oca import tokens
from tests.integration.control_plane import builders as b

DAY = 86400.0
SECRET = "s" * 40


@pytest.fixture
async def fleet_control(make_control, tmp_path):
    ring = tmp_path / "keys.toml"
    ring.write_text(f'[[keys]]\nid = "k1"\nsecret = "{SECRET}"\n')
    control = await make_control(
        fill=replace(FillConfig(), url_ttl=DAY, licence_window=DAY, inputs_cache=0.0),
        signing=SigningConfig(key_ring=ring),
        geoip=GeoConfig(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)))
    c = control.clock.t
    iso = "2027-01-01T00:00:00Z"
    # t1..t5: 2 files each (t5: one big file), all licensed in DE except t3 (FR only);
    # t4's DE licence ends in 12 h, inside the fill window.
    for i in range(1, 6):
        await control.call("POST", "/api/v1/titles", b.title(f"t{i}"))
        sizes = [1000, 500] if i != 5 else [5000]
        for n, size in enumerate(sizes):
            await control.call("POST", f"/api/v1/titles/t{i}/renditions", b.rendition(f"t{i}/r{n}.mp4", size))
        region = "FR" if i == 3 else "DE"
        lic = {"region": region, "start": iso}
        if i == 4:
            from control_plane.validation import format_time
            lic["end"] = format_time(c + DAY / 2)
        await control.call("POST", f"/api/v1/titles/t{i}/licenses", lic)
    await control.call("POST", "/api/v1/titles/t2/renditions", b.rendition("t2/enc.mp4", status="encoding"))
    tokens_by_id = {}
    for aid, kind, site, region, port in (("isp1-a", "embedded", "fra-isp1", "eu-central", 8080),
                                          ("isp1-b", "embedded", "fra-isp1", "eu-central", 8081),
                                          ("ixp-1", "ixp", "fra-ix", "eu-central", 8082),
                                          ("far-1", "embedded", "nyc", "us-east", 8083),
                                          ("origin-1", "origin", "origin", "eu-central", 8084)):
        status, body, _ = await control.call("POST", "/api/v1/appliances", b.appliance(
            aid, kind, site, region, ssd=1600, hdd=3000, port=port))
        tokens_by_id[aid] = body["token"]
    control.tokens = tokens_by_id
    held = b.full(1, b.item("t1/r0.mp4"), b.item("t1/r1.mp4"), b.item("t2/r0.mp4"))
    for aid, ratio in (("isp1-b", 0.5), ("ixp-1", 0.1), ("far-1", 0.0)):
        status, _, _ = await control.call("POST", f"/api/v1/appliances/{aid}/report",
                                          b.report(aid, inventory=held, ratio=ratio), token=tokens_by_id[aid])
        assert status == 200
    return control


async def plays(control, title: str, n: int, country: str = "DE") -> None:
    for _ in range(n):
        status, _, _ = await control.call("POST", f"/api/v1/playback/{title}/event",
                                          {"type": "play", "positionMs": 0}, token=None,
                                          headers={"X-Client-Country": country})
        assert status == 204
    assert await control.flusher.flush_once()


async def manifest(control, aid="isp1-a", token=None, **kw):
    return await control.call("GET", f"/api/v1/appliances/{aid}/fill-manifest",
                              token=token or control.tokens[aid], **kw)


async def test_manifest_ranks_places_and_signs(fleet_control):
    c = fleet_control
    await plays(c, "t1", 5)
    await plays(c, "t2", 9)
    await plays(c, "t3", 50)          # popular, but not licensed in DE
    await plays(c, "t4", 20)          # popular, but its licence ends inside the fill window
    await plays(c, "t5", 2)
    await plays(c, "t1", 100, country="FR")   # other regions do not count
    status, doc, headers = await manifest(c)
    assert status == 200 and doc["version"] == 1 and doc["appliance_id"] == "isp1-a" and doc["generation"] == 1
    assert headers["ETag"] == '"1"'
    # Candidates t2 (9), t1 (5), t5 (2): head = ceil(3·0.2) = 1 title → SSD; cached = ceil(3·0.8) = 3 titles;
    # t5 (5000 B) does not fit the 3000 B HDD → skipped (the long tail is not placed).
    assert [(i["rank"], i["key"], i["tier"]) for i in doc["items"]] == [
        (1, "t2/r0.mp4", "ssd"), (2, "t2/r1.mp4", "ssd"), (3, "t1/r0.mp4", "hdd"), (4, "t1/r1.mp4", "hdd")]
    first = doc["items"][0]
    assert first["size"] == 1000 and first["sha256"] == b.sha("t2/r0.mp4") and first["title_id"] == "t2"
    # Sources: same-site peer, then same-region peer (the far region is not a source), then origin.
    kinds = [(s["kind"], s.get("appliance_id")) for s in doc["items"][2]["sources"]]
    assert kinds == [("peer", "isp1-b"), ("peer", "ixp-1"), ("origin", None)]
    assert [s["kind"] for s in doc["items"][1]["sources"]] == ["origin"]   # nobody nearby holds t2/r1
    peer = doc["items"][2]["sources"][0]["url"]
    parts = urlsplit(peer)
    assert f"{parts.scheme}://{parts.netloc}" == "http://10.0.0.5:8081" and parts.path == "/t1/r0.mp4"
    ring = tokens.KeyRing([tokens.Key("k1", SECRET.encode())])
    check = tokens.verify(ring, parts.path, parts.query, c.clock.t)
    assert isinstance(check, tokens.Ok)
    assert isinstance(tokens.verify(ring, parts.path, parts.query, c.clock.t + DAY + 1), tokens.Expired)
    assert doc["items"][2]["sources"][2]["url"] == "http://10.0.0.5:8084/t1/r0.mp4"


async def test_a_country_without_views_ranks_by_the_fleets_popularity(fleet_control):
    c = fleet_control
    status, body, _ = await c.call("POST", "/api/v1/appliances", b.appliance("fr-1", country="FR", ssd=1600,
                                                                              hdd=3000, port=8085))
    assert status == 201
    c.tokens["fr-1"] = body["token"]
    await c.call("POST", "/api/v1/titles/t1/licenses", {"region": "FR", "start": "2027-01-01T00:00:00Z"})
    await plays(c, "t1", 3)           # views in DE only; t1 and t3 are licensed in FR
    status, doc, _ = await manifest(c, "fr-1")
    assert status == 200
    # Nothing viewed in FR yet: the fleet's popularity, among FR's licensed titles (t3 unviewed: not placed).
    assert [i["key"] for i in doc["items"]] == ["t1/r0.mp4", "t1/r1.mp4"]
    await plays(c, "t3", 1, country="FR")
    status, doc, _ = await manifest(c, "fr-1")
    assert [i["key"] for i in doc["items"]] == ["t3/r0.mp4", "t3/r1.mp4"]    # FR's own views take over


async def test_generation_etag_and_resigning(fleet_control):
    c = fleet_control
    await plays(c, "t1", 3)
    status, doc, headers = await manifest(c)
    assert doc["generation"] == 1
    status, _, _ = await manifest(c, headers={"If-None-Match": headers["ETag"]})
    assert status == 304
    c.clock.advance(60)
    status, same, _ = await manifest(c)
    assert same == doc                                   # unchanged content: same generation, same URLs
    await plays(c, "t2", 10)                             # ranking changes → new generation
    status, doc2, headers2 = await manifest(c, headers={"If-None-Match": headers["ETag"]})
    assert status == 200 and doc2["generation"] == 2 and headers2["ETag"] == '"2"'
    c.clock.advance(DAY / 2 + 1)                         # half the URL lifetime gone: re-sign
    status, doc3, _ = await manifest(c)
    assert doc3["generation"] == 3
    assert [i["key"] for i in doc3["items"]] == [i["key"] for i in doc2["items"]]


async def test_licence_expiry_drops_titles(fleet_control):
    c = fleet_control
    await plays(c, "t1", 3)
    await plays(c, "t4", 3)
    status, doc, _ = await manifest(c)
    assert {i["title_id"] for i in doc["items"]} == {"t1"}
    # Re-licence t4 for longer: it is placed.
    await c.call("PUT", "/api/v1/titles/t4/licenses/DE", {"start": "2027-01-01T00:00:00Z"})
    status, doc, _ = await manifest(c)
    assert {i["title_id"] for i in doc["items"]} == {"t1", "t4"}


async def test_stale_peers_are_not_sources(fleet_control):
    c = fleet_control
    await plays(c, "t1", 3)
    c.clock.advance(91)
    status, doc, _ = await manifest(c)
    assert [s["kind"] for s in doc["items"][0]["sources"]] == ["origin"]


async def test_manifest_auth_and_errors(fleet_control):
    c = fleet_control
    path = "/api/v1/appliances/isp1-a/fill-manifest"
    assert (await c.call("GET", path, token=None))[0] == 401
    assert (await c.call("GET", path, token=c.tokens["isp1-b"]))[0] == 403
    assert (await c.call("GET", path))[0] == 200                                  # operator may look
    assert (await c.call("GET", "/api/v1/appliances/ghost/fill-manifest"))[0] == 404
    status, err, _ = await manifest(c, "origin-1")
    assert status == 409 and err["error"]["code"] == "origin_has_no_manifest"


async def test_manifest_without_key_ring_lists_only_origins(make_control):
    control = await make_control()
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    await control.call("POST", "/api/v1/titles/t1/renditions", b.rendition("t1/r0.mp4"))
    await control.call("POST", "/api/v1/titles/t1/licenses", {"region": "DE", "start": "2027-01-01T00:00:00Z"})
    tok = {}
    for aid, port in (("isp1-a", 1), ("isp1-b", 2)):
        tok[aid] = (await control.call("POST", "/api/v1/appliances", b.appliance(aid, port=port)))[1]["token"]
    await control.call("POST", "/api/v1/appliances", b.appliance("origin-1", "origin", "origin", port=3))
    await control.call("POST", "/api/v1/appliances/isp1-b/report",
                       b.report("isp1-b", inventory=b.full(1, b.item("t1/r0.mp4"))), token=tok["isp1-b"])
    await control.call("POST", "/api/v1/playback/t1/event", {"type": "play", "positionMs": 0}, token=None)
    assert await control.flusher.flush_once()
    # No GeoIP and no trusted proxy: the view counts for region "unknown", none for DE, so DE ranks by
    # the fleet's popularity. isp1-b holds the file nearby, but without a key ring its URL could not
    # be signed: the origin is the only source.
    status, doc, _ = await manifest(control, token=tok["isp1-a"])
    assert status == 200 and [i["key"] for i in doc["items"]] == ["t1/r0.mp4"]
    assert [s["kind"] for s in doc["items"][0]["sources"]] == ["origin"]


async def test_plan_inputs_are_cached_for_inputs_cache_seconds(make_control):
    control = await make_control(fill=replace(FillConfig(), inputs_cache=30.0),
                                 geoip=GeoConfig(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)))
    for t in ("t1", "t2"):
        await control.call("POST", "/api/v1/titles", b.title(t))
        await control.call("POST", f"/api/v1/titles/{t}/renditions", b.rendition(f"{t}/r0.mp4"))
        await control.call("POST", f"/api/v1/titles/{t}/licenses", {"region": "DE", "start": "2027-01-01T00:00:00Z"})
    token = (await control.call("POST", "/api/v1/appliances", b.appliance(ssd=0)))[1]["token"]
    await plays(control, "t1", 1)
    doc = (await manifest_with(control, token))
    assert [i["title_id"] for i in doc["items"]] == ["t1"]
    await plays(control, "t2", 5)                    # read from SQL again only after 30 s
    assert [i["title_id"] for i in (await manifest_with(control, token))["items"]] == ["t1"]
    control.clock.advance(30)
    assert [i["title_id"] for i in (await manifest_with(control, token))["items"]] == ["t2", "t1"]


async def manifest_with(control, token):
    status, doc, _ = await control.call("GET", "/api/v1/appliances/isp1-a/fill-manifest", token=token)
    assert status == 200
    return doc
