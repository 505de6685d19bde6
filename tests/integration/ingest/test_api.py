"""Ingest and playback-manifest APIs on a real control plane (SQLite), real ffmpeg, real files."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urljoin, urlsplit

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser
from sqlalchemy import select

from control_plane.ingest_jobs import ingest_jobs
from oca.tokens import Key as TokenKey
from oca.tokens import KeyRing, Ok, verify
from tests.integration.control_plane import builders as b

from .conftest import KEY_ID, SECRET, start, stop, wait_for_state
from .samples import make_master, write_srt

DE = {"X-Client-Country": "DE"}
RING = KeyRing([TokenKey(KEY_ID, SECRET.encode())])


def ingest_body(title_id, master, **extra):
    return {"titleId": title_id, "masterFileUrl": f"file://{master}", **extra}


async def register_fleet(cp, keys):
    """An exchange point holding the title's files and an origin (holds everything)."""
    status, body, _ = await cp.call("POST", "/api/v1/appliances", b.appliance("ixp-1", kind="ixp", port=8081))
    assert status == 201, body
    token = body["token"]
    items = [{"key": k, "size": 1, "sha256": "0" * 64, "tier": "ssd"} for k in keys]
    report = b.report("ixp-1", inventory=b.full(1, *items))
    report["sent_at"] = "2026-11-25T17:00:00Z"
    status, body, _ = await cp.call("POST", "/api/v1/appliances/ixp-1/report", report, token=token)
    assert status == 200, body
    status, body, _ = await cp.call("POST", "/api/v1/appliances", b.appliance("origin-1", kind="origin", port=8082))
    assert status == 201, body


async def test_ingest_to_manifest(cp, tmp_path):
    master = make_master(tmp_path / "m.mp4", seconds=6, size="640x360", subtitles=True)
    assert (await cp.call("POST", "/api/v1/titles", b.title("t1")))[0] == 201
    lic = {"region": "DE", "start": "2026-01-01T00:00:00Z"}
    assert (await cp.call("POST", "/api/v1/titles/t1/licenses", lic))[0] == 201

    status, body, _ = await cp.call("GET", "/api/v1/playback/t1/manifest", token=None, headers=DE)
    assert status == 409 and body["error"]["code"] == "no_ready_rendition"

    srt = write_srt(tmp_path / "en.srt")
    status, body, headers = await cp.call("POST", "/api/v1/content/ingest", ingest_body(
        "t1", master, metadata={"name": "Test"}, subtitles=[{"url": f"file://{srt}", "language": "en"}]))
    assert status == 202 and body["state"] == "queued" and headers["Location"] == body["statusUrl"]
    done = await wait_for_state(cp, "t1", ("done", "failed"))
    assert done["job"]["state"] == "done", done
    assert "ladder" in done["job"]["info"] and done["job"]["percent"] == 100.0
    outputs = done["renditions"]
    assert {o["kind"] for o in outputs} == {"video", "audio", "subtitle"}
    assert all(o["state"] == "ready" and o["percent"] == 100.0 for o in outputs)

    status, title, _ = await cp.call("GET", "/api/v1/titles/t1")
    files = {r["key"]: r for r in title["renditions"]}
    assert set(files) == {o["key"] for o in outputs}
    for key, r in files.items():
        data = (tmp_path / "content" / key).read_bytes()
        assert r["status"] == "ready" and r["size"] == len(data) and r["sha256"] == hashlib.sha256(data).hexdigest()
    assert title["duration_s"] == 6

    status, body, _ = await cp.call("GET", "/api/v1/playback/t1/manifest", token=None, headers=DE)
    assert status == 503 and body["error"]["code"] == "no_appliance"

    await register_fleet(cp, list(files))
    status, text, headers = await cp.call("GET", "/api/v1/playback/t1/manifest", token=None, headers=DE)
    assert status == 200, text
    assert headers["Content-Type"].startswith("application/dash+xml")
    assert headers["Access-Control-Allow-Origin"] == "*"
    mpd = MPEGDASHParser.parse(text.decode())
    video = mpd.periods[0].adaptation_sets[0]
    rep = video.representations[-1]
    assert [u.service_location for u in rep.base_urls] == ["ixp-1", "origin-1"]
    url = urlsplit(rep.base_urls[0].base_url_value)
    assert url.netloc == "10.0.0.5:8081"
    assert isinstance(verify(RING, url.path, url.query, 0), Ok)
    assert {a.content_type for a in mpd.periods[0].adaptation_sets} == {"video", "audio", "text"}

    status, text, _ = await cp.call("GET", "/api/v1/playback/t1/manifest?format=hls", token=None, headers=DE)
    assert status == 200
    master_pl = m3u8.loads(text.decode())
    assert [p.stream_info.pathway_id for p in master_pl.playlists][0] == "ixp-1"
    media_url = urljoin(cp.url + "/api/v1/playback/t1/manifest", master_pl.playlists[0].uri)
    async with cp.session.get(media_url) as r:
        assert r.status == 200
        media = m3u8.loads(await r.text())
    first = urlsplit(media.segments[0].uri)
    assert first.netloc == "10.0.0.5:8081" and media.segment_map[0].byterange.endswith("@0")
    assert isinstance(verify(RING, first.path, first.query, 0), Ok)


