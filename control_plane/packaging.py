"""Packaging: read a single-file fragmented MP4's box layout into what the manifests address.

One rendition is one file: ``ftyp moov sidx (moof mdat)* [mfra]``. From it we take (ISO/IEC 14496-12):
- the *initialization range*: ``ftyp`` + ``moov`` (bytes 0 .. end of moov),
- the *index range*: the single ``sidx`` box (§8.16.3), whose references give every fragment's size
  and duration; the first fragment starts ``first_offset`` bytes after the end of the sidx,
- codec parameters for the manifests: RFC 6381 ``codecs`` from ``avcC`` (``avc1.PPCCLL``) or from the
  ``esds`` decoder config (``mp4a.OTI.AOT``), picture size, sample rate, channel count.
DASH on-demand (``SegmentBase@indexRange`` + ``Initialization@range``) and HLS (``EXT-X-MAP`` BYTERANGE +
``EXT-X-BYTERANGE`` per fragment) are both written from this `Layout`, not from ffmpeg's own manifests.

`parse_layout` is pure (top-level box list + the moov and sidx payloads); `inspect_file` is the I/O
shell that reads only those parts of the file plus a streaming SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple


class PackagingError(Exception):
    """The file is not a single-sidx fragmented MP4 we can address by byte ranges."""


@dataclass(frozen=True)
class Box:
    type: str
    offset: int
    size: int  # whole box, header included
    header: int  # header length (8, or 16 for a 64-bit size)

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range, as HTTP (RFC 9110 §14.1.2) and DASH ``indexRange`` write it."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def dash(self) -> str:
        return f"{self.first}-{self.last}"

    def hls(self) -> str:
        """RFC 8216 §4.3.2.2 ``<n>[@<o>]``: length, then offset."""
        return f"{self.length}@{self.first}"


class Fragment(NamedTuple):
    """One moof+mdat (a tuple: a 2-hour rendition has thousands, built on every catalog read)."""

    offset: int
    size: int
    duration: int  # in the track timescale

    @property
    def range(self) -> ByteRange:
        return ByteRange(self.offset, self.offset + self.size - 1)


@dataclass(frozen=True)
class Layout:
    kind: str  # "video" | "audio"
    codecs: str
    timescale: int
    init: ByteRange
    index: ByteRange
    fragments: tuple[Fragment, ...]
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0

    # Summaries are computed once per Layout (cached_property writes the instance __dict__ directly,
    # which a frozen dataclass allows): manifests read them for every request.
    @cached_property
    def duration_s(self) -> float:
        return sum(f.duration for f in self.fragments) / self.timescale

    def fragment_seconds(self, fragment: Fragment) -> float:
        return fragment.duration / self.timescale

    @cached_property
    def max_fragment_s(self) -> float:
        return max(f.duration for f in self.fragments) / self.timescale

    @cached_property
    def peak_bps(self) -> int:
        """Highest per-fragment bitrate: HLS BANDWIDTH must not be below it (RFC 8216 §4.3.4.2)."""
        return max(int(f.size * 8 * self.timescale / max(f.duration, 1)) for f in self.fragments)

    @cached_property
    def average_bps(self) -> int:
        total = sum(f.size for f in self.fragments)
        return int(total * 8 / max(self.duration_s, 1e-9))


@dataclass(frozen=True)
class PackagedFile:
    layout: Layout
    size: int
    sha256: str


def top_level_boxes(data: bytes, base: int = 0) -> list[Box]:
    """Box headers in `data` (a whole file, or a box's payload at offset `base`)."""
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        box = _header(data[pos : pos + 16], base + pos, len(data) - pos)
        boxes.append(box)
        pos += box.size
    return boxes


def _header(head: bytes, offset: int, remaining: int) -> Box:
    size, kind = struct.unpack(">I4s", head[:8])
    header = 8
    if size == 1:
        if len(head) < 16:
            raise PackagingError(f"truncated 64-bit box header at {offset}")
        size, header = struct.unpack(">Q", head[8:16])[0], 16
    elif size == 0:  # box extends to the end of the file
        size = remaining
    if size < header:
        raise PackagingError(f"box at {offset} has an impossible size {size}")
    return Box(kind.decode("latin-1"), offset, size, header)


def parse_layout(boxes: Sequence[Box], moov: bytes, sidx: bytes) -> Layout:
    """Top-level boxes + the moov and sidx payloads (headers stripped) → the file's `Layout`."""
    kinds = [b.type for b in boxes]
    if "moov" not in kinds or kinds.count("sidx") != 1:
        raise PackagingError(f"expected one moov and exactly one sidx, found {kinds[:8]}")
    moov_box = boxes[kinds.index("moov")]
    sidx_box = boxes[kinds.index("sidx")]
    first_moof = next((b for b in boxes if b.type == "moof"), None)
    if first_moof is None or not moov_box.end <= sidx_box.offset < first_moof.offset:
        raise PackagingError("the sidx must follow the moov and precede the first moof (global_sidx)")
    timescale, refs, first_offset = _parse_sidx(sidx)
    fragments = _fragments(refs, sidx_box.end + first_offset)
    moofs = {b.offset for b in boxes if b.type == "moof"}
    stray = [f.offset for f in fragments if f.offset not in moofs]
    if stray:
        raise PackagingError(f"sidx points at offsets that are not moof boxes: {stray[:3]}")
    track = _parse_moov(moov)
    return Layout(
        kind=track["kind"], codecs=track["codecs"], timescale=timescale,
        init=ByteRange(0, moov_box.end - 1), index=ByteRange(sidx_box.offset, sidx_box.end - 1),
        fragments=fragments, width=track.get("width", 0), height=track.get("height", 0),
        sample_rate=track.get("sample_rate", 0), channels=track.get("channels", 0),
    )


def _parse_sidx(p: bytes) -> tuple[int, list[tuple[int, int]], int]:
    """ISO/IEC 14496-12 §8.16.3 → (timescale, [(referenced_size, subsegment_duration)], first_offset)."""
    version = p[0]
    timescale = struct.unpack(">I", p[8:12])[0]
    if version == 0:
        _ept, first_offset = struct.unpack(">II", p[12:20])
        pos = 20
    else:
        _ept, first_offset = struct.unpack(">QQ", p[12:28])
        pos = 28
    count = struct.unpack(">H", p[pos + 2 : pos + 4])[0]
    pos += 4
    refs = []
    for _ in range(count):
        word, duration, _sap = struct.unpack(">III", p[pos : pos + 12])
        if word >> 31:
            raise PackagingError("hierarchical sidx (a reference to another sidx) is not supported")
        refs.append((word & 0x7FFFFFFF, duration))
        pos += 12
    if not refs or timescale == 0:
        raise PackagingError("sidx has no references or a zero timescale")
    return timescale, refs, first_offset


def _fragments(refs: list[tuple[int, int]], start: int) -> tuple[Fragment, ...]:
    out, offset = [], start
    for size, duration in refs:
        out.append(Fragment(offset, size, duration))
        offset += size
    return tuple(out)


def _children(payload: bytes) -> dict[str, bytes]:
    """First child box of each type in `payload` → its payload."""
    found: dict[str, bytes] = {}
    for box in top_level_boxes(payload):
        found.setdefault(box.type, payload[box.offset + box.header : box.end])
    return found


def _parse_moov(moov: bytes) -> dict:
    traks = [moov[b.offset + b.header : b.end] for b in top_level_boxes(moov) if b.type == "trak"]
    if len(traks) != 1:
        raise PackagingError(f"expected one track per rendition file, found {len(traks)}")
    mdia = _children(_children(traks[0])["mdia"])
    handler = mdia["hdlr"][8:12].decode("latin-1")
    stbl = _children(_children(mdia["minf"])["stbl"])
    stsd = stbl["stsd"]
    entry = top_level_boxes(stsd[8:], 0)[0]  # full box header (4) + entry_count (4)
    body = stsd[8 + entry.offset + entry.header : 8 + entry.end]
    if handler == "vide" and entry.type in ("avc1", "avc3"):
        return _avc_entry(entry.type, body)
    if handler == "soun" and entry.type == "mp4a":
        return _mp4a_entry(body)
    raise PackagingError(f"unsupported track: handler {handler!r}, sample entry {entry.type!r}")


def _avc_entry(kind: str, body: bytes) -> dict:
    # VisualSampleEntry: 8 bytes SampleEntry + 70 bytes of visual fields, then child boxes.
    width, height = struct.unpack(">HH", body[24:28])
    avcc = _children(body[78:]).get("avcC")
    if avcc is None or len(avcc) < 4:
        raise PackagingError("avc sample entry without avcC")
    codecs = f"{kind}.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"  # RFC 6381 §3.3: profile, constraints, level
    return {"kind": "video", "codecs": codecs, "width": width, "height": height}


def _mp4a_entry(body: bytes) -> dict:
    # AudioSampleEntry: 8 bytes SampleEntry + 20 bytes of audio fields, then esds.
    channels = struct.unpack(">H", body[16:18])[0]
    sample_rate = struct.unpack(">I", body[24:28])[0] >> 16
    esds = _children(body[28:]).get("esds")
    if esds is None:
        raise PackagingError("mp4a sample entry without esds")
    oti, aot = _esds_codec(esds[4:])
    codecs = f"mp4a.{oti:x}.{aot}"
    return {"kind": "audio", "codecs": codecs, "sample_rate": sample_rate, "channels": channels}


def _esds_codec(d: bytes) -> tuple[int, int]:
    """ISO/IEC 14496-1 descriptors → (objectTypeIndication, audioObjectType) (RFC 6381 §3.3)."""
    pos, oti, aot = 0, 0, 0
    while pos < len(d):
        tag = d[pos]
        pos, size = _descriptor_size(d, pos + 1)
        if tag == 0x03:  # ES_Descriptor: ES_ID(2) + flags(1), optional fields by flags; then children
            flags = d[pos + 2]
            pos += 3 + (2 if flags & 0x80 else 0)  # streamDependenceFlag: dependsOn_ES_ID
            if flags & 0x40:  # URL_Flag: URLlength + URLstring
                pos += 1 + d[pos]
            pos += 2 if flags & 0x20 else 0  # OCRstreamFlag: OCR_ES_Id
        elif tag == 0x04:  # DecoderConfigDescriptor: 13 fixed bytes, then DecoderSpecificInfo
            oti = d[pos]
            pos += 13
        elif tag == 0x05:  # DecoderSpecificInfo = AudioSpecificConfig; first 5 bits: audioObjectType
            aot = d[pos] >> 3
            break
        else:
            pos += size
    if not oti:
        raise PackagingError("esds without a DecoderConfigDescriptor")
    return oti, aot


def _descriptor_size(d: bytes, pos: int) -> tuple[int, int]:
    size = 0
    for _ in range(4):  # expandable size: 7 bits per byte, high bit = more
        byte = d[pos]
        pos += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return pos, size


def layout_from_bytes(data: bytes) -> Layout:
    """`parse_layout` over a whole file held in memory."""
    boxes = top_level_boxes(data)
    payload = {b.type: data[b.offset + b.header : b.end] for b in boxes if b.type in ("moov", "sidx")}
    if "moov" not in payload or "sidx" not in payload:
        raise PackagingError(f"not a fragmented MP4 with moov and sidx: {[b.type for b in boxes][:8]}")
    return parse_layout(boxes, payload["moov"], payload["sidx"])


def inspect_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> PackagedFile:
    """Read a rendition file's layout (box headers, moov, sidx) and its size and SHA-256. Blocking I/O:
    call it in a thread (`asyncio.to_thread`)."""
    size = os.path.getsize(path)
    boxes: list[Box] = []
    payload: dict[str, bytes] = {}
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        pos = 0
        while pos + 8 <= size:
            f.seek(pos)
            box = _header(f.read(16), pos, size - pos)
            boxes.append(box)
            if box.type in ("moov", "sidx"):
                f.seek(box.offset + box.header)
                payload[box.type] = f.read(box.size - box.header)
            pos = box.end
        f.seek(0)
        while block := f.read(chunk):
            digest.update(block)
    if "moov" not in payload or "sidx" not in payload:
        raise PackagingError(f"{path}: not a fragmented MP4 with moov and sidx")
    return PackagedFile(parse_layout(boxes, payload["moov"], payload["sidx"]), size, digest.hexdigest())


def layout_to_dict(layout: Layout) -> dict:
    """JSON-ready form for the catalog; fragments are contiguous, so sizes and durations suffice."""
    first = layout.fragments[0].offset
    return {
        "kind": layout.kind, "codecs": layout.codecs, "timescale": layout.timescale,
        "init": [layout.init.first, layout.init.last], "index": [layout.index.first, layout.index.last],
        "first_offset": first, "sizes": [f.size for f in layout.fragments],
        "durations": [f.duration for f in layout.fragments], "width": layout.width, "height": layout.height,
        "sample_rate": layout.sample_rate, "channels": layout.channels,
    }


def layout_from_dict(d: dict) -> Layout:
    """Inverse of `layout_to_dict`."""
    refs = list(zip(d["sizes"], d["durations"], strict=True))
    return Layout(
        kind=d["kind"], codecs=d["codecs"], timescale=d["timescale"], init=ByteRange(*d["init"]),
        index=ByteRange(*d["index"]), fragments=_fragments(refs, d["first_offset"]), width=d["width"],
        height=d["height"], sample_rate=d["sample_rate"], channels=d["channels"],
    )
