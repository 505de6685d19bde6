"""Playback manifests, rendered purely: catalog data + ranked, signed URLs → DASH MPD / HLS playlists.

Nothing here does I/O or knows about HTTP, SQL or steering; the playback API gathers the inputs.

DASH: one static MPD, on-demand profile (ISO/IEC 23009-1 §8.3): every Representation is one file,
addressed with ``SegmentBase@indexRange`` (the ``sidx``) and ``Initialization@range`` (``ftyp``+``moov``).
Each Representation lists one ``BaseURL`` per appliance in failover order, with ``@serviceLocation``
naming the appliance, so a player that fails on one moves to the next and a content-steering server
(``<ContentSteering>``, ISO/IEC 23009-1 Amd / DASH-IF CTS 00XX) can reorder them.

HLS (RFC 8216, and the HLS Content Steering spec): a multivariant playlist with one complete set of
variants per appliance, each tagged ``PATHWAY-ID``, in failover order, and ``#EXT-X-CONTENT-STEERING``
when a steering server is configured; media playlists address fragments with ``#EXT-X-MAP`` BYTERANGE
and ``#EXT-X-BYTERANGE`` (RFC 8216 §4.3.2.2, §4.3.2.5) into the same single file DASH uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from xml.sax.saxutils import escape, quoteattr

from control_plane.packaging import Layout

DASH_ON_DEMAND = "urn:mpeg:dash:profile:isoff-on-demand:2011"
_CHANNEL_SCHEME = "urn:mpeg:mpegB:cicp:ChannelConfiguration"
_ROLE_SCHEME = "urn:mpeg:dash:role:2011"


@dataclass(frozen=True)
class Rendition:
    """One packaged media file of a title (video rung or audio track), as the catalog knows it."""

    key: str  # content key, e.g. "t1/avc-720p-3000k.mp4"
    layout: Layout
    frame_rate: float = 0.0
    language: str = "und"

    @property
    def id(self) -> str:
        return self.key.rsplit("/", 1)[-1].rsplit(".", 1)[0]


@dataclass(frozen=True)
class TextTrack:
    """A WebVTT subtitle file (one whole file, no byte ranges)."""

    key: str
    language: str
    label: str = ""

    @property
    def id(self) -> str:
        return self.key.rsplit("/", 1)[-1].rsplit(".", 1)[0]


@dataclass(frozen=True)
class TitleMedia:
    title_id: str
    video: tuple[Rendition, ...]
    audio: tuple[Rendition, ...] = ()
    text: tuple[TextTrack, ...] = ()

    @cached_property
    def duration_s(self) -> float:
        return max(r.layout.duration_s for r in (*self.video, *self.audio))


@dataclass(frozen=True)
class Location:
    """One appliance in the failover order: its pathway name and the signed URL of every file it serves.

    `playlists` maps a rendition key to the URL of that rendition's HLS media playlist for this
    pathway (only the HLS multivariant playlist needs it)."""

    pathway: str
    urls: Mapping[str, str]
    playlists: Mapping[str, str] | None = None


@dataclass(frozen=True)
class SteeringServer:
    """Content steering: the server's URL and the pathway players should start on."""

    uri: str
    default_pathway: str
    query_before_start: bool = True


class ManifestError(ValueError):
    """The inputs cannot make a playable manifest (no video, no location, a URL missing)."""


def _check(media: TitleMedia, locations: Sequence[Location]) -> None:
    if not media.video:
        raise ManifestError(f"title {media.title_id}: no video rendition")
    if not locations:
        raise ManifestError(f"title {media.title_id}: no location to serve it from")
    pathways = [loc.pathway for loc in locations]
    if len(set(pathways)) != len(pathways):
        raise ManifestError(f"duplicate pathway in {pathways}")
    keys = [r.key for r in (*media.video, *media.audio)] + [t.key for t in media.text]
    for loc in locations:
        missing = [k for k in keys if k not in loc.urls]
        if missing:
            raise ManifestError(f"location {loc.pathway}: no URL for {missing[0]}")
        # A quote or line break would end an HLS attribute or line early (RFC 8216 §4.2).
        urls = (*loc.urls.values(), *(loc.playlists or {}).values())
        if any(c in u for u in urls for c in '"\r\n') or any(c in loc.pathway for c in '"\r\n,'):
            raise ManifestError(f"location {loc.pathway}: a URL or the pathway has a quote or line break")


# -- DASH ----------------------------------------------------------------------------------------

