"""``dbmux backfill``: seed a new target from one consistent snapshot of the primary, then hand it to
its replicator at exactly the snapshot's GTID position (no gap, no double apply).

How a run goes
1. Lock the target with the replicator's own lock (a running replicator, or a second backfill, makes
   this fail with a clear message) and read the target's backfill record (``dbmux_meta.backfill``).
2. Open a snapshot on the primary: ``START TRANSACTION WITH CONSISTENT SNAPSHOT``. MariaDB reports the
   binlog position of exactly that snapshot (``binlog_snapshot_file/position``) with no lock at all;
   it becomes a GTID position with ``BINLOG_GTID_POS``. MySQL 8 has no such status: ``FLUSH TABLES
   WITH READ LOCK`` is held only while the snapshot starts and ``@@gtid_executed`` is read.
3. Create the selected tables on the target (``SHOW CREATE TABLE``; translated for PostgreSQL like the
   replicator translates DDL) and copy them chunk by chunk in primary-key order (keyset pagination,
   the next chunk read while the previous one is written). Each chunk commits **together with** the
   backfill record (tables done, last key copied), so a crash loses at most the chunk in flight.
4. Hand-off: in one target transaction the record becomes ``done`` and the replicator's position is
   written: the last applied GTID per domain = the snapshot's, and Kafka offsets from a little before
   the snapshot's time (events at or below the snapshot GTID that are read again are skipped by GTID).
   ``dbmux replicate`` refuses a target whose backfill is not done.

Resuming after an interruption: the old snapshot is gone, so a new one is taken at a later GTID G2.
The data already copied reflects the old position G1; it is brought to G2 by applying the **row form**
(the binlog reader's copy) of every transaction in (G1, G2] -- only to the rows already copied: all of
a finished table, and the key range up to the last copied key of the table in progress (an update that
moves a row across that boundary becomes a delete or an insert). Then the remaining chunks are copied
from G2 and the hand-off uses G2. This needs ``dbmux binlog`` to have published those transactions
(it waits for them, then fails naming the missing GTIDs). A table in progress whose key is not made
of integers cannot be compared outside the database, so it is copied again from the start. DDL on a
copied table between the two snapshots is refused (run again with ``--restart``).

Tables without a primary key are copied whole in one target transaction (nothing to paginate by);
the replicator matches their rows on every column (see README, "Tables without a primary key").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from dbmux.config import Config, TargetConfig
from dbmux.envelope import ChangeEvent, RowChange, decode_event
from dbmux.errors import DbmuxError
from dbmux.gtid import Gtid
from replicator.filtering import filter_event, statement_tables, table_selected
from replicator.verify_readers import MySQLReader, TableShape

log = logging.getLogger(__name__)

SNAPSHOT_MARGIN_S = 300  # hand-off/catch-up read Kafka from this long before the snapshot (clock skew)
CATCHUP_BATCH = 500  # transactions per target transaction while catching up
_INT_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})


class BackfillError(DbmuxError):
    pass


# --------------------------------------------------------------------------------------- the record


@dataclass
class TableProgress:
    done: bool = False
    rows: int = 0
    last_key: list | None = None  # last copied key (integer keys only); None: not started / not resumable

    @property
    def started(self) -> bool:
        return self.done or self.rows > 0 or self.last_key is not None


@dataclass
class BackfillRecord:
    """What ``dbmux_meta.backfill.doc`` holds: the snapshot the copied data reflects, and per table progress."""

    snapshot: dict[str, str]  # domain -> GTID text; the copied rows reflect exactly this position
    snapshot_ts_ms: int
    tables: dict[str, TableProgress] = field(default_factory=dict)

    def dumps(self) -> str:
        return orjson.dumps({"snapshot": self.snapshot, "snapshot_ts_ms": self.snapshot_ts_ms,
                             "tables": {k: {"done": v.done, "rows": v.rows, "last_key": v.last_key}
                                        for k, v in self.tables.items()}}).decode()

    @classmethod
    def loads(cls, text: str) -> "BackfillRecord":
        d = orjson.loads(text)
        return cls(d["snapshot"], int(d["snapshot_ts_ms"]),
                   {k: TableProgress(bool(v["done"]), int(v["rows"]), v.get("last_key"))
                    for k, v in d["tables"].items()})

    def gtids(self) -> dict[str, Gtid]:
        return {d: Gtid.parse(g) for d, g in self.snapshot.items()}


def key_resumable(shape: TableShape) -> bool:
    """Can a partly copied table continue from its last key after a new snapshot? Only when the key
    compares the same in Python as on the primary: integer columns."""
    return bool(shape.pk) and all(shape.types[i] in _INT_TYPES for i in shape.pk)


def _image_key(image: dict[str, Any], names: tuple[str, ...]) -> tuple:
    lowered = None
    out = []
    for n in names:
        if n in image:
            out.append(image[n])
            continue
        if lowered is None:
            lowered = {k.lower(): v for k, v in image.items()}
        out.append(lowered[n.lower()])
    return tuple(out)


def catchup_rows(ev: ChangeEvent, shapes: dict[str, TableShape], progress: dict[str, TableProgress]
                 ) -> list[RowChange]:
    """The row changes of one binlog transaction that fall into what is already copied (pure).

    A finished table takes every change; the table in progress only changes whose key is at or below
    its last copied key; an update crossing that boundary becomes a delete (moved out) or an insert
    (moved in). DDL naming a copied table raises :class:`BackfillError`.
    """
    for st in ev.statements:
        if st.kind != "ddl":
            continue
        for db, table in statement_tables(st.sql) or ():
            name = f"{db or ev.db or ''}.{table}"
            if name in progress and progress[name].started:
                raise BackfillError(
                    f"DDL on {name} (GTID {ev.gtid}) after part of it was copied: its copy cannot be brought "
                    "forward; run 'dbmux backfill' again with --restart")
    out: list[RowChange] = []
    for r in ev.rows:
        name = f"{r.db}.{r.table}"
        prog = progress.get(name)
        if prog is None or not prog.started:
            continue
        if prog.done:
            out.append(r)
            continue
        shape = shapes[name]
        last = tuple(prog.last_key or ())
        names = shape.pk_names
        before_in = r.before is not None and _image_key(r.before, names) <= last
        after_in = r.after is not None and _image_key(r.after, names) <= last
        if r.op == "update":
            if before_in and after_in:
                out.append(r)
            elif before_in:
                out.append(RowChange(r.table, r.db, "delete", before=r.before))
            elif after_in:
                out.append(RowChange(r.table, r.db, "insert", after=r.after))
        elif (r.op == "insert" and after_in) or (r.op == "delete" and before_in):
            out.append(r)
    return out


# --------------------------------------------------------------------------------------- the source


@dataclass(frozen=True)
class Snapshot:
    gtids: dict[str, Gtid]  # domain -> last GTID inside the snapshot
    ts_ms: int

    def text(self) -> dict[str, str]:
        return {d: str(g) for d, g in self.gtids.items()}


_MYSQL_GTID_SET = re.compile(r"^\s*([0-9a-fA-F-]{36})((?::[0-9]+(?:-[0-9]+)?)+)\s*$")


def parse_gtid_position(text: str) -> dict[str, Gtid]:
    """MariaDB ``0-1-100,1-1-5`` or MySQL ``uuid:1-100:105-110,...`` -> last GTID per domain."""
    out: dict[str, Gtid] = {}
    for part in (p.strip() for p in (text or "").replace("\n", "").split(",")):
        if not part:
            continue
        m = _MYSQL_GTID_SET.match(part)
        if m:
            intervals = m[2].strip(":").split(":")
            if len(intervals) > 1:
                log.warning("GTID set %s has holes; the hand-off continues after its highest number", part)
            last = int(intervals[-1].split("-")[-1])
            g = Gtid.parse(f"{m[1]}:{last}")
        else:
            g = Gtid.parse(part)
        out[g.domain] = g
    return out


async def open_snapshot(reader: MySQLReader) -> Snapshot:
    """Begin the consistent-snapshot transaction on ``reader`` and return its GTID position."""
    q = reader._rows  # noqa: SLF001 - the reader's own connection is the snapshot's
    await q("SET time_zone = '+00:00'", [])
    await q("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", [])
    (version,), = await q("SELECT VERSION()", [])
    if "mariadb" in str(version).lower():
        await q("START TRANSACTION WITH CONSISTENT SNAPSHOT", [])
        status = dict(await q("SHOW SESSION STATUS LIKE 'binlog_snapshot_%%'", []))
        file, pos = status.get("Binlog_snapshot_file"), status.get("Binlog_snapshot_position")
        if not file:
            raise BackfillError("the primary reports no binlog_snapshot_file: is its binary log enabled (log_bin)?")
        (gtid_text,), = await q("SELECT BINLOG_GTID_POS(%s, %s)", [file, int(pos)])
    else:
        try:
            await q("FLUSH TABLES WITH READ LOCK", [])
        except Exception as exc:  # noqa: BLE001 - reported with the fix
            raise BackfillError(f"FLUSH TABLES WITH READ LOCK failed on the primary ({exc}): MySQL needs it for a "
                                "moment to pair the snapshot with @@gtid_executed; grant RELOAD to the "
                                "primary.url user") from exc
        try:
            await q("START TRANSACTION WITH CONSISTENT SNAPSHOT", [])
            (gtid_text,), = await q("SELECT @@GLOBAL.gtid_executed", [])
        finally:
            await q("UNLOCK TABLES", [])
    (now,), = await q("SELECT UNIX_TIMESTAMP(NOW(6))", [])
    return Snapshot(parse_gtid_position(gtid_text or ""), int(float(now) * 1000))


async def _create_sql(reader: MySQLReader, shape: TableShape) -> str:
    rows = await reader._rows(f"SHOW CREATE TABLE {reader.q(shape.db)}.{reader.q(shape.table)}", [])  # noqa: SLF001
    return rows[0][1]


async def _estimated_rows(reader: MySQLReader, shapes: list[TableShape]) -> dict[str, int]:
    rows = await reader._rows(  # noqa: SLF001
        "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'", [])
    est = {f"{d}.{t}": int(n or 0) for d, t, n in rows}
    return {s.name: est.get(s.name, 0) for s in shapes}


# --------------------------------------------------------------------------------------- progress


class Progress:
    """One status line on stderr: rows copied of the estimate, rows/s, ETA (a line every few seconds
    when stderr is not a terminal)."""

    def __init__(self, total: int, enabled: bool = True, stream=None) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0

    def add(self, table: str, rows: int, *, force: bool = False) -> None:
        self.done += rows
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < (0.2 if self.tty else 5.0)):
            return
        self._last = now
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        frac = min(self.done / self.total, 1.0)
        eta = (self.total - self.done) / rate if rate > 0 and self.done < self.total else 0
        bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
        line = (f"{table:<32.32} [{bar}] {self.done:,}/~{self.total:,} rows  {rate:,.0f} rows/s  "
                f"ETA {int(eta) // 60}:{int(eta) % 60:02d}")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------------------- Kafka


async def _consumer(config: Config):
    from aiokafka import AIOKafkaConsumer

    from dbmux.kafka_topics import ensure_topic, topic_partitions

    await ensure_topic(config.kafka, config.topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=config.kafka.bootstrap, enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest",
                                request_timeout_ms=config.kafka.request_timeout_ms)
    await consumer.start()
    tps = await topic_partitions(consumer, config.topic)
    consumer.assign(tps)
    return consumer, tps


async def offsets_at(consumer, tps, ts_ms: int) -> dict[Any, int]:
    """Per partition, the first offset whose timestamp is >= ``ts_ms`` (the end when none is)."""
    found = await consumer.offsets_for_times({tp: max(ts_ms, 0) for tp in tps})
    ends = await consumer.end_offsets(tps)
    return {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in tps}


async def read_binlog_copies(config: Config, since_ms: int, lo: dict[str, int], hi: dict[str, Gtid],
                             timeout_s: float) -> list[ChangeEvent]:
    """The binlog reader's events for every GTID in (lo, hi] per domain, in (domain, seq) order. Waits up
    to ``timeout_s`` without progress for missing ones, then raises naming them."""
    need = {d: (lo.get(d), g.seq) for d, g in hi.items() if lo.get(d, -1) < g.seq}
    if not need:
        return []
    consumer, tps = await _consumer(config)
    got: dict[tuple[str, int], ChangeEvent] = {}
    try:
        for tp, off in (await offsets_at(consumer, tps, since_ms)).items():
            consumer.seek(tp, off)
        last_progress = time.monotonic()

        def missing() -> dict[str, list[int]]:
            out = {}
            for d, (low, high) in need.items():
                seqs = [s for (dd, s) in got if dd == d]
                start = low if low is not None else (min(seqs) - 1 if seqs else high - 1)
                gone = [s for s in range(start + 1, high + 1) if (d, s) not in got]
                if gone:
                    out[d] = gone
            return out

        while missing():
            records = await consumer.getmany(*tps, timeout_ms=500, max_records=2000)
            for recs in records.values():
                for rec in recs:
                    ev = decode_event(rec.value)
                    rng = need.get(ev.gtid.domain)
                    if ev.source != "binlog" or rng is None:
                        continue
                    low, high = rng
                    if (low is None or ev.gtid.seq > low) and ev.gtid.seq <= high:
                        if (ev.gtid.domain, ev.gtid.seq) not in got:
                            got[(ev.gtid.domain, ev.gtid.seq)] = ev
                            last_progress = time.monotonic()
            if time.monotonic() - last_progress > timeout_s:
                gone = missing()
                sample = "; ".join(f"domain {d}: {len(s)} missing, first seq {s[0]}" for d, s in gone.items())
                raise BackfillError(
                    f"the binlog reader's copies of the transactions since the interrupted backfill are not in "
                    f"{config.topic} ({sample}); is 'dbmux binlog' running? Run again once it has caught up, "
                    "or start over with --restart")
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
    return [got[k] for k in sorted(got)]


# --------------------------------------------------------------------------------------- the run


class ShardFilter:
    """A shard target gets only its own rows: the map's rule per table, the owner per key."""

    def __init__(self, shard_map, schema, shard: str) -> None:
        from replicator.shard_routing import ShardRouter

        self.map, self.shard = shard_map, shard
        self.router = ShardRouter(shard_map, schema, shard)
        self.schema = schema

    def keep_rows(self, shape: TableShape, rows: list[tuple]) -> list[tuple]:
        info = self.schema.tables.get((shape.db.lower(), shape.table.lower()))
        rule = self.map.rule(shape.db, shape.table, tuple(c.lower() for c in (info.primary_key if info else ())))
        if rule.kind == "reference":
            return rows
        if rule.kind == "single":
            return rows if rule.shard == self.shard else []
        idx = [[c.lower() for c in shape.columns].index(k) for k in rule.key]
        return [r for r in rows if self.map.locate(shape.db, shape.table, tuple(r[i] for i in idx)) == self.shard]

    def route_rows(self, ev: ChangeEvent, rows: list[RowChange]) -> list[RowChange]:
        return list(self.router.route(ChangeEvent(ev.gtid, ev.source, ev.ts_ms, ev.db, (), tuple(rows))).rows)


