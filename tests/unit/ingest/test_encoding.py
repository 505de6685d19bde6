"""ffmpeg command lines and -progress parsing (pure)."""

from control_plane.encoding import (
    EncodeSettings,
    Progress,
    ProgressParser,
    audio_command,
    probe_encode_command,
    subtitle_command,
    video_command,
)
from control_plane.ladder import Rung


def arg(argv, flag):
    return argv[argv.index(flag) + 1]


def test_video_command_aligns_keyframes_by_time():
    rung = Rung(1280, 720, 3_000_000, 4_500_000, 6_000_000)
    argv = video_command("in.mov", "out.mp4", 0, rung, 29.97, EncodeSettings(segment_s=2.0))
    assert arg(argv, "-force_key_frames") == "expr:gte(t,n_forced*2)"
    assert arg(argv, "-sc_threshold") == "0"
    assert arg(argv, "-g") == "120" and arg(argv, "-keyint_min") == "60"
    assert arg(argv, "-b:v") == "3000000" and arg(argv, "-maxrate") == "4500000"
    assert arg(argv, "-vf") == "scale=1280:720,format=yuv420p"
    assert "global_sidx" in arg(argv, "-movflags") and "frag_keyframe" in arg(argv, "-movflags")
    assert arg(argv, "-map") == "0:0" and argv[-1] == "out.mp4" and "-an" in argv


def test_audio_command_fragments_every_segment():
    argv = audio_command("in.mov", "a.mp4", 3, EncodeSettings(segment_s=4.0, audio_bitrate_bps=96_000))
    assert arg(argv, "-frag_duration") == "4000000"
    assert arg(argv, "-c:a") == "aac" and arg(argv, "-b:a") == "96000" and arg(argv, "-map") == "0:3"
    assert "frag_keyframe" not in arg(argv, "-movflags") and "global_sidx" in arg(argv, "-movflags")


def test_subtitle_and_probe_commands():
    assert arg(subtitle_command("in.mkv", "s.vtt", 4), "-map") == "0:4"
    assert arg(subtitle_command("side.srt", "s.vtt", None), "-map") == "0:s:0"
    argv = probe_encode_command("in.mov", "p.h264", 426, 240, 23, 12.5, 6.0)
    assert (arg(argv, "-ss"), arg(argv, "-t"), arg(argv, "-crf"), arg(argv, "-f")) == ("12.500", "6.000", "23", "h264")


def test_progress_parser_blocks():
    p = ProgressParser()
    lines = ["frame=10", "out_time_us=1500000", "speed=2x", "progress=continue",
             "out_time_us=N/A", "progress=continue", "out_time_ms=4000000", "progress=end", "garbage"]
    out = [r for r in (p.feed(line) for line in lines) if r is not None]
    assert out == [Progress(1.5, False), Progress(1.5, False), Progress(4.0, True)]


def test_progress_percent():
    assert Progress(2.0, False).percent(8.0) == 25.0
    assert Progress(9.0, False).percent(8.0) == 99.9  # only "end" means done
    assert Progress(0.0, True).percent(8.0) == 100.0
    assert Progress(1.0, False).percent(0) == 0.0
