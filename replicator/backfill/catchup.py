"""Resuming an interrupted backfill: read the binlog reader's copies of the transactions between the
old and the new snapshot from the topic, and apply the part of them that falls into what is copied.
Also the Kafka offsets the hand-off stores."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from dbmux.core.codec import decode_event
from dbmux.core.config import Config
from dbmux.core.events import ChangeEvent, RowChange
from dbmux.core.fragments import Reassembler
from dbmux.core.gtid import Gtid
from dbmux.core.kafka_topics import ensure_topic, topic_partitions
from dbmux.replicator.backfill.record import BackfillRecord, TableProgress, catchup_rows, key_resumable
from dbmux.replicator.backfill.snapshot import Snapshot
from dbmux.replicator.errors import BackfillError
from dbmux.replicator.filtering import filter_event
from dbmux.replicator.verify_readers import TableShape

log = logging.getLogger(__name__)

SNAPSHOT_MARGIN_S = 300  # hand-off/catch-up read Kafka from this long before the snapshot (clock skew)
CATCHUP_BATCH = 500  # transactions per target transaction while catching up


async def open_consumer(config: Config) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
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
    consumer, tps = await open_consumer(config)
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

        fragments: Reassembler[int] = Reassembler("backfill catch-up")
        while missing():
            records = await consumer.getmany(*tps, timeout_ms=500, max_records=2000)
            for recs in records.values():
                for rec in recs:
                    whole = fragments.add(rec.value, rec.partition, rec.offset)
                    if whole is None:
                        continue
                    ev = decode_event(whole[0])
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


async def resume(config: Config, writer, shapes: dict[str, TableShape], record: BackfillRecord, snap: Snapshot,
                  timeout_s: float, shard: Any = None) -> None:
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
        rows: list[RowChange] = []
        for ev in batch:
            mine = catchup_rows(filter_event(ev, writer.target.tables), shapes, record.tables)
            rows.extend(shard.route_rows(ev, mine) if shard is not None else mine)
            record.snapshot[ev.gtid.domain] = str(ev.gtid)
        await writer.apply_rows(rows, shapes, record)
    record.snapshot, record.snapshot_ts_ms = snap.text(), snap.ts_ms
    await writer.save(record, "copying")