async def _shard_filter(config: Config, target: TargetConfig, shard_map) -> ShardFilter | None:
    if not target.shard:
        return None
    from replicator.shard_target import current_map
    from replicator.source_schema import load_source_schema

    shard_map = shard_map or await current_map(config)
    if target.shard not in shard_map.shards:
        raise BackfillError(f"shard {target.shard!r} of target {target.name} is not in shard map version "
                            f"{shard_map.version} ({', '.join(shard_map.shards)}): add it with 'dbmux reshard "
                            f"--add-shard {target.shard}'")
    return ShardFilter(shard_map, await load_source_schema(config.primary.dsn), target.shard)


async def backfill(config: Config, target_name: str, tables: list[str] | None = None, *, chunk_rows: int = 5000,
                   restart: bool = False, progress: bool = True, catchup_timeout_s: float = 120.0,
                   shard_map=None) -> BackfillRecord:
    """Seed ``target_name`` (see the module docstring). A shard target gets the rows it owns under
    ``shard_map`` (default: the newest recorded version), and starts replicating with that version."""
    from replicator.backfill_targets import open_target

    target = config.target(target_name)
    shard = await _shard_filter(config, target, shard_map)
    writer = await open_target(config, target)
    reader = await MySQLReader.connect("primary", config.primary.dsn)
    try:
        existing = await writer.load()
        position = await writer.applier.load_position()
        if existing is not None and not restart:
            state, doc = existing
            if state == "done":
                rec = BackfillRecord.loads(doc)
                print(f"target {target_name} was backfilled at {','.join(rec.snapshot.values()) or 'an empty binlog'}"
                      " and is handed to its replicator: nothing to do (--restart copies it again)", file=sys.stderr)
                return rec
        elif existing is None and position.gtids and not restart:
            raise BackfillError(
                f"target {target_name} already replicates (applied up to {position.gtids}): backfill seeds new "
                "targets; to seed it again stop its replicator and pass --restart (the selected tables are emptied)")

        snap = await open_snapshot(reader)
        shapes = _select(await reader.list_tables(), target, tables)
        if not shapes:
            raise BackfillError(f"no table of the primary is selected for target {target_name} "
                                f"(target tables {list(target.tables)}, --tables {tables or 'all'})")
        if existing is not None and existing[0] != "done" and not restart:
            record = BackfillRecord.loads(existing[1])
            if set(record.tables) != set(shapes):
                raise BackfillError(
                    f"the unfinished backfill of {target_name} covers {sorted(record.tables)}, this run selects "
                    f"{sorted(shapes)}: run it with the same tables, or start over with --restart")
            await _resume(config, writer, shapes, record, snap, catchup_timeout_s, shard)
        else:
            record = BackfillRecord(snap.text(), snap.ts_ms, {name: TableProgress() for name in shapes})
            for name, shape in shapes.items():
                present = await writer.ensure_table(shape, await _create_sql(reader, shape))
                if present and not restart:
                    raise BackfillError(f"table {name} on target {target_name} already holds {present} rows: backfill "
                                        "copies into empty tables; pass --restart to empty it first")
                if present:
                    await writer.truncate(shape)
            await writer.save(record, "copying")
        for name, shape in shapes.items():  # tables created by an earlier run may have been dropped since
            if not record.tables[name].started:
                await writer.ensure_table(shape, await _create_sql(reader, shape))
        est = await _estimated_rows(reader, list(shapes.values()))
        bar = Progress(sum(max(est[n] - record.tables[n].rows, 0) for n in shapes), progress)
        for name, shape in shapes.items():
            if not record.tables[name].done:
                await _copy_table(reader, writer, shape, record, chunk_rows, bar, shard)
        bar.close()
        await _hand_off(config, writer, record, shard.map if shard else None)
        return record
    finally:
        await reader.close()
        await writer.close()


