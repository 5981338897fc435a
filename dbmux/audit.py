"""Reading the change-event topic: ``dbmux events`` prints the audit trail as JSON lines."""

from __future__ import annotations

import asyncio
import sys

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from dbmux.config import Config
from dbmux.envelope import decode_event, encode_event


async def print_events(config: Config, *, last: int, follow: bool, out=sys.stdout) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=config.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(config.topic) or set()
        tps = [TopicPartition(config.topic, p) for p in sorted(parts)]
        if not tps:
            print(f"topic {config.topic} does not exist yet (nothing published)", file=sys.stderr)
            return 1
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        begins = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(begins[tp], ends[tp] - last))
        while True:
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for tp in tps:
                for rec in batch.get(tp, []):
                    ev = decode_event(rec.value)  # validates; re-encoded canonical JSON
                    line = orjson.loads(encode_event(ev))
                    line["_partition"], line["_offset"] = tp.partition, rec.offset
                    out.write(orjson.dumps(line).decode() + "\n")
            out.flush()
            if not follow:
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps)):
                    return 0
    finally:
        await consumer.stop()


def run(config: Config, last: int, follow: bool) -> int:
    try:
        return asyncio.run(print_events(config, last=last, follow=follow))
    except KeyboardInterrupt:
        return 0
