"""Values of the binary protocol: COM_STMT_EXECUTE parameters and binary result rows.

Decoding needs each value's type code and unsigned flag (from the execute's parameter types or from
the column definitions); both are passed in. Mapping:

- TINY/SHORT/YEAR/INT24/LONG/LONGLONG -> int (signed unless ``unsigned``)
- FLOAT/DOUBLE -> float; DECIMAL/NEWDECIMAL -> decimal.Decimal
- string, blob, JSON, ENUM, SET, BIT, GEOMETRY, VECTOR -> bytes (the charset is the caller's business)
- DATE -> datetime.date, DATETIME/TIMESTAMP -> datetime.datetime; a zero or otherwise invalid date
  (``0000-00-00``, ``2024-02-30``) that Python cannot represent -> its text, e.g. ``'0000-00-00 00:00:00'``
- TIME -> datetime.timedelta (negative allowed)
- NULL type (and any value whose NULL-bitmap bit is set) -> None
"""

from __future__ import annotations

import datetime
import decimal
import re
import struct
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.encoding import read_fixed_int, read_fixed_str, read_lenenc_str, write_lenenc_str
from dbmux.ingress.protocol.errors import MalformedPacket

BinaryValue = (
    None | int | float | decimal.Decimal | bytes | datetime.date | datetime.datetime | datetime.timedelta | str
)

_INT_SIZES = {
    c.MYSQL_TYPE_TINY: 1,
    c.MYSQL_TYPE_SHORT: 2,
    c.MYSQL_TYPE_YEAR: 2,
    c.MYSQL_TYPE_INT24: 4,
    c.MYSQL_TYPE_LONG: 4,
    c.MYSQL_TYPE_LONGLONG: 8,
}
_STRING_TYPES = frozenset(
    {
        c.MYSQL_TYPE_VARCHAR,
        c.MYSQL_TYPE_VAR_STRING,
        c.MYSQL_TYPE_STRING,
        c.MYSQL_TYPE_ENUM,
        c.MYSQL_TYPE_SET,
        c.MYSQL_TYPE_TINY_BLOB,
        c.MYSQL_TYPE_MEDIUM_BLOB,
        c.MYSQL_TYPE_LONG_BLOB,
        c.MYSQL_TYPE_BLOB,
        c.MYSQL_TYPE_BIT,
        c.MYSQL_TYPE_GEOMETRY,
        c.MYSQL_TYPE_JSON,
        c.MYSQL_TYPE_VECTOR,
    }
)
_DECIMAL_TYPES = frozenset({c.MYSQL_TYPE_DECIMAL, c.MYSQL_TYPE_NEWDECIMAL})
_DATE_TYPES = frozenset({c.MYSQL_TYPE_DATE, c.MYSQL_TYPE_NEWDATE})
_DATETIME_TYPES = frozenset({c.MYSQL_TYPE_DATETIME, c.MYSQL_TYPE_TIMESTAMP})


@dataclass(frozen=True, slots=True)
class ParamType:
    """A binary-protocol value type: the MYSQL_TYPE_* code and the unsigned flag."""

    type: int
    unsigned: bool = False

    @classmethod
    def parse(cls, buf: bytes, pos: int) -> tuple[ParamType, int]:
        type_code, pos = read_fixed_int(buf, pos, 1)
        flags, pos = read_fixed_int(buf, pos, 1)
        return cls(type_code, bool(flags & c.PARAM_UNSIGNED_FLAG)), pos

    def encode(self) -> bytes:
        return bytes((self.type, c.PARAM_UNSIGNED_FLAG if self.unsigned else 0))


def null_bitmap_bytes(count: int, offset: int = 0) -> int:
    """Size of a NULL bitmap for ``count`` values (offset 0 for parameters, 2 for binary rows)."""
    return (count + offset + 7) // 8


def is_null(bitmap: bytes, index: int, offset: int = 0) -> bool:
    bit = index + offset
    return bool(bitmap[bit >> 3] & (1 << (bit & 7)))


def build_null_bitmap(values: Sequence[object], offset: int = 0) -> bytes:
    bitmap = bytearray(null_bitmap_bytes(len(values), offset))
    for i, value in enumerate(values):
        if value is None:
            bit = i + offset
            bitmap[bit >> 3] |= 1 << (bit & 7)
    return bytes(bitmap)


def _date_text(y: int, mo: int, d: int) -> str:
    return f"{y:04d}-{mo:02d}-{d:02d}"


