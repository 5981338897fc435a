"""Self-verification: each transaction a target applied from its statement form is checked
against its row copy (the binlog reader's row images of the same GTID: the primary's truth) when that
copy arrives -- divergence is found within seconds, not at the next ``dbmux verify``.

The check (:meth:`SelfVerifier.run`) runs in the replicator's apply task between two units, so the
target is at a known position F: everything cut so far is applied. For every key the row copy touched,
its last image in the copy (no row, after a delete) must be what the target holds. The target compares
(:meth:`MySQLApplier.differing_rows`): it writes the images in a transaction it rolls back and counts
the rows that changed, so the comparison is the server's own, byte for byte, whatever the types.

A transaction applied after the checked one, up to F, may have changed the same key legitimately. Which
ones did is known only from their row copies, which arrive later (binlog copies come in commit order).
So a difference is *pending*: it is confirmed once the binlog copies up to F have been seen and none
after the checked one touched the key (one that did supersedes it: that transaction's own check, or
its row copy applied as such, covers the key). Foreign keys with ON DELETE/UPDATE CASCADE or SET NULL
change child rows the binlog does not log (the server cascades on every copy): a change to an ancestor
table by such keys (:meth:`RowComparer.cascading_parents`), in the checked transaction or a later one,
supersedes a difference too. Confirmed: the target halts, naming the GTID, table and
key (``replicator.self_verify = "halt"``, the default), or it is logged and counted (``"log"``).

Bounds: GTIDs applied from statements and waiting for their row copy (``MAX_WAITING``; the oldest are
forgotten, counted as unverified: e.g. no binlog reader runs), binlog rows kept to decide pending
differences (``MAX_RECENT_ROWS``), rows per check (``MAX_CHECK_ROWS``; a bigger row copy is counted as
skipped and logged). Not checked: tables without a primary key, transactions applied before a restart
whose row copy arrives after it.

Shard targets check their part: the verifier observes each binlog copy as routed to the shard (its
rows under the map in force when it was consumed, a map at least as new as the one the checked
transaction was applied with: maps only add shards, so that part holds only keys the shard still owns).
A map switch deletes the rows a new shard takes over, with no row images in the stream: its binlog copy
is a *barrier* that supersedes every difference found before it, as a statement (DDL) in a binlog copy does.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Counter

from dbmux.core.events import ChangeEvent
from dbmux.core.gtid import Gtid

log = logging.getLogger(__name__)

MODES = ("halt", "log", "off")
MAX_WAITING = 100_000
MAX_RECENT_ROWS = 200_000
MAX_CHECK_ROWS = 50_000
CHECK_BATCH = 500  # checks are run once this many are ready ...
CHECK_DELAY_S = 0.5  # ... or the oldest has waited this long: one comparison round trip per batch
PENDING_GIVE_UP_S = 600.0  # a difference still undecided after this is dropped as inconclusive (logged)

VERIFIED = Counter("dbmux_replicator_self_verified_total",
                   "Transactions applied from statements and checked against their row copy", ["target"])
MISMATCHES = Counter("dbmux_replicator_self_verify_mismatches_total",
                     "Keys whose target row differed from the row copy of the statement-applied transaction",
                     ["target"])
UNVERIFIED = Counter("dbmux_replicator_self_verify_skipped_total",
                     "Statement-applied transactions not checked, by reason", ["target", "reason"])

Key = tuple[Any, ...]
Image = dict[str, Any] | None  # None: the key holds no row


class RowComparer(Protocol):
    async def primary_key(self, db: str, table: str) -> tuple[str, ...]: ...

    async def differing_rows(self, items: list[tuple[str, str, tuple[str, ...], Key, Image]],
                             events: list[ChangeEvent] | None = None) -> dict[int, str]: ...

    async def cascading_parents(self, db: str, table: str) -> frozenset[tuple[str, str]]: ...


@dataclass(slots=True)
class _Check:
    serial: int  # arrival order of its row copy among binlog copies
    event: ChangeEvent
    since: float = 0.0  # monotonic time its row copy arrived


@dataclass(slots=True)
class _Pending:
    serial: int
    gtid: Gtid
    db: str
    table: str
    pk: tuple[str, ...]
    key: Key
    frontier: dict[str, int]  # the target's position when it was found
    detail: str
    since: float
    parents: frozenset[tuple[str, str]] = frozenset()  # (db, table) lowercase whose changes may cascade here

    def describe(self) -> str:
        key = ", ".join(f"{c}={v!r}" for c, v in zip(self.pk, self.key, strict=True))
        return f"gtid {self.gtid} table {self.db}.{self.table} key ({key}): {self.detail}"


class SelfVerifier:
    """One target's checks (see the module docstring). Fed by the consume loop (:meth:`released`,
    :meth:`observed`), run by the apply task (:meth:`run`) whenever :meth:`due`."""

    def __init__(self, target: str, mode: str) -> None:
        assert mode in ("halt", "log"), mode
        self.target = target
        self.mode = mode
        self.verified = 0
        self.mismatches = 0
        self.queued = False  # handed to the apply task, not run yet
        self._waiting: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._checks: list[_Check] = []
        self._pending: list[_Pending] = []
        self._recent: deque[tuple[int, ChangeEvent]] = deque()
        self._recent_rows = 0
        self._lost_after = 0  # binlog copies with a serial up to this were dropped from _recent unseen by checks
        self._serial = 0
        self._seen: dict[str, int] = {}  # domain -> highest binlog-copy seq seen
        self._unkeyed_told: set[tuple[str, str]] = set()  # keyless tables already logged
        self._barriers: set[int] = set()  # serials of binlog copies that may change any key (observed())

    def released(self, events: list[tuple[ChangeEvent, int]]) -> None:
        """Events the orderer released: those to be applied from statements wait for their row copy."""
        for ev, _ in events:
            if ev.source == "ingress" and not ev.rows and not ev.unsafe and any(st.kind == "dml"
                                                                                  for st in ev.statements):
                self._waiting[(ev.gtid.domain, ev.gtid.seq)] = None
                if len(self._waiting) > MAX_WAITING:
                    self._waiting.popitem(last=False)
                    UNVERIFIED.labels(self.target, "no row copy").inc()

    def observed(self, ev: ChangeEvent, barrier: bool = False) -> None:
        """Every binlog copy consumed (filtered to the target's tables; a shard's part), before the orderer
        sees it. ``barrier``: applying it may change any key without row images of its own (a shard map
        switch deletes the rows a new shard takes over), like a statement."""
        if ev.source != "binlog":
            return
        self._serial += 1
        domain, seq = ev.gtid.domain, ev.gtid.seq
        if seq > self._seen.get(domain, -1):
            self._seen[domain] = seq
        if not ev.rows:
            self._waiting.pop((domain, seq), None)
        elif self._waiting.pop((domain, seq), 0) is None:  # applied from its statements: check it
            if len(ev.rows) > MAX_CHECK_ROWS:
                UNVERIFIED.labels(self.target, "too many rows").inc()
                log.warning("target %s gtid %s: not self-verified: %d rows (more than %d)",
                                       self.target, ev.gtid, len(ev.rows), MAX_CHECK_ROWS)
            else:
                self._checks.append(_Check(self._serial, ev, time.monotonic()))
        if (self._checks or self._pending) and (ev.rows or ev.statements or barrier):
            self._recent.append((self._serial, ev))
            if barrier:  # (kept with its copy: nothing to supersede when no check waits)
                self._barriers.add(self._serial)
            self._recent_rows += len(ev.rows)
            while self._recent_rows > MAX_RECENT_ROWS and len(self._recent) > 1:
                self._drop_oldest_recent()

    def due(self, applied: dict[str, int], now: float | None = None) -> bool:
        """Are there checks of transactions in ``applied`` (the target's planned position: everything
        cut so far) to run -- a batch of them, or one that waited long enough -- or a difference to
        decide?"""
        ready = [c for c in self._checks if applied.get(c.event.gtid.domain, -1) >= c.event.gtid.seq]
        if ready and (len(ready) >= CHECK_BATCH or (time.monotonic() if now is None else now) - ready[0].since
                      >= CHECK_DELAY_S):
            return True
        return any(self._decidable(p) for p in self._pending)

    async def run(self, target: RowComparer, frontier: dict[str, int]) -> list[str]:
        """Check what arrived (the target at ``frontier``); return the differences confirmed now."""
        # only transactions the target has applied (a row copy can arrive, and be queued, while its own
        # transaction is still cut or waiting behind this check: it stays queued for the next one); the
        # checks stay queued until they are done: binlog copies consumed while the target compares must
        # still be kept (one of them may be what changed a key after the checked transaction)
        checks = [c for c in self._checks if frontier.get(c.event.gtid.domain, -1) >= c.event.gtid.seq]
        start = 0
        while start < len(checks):
            end, rows = start, 0
            while end < len(checks) and (end == start or rows + len(checks[end].event.rows) <= MAX_CHECK_ROWS):
                rows += len(checks[end].event.rows)
                end += 1
            await self._check(target, checks[start:end], frontier)
            start = end
        done = {id(c) for c in checks}
        self._checks = [c for c in self._checks if id(c) not in done]
        confirmed = []
        now = time.monotonic()
        for p in list(self._pending):
            if self._superseded(p):
                self._pending.remove(p)
            elif self._decidable(p):
                self._pending.remove(p)
                confirmed.append(p.describe())
            elif now - p.since > PENDING_GIVE_UP_S:
                self._pending.remove(p)
                UNVERIFIED.labels(self.target, "inconclusive").inc()
                log.warning("target %s: self-verification inconclusive after %.0fs (binlog copies up to the "
                            "target's position not seen): %s", self.target, now - p.since, p.describe())
        self.mismatches += len(confirmed)
        MISMATCHES.labels(self.target).inc(len(confirmed))
        self._prune()
        return confirmed

    async def _check(self, target: RowComparer, checks: list[_Check], frontier: dict[str, int]) -> None:
        # the net effect per key: the last image in commit order, with the check it came from
        final: dict[tuple[str, str, Key], tuple[Image, _Check, tuple[str, ...]]] = {}
        unkeyed: dict[Gtid, set[tuple[str, str]]] = {}
        keys: dict[tuple[str, str], tuple[str, ...]] = {}
        for check in checks:
            for row in check.event.rows:
                pk = keys.get((row.db, row.table))
                if pk is None:
                    pk = keys[(row.db, row.table)] = await target.primary_key(row.db, row.table)
                if not pk:
                    unkeyed.setdefault(check.event.gtid, set()).add((row.db, row.table))
                    continue
                if row.before is not None:
                    final[(row.db, row.table, key_of(row.before, pk))] = (None, check, pk)
                if row.after is not None and row.op != "delete":  # (a shard's row moving out keeps its after image)
                    final[(row.db, row.table, key_of(row.after, pk))] = (row.after, check, pk)
        # a key a later binlog copy changed again is that copy's to hold (its own check, if any): comparing
        # it would find a difference only to see it superseded, after a second round trip per row
        later = await self._touched_since(target, min(c.serial for c in checks), keys)
        if later:
            final = {k: v for k, v in final.items() if max(later.get(k, 0), later.get(None, 0)) <= v[1].serial}
        for tables in unkeyed.values():
            UNVERIFIED.labels(self.target, "no primary key").inc()
            for db, table in sorted(tables - self._unkeyed_told):  # once per table, not per transaction
                self._unkeyed_told.add((db, table))
                log.warning("target %s: %s.%s has no primary key: its rows are not self-verified (counted in "
                            "dbmux_replicator_self_verify_skipped_total{reason=\"no primary key\"})",
                            self.target, db, table)
        entries = list(final.items())
        items = [(db, table, pk, key, image) for (db, table, key), (image, _, pk) in entries]
        differing = await target.differing_rows(items, [v[1].event for _, v in entries]) if items else {}
        now = time.monotonic()
        parents: dict[tuple[str, str], frozenset[tuple[str, str]]] = {}
        for i, detail in differing.items():
            (db, table, key), (_, check, pk) = entries[i]
            if (db, table) not in parents:
                parents[(db, table)] = await target.cascading_parents(db, table)
            p = _Pending(check.serial, check.event.gtid, db, table, pk, key, dict(frontier), detail, now,
                         parents[(db, table)])
            if any(_cascades(row, p) for row in check.event.rows):
                continue  # its own transaction changed a parent: the server cascaded, unlogged
            if check.serial <= self._lost_after:
                UNVERIFIED.labels(self.target, "inconclusive").inc()
                log.warning("target %s: self-verification inconclusive (binlog copies after it were not kept): %s",
                            self.target, p.describe())
            elif not self._superseded(p):
                self._pending.append(p)
        self.verified += len(checks)
        VERIFIED.labels(self.target).inc(len(checks))

    async def _touched_since(self, target: RowComparer, serial: int,
                             keys: dict[tuple[str, str], tuple[str, ...]]) -> dict[Any, int]:
        """(db, table, key) -> the last serial of a binlog copy after ``serial`` that changed it; under None,
        the last that held a statement (it may have changed any key)."""
        out: dict[Any, int] = {}
        for later, ev in list(self._recent):  # (a copy: the consume loop appends while this awaits a key)
            if later <= serial:
                continue
            if ev.statements or later in self._barriers:
                out[None] = later
            for row in ev.rows:
                pk = keys.get((row.db, row.table))
                if pk is None:
                    pk = keys[(row.db, row.table)] = await target.primary_key(row.db, row.table)
                if not pk:
                    continue
                for image in (row.before, row.after):
                    if image is not None:
                        out[(row.db, row.table, key_of(image, pk))] = later
        return out

    def _decidable(self, p: _Pending) -> bool:
        """Have the binlog copies of everything applied when ``p`` was found arrived?"""
        return all(self._seen[d] >= seq for d, seq in p.frontier.items() if d in self._seen)

    def _superseded(self, p: _Pending) -> bool:
        return any(serial > p.serial and (serial in self._barriers or _touches(ev, p)) for serial, ev in self._recent)

    def _drop_oldest_recent(self) -> None:
        serial, ev = self._recent.popleft()
        self._recent_rows -= len(ev.rows)
        self._lost_after = serial
        self._pending = [p for p in self._pending
                         if not (serial > p.serial and (serial in self._barriers or _touches(ev, p)))]
        self._barriers.discard(serial)

    def _prune(self) -> None:
        """Binlog copies no check or pending difference can need any more."""
        oldest = min([c.serial for c in self._checks] + [p.serial for p in self._pending], default=None)
        if oldest is None:
            self._recent.clear()
            self._recent_rows = 0
            self._barriers.clear()
            return
        while self._recent and self._recent[0][0] <= oldest:
            serial, ev = self._recent.popleft()
            self._recent_rows -= len(ev.rows)
            self._barriers.discard(serial)


def ancestors(edges: Any, db: str, table: str) -> frozenset[tuple[str, str]]:
    """The tables (db, table, lowercase) whose changes cascade into ``db.table``, transitively; ``edges``:
    rows of (child db, child table, parent db, parent table), one per cascading foreign key."""
    pairs = [((a.lower(), b.lower()), (c.lower(), d.lower())) for a, b, c, d in edges]
    found: set[tuple[str, str]] = set()
    todo = [(db.lower(), table.lower())]
    while todo:
        child = todo.pop()
        for c, parent in pairs:
            if c == child and parent not in found:
                found.add(parent)
                todo.append(parent)
    return frozenset(found)


def key_of(image: dict[str, Any], pk: tuple[str, ...]) -> Key:
    """``image``'s values of the key columns ``pk`` (found case-insensitively: a target may name them in
    lower case, the row image as the table does)."""
    try:
        return tuple(image[c] for c in pk)
    except KeyError:
        lowered = {k.lower(): v for k, v in image.items()}
        return tuple(lowered.get(c.lower()) for c in pk)


def _touches(ev: ChangeEvent, p: _Pending) -> bool:
    """May ``ev`` have changed ``p``'s key? A statement in a binlog copy (DDL: a table dropped, altered,
    truncated) may have, whatever it names."""
    if ev.statements:
        return True
    for row in ev.rows:
        if _cascades(row, p):
            return True
        if row.table == p.table and row.db == p.db:
            for image in (row.before, row.after):
                if image is not None and key_of(image, p.pk) == p.key:
                    return True
    return False


def _cascades(row: Any, p: _Pending) -> bool:
    """May ``row`` (an update or delete of a row of an ancestor table by cascading foreign keys) have
    changed ``p``'s table without a row image of its own?"""
    return row.before is not None and bool(p.parents) and (row.db.lower(), row.table.lower()) in p.parents