def _select(all_shapes: list[TableShape], target: TargetConfig, tables: list[str] | None) -> dict[str, TableShape]:
    out = {}
    patterns = list(target.tables)
    if target.shard:
        from shardmap.model import VERSIONS_DB

        patterns.append(VERSIONS_DB + ".*")  # every shard holds the map's history
    for s in all_shapes:
        if not table_selected(patterns, s.db, s.table):
            continue
        if tables and not table_selected(tables, s.db, s.table):
            continue
        out[s.name] = s
    if tables:
        for pattern in tables:
            if not any(table_selected([pattern], s.db, s.table) for s in out.values()):
                raise BackfillError(f"--tables {pattern!r} selects no table of the primary that target "
                                    f"{target.name} replicates (its tables: {list(target.tables)})")
    return out


async def _resume(config: Config, writer, shapes: dict[str, TableShape], record: BackfillRecord, snap: Snapshot,
                  timeout_s: float, shard: ShardFilter | None = None) -> None:
    """Bring what an interrupted run copied from its snapshot to ``snap`` (see the module docstring)."""
    for name, prog in record.tables.items():
        if prog.started and not prog.done and not key_resumable(shapes[name]):
            log.warning("table %s: key is not integer, so its partial copy cannot continue: copying it again", name)
            await writer.truncate(shapes[name])
            record.tables[name] = TableProgress()
    await writer.save(record, "copying")
    if not any(p.started for p in record.tables.values()):
        record.snapshot, record.snapshot_ts_ms = snap.text(), snap.ts_ms
        await writer.save(record, "copying")
        return
    lo = {d: g.seq for d, g in record.gtids().items()}
    events = await read_binlog_copies(config, record.snapshot_ts_ms - SNAPSHOT_MARGIN_S * 1000, lo, snap.gtids,
                                      timeout_s)
    log.info("resuming: bringing the copied rows from %s to %s (%d transactions)", record.snapshot,
             snap.text(), len(events))
    for i in range(0, len(events), CATCHUP_BATCH):
        batch = events[i:i + CATCHUP_BATCH]
        rows = []
        for ev in batch:
            mine = catchup_rows(filter_event(ev, writer.target.tables), shapes, record.tables)
            rows.extend(shard.route_rows(ev, mine) if shard is not None else mine)
            record.snapshot[ev.gtid.domain] = str(ev.gtid)
        await writer.apply_rows(rows, shapes, record)
    record.snapshot, record.snapshot_ts_ms = snap.text(), snap.ts_ms
    await writer.save(record, "copying")


