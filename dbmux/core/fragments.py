"""Transactions of any size: an encoded change event split into Kafka-sized fragments, and put together again.

Kafka refuses a message over the topic's ``max.message.bytes`` (about 1 MiB by default), and one
transaction can be any size (a 2 MB blob update, a bulk insert of a million rows). A producer hands
its encoded event (:func:`dbmux.core.codec.encode_event`) to :func:`split`: an event that fits in
``kafka.fragment_bytes`` travels as it is; a bigger one becomes ``n`` fragment messages, each at most
``fragment_bytes`` long::

    {"frag":1,"id":"<16 hex>","gtid":"0-1-42","source":"binlog","i":0,"n":3,"size":2500000,"crc":305419896}
    <newline, then bytes i*chunk .. (i+1)*chunk of the encoded event>

``id`` names one sending of the event (the ingress and the binlog reader each send their copy, and a
producer that retries sends again under a new id); ``size`` and ``crc`` (CRC-32) are of the whole
encoding and are checked when it is put together. A plain event's encoding starts ``{"v":``, so the
two never mix up.

One producer sends the fragments of one event in order to one partition (the message key is the
GTID domain), so a consumer sees ``i = 0 .. n-1`` in that order, perhaps with other producers'
messages in between. :class:`Reassembler` collects them per ``id`` and gives back the whole encoding
with the offset of its *first* fragment: that is the event's offset for positions, so a consumer
that stores "next offset to read" never stores one inside an unfinished fragment set
(:meth:`Reassembler.pending_offsets`). What cannot be put together is never silently dropped as if
applied: a fragment set that lost a fragment (its producer failed half-way and sent the event again
under a new id), or a consumer that started inside a set, leaves that GTID missing, and GTID order
waits for another copy of it (the binlog reader's); :attr:`Reassembler.broken` counts such sets.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from dbmux.core.codec import encode_event
from dbmux.core.events import ChangeEvent, EnvelopeError
from dbmux.core.parts import Spooled, cut, decode_part, header, is_part, merge, set_header

__all__ = ["FRAGMENT_PREFIX", "HEADER_ROOM", "split", "split_event", "is_fragment", "Reassembler"]

log = logging.getLogger(__name__)

FRAGMENT_PREFIX = b'{"frag":'
HEADER_ROOM = 256
"""Bytes of each fragment message kept for its header line (the rest carries the event)."""

K = TypeVar("K")


def split(payload: bytes, max_bytes: int, gtid: str, source: str) -> list[bytes]:
    """The message values that carry ``payload`` (the encoded event ``gtid`` from ``source``): itself if it
    fits in ``max_bytes``."""
    if len(payload) <= max_bytes:
        return [payload]
    chunk = max_bytes - HEADER_ROOM
    if chunk <= 0:
        raise EnvelopeError(f"fragment size {max_bytes} leaves no room for data (minimum {HEADER_ROOM + 1})")
    n = -(-len(payload) // chunk)
    head = {"frag": 1, "id": os.urandom(8).hex(), "gtid": gtid, "source": source, "i": 0, "n": n,
            "size": len(payload), "crc": zlib.crc32(payload)}
    view = memoryview(payload)
    out = []
    for i in range(n):
        head["i"] = i
        out.append(b"".join((orjson.dumps(head), b"\n", view[i * chunk:(i + 1) * chunk])))
    return out


def split_event(ev: ChangeEvent, payload: bytes, max_bytes: int) -> list[bytes]:
    """The message values that carry ``ev`` (``payload``: its encoding): itself if it fits in ``max_bytes``,
    else parts (:mod:`dbmux.core.parts`: a consumer applies them one at a time) where it can be cut so,
    else byte fragments."""
    if len(payload) <= max_bytes:
        return [payload]
    parts = cut(ev, payload, max_bytes)
    if parts is None:
        return split(payload, max_bytes, str(ev.gtid), ev.source)
    return [m for part in parts
            for m in (split(part, max_bytes, str(ev.gtid), ev.source) if len(part) > max_bytes else (part,))]


def is_fragment(value: bytes) -> bool:
    return value[:len(FRAGMENT_PREFIX)] == FRAGMENT_PREFIX


def _header(value: bytes) -> tuple[dict[str, Any], int]:
    return set_header(value, "fragment", HEADER_ROOM, (("size", int),))


@dataclass(slots=True)
class _Partial(Generic[K]):
    key: K
    first_offset: int
    gtid: str
    source: str
    n: int
    size: int
    crc: int
    chunks: list[bytes] = field(default_factory=list)
    held: int = 0
    parts: bool = False  # a set of parts (dbmux.core.parts), else of byte fragments
    spooled: Spooled | None = None  # parts kept on disk (Reassembler(spool=True))

    @property
    def count(self) -> int:
        return self.spooled.count if self.spooled is not None else len(self.chunks)

    def drop(self) -> None:
        if self.spooled is not None:
            self.spooled.close()


MAX_IGNORED = 10_000  # sending ids remembered to drop their remaining fragments quietly


class Reassembler(Generic[K]):
    """Collects fragment and part messages per sending (``id``) until the whole event is there.

    ``key`` is where a message came from (a partition); offsets are per key. Parts
    (:mod:`dbmux.core.parts`) are put together into one encoding, or with ``spool`` kept on disk and given
    back as a :class:`~dbmux.core.parts.Spooled` (its consumer applies them one at a time).
    """

    def __init__(self, where: str = "consumer", *, spool: bool = False) -> None:
        self._where = where
        self._spool = spool
        self._partials: dict[str, _Partial[K]] = {}
        # sendings whose later fragments are dropped quietly: forgotten (applied from another copy) or
        # already reported broken -- one warning per set, not one per fragment
        self._ignored: OrderedDict[str, None] = OrderedDict()
        self.broken = 0  # fragment sets that cannot be completed (a missing fragment, or started inside)
        self.assembled = 0

    def add(self, value: bytes, key: K, offset: int) -> tuple[bytes, int] | None:
        """Feed one message; returns ``(encoded event, offset of its first fragment)`` once complete.

        A plain (unfragmented) event comes straight back with its own offset. Raises
        :class:`EnvelopeError` for a fragment that cannot be read or a whole that fails its checks.
        """
        assert not self._spool, "a spooling reassembler gives parts back spooled: take()"
        return self.take(value, key, offset)  # type: ignore[return-value]  # (bytes without spool)

    def take(self, value: bytes, key: K, offset: int) -> tuple[bytes | Spooled, int] | None:
        """:meth:`add`, giving parts back as a :class:`~dbmux.core.parts.Spooled` when spooling."""
        parts = is_part(value)
        if parts:
            head, start = header(value)
        elif is_fragment(value):
            head, start = _header(value)
        else:
            return value, offset
        fid, i = head["id"], head["i"]
        if fid in self._ignored:
            return None
        part = self._partials.get(fid)
        if part is None:
            if i != 0:  # started reading inside this set, or its first fragment went missing
                self._broken(head, key, offset, "its first fragment was not read")
                self._ignore(fid)
                return None
            # the same producer sending the same event again (after a failed send): the old set is abandoned
            for other_id, other in list(self._partials.items()):
                if (other.gtid == head["gtid"] and other.source == head["source"] and other.key == key
                        and other.parts == parts):  # (a part in fragments: both kinds at once)
                    del self._partials[other_id]
                    other.drop()
                    self._broken(head, key, other.first_offset, "sent again before it was complete")
            part = _Partial(key, offset, head["gtid"], head["source"], head["n"], head.get("size", -1), head["crc"],
                            parts=parts)
            if self._spool and parts:
                part.spooled = Spooled(head)
            self._partials[fid] = part
        elif i < part.count:  # read again (a seek back): already have it
            return None
        elif i != part.count:
            del self._partials[fid]
            part.drop()
            self._broken(head, key, part.first_offset, f"fragment {part.count} is missing")
            self._ignore(fid)
            return None
        if part.spooled is not None:
            part.spooled.add(value)
        else:
            body = value if part.parts else value[start:]  # parts are kept whole (their header checks them)
            part.chunks.append(body)
            part.held += len(body)
        if part.count < part.n:
            return None
        del self._partials[fid]
        self.assembled += 1
        if part.spooled is not None:
            return part.spooled, part.first_offset
        if part.parts:  # put together
            events = []
            for chunk in part.chunks:
                h, at = header(chunk)
                events.append(decode_part(chunk, h, at))
            return encode_event(merge(events)), part.first_offset
        whole = b"".join(part.chunks)
        if len(whole) != part.size or zlib.crc32(whole) != part.crc:
            raise EnvelopeError(f"event {part.gtid} from {part.source} put together from {part.n} fragments "
                                f"(first at offset {part.first_offset}) is {len(whole)} bytes with CRC "
                                f"{zlib.crc32(whole)}, its header says {part.size} bytes with CRC {part.crc}")
        if is_part(whole):  # one part (a row or statement bigger than a message) put together: next, its set
            return self.take(whole, key, part.first_offset)
        return whole, part.first_offset

    def _broken(self, head: dict[str, Any], key: K, offset: int, why: str) -> None:
        self.broken += 1
        log.warning("%s: fragments of event %s from %s (sending %s, first at %s offset %s) cannot be put together: "
                    "%s; GTID order waits for another copy of it", self._where, head["gtid"], head["source"],
                    head["id"], key, offset, why)

    def pending_offsets(self) -> dict[K, int]:
        """Per key the offset of the earliest unfinished fragment set (a stored position must not pass it)."""
        out: dict[K, int] = {}
        for p in self._partials.values():
            if p.key not in out or p.first_offset < out[p.key]:
                out[p.key] = p.first_offset
        return out

    @property
    def pending_bytes(self) -> int:
        return sum(p.held for p in self._partials.values())

    def forget(self, done: Callable[[str], bool]) -> int:
        """Drop unfinished sets whose GTID ``done(gtid_text)`` says is already applied; returns how many."""
        gone = [fid for fid, p in self._partials.items() if done(p.gtid)]
        for fid in gone:
            self._partials.pop(fid).drop()
            self._ignore(fid)
        return len(gone)

    def _ignore(self, fid: str) -> None:
        self._ignored[fid] = None
        if len(self._ignored) > MAX_IGNORED:
            self._ignored.popitem(last=False)
