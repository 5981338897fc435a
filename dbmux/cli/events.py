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
from dbmux.cli.event_filters import OPS, EventFilter
from dbmux.core.codec import decode_event, encode_event
from dbmux.core.config import Config
from dbmux.core.fragments import Reassembler
from dbmux.core.passwords import redact_event


async def print_events(config: Config, *, last: int | None, follow: bool, out: TextIO = sys.stdout,
                       only: EventFilter | None = None) -> int:
    """Print from ``last`` messages before the end per partition (None: 10, or with filters every
    message since ``--since``, else since the beginning), only the events ``only`` matches."""
    only = only or EventFilter()
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
        starts = {tp: max(begins[tp], ends[tp] - last) for tp in tps} if last is not None else None
        if starts is None and only.active:
            starts = dict(begins)
            if only.since_ms is not None:  # a message is produced after its commit: none earlier is needed
                for tp, found in (await consumer.offsets_for_times({tp: only.since_ms for tp in tps})).items():
                    starts[tp] = found.offset if found is not None else ends[tp]
        for tp in tps:
            consumer.seek(tp, starts[tp] if starts is not None else max(begins[tp], ends[tp] - 10))
        fragments: Reassembler[int] = Reassembler("dbmux events")
        while True:
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for tp in tps:
                for rec in batch.get(tp, []):
                    whole = fragments.add(rec.value, tp.partition, rec.offset)
                    if whole is None:  # a fragment: the event is printed once all of it is read
                        continue
                    ev = decode_event(whole[0])
                    if not only.matches(ev):
                        continue
                    ev = redact_event(ev)  # validated; re-encoded canonical JSON
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
        only = EventFilter.from_args(args.table or (), args.gtid, args.since, args.until, args.user, args.op or ())
        return run_async(print_events(config, last=args.last, follow=args.follow, only=only))
    except KeyboardInterrupt:
        return 0


def register(sub: Any) -> None:
    evp = sub.add_parser("events", help="print change events from the topic (the audit trail) as JSON lines")
    add_config_arg(evp)
    evp.add_argument("--last", type=int, default=None,
                     help="start this many messages before the end, per partition (default 10; with filters: "
                          "from --since, else from the beginning)")
    evp.add_argument("--table", action="append", metavar="DB.TABLE", help="events touching these tables "
                     "(patterns like shop.*; repeatable)")
    evp.add_argument("--gtid", metavar="FROM..TO", help="events in this GTID range (inclusive, one domain)")
    evp.add_argument("--since", metavar="TIME", help="committed at or after (ISO 8601, UTC unless an offset is "
                     "given, or epoch ms)")
    evp.add_argument("--until", metavar="TIME", help="committed at or before")
    evp.add_argument("--user", help="ingress events of this client user")
    evp.add_argument("--op", action="append", choices=OPS, help="events with a row insert/update/delete or a "
                     "ddl/dml statement (repeatable)")
    evp.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    evp.set_defaults(func=cmd_events)
