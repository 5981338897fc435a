"""``dbmux rebuild``: tables as they were after a GTID (or at a time), rebuilt from the topic alone.

Three reads of the topic (up to its end when the command starts):

1. **Scan**: every table's complete snapshots (``dbmux snapshot``: begin .. end, with the GTID position
   each reflects), the binlog copies of ``CREATE TABLE`` statements, which GTIDs have a binlog copy, and
   the ``--until`` point (``--until-gtid``: its binlog copy must be in the topic).
2. **Base** of each selected table: the newest complete snapshot at or before the until point, or the
   ``CREATE TABLE`` that created it inside the topic, whichever is later. A table with neither is refused,
   naming it and the fix (``dbmux snapshot --tables ...`` publishes one); a table that exists at the
   destination already is refused (nothing is overwritten). The snapshot's table definition is created
   (database renamed by ``--rename-db``) and its rows inserted.
3. **Replay**: the binlog copy (the primary's row images: every transaction, through the ingress or
   around it, each GTID once) of every transaction after the table's base and up to the until point,
   in commit order per GTID domain: its row changes of the selected tables, and its DDL naming them
   (database qualifiers renamed). A GTID after a base and before the until point that has no binlog
   copy in the topic but may have touched a selected table (its ingress copy names one, or it has no
   copy at all) is refused before anything is written: the result would miss it.

``--until-gtid D-S-N`` takes the transactions of domain D up to sequence N, and of other domains those
committed at or before that transaction's commit time. ``--until-time T``: every transaction committed
at or before T (binlog commit times have one-second resolution). An interrupted rebuild leaves the
tables it created: drop them and run it again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from dbmux.core.codec import decode_event
from dbmux.core.config import Config
from dbmux.core.dsn import Dsn
from dbmux.core.events import ChangeEvent, RowChange
from dbmux.core.fragments import Reassembler
from dbmux.core.gtid import Gtid, parse_gtid_list
from dbmux.replicator.audit.destinations import open_destination
from dbmux.replicator.audit.rename import creates_table, renamed_sql
from dbmux.replicator.backfill.catchup import open_consumer
from dbmux.replicator.backfill.run import NoProgress, ProgressSink
from dbmux.replicator.errors import BackfillError
from dbmux.replicator.filtering import statement_tables, table_selected

log = logging.getLogger(__name__)

FLUSH_ROWS = 2000  # row changes per destination transaction


@dataclass
class TableSnapshot:
    id: str
    table: str
    position: dict[str, Gtid]
    ts_ms: int
    partition: int
    begin: int  # offsets of its begin and end events
    end: int = -1
    create_sql: str = ""
    rows_total: int = 0


@dataclass
class Until:
    gtid: Gtid | None = None
    ms: int | None = None
    gtid_ts_ms: int = 0

    def covers(self, gtid: Gtid, ts_ms: int) -> bool:
        if self.gtid is not None:
            if gtid.domain == self.gtid.domain:
                return gtid.seq <= self.gtid.seq
            return ts_ms <= self.gtid_ts_ms
        assert self.ms is not None
        return ts_ms <= self.ms

    def covers_snapshot(self, snap: TableSnapshot) -> bool:
        if self.gtid is not None:
            own = snap.position.get(self.gtid.domain)
            if own is not None:
                return own.seq <= self.gtid.seq
            return snap.ts_ms <= self.gtid_ts_ms  # (its position has no GTID of that domain: by time)
        assert self.ms is not None
        return snap.ts_ms <= self.ms


@dataclass
class Base:
    """Where a table's rebuild starts: a snapshot, or the transaction that created it."""

    snapshot: TableSnapshot | None = None
    created: Gtid | None = None
    created_ts_ms: int = 0

    def before(self, ev: ChangeEvent) -> bool:
        """Is ``ev`` after this base (so part of the replay)?"""
        if self.snapshot is not None:
            own = self.snapshot.position.get(ev.gtid.domain)
            return own is None or ev.gtid.seq > own.seq
        assert self.created is not None
        if ev.gtid.domain == self.created.domain:
            return ev.gtid.seq > self.created.seq
        return ev.ts_ms >= self.created_ts_ms


