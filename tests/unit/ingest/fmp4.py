"""Build small synthetic fragmented MP4 files box by box (ISO/IEC 14496-12), for packaging tests."""

import struct


def box(kind: str, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind.encode()) + payload


def full(kind: str, payload: bytes, version: int = 0) -> bytes:
    return box(kind, bytes([version, 0, 0, 0]) + payload)


def avc_entry(width=1280, height=720, profile=0x64, compat=0x00, level=0x1F) -> bytes:
    visual = bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", width, height)
    visual += bytes(4 + 4 + 4 + 2 + 32 + 2 + 2)
    avcc = box("avcC", bytes([1, profile, compat, level, 0xFF, 0xE0, 0x00]))
    return box("avc1", visual + avcc)


def mp4a_entry(channels=2, rate=48000, oti=0x40, aot=2) -> bytes:
    audio = bytes(6) + struct.pack(">H", 1) + bytes(8) + struct.pack(">HHHHI", channels, 16, 0, 0, rate << 16)
    dsi = bytes([0x05, 2, (aot << 3) | 0x01, 0x90])
    dcd_body = bytes([oti, 0x15]) + bytes(3) + struct.pack(">II", 128000, 128000) + dsi
    dcd = bytes([0x04, len(dcd_body)]) + dcd_body
    es_body = struct.pack(">H", 1) + bytes([0]) + dcd
    esds = full("esds", bytes([0x03, len(es_body)]) + es_body)
    return box("mp4a", audio + esds)


def moov(entry: bytes, handler: str, timescale: int, tracks: int = 1) -> bytes:
    hdlr = full("hdlr", bytes(4) + handler.encode() + bytes(12) + b"x\0")
    mdhd = full("mdhd", bytes(8) + struct.pack(">II", timescale, 0) + bytes(4))
    stsd = full("stsd", struct.pack(">I", 1) + entry)
    minf = box("minf", box("stbl", stsd))
    trak = box("trak", box("mdia", mdhd + hdlr + minf))
    return box("moov", full("mvhd", bytes(96)) + trak * tracks)


def sidx(timescale: int, refs, first_offset: int = 0, version: int = 0, hierarchical: bool = False) -> bytes:
    head = struct.pack(">II", 1, timescale)
    head += struct.pack(">II" if version == 0 else ">QQ", 0, first_offset)
    head += struct.pack(">HH", 0, len(refs))
    body = b"".join(
        struct.pack(">III", (size & 0x7FFFFFFF) | (0x80000000 if hierarchical else 0), duration, 0x90000000)
        for size, duration in refs
    )
    return full("sidx", head + body, version)


def fragment(media_bytes: int) -> bytes:
    return box("moof", full("mfhd", struct.pack(">I", 1))) + box("mdat", bytes(media_bytes))


def file(entry: bytes, handler: str, timescale: int, fragment_sizes, duration: int, version: int = 0) -> bytes:
    frags = [fragment(n) for n in fragment_sizes]
    index = sidx(timescale, [(len(f), duration) for f in frags], version=version)
    return box("ftyp", b"iso6\0\0\0\0iso6") + moov(entry, handler, timescale) + index + b"".join(frags)
