"""Probe a master file with ffprobe and decide whether it can be ingested.

`parse_probe` is pure: ffprobe's JSON in, a `MasterInfo` out, or `MasterRejected` naming what is
wrong (no video stream, a still image, no duration...). `probe` is the thin shell that runs
``ffprobe -print_format json -show_format -show_streams`` without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from control_plane.encoding import spawn  # the careful subprocess start (cancellation-safe)

# Codecs ffprobe reports for single pictures: a "video" stream of one of these is not a video.
_STILL_IMAGE_CODECS = frozenset({"mjpeg", "png", "bmp", "gif", "webp", "tiff", "jpeg2000"})
# Subtitle codecs ffmpeg can turn into WebVTT (text-based ones; bitmap subtitles such as
# dvd_subtitle or hdmv_pgs_subtitle would need OCR).
_TEXT_SUBTITLE_CODECS = frozenset({"mov_text", "subrip", "srt", "webvtt", "ass", "ssa", "text"})
MIN_DURATION_S = 1.0


class MasterRejected(Exception):
    """The master cannot be ingested. `status` is the HTTP status an API answers with, `reason` says why."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class VideoStream:
    index: int
    codec: str
    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    channels: int
    sample_rate: int
    language: str


@dataclass(frozen=True)
class SubtitleStream:
    index: int
    codec: str
    language: str


@dataclass(frozen=True)
class MasterInfo:
    """What ingest needs to know about a master: its main video, audio tracks, text subtitles."""

    duration_s: float
    video: VideoStream
    audio: tuple[AudioStream, ...]
    subtitles: tuple[SubtitleStream, ...]
    format_name: str


def parse_probe(doc: dict[str, Any]) -> MasterInfo:
    """ffprobe's ``-show_format -show_streams`` JSON → `MasterInfo`, or raise `MasterRejected`."""
    streams = doc.get("streams") or []
    fmt = doc.get("format") or {}
    videos = [s for s in streams if s.get("codec_type") == "video" and not _is_picture(s)]
    if not videos:
        kinds = sorted({str(s.get("codec_type")) for s in streams}) or ["nothing"]
        raise MasterRejected(f"not a video: the file has no video stream (found: {', '.join(kinds)})")
    video = _video(videos[0])
    duration = _duration(fmt, videos[0])
    if duration < MIN_DURATION_S:
        raise MasterRejected(f"not a video: duration {duration:.3f} s is shorter than {MIN_DURATION_S} s")
    audio = tuple(_audio(s) for s in streams if s.get("codec_type") == "audio")
    subtitles = tuple(
        SubtitleStream(int(s["index"]), str(s.get("codec_name")), _language(s))
        for s in streams
        if s.get("codec_type") == "subtitle" and s.get("codec_name") in _TEXT_SUBTITLE_CODECS
    )
    return MasterInfo(duration, video, audio, subtitles, str(fmt.get("format_name", "")))


def _is_picture(stream: dict[str, Any]) -> bool:
    # Cover art is an attached picture; a lone JPEG/PNG probes as a one-frame "video".
    if (stream.get("disposition") or {}).get("attached_pic"):
        return True
    return stream.get("codec_name") in _STILL_IMAGE_CODECS and stream.get("nb_frames") in (None, "1")


def _video(s: dict[str, Any]) -> VideoStream:
    width, height = int(s.get("width") or 0), int(s.get("height") or 0)
    if width <= 0 or height <= 0:
        raise MasterRejected(f"video stream {s.get('index')} has no picture size")
    return VideoStream(int(s["index"]), str(s.get("codec_name")), width, height, _fps(s))


def _fps(s: dict[str, Any]) -> float:
    for field in ("avg_frame_rate", "r_frame_rate"):
        text = str(s.get(field) or "0/0")
        num, _, den = text.partition("/")
        if den not in ("", "0") and num not in ("", "0"):
            return float(Fraction(int(num), int(den)))
    raise MasterRejected(f"video stream {s.get('index')} has no frame rate")


def _duration(fmt: dict[str, Any], video: dict[str, Any]) -> float:
    for value in (fmt.get("duration"), video.get("duration")):
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    raise MasterRejected("not a video: ffprobe reports no duration")


def _audio(s: dict[str, Any]) -> AudioStream:
    return AudioStream(
        int(s["index"]), str(s.get("codec_name")), int(s.get("channels") or 2),
        int(s.get("sample_rate") or 48000), _language(s),
    )


def _language(s: dict[str, Any]) -> str:
    lang = str((s.get("tags") or {}).get("language") or "und")
    return lang if lang.isalpha() and 2 <= len(lang) <= 3 else "und"


async def probe(path: str, ffprobe: str = "ffprobe") -> MasterInfo:
    """Run ffprobe on a local file (the shell around `parse_probe`)."""
    proc = await spawn([ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", path])
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        raise MasterRejected(f"not a media file ffprobe can read: {detail[-1] if detail else 'no detail'}")
    return parse_probe(json.loads(out or b"{}"))
