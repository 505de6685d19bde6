"""parse_probe: ffprobe JSON → MasterInfo, or a clear rejection."""

import pytest

from control_plane.probe import MasterRejected, parse_probe

VIDEO = {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
         "avg_frame_rate": "30000/1001", "r_frame_rate": "30000/1001"}
AUDIO = {"index": 1, "codec_type": "audio", "codec_name": "aac", "channels": 6, "sample_rate": "48000",
         "tags": {"language": "eng"}}
SUBS = {"index": 2, "codec_type": "subtitle", "codec_name": "mov_text", "tags": {"language": "fra"}}
PGS = {"index": 3, "codec_type": "subtitle", "codec_name": "hdmv_pgs_subtitle"}
FMT = {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "60.000"}


def test_full_master():
    info = parse_probe({"streams": [VIDEO, AUDIO, SUBS, PGS], "format": FMT})
    assert (info.video.width, info.video.height, info.video.codec) == (1920, 1080, "h264")
    assert info.video.fps == pytest.approx(29.97, abs=0.01)
    assert info.duration_s == 60.0
    assert [(a.channels, a.sample_rate, a.language) for a in info.audio] == [(6, 48000, "eng")]
    assert [(s.index, s.language) for s in info.subtitles] == [(2, "fra")]  # bitmap PGS is skipped


@pytest.mark.parametrize(
    ("streams", "fmt", "message"),
    [
        ([AUDIO], FMT, "no video stream (found: audio)"),
        ([], {}, "no video stream (found: nothing)"),
        ([{**VIDEO, "codec_name": "mjpeg", "disposition": {"attached_pic": 1}}, AUDIO], FMT, "no video stream"),
        ([{**VIDEO, "codec_name": "png", "nb_frames": "1"}], FMT, "no video stream"),
        ([VIDEO], {"duration": "0.04"}, "shorter than"),
        ([VIDEO], {}, "no duration"),
        ([{**VIDEO, "width": 0}], FMT, "no picture size"),
        ([{**VIDEO, "avg_frame_rate": "0/0", "r_frame_rate": "0/0"}], FMT, "no frame rate"),
    ],
)
def test_rejections(streams, fmt, message):
    with pytest.raises(MasterRejected) as err:
        parse_probe({"streams": streams, "format": fmt})
    assert message in err.value.reason
    assert err.value.status == 422


def test_frame_rate_falls_back_and_language_is_normalised():
    video = {**VIDEO, "avg_frame_rate": "0/0", "r_frame_rate": "25/1", "duration": "12.5"}
    weird = {**AUDIO, "tags": {"language": "e n"}}
    info = parse_probe({"streams": [video, weird], "format": {}})
    assert info.video.fps == 25.0
    assert info.duration_s == 12.5
    assert info.audio[0].language == "und"
