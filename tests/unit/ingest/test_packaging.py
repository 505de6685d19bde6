"""Box-layout parsing of single-file fMP4 renditions (pure), on synthetic files."""

import hashlib

import pytest

from control_plane.packaging import (
    ByteRange,
    PackagingError,
    inspect_file,
    layout_from_bytes,
    layout_from_dict,
    layout_to_dict,
    top_level_boxes,
)

from . import fmp4


def video_file(version=0):
    return fmp4.file(fmp4.avc_entry(), "vide", 12800, [1000, 2000, 1500], 25600, version)


@pytest.mark.parametrize("version", [0, 1])
def test_video_layout(version):
    data = video_file(version)
    layout = layout_from_bytes(data)
    boxes = top_level_boxes(data)
    moov = next(b for b in boxes if b.type == "moov")
    sidx = next(b for b in boxes if b.type == "sidx")
    moofs = [b.offset for b in boxes if b.type == "moof"]
    assert layout.kind == "video" and layout.codecs == "avc1.64001f"
    assert (layout.width, layout.height, layout.timescale) == (1280, 720, 12800)
    assert layout.init == ByteRange(0, moov.end - 1)
    assert layout.index == ByteRange(sidx.offset, sidx.end - 1)
    assert [f.offset for f in layout.fragments] == moofs
    assert layout.fragments[-1].range.last == len(data) - 1
    assert layout.duration_s == 6.0
    big = layout.fragments[1]
    assert layout.peak_bps == big.size * 8 // 2


def test_audio_layout_codecs_from_esds():
    data = fmp4.file(fmp4.mp4a_entry(channels=6, rate=44100, aot=5), "soun", 44100, [300, 300], 88200)
    layout = layout_from_bytes(data)
    assert (layout.kind, layout.codecs, layout.channels, layout.sample_rate) == ("audio", "mp4a.40.5", 6, 44100)


def test_byte_range_forms():
    r = ByteRange(802, 889)
    assert (r.length, r.dash(), r.hls()) == (88, "802-889", "88@802")


def test_dict_round_trip():
    layout = layout_from_bytes(video_file())
    assert layout_from_dict(layout_to_dict(layout)) == layout


def _swap_sidx_after_first_fragment(data):
    boxes = top_level_boxes(data)
    chunks = {b.type + str(i): data[b.offset:b.end] for i, b in enumerate(boxes)}
    order = list(chunks)
    sidx = next(k for k in order if k.startswith("sidx"))
    order.remove(sidx)
    order.insert(order.index(next(k for k in order if k.startswith("mdat"))) + 1, sidx)
    return b"".join(chunks[k] for k in order)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: fmp4.box("ftyp", b"x" * 8) + fmp4.moov(fmp4.avc_entry(), "vide", 1000), "moov and sidx"),
        (lambda: video_file() + fmp4.sidx(12800, [(10, 10)]), "exactly one sidx"),
        (lambda: _swap_sidx_after_first_fragment(video_file()), "precede the first moof"),
        (lambda: fmp4.box("ftyp", b"") + fmp4.moov(fmp4.avc_entry(), "vide", 1000)
         + fmp4.sidx(1000, [(999, 10)], hierarchical=True) + fmp4.fragment(10), "hierarchical"),
        (lambda: fmp4.box("ftyp", b"") + fmp4.moov(fmp4.avc_entry(), "vide", 1000)
         + fmp4.sidx(1000, [(7, 10), (30, 10)]) + fmp4.fragment(10) + fmp4.fragment(10), "not moof boxes"),
        (lambda: fmp4.box("ftyp", b"") + fmp4.moov(fmp4.avc_entry(), "vide", 1000, tracks=2)
         + fmp4.sidx(1000, [(35, 10)]) + fmp4.fragment(10), "one track"),
        (lambda: fmp4.box("ftyp", b"") + fmp4.moov(fmp4.avc_entry(), "text", 1000)
         + fmp4.sidx(1000, [(35, 10)]) + fmp4.fragment(10), "unsupported track"),
        (lambda: fmp4.box("ftyp", b"") + fmp4.moov(fmp4.avc_entry(), "vide", 1000)
         + fmp4.sidx(0, [(35, 10)]) + fmp4.fragment(10), "zero timescale"),
    ],
)
def test_rejections(make, message):
    with pytest.raises(PackagingError) as err:
        layout_from_bytes(make())
    assert message in str(err.value)


def test_impossible_box_size():
    with pytest.raises(PackagingError, match="impossible size"):
        top_level_boxes(b"\x00\x00\x00\x04free" + bytes(8))


def test_inspect_file_reads_layout_size_and_sha256(tmp_path):
    data = video_file()
    path = tmp_path / "v.mp4"
    path.write_bytes(data)
    packaged = inspect_file(path, chunk=7)
    assert packaged.size == len(data)
    assert packaged.sha256 == hashlib.sha256(data).hexdigest()
    assert packaged.layout == layout_from_bytes(data)
