"""Titles, renditions and licences over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.integration.control_plane import builders as b


async def test_title_crud(control):
    status, body, headers = await control.call("POST", "/api/v1/titles", b.title("t1", year=2008))
    assert status == 201 and body["year"] == 2008 and headers["Location"] == "/api/v1/titles/t1"
    assert (await control.call("POST", "/api/v1/titles", b.title("t1")))[0] == 409
    status, body, _ = await control.call("GET", "/api/v1/titles/t1")
    assert status == 200 and body["name"] == "Title t1" and body["renditions"] == []
    status, body, _ = await control.call("PATCH", "/api/v1/titles/t1", {"synopsis": "A rabbit."})
    assert status == 200 and body["synopsis"] == "A rabbit." and body["year"] == 2008
    status, body, _ = await control.call("PUT", "/api/v1/titles/t2", b.title("t2"))
    assert status == 201
    status, body, _ = await control.call("PUT", "/api/v1/titles/t2", b.title("t2", name="Renamed"))
    assert status == 200 and body["name"] == "Renamed"
    status, body, _ = await control.call("GET", "/api/v1/titles?limit=1")
    assert [t["id"] for t in body["titles"]] == ["t1"] and body["next"] == "t1"
    status, body, _ = await control.call("GET", "/api/v1/titles?after=t1")
    assert [t["id"] for t in body["titles"]] == ["t2"] and body["next"] is None
    assert (await control.call("DELETE", "/api/v1/titles/t2"))[0] == 204
    assert (await control.call("GET", "/api/v1/titles/t2"))[0] == 404
    assert (await control.call("DELETE", "/api/v1/titles/t2"))[0] == 404


@pytest.mark.parametrize("body,field,status", [
    ({"id": "t1", "type": "movie", "name": "x"}, "language", 422),
    ({"id": "t1", "type": "film", "name": "x", "language": "en"}, "type", 422),
    ({"id": "t 1", "type": "movie", "name": "x", "language": "en"}, "id", 422),
    ({"id": "t1", "type": "movie", "name": "x", "language": "en", "year": "2008"}, "year", 422),
    ({"id": "t1", "type": "movie", "name": "x", "language": "en", "year": True}, "year", 422),
    ({"id": "t1", "type": "movie", "name": "x", "language": "en", "colour": "red"}, "colour", 422),
    (["not", "an", "object"], "(body)", 422),
])
async def test_title_validation(control, body, field, status):
    got, err, _ = await control.call("POST", "/api/v1/titles", body)
    assert got == status
    assert err["error"]["field"] == field and err["error"]["code"] and err["error"]["message"]


async def test_bad_json_media_type_and_oversize(control):
    status, err, _ = await control.call("POST", "/api/v1/titles", raw=b'{"id": ')
    assert status == 400 and err["error"]["code"] == "bad_json"
    status, err, _ = await control.call("POST", "/api/v1/titles", raw=b"id=t1",
                                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and err["error"]["code"] == "unsupported_media_type"
    huge = b.title("t1", synopsis="x" * (2 * 1024 * 1024))
    status, err, _ = await control.call("POST", "/api/v1/titles", huge)
    assert status == 413 and err["error"]["code"] == "body_too_large"


async def test_chunked_oversize_body_is_refused(control):
    async def chunks():
        for _ in range(40):
            yield b" " * 65536

    headers = {**control.auth(), "Content-Type": "application/json"}
    async with control.session.post(control.url + "/api/v1/titles", data=chunks(), headers=headers) as r:
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "body_too_large"


async def test_auth_is_required_and_checked(control):
    status, err, headers = await control.call("POST", "/api/v1/titles", b.title(), token=None)
    assert status == 401 and err["error"]["code"] == "unauthenticated" and "Bearer" in headers["WWW-Authenticate"]
    status, err, _ = await control.call("POST", "/api/v1/titles", b.title(), token="wrong")
    assert status == 403 and err["error"]["code"] == "forbidden"
    status, _, _ = await control.call("GET", "/api/v1/titles", headers={"Authorization": "Basic abc"}, token=None)
    assert status == 401


async def test_renditions(control):
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    status, body, _ = await control.call("POST", "/api/v1/titles/t1/renditions", b.rendition("t1/avc-720p.mp4"))
    assert status == 201 and body["title_id"] == "t1"
    assert (await control.call("POST", "/api/v1/titles/t1/renditions", b.rendition("t1/avc-720p.mp4")))[0] == 409
    assert (await control.call("POST", "/api/v1/titles/nope/renditions", b.rendition("nope/a.mp4")))[0] == 404
    status, err, _ = await control.call("POST", "/api/v1/titles/t1/renditions", b.rendition("t1/../x.mp4"))
    assert status == 422 and err["error"]["field"] == "key"
    status, err, _ = await control.call("POST", "/api/v1/titles/t1/renditions",
                                        {"key": "t1/a.mp4", "kind": "video", "codec": "avc1", "status": "ready"})
    assert status == 422 and err["error"]["field"] == "size"
    status, body, _ = await control.call("POST", "/api/v1/titles/t1/renditions",
                                         {"key": "t1/aac.mp4", "kind": "audio", "codec": "mp4a.40.2"})
    assert status == 201 and body["status"] == "encoding"
    status, body, _ = await control.call("PATCH", "/api/v1/renditions/t1/aac.mp4",
                                         {"status": "ready", "size": 10, "sha256": b.sha("x")})
    assert status == 200 and body["status"] == "ready"
    status, body, _ = await control.call("GET", "/api/v1/titles/t1/renditions")
    assert [r["key"] for r in body["renditions"]] == ["t1/aac.mp4", "t1/avc-720p.mp4"]
    assert (await control.call("GET", "/api/v1/renditions/t1/aac.mp4"))[1]["size"] == 10
    assert (await control.call("DELETE", "/api/v1/renditions/t1/aac.mp4"))[0] == 204
    assert (await control.call("GET", "/api/v1/renditions/t1/aac.mp4"))[0] == 404
    assert (await control.call("PATCH", "/api/v1/renditions/t1/aac.mp4", {"status": "failed"}))[0] == 404
    # Deleting the title takes its renditions with it.
    assert (await control.call("DELETE", "/api/v1/titles/t1"))[0] == 204
    assert (await control.call("GET", "/api/v1/renditions/t1/avc-720p.mp4"))[0] == 404


async def test_licences(control):
    await control.call("POST", "/api/v1/titles", b.title("t1"))
    lic = {"region": "DE", "start": "2027-01-01T00:00:00+01:00", "end": "2027-02-01T00:00:00Z"}
    status, body, headers = await control.call("POST", "/api/v1/titles/t1/licenses", lic)
    assert status == 201 and body["start"] == "2026-12-31T23:00:00Z" and body["exclusive"] is False
    assert headers["Location"] == "/api/v1/titles/t1/licenses/DE"
    status, err, _ = await control.call("POST", "/api/v1/titles/t1/licenses", lic)
    assert status == 409 and err["error"]["code"] == "license_exists"
    status, body, _ = await control.call("PUT", "/api/v1/titles/t1/licenses/DE", {**lic, "exclusive": True})
    assert status == 200 and body["exclusive"] is True
    status, body, _ = await control.call("PUT", "/api/v1/titles/t1/licenses/FR", {"start": "2027-01-01T00:00:00Z"})
    assert status == 201 and body["region"] == "FR" and body["end"] is None
    status, body, _ = await control.call("GET", "/api/v1/titles/t1/licenses")
    assert [x["region"] for x in body["licenses"]] == ["DE", "FR"]
    for bad, field in (({"region": "de", "start": "2027-01-01T00:00:00Z"}, "region"),
                       ({"region": "DE", "start": "2027-01-01T00:00:00"}, "start"),
                       ({"region": "DE", "start": "yesterday"}, "start"),
                       ({"region": "DE", "start": "2027-01-02T00:00:00Z", "end": "2027-01-01T00:00:00Z"}, "end"),
                       ({"region": "DE", "start": "2027-01-01T00:00:00Z", "exclusive": "yes"}, "exclusive")):
        status, err, _ = await control.call("PUT", "/api/v1/titles/t1/licenses/DE", bad)
        assert status == 422 and err["error"]["field"] == field, bad
    # Playability at the edges of [start, end) — the control plane's clock is injected.
    q = "/api/v1/titles/t1/playability?country=DE&at="
    assert (await control.call("GET", q + "2026-12-31T23:00:00Z"))[1]["playable"] is True
    assert (await control.call("GET", q + "2027-02-01T00:00:00Z"))[1]["reason"] == "Expired"
    assert (await control.call("GET", q + "2026-12-31T22:59:59Z"))[1]["reason"] == "NotYet"
    assert (await control.call("GET", "/api/v1/titles/t1/playability?country=US"))[1]["reason"] == "NotLicensed"
    assert (await control.call("GET", "/api/v1/titles/t1/licenses/XX"))[0] == 404
    assert (await control.call("GET", "/api/v1/titles/t1/licenses/germany"))[0] == 400
    assert (await control.call("GET", "/api/v1/titles/nope/licenses"))[0] == 404
    assert (await control.call("DELETE", "/api/v1/titles/t1/licenses/FR"))[0] == 204
    assert (await control.call("DELETE", "/api/v1/titles/t1/licenses/FR"))[0] == 404


async def test_errors_are_json_never_tracebacks(control):
    status, err, _ = await control.call("GET", "/api/v1/no-such-thing")
    assert status == 404 and err == {"error": {"code": "not_found", "message": "Not Found", "field": None}}
    status, err, headers = await control.call("DELETE", "/api/v1/titles")
    assert status == 405 and err["error"]["code"] == "method_not_allowed" and "GET" in headers["Allow"]
    status, err, _ = await control.call("GET", "/api/v1/titles?limit=abc")
    assert status == 400 and err["error"]["field"] == "limit"


async def test_openapi_lists_every_route(control):
    status, doc, _ = await control.call("GET", "/api/v1/openapi.json", token=None)
    assert status == 200 and doc["openapi"].startswith("3.1")
    for resource in control.app.router.resources():
        path = resource.canonical
        methods = {r.method.lower() for r in resource if r.method != "HEAD"}
        assert path in doc["paths"], path
        assert methods <= set(doc["paths"][path]), (path, methods)
    for path, ops in doc["paths"].items():
        for method, operation in ops.items():
            for ref_holder in _refs(operation):
                name = ref_holder.rsplit("/", 1)[-1]
                assert name in doc["components"]["schemas"], (path, method, name)


def _refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


async def test_metrics_and_health(control):
    await control.call("GET", "/api/v1/titles")
    status, text, headers = await control.call("GET", "/metrics", token=None)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b'oca_control_http_responses_total{code="200",method="GET",route="/api/v1/titles"}' in text
    assert (await control.call("GET", "/healthz", token=None))[0] == 200
    status, body, _ = await control.call("GET", "/readyz", token=None)
    assert status == 200 and body["status"] == "ready"
