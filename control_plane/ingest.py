"""Ingest: master file → probed → per-title ladder → encoded, packaged and published renditions.

`plan_outputs` is pure (what files a title gets, from its probe and ladder). `Pipeline.run` is the
shell for one job: fetch the master (``file://`` or ``http(s)://``), probe it, measure complexity,
encode every output in parallel under the shared ffmpeg semaphore (the bounded worker pool),
read each file's box layout, SHA-256 and size, and publish it by rename into
``<output_dir>/<title_id>/<name>`` — the content key is ``<title_id>/<name>`` and the directory is
what an origin (``oca serve --root``) serves. A job interrupted half-way resumes: outputs already
published with the recorded size are kept, the rest are encoded again.

Progress and results leave through `on_update(OutputStatus)` / `on_stage(str)` callbacks; the job
manager (`control_plane.ingest_jobs`) persists them in SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from control_plane.encoding import (
    EncodeSettings,
    FfmpegRunner,
    Progress,
    audio_command,
    subtitle_command,
    video_command,
)
from control_plane.ladder import Ladder, LadderPolicy, Rung, choose_ladder, measure_complexity
from control_plane.packaging import inspect_file, layout_to_dict
from control_plane.probe import MasterInfo, MasterRejected, probe
from oca.contentkey import InvalidKey, validate_key

log = logging.getLogger("oca.control.ingest")

OUTPUT_STATES = ("pending", "encoding", "packaging", "ready", "failed", "cancelled")


class IngestError(Exception):
    """A job failed for a reason worth showing to the operator (`status` for an API answer)."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class OutputSpec:
    """One file a title gets: a video rung, an audio track or a WebVTT subtitle track."""

    name: str  # file name, e.g. "avc-720p-3000k.mp4"
    kind: str  # video | audio | subtitle
    stream_index: int | None  # master stream; None for a sidecar subtitle file
    rung: Rung | None = None
    language: str = "und"
    source: str | None = None  # sidecar path for subtitles

    def key(self, title_id: str) -> str:
        return f"{title_id}/{self.name}"


@dataclass(frozen=True)
class OutputStatus:
    name: str
    kind: str
    state: str
    percent: float = 0.0
    size: int | None = None
    sha256: str | None = None
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    bitrate_bps: int | None = None
    language: str = "und"
    frame_rate: float = 0.0
    layout: dict | None = field(default=None, compare=False)
    error: str | None = None


def check_title_id(title_id: str) -> str:
    """A title id becomes the first segment of its content keys, so it must be one key segment."""
    try:
        validate_key(title_id)
    except InvalidKey as e:
        raise IngestError(f"titleId {title_id!r} cannot name content: {e.reason}") from None
    if "/" in title_id or len(title_id) > 64:
        raise IngestError(f"titleId {title_id!r} must be one path segment of at most 64 characters")
    return title_id


def plan_outputs(
    info: MasterInfo, ladder: Ladder, settings: EncodeSettings, sidecars: Sequence[tuple[str, str]] = ()
) -> tuple[OutputSpec, ...]:
    """Video rungs (ascending), one AAC rendition per audio stream, WebVTT per text subtitle/sidecar."""
    out = [OutputSpec(f"{r.name}.mp4", "video", info.video.index, rung=r) for r in ladder.rungs]
    kbps = settings.audio_bitrate_bps // 1000
    for n, a in enumerate(info.audio):
        suffix = "" if len(info.audio) == 1 else f"-{n}"
        out.append(OutputSpec(f"aac-{a.language}{suffix}-{kbps}k.mp4", "audio", a.index, language=a.language))
    for n, s in enumerate(info.subtitles):
        out.append(OutputSpec(f"sub-{s.language}-{n}.vtt", "subtitle", s.index, language=s.language))
    for n, (path, lang) in enumerate(sidecars):
        out.append(OutputSpec(f"sub-{lang}-side{n}.vtt", "subtitle", None, language=lang, source=path))
    return tuple(out)


