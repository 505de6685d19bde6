"""Manifest rendering (pure), validated with the mpegdash and m3u8 parsers."""

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from control_plane.manifests import (
    Location,
    ManifestError,
    Rendition,
    SteeringServer,
    TextTrack,
    TitleMedia,
    render_dash,
    render_hls_master,
    render_hls_media,
    render_hls_subtitles,
)
from control_plane.packaging import ByteRange, Fragment, Layout


def layout(kind, codecs, sizes, *, w=0, h=0, timescale=12800, dur=25600, rate=0, ch=0):
    frags, offset = [], 900
    for size in sizes:
        frags.append(Fragment(offset, size, dur))
        offset += size
    return Layout(kind, codecs, timescale, ByteRange(0, 801), ByteRange(802, 899), tuple(frags), w, h, rate, ch)


V240 = Rendition("t1/avc-240p-400k.mp4", layout("video", "avc1.64000d", [100_000, 90_000, 50_000], w=426, h=240),
                 frame_rate=25.0)
V720 = Rendition("t1/avc-720p-2000k.mp4", layout("video", "avc1.64001f", [500_000, 400_000, 300_000], w=1280, h=720),
                 frame_rate=29.97)
AUD = Rendition("t1/aac-128k.mp4", layout("audio", "mp4a.40.2", [32_000] * 3, timescale=48000, dur=96000, rate=48000,
                                          ch=2), language="en")
SUB = TextTrack("t1/sub-fr.vtt", "fr", "Français")
MEDIA = TitleMedia("t1", (V720, V240), (AUD,), (SUB,))
KEYS = [V240.key, V720.key, AUD.key, SUB.key]


def loc(name, playlists=True):
    urls = {k: f"http://{name}.example:8080/{k}?exp=1&kid=k1&sig={name}" for k in KEYS}
    lists = {k: f"hls/{name}/{k.rsplit('/', 1)[1]}.m3u8?b={name}" for k in KEYS} if playlists else None
    return Location(name, urls, lists)


LOCS = [loc("isp1-a"), loc("ixp-1"), loc("origin")]
STEER = SteeringServer("http://steer.example/api/v1/content-steering?t=1&x=<&>", "isp1-a")


def test_dash_parses_and_has_one_base_url_per_location_in_order():
    mpd = MPEGDASHParser.parse(render_dash(MEDIA, LOCS))
    assert mpd.profiles == "urn:mpeg:dash:profile:isoff-on-demand:2011" and mpd.type == "static"
    assert mpd.media_presentation_duration == "PT6.000S"
    video, audio, text = mpd.periods[0].adaptation_sets
    assert [r.id for r in video.representations] == ["avc-240p-400k", "avc-720p-2000k"]  # ascending bandwidth
    rep = video.representations[1]
    assert rep.bandwidth == 500_000 * 8 // 2 and rep.codecs == "avc1.64001f"
    assert (rep.width, rep.height, rep.frame_rate) == (1280, 720, "30000/1001")
    assert [b.service_location for b in rep.base_urls] == ["isp1-a", "ixp-1", "origin"]
    assert rep.base_urls[0].base_url_value == LOCS[0].urls[V720.key]
    assert rep.segment_bases[0].index_range == "802-899"
    assert rep.segment_bases[0].initializations[0].range == "0-801"
    assert audio.lang == "en" and audio.representations[0].audio_sampling_rate == "48000"
    assert audio.representations[0].audio_channel_configurations[0].value == "2"
    assert text.mime_type == "text/vtt" and text.lang == "fr"
    assert [b.base_url_value for b in text.representations[0].base_urls] == [loc.urls[SUB.key] for loc in LOCS]


def test_dash_escapes_and_content_steering():
    text = render_dash(MEDIA, LOCS, STEER)
    assert "&amp;" in text and "x=<&>" not in text
    assert ('<ContentSteering defaultServiceLocation="isp1-a" queryBeforeStart="true">'
            "http://steer.example/api/v1/content-steering?t=1&amp;x=&lt;&amp;&gt;</ContentSteering>") in text
    MPEGDASHParser.parse(text)
    assert "ContentSteering" not in render_dash(MEDIA, LOCS)


