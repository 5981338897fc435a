"""``dbmux snapshot``: publish a consistent copy of tables into the topic, so that from then on the topic
alone holds their full state (snapshot + every later change), for ``dbmux rebuild`` and ``dbmux history``.

One consistent read of the primary (``START TRANSACTION WITH CONSISTENT SNAPSHOT``, the same as
``dbmux backfill``: no lock on MariaDB) at a recorded GTID position. Per table, ``source: "snapshot"``
events (:class:`~dbmux.core.events.SnapshotPart`): ``begin`` with ``SHOW CREATE TABLE`` and the
primary key, ``rows`` events of up to ``chunk_rows`` rows each (``insert`` row changes, values as the
binlog reader gives them), then ``end`` with the row count, published once every rows event before it
is acknowledged. Each event carries the snapshot's GTID position; the event's own GTID is the
position's GTID of the partition it goes to (the message key is that GTID's domain, like every event).

Replicators skip snapshot events (their targets hold the rows already: they replicated them or were
backfilled). A table's snapshot counts only with its ``end``.

Interrupted? Run the same command again: the run's progress is kept in the compacted topic
``<topic>.snapshot-runs``; tables whose ``end`` was acknowledged are not published again, the others
are copied from a new consistent read (each table's snapshot names its own GTID position, so the
tables of one run may have different positions: rebuild replays each table from its own).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dbmux.core.codec import encode_event
from dbmux.core.config import Config
from dbmux.core.events import ChangeEvent, RowChange, SnapshotPart
from dbmux.core.fragments import split
from dbmux.core.gtid import Gtid
from dbmux.core.kafka_topics import ensure_topic
from dbmux.core.topics import partition_key
from dbmux.replicator.backfill.run import NoProgress, ProgressSink
from dbmux.replicator.backfill.snapshot import Snapshot, create_sql, estimated_rows, open_snapshot
from dbmux.replicator.errors import BackfillError
from dbmux.replicator.filtering import table_selected
from dbmux.replicator.verify_readers import MySQLReader, TableShape

log = logging.getLogger(__name__)

RUN_KEY = b"run"


def runs_topic(topic: str) -> str:
    return f"{topic}.snapshot-runs"


@dataclass
class SnapshotRun:
    """One ``dbmux snapshot`` run: the tables it selected and, per table done, the position it has."""

    id: str
    tables: list[str]
    done: dict[str, str] = field(default_factory=dict)
    finished: bool = False

    def dumps(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def loads(cls, raw: bytes) -> SnapshotRun:
        doc = orjson.loads(raw)
        return cls(str(doc["id"]), list(doc["tables"]), dict(doc.get("done") or {}), bool(doc.get("finished")))


def select_tables(shapes: list[TableShape], patterns: list[str] | None) -> dict[str, TableShape]:
    """The primary's tables that ``patterns`` (``db.table`` fnmatch patterns; None: all) select; a
    pattern selecting nothing is an error naming it."""
    out = {s.name: s for s in shapes if patterns is None or table_selected(patterns, s.db, s.table)}
    for p in patterns or ():
        if not any(table_selected([p], s.db, s.table) for s in shapes):
            raise BackfillError(f"--tables {p!r} selects no table of the primary")
    return out


def event_gtid(snap: Snapshot) -> Gtid:
    """The GTID a snapshot event is stamped with (its partition is that GTID's domain)."""
    if not snap.gtids:
        return Gtid("0", "0", 0)  # an empty binlog: nothing committed yet
    return snap.gtids[sorted(snap.gtids)[0]]


def _position_text(snap: Snapshot) -> str:
    return ",".join(str(snap.gtids[d]) for d in sorted(snap.gtids))


def _row_values(shape: TableShape, row: tuple) -> dict[str, Any]:
    """A row as the binlog reader gives it (BIT: an int, as the binlog row decoder makes it)."""
    out = dict(zip(shape.columns, row, strict=True))
    for col, typ in zip(shape.columns, shape.types, strict=True):
        v = out[col]
        if typ == "bit" and isinstance(v, (bytes, bytearray)):
            out[col] = int.from_bytes(v, "big")
    return out


class _Publisher:
    def __init__(self, config: Config, producer: AIOKafkaProducer, snap: Snapshot) -> None:
        self.config, self.producer, self.snap = config, producer, snap
        self.gtid = event_gtid(snap)
        self.position = _position_text(snap)
        self.pending: list[asyncio.Future] = []

    async def send(self, part: SnapshotPart, rows: tuple[RowChange, ...] = ()) -> None:
        ev = ChangeEvent(self.gtid, "snapshot", self.snap.ts_ms, part.table.split(".", 1)[0], rows=rows,
                         snapshot=part)
        for value in split(encode_event(ev), self.config.kafka.fragment_bytes, str(ev.gtid), ev.source):
            self.pending.append(await self.producer.send(self.config.topic, value, key=partition_key(ev)))

    async def acked(self) -> None:
        pending, self.pending = self.pending, []
        await asyncio.gather(*pending)


async def _publish_table(pub: _Publisher, reader: MySQLReader, shape: TableShape, chunk_rows: int,
                         bar: ProgressSink) -> int:
    sid = uuid.uuid4().hex
    await pub.send(SnapshotPart(sid, shape.name, "begin", pub.position, 0, create_sql=await create_sql(reader, shape),
                                primary_key=shape.pk_names))
    cols = ", ".join(reader.q(c) for c in shape.columns)
    order = (" ORDER BY " + ", ".join(reader.q(c) for c in shape.pk_names)) if shape.pk else ""
    total = chunk = 0
    async for rows in reader.stream(f"SELECT {cols} FROM {reader.q(shape.db)}.{reader.q(shape.table)}{order}",
                                    chunk_rows):
        chunk += 1
        changes = tuple(RowChange(shape.table, shape.db, "insert", after=_row_values(shape, r)) for r in rows)
        await pub.send(SnapshotPart(sid, shape.name, "rows", pub.position, chunk), changes)
        total += len(rows)
        bar.add(shape.name, len(rows))
    await pub.acked()  # every rows event is in the topic before the end says the copy is whole
    await pub.send(SnapshotPart(sid, shape.name, "end", pub.position, chunk + 1, rows_total=total))
    await pub.acked()
    bar.add(shape.name, 0, force=True)
    return total


async def _last_run(config: Config) -> SnapshotRun | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=config.kafka.bootstrap, enable_auto_commit=False,
                                request_timeout_ms=config.kafka.request_timeout_ms)
    await consumer.start()
    try:
        tp = TopicPartition(runs_topic(config.topic), 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        raw = None
        consumer.seek(tp, 0)
        while await consumer.position(tp) < end:  # (compacted: a handful of records)
            for rec in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                if rec.key == RUN_KEY:
                    raw = rec.value
        return SnapshotRun.loads(raw) if raw is not None else None
    finally:
        await consumer.stop()


@dataclass
class SnapshotResult:
    run: SnapshotRun
    rows: dict[str, int]  # rows published per table by this invocation
    resumed: list[str]  # tables an interrupted earlier invocation had already published


async def publish_snapshot(config: Config, patterns: list[str] | None = None, *, chunk_rows: int = 1000,
                           restart: bool = False, progress: ProgressSink | None = None) -> SnapshotResult:
    """Publish snapshots of the selected tables (see the module docstring)."""
    if chunk_rows < 1:
        raise BackfillError("--chunk-rows must be at least 1")
    await ensure_topic(config.kafka, config.topic)
    await ensure_topic(dataclasses.replace(config.kafka, partitions=1), runs_topic(config.topic),
                       extra_config={"cleanup.policy": "compact", "retention.ms": "-1"})
    reader = await MySQLReader.connect("primary", config.primary.dsn)
    k = config.kafka
    producer = AIOKafkaProducer(bootstrap_servers=k.bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                                request_timeout_ms=k.request_timeout_ms, max_request_size=k.fragment_bytes + 64 * 1024)
    await producer.start()
    try:
        snap = await open_snapshot(reader)
        shapes = select_tables(await reader.list_tables(), patterns)
        if not shapes:
            raise BackfillError("the primary has no table to snapshot (outside the system schemas)")
        last = None if restart else await _last_run(config)
        if last is not None and not last.finished and sorted(last.tables) == sorted(shapes):
            run = last
            log.info("snapshot run %s was interrupted: %d of %d tables are published already, the rest follow",
                     run.id, len(run.done), len(run.tables))
        else:
            run = SnapshotRun(uuid.uuid4().hex, sorted(shapes))
        resumed = sorted(run.done)
        todo = [shapes[n] for n in run.tables if n not in run.done]
        est = await estimated_rows(reader, todo)
        bar = progress or NoProgress()
        bar.start(sum(est.values()))
        pub = _Publisher(config, producer, snap)
        rows: dict[str, int] = {}
        started = time.monotonic()
        for shape in todo:
            rows[shape.name] = await _publish_table(pub, reader, shape, chunk_rows, bar)
            run.done[shape.name] = pub.position
            run.finished = len(run.done) == len(run.tables)
            await producer.send_and_wait(runs_topic(config.topic), run.dumps(), key=RUN_KEY)
        if not todo:
            run.finished = True
            await producer.send_and_wait(runs_topic(config.topic), run.dumps(), key=RUN_KEY)
        bar.close()
        log.info("snapshot %s: %d tables, %d rows at GTID position %s in %.1fs", run.id, len(rows), sum(rows.values()),
                 pub.position or "(empty binlog)", time.monotonic() - started)
        return SnapshotResult(run, rows, resumed)
    finally:
        await producer.stop()
        await reader.close()