def _decode_date(buf: bytes, pos: int, type_code: int) -> tuple[BinaryValue, int]:
    length, pos = read_fixed_int(buf, pos, 1)
    if length not in (0, 4, 7, 11):
        raise MalformedPacket(f"binary DATE/DATETIME value of length {length}; valid lengths are 0, 4, 7, 11")
    raw, pos = read_fixed_str(buf, pos, length)
    y = mo = d = h = mi = s = us = 0
    if length >= 4:
        y, mo, d = int.from_bytes(raw[0:2], "little"), raw[2], raw[3]
    if length >= 7:
        h, mi, s = raw[4], raw[5], raw[6]
    if length == 11:
        us = int.from_bytes(raw[7:11], "little")
    try:
        if type_code in _DATE_TYPES:
            return datetime.date(y, mo, d), pos
        return datetime.datetime(y, mo, d, h, mi, s, us), pos
    except (ValueError, OverflowError):
        text = _date_text(y, mo, d)
        if type_code not in _DATE_TYPES:
            text += f" {h:02d}:{mi:02d}:{s:02d}" + (f".{us:06d}" if us else "")
        return text, pos


def _decode_time(buf: bytes, pos: int) -> tuple[datetime.timedelta, int]:
    length, pos = read_fixed_int(buf, pos, 1)
    if length not in (0, 8, 12):
        raise MalformedPacket(f"binary TIME value of length {length}; valid lengths are 0, 8, 12")
    raw, pos = read_fixed_str(buf, pos, length)
    if length == 0:
        return datetime.timedelta(0), pos
    negative = raw[0] == 1
    days = int.from_bytes(raw[1:5], "little")
    us = int.from_bytes(raw[8:12], "little") if length == 12 else 0
    try:
        value = datetime.timedelta(days=days, hours=raw[5], minutes=raw[6], seconds=raw[7], microseconds=us)
    except OverflowError as exc:
        raise MalformedPacket(f"binary TIME value of {days} days is out of range") from exc
    return (-value if negative else value), pos


def decode_binary_value(buf: bytes, pos: int, type_code: int, unsigned: bool = False) -> tuple[BinaryValue, int]:
    """Decode one non-NULL binary value of ``type_code`` at ``pos``; returns ``(value, new_pos)``."""
    size = _INT_SIZES.get(type_code)
    if size is not None:
        raw, pos = read_fixed_str(buf, pos, size)
        return int.from_bytes(raw, "little", signed=not unsigned), pos
    if type_code in _STRING_TYPES:
        return read_lenenc_str(buf, pos)
    if type_code == c.MYSQL_TYPE_DOUBLE:
        raw, pos = read_fixed_str(buf, pos, 8)
        return struct.unpack("<d", raw)[0], pos
    if type_code == c.MYSQL_TYPE_FLOAT:
        raw, pos = read_fixed_str(buf, pos, 4)
        return struct.unpack("<f", raw)[0], pos
    if type_code in _DECIMAL_TYPES:
        raw, pos = read_lenenc_str(buf, pos)
        try:
            return decimal.Decimal(raw.decode("ascii")), pos
        except (UnicodeDecodeError, decimal.InvalidOperation) as exc:
            raise MalformedPacket(f"DECIMAL value {raw[:40]!r} is not a decimal number") from exc
    if type_code in _DATE_TYPES or type_code in _DATETIME_TYPES:
        return _decode_date(buf, pos, type_code)
    if type_code == c.MYSQL_TYPE_TIME:
        return _decode_time(buf, pos)
    if type_code == c.MYSQL_TYPE_NULL:
        return None, pos
    raise MalformedPacket(f"binary protocol value of unknown type {type_code}")


def decode_binary_values(
    buf: bytes, pos: int, types: Sequence[ParamType], bitmap: bytes, offset: int = 0,
    given: Mapping[int, BinaryValue] | None = None,
) -> tuple[tuple[BinaryValue, ...], int]:  # fmt: skip
    """Decode ``len(types)`` values that follow a NULL bitmap; returns ``(values, new_pos)``.

    ``given``: values by index that are not in ``buf`` at all (COM_STMT_EXECUTE parameters sent with
    COM_STMT_SEND_LONG_DATA): taken from the mapping, their NULL-bitmap bits ignored, as the server does.
    """
    values: list[BinaryValue] = []
    for i, ptype in enumerate(types):
        if given and i in given:
            values.append(given[i])
            continue
        if is_null(bitmap, i, offset):
            values.append(None)
            continue
        value, pos = decode_binary_value(buf, pos, ptype.type, ptype.unsigned)
        values.append(value)
    return tuple(values), pos