def local_path(url: str) -> str | None:
    """The path of a ``file://`` URL (or a plain path); None for http(s)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise IngestError(f"file URL with a remote host is not supported: {url}")
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme == "" and url.startswith("/"):
        return url
    raise IngestError(f"masterFileUrl must be file:// or http(s)://, got {url!r}")


@dataclass
class Pipeline:
    """Runs one ingest job end to end. Shared across jobs: the runner and the ffmpeg semaphore."""

    output_dir: Path
    work_dir: Path
    runner: FfmpegRunner
    ffmpeg_slots: asyncio.Semaphore
    settings: EncodeSettings = field(default_factory=EncodeSettings)
    policy: LadderPolicy = field(default_factory=LadderPolicy)
    http: aiohttp.ClientSession | None = None
    ffprobe: str = "ffprobe"

    async def run(
        self,
        job_id: str,
        title_id: str,
        master_url: str,
        on_stage: Callable[[str, dict], Awaitable[None]],
        on_update: Callable[[OutputStatus], Awaitable[None]],
        done: Mapping[str, OutputStatus] | None = None,
        sidecars: Sequence[tuple[str, str]] = (),
    ) -> list[OutputStatus]:
        """Ingest `master_url` for `title_id`; `done` holds outputs a previous run already published."""
        check_title_id(title_id)
        work = self.work_dir / job_id
        work.mkdir(parents=True, exist_ok=True)
        try:
            await on_stage("fetching", {})
            master = await self._fetch(master_url, work)
            await on_stage("probing", {})
            info = await probe(master, self.ffprobe)
            await on_stage("analysing", {"duration_s": info.duration_s})
            samples = await self._measure(master, info)
            ladder = choose_ladder(info.video.width, info.video.height, samples, self.policy)
            log.info("ladder chosen", extra={"fields": {"title": title_id, "ladder": ladder.describe()}})
            outputs = plan_outputs(info, ladder, self.settings, sidecars)
            await on_stage("encoding", {"ladder": ladder.describe(), "duration_s": info.duration_s,
                                        "samples": [[s.width, s.height, s.bitrate_bps] for s in samples]})
            # A TaskGroup, not gather: when one output fails or the job is cancelled, the others are
            # cancelled AND awaited, so every ffmpeg child is killed and reaped before we return.
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(self._output(
                        title_id, spec, master, info, work, on_update, (done or {}).get(spec.name)))
                        for spec in outputs]
            except BaseExceptionGroup as eg:
                raise eg.exceptions[0] from None
            return [t.result() for t in tasks]
        finally:
            shutil.rmtree(work, ignore_errors=True)

    async def _measure(self, master: str, info: MasterInfo):
        async with self.ffmpeg_slots:
            return await measure_complexity(master, info, self.policy, self.runner)

    async def _fetch(self, url: str, work: Path) -> str:
        path = local_path(url)
        if path is not None:
            if not os.path.isfile(path):
                raise MasterRejected(f"master file {path} does not exist or is not a regular file")
            return path
        target = work / "master"
        session = self.http or aiohttp.ClientSession()
        try:
            async with session.get(url) as resp:
                if resp.status != 200:
                    raise IngestError(f"fetching the master from {url}: HTTP {resp.status}")
                with open(target, "wb") as f:
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        await asyncio.to_thread(f.write, chunk)
        except aiohttp.ClientError as e:
            raise IngestError(f"fetching the master from {url}: {e}") from None
        finally:
            if self.http is None:
                await session.close()
        return str(target)

    async def _output(
        self, title_id: str, spec: OutputSpec, master: str, info: MasterInfo, work: Path,
        on_update: Callable[[OutputStatus], Awaitable[None]], previous: OutputStatus | None,
    ) -> OutputStatus:
        final = self.output_dir / title_id / spec.name
        if previous and previous.state == "ready" and final.is_file() and final.stat().st_size == previous.size:
            return previous  # published by an earlier, interrupted run of this job
        status = OutputStatus(spec.name, spec.kind, "pending", language=spec.language)
        await on_update(status)
        tmp = work / spec.name
        updates: asyncio.Queue[Progress] = asyncio.Queue()
        async with self.ffmpeg_slots:
            status = replace(status, state="encoding")
            await on_update(status)
            pump = asyncio.ensure_future(_pump(updates, status, info.duration_s, on_update))
            try:
                await self.runner.run(self._command(spec, master, info, tmp), info.duration_s, updates.put_nowait)
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
        await on_update(replace(status, state="packaging", percent=100.0))
        status = await asyncio.to_thread(_package, spec, tmp, final, info)
        await on_update(status)
        return status

    def _command(self, spec: OutputSpec, master: str, info: MasterInfo, tmp: Path) -> list[str]:
        if spec.kind == "video":
            assert spec.rung is not None and spec.stream_index is not None
            return video_command(master, str(tmp), spec.stream_index, spec.rung, info.video.fps, self.settings)
        if spec.kind == "audio":
            assert spec.stream_index is not None
            return audio_command(master, str(tmp), spec.stream_index, self.settings)
        return subtitle_command(spec.source or master, str(tmp), spec.stream_index)


async def _pump(updates: asyncio.Queue[Progress], status: OutputStatus, duration_s: float,
                on_update: Callable[[OutputStatus], Awaitable[None]]) -> None:
    """Forward ffmpeg progress to `on_update` (the callback may be slow: only the latest matters)."""
    while True:
        progress = await updates.get()
        while not updates.empty():
            progress = updates.get_nowait()
        await on_update(replace(status, percent=round(progress.percent(duration_s), 1)))


def _package(spec: OutputSpec, tmp: Path, final: Path, info: MasterInfo) -> OutputStatus:
    """Blocking: read the layout/size/sha256 and publish by rename (a reader never sees a partial file)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if spec.kind == "subtitle":
        data = tmp.read_bytes()
        _publish(tmp, final)
        return OutputStatus(spec.name, spec.kind, "ready", 100.0, len(data), hashlib.sha256(data).hexdigest(),
                            codec="wvtt", language=spec.language)
    packaged = inspect_file(tmp)
    layout = packaged.layout
    _publish(tmp, final)
    return OutputStatus(
        spec.name, spec.kind, "ready", 100.0, packaged.size, packaged.sha256, codec=layout.codecs,
        width=layout.width or None, height=layout.height or None, bitrate_bps=layout.average_bps,
        language=spec.language, frame_rate=info.video.fps if spec.kind == "video" else 0.0,
        layout=layout_to_dict(layout),
    )


def _publish(tmp: Path, final: Path) -> None:
    staged = final.with_name(f".{final.name}.publishing")
    shutil.move(tmp, staged)  # same filesystem as `final` from here, so the rename below is atomic
    os.replace(staged, final)