async def _copy_table(reader: MySQLReader, writer, shape: TableShape, record: BackfillRecord, chunk_rows: int,
                      bar: Progress, shard: ShardFilter | None = None) -> None:
    prog = record.tables[shape.name]
    if not shape.pk:
        stream = _stream_all(reader, shape, chunk_rows)
        if shard is not None:
            stream = _kept(stream, shard, shape)
        await writer.copy_whole(shape, stream, record, bar)
        return
    after = tuple(prog.last_key) if prog.last_key is not None else None
    pending = asyncio.ensure_future(reader.fetch_after(shape, after, chunk_rows))
    while True:
        rows = await pending
        if not rows:
            break
        last = shape.key_of(rows[-1])
        if len(rows) == chunk_rows:  # read the next chunk while this one is written
            pending = asyncio.ensure_future(reader.fetch_after(shape, last, chunk_rows))
        full = len(rows) == chunk_rows
        if shard is not None:
            rows = shard.keep_rows(shape, rows)
        prog.rows += len(rows)
        prog.last_key = list(last) if key_resumable(shape) else None
        if not full:
            prog.done = True
        await writer.insert_chunk(shape, rows, record)
        bar.add(shape.name, len(rows))
        if prog.done:
            break
    if not prog.done:  # the table ended exactly on a chunk boundary
        prog.done = True
        await writer.save(record, "copying")
    bar.add(shape.name, 0, force=True)


