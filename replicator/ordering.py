"""Strict GTID order per domain (pure; no I/O).

Both producers (ingress and binlog reader) publish into one partition per domain, so a GTID may
arrive twice and out of order. :class:`GtidOrderer` releases events strictly in sequence:

* seq <= last applied: a duplicate, skipped (counted);
* seq == last applied + 1: ready;
* seq > last applied + 1: held until the missing ones arrive; never skipped. ``gaps()`` reports
  how long each domain has waited so the replicator can alert.

An ingress event flagged ``unsafe`` cannot be applied from its statements: it is *not* released and
its GTID stays open until the row form (the binlog reader's copy of the same GTID) arrives.

Kafka offsets: the position to store is the lowest offset still needed — the smallest offset of a
held or unsafe-pending event, else one past the last consumed — so a restart re-reads what was held
and the GTID check skips what was already applied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dbmux.core.events import ChangeEvent


@dataclass(frozen=True, slots=True)
class Gap:
    domain: str
    waiting_for: int
    held: int  # events held behind the gap
    since_s: float  # monotonic time the gap opened


class GtidOrderer:
    def __init__(self, applied: dict[str, int] | None = None) -> None:
        self.applied: dict[str, int] = dict(applied or {})
        self._held: dict[str, dict[int, tuple[ChangeEvent, int]]] = {}
        self._gap_since: dict[str, float] = {}
        self.duplicates = 0
        self.unsafe_waiting = 0

    def offer(self, event: ChangeEvent, offset: int) -> list[tuple[ChangeEvent, int]]:
        """Account for one consumed event; return the events now ready, in order."""
        domain, seq = event.gtid.domain, event.gtid.seq
        last = self.applied.get(domain)
        if last is not None and seq <= last:
            self.duplicates += 1
            return []
        held = self._held.setdefault(domain, {})
        if event.source == "ingress" and event.unsafe:
            # Keep the GTID open for the row form; remember the offset so it is re-read on restart.
            if seq not in held:
                self.unsafe_waiting += 1
                held.setdefault(-seq, (event, offset))
            return self._release(domain)
        if -seq in held:
            del held[-seq]
            self.unsafe_waiting -= 1
        held.setdefault(seq, (event, offset))
        return self._release(domain)

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
            ready.append(held.pop(nxt))
            last = nxt
        if last is not None:
            self.applied[domain] = last
        if held:
            self._gap_since.setdefault(domain, time.monotonic())
        else:
            self._gap_since.pop(domain, None)
        return ready

    def gaps(self) -> list[Gap]:
        out = []
        for domain, since in self._gap_since.items():
            held = self._held.get(domain, {})
            last = self.applied.get(domain)
            out.append(Gap(domain, (last or 0) + 1, len(held), since))
        return out

    def lowest_needed_offset(self) -> int | None:
        """Smallest offset of an event still held (None: nothing held)."""
        offsets = [off for held in self._held.values() for _, off in held.values()]
        return min(offsets) if offsets else None
