"""Per-title ladder decisions (pure): estimate from samples, thin rungs, never upscale."""

import pytest

from control_plane.ladder import (
    ComplexitySample,
    LadderPolicy,
    choose_ladder,
    estimate_bitrate,
    probe_heights,
    scaled_width,
    usable_heights,
)

P = LadderPolicy()


def samples(b240, b540, b1080):
    return [ComplexitySample(426, 240, b240), ComplexitySample(960, 540, b540), ComplexitySample(1920, 1080, b1080)]


EASY = samples(60_000, 160_000, 450_000)  # flat cartoon-like content
HARD = samples(600_000, 2_000_000, 6_000_000)  # grain, motion, crowds


@pytest.mark.parametrize(
    ("source_h", "expected"),
    [(1080, (240, 360, 480, 720, 1080)), (720, (240, 360, 480, 720)), (500, (240, 360, 480)), (200, (200,)),
     (201, (200,))],
)
def test_usable_heights_never_upscale(source_h, expected):
    assert usable_heights(source_h, P) == expected


@pytest.mark.parametrize(("source_h", "expected"), [(1080, (240, 480, 1080)), (360, (240, 360)), (200, (200,))])
def test_probe_heights(source_h, expected):
    assert probe_heights(source_h, P) == expected


@pytest.mark.parametrize(("h", "w", "sh", "expected"), [(720, 1920, 1080, 1280), (240, 1920, 1080, 426),
                                                         (360, 640, 480, 480), (240, 1440, 1080, 320)])
def test_scaled_width_even_and_aspect_kept(h, w, sh, expected):
    assert scaled_width(h, w, sh) == expected


def test_estimate_hits_samples_and_interpolates_log_log():
    assert estimate_bitrate(HARD, 1920 * 1080, P) == pytest.approx(6_000_000)
    assert estimate_bitrate(HARD, 426 * 240, P) == pytest.approx(600_000)
    mid = estimate_bitrate(HARD, 1280 * 720, P)
    assert 2_000_000 < mid < 6_000_000


def test_estimate_single_sample_uses_default_slope():
    one = [ComplexitySample(640, 360, 1_000_000)]
    assert estimate_bitrate(one, 1280 * 720, P) == pytest.approx(1_000_000 * 4**0.75)


def test_estimate_extrapolation_slope_is_clamped():
    flat = [ComplexitySample(426, 240, 500_000), ComplexitySample(640, 360, 500_001)]
    # slope ~0 between the samples; above them it is clamped to the lower bound 0.3
    assert estimate_bitrate(flat, 4 * 640 * 360, P) == pytest.approx(500_001 * 4**0.3, rel=1e-3)


def test_estimate_needs_a_positive_sample():
    with pytest.raises(ValueError):
        estimate_bitrate([ComplexitySample(426, 240, 0)], 1000, P)


def test_easy_title_gets_fewer_rungs_and_fewer_bits_than_hard_title():
    easy = choose_ladder(1920, 1080, EASY, P)
    hard = choose_ladder(1920, 1080, HARD, P)
    assert len(easy.rungs) < len(hard.rungs)
    assert easy.rungs[-1].bitrate_bps < hard.rungs[-1].bitrate_bps / 5
    assert easy.rungs[-1].height == hard.rungs[-1].height == 1080
    assert easy.rungs[0].height == hard.rungs[0].height == 240


def test_hard_title_hits_ceilings():
    insane = samples(5_000_000, 20_000_000, 60_000_000)
    ladder = choose_ladder(1920, 1080, insane, P)
    assert [r.bitrate_bps for r in ladder.rungs][-1] == 8_000_000
    assert ladder.rungs[0].bitrate_bps == 700_000


def test_rungs_ascend_and_are_min_step_apart_in_the_middle():
    for s in (EASY, HARD, samples(100_000, 100_000, 100_000)):
        rungs = choose_ladder(1920, 1080, s, P).rungs
        rates = [r.bitrate_bps for r in rungs]
        assert rates == sorted(rates) and len(set(rates)) == len(rates)
        assert [r.height for r in rungs] == sorted(r.height for r in rungs)
        for lower, upper in zip(rates[1:-1], rates[2:], strict=False):
            assert upper >= lower * P.min_step


def test_rung_fields():
    rung = choose_ladder(1280, 720, HARD, P).rungs[-1]
    assert rung.name == f"avc-720p-{rung.bitrate_bps // 1000}k"
    assert rung.maxrate_bps == int(rung.bitrate_bps * 1.5) and rung.bufsize_bits == rung.bitrate_bps * 2
    assert rung.width == 1280 and "720p" in rung.reason


def test_floor_applies_to_nearly_empty_content():
    ladder = choose_ladder(640, 360, [ComplexitySample(640, 360, 5_000)], P)
    assert ladder.rungs[0].bitrate_bps == P.floor_bps
    assert ladder.describe().startswith("240p@100k")
