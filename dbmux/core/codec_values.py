"""Values of the change event's wire codec (:mod:`dbmux.core.codec`): one column or parameter value
<-> its JSON form (JSON-native scalars as they are, everything else a tagged single-key object; the
table of tags is in :mod:`dbmux.core.codec`'s docstring)."""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import decimal
import math
import re
from typing import Any

from dbmux.core.events import EnvelopeError

__all__ = ["encode_value", "decode_value", "encode_values", "encode_image", "tag_bytes"]

_INT_MIN = -(2**63)
_UINT_MAX = 2**64 - 1


def encode_value(value: Any, where: str = "value") -> Any:
    """Turn one column/param value into its JSON form (see the module docstring for the tags)."""
    if value is None or value is True or value is False or isinstance(value, str):
        return value
    if isinstance(value, int):
        if _INT_MIN <= value <= _UINT_MAX:
            return int(value)
        return {"$i": str(int(value))}
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$f": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, decimal.Decimal):
        return {"$d": str(value)}
    if isinstance(value, _dt.datetime):  # before date: datetime is a date subclass
        return {"$dt": value.isoformat()}
    if isinstance(value, _dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, _dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, _dt.timedelta):
        micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
        return {"$td": micros if _INT_MIN <= micros < 2**63 else str(micros)}
    raise EnvelopeError(
        f"{where}: unsupported value type {type(value).__name__} "
        "(dict/list are rejected; JSON columns travel as str/bytes)"
    )


def _tag_decoder(tag: str, payload: Any, where: str) -> Any:
    if tag == "$b" and isinstance(payload, str):
        return base64.b64decode(payload.encode("ascii"), validate=True)
    if tag == "$d" and isinstance(payload, str):
        return decimal.Decimal(payload)
    if tag == "$dt" and isinstance(payload, str):
        return _dt.datetime.fromisoformat(payload)
    if tag == "$date" and isinstance(payload, str):
        return _dt.date.fromisoformat(payload)
    if tag == "$time" and isinstance(payload, str):
        return _dt.time.fromisoformat(payload)
    if tag == "$td" and (type(payload) is int or (isinstance(payload, str) and re.fullmatch(r"-?[0-9]+", payload))):
        return _dt.timedelta(microseconds=int(payload))
    if tag == "$i" and isinstance(payload, str) and re.fullmatch(r"-?[0-9]+", payload):
        return int(payload)
    if tag == "$f" and payload in ("nan", "inf", "-inf"):
        return float(payload)
    raise EnvelopeError(f"{where}: unknown or malformed tagged value {{{tag!r}: {payload!r}}}")


def decode_value(raw: Any, where: str = "value") -> Any:
    """Inverse of :func:`encode_value`."""
    if raw is None or isinstance(raw, (bool, int, float, str)):
        return raw
    if isinstance(raw, dict) and len(raw) == 1:
        ((tag, payload),) = raw.items()
        try:
            return _tag_decoder(tag, payload, where)
        except EnvelopeError:
            raise
        except (ValueError, TypeError, OverflowError, binascii.Error, decimal.InvalidOperation) as e:
            raise EnvelopeError(f"{where}: bad {tag} value {payload!r}: {e}") from None
    raise EnvelopeError(f"{where}: expected a scalar or a tagged value, got {type(raw).__name__}")


# Encoders for values of these *exact* types (the common ones); each returns exactly what
# :func:`encode_value` returns for them. Anything else (subclasses, bytearray, memoryview, timedelta, ...)
# goes through encode_value. Only speed differs: no isinstance chain, no error text built per value.
def tag_bytes(v: bytes) -> Any:
    return {"$b": binascii.b2a_base64(v, newline=False).decode("ascii")}  # = base64.b64encode


def _tag_float(v: float) -> Any:
    return v if math.isfinite(v) else encode_value(v)


def _tag_int(v: int) -> Any:
    return v if _INT_MIN <= v <= _UINT_MAX else {"$i": str(v)}


def _tag_datetime(v: _dt.datetime) -> Any:
    # orjson writes a naive datetime exactly as isoformat() does (tests/unit/test_envelope.py), faster
    return {"$dt": v if v.tzinfo is None else v.isoformat()}


_EXACT_ENCODERS: dict[type, Any] = {
    int: _tag_int,
    float: _tag_float,
    bytes: tag_bytes,
    decimal.Decimal: lambda v: {"$d": str(v)},
    _dt.datetime: _tag_datetime,
    _dt.date: lambda v: {"$date": v},  # orjson: isoformat() too
    _dt.time: lambda v: {"$time": v.isoformat()},
}
_PLAIN = frozenset({str, bool, type(None)})  # JSON-native, written as they are


def encode_values(values: Any, where: Any) -> list[Any]:
    """encode_value over ``values``; ``where()`` builds the error location only when one is raised."""
    out = []
    enc = _EXACT_ENCODERS.get
    for j, val in enumerate(values):
        t = type(val)
        if t in _PLAIN:
            out.append(val)
        else:
            f = enc(t)
            out.append(f(val) if f is not None else encode_value(val, f"{where()}[{j}]"))
    return out


def encode_image(image: dict[str, Any] | None, i: int, side: str) -> dict[str, Any] | None:
    """A row image's JSON form (same as ``{col: encode_value(val)}``); errors name ``rows[i].side.col``."""
    if image is None:
        return None
    if not isinstance(image, dict):
        raise EnvelopeError(f"rows[{i}].{side}: row image must be a dict, got {type(image).__name__}")
    out = {}
    enc = _EXACT_ENCODERS.get
    for col, val in image.items():
        if type(col) is not str and not isinstance(col, str):
            raise EnvelopeError(f"rows[{i}].{side}: column names must be str, got {col!r}")
        t = type(val)
        if t in _PLAIN:
            out[col] = val
        else:
            f = enc(t)
            out[col] = f(val) if f is not None else encode_value(val, f"rows[{i}].{side}.{col}")
    return out
