"""Canonical values and row/chunk digests for ``dbmux verify``. Pure: no I/O.

A primary (MySQL/MariaDB via aiomysql) and a target (MySQL via aiomysql, PostgreSQL via asyncpg) hand
back different Python types for the same logical value. :func:`canonical` maps each to one text form,
so a row's digest only depends on its logical content. The rules (the column *kind* comes from the
primary's column type and, for JSON, the target's; see :func:`column_kind`):

================================  ===========================================================
value                             canonical text
================================  ===========================================================
``None`` (SQL NULL)               ``None`` (encoded distinctly from every string, also ``''``)
``bool``                          ``'1'`` / ``'0'`` — TINYINT(1) 1 equals PostgreSQL ``true``
``int``                           decimal digits: ``'42'``, ``'-7'``
``Decimal``                       by numeric value, fixed notation, trailing zeros stripped:
                                  DECIMAL(10,2) ``1.50`` equals NUMERIC ``1.5`` and ``1.500``;
                                  an integral Decimal equals the ``int`` (BIGINT UNSIGNED
                                  stored as NUMERIC(20)); ``-0.00`` is ``'0'``. The scale is
                                  deliberately not compared: a target column without typmod
                                  keeps whatever scale was written, which is not a data change.
``float``                         ``repr(float)`` (round-trip exact) for DOUBLE; for kind
                                  ``float32`` (MySQL FLOAT) the value is rounded to single
                                  precision and printed with 9 significant digits, so MySQL's
                                  ``1.1`` equals PostgreSQL ``real`` read back as 1.100000023…
``datetime``                      ``YYYY-MM-DD HH:MM:SS.ffffff`` (always microseconds); aware
                                  values (``timestamptz``) converted to UTC first — MySQL
                                  sessions run with ``time_zone = '+00:00'``
``date``                          ``YYYY-MM-DD``
``timedelta`` (MySQL TIME)        ``[-]HH:MM:SS.ffffff`` (hours may exceed 24)
``time`` (PostgreSQL time)        ``HH:MM:SS.ffffff`` — equals the timedelta of the same time
``bytes`` / ``bytearray``         ``\\x`` + lowercase hex (bytea's own text form); kind
                                  ``binary`` (MySQL BINARY(n)) strips trailing 0x00 first: MySQL
                                  pads BINARY(n), a bytea copy may not be padded
``str``                           as is; kind ``char`` strips trailing spaces (MySQL CHAR drops
                                  them, PostgreSQL ``char(n)`` pads them); kind ``json`` is
                                  ``json.loads`` + ``json.dumps(sort_keys=True)`` compact, so
                                  jsonb's key order and spacing do not matter
kind ``bit``                      the unsigned integer: BIT(n) bytes, ``asyncpg.BitString``,
                                  ``bool``, ``int`` all become decimal digits
``list`` / ``tuple`` (arrays)     elements joined with ``,`` — a SET stored as ``text[]``
anything else (UUID, enum…)       ``str(value)``
================================  ===========================================================

ENUM and SET come back as ``str`` from both drivers and compare as text.

A row is encoded as a length-prefixed sequence of canonical values (NULL has its own marker) and
hashed with BLAKE2b-128 (:func:`row_digest`). A chunk digest (:func:`chunk_digest`) hashes the
*sorted* row digests: it does not depend on the order a server returned the rows in (PostgreSQL and
MySQL collations can order text keys differently).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import struct
from collections.abc import Iterable, Sequence
from decimal import Decimal
from hashlib import blake2b
from typing import Any

PLAIN, CHAR, BINARY, JSON, FLOAT32, BIT = "plain", "char", "binary", "json", "float32", "bit"
DIGEST_BYTES = 16


def column_kind(mysql_data_type: str, *, target_type: str = "", json_checked: bool = False) -> str:
    """The normalisation kind of one column, from the primary's ``DATA_TYPE`` (and the target's type).

    ``json_checked``: MariaDB stores JSON as LONGTEXT with a ``json_valid(col)`` CHECK constraint.
    """
    t = mysql_data_type.lower()
    if t == "json" or json_checked or target_type.lower() in ("json", "jsonb"):
        return JSON
    if t == "float":
        return FLOAT32
    if t == "char":
        return CHAR
    if t == "binary":
        return BINARY
    if t == "bit":
        return BIT
    return PLAIN


def _decimal(d: Decimal) -> str:
    if not d.is_finite():
        return str(d)
    if d == 0:
        return "0"
    return format(d.normalize(), "f")


def _clock(negative: bool, total_us: int) -> str:
    secs, us = divmod(total_us, 1_000_000)
    mins, s = divmod(secs, 60)
    h, m = divmod(mins, 60)
    return f"{'-' if negative else ''}{h:02d}:{m:02d}:{s:02d}.{us:06d}"


def _timedelta(td: dt.timedelta) -> str:
    total = (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds
    return _clock(total < 0, abs(total))


def _float32(x: float) -> str:
    try:
        x = struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        pass
    return f"{x:.9g}"


def _bit_int(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return str(int.from_bytes(bytes(value), "big"))
    if isinstance(value, (bool, int)):
        return str(int(value))
    to_int = getattr(value, "to_int", None)  # asyncpg.BitString
    if to_int is not None:
        return str(to_int())
    if isinstance(value, str) and value and set(value) <= {"0", "1"}:
        return str(int(value, 2))
    return str(value)


def _json(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(value: Any, kind: str = PLAIN) -> str | None:
    """The canonical text of one value (``None`` for SQL NULL); see the module docstring."""
    if value is None:
        return None
    if kind == JSON:
        return _json(value)
    if kind == BIT:
        return _bit_int(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, float):
        return _float32(value) if kind == FLOAT32 else repr(value)
    if isinstance(value, str):
        return value.rstrip(" ") if kind == CHAR else value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
                f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}")
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if isinstance(value, dt.timedelta):
        return _timedelta(value)
    if isinstance(value, dt.time):
        total = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
        return _clock(False, total)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return "\\x" + (data.rstrip(b"\x00") if kind == BINARY else data).hex()
    if isinstance(value, (list, tuple)):
        return ",".join("" if v is None else (canonical(v, kind) or "") for v in value)
    if isinstance(value, dict):
        return _json(value)
    if isinstance(value, ipaddress.IPv6Address):  # a PostgreSQL inet holding a MariaDB INET6
        return _inet6(value.packed)
    return str(value)


def _inet6(p: bytes) -> str:
    """MariaDB's text of an INET6: IPv4-mapped (``::ffff:a.b.c.d``) and IPv4-compatible addresses beyond
    ``::ffff`` (``::a.b.c.d``) in mixed notation, the rest as RFC 5952 (Python's) has them."""
    if p[:10] == bytes(10) and (p[10:12] == b"\xff\xff" or (p[10:12] == b"\0\0" and p[12:14] != b"\0\0")):
        return ("::ffff:" if p[10:12] == b"\xff\xff" else "::") + str(ipaddress.IPv4Address(p[12:]))
    return str(ipaddress.IPv6Address(p))


def encode_row(values: Sequence[Any], kinds: Sequence[str]) -> bytes:
    """The canonical byte encoding of a row: per value ``\\x00`` (NULL) or ``\\x01`` + length + UTF-8."""
    out = bytearray()
    for value, kind in zip(values, kinds, strict=True):
        text = canonical(value, kind)
        if text is None:
            out += b"\x00"
        else:
            data = text.encode("utf-8", "surrogatepass")
            out += b"\x01" + len(data).to_bytes(4, "big") + data
    return bytes(out)


def row_digest(values: Sequence[Any], kinds: Sequence[str]) -> bytes:
    return blake2b(encode_row(values, kinds), digest_size=DIGEST_BYTES).digest()


def key_text(values: Sequence[Any], kinds: Sequence[str]) -> tuple[str | None, ...]:
    """A primary key as canonical texts: equal for the same key read from either server."""
    return tuple(canonical(v, k) for v, k in zip(values, kinds, strict=True))


def chunk_digest(row_digests: Iterable[bytes]) -> bytes:
    """Digest of a set of rows, independent of the order they were read in."""
    h = blake2b(digest_size=DIGEST_BYTES)
    for d in sorted(row_digests):
        h.update(d)
    return h.digest()
