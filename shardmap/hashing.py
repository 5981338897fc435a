"""Key hashing of the shard map: a canonical byte encoding of a key tuple, its 64-bit hash, jump hash.

Pure: no I/O. The encoding is documented in README.md ("Shard map") precisely enough to reimplement
it in another language; tests/unit/test_shardmap_hashing.py holds the test vectors.

The same column value reaches dbmux in different Python types depending on where it was read: an int
from a binlog row image, the text ``'5'`` from a statement literal, ``Decimal('5.00')`` from a DECIMAL
column, bytes from a binary column. Each is reduced to one *canonical text* first, so all of these
hash alike:

========================= ==========================================================================
value                     canonical text (UTF-8 encoded) or payload
========================= ==========================================================================
``None``                  NULL: tag 0x00, empty payload
bool                      ``1`` / ``0``
int                       decimal, ``-`` sign for negatives, no leading zeros
Decimal                   plain notation (no exponent), trailing fractional zeros and a trailing
                          ``.`` stripped, ``-0`` becomes ``0``
float                     integral and ``abs < 2**53``: the int text; otherwise Python ``repr()``
str                       itself
bytes, bytearray,         the raw bytes (same tag 0x01 as text: a binary key and a text key with the
memoryview                same bytes agree)
datetime                  ``YYYY-MM-DD HH:MM:SS`` plus ``.ffffff`` only when microseconds != 0
                          (tzinfo is ignored: MySQL values carry none)
date                      ``YYYY-MM-DD``
time                      ``HH:MM:SS`` plus ``.ffffff`` only when microseconds != 0
timedelta                 MySQL TIME text: ``[-]HH:MM:SS[.ffffff]``, hours zero-padded to at least two
                          digits and may exceed 24
========================= ==========================================================================
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from dbmux.shardmap.errors import ShardMapError

MASK64 = (1 << 64) - 1
# The 64-bit LCG multiplier of Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm"
# (2014), Figure 1 (also Guava's LinearCongruentialGenerator and ClickHouse's jumpConsistentHash).
JUMP_LCG_MULTIPLIER = 2862933555777941757

TAG_NULL = 0x00
TAG_VALUE = 0x01
_MAX_PAYLOAD = (1 << 32) - 1
_FLOAT_EXACT = 2**53


def _fraction(us: int) -> str:
    return f".{us:06d}" if us else ""


def canonical_text(value: Any) -> str:
    """The canonical text of one non-NULL, non-binary key value (see the module docstring)."""
    # Order matters: bool is an int, datetime is a date.
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ShardMapError(f"cannot hash the non-finite DECIMAL value {value!r}")
        text = format(value, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _FLOAT_EXACT:
            return str(int(value))
        return repr(value)
    if isinstance(value, _dt.datetime):
        return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
                f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}{_fraction(value.microsecond)}")
    if isinstance(value, _dt.date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if isinstance(value, _dt.time):
        return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}{_fraction(value.microsecond)}"
    if isinstance(value, _dt.timedelta):
        us = value // _dt.timedelta(microseconds=1)
        sign = "-" if us < 0 else ""
        us = abs(us)
        secs, frac = divmod(us, 1_000_000)
        hours, rest = divmod(secs, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}{_fraction(frac)}"
    raise ShardMapError(f"cannot hash a key value of type {type(value).__name__}: {value!r}")


def _payload(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    try:
        return canonical_text(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ShardMapError(f"cannot hash the text key value {value!r}: not encodable as UTF-8 ({exc.reason})") \
            from None


def _components(values: Iterable[Any]) -> Iterable[bytes]:
    for value in values:
        if value is None:
            yield bytes((TAG_NULL,)) + b"\x00\x00\x00\x00"
            continue
        payload = _payload(value)
        if len(payload) > _MAX_PAYLOAD:
            raise ShardMapError(f"cannot hash a key value of {len(payload)} bytes (at most {_MAX_PAYLOAD})")
        yield bytes((TAG_VALUE,)) + len(payload).to_bytes(4, "big") + payload


def canonical_key(values: tuple[Any, ...] | list[Any]) -> bytes:
    """The canonical byte encoding of a key tuple: per value, tag byte + 4-byte big-endian length + payload."""
    if not isinstance(values, (tuple, list)):
        raise ShardMapError(f"a key is a tuple of column values, got {type(values).__name__}: {values!r}")
    return b"".join(_components(values))


def shard_hash(values: tuple[Any, ...] | list[Any]) -> int:
    """Unsigned 64-bit hash of a key tuple: BLAKE2b (digest_size=8) of canonical_key, big-endian."""
    return int.from_bytes(hashlib.blake2b(canonical_key(values), digest_size=8).digest(), "big")


def jump_hash(h: int, buckets: int) -> int:
    """Lamping & Veach jump consistent hash of the 64-bit ``h`` (taken mod 2**64) into ``range(buckets)``.

    Growing ``buckets`` by one moves a fraction 1/buckets of all keys, each to the new last bucket.
    """
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise ShardMapError(f"jump_hash needs at least one bucket, got {buckets!r}")
    key = h & MASK64
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * JUMP_LCG_MULTIPLIER + 1) & MASK64
        # the paper's double arithmetic: (b + 1) * (2^31 / ((key >> 33) + 1)), truncated
        j = int(float(b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b