def _encode_date(value: datetime.date, type_code: int) -> bytes:
    out = bytearray(value.year.to_bytes(2, "little") + bytes((value.month, value.day)))
    if isinstance(value, datetime.datetime) and type_code not in _DATE_TYPES:
        if value.hour or value.minute or value.second or value.microsecond:
            out += bytes((value.hour, value.minute, value.second))
        if value.microsecond:
            out += value.microsecond.to_bytes(4, "little")
    return bytes((len(out),)) + out


_DATE_TEXT = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}):(\d{2})(?:\.(\d{6}))?)?\Z")


def _encode_date_text(text: str, type_code: int) -> bytes:
    """Encode the text form :func:`decode_binary_value` gives dates Python cannot hold ('0000-00-00')."""
    match = _DATE_TEXT.match(text)
    if match is None:
        raise ValueError(f"cannot encode text date {text!r}; expected 'YYYY-MM-DD[ HH:MM:SS[.ffffff]]'")
    y, mo, d, h, mi, s, us = (int(g) if g else 0 for g in match.groups())
    if not (y or mo or d or h or mi or s or us):
        return b"\x00"
    out = bytearray(y.to_bytes(2, "little") + bytes((mo, d)))
    if type_code not in _DATE_TYPES and (h or mi or s or us):
        out += bytes((h, mi, s))
        if us:
            out += us.to_bytes(4, "little")
    return bytes((len(out),)) + out


def _encode_time(value: datetime.timedelta) -> bytes:
    if not value:
        return b"\x00"
    negative = value < datetime.timedelta(0)
    value = abs(value)
    hours, rem = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rem, 60)
    out = bytes((1 if negative else 0,)) + value.days.to_bytes(4, "little") + bytes((hours, minutes, seconds))
    if value.microseconds:
        out += value.microseconds.to_bytes(4, "little")
    return bytes((len(out),)) + out


def encode_binary_value(value: BinaryValue, type_code: int, unsigned: bool = False) -> bytes:
    """Encode one non-NULL value as ``type_code`` (the inverse of :func:`decode_binary_value`)."""
    size = _INT_SIZES.get(type_code)
    if size is not None:
        if not isinstance(value, int):
            raise TypeError(f"type {type_code} needs an int, got {type(value).__name__}")
        return value.to_bytes(size, "little", signed=not unsigned)
    if type_code in _STRING_TYPES:
        # (anything but a str goes to bytes() as it is: bytes in practice; the cast is for mypy only)
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(cast(bytes, value))
        return write_lenenc_str(raw)
    if type_code == c.MYSQL_TYPE_DOUBLE:
        return struct.pack("<d", value)
    if type_code == c.MYSQL_TYPE_FLOAT:
        return struct.pack("<f", value)
    if type_code in _DECIMAL_TYPES:
        return write_lenenc_str(str(value).encode("ascii"))
    if type_code in _DATE_TYPES or type_code in _DATETIME_TYPES:
        if isinstance(value, str):
            return _encode_date_text(value, type_code)
        if not isinstance(value, datetime.date):
            raise TypeError(f"type {type_code} needs a datetime.date/datetime, got {type(value).__name__}")
        return _encode_date(value, type_code)
    if type_code == c.MYSQL_TYPE_TIME:
        if not isinstance(value, datetime.timedelta):
            raise TypeError(f"TIME needs a datetime.timedelta, got {type(value).__name__}")
        return _encode_time(value)
    if type_code == c.MYSQL_TYPE_NULL:
        return b""
    raise ValueError(f"cannot encode binary protocol type {type_code}")


def encode_binary_values(values: Sequence[BinaryValue], types: Sequence[ParamType],
                         absent: Container[int] = ()) -> bytes:
    """Encode the non-NULL ``values`` back to back (the NULL bitmap is separate), leaving out the
    indices in ``absent`` (values that travel in COM_STMT_SEND_LONG_DATA instead)."""
    return b"".join(
        encode_binary_value(v, t.type, t.unsigned)
        for i, (v, t) in enumerate(zip(values, types, strict=True)) if v is not None and i not in absent
    )