def render_dash(
    media: TitleMedia, locations: Sequence[Location], steering: SteeringServer | None = None
) -> str:
    """An on-demand-profile MPD with one BaseURL per location (in the given order) per Representation."""
    _check(media, locations)
    duration = _iso_duration(media.duration_s)
    max_fragment = max(r.layout.max_fragment_s for r in media.video)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="{DASH_ON_DEMAND}" type="static"'
        f' mediaPresentationDuration="{duration}" minBufferTime="{_iso_duration(max_fragment)}">',
    ]
    if steering is not None:
        before = str(steering.query_before_start).lower()
        out.append(
            f'  <ContentSteering defaultServiceLocation={quoteattr(steering.default_pathway)}'
            f' queryBeforeStart="{before}">{escape(steering.uri)}</ContentSteering>'
        )
    out.append(f'  <Period id="0" start="PT0S" duration="{duration}">')
    out += _dash_video_set(media.video, locations)
    for index, (lang, group) in enumerate(_by_language(media.audio).items(), start=1):
        out += _dash_audio_set(index, lang, group, locations)
    for index, track in enumerate(media.text, start=1 + len(_by_language(media.audio))):
        out += _dash_text_set(index, track, locations)
    out += ["  </Period>", "</MPD>", ""]
    return "\n".join(out)


def _dash_video_set(video: Sequence[Rendition], locations: Sequence[Location]) -> list[str]:
    rungs = sorted(video, key=lambda r: r.layout.peak_bps)
    width = max(r.layout.width for r in rungs)
    height = max(r.layout.height for r in rungs)
    out = [
        '    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true"'
        f' subsegmentAlignment="true" subsegmentStartsWithSAP="1" startWithSAP="1" maxWidth="{width}"'
        f' maxHeight="{height}">'
    ]
    for r in rungs:
        rate = f' frameRate="{_frame_rate(r.frame_rate)}"' if r.frame_rate else ""
        out.append(
            f'      <Representation id={quoteattr(r.id)} bandwidth="{r.layout.peak_bps}"'
            f' codecs="{r.layout.codecs}" width="{r.layout.width}" height="{r.layout.height}"{rate}'
            ' sar="1:1">'
        )
        out += _dash_file(r, locations)
        out.append("      </Representation>")
    out.append("    </AdaptationSet>")
    return out


def _dash_audio_set(
    index: int, lang: str, group: Sequence[Rendition], locations: Sequence[Location]
) -> list[str]:
    out = [
        f'    <AdaptationSet id="{index}" contentType="audio" mimeType="audio/mp4" lang={quoteattr(lang)}'
        ' segmentAlignment="true" subsegmentAlignment="true" subsegmentStartsWithSAP="1" startWithSAP="1">',
        f'      <Role schemeIdUri="{_ROLE_SCHEME}" value="main"/>',
    ]
    for r in sorted(group, key=lambda r: r.layout.peak_bps):
        out.append(
            f'      <Representation id={quoteattr(r.id)} bandwidth="{r.layout.peak_bps}"'
            f' codecs="{r.layout.codecs}" audioSamplingRate="{r.layout.sample_rate}">'
        )
        channels = r.layout.channels
        out.append(f'        <AudioChannelConfiguration schemeIdUri="{_CHANNEL_SCHEME}" value="{channels}"/>')
        out += _dash_file(r, locations)
        out.append("      </Representation>")
    out.append("    </AdaptationSet>")
    return out


def _dash_text_set(index: int, track: TextTrack, locations: Sequence[Location]) -> list[str]:
    out = [
        f'    <AdaptationSet id="{index}" contentType="text" mimeType="text/vtt"'
        f' lang={quoteattr(track.language)}>',
        f'      <Role schemeIdUri="{_ROLE_SCHEME}" value="subtitle"/>',
        f'      <Representation id={quoteattr(track.id)} bandwidth="256">',
    ]
    out += [_base_url(loc, track.key) for loc in locations]
    out += ["      </Representation>", "    </AdaptationSet>"]
    return out


def _dash_file(r: Rendition, locations: Sequence[Location]) -> list[str]:
    out = [_base_url(loc, r.key) for loc in locations]
    out.append(
        f'        <SegmentBase timescale="{r.layout.timescale}" indexRange="{r.layout.index.dash()}"'
        f' indexRangeExact="true"><Initialization range="{r.layout.init.dash()}"/></SegmentBase>'
    )
    return out


def _base_url(loc: Location, key: str) -> str:
    return f"        <BaseURL serviceLocation={quoteattr(loc.pathway)}>{escape(loc.urls[key])}</BaseURL>"


def _iso_duration(seconds: float) -> str:
    """ISO 8601 duration as xs:duration, e.g. PT8.021S (ISO/IEC 23009-1 uses xs:duration)."""
    return f"PT{seconds:.3f}S"


