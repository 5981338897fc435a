"""Pure primitives for reading and writing protocol fields.

Readers take ``(buf, pos)`` and return ``(value, new_pos)``; writers return ``bytes``. Every reader raises
:class:`MalformedPacket` on truncation, never ``IndexError``. ``buf`` is ``bytes`` or ``bytearray``
(what the type says: the compiled build checks it); returned strings are always ``bytes``.
"""

from __future__ import annotations

from dbmux.ingress.protocol.errors import MalformedPacket

_LENENC_NULL = 0xFB
_LENENC_2 = 0xFC
_LENENC_3 = 0xFD
_LENENC_8 = 0xFE


def _need(buf: bytes, pos: int, n: int, what: str) -> None:
    if n < 0 or pos + n > len(buf):
        raise MalformedPacket(
            f"truncated packet: {what} needs {n} bytes at offset {pos}, payload is {len(buf)} bytes"
        )


def read_fixed_int(buf: bytes, pos: int, n: int) -> tuple[int, int]:
    """Read an ``n``-byte little-endian unsigned integer."""
    end = pos + n
    if n < 0 or end > len(buf):  # (checked inline: this runs for most fields of every packet)
        _need(buf, pos, n, f"int<{n}>")
    return int.from_bytes(buf[pos:end], "little"), end


def write_fixed_int(value: int, n: int) -> bytes:
    """Write ``value`` as an ``n``-byte little-endian unsigned integer."""
    if value < 0 or value >= 1 << (8 * n):
        raise ValueError(f"{value} does not fit in int<{n}>")
    return value.to_bytes(n, "little")


def read_lenenc_int(buf: bytes, pos: int) -> tuple[int, int]:
    """Read a length-encoded integer. ``0xFB`` (NULL) and ``0xFF`` are not integers and raise."""
    if pos + 1 > len(buf):
        _need(buf, pos, 1, "int<lenenc>")
    first = buf[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == _LENENC_2:
        return read_fixed_int(buf, pos + 1, 2)
    if first == _LENENC_3:
        return read_fixed_int(buf, pos + 1, 3)
    if first == _LENENC_8:
        return read_fixed_int(buf, pos + 1, 8)
    raise MalformedPacket(f"byte 0x{first:02X} at offset {pos} does not start a length-encoded integer")


def write_lenenc_int(value: int) -> bytes:
    """Write the shortest length-encoded form of ``value`` (0 <= value < 2**64)."""
    if value < 0:
        raise ValueError(f"length-encoded integers are unsigned, got {value}")
    if value < 0xFB:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    if value < 1 << 64:
        return b"\xfe" + value.to_bytes(8, "little")
    raise ValueError(f"{value} does not fit in a length-encoded integer")


def lenenc_int_size(value: int) -> int:
    """Number of bytes :func:`write_lenenc_int` uses for ``value``."""
    if value < 0xFB:
        return 1
    if value < 1 << 16:
        return 3
    if value < 1 << 24:
        return 4
    return 9


def read_lenenc_str(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Read a length-encoded string."""
    length, pos = read_lenenc_int(buf, pos)
    end = pos + length
    if end > len(buf):
        _need(buf, pos, length, "string<lenenc>")
    return bytes(buf[pos:end]), end


def read_lenenc_str_or_null(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    """Read a text-row value: a length-encoded string, or ``None`` for the NULL marker ``0xFB``."""
    _need(buf, pos, 1, "string<lenenc>")
    if buf[pos] == _LENENC_NULL:
        return None, pos + 1
    return read_lenenc_str(buf, pos)


def write_lenenc_str(value: bytes) -> bytes:
    """Write ``value`` as a length-encoded string."""
    return write_lenenc_int(len(value)) + bytes(value)


def read_nul_str(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Read a NUL-terminated string; the returned position is past the NUL."""
    end = buf.find(b"\x00", pos)
    if end < 0:
        raise MalformedPacket(f"string<NUL> starting at offset {pos} has no terminating NUL byte")
    return bytes(buf[pos:end]), end + 1


def write_nul_str(value: bytes) -> bytes:
    """Write ``value`` followed by a NUL byte. ``value`` must not contain NUL."""
    if b"\x00" in value:
        raise ValueError("a NUL-terminated string cannot contain a NUL byte")
    return bytes(value) + b"\x00"


def read_fixed_str(buf: bytes, pos: int, n: int) -> tuple[bytes, int]:
    """Read exactly ``n`` bytes."""
    end = pos + n
    if n < 0 or end > len(buf):
        _need(buf, pos, n, f"string<{n}>")
    return bytes(buf[pos:end]), end


def read_eof_str(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Read the rest of the payload."""
    if pos > len(buf):
        raise MalformedPacket(f"string<EOF> starts at offset {pos}, past the {len(buf)}-byte payload")
    return bytes(buf[pos:]), len(buf)


def read_nul_str_or_eof(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Read a string ending at a NUL byte or at the end of the payload (some servers omit the NUL)."""
    try:
        return read_nul_str(buf, pos)
    except MalformedPacket:
        return read_eof_str(buf, pos)


def require_end(buf: bytes, pos: int, what: str) -> None:
    """Raise unless ``pos`` is exactly the end of ``buf`` (no trailing garbage)."""
    if pos != len(buf):
        raise MalformedPacket(f"{what}: {len(buf) - pos} unexpected trailing bytes at offset {pos}")