async def test_manifest_errors(cp):
    assert (await cp.call("GET", "/api/v1/playback/nope/manifest", token=None, headers=DE))[0] == 404
    assert (await cp.call("POST", "/api/v1/titles", b.title("t2")))[0] == 201
    status, body, _ = await cp.call("GET", "/api/v1/playback/t2/manifest", token=None, headers=DE)
    assert status == 451 and body["error"]["code"] == "not_licensed"
    await cp.call("POST", "/api/v1/titles/t2/licenses", {"region": "DE", "start": "2099-01-01T00:00:00Z"})
    status, body, _ = await cp.call("GET", "/api/v1/playback/t2/manifest", token=None, headers=DE)
    assert status == 451 and body["error"]["code"] == "licence_not_started"
    status, body, _ = await cp.call("GET", "/api/v1/playback/t2/manifest", token=None)  # country unknown
    assert status == 451
    status, body, _ = await cp.call("GET", "/api/v1/playback/t2/manifest?format=smooth", token=None, headers=DE)
    assert status == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [({"masterFileUrl": "file:///x"}, "titleId"), ({"titleId": "a/b", "masterFileUrl": "file:///x"}, "titleId"),
     ({"titleId": "t", "masterFileUrl": "ftp://x/y"}, "masterFileUrl"),
     ({"titleId": "t", "masterFileUrl": "file:///x", "extra": 1}, "extra"),
     ({"titleId": "t", "masterFileUrl": "file:///x", "metadata": {"type": "opera"}}, "metadata.type")],
)
async def test_ingest_request_validation(cp, body, field):
    status, answer, _ = await cp.call("POST", "/api/v1/content/ingest", body)
    assert status == 422 and answer["error"]["field"] == field, answer


async def test_ingest_needs_operator(cp):
    status, _, _ = await cp.call("POST", "/api/v1/content/ingest", {"titleId": "t"}, token=None)
    assert status == 401