@dataclass
class Scan:
    snapshots: dict[str, list[TableSnapshot]] = field(default_factory=dict)  # complete ones, topic order
    created: dict[str, list[tuple[Gtid, int]]] = field(default_factory=dict)  # CREATE TABLE copies
    seen_tables: set[str] = field(default_factory=set)  # tables any binlog row or snapshot names
    binlog: dict[str, set[int]] = field(default_factory=dict)  # seqs with a binlog copy, per domain
    ingress: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)  # (d, seq) -> (part, off)
    until_ts_ms: int | None = None


@dataclass
class RebuildResult:
    tables: dict[str, str]  # source table -> rebuilt name
    snapshot_rows: int = 0
    changes: int = 0
    ddl: int = 0
    last: dict[str, Gtid] = field(default_factory=dict)  # the last GTID per domain the result reflects


async def _events(consumer, tps: list[TopicPartition], starts: dict[TopicPartition, int],
                  ends: dict[TopicPartition, int]) -> AsyncIterator[tuple[ChangeEvent, int, int]]:
    """(event, partition, offset) of every whole event in [starts, ends) per partition."""
    live = [tp for tp in tps if starts.get(tp, 0) < ends[tp]]
    for tp in live:
        consumer.seek(tp, starts.get(tp, 0))
    fragments: Reassembler[int] = Reassembler("dbmux rebuild")
    while live:
        batch = await consumer.getmany(*live, timeout_ms=1000, max_records=2000)
        for tp, recs in batch.items():
            for rec in recs:
                if rec.offset >= ends[tp]:
                    break
                whole = fragments.add(rec.value, tp.partition, rec.offset)
                if whole is not None:
                    yield decode_event(whole[0]), tp.partition, whole[1]
        live = [tp for tp in live if await consumer.position(tp) < ends[tp]]


def _default_db(ev: ChangeEvent) -> str | None:
    return ev.db or (ev.session.db if ev.session is not None else None)


def _named_tables(ev: ChangeEvent, sql: str) -> set[str]:
    default = _default_db(ev)
    return {f"{d or default}.{t}" for d, t in (statement_tables(sql) or ()) if (d or default)}


async def _scan(consumer, tps, ends, until_gtid: Gtid | None) -> Scan:
    scan = Scan()
    open_snaps: dict[str, TableSnapshot] = {}
    async for ev, part, off in _events(consumer, tps, {}, ends):
        if ev.snapshot is not None:
            sp = ev.snapshot
            scan.seen_tables.add(sp.table)
            if sp.part == "begin":
                open_snaps[sp.id] = TableSnapshot(sp.id, sp.table, parse_gtid_list(sp.position), ev.ts_ms, part, off,
                                                  create_sql=sp.create_sql or "")
            elif sp.part == "end" and sp.id in open_snaps:
                snap = open_snaps.pop(sp.id)
                snap.end, snap.rows_total = off, sp.rows_total or 0
                scan.snapshots.setdefault(sp.table, []).append(snap)
            continue
        if ev.source == "ingress":
            scan.ingress.setdefault(ev.gtid.key, (part, off))
            continue
        scan.binlog.setdefault(ev.gtid.domain, set()).add(ev.gtid.seq)
        if until_gtid is not None and ev.gtid == until_gtid:
            scan.until_ts_ms = ev.ts_ms
        scan.seen_tables.update(f"{r.db}.{r.table}" for r in ev.rows)
        for st in ev.statements:
            if st.kind == "ddl" and creates_table(st.sql):
                for name in _named_tables(ev, st.sql):
                    scan.created.setdefault(name, []).append((ev.gtid, ev.ts_ms))
                    scan.seen_tables.add(name)
    return scan


