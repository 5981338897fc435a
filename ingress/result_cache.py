"""The ingress's result cache: whole answers of reads, invalidated by the writes dbmux sees. Pure.

An entry is the exact bytes a read's answer went to the client as (its frames; a command starts at
sequence id 0, so its answer always at 1), under a key holding everything that decides those bytes
(:mod:`ingress.cache_session` builds it: user, default database, the statement, the session settings
that change a result's bytes, the client's capabilities).

**Invalidation by versions.** An entry depends on *slots*, each with a version (one counter hands them
out); a write bumps the slots it may change (:meth:`ResultCache.invalidate`); a write whose tables are not
known exactly -- DDL, CALL, a table with triggers -- bumps the epoch, which every entry depends on
(:meth:`ResultCache.invalidate_all`). The slots of a table ``t`` (:func:`read_slots`, :func:`write_slots`):
``t`` (any write to it), ``t *`` (a write to it not confined to known keys) and, for its integer primary
key's values, one of ``KEY_BUCKETS`` key slots each (shared by several keys: a false alarm only costs a
miss). A read of whole tables depends on ``t``; a read pinned to keys on ``t *`` and those keys' slots. A
write to known keys bumps ``t`` and the keys' slots; any other write ``t`` and ``t *``. A read that misses
takes a :class:`Ticket` before it is sent: the versions of its slots then. Its answer is stored only if
none moved meanwhile (:meth:`ResultCache.store`), and an entry is served only while none has moved since
(:meth:`get`). The write's bump happens when its OK passes through the ingress, before the writer sees it:
either before a read's ticket (then the read ran after the commit) or after it (then its ticket no longer
matches, or its entry no longer does). So an answer computed while a write to its rows was in flight is
never served after that write's OK.

**Bounded**: entries are accounted in bytes (answer, key, a fixed overhead), least recently used out
first; an answer bigger than ``max_entry_bytes`` is not stored. **Single flight**: misses of a key while
one is in flight wait for its answer (:meth:`wait_for`). **TTL** (optional): an entry older than
``ttl_s`` is a miss.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

# bytes an entry costs besides its answer's bytes and its key's (the caller's ``key_bytes``): the answer's
# object header, the entry, the ordered dictionary's slot and link; and per slot it depends on (the slot,
# its version). Checked against tracemalloc: tests/unit/test_result_cache.py.
ENTRY_OVERHEAD = 400
SLOT_OVERHEAD = 80
KEY_BUCKETS = 1 << 16  # key slots (bounded: a version each at most, whatever the number of keys written)
Slots = tuple[Hashable, ...]


def _key_slots(table: str, keys: frozenset[int]) -> Slots:
    return tuple({hash((table, k)) & (KEY_BUCKETS - 1) for k in keys})


def read_slots(table: str, keys: frozenset[int] | None) -> Slots:
    """What a read of ``table`` (``db.t``) depends on: the table, or the keys it is pinned to."""
    if keys is None:
        return (table,)
    return (table + " *",) + _key_slots(table, keys)


def write_slots(table: str, keys: frozenset[int] | None) -> Slots:
    """What a write to ``table`` bumps: the table and the keys it is confined to, or all of it."""
    if keys is None:
        return (table, table + " *")
    return (table,) + _key_slots(table, keys)


@dataclass(slots=True)
class Ticket:
    """A miss in flight: its key, slots, and their versions (and the epoch) when the read was sent."""

    key: Hashable
    slots: Slots
    versions: tuple[int, ...]
    epoch: int
    key_bytes: int
    waiters: list[asyncio.Future[bytes | None]] = field(default_factory=list)
    landed: bool = False  # its answer came (or it was abandoned): waiting on it any more gets ``answer``
    answer: bytes | None = None


@dataclass(slots=True)
class _Entry:
    answer: bytes
    slots: Slots
    versions: tuple[int, ...]
    epoch: int
    stored_at: float
    size: int
    checked: int  # the version counter when the entry was last found valid (unchanged since: still valid)


class ResultCache:
    """See the module docstring. ``clock`` is injectable for tests."""

    def __init__(self, max_bytes: int, *, max_entry_bytes: int | None = None, ttl_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes if max_entry_bytes is not None else max(1, max_bytes // 16)
        self.ttl_s = ttl_s
        self.clock = clock
        self.bytes = 0
        self.hits = self.misses = self.stores = self.evictions = self.invalidations = self.rejected = 0
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._versions: dict[Hashable, int] = {}
        self._counter = 0
        self._epoch = 0
        self._flights: dict[Hashable, Ticket] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _now(self, slots: Slots) -> tuple[int, ...]:
        versions = self._versions
        return tuple([versions.get(s, 0) for s in slots])

    def invalidate(self, slots: Iterable[Hashable]) -> None:
        """Writes to ``slots`` (:func:`write_slots`) are committed or about to be acknowledged."""
        for t in slots:
            self._counter += 1
            self._versions[t] = self._counter
        self.invalidations += 1

    def invalidate_all(self) -> None:
        """A write whose tables are not known exactly: nothing cached so far is served again."""
        self._epoch += 1
        self.invalidations += 1
        self._entries.clear()
        self.bytes = 0

    def get(self, key: Hashable) -> bytes | None:
        """The cached answer for ``key`` while it is valid (a hit is counted; a miss by :meth:`begin`)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.checked != self._counter or entry.epoch != self._epoch:  # (no write since: nothing to compare)
            if entry.epoch != self._epoch or self._now(entry.slots) != entry.versions:
                del self._entries[key]
                self.bytes -= entry.size
                return None
            entry.checked = self._counter
        if self.ttl_s and self.clock() - entry.stored_at > self.ttl_s:
            del self._entries[key]
            self.bytes -= entry.size
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.answer

    def in_flight(self, key: Hashable) -> Ticket | None:
        return self._flights.get(key)

    def begin(self, key: Hashable, slots: Slots, key_bytes: int) -> Ticket:
        """A miss of ``key`` (depending on ``slots``: :func:`read_slots`) about to go to a server; its answer
        goes to :meth:`store` or :meth:`abandon`. Later misses of the key meanwhile wait for it (:meth:`wait_for`)."""
        self.misses += 1
        ticket = Ticket(key, slots, self._now(slots), self._epoch, key_bytes)
        self._flights.setdefault(key, ticket)
        return ticket

    def wait_for(self, ticket: Ticket) -> asyncio.Future[bytes | None]:
        """The answer of the read in flight under ``ticket`` (None: not cacheable, ask the server)."""
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        if ticket.landed:
            fut.set_result(ticket.answer)
        else:
            ticket.waiters.append(fut)
        return fut

    def store(self, ticket: Ticket, answer: bytes) -> bool:
        """Keep ``answer`` unless a slot it depends on changed since ``ticket`` was taken, or it is too big."""
        valid = ticket.epoch == self._epoch and self._now(ticket.slots) == ticket.versions
        size = len(answer) + ticket.key_bytes + ENTRY_OVERHEAD + SLOT_OVERHEAD * len(ticket.slots)
        keep = valid and size <= self.max_entry_bytes
        self._land(ticket, answer if valid else None)
        if not keep:
            self.rejected += 1
            return False
        old = self._entries.pop(ticket.key, None)
        if old is not None:
            self.bytes -= old.size
        self._entries[ticket.key] = _Entry(answer, ticket.slots, ticket.versions, ticket.epoch, self.clock(), size,
                                           -1)
        self.bytes += size
        self.stores += 1
        while self.bytes > self.max_bytes and self._entries:
            _, entry = self._entries.popitem(last=False)
            self.bytes -= entry.size
            self.evictions += 1
        return True

    def abandon(self, ticket: Ticket) -> None:
        """The read's answer is not to be kept (an error, a failure): its waiters ask a server themselves."""
        self._land(ticket, None)

    def _land(self, ticket: Ticket, answer: bytes | None) -> None:
        ticket.landed, ticket.answer = True, answer
        if self._flights.get(ticket.key) is ticket:
            del self._flights[ticket.key]
        for fut in ticket.waiters:
            if not fut.done():
                fut.set_result(answer)
        ticket.waiters.clear()
