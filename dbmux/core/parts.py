"""Big transactions cut at row and statement boundaries: parts a consumer can decode and apply one at a time.

Byte fragments (:mod:`dbmux.core.fragments`) carry any encoding, but a consumer must hold every fragment
and decode the whole before it can apply anything: a transaction of a million rows is a million rows in
memory. An event made only of row changes (a binlog copy) or only of statements without DDL (an ingress
copy) is instead cut into *parts*: each part is an event of its own -- the same GTID, source, clock and
session, a slice of the rows (with the schemas of their tables) or of the statements -- under a header::

    {"part":1,"id":"<16 hex>","gtid":"0-1-42","source":"binlog","i":0,"n":3,"form":"rows","unsafe":false,
     "crc":305419896}
    <newline, then the part's encoding (dbmux.core.codec.encode_event)>

``unsafe`` says whether any statement of the *whole* transaction is unsafe (a consumer decides from part
0 onwards whether the statements may be applied); ``crc`` is the CRC-32 of the part's encoding. Parts of
one sending share ``id`` and travel in order to one partition, like fragments; a consumer applies them in
order in one target transaction (:class:`Spooled` keeps them on disk meanwhile) or puts them together
(:func:`merge`). A part of one row or statement bigger than a message travels in byte fragments
(:func:`dbmux.core.fragments.split_event`) that are put together into that part first. What cannot be cut
(DDL, an event with both forms, a single row or statement) travels as byte fragments.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

import orjson

from dbmux.core.codec import decode_event, encode_event
from dbmux.core.events import ChangeEvent, EnvelopeError, TableSchema

__all__ = ["PART_PREFIX", "is_part", "cut", "header", "decode_part", "rewritten", "merge", "Spooled"]

PART_PREFIX = b'{"part":'
PART_HEADER_ROOM = 320
"""Bytes of each part message kept for its header line (the rest carries the part's encoding)."""


def is_part(value: bytes) -> bool:
    return value[:len(PART_PREFIX)] == PART_PREFIX


def cut(ev: ChangeEvent, payload: bytes, max_bytes: int) -> list[bytes] | None:
    """The part messages carrying ``ev`` (``payload``: its encoding, over ``max_bytes``), or None when it
    cannot be cut at row or statement boundaries. A part is at most ``max_bytes`` unless it is one row or
    statement bigger than that."""
    if ev.source not in ("ingress", "binlog") or ev.has_ddl or bool(ev.rows) == bool(ev.statements):
        return None
    room = max_bytes - PART_HEADER_ROOM
    if room <= 0:
        return None
    items: tuple[Any, ...] = ev.rows or ev.statements
    form = "rows" if ev.rows else "statements"
    # about 70% full at first: a group whose encoding is still too big is halved
    groups = max(2, -(-len(payload) * 10 // (room * 7)))
    step = -(-len(items) // groups)
    todo = [items[i:i + step] for i in range(0, len(items), step)]
    bodies: list[bytes] = []
    while todo:
        group = todo.pop(0)
        body = encode_event(_with(ev, form, group))
        if len(body) <= room or len(group) == 1:  # (one row or statement bigger than a part: a part of its
            bodies.append(body)                   # own, in byte fragments -- never more than it in memory)
        else:
            half = len(group) // 2
            todo[:0] = [group[:half], group[half:]]
    if len(bodies) < 2:
        return None
    head = {"part": 1, "id": os.urandom(8).hex(), "gtid": str(ev.gtid), "source": ev.source, "i": 0,
            "n": len(bodies), "form": form, "unsafe": ev.unsafe, "crc": 0}
    out = []
    for i, body in enumerate(bodies):
        head["i"], head["crc"] = i, zlib.crc32(body)
        out.append(b"".join((orjson.dumps(head), b"\n", body)))
    return out


def _with(ev: ChangeEvent, form: str, group: tuple[Any, ...]) -> ChangeEvent:
    if form == "statements":
        return dataclasses.replace(ev, statements=group)
    names = {(r.db, r.table) for r in group}
    return dataclasses.replace(ev, rows=group, tables=tuple(t for t in ev.tables if (t.db, t.table) in names))


_SET_FIELDS = (("id", str), ("gtid", str), ("source", str), ("i", int), ("n", int), ("crc", int))


def set_header(value: bytes, what: str, room: int, fields: tuple[tuple[str, type], ...]) -> tuple[dict[str, Any], int]:
    """The header line of one message of a set (a ``what``: part or fragment) and where its body starts;
    :class:`EnvelopeError` naming what is wrong. Every set header has :data:`_SET_FIELDS`, plus ``fields``."""
    end = value.find(b"\n", 0, room + 64)
    if end < 0:
        raise EnvelopeError(f"{what} header is not terminated by a newline")
    try:
        head = orjson.loads(value[:end])
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"{what} header is not JSON: {exc}") from None
    for k, t in _SET_FIELDS + fields:
        if not isinstance(head.get(k), t):
            raise EnvelopeError(f"{what} header field {k!r} is missing or not {t.__name__}")
    if not 0 <= head["i"] < head["n"]:
        raise EnvelopeError(f"{what} index {head['i']} outside 0..{head['n'] - 1}")
    return head, end + 1


def header(value: bytes) -> tuple[dict[str, Any], int]:
    """A part message's header and where its body starts; :class:`EnvelopeError` when it is not one."""
    head, start = set_header(value, "part", PART_HEADER_ROOM, (("form", str), ("unsafe", bool)))
    if head["form"] not in ("rows", "statements"):
        raise EnvelopeError(f"part form must be rows or statements, got {head['form']!r}")
    return head, start


def decode_part(value: bytes | memoryview, head: dict[str, Any], start: int) -> ChangeEvent:
    """The event a part message carries, checked against its header."""
    body = value[start:]
    if zlib.crc32(body) != head["crc"]:
        raise EnvelopeError(f"part {head['i']} of event {head['gtid']} from {head['source']} has CRC "
                            f"{zlib.crc32(body)}, its header says {head['crc']}")
    ev = decode_event(body)
    if str(ev.gtid) != head["gtid"] or ev.source != head["source"]:
        raise EnvelopeError(f"part {head['i']} of event {head['gtid']} from {head['source']} carries event "
                            f"{ev.gtid} from {ev.source}")
    return ev


def rewritten(value: bytes, change: Callable[[ChangeEvent], ChangeEvent]) -> bytes:
    """A part message with its event changed by ``change`` (the same sending, place and header)."""
    head, start = header(value)
    body = encode_event(change(decode_part(value, head, start)))
    head["crc"] = zlib.crc32(body)
    return b"".join((orjson.dumps(head), b"\n", body))


def merge(parts: list[ChangeEvent]) -> ChangeEvent:
    """The whole event the parts of one sending were cut from."""
    tables: dict[tuple[str, str], TableSchema] = {}
    for p in parts:
        for t in p.tables:
            tables.setdefault((t.db, t.table), t)
    return dataclasses.replace(parts[0], rows=tuple(r for p in parts for r in p.rows),
                               statements=tuple(s for p in parts for s in p.statements),
                               tables=tuple(tables.values()))


class Spooled:
    """The part messages of one sending, kept in a temporary file (never in memory) until applied."""

    def __init__(self, head: dict[str, Any]) -> None:
        self.gtid: str = head["gtid"]
        self.source: str = head["source"]
        self.n: int = head["n"]
        self.form: str = head["form"]
        self.unsafe: bool = head["unsafe"]
        self.size = 0
        self._file: IO[bytes] | None = tempfile.TemporaryFile(prefix="dbmux-parts-")
        self._spans: list[tuple[int, int]] = []

    def add(self, value: bytes) -> None:
        assert self._file is not None, "closed"
        self._file.seek(0, os.SEEK_END)
        self._spans.append((self._file.tell(), len(value)))
        self._file.write(value)
        self.size += len(value)

    @property
    def count(self) -> int:
        return len(self._spans)

    def messages(self) -> Iterator[bytes]:
        """The part messages, in order, read back one at a time."""
        assert self._file is not None, "closed"
        for at, length in self._spans:
            self._file.seek(at)
            yield self._file.read(length)

    def events(self) -> Iterator[ChangeEvent]:
        """The parts' events, in order, decoded one at a time."""
        for value in self.messages():
            head, start = header(value)
            yield decode_part(value, head, start)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