async def _kept(stream, shard: ShardFilter, shape: TableShape):
    async for rows in stream:
        yield shard.keep_rows(shape, rows)


async def _stream_all(reader: MySQLReader, shape: TableShape, chunk_rows: int):
    import aiomysql

    cols = ", ".join(reader.q(c) for c in shape.columns)
    async with reader._conn.cursor(aiomysql.SSCursor) as cur:  # noqa: SLF001 - inside the snapshot
        await cur.execute(f"SELECT {cols} FROM {reader.q(shape.db)}.{reader.q(shape.table)}")
        while True:
            rows = await cur.fetchmany(chunk_rows)
            if not rows:
                return
            yield list(rows)


async def _hand_off(config: Config, writer, record: BackfillRecord, shard_map=None) -> None:
    consumer, tps = await _consumer(config)
    try:
        offsets = await offsets_at(consumer, tps, record.snapshot_ts_ms - SNAPSHOT_MARGIN_S * 1000)
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
    await writer.finish(record, {(tp.topic, tp.partition): off for tp, off in offsets.items()}, shard_map)


# --------------------------------------------------------------------------------------- CLI


def add_backfill_parser(sub) -> None:
    from dbmux.cli import _default_config

    p = sub.add_parser("backfill", help="seed a target from a consistent snapshot of the primary, then hand it to "
                                        "its replicator at exactly that GTID")
    p.add_argument("-c", "--config", default=_default_config(),
                   help="pipeline config TOML (default: $DBMUX_CONFIG, else the local stack's)")
    p.add_argument("--target", required=True, help="target name from the config")
    p.add_argument("--tables", help="comma-separated db.table patterns (default: every table the target replicates)")
    p.add_argument("--chunk-rows", type=int, default=5000, help="rows per chunk / target transaction (default 5000)")
    p.add_argument("--restart", action="store_true",
                   help="forget an earlier backfill of this target and empty the selected tables first")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--catchup-timeout", type=float, default=120.0,
                   help="seconds to wait for the binlog reader's copies when resuming (default 120)")
    p.set_defaults(func=cmd_backfill)


def cmd_backfill(args: argparse.Namespace) -> int:
    from dbmux.cli import _run_async, _stack_config
    from dbmux.config import load_config

    if args.chunk_rows < 1:
        raise BackfillError("--chunk-rows must be at least 1")
    config = load_config(args.config or _stack_config())
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None

    async def main() -> int:
        rec = await backfill(config, args.target, tables, chunk_rows=args.chunk_rows, restart=args.restart,
                             progress=not args.no_progress, catchup_timeout_s=args.catchup_timeout)
        rows = sum(t.rows for t in rec.tables.values())
        print(f"target {args.target}: {len(rec.tables)} tables, {rows:,} rows copied; replication continues after "
              f"{','.join(rec.snapshot.values()) or 'the start of the binlog'} "
              f"(run: dbmux replicate --target {args.target})")
        return 0

    return _run_async(main())
