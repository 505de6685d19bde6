"""The ingest pipeline with real ffmpeg: ladder, encodes, packaged single-sidx files, publishing."""

import asyncio
import hashlib

import pytest

from control_plane.encoding import EncodeSettings, FfmpegRunner
from control_plane.ingest import IngestError, OutputStatus, Pipeline
from control_plane.packaging import inspect_file, layout_from_dict
from control_plane.probe import MasterRejected

from .samples import make_master, write_srt


def pipeline(tmp_path, slots=2):
    return Pipeline(tmp_path / "out", tmp_path / "work", FfmpegRunner(), asyncio.Semaphore(slots),
                    EncodeSettings(segment_s=2.0))


class Recorder:
    def __init__(self):
        self.stages, self.updates = [], []

    async def stage(self, name, info):
        self.stages.append((name, info))

    async def update(self, status: OutputStatus):
        self.updates.append(status)


async def test_ingest_produces_aligned_single_file_renditions(tmp_path):
    master = make_master(tmp_path / "m.mp4", seconds=6, size="640x360", subtitles=True)
    rec = Recorder()
    results = await pipeline(tmp_path).run("j1", "t1", f"file://{master}", rec.stage, rec.update,
                                           sidecars=[(str(write_srt(tmp_path / "en.srt")), "en")])
    assert [s for s, _ in rec.stages] == ["fetching", "probing", "analysing", "encoding"]
    kinds = [r.kind for r in results]
    assert kinds.count("video") >= 2 and kinds.count("audio") == 1 and kinds.count("subtitle") == 2
    assert all(r.state == "ready" for r in results)
    videos = [r for r in results if r.kind == "video"]
    assert [v.height for v in videos] == sorted(v.height for v in videos) and videos[-1].height == 360
    starts = None
    for r in results:
        path = tmp_path / "out" / "t1" / r.name
        data = path.read_bytes()
        assert r.size == len(data) and r.sha256 == hashlib.sha256(data).hexdigest()
        if r.kind == "subtitle":
            assert data.startswith(b"WEBVTT")
            continue
        layout = inspect_file(path).layout
        assert layout == layout_from_dict(r.layout)
        assert 2.5 <= len(layout.fragments) <= 4
        assert all(abs(layout.fragment_seconds(f) - 2.0) < 0.1 for f in layout.fragments[:-1])
        if r.kind == "video":
            assert layout.codecs.startswith("avc1.") and r.frame_rate == 25.0
            cuts = [round(sum(layout.fragment_seconds(f) for f in layout.fragments[:i]), 2)
                    for i in range(len(layout.fragments))]
            assert starts is None or cuts == starts  # keyframes aligned across rungs
            starts = cuts
        else:
            assert layout.codecs == "mp4a.40.2" and r.language == "eng"
    assert {r.name for r in results if r.kind == "subtitle"} == {"sub-fra-0.vtt", "sub-en-side0.vtt"}
    percents = [u.percent for u in rec.updates if u.state == "encoding"]
    assert percents and max(percents) > 0
    assert not (tmp_path / "work" / "j1").exists()


async def test_rejects_non_video(tmp_path):
    wav = tmp_path / "a.wav"
    import subprocess

    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=2", str(wav)], check=True)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    rec = Recorder()
    with pytest.raises(MasterRejected, match="no video stream"):
        await pipeline(tmp_path).run("j2", "t2", str(wav), rec.stage, rec.update)
    with pytest.raises(MasterRejected, match="not a media file"):
        await pipeline(tmp_path).run("j3", "t2", f"file://{text}", rec.stage, rec.update)
    with pytest.raises(MasterRejected, match="does not exist"):
        await pipeline(tmp_path).run("j4", "t2", f"file://{tmp_path}/nope.mp4", rec.stage, rec.update)
    with pytest.raises(IngestError, match="one path segment"):
        await pipeline(tmp_path).run("j5", "a/b", str(wav), rec.stage, rec.update)


async def test_complex_title_gets_more_bits_than_simple_one(tmp_path):
    easy = make_master(tmp_path / "easy.mp4", seconds=4, size="640x360", source="smptebars", audio=False)
    hard = make_master(tmp_path / "hard.mp4", seconds=4, size="640x360", noise=40, audio=False)
    rec = Recorder()
    await pipeline(tmp_path).run("e", "easy", str(easy), rec.stage, rec.update)
    await pipeline(tmp_path).run("h", "hard", str(hard), rec.stage, rec.update)
    ladders = [info["ladder"] for name, info in rec.stages if name == "encoding"]
    tops = [int(ladder.rsplit("@", 1)[1].rstrip("k")) for ladder in ladders]
    assert tops[0] * 3 < tops[1], ladders


async def test_cancel_kills_ffmpeg_and_cleans_up(tmp_path):
    master = make_master(tmp_path / "m.mp4", seconds=20, size="1280x720", audio=False)
    rec = Recorder()
    task = asyncio.ensure_future(pipeline(tmp_path).run("jc", "tc", str(master), rec.stage, rec.update))

    async def encoding_started():
        while not any(u.state == "encoding" for u in rec.updates):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(encoding_started(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (tmp_path / "work" / "jc").exists()
    assert not list((tmp_path / "out").glob("tc/*.mp4"))


async def test_fetches_an_http_master(tmp_path):
    from aiohttp import web

    master = make_master(tmp_path / "m.mp4", seconds=3, size="320x240", audio=False)
    app = web.Application()
    app.router.add_static("/masters", tmp_path)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/masters"
    try:
        rec = Recorder()
        results = await pipeline(tmp_path).run("jh", "th", f"{base}/{master.name}", rec.stage, rec.update)
        assert results and all(r.state == "ready" for r in results)
        with pytest.raises(IngestError, match="HTTP 404"):
            await pipeline(tmp_path).run("jx", "th", f"{base}/missing.mp4", rec.stage, rec.update)
    finally:
        await runner.cleanup()