async def test_non_video_fails_clearly(cp, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert (await cp.call("POST", "/api/v1/content/ingest", ingest_body("t3", text)))[0] == 202
    done = await wait_for_state(cp, "t3", ("done", "failed"))
    assert done["job"]["state"] == "failed" and "not a media file" in done["job"]["error"]


async def test_cancel_running_job(cp, tmp_path):
    master = make_master(tmp_path / "long.mp4", seconds=30, size="1280x720", audio=False)
    status, body, _ = await cp.call("POST", "/api/v1/content/ingest", ingest_body("t4", master))
    await wait_for_state(cp, "t4", ("running",))
    status, answer, _ = await cp.call("POST", f"/api/v1/content/jobs/{body['jobId']}/cancel")
    assert status == 200 and answer["state"] == "cancelled"
    final = await wait_for_state(cp, "t4", ("cancelled",))
    assert all(o["state"] in ("cancelled", "ready") for o in final["renditions"])
    status, _, _ = await cp.call("POST", f"/api/v1/content/jobs/{body['jobId']}/cancel")
    assert status == 409
    assert (await cp.call("POST", "/api/v1/content/jobs/nope/cancel"))[0] == 404


async def test_interrupted_job_resumes_after_restart(tmp_path):
    master = make_master(tmp_path / "m.mp4", seconds=12, size="960x540", audio=True)
    cp = await start(tmp_path, max_ffmpeg=1)
    try:
        status, body, _ = await cp.call("POST", "/api/v1/content/ingest", ingest_body("t5", master))
        first = await wait_for_state(cp, "t5", ("running", "done"),
                                     until=lambda s: any(o["state"] == "ready" for o in s["renditions"]))
        if first["job"]["state"] == "done":
            pytest.fail("the job finished before the restart; make the master longer")
    finally:
        await stop(cp)
    ready_before = {o["name"]: o["sha256"] for o in first["renditions"] if o["state"] == "ready"}
    engine_url = f"sqlite:///{tmp_path / 'control.db'}"
    from sqlalchemy import create_engine

    with create_engine(engine_url).connect() as conn:
        assert conn.execute(select(ingest_jobs.c.state)).scalar_one() == "queued"

    cp = await start(tmp_path, max_ffmpeg=1)
    try:
        done = await wait_for_state(cp, "t5", ("done", "failed"))
        assert done["job"]["state"] == "done" and done["job"]["attempts"] == 2, json.dumps(done)
        after = {o["name"]: o["sha256"] for o in done["renditions"]}
        for name, sha in ready_before.items():
            assert after[name] == sha  # kept, not encoded again
    finally:
        await stop(cp)


async def test_replicas_leave_jobs_to_the_one_that_runs_them(tmp_path):
    """Replicas share the database; only `run_jobs` runs jobs, whichever replica took the request."""
    runner = await start(tmp_path, max_ffmpeg=1)
    replica = await start(tmp_path, run_jobs=False)
    try:
        text = tmp_path / "notes.mp4"
        text.write_text("not a video")
        assert (await replica.call("POST", "/api/v1/content/ingest", ingest_body("r1", text)))[0] == 202
        done = await wait_for_state(replica, "r1", ("done", "failed"))
        assert done["job"]["state"] == "failed" and done["job"]["attempts"] == 1

        master = make_master(tmp_path / "long.mp4", seconds=30, size="1280x720", audio=False)
        status, body, _ = await replica.call("POST", "/api/v1/content/ingest", ingest_body("r2", master))
        assert status == 202
        assert (await wait_for_state(runner, "r2", ("running",)))["job"]["state"] == "running"
        late = await start(tmp_path, run_jobs=False)     # a replica starting now must not requeue it
        await stop(late)
        from sqlalchemy import create_engine

        with create_engine(f"sqlite:///{tmp_path / 'control.db'}").connect() as conn:
            row = conn.execute(select(ingest_jobs.c.state, ingest_jobs.c.attempts)
                               .where(ingest_jobs.c.id == body["jobId"])).one()
        assert tuple(row) == ("running", 1)
        status, answer, _ = await replica.call("POST", f"/api/v1/content/jobs/{body['jobId']}/cancel")
        assert status == 202 and answer["state"] == "cancelling"
        final = await wait_for_state(runner, "r2", ("cancelled",))
        assert final["job"]["state"] == "cancelled" and final["job"]["attempts"] == 1
        assert all(o["state"] in ("cancelled", "ready") for o in final["renditions"])
        assert (await replica.call("POST", f"/api/v1/content/jobs/{body['jobId']}/cancel"))[0] == 409
    finally:
        await stop(replica)
        await stop(runner)
