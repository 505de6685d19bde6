"""Sample masters for tests, generated with ffmpeg's lavfi sources (testsrc2 + sine) at test time."""

from __future__ import annotations

import subprocess
from pathlib import Path

SRT = """1
00:00:00,500 --> 00:00:02,000
Bonjour

2
00:00:02,500 --> 00:00:04,000
Au revoir
"""


def make_master(path: Path, *, seconds: float = 6, size: str = "640x360", rate: int = 25, noise: int = 0,
                subtitles: bool = False, audio: bool = True, source: str = "testsrc2") -> Path:
    """Write an H.264/AAC MP4 master (optionally noisy, optionally with a French mov_text track)."""
    video = f"{source}=size={size}:rate={rate}:duration={seconds}"
    if noise:
        video += f",noise=alls={noise}:allf=t+u"
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", video]
    maps = ["-map", "0:v"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
        maps += ["-map", "1:a"]
    if subtitles:
        srt = path.with_suffix(".srt")
        srt.write_text(SRT)
        args += ["-i", str(srt)]
        maps += ["-map", f"{2 if audio else 1}:s", "-c:s", "mov_text", "-metadata:s:s:0", "language=fra"]
    args += maps + ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "10", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "192k", "-metadata:s:a:0", "language=eng"]
    subprocess.run([*args, str(path)], check=True, timeout=120)
    return path


def write_srt(path: Path) -> Path:
    path.write_text(SRT)
    return path