def test_hls_master_has_one_variant_set_per_pathway():
    text = render_hls_master(MEDIA, LOCS, STEER)
    pl = m3u8.loads(text)
    assert pl.is_variant
    assert [p.stream_info.pathway_id for p in pl.playlists] == ["isp1-a"] * 2 + ["ixp-1"] * 2 + ["origin"] * 2
    first = pl.playlists[0]
    assert first.uri == "hls/isp1-a/avc-240p-400k.mp4.m3u8?b=isp1-a"
    assert first.stream_info.bandwidth == 100_000 * 8 // 2 + 32_000 * 8 // 2
    assert first.stream_info.resolution == (426, 240)
    assert first.stream_info.codecs == "avc1.64000d,mp4a.40.2"
    assert first.stream_info.audio == "aud-isp1-a" and first.stream_info.subtitles == "sub-isp1-a"
    audio = [m for m in pl.media if m.type == "AUDIO"]
    assert [(m.group_id, m.language, m.default) for m in audio] == [
        ("aud-isp1-a", "en", "YES"), ("aud-ixp-1", "en", "YES"), ("aud-origin", "en", "YES")]
    assert pl.content_steering.uri == STEER.uri and pl.content_steering.pathway_id == "isp1-a"
    assert "#EXT-X-CONTENT-STEERING" not in render_hls_master(MEDIA, LOCS)


def test_hls_media_playlist_byte_ranges():
    url = "http://a/t1/avc-720p-2000k.mp4?exp=1&sig=x"
    pl = m3u8.loads(render_hls_media(V720, url))
    assert pl.target_duration == 2 and pl.is_endlist and pl.playlist_type == "vod" and pl.version == 7
    assert pl.segment_map[0].uri == url and pl.segment_map[0].byterange == "802@0"
    assert [s.byterange for s in pl.segments] == ["500000@900", "400000@500900", "300000@900900"]
    assert [s.duration for s in pl.segments] == [2.0, 2.0, 2.0]
    assert all(s.uri == url for s in pl.segments)


@pytest.mark.parametrize(("seconds", "target"), [(2.0, 2), (2.49, 2), (2.5, 3), (0.2, 1), (4.02, 4)])
def test_hls_target_duration_rounds_like_rfc8216(seconds, target):
    short = layout("video", "avc1.64001f", [10, 10], w=2, h=2, timescale=1000, dur=int(seconds * 1000))
    r = Rendition("t/a.mp4", short)
    assert m3u8.loads(render_hls_media(r, "u")).target_duration == target


def test_hls_subtitles_playlist():
    pl = m3u8.loads(render_hls_subtitles(6.0, "http://a/t1/sub-fr.vtt?sig=1"))
    assert [(s.uri, s.duration) for s in pl.segments] == [("http://a/t1/sub-fr.vtt?sig=1", 6.0)]
    assert pl.target_duration == 6


@pytest.mark.parametrize(
    ("media", "locations", "message"),
    [
        (TitleMedia("t1", ()), LOCS, "no video"),
        (MEDIA, [], "no location"),
        (MEDIA, [loc("a"), loc("a")], "duplicate pathway"),
        (MEDIA, [Location("a", {V240.key: "u"})], "no URL for"),
        (MEDIA, [Location('a"b', loc("x").urls, loc("x").playlists)], "quote"),
        (MEDIA, [Location("a", {**loc("x").urls, V240.key: 'http://x/"'}, loc("x").playlists)], "quote"),
    ],
)
def test_rejections(media, locations, message):
    with pytest.raises(ManifestError, match=message):
        render_dash(media, locations)


def test_hls_master_needs_playlist_urls():
    with pytest.raises(ManifestError, match="no media playlist URLs"):
        render_hls_master(MEDIA, [loc("a", playlists=False)])
