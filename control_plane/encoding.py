"""Encoding: the ffmpeg command lines (pure) and the runner that executes them (thin asyncio shell).

Every rendition is written directly as ONE fragmented MP4 with a single global ``sidx`` after the
``moov`` (``-movflags +frag_keyframe+empty_moov+default_base_moof+global_sidx``), which is the layout
both DASH on-demand (``SegmentBase``) and HLS byte ranges need; `control_plane.packaging` reads it back.

Keyframes are aligned across rungs by time, not by frame count: ``-force_key_frames
expr:gte(t,n_forced*S)`` puts an IDR exactly every S seconds in every rung, scene-cut keyframes are
off (``-sc_threshold 0``) and the regular GOP is set to twice S so x264 never inserts its own, so each
fragment (one per keyframe) starts at the same presentation time in every rung and a player can switch
rung at any fragment boundary. Audio fragments are cut every S seconds with ``-frag_duration``.

`FfmpegRunner.run` starts ffmpeg with ``-progress pipe:1``, parses its key=value blocks into
`Progress` callbacks, drains stderr concurrently (a full pipe would stall ffmpeg), and kills the
process when the awaiting task is cancelled. Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_S = 2.0
AUDIO_CODECS = "mp4a.40.2"  # AAC-LC, what ffmpeg's native `aac` encoder produces


class RungSpec(Protocol):
    width: int
    height: int
    bitrate_bps: int
    maxrate_bps: int
    bufsize_bits: int


@dataclass(frozen=True)
class EncodeSettings:
    segment_s: float = DEFAULT_SEGMENT_S
    preset: str = "veryfast"
    threads: int = 0  # 0: ffmpeg decides
    audio_bitrate_bps: int = 128_000
    audio_channels: int = 2
    audio_sample_rate: int = 48_000


_FMP4_FLAGS = "+frag_keyframe+empty_moov+default_base_moof+global_sidx"
_AUDIO_FMP4_FLAGS = "+empty_moov+default_base_moof+global_sidx"


def video_command(
    source: str, output: str, stream_index: int, rung: RungSpec, fps: float, settings: EncodeSettings
) -> list[str]:
    """ffmpeg arguments (without the binary) encoding one H.264 rung into a single-sidx fMP4."""
    gop = max(1, round(fps * settings.segment_s))
    return [
        "-i", source, "-map", f"0:{stream_index}", "-an", "-sn", "-dn",
        "-vf", f"scale={rung.width}:{rung.height},format=yuv420p",
        "-c:v", "libx264", "-preset", settings.preset, "-threads", str(settings.threads),
        "-b:v", str(rung.bitrate_bps), "-maxrate", str(rung.maxrate_bps), "-bufsize", str(rung.bufsize_bits),
        "-force_key_frames", f"expr:gte(t,n_forced*{settings.segment_s:g})",
        "-g", str(gop * 2), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-movflags", _FMP4_FLAGS, "-f", "mp4", output,
    ]


def audio_command(source: str, output: str, stream_index: int, settings: EncodeSettings) -> list[str]:
    """ffmpeg arguments encoding one AAC-LC audio rendition into a single-sidx fMP4."""
    return [
        "-i", source, "-map", f"0:{stream_index}", "-vn", "-sn", "-dn",
        "-c:a", "aac", "-b:a", str(settings.audio_bitrate_bps),
        "-ac", str(settings.audio_channels), "-ar", str(settings.audio_sample_rate),
        "-frag_duration", str(int(settings.segment_s * 1_000_000)),
        "-movflags", _AUDIO_FMP4_FLAGS, "-f", "mp4", output,
    ]


def subtitle_command(source: str, output: str, stream_index: int | None) -> list[str]:
    """ffmpeg arguments converting a text subtitle stream (or a sidecar file's first one) to WebVTT."""
    stream = f"0:{stream_index}" if stream_index is not None else "0:s:0"
    return ["-i", source, "-map", stream, "-c:s", "webvtt", "-f", "webvtt", output]


def probe_encode_command(
    source: str, output: str, width: int, height: int, crf: int, start_s: float, length_s: float
) -> list[str]:
    """ffmpeg arguments for a constant-quality probe encode of an excerpt (raw H.264, for its size)."""
    return [
        "-ss", f"{start_s:.3f}", "-t", f"{length_s:.3f}", "-i", source, "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", f"scale={width}:{height},format=yuv420p",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-f", "h264", output,
    ]


@dataclass(frozen=True)
class Progress:
    """One ``-progress`` block: media time written so far, and whether ffmpeg said ``progress=end``."""

    out_time_s: float
    ended: bool

    def percent(self, duration_s: float) -> float:
        if self.ended:
            return 100.0
        if duration_s <= 0:
            return 0.0
        return max(0.0, min(99.9, 100.0 * self.out_time_s / duration_s))


class ProgressParser:
    """Feed it ffmpeg's ``-progress`` lines; it returns a `Progress` at the end of each block."""

    def __init__(self) -> None:
        self._out_time_s = 0.0

    def feed(self, line: str) -> Progress | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        if key == "out_time_us" or key == "out_time_ms":  # both are microseconds (ffmpeg quirk)
            with contextlib.suppress(ValueError):
                self._out_time_s = max(self._out_time_s, int(value) / 1_000_000)
        elif key == "progress":
            return Progress(self._out_time_s, value == "end")
        return None


class FfmpegFailed(Exception):
    """ffmpeg exited non-zero; `detail` is the tail of its stderr."""

    def __init__(self, returncode: int, detail: str) -> None:
        super().__init__(f"ffmpeg exited with status {returncode}: {detail}")
        self.returncode, self.detail = returncode, detail


class FfmpegRunner:
    """Runs ffmpeg argument lists as subprocesses; reports progress; kills ffmpeg on cancellation."""

    def __init__(self, ffmpeg: str = "ffmpeg") -> None:
        self.ffmpeg = ffmpeg

    async def run(
        self, args: Sequence[str], duration_s: float, on_progress: Callable[[Progress], None] | None = None
    ) -> None:
        """Run ``ffmpeg <args>`` to completion; raise `FfmpegFailed` on a non-zero exit."""
        argv = [self.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
                "-progress", "pipe:1", *args]
        proc = await spawn(argv)
        tail: collections.deque[str] = collections.deque(maxlen=20)
        stderr_task = asyncio.ensure_future(_drain(proc.stderr, tail))
        try:
            await _read_progress(proc.stdout, on_progress)
            returncode = await proc.wait()
            await stderr_task
        except BaseException:
            await _kill(proc)
            stderr_task.cancel()
            raise
        if returncode != 0:
            raise FfmpegFailed(returncode, " | ".join(tail) or "no error output")


async def spawn(argv: Sequence[str]) -> asyncio.subprocess.Process:
    """Start a subprocess with stdout/stderr pipes. A cancellation that arrives while the process is
    being started waits for the start, kills and reaps the child, then propagates: cancelling
    `create_subprocess_exec` half-way can otherwise leave a running child nobody owns."""
    starting = asyncio.ensure_future(asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    ))
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await _kill(await starting)
        raise


async def _read_progress(
    stream: asyncio.StreamReader | None, on_progress: Callable[[Progress], None] | None
) -> None:
    assert stream is not None
    parser = ProgressParser()
    while line := await stream.readline():
        progress = parser.feed(line.decode(errors="replace"))
        if progress is not None and on_progress is not None:
            on_progress(progress)


async def _drain(stream: asyncio.StreamReader | None, tail: collections.deque[str]) -> None:
    assert stream is not None
    while line := await stream.readline():
        tail.append(line.decode(errors="replace").strip())


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        # Shield the reap so a second cancellation cannot leave a zombie behind.
        await asyncio.shield(proc.wait())
