"""Per-title encoding ladders: choose rungs and bitrates from how hard the title is to compress.

Method (documented with measured numbers in docs/ingest-and-playback.md):

1. *Measure.* Encode a short excerpt of the master at constant quality (x264 ``-crf``, same preset as
   the real encode) at two or three resolutions (`probe_heights`) and record the bitrate each one
   needed (`ComplexitySample`). A cartoon needs few bits at a given quality; a sports match with
   grass, crowds and camera pans needs many.
2. *Estimate.* Bitrate grows as a power of the pixel count; `estimate_bitrate` interpolates the
   samples on log-log axes (piecewise, extrapolating with the nearest segment's slope, clamped).
3. *Decide.* `choose_ladder` gives every candidate resolution up to the source's its estimated
   constant-quality bitrate (times a small headroom, clamped to a per-resolution ceiling), then keeps
   the top and bottom rungs and only those middle rungs that are at least `min_step` apart in
   bitrate from their neighbours: an easy title whose 1080p needs 900 kbit/s does not get a 720p rung
   at 600 kbit/s that no network would pick.

Steps 2-3 are pure and table-tested; step 1 is the thin shell `measure_complexity` (real ffmpeg).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

from control_plane.encoding import FfmpegRunner, probe_encode_command
from control_plane.probe import MasterInfo


@dataclass(frozen=True)
class ComplexitySample:
    """One constant-quality probe encode: at `height` (and `width`) the excerpt needed `bitrate_bps`."""

    width: int
    height: int
    bitrate_bps: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Rung:
    """One video rendition to encode: size, average target and the VBV cap (maxrate/bufsize)."""

    width: int
    height: int
    bitrate_bps: int
    maxrate_bps: int
    bufsize_bits: int
    reason: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        """The file name stem, e.g. ``avc-720p-3000k`` (the content key is ``{title}/{name}.mp4``)."""
        return f"avc-{self.height}p-{self.bitrate_bps // 1000}k"


@dataclass(frozen=True)
class LadderPolicy:
    candidate_heights: tuple[int, ...] = (240, 360, 480, 720, 1080)
    crf: int = 23
    headroom: float = 1.15  # average target above the CRF need: x264's ABR is less efficient than CRF
    min_step: float = 1.5  # neighbouring rungs at least this bitrate ratio apart
    floor_bps: int = 100_000
    # Per-height ceilings: a title whose noise defeats the encoder must not produce absurd rungs.
    ceiling_bps: tuple[tuple[int, int], ...] = (
        (240, 700_000), (360, 1_200_000), (480, 2_000_000), (720, 4_500_000), (1080, 8_000_000),
        (1440, 14_000_000), (2160, 20_000_000),
    )
    maxrate_factor: float = 1.5
    bufsize_factor: float = 2.0
    default_slope: float = 0.75  # bits ~ pixels^0.75 when only one sample exists
    slope_bounds: tuple[float, float] = (0.3, 1.2)

    def ceiling(self, height: int) -> int:
        for h, cap in self.ceiling_bps:
            if height <= h:
                return cap
        return self.ceiling_bps[-1][1]


@dataclass(frozen=True)
class Ladder:
    rungs: tuple[Rung, ...]  # ascending bitrate
    samples: tuple[ComplexitySample, ...]

    def describe(self) -> str:
        return ", ".join(f"{r.height}p@{r.bitrate_bps // 1000}k" for r in self.rungs)


def usable_heights(source_height: int, policy: LadderPolicy) -> tuple[int, ...]:
    """Candidate heights not above the source (never upscale); the source's own height if it is below all."""
    heights = tuple(h for h in policy.candidate_heights if h <= source_height)
    return heights or (source_height - source_height % 2,)


