#!/usr/bin/env python3
"""``dbmux history`` on a long topic (issue 18: "answers in under 1 s on a topic of 1,000,000 events").

Usage (from the repository root, local stack up; ``DBMUX_STACK_DIR`` selects another stack)::

    .venv/bin/python bench/history.py [--events 1000000] [--keys 100000] [--queries 20] [--no-results]

One run: a fresh topic filled with ``--events`` binlog-form events written straight by a Kafka
producer (one row change each, on ``--keys`` keys of one table ``benchdb.acct``, so a key has
``events / keys`` changes; one event in ten also gets an ingress copy, as if it came through the
ingress); then ``dbmux history`` (the real CLI, in a subprocess) is run once to build its index from
nothing (timed: reading the whole topic once), then ``--queries`` times for random keys with the
index current (timed per call, CLI start-up included). Reported: the topic size, the index build time,
query times (median, max) against the 1 s target, and the answers' line counts (each must equal the
key's number of changes).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

from harness.environment import REPO, loadavg, run_meta, stack_env  # noqa: E402
from harness.errors import BenchError  # noqa: E402
from harness.results import command_line, report_head, run_and_publish  # noqa: E402
from harness.topics import delete_topic  # noqa: E402

from dbmux.core.codec import encode_event  # noqa: E402
from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement  # noqa: E402
from dbmux.core.gtid import Gtid  # noqa: E402

DB, TABLE = "benchdb", "acct"


async def fill(bootstrap: str, topic: str, events: int, keys: int) -> dict[int, int]:
    """Publish the events; returns the number of changes per key."""
    from aiokafka import AIOKafkaProducer

    from dbmux.core.config import KafkaConfig
    from dbmux.core.kafka_topics import ensure_topic
    from dbmux.core.topics import partition_key

    await ensure_topic(KafkaConfig(bootstrap=bootstrap), topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    counts: dict[int, int] = {}
    rng = random.Random(7)
    try:
        pending = []
        for seq in range(1, events + 1):
            key = rng.randrange(keys)
            op = "insert" if key not in counts else "update"
            counts[key] = counts.get(key, 0) + 1
            after = {"id": key, "owner": f"u{key}", "balance": seq}
            row = RowChange(TABLE, DB, op, before=dict(after, balance=seq - 1) if op == "update" else None,
                            after=after)
            ev = ChangeEvent(Gtid("0", "1", seq), "binlog", 1_700_000_000_000 + seq, rows=(row,))
            pending.append(await producer.send(topic, encode_event(ev), key=partition_key(ev)))
            if seq % 10 == 0:
                ing = ChangeEvent(Gtid("0", "1", seq), "ingress", ev.ts_ms, db=DB,
                                  statements=(Statement(f"UPDATE acct SET balance = {seq} WHERE id = {key}"),),
                                  session=SessionContext(user="app", client_addr="127.0.0.1:5555", connection_id=9))
                pending.append(await producer.send(topic, encode_event(ing), key=partition_key(ing)))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
                print(f"  published {seq:,} events", flush=True)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return counts


def history(cfg: Path, index: Path, key: int) -> tuple[float, int]:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "dbmux.cli", "history", "-c", str(cfg), "--index", str(index),
                          f"{DB}.{TABLE}", str(key)], cwd=REPO, capture_output=True, text=True, timeout=3600)
    took = time.monotonic() - t0
    if out.returncode != 0:
        raise BenchError(f"dbmux history exited {out.returncode}:\n{out.stderr[-3000:]}")
    return took, len(out.stdout.splitlines())


def run(args: argparse.Namespace) -> str:
    env = stack_env()
    topic = f"dbmux.histbench{uuid.uuid4().hex[:8]}.txn"
    work = Path(tempfile.mkdtemp(prefix="dbmux-histbench-"))
    cfg = work / "history.toml"
    # the primary is asked for benchdb.acct's key only; the table need not exist there (then: keyed by all
    # columns, which would not be found) -- so create it, empty
    cfg.write_text(f'[kafka]\nbootstrap = "{env["DBMUX_KAFKA"]}"\ntopic = "{topic}"\n'
                   f'[primary]\nurl = "{env["DBMUX_PRIMARY_URL"]}"\n')
    import pymysql

    from dbmux.core.dsn import Dsn
    p = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    conn = pymysql.connect(host=p.host, port=p.port, user=p.user, password=p.password, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
        cur.execute(f"CREATE TABLE IF NOT EXISTS {DB}.{TABLE} (id INT PRIMARY KEY, owner VARCHAR(20), balance INT)")
    conn.close()
    meta = run_meta()
    try:
        t0 = time.monotonic()
        counts = asyncio.run(fill(env["DBMUX_KAFKA"], topic, args.events, args.keys))
        fill_s = time.monotonic() - t0
        index = work / "index.sqlite"
        rng = random.Random(11)
        first_key = rng.choice(list(counts))
        build_s, n = history(cfg, index, first_key)
        if n != counts[first_key]:
            raise BenchError(f"key {first_key}: {n} lines, {counts[first_key]} changes")
        times = []
        for key in rng.sample(list(counts), min(args.queries, len(counts))):
            took, n = history(cfg, index, key)
            if n != counts[key]:
                raise BenchError(f"key {key}: {n} lines, {counts[key]} changes")
            times.append(took)
        meta["load_end"] = loadavg()
        med, worst = statistics.median(times), max(times)
        lines = report_head("bench/history.py: dbmux history on a long topic", meta, command_line("history.py"))
        lines += [f"- topic: {args.events:,} binlog events (+ {args.events // 10:,} ingress copies) on {len(counts):,} "
                  f"keys of {DB}.{TABLE}, published in {fill_s:.0f} s; index {index.stat().st_size / 2**20:.0f} MiB",
                  f"- first call (builds the index from the whole topic): {build_s:.1f} s",
                  f"- {len(times)} calls with the index current (CLI start-up included): median {med:.2f} s, "
                  f"max {worst:.2f} s; target < 1 s: {'PASS' if worst < 1.0 else 'MISS'}",
                  "- every answer had exactly the key's number of changes", ""]
        return "\n".join(lines)
    finally:
        delete_topic(env["DBMUX_KAFKA"], topic)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args()
    return run_and_publish(run, args)


if __name__ == "__main__":
    sys.exit(main())