def _frame_rate(fps: float) -> str:
    """DASH FrameRateType: an integer or N/D (29.97 → 30000/1001)."""
    if abs(fps - round(fps)) < 1e-3:
        return str(int(round(fps)))
    return f"{int(round(fps * 1001))}/1001"


def _by_language(audio: Sequence[Rendition]) -> dict[str, list[Rendition]]:
    groups: dict[str, list[Rendition]] = {}
    for r in audio:
        groups.setdefault(r.language, []).append(r)
    return groups


# -- HLS -----------------------------------------------------------------------------------------

HLS_VERSION = 7  # EXT-X-MAP in a playlist without EXT-X-I-FRAMES-ONLY needs 6 (RFC 8216 §7)


def render_hls_master(
    media: TitleMedia, locations: Sequence[Location], steering: SteeringServer | None = None
) -> str:
    """Multivariant playlist: for each location (failover order) all variants with its PATHWAY-ID."""
    _check(media, locations)
    for loc in locations:
        if loc.playlists is None:
            raise ManifestError(f"location {loc.pathway}: no media playlist URLs")
    out = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if steering is not None:
        if any(c in steering.uri + steering.default_pathway for c in '"\r\n'):
            raise ManifestError("steering server URI or pathway has a quote or line break")
        out.append(f'#EXT-X-CONTENT-STEERING:SERVER-URI="{steering.uri}",PATHWAY-ID="{steering.default_pathway}"')
    for loc in locations:
        out += _hls_pathway(media, loc)
    out.append("")
    return "\n".join(out)


def _hls_pathway(media: TitleMedia, loc: Location) -> list[str]:
    playlists = loc.playlists or {}
    out: list[str] = []
    audio_group = f"aud-{loc.pathway}" if media.audio else None
    text_group = f"sub-{loc.pathway}" if media.text else None
    for i, r in enumerate(media.audio):
        name = f"{r.language}-{r.layout.peak_bps // 1000}k"
        out.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{audio_group}",NAME="{name}",LANGUAGE="{r.language}",'
            f'DEFAULT={"YES" if i == 0 else "NO"},AUTOSELECT=YES,CHANNELS="{r.layout.channels}",'
            f'URI="{playlists[r.key]}"'
        )
    for t in media.text:
        out.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{text_group}",NAME="{t.label or t.language}",'
            f'LANGUAGE="{t.language}",DEFAULT=NO,AUTOSELECT=YES,URI="{playlists[t.key]}"'
        )
    audio_peak = max((r.layout.peak_bps for r in media.audio), default=0)
    audio_avg = max((r.layout.average_bps for r in media.audio), default=0)
    audio_codecs = media.audio[0].layout.codecs if media.audio else None
    for r in sorted(media.video, key=lambda r: r.layout.peak_bps):
        codecs = ",".join(c for c in (r.layout.codecs, audio_codecs) if c)
        attrs = [
            f"BANDWIDTH={r.layout.peak_bps + audio_peak}",
            f"AVERAGE-BANDWIDTH={r.layout.average_bps + audio_avg}",
            f'CODECS="{codecs}"', f"RESOLUTION={r.layout.width}x{r.layout.height}",
        ]
        if r.frame_rate:
            attrs.append(f"FRAME-RATE={r.frame_rate:.3f}")
        if audio_group:
            attrs.append(f'AUDIO="{audio_group}"')
        if text_group:
            attrs.append(f'SUBTITLES="{text_group}"')
        attrs.append(f'PATHWAY-ID="{loc.pathway}"')
        out += ["#EXT-X-STREAM-INF:" + ",".join(attrs), playlists[r.key]]
    return out


def render_hls_media(rendition: Rendition, url: str) -> str:
    """Media playlist for one file: EXT-X-MAP to the init range, one EXT-X-BYTERANGE per fragment."""
    layout = rendition.layout
    seconds = [layout.fragment_seconds(f) for f in layout.fragments]
    # RFC 8216 §4.3.3.1: every EXTINF rounded to the nearest integer must be <= EXT-X-TARGETDURATION.
    target = max(1, max(int(math.floor(s + 0.5)) for s in seconds))
    out = [
        "#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{url}",BYTERANGE="{layout.init.hls()}"',
    ]
    for fragment, s in zip(layout.fragments, seconds, strict=True):
        out += [f"#EXTINF:{s:.5f},", f"#EXT-X-BYTERANGE:{fragment.range.hls()}", url]
    out += ["#EXT-X-ENDLIST", ""]
    return "\n".join(out)


def render_hls_subtitles(duration_s: float, url: str) -> str:
    """Media playlist for a whole WebVTT file: one segment spanning the title."""
    target = max(1, int(math.ceil(duration_s)))
    return "\n".join([
        "#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXTINF:{duration_s:.5f},", url, "#EXT-X-ENDLIST", "",
    ])
