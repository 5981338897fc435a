"""Transactions too big for one message, applied part by part: the replicator's memory stays bounded.

A transaction cut into parts (:mod:`dbmux.core.parts`) is kept on disk as its parts arrive
(:class:`~dbmux.core.parts.Spooled`); the consume loop orders it by a :class:`StreamedEvent` -- the
transaction's GTID, source, clock and session without its rows or statements -- like any other event. When
its turn comes it is a unit of its own: the applier opens one target transaction, applies the parts one at a
time as they are read back and decoded (filtered to the target's tables; a shard's part routed per part), and
commits them with the position. Readers of the target see all of it or none; memory holds one part.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from dbmux.core.events import ChangeEvent, EnvelopeError
from dbmux.core.fragments import split
from dbmux.core.parts import Spooled, rewritten
from dbmux.core.passwords import redact_event
from dbmux.replicator.errors import ApplyError
from dbmux.replicator.filtering import filter_event

log = logging.getLogger(__name__)

STREAMED = Counter("dbmux_replicator_streamed_transactions_total",
                   "Transactions applied part by part (too big for one message)", ["target"])
STREAMED_PARTS = Counter("dbmux_replicator_streamed_parts_total", "Parts of such transactions applied", ["target"])

STREAMED_HELD_BYTES = 1024
"""What a :class:`StreamedEvent` held by the orderer costs in memory (its parts are on disk)."""


@dataclass(frozen=True, slots=True)
class StreamedEvent(ChangeEvent):
    """A transaction whose parts are spooled: ordered like an event, applied part by part."""

    spooled: Spooled | None = None
    all_unsafe: bool = False  # some statement of the whole transaction is unsafe (or: take its row form)
    shard_map: Any = None  # a shard target: the map in force when it was released (its parts are routed by it)

    @property
    def unsafe(self) -> bool:
        return self.all_unsafe


def streamed_event(spooled: Spooled) -> StreamedEvent:
    """The event that stands for ``spooled`` (its first part's GTID, clock and session; no rows, no statements)."""
    first = next(spooled.events())
    return StreamedEvent(gtid=first.gtid, source=first.source, ts_ms=first.ts_ms, db=first.db,
                         session=first.session, spooled=spooled, all_unsafe=spooled.unsafe)


def as_unsafe(ev: ChangeEvent) -> ChangeEvent:
    """``ev`` to be applied from its row form only (every statement flagged unsafe)."""
    if isinstance(ev, StreamedEvent):
        return dataclasses.replace(ev, all_unsafe=True)
    return dataclasses.replace(ev, statements=tuple(dataclasses.replace(s, unsafe=True) for s in ev.statements))


async def parts_to_apply(ev: StreamedEvent, tables: tuple[str, ...], shard, offset: int) -> AsyncIterator[ChangeEvent]:
    """The parts of ``ev`` as this target applies them, one at a time, in order; a part that cannot be
    read back is an :class:`ApplyError` naming the transaction and its offset."""
    assert ev.spooled is not None
    parts = ev.spooled.events()
    while True:
        try:
            part = next(parts, None)
        except EnvelopeError as exc:
            raise ApplyError(f"undecodable part: {exc}", gtid=str(ev.gtid), offset=offset) from exc
        if part is None:
            return
        part = filter_event(part, tables)
        if shard is not None:
            part = await shard.route_part(part, ev.shard_map)
        yield part


def dead_letter_messages(ev: StreamedEvent, max_bytes: int) -> list[bytes]:
    """The part messages of ``ev`` as the dead-letter topic gets them (secrets redacted; a part bigger than
    ``max_bytes`` in byte fragments, as its producer sent it)."""
    assert ev.spooled is not None
    out: list[bytes] = []
    for m in ev.spooled.messages():
        m = rewritten(m, redact_event)
        out.extend(split(m, max_bytes, str(ev.gtid), ev.source) if len(m) > max_bytes else (m,))
    return out


def count_applied(target: str, ev: StreamedEvent) -> None:
    assert ev.spooled is not None
    STREAMED.labels(target).inc()
    STREAMED_PARTS.labels(target).inc(ev.spooled.n)
    log.info("target %s: applied %s from %s in %d parts (%d bytes), one target transaction", target, ev.gtid,
             ev.source, ev.spooled.n, ev.spooled.size)