def choose_bases(scan: Scan, until: Until, patterns: list[str]) -> tuple[dict[str, Base], list[str]]:
    """Each selected table's base, and the tables that have none (uncovered)."""
    names = sorted(n for n in scan.seen_tables if table_selected(patterns, *n.split(".", 1)))
    for p in patterns:
        if not any(table_selected([p], *n.split(".", 1)) for n in scan.seen_tables):
            raise BackfillError(f"--tables {p!r} selects no table the topic holds a change or snapshot of")
    bases: dict[str, Base] = {}
    uncovered: list[str] = []
    for name in names:
        snaps = [s for s in scan.snapshots.get(name, []) if until.covers_snapshot(s)]
        creates = [(g, ts) for g, ts in scan.created.get(name, []) if until.covers(g, ts)]
        snap = snaps[-1] if snaps else None
        create = creates[-1] if creates else None
        if create is not None and (snap is None or _after(create[0], snap)):
            bases[name] = Base(created=create[0], created_ts_ms=create[1])
        elif snap is not None:
            bases[name] = Base(snapshot=snap)
        elif scan.created.get(name) and not scan.snapshots.get(name):
            log.info("table %s was created after the until point: not rebuilt", name)
        else:
            uncovered.append(name)
    return bases, uncovered


def _after(gtid: Gtid, snap: TableSnapshot) -> bool:
    own = snap.position.get(gtid.domain)
    return own is None or gtid.seq > own.seq


def _target_name(name: str, renames: dict[str, str]) -> tuple[str, str]:
    db, table = name.split(".", 1)
    return renames.get(db, db), table


async def _uncopied(consumer, config: Config, scan: Scan, bases: dict[str, Base], until: Until) -> list[str]:
    """GTIDs inside a replay window with no binlog copy that may touch a selected table."""
    out: list[str] = []
    for domain, seqs in scan.binlog.items():
        lows = [b.snapshot.position[domain].seq if b.snapshot is not None and domain in b.snapshot.position
                else (b.created.seq if b.created is not None and b.created.domain == domain else None)
                for b in bases.values()]
        if not seqs or not lows:
            continue
        low = min((x for x in lows if x is not None), default=min(seqs) - 1)
        high = until.gtid.seq if until.gtid is not None and until.gtid.domain == domain else max(seqs)
        for seq in range(low + 1, high + 1):
            if seq in seqs:
                continue
            where = scan.ingress.get((domain, seq))
            if where is not None:
                tp = TopicPartition(config.topic, where[0])
                ev, _, _ = await anext(_events(consumer, [tp], {tp: where[1]}, {tp: where[1] + 1}))
                touched = set().union(*(_named_tables(ev, st.sql) for st in ev.statements)) if ev.statements else set()
                if touched and not (touched & set(bases)) and all(statement_tables(st.sql) for st in ev.statements):
                    continue
            out.append(f"domain {domain} seq {seq} ({'no copy' if where is None else 'only its ingress copy'})")
            if len(out) >= 10:
                return out
    return out


async def rebuild(config: Config, into: Dsn, *, until_gtid: Gtid | None = None, until_ms: int | None = None,
                  patterns: list[str] | None = None, renames: dict[str, str] | None = None,
                  progress: ProgressSink | None = None) -> RebuildResult:
    """Rebuild the selected tables into ``into`` (see the module docstring)."""
    if (until_gtid is None) == (until_ms is None):
        raise BackfillError("give exactly one of --until-gtid and --until-time")
    renames = renames or {}
    patterns = patterns or ["*"]
    consumer, tps = await open_consumer(config)
    dest = None
    try:
        ends = await consumer.end_offsets(tps)
        scan = await _scan(consumer, tps, ends, until_gtid)
        until = Until(until_gtid, until_ms)
        if until_gtid is not None:
            if scan.until_ts_ms is None:
                raise BackfillError(f"GTID {until_gtid} has no binlog copy in {config.topic}: it is not committed "
                                    "yet, or the binlog reader has not published it (is 'dbmux binlog' running?)")
            until.gtid_ts_ms = scan.until_ts_ms
        bases, uncovered = choose_bases(scan, until, patterns)
        if uncovered:
            raise BackfillError(
                f"the topic does not cover the history of {', '.join(uncovered)} up to the until point (no complete "
                "snapshot at or before it, and not created inside the topic): publish one with 'dbmux snapshot "
                f"--tables {','.join(uncovered)}' (it covers points in time from then on), or select other tables "
                "with --tables")
        if not bases:
            raise BackfillError("no table to rebuild: the selected tables did not exist at the until point")
        missing = await _uncopied(consumer, config, scan, bases, until)
        if missing:
            raise BackfillError(f"transactions without a binlog copy in {config.topic} may have changed the selected "
                                f"tables: {', '.join(missing)} (the binlog reader was not running then); the "
                                "rebuild would miss them: rebuild from a later snapshot")
        dest = await open_destination(into)
        result = RebuildResult({n: ".".join(_target_name(n, renames)) for n in bases})
        present = [result.tables[n] for n in bases if await dest.exists(*_target_name(n, renames))]
        if present:
            raise BackfillError(f"{', '.join(present)} already exist(s) at the destination: rebuild creates its "
                                "tables; drop them, or rebuild next to them with --rename-db OLD=NEW")
        bar = progress or NoProgress()
        bar.start(sum(b.snapshot.rows_total for b in bases.values() if b.snapshot is not None))
        await _load_snapshots(consumer, config, dest, bases, renames, result, bar)
        await _replay(consumer, tps, ends, dest, bases, renames, until, result)
        bar.close()
        return result
    finally:
        if dest is not None:
            await dest.close()
        await consumer.stop()


