"""The backfill run: seed a new target from one consistent snapshot of the primary, then hand it to
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

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from dbmux.core.config import Config, TargetConfig
from dbmux.core.events import ChangeEvent, RowChange
from dbmux.replicator.backfill.catchup import SNAPSHOT_MARGIN_S, offsets_at, open_consumer, resume
from dbmux.replicator.backfill.record import BackfillRecord, TableProgress, key_resumable
from dbmux.replicator.backfill.snapshot import create_sql, estimated_rows, open_snapshot
from dbmux.replicator.backfill.targets import open_target
from dbmux.replicator.errors import BackfillError
from dbmux.replicator.filtering import table_selected
from dbmux.replicator.shard_routing import ShardRouter
from dbmux.replicator.shard_target import current_map
from dbmux.replicator.source_schema import load_source_schema
from dbmux.replicator.verify_readers import MySQLReader, TableShape
from dbmux.shardmap.model import VERSIONS_DB

log = logging.getLogger(__name__)


class ProgressSink(Protocol):
    """Where a backfill reports copied rows (the CLI draws a progress line; tests may count)."""

    def start(self, total_rows: int) -> None: ...

    def add(self, table: str, rows: int, *, force: bool = False) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def start(self, total_rows: int) -> None:
        pass

    def add(self, table: str, rows: int, *, force: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


class ShardFilter:
    """A shard target gets only its own rows: the map's rule per table, the owner per key."""

    def __init__(self, shard_map, schema, shard: str) -> None:
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
    shard_map = shard_map or await current_map(config)
    if target.shard not in shard_map.shards:
        raise BackfillError(f"shard {target.shard!r} of target {target.name} is not in shard map version "
                            f"{shard_map.version} ({', '.join(shard_map.shards)}): add it with 'dbmux reshard "
                            f"--add-shard {target.shard}'")
    return ShardFilter(shard_map, await load_source_schema(config.primary.dsn), target.shard)


async def backfill(config: Config, target_name: str, tables: list[str] | None = None, *, chunk_rows: int = 5000,
                   restart: bool = False, progress: ProgressSink | None = None, catchup_timeout_s: float = 120.0,
                   shard_map=None) -> BackfillRecord:
    """Seed ``target_name`` (see the module docstring). A shard target gets the rows it owns under
    ``shard_map`` (default: the newest recorded version), and starts replicating with that version."""
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
                rec.already_done = True
                log.info("target %s was backfilled at %s and is handed to its replicator: nothing to do",
                         target_name, ",".join(rec.snapshot.values()) or "an empty binlog")
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
            await resume(config, writer, shapes, record, snap, catchup_timeout_s, shard)
        else:
            record = BackfillRecord(snap.text(), snap.ts_ms, {name: TableProgress() for name in shapes})
            for name, shape in shapes.items():
                present = await writer.ensure_table(shape, await create_sql(reader, shape))
                if present and not restart:
                    raise BackfillError(f"table {name} on target {target_name} already holds {present} rows: backfill "
                                        "copies into empty tables; pass --restart to empty it first")
                if present:
                    await writer.truncate(shape)
            await writer.save(record, "copying")
        for name, shape in shapes.items():  # tables created by an earlier run may have been dropped since
            if not record.tables[name].started:
                await writer.ensure_table(shape, await create_sql(reader, shape))
        est = await estimated_rows(reader, list(shapes.values()))
        bar = progress or NoProgress()
        bar.start(sum(max(est[n] - record.tables[n].rows, 0) for n in shapes))
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


async def _copy_table(reader: MySQLReader, writer, shape: TableShape, record: BackfillRecord, chunk_rows: int,
                      bar: ProgressSink, shard: ShardFilter | None = None) -> None:
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


def _stream_all(reader: MySQLReader, shape: TableShape, chunk_rows: int) -> AsyncIterator[list[tuple]]:
    cols = ", ".join(reader.q(c) for c in shape.columns)
    return reader.stream(f"SELECT {cols} FROM {reader.q(shape.db)}.{reader.q(shape.table)}", chunk_rows)


async def _hand_off(config: Config, writer, record: BackfillRecord, shard_map=None) -> None:
    consumer, tps = await open_consumer(config)
    try:
        offsets = await offsets_at(consumer, tps, record.snapshot_ts_ms - SNAPSHOT_MARGIN_S * 1000)
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
    await writer.finish(record, {(tp.topic, tp.partition): off for tp, off in offsets.items()}, shard_map)
