"""Byte builders for protocol fixtures, written from the protocol documentation with ``struct``.

They deliberately do not use the codec under test, so a test that parses a built packet checks the
codec against an independent encoding.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from dbmux.ingress.protocol.framing import FrameReader


def u8(v: int) -> bytes:
    return struct.pack("<B", v)


def u16(v: int) -> bytes:
    return struct.pack("<H", v)


def u24(v: int) -> bytes:
    return struct.pack("<I", v)[:3]


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def lenenc(v: int) -> bytes:
    if v < 251:
        return u8(v)
    if v < 1 << 16:
        return b"\xfc" + u16(v)
    if v < 1 << 24:
        return b"\xfd" + u24(v)
    return b"\xfe" + u64(v)


def lstr(s: bytes) -> bytes:
    return lenenc(len(s)) + s


def packet(payload: bytes, seq: int = 0) -> bytes:
    """One frame (payload must be < 16 MiB)."""
    assert len(payload) < 0xFFFFFF
    return u24(len(payload)) + u8(seq) + payload


def ok(affected: int = 0, insert_id: int = 0, status: int = 0x0002, warnings: int = 0, rest: bytes = b"",
       header: int = 0x00) -> bytes:  # fmt: skip
    return u8(header) + lenenc(affected) + lenenc(insert_id) + u16(status) + u16(warnings) + rest


def err(errno: int, sqlstate: bytes = b"HY000", message: bytes = b"") -> bytes:
    return b"\xff" + u16(errno) + b"#" + sqlstate + message


def eof(warnings: int = 0, status: int = 0x0002) -> bytes:
    return b"\xfe" + u16(warnings) + u16(status)


def column_def(name: bytes, type_code: int = 253, flags: int = 0, charset: int = 45, length: int = 255,
               schema: bytes = b"db", table: bytes = b"t", decimals: int = 0) -> bytes:  # fmt: skip
    return (
        lstr(b"def") + lstr(schema) + lstr(table) + lstr(table) + lstr(name) + lstr(name)
        + b"\x0c" + u16(charset) + u32(length) + u8(type_code) + u16(flags) + u8(decimals) + b"\x00\x00"
    )  # fmt: skip


def text_row(*values: bytes | None) -> bytes:
    return b"".join(b"\xfb" if v is None else lstr(v) for v in values)


def session_sysvar(name: bytes, value: bytes) -> bytes:
    data = lstr(name) + lstr(value)
    return u8(0) + lstr(data)


def session_gtids(gtids: bytes) -> bytes:
    data = b"\x00" + lstr(gtids)
    return u8(3) + lstr(data)


# ---- feeding modes (h11 tests/test_io.py style) ----------------------------------------------------
TRAILING = packet(b"\x0enext-packet", 7)


def chunkings(wire: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """The three ways each table case is fed: whole, byte by byte, and with trailing bytes."""
    yield "whole", [wire]
    yield "byte_by_byte", [wire[i : i + 1] for i in range(len(wire))]
    yield "trailing", [wire + TRAILING]


def read_all_payloads(wire: bytes, mode_chunks: list[bytes], reader: FrameReader | None = None) -> list[bytes]:
    """Feed the chunks, collecting payloads after every chunk; checks trailing bytes stay buffered."""
    reader = reader or FrameReader()
    payloads = []
    for chunk in mode_chunks:
        reader.feed(chunk)
        while (got := reader.next_payload()) is not None:
            payloads.append(got.payload)
    return payloads


def feed_each_way(wire: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """Yields (mode, payloads) with the trailing packet's payload removed and checked."""
    for mode, chunks in chunkings(wire):
        payloads = read_all_payloads(wire, chunks)
        if mode == "trailing":
            assert payloads[-1] == b"\x0enext-packet", "trailing packet was lost or merged"
            payloads = payloads[:-1]
        yield mode, payloads


def feed_buffered(reader, frames: FrameReader, skim: bool) -> None:
    """Feed a ResponseReader everything ``frames`` holds, skimming first when asked (as the session's
    relay does), until the response is complete or the bytes run out. ProtocolError propagates."""
    while not reader.complete:
        if skim and frames.take_skimmed(reader.skim) and reader.complete:
            break
        pkt = frames.next_packet()
        if pkt is None:
            break
        reader.feed(pkt.payload)
