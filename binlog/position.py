"""Where the binlog reader resumes: the last GTID per domain that Kafka acknowledged.

Stored in the compacted topic ``<topic>.binlog-position`` (one partition, key ``b"position"``), value
orjson ``{"gtid_pos": "0-1-123,1-2-9", "offsets": {"0": 4711}, "topic": ..., "ts_ms": ...}``.
``offsets`` are the data topic's next offsets when the position was written: on start the reader
scans the data topic from there and moves the position past any ``source="binlog"`` event that was
acknowledged after the last position write (:func:`advance_with`), so a crash between an ack and
its position write does not publish that transaction again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dbmux.core.codec import decode_event
from dbmux.core.config import KafkaConfig
from dbmux.core.events import ChangeEvent, EnvelopeError
from dbmux.core.fragments import Reassembler
from dbmux.core.gtid import Gtid, parse_gtid_list
from dbmux.core.kafka_topics import ensure_topic

log = logging.getLogger(__name__)

POSITION_KEY = b"position"


def position_topic(topic: str) -> str:
    return f"{topic}.binlog-position"


@dataclass(frozen=True, slots=True)
class BinlogPosition:
    """Last published GTID per domain (+ the data topic's next offsets when it was taken)."""

    gtids: dict[str, Gtid] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, gtid_pos: str) -> BinlogPosition:
        return cls(parse_gtid_list(gtid_pos))

    def text(self) -> str:
        """MariaDB ``gtid_binlog_pos`` form / MySQL GTID-set form (``uuid:1-n``), for auto_position."""
        parts = []
        for domain in sorted(self.gtids):
            g = self.gtids[domain]
            parts.append(f"{g.domain}:1-{g.seq}" if g.kind == "mysql" else str(g))
        return ",".join(parts)

    def advance(self, gtid: Gtid) -> BinlogPosition:
        old = self.gtids.get(gtid.domain)
        if old is not None and old.seq >= gtid.seq:
            return self
        return dataclasses.replace(self, gtids={**self.gtids, gtid.domain: gtid})

    def with_offsets(self, offsets: dict[int, int]) -> BinlogPosition:
        return dataclasses.replace(self, offsets={**self.offsets, **offsets})

    def encode(self, topic: str) -> bytes:
        return orjson.dumps({"gtid_pos": self.text(), "offsets": {str(p): o for p, o in self.offsets.items()},
                             "topic": topic, "ts_ms": int(time.time() * 1000)})

    @classmethod
    def decode(cls, raw: bytes) -> BinlogPosition:
        doc = orjson.loads(raw)
        pos = cls.parse(doc.get("gtid_pos") or "")
        return dataclasses.replace(pos, offsets={int(p): int(o) for p, o in (doc.get("offsets") or {}).items()})


def advance_with(pos: BinlogPosition, events: list[ChangeEvent]) -> BinlogPosition:
    """Move ``pos`` past binlog-sourced events found on the topic (ingress events never count: the
    ingress may be ahead of the binlog reader, and skipping to its GTIDs would lose transactions)."""
    for ev in events:
        if ev.source == "binlog":
            pos = pos.advance(ev.gtid)
    return pos


class PositionStore:
    def __init__(self, kafka: KafkaConfig, topic: str) -> None:
        self._kafka = kafka
        self.topic = topic
        self.pos_topic = position_topic(topic)

    async def ensure(self) -> None:
        await ensure_topic(dataclasses.replace(self._kafka, partitions=1), self.pos_topic,
                           extra_config={"cleanup.policy": "compact", "retention.ms": "-1"})

    async def load(self) -> BinlogPosition | None:
        """The stored position reconciled with the data topic's tail, or None when none is stored."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self._kafka.bootstrap, enable_auto_commit=False,
                                    request_timeout_ms=self._kafka.request_timeout_ms)
        await consumer.start()
        try:
            tp = TopicPartition(self.pos_topic, 0)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            if end == 0:
                return None
            consumer.seek(tp, end - 1)
            raw = None
            deadline = time.monotonic() + 15
            while raw is None and time.monotonic() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for rec in batch.get(tp, []):
                    if rec.key == POSITION_KEY:
                        raw = rec.value
            if raw is None:  # the last record was not ours (or compaction marker): scan the whole topic
                consumer.seek(tp, 0)
                while await consumer.position(tp) < end:
                    batch = await consumer.getmany(tp, timeout_ms=500)
                    for rec in batch.get(tp, []):
                        if rec.key == POSITION_KEY:
                            raw = rec.value
            if raw is None:
                return None
            pos = BinlogPosition.decode(raw)
        finally:
            await consumer.stop()
        return await self._reconcile(pos)

    async def _reconcile(self, pos: BinlogPosition) -> BinlogPosition:
        if not pos.offsets:
            return pos
        consumer = AIOKafkaConsumer(bootstrap_servers=self._kafka.bootstrap, enable_auto_commit=False,
                                    request_timeout_ms=self._kafka.request_timeout_ms,
                                    max_partition_fetch_bytes=8 * 1024 * 1024)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in pos.offsets]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, pos.offsets[tp.partition])
            found: list[ChangeEvent] = []
            async def behind() -> bool:
                return any([await consumer.position(tp) < ends[tp] for tp in tps])

            fragments: Reassembler[int] = Reassembler("binlog reader")
            while await behind():
                batch = await consumer.getmany(timeout_ms=500)
                for recs in batch.values():
                    for rec in recs:
                        try:
                            whole = fragments.add(rec.value, rec.partition, rec.offset)
                            if whole is not None:  # an unfinished set at the end was not acknowledged
                                found.append(decode_event(whole[0]))
                        except EnvelopeError as exc:
                            log.warning("binlog reader: undecodable event at %s@%s: %s", rec.partition,
                                        rec.offset, exc)
            new = advance_with(pos, found)
            if new.gtids != pos.gtids:
                log.info("binlog reader: position %s advanced to %s from acknowledged events on %s",
                         pos.text(), new.text(), self.topic)
            return new.with_offsets({tp.partition: ends[tp] for tp in tps})
        finally:
            await consumer.stop()

    async def save(self, producer: AIOKafkaProducer, pos: BinlogPosition) -> asyncio.Future:
        return await producer.send(self.pos_topic, pos.encode(self.topic), key=POSITION_KEY, partition=0)
