"""``dbmux history DB.TABLE KEY...``: every change of one row, in commit order, with who made it.

Each change is a row change of a transaction's binlog copy (the primary's row images: every write
is there, through the ingress or around it, each GTID once); for a transaction that came through
the ingress its copy adds the client's user, address, connection id and statements. Printed as JSON
lines: ``gtid``, ``ts_ms``, ``op`` (insert, update, delete; ``snapshot``: the row as a ``dbmux snapshot``
copied it, at that snapshot's GTID), ``before``, ``after`` (values in the
event wire form, :mod:`dbmux.core.codec`), and ``user``, ``client_addr``, ``connection_id``,
``statements`` (null for writes that bypassed the ingress). Needs the binlog reader's copies: a
transaction only the ingress published (binlog reader not running) has no row images to show.

The lookup goes through an index of the topic (:mod:`dbmux.cli.history_index`, ``--index``, by
default ``~/.cache/dbmux/history/<topic>.sqlite``), brought up to the topic's end first: building it
reads the whole topic once; afterwards a query reads only what was published since, plus the
messages of that row's changes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from dbmux.cli.common import add_config_arg, load_command_config, run_async
from dbmux.cli.event_filters import parse_time
from dbmux.cli.history_index import SNAPSHOT_IDX, HistoryIndex, key_text
from dbmux.core.codec import decode_event, encode_value
from dbmux.core.config import Config
from dbmux.core.errors import ConfigError
from dbmux.core.events import ChangeEvent
from dbmux.core.fragments import Reassembler
from dbmux.core.kafka_topics import topic_partitions
from dbmux.core.passwords import redact_event
from dbmux.replicator.source_schema import load_source_schema

log = logging.getLogger(__name__)

COMMIT_EVERY = 5000  # index entries committed together (with the positions they reach)


def default_index_path(topic: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dbmux" / "history" / f"{topic}.sqlite"


async def _primary_keys(config: Config) -> dict[tuple[str, str], tuple[str, ...]]:
    try:
        schema = await load_source_schema(config.primary.dsn)
    except Exception as exc:  # noqa: BLE001 - the topic alone still answers for tables indexed before
        log.warning("history: cannot read the primary's schema (%s); tables not indexed yet are keyed by all "
                    "their columns", exc)
        return {}
    return {name: tuple(info.primary_key) for name, info in schema.tables.items()}


async def update_index(consumer: AIOKafkaConsumer, tps: list[TopicPartition], index: HistoryIndex) -> int:
    """Index what was published since the index last read; returns how many messages were read."""
    ends = await consumer.end_offsets(tps)
    done = index.positions()
    for tp in tps:
        consumer.seek(tp, done.get(tp.partition, 0))
    fragments: Reassembler[int] = Reassembler("dbmux history")
    read = since_commit = 0
    nxt = {tp.partition: done.get(tp.partition, 0) for tp in tps}
    while any(nxt[tp.partition] < ends[tp] for tp in tps):
        batch = await consumer.getmany(*tps, timeout_ms=1000, max_records=5000)
        for tp, recs in batch.items():
            for rec in recs:
                read += 1
                nxt[tp.partition] = rec.offset + 1
                whole = fragments.add(rec.value, tp.partition, rec.offset)
                if whole is not None:
                    index.add(decode_event(whole[0]), tp.partition, whole[1])
                    since_commit += 1
        if since_commit >= COMMIT_EVERY:
            index.advance(_safe(nxt, fragments))
            since_commit = 0
    index.advance(_safe(nxt, fragments))
    return read


def _safe(nxt: dict[int, int], fragments: Reassembler[int]) -> dict[int, int]:
    """Positions that never point inside an unfinished fragment set (it is read again next time)."""
    pending = fragments.pending_offsets()
    return {p: min(o, pending.get(p, o)) for p, o in nxt.items()}


async def _fetch(consumer: AIOKafkaConsumer, topic: str, part: int, offset: int) -> ChangeEvent:
    """The event whose (first) message is at ``offset``."""
    tp = TopicPartition(topic, part)
    consumer.seek(tp, offset)
    fragments: Reassembler[int] = Reassembler("dbmux history")
    while True:
        for rec in (await consumer.getmany(tp, timeout_ms=1000, max_records=64)).get(tp, []):
            whole = fragments.add(rec.value, part, rec.offset)
            if whole is not None and whole[1] == offset:
                return decode_event(whole[0])


def _wire(image: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if image is None else {k: encode_value(v, k) for k, v in image.items()}


async def print_history(config: Config, table: str, key: list[str], *, since_ms: int | None, until_ms: int | None,
                        index_path: Path, out: TextIO = sys.stdout) -> int:
    db, _, tbl = table.partition(".")
    if not db or not tbl:
        raise ConfigError("DB.TABLE", f"{table!r} is not db.table", "e.g. shop.orders")
    keys = await _primary_keys(config)
    index = HistoryIndex(index_path, lambda d, t: keys.get((d, t)))
    consumer = AIOKafkaConsumer(bootstrap_servers=config.kafka.bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    reader: AIOKafkaConsumer | None = None
    try:
        tps = await topic_partitions(consumer, config.topic, attempts=3)
        if not tps:
            print(f"topic {config.topic} does not exist yet (nothing published)", file=sys.stderr)
            return 1
        consumer.assign(tps)
        read = await update_index(consumer, tps, index)
        if read:
            log.info("history: indexed %d messages of %s into %s", read, config.topic, index_path)
        cols = index.key_columns(db, tbl)
        if not cols:
            raise ConfigError("DB.TABLE", f"{table}: its primary key is not known (not on the primary now, or it "
                              "has none)", "history looks rows up by primary key")
        if len(key) != len(cols):
            raise ConfigError("KEY", f"{table}'s primary key is ({', '.join(cols)}): give {len(cols)} value(s)")
        changes = index.changes(db, tbl, key_text(key), since_ms, until_ms)
        if changes:
            # read by a consumer of their own: this one has fetches in flight at the topic's end (a long
            # poll), and each seek would wait for them (~40 ms a change)
            reader = AIOKafkaConsumer(bootstrap_servers=config.kafka.bootstrap, enable_auto_commit=False,
                                      max_partition_fetch_bytes=config.kafka.fragment_bytes + 64 * 1024)
            await reader.start()
            reader.assign(tps)
        for domain, seq, idx, ts_ms, part, off in changes:
            assert reader is not None  # (started above: there are changes)
            ev = await _fetch(reader, config.topic, part, off)
            row = ev.rows[idx % SNAPSHOT_IDX]
            op = "snapshot" if idx >= SNAPSHOT_IDX else row.op
            line: dict[str, Any] = {"gtid": str(ev.gtid), "ts_ms": ts_ms, "op": op, "before": _wire(row.before),
                                    "after": _wire(row.after), "user": None, "client_addr": None,
                                    "connection_id": None, "statements": None}
            where = index.session_of(domain, seq)
            if where is not None:
                ing = redact_event(await _fetch(reader, config.topic, *where))
                if ing.session is not None:
                    line.update(user=ing.session.user, client_addr=ing.session.client_addr,
                                connection_id=ing.session.connection_id)
                line["statements"] = [st.sql for st in ing.statements]
            out.write(orjson.dumps(line).decode() + "\n")
        out.flush()
        return 0
    finally:
        if reader is not None:
            await reader.stop()
        await consumer.stop()
        index.close()


def cmd_history(args: argparse.Namespace) -> int:
    config = load_command_config(args)
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    path = Path(args.index) if args.index else default_index_path(config.topic)
    return run_async(print_history(config, args.table, args.key, since_ms=since, until_ms=until, index_path=path))


def register(sub: Any) -> None:
    hp = sub.add_parser("history", help="every change of one row in commit order, with who made it (JSON lines)")
    add_config_arg(hp)
    hp.add_argument("table", metavar="DB.TABLE")
    hp.add_argument("key", nargs="+", metavar="KEY", help="the row's primary-key value(s), in key order")
    hp.add_argument("--since", metavar="TIME", help="changes committed at or after (ISO 8601 or epoch ms)")
    hp.add_argument("--until", metavar="TIME", help="changes committed at or before")
    hp.add_argument("--index", metavar="FILE", help="the index file (default ~/.cache/dbmux/history/<topic>.sqlite)")
    hp.set_defaults(func=cmd_history)