def probe_heights(source_height: int, policy: LadderPolicy) -> tuple[int, ...]:
    """The resolutions to probe-encode: lowest, middle and highest usable candidate (deduplicated)."""
    heights = usable_heights(source_height, policy)
    picks = {heights[0], heights[len(heights) // 2], heights[-1]}
    return tuple(sorted(picks))


def scaled_width(height: int, source_width: int, source_height: int) -> int:
    """Width keeping the source's aspect ratio, rounded to an even number (4:2:0 chroma needs it)."""
    return max(2, int(round(height * source_width / source_height / 2)) * 2)


def estimate_bitrate(samples: Sequence[ComplexitySample], pixels: int, policy: LadderPolicy) -> float:
    """Constant-quality bitrate at `pixels`, interpolated on log-log axes between the samples."""
    pts = sorted({(s.pixels, s.bitrate_bps) for s in samples if s.bitrate_bps > 0})
    if not pts:
        raise ValueError("no complexity sample with a positive bitrate")
    lo, hi = policy.slope_bounds
    if len(pts) == 1:
        (p0, b0), slope = pts[0], policy.default_slope
        return b0 * (pixels / p0) ** slope
    logs = [(math.log(p), math.log(b)) for p, b in pts]
    x = math.log(pixels)
    seg = 0
    while seg < len(logs) - 2 and x > logs[seg + 1][0]:
        seg += 1
    (x0, y0), (x1, y1) = logs[seg], logs[seg + 1]
    slope = (y1 - y0) / (x1 - x0) if x1 != x0 else policy.default_slope
    if x < x0 or x > x1:  # extrapolating from the nearest sample: keep the slope physical
        slope = min(max(slope, lo), hi)
        if x > x1:
            x0, y0 = x1, y1
    return math.exp(y0 + slope * (x - x0))


def choose_ladder(
    source_width: int, source_height: int, samples: Sequence[ComplexitySample], policy: LadderPolicy
) -> Ladder:
    """Samples of the title's complexity → the rungs to encode (ascending), each with its reason."""
    candidates: list[Rung] = []
    for height in usable_heights(source_height, policy):
        width = scaled_width(height, source_width, source_height)
        need = estimate_bitrate(samples, width * height, policy) * policy.headroom
        bitrate = _round_bitrate(min(max(need, policy.floor_bps), policy.ceiling(height)))
        if candidates and bitrate <= candidates[-1].bitrate_bps:
            bitrate = candidates[-1].bitrate_bps + 50_000  # never a bigger picture for fewer bits
        reason = f"CRF {policy.crf} needs ~{int(need) // 1000} kbit/s at {height}p"
        candidates.append(_rung(width, height, bitrate, policy, reason))
    return Ladder(tuple(_thin(candidates, policy.min_step)), tuple(samples))


def _thin(candidates: list[Rung], min_step: float) -> list[Rung]:
    """Keep bottom and top; keep a middle rung only if it is `min_step` away from both kept neighbours."""
    if len(candidates) <= 2:
        return candidates
    bottom, top = candidates[0], candidates[-1]
    kept = [bottom]
    for rung in candidates[1:-1]:
        far_below_top = top.bitrate_bps >= rung.bitrate_bps * min_step
        if rung.bitrate_bps >= kept[-1].bitrate_bps * min_step and far_below_top:
            kept.append(rung)
    kept.append(top)
    return kept


def _round_bitrate(bps: float) -> int:
    step = 10_000 if bps < 1_000_000 else 50_000
    return max(step, int(round(bps / step)) * step)


def _rung(width: int, height: int, bitrate: int, policy: LadderPolicy, reason: str) -> Rung:
    maxrate, bufsize = int(bitrate * policy.maxrate_factor), int(bitrate * policy.bufsize_factor)
    return Rung(width, height, bitrate, maxrate, bufsize, reason)


async def measure_complexity(
    source: str,
    info: MasterInfo,
    policy: LadderPolicy,
    runner: FfmpegRunner,
    excerpt_s: float = 6.0,
) -> tuple[ComplexitySample, ...]:
    """Probe-encode an excerpt from the middle of the master at `probe_heights`; return what each needed."""
    length = min(excerpt_s, info.duration_s)
    start = max(0.0, (info.duration_s - length) / 2)
    samples = []
    with tempfile.TemporaryDirectory(prefix="oca-probe-") as tmp:
        for height in probe_heights(info.video.height, policy):
            width = scaled_width(height, info.video.width, info.video.height)
            out = os.path.join(tmp, f"probe-{height}.h264")
            argv = probe_encode_command(source, out, width, height, policy.crf, start, length)
            await runner.run(argv, length)
            samples.append(ComplexitySample(width, height, int(os.path.getsize(out) * 8 / length)))
    return tuple(samples)
