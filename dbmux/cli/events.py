"""``dbmux events``: print the change-event topic (the audit trail) as JSON lines.

Producers never publish a clear-text password; events published before they redacted are shown
redacted too (:func:`dbmux.core.passwords.redact_event`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from dbmux.cli.common import add_config_arg, load_command_config, run_async
from dbmux.core.codec import decode_event, encode_event
from dbmux.core.config import Config
from dbmux.core.fragments import Reassembler
from dbmux.core.passwords import redact_event


async def print_events(config: Config, *, last: int, follow: bool, out: TextIO = sys.stdout) -> int:
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
        fragments: Reassembler[int] = Reassembler("dbmux events")
        while True:
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for tp in tps:
                for rec in batch.get(tp, []):
                    whole = fragments.add(rec.value, tp.partition, rec.offset)
                    if whole is None:  # a fragment: the event is printed once all of it is read
                        continue
                    ev = redact_event(decode_event(whole[0]))  # validates; re-encoded canonical JSON
                    line = orjson.loads(encode_event(ev))
                    line["_partition"], line["_offset"] = tp.partition, whole[1]
                    out.write(orjson.dumps(line).decode() + "\n")
            out.flush()
            if not follow:
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                    return 0
    finally:
        await consumer.stop()


def cmd_events(args: argparse.Namespace) -> int:
    config = load_command_config(args)
    try:
        return run_async(print_events(config, last=args.last, follow=args.follow))
    except KeyboardInterrupt:
        return 0


def register(sub: Any) -> None:
    evp = sub.add_parser("events", help="print change events from the topic (the audit trail) as JSON lines")
    add_config_arg(evp)
    evp.add_argument("--last", type=int, default=10, help="start this many events before the end (per partition)")
    evp.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    evp.set_defaults(func=cmd_events)
