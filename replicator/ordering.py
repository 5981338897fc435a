"""Strict GTID order per domain, in bounded memory (pure; no I/O).

Both producers (ingress and binlog reader) publish into one partition per domain, so a GTID may
arrive twice and out of order. :class:`GtidOrderer` releases events strictly in sequence:

* seq <= last applied: a duplicate, skipped (counted);
* seq == last applied + 1: ready;
* seq > last applied + 1: held until the missing ones arrive; never skipped. ``gaps()`` reports
  how long each domain has waited so the replicator can alert.

When both copies of a GTID are held, the binlog reader's (row images: the primary's truth) is the one
released. An ingress event flagged ``unsafe`` cannot be applied from its statements: it is *not* released and
its GTID stays open until the row form (the binlog reader's copy of the same GTID) arrives.

Memory bound (``max_held_bytes``, 0 = none). Held events are only a shortcut: they are all in Kafka.
When holding one more would pass the bound, the orderer *spills* it: it is dropped and the lowest
spilled offset of its partition remembered. Consuming goes on (the missing copy lies further along
the same partition, so pausing would wait forever). Once a domain with spilled events releases
anything (its gap closed), :meth:`take_rewind` tells the consumer where to seek back to, and the
spilled events are read again; what was applied meanwhile is skipped as a duplicate. So memory stays
within the bound, nothing is lost and nothing is applied twice, however long a gap lasts.

Kafka offsets: the position to store per partition is the lowest offset still needed -- the smallest
offset of a held, unsafe-pending or spilled event, else one past the last consumed -- so a restart
re-reads what was held and the GTID check skips what was already applied. It is kept incrementally
(a heap per partition with lazy deletion), not by scanning the held events.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from dbmux.core.events import ChangeEvent


@dataclass(frozen=True, slots=True)
class Gap:
    domain: str
    waiting_for: int
    held: int  # events held behind the gap
    since_s: float  # monotonic time the gap opened
    spilled: bool = False  # events beyond the memory bound were left in Kafka (re-read when it closes)


P = TypeVar("P", bound=Hashable)  # a partition: the runner's PartitionKey, anything hashable in tests


@dataclass(frozen=True, slots=True)
class _Held(Generic[P]):
    event: ChangeEvent
    offset: int
    partition: P
    size: int


class _Offsets:
    """The offsets of held events of one partition: add, remove, lowest -- each O(log n) amortised."""

    __slots__ = ("_count", "_heap")

    def __init__(self) -> None:
        self._heap: list[int] = []
        self._count: dict[int, int] = {}

    def add(self, offset: int) -> None:
        n = self._count.get(offset, 0)
        self._count[offset] = n + 1
        if n == 0:
            heapq.heappush(self._heap, offset)

    def remove(self, offset: int) -> None:
        n = self._count[offset] - 1
        if n:
            self._count[offset] = n
        else:
            del self._count[offset]
            if len(self._heap) > 2 * len(self._count) + 64:
                # removed offsets stay in the heap until they reach its top; offsets spilled past a gap
                # never do (the gap's held events are lower), so without this it grew by one per spilled
                # event (bench/gap_memory.py: +5 MiB over 160,000 spilled events)
                self._heap = list(self._count)
                heapq.heapify(self._heap)

    def lowest(self) -> int | None:
        heap = self._heap
        while heap and heap[0] not in self._count:
            heapq.heappop(heap)
        return heap[0] if heap else None


class GtidOrderer(Generic[P]):
    def __init__(self, applied: dict[str, int] | None = None, *, max_held_bytes: int = 0) -> None:
        self.applied: dict[str, int] = dict(applied or {})
        self.max_held_bytes = max_held_bytes
        self._held: dict[str, dict[int, _Held[P]]] = {}
        self._offsets: dict[P, _Offsets] = {}
        self._spilled: dict[str, dict[P, int]] = {}  # domain -> partition -> lowest spilled offset
        self._rewind: dict[P, int] = {}
        self._gap_since: dict[str, float] = {}
        self.duplicates = 0
        self.unsafe_waiting = 0
        self.held_events = 0
        self.held_bytes = 0
        self.held_bytes_peak = 0
        self.spilled_events = 0  # events dropped at the bound (read again later), in all

    def offer(self, event: ChangeEvent, offset: int, partition: P, *,
              size: int = 0) -> list[tuple[ChangeEvent, int]]:
        """Account for one consumed event (``size``: its encoded bytes); return the events now ready,
        in order."""
        domain, seq = event.gtid.domain, event.gtid.seq
        last = self.applied.get(domain)
        if last is not None and seq <= last:
            self.duplicates += 1
            return []
        held = self._held.setdefault(domain, {})
        if event.source == "ingress" and event.unsafe:
            # Keep the GTID open for the row form; remember the offset so it is re-read on restart.
            key = -seq
            if seq not in held and key not in held:
                self.unsafe_waiting += 1
                self._hold(held, key, _Held(event, offset, partition, size))
        else:
            key = seq
            if -seq in held:
                self._unhold(held, -seq)
                self.unsafe_waiting -= 1
            if seq in held and event.source == "binlog" and held[seq].event.source == "ingress":
                self._unhold(held, seq)  # both copies wait: the row copy, the primary's truth, is applied
            if seq not in held:
                self._hold(held, seq, _Held(event, offset, partition, size))
        ready = self._release(domain)
        if self.max_held_bytes and self.held_bytes > self.max_held_bytes and key in held:
            self._spill(domain, held, key)
        return ready

    def _hold(self, held: dict[int, _Held[P]], key: int, h: _Held[P]) -> None:
        held[key] = h
        offsets = self._offsets.get(h.partition)
        if offsets is None:
            offsets = self._offsets[h.partition] = _Offsets()
        offsets.add(h.offset)
        self.held_events += 1
        self.held_bytes += h.size
        if self.held_bytes > self.held_bytes_peak:
            self.held_bytes_peak = self.held_bytes

    def _unhold(self, held: dict[int, _Held[P]], key: int) -> _Held[P]:
        h = held.pop(key)
        self._offsets[h.partition].remove(h.offset)
        self.held_events -= 1
        self.held_bytes -= h.size
        return h

    def _spill(self, domain: str, held: dict[int, _Held[P]], key: int) -> None:
        h = self._unhold(held, key)
        if key < 0:
            self.unsafe_waiting -= 1
        spilled = self._spilled.setdefault(domain, {})
        if h.offset < spilled.get(h.partition, h.offset + 1):
            spilled[h.partition] = h.offset
        self.spilled_events += 1

    def _release(self, domain: str) -> list[tuple[ChangeEvent, int]]:
        held = self._held[domain]
        ready = []
        last = self.applied.get(domain)
        while True:
            nxt = None if last is None else last + 1
            if nxt is None:
                positive = [s for s in held if s > 0]
                if not positive or any(s < 0 and -s < min(positive) for s in held):
                    break
                nxt = min(positive)  # first event ever seen for this domain starts the sequence
            if nxt not in held:
                break
            h = self._unhold(held, nxt)
            ready.append((h.event, h.offset))
            last = nxt
        if last is not None:
            self.applied[domain] = last
        if ready and domain in self._spilled:
            # the gap closed (or moved on): read what was spilled again
            for partition, offset in self._spilled.pop(domain).items():
                self._rewind[partition] = min(offset, self._rewind.get(partition, offset))
        if held or domain in self._spilled:
            self._gap_since.setdefault(domain, time.monotonic())
        else:
            self._gap_since.pop(domain, None)
        return ready

    def take_rewind(self) -> dict[P, int]:
        """Per partition, the offset to seek back to (spilled events to read again); then forgotten.
        The caller must treat that offset as its next one (nothing at or after it is consumed)."""
        rewind, self._rewind = self._rewind, {}
        return rewind

    def gaps(self) -> list[Gap]:
        out = []
        for domain, since in self._gap_since.items():
            held = self._held.get(domain, {})
            last = self.applied.get(domain)
            out.append(Gap(domain, (last or 0) + 1, len(held), since, domain in self._spilled))
        return out

    def lowest_needed_offset(self, partition: P) -> int | None:
        """Smallest offset of ``partition`` still needed by an event held, spilled or to be re-read
        (None: nothing)."""
        offsets = self._offsets.get(partition)
        candidates = [o for o in (offsets.lowest() if offsets else None,
                                  self._rewind.get(partition)) if o is not None]
        candidates += [s[partition] for s in self._spilled.values() if partition in s]
        return min(candidates) if candidates else None

    def needed_offsets(self) -> dict[P, int]:
        """:meth:`lowest_needed_offset` for every partition that has one."""
        parts = set(self._offsets) | set(self._rewind) | {p for s in self._spilled.values() for p in s}
        out = {}
        for p in parts:
            low = self.lowest_needed_offset(p)
            if low is not None:
                out[p] = low
        return out


def gap_detail(gaps: list[Gap], orderer: GtidOrderer) -> str:
    """What `dbmux status` and the gap alert say about open gaps."""
    parts = []
    for g in gaps:
        text = f"domain {g.domain} waiting for seq {g.waiting_for} ({g.held} held"
        if g.spilled:
            text += ", more left in Kafka at the memory bound"
        parts.append(text + ")")
    return ("; ".join(parts) + f"; {orderer.held_bytes:,} bytes held (bound {orderer.max_held_bytes:,}). Only the "
            "binlog reader's copy can close a gap: is 'dbmux binlog' running and caught up?")


class GapClock:
    """How far the topic has moved on -- in Kafka timestamps of what was read -- since each gap opened.

    Catching up a backlog, a gap that opens may close a little further along the topic (the binlog
    reader's copy of the missing transaction was published a moment after the copies read so far): however
    long that takes on the wall clock, it is no gap to alert on. A gap is real once what was read since it
    opened spans more than the alert threshold of topic time, or everything there is has been read.
    """

    def __init__(self) -> None:
        self.latest_ms = 0  # the newest record timestamp read
        self._opened: dict[str, int] = {}  # domain -> latest_ms when its gap was first seen

    def read(self, timestamp_ms: int) -> None:
        if timestamp_ms > self.latest_ms:
            self.latest_ms = timestamp_ms

    def topic_ms(self, gaps: list[Gap]) -> int:
        """The most topic time read since any of ``gaps`` opened (forgetting gaps that closed)."""
        domains = {g.domain for g in gaps}
        for d in [d for d in self._opened if d not in domains]:
            del self._opened[d]
        return max((self.latest_ms - self._opened.setdefault(d, self.latest_ms) for d in domains), default=0)