def _renamed_rows(rows: tuple[RowChange, ...], keep, renames: dict[str, str]) -> list[RowChange]:
    out = []
    for r in rows:
        if keep(r):
            db = renames.get(r.db, r.db)
            out.append(r if db == r.db else RowChange(r.table, db, r.op, r.before, r.after))
    return out


async def _load_snapshots(consumer, config: Config, dest, bases: dict[str, Base], renames: dict[str, str],
                          result: RebuildResult, bar: ProgressSink) -> None:
    for name, base in sorted(bases.items()):
        snap = base.snapshot
        if snap is None:
            continue
        db, _ = _target_name(name, renames)
        await dest.create(db, snap.create_sql)
        tp = TopicPartition(config.topic, snap.partition)
        pending: list[RowChange] = []
        async for ev, _, _ in _events(consumer, [tp], {tp: snap.begin}, {tp: snap.end + 1}):
            if ev.snapshot is None or ev.snapshot.id != snap.id or ev.snapshot.part != "rows":
                continue
            pending += _renamed_rows(ev.rows, lambda r: True, renames)
            bar.add(name, len(ev.rows))
            if len(pending) >= FLUSH_ROWS:
                await dest.apply_rows(pending)
                await dest.commit()
                result.snapshot_rows += len(pending)
                pending = []
        if pending:
            await dest.apply_rows(pending)
            result.snapshot_rows += len(pending)
        await dest.commit()
        bar.add(name, 0, force=True)


def _replayed(bases: dict[str, Base], ev: ChangeEvent):
    def keep(r: RowChange) -> bool:
        base = bases.get(f"{r.db}.{r.table}")
        return base is not None and base.before(ev)
    return keep


async def _replay(consumer, tps, ends, dest, bases: dict[str, Base], renames: dict[str, str], until: Until,
                  result: RebuildResult) -> None:
    last: dict[str, int] = {}
    pending: list[RowChange] = []

    async def flush() -> None:
        nonlocal pending
        if pending:
            await dest.apply_rows(pending)
            result.changes += len(pending)
            pending = []
        await dest.commit()

    async for ev, _, _ in _events(consumer, tps, {}, ends):
        if ev.source != "binlog" or not until.covers(ev.gtid, ev.ts_ms):
            continue
        if ev.gtid.seq <= last.get(ev.gtid.domain, -1):
            continue  # a copy published again (the binlog reader resumed a little behind)
        last[ev.gtid.domain] = ev.gtid.seq
        result.last[ev.gtid.domain] = ev.gtid
        for st in ev.statements:
            if st.kind != "ddl":
                continue
            names = _named_tables(ev, st.sql)
            if not any(n in bases and (bases[n].before(ev) or bases[n].created == ev.gtid) for n in names):
                continue
            await flush()
            for n in names & set(bases):
                await dest.ensure_db(_target_name(n, renames)[0])
            db = _default_db(ev)
            await dest.ddl(renamed_sql(st.sql, renames), renames.get(db, db) if db else None, ev.session)
            result.ddl += 1
        rows = _renamed_rows(ev.rows, _replayed(bases, ev), renames)
        if rows:
            pending += rows
            if len(pending) >= FLUSH_ROWS:
                await flush()
    await flush()
