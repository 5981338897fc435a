#!/usr/bin/env python3
"""Binlog reader benchmark: `dbmux binlog` vs a bare python-mysql-replication loop over the same binlog.

Usage (from the repository root, with the local stack up: ``dbmux stack up``; ``DBMUX_STACK_DIR``
selects another stack directory)::

    .venv/bin/python bench/binlog_bench.py [--txns 20000] [--rows-per-txn 4] [--rounds 3]
        [--only both|bare|dbmux] [--keep-topic] [--no-results]

What it does, in one run:

1. **Prepare** (not timed): drops/recreates database ``binlog_bench`` on the primary with one table
   ``orders`` (BIGINT PK, INT, VARCHAR x2, DECIMAL(12,2), DATETIME(6) x2, BLOB), records the primary's
   ``@@gtid_binlog_pos`` and ``SHOW MASTER STATUS``, then commits ``--txns`` transactions straight on
   the primary (PyMySQL, autocommit, 200 statements per round trip as a multi-statement): per 10
   transactions 6 multi-row INSERTs, 3 UPDATEs and 1 DELETE, each touching ``--rows-per-txn`` rows.
   The position is recorded again; the range must hold exactly ``--txns`` GTIDs.
2. **bare**: a ``BinLogStreamReader`` loop with the reader's own settings (same connection settings,
   ``only_events``, ``blocking=True``, ``resume_stream``, ``auto_position`` = the start position,
   heartbeat, ``freeze_schema`` and the table maps dropped at every rotate event: the fastest settings
   that decode correctly, so the bare loop is what any consumer of the library could do) that, for
   each row event, iterates ``ev.rows`` and every value of every image (the least a consumer must do:
   the library decodes rows lazily) and stops at the XID of the last GTID.
3. **dbmux**: the real reader class (``replicator.binlog_reader.BinlogReader``, what ``dbmux binlog``
   runs) in this process, from the stack's generated config with ``DBMUX_KAFKA_TOPIC`` set to a
   fresh topic ``dbmux.binlogbench<random>.txn`` (deleted afterwards, with its ``.binlog-position``
   topic, unless ``--keep-topic``), ``--from-gtid`` = the start position. Done when the reader has
   had every transaction acknowledged by Kafka (``BinlogReader.published``, polled every 5 ms); then
   stopped. The topic's end offset must equal ``--txns`` (Kafka sanity).
4. ``--rounds`` rounds, alternating the order (bare -> dbmux, dbmux -> bare, ...). Reported per path:
   transactions/s from the start of the run (connect, start-up) to the last transaction, and *steady*
   transactions/s from the first transaction to the last; CPU seconds per wall second of this
   process, of its threads, of the primary (mariadbd) and of Kafka. Ratio dbmux/bare of the medians;
   target >= 1.0x (PASS/MISS; a MISS never makes the exit code non-zero). Appends the report to
   ``bench/RESULTS.md``.

Profile the dbmux path with ``py-spy record -o prof.svg -- .venv/bin/python bench/binlog_bench.py
--only dbmux --no-results`` (py-spy is in the venv).

Exit codes: 0 done (even with a MISS), 2 stack down, 1 the bench itself failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import decimal
import logging
import os
import random
import secrets
import shlex
import signal
import statistics
import string
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
RESULTS = BENCH_DIR / "RESULTS.md"
for p in (str(REPO), str(BENCH_DIR)):
    if p not in sys.path:
        sys.path.insert(0, p)

from ingress_sysbench import (  # noqa: E402 - shared helpers of the bench scripts
    BenchError, Prereq, _loadavg, delete_topic, end_offset, machine_info, publish_report, stack_env)

DB = "binlog_bench"
TABLE = "orders"
GOAL = 1.0  # dbmux txns/s >= 1.0x the bare loop
STMTS_PER_ROUND_TRIP = 200
BARE_SERVER_ID = 4343  # the reader's default binlog_server_id is 4242; never two dumps with one id
POLL_S = 0.005

DDL = (f"CREATE TABLE {DB}.{TABLE} (id BIGINT NOT NULL PRIMARY KEY, customer_id INT NOT NULL, "
       "status VARCHAR(16) NOT NULL, note VARCHAR(120) NOT NULL, amount DECIMAL(12,2) NOT NULL, "
       "created_at DATETIME(6) NOT NULL, updated_at DATETIME(6) NULL, payload BLOB NULL) ENGINE=InnoDB")


def _sigterm(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


# --------------------------------------------------------------------------------------------------
# CPU accounting

def _proc_cpu(path: str) -> float | None:
    """utime + stime from a /proc/<pid>[/task/<tid>]/stat file, in seconds."""
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _pid_of(run_dir: Path, service: str) -> int | None:
    try:
        return int((run_dir / f"{service}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class CpuProbe:
    """CPU seconds of this process, the primary and Kafka between start() and stop()."""

    def __init__(self, run_dir: Path) -> None:
        self.pids = {"mariadb": _pid_of(run_dir, "mariadb-primary"), "kafka": _pid_of(run_dir, "kafka")}
        self.t0 = 0.0
        self.c0: dict[str, float | None] = {}
        self.result: dict[str, float | None] = {}

    def _sample(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {"self": time.process_time()}
        for name, pid in self.pids.items():
            out[name] = _proc_cpu(f"/proc/{pid}/stat") if pid else None
        return out

    def start(self) -> None:
        self.t0, self.c0 = time.monotonic(), self._sample()

    def stop(self) -> None:
        wall = time.monotonic() - self.t0
        c1 = self._sample()
        self.result = {k: ((c1[k] - self.c0[k]) / wall if c1[k] is not None and self.c0.get(k) is not None
                           and wall > 0 else None) for k in c1}


# --------------------------------------------------------------------------------------------------
# prepare

@dataclass
class Prepared:
    start_gtid: str
    end_gtid: str
    txns: int  # GTIDs in (start, end]
    rows: int  # row images changed (an UPDATE counts once)
    kinds: dict[str, int]
    start_file: str = ""
    start_pos: int = 0
    end_file: str = ""
    end_pos: int = 0
    seconds: float = 0.0

    @property
    def binlog_bytes(self) -> int | None:
        return self.end_pos - self.start_pos if self.start_file == self.end_file else None


def _connect(dsn, **kw):
    import pymysql

    return pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                           charset="utf8mb4", autocommit=True, **kw)


def _position(cur) -> tuple[str, str, int]:
    cur.execute("SELECT @@global.gtid_binlog_pos")
    gtid = (cur.fetchone()[0] or "").replace("\n", "")
    cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    return gtid, (row[0] if row else ""), (int(row[1]) if row else 0)


def _seq(gtid_pos: str, domain: str) -> int:
    from dbmux.gtid import parse_gtid_list

    g = parse_gtid_list(gtid_pos).get(domain)
    return g.seq if g is not None else 0


def make_statements(conn, n_txns: int, rows_per_txn: int, seed: int = 7) -> tuple[list[str], int, dict[str, int]]:
    """N single-statement transactions: per 10, 6 multi-row INSERTs, 3 UPDATEs, 1 DELETE."""
    rnd = random.Random(seed)
    letters = string.ascii_letters + string.digits + " "
    statuses = ("new", "paid", "shipped", "returned", "cancelled")
    base = dt.datetime(2026, 1, 1, 0, 0, 0)
    lit = conn.escape
    blocks: list[tuple[int, int]] = []  # surviving inserted id ranges
    deleted_upto = 0  # blocks[:deleted_upto] are gone
    next_id = 1
    stmts: list[str] = []
    rows = 0
    kinds = {"insert": 0, "update": 0, "delete": 0}
    for i in range(n_txns):
        slot = i % 10
        live = len(blocks) - deleted_upto
        if slot < 6 or live < 2:
            vals = []
            for j in range(rows_per_txn):
                rid = next_id + j
                created = base + dt.timedelta(seconds=rid, microseconds=rnd.randrange(1_000_000))
                note = "".join(rnd.choices(letters, k=rnd.randint(30, 110)))
                payload = rnd.randbytes(rnd.randint(64, 256))
                amount = decimal.Decimal(rnd.randint(100, 9_999_999)) / 100
                vals.append(f"({rid},{rnd.randint(1, 50_000)},{lit(rnd.choice(statuses))},{lit(note)},"
                            f"{lit(amount)},{lit(created)},NULL,{lit(payload)})")
            stmts.append(f"INSERT INTO {DB}.{TABLE} VALUES " + ",".join(vals))
            blocks.append((next_id, next_id + rows_per_txn - 1))
            next_id += rows_per_txn
            kinds["insert"] += 1
        elif slot < 9:
            lo, hi = blocks[rnd.randrange(deleted_upto, len(blocks))]
            upd = base + dt.timedelta(days=30, seconds=i, microseconds=rnd.randrange(1_000_000))
            stmts.append(f"UPDATE {DB}.{TABLE} SET status={lit(rnd.choice(statuses))}, amount=amount+1.25, "
                         f"customer_id=customer_id+1, updated_at={lit(upd)} WHERE id BETWEEN {lo} AND {hi}")
            kinds["update"] += 1
        else:
            lo, hi = blocks[deleted_upto]
            deleted_upto += 1
            stmts.append(f"DELETE FROM {DB}.{TABLE} WHERE id BETWEEN {lo} AND {hi}")
            kinds["delete"] += 1
        rows += rows_per_txn
    return stmts, rows, kinds


def prepare(primary, n_txns: int, rows_per_txn: int) -> Prepared:
    from pymysql.constants import CLIENT

    conn = _connect(primary, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
            cur.execute(f"CREATE DATABASE {DB}")
            cur.execute(DDL)
            stmts, rows, kinds = make_statements(conn, n_txns, rows_per_txn)
            start_gtid, start_file, start_pos = _position(cur)
            t0 = time.monotonic()
            for k in range(0, len(stmts), STMTS_PER_ROUND_TRIP):
                cur.execute(";\n".join(stmts[k:k + STMTS_PER_ROUND_TRIP]))
                while cur.nextset():
                    pass
            seconds = time.monotonic() - t0
            end_gtid, end_file, end_pos = _position(cur)
    finally:
        conn.close()
    return Prepared(start_gtid=start_gtid, end_gtid=end_gtid, txns=0, rows=rows, kinds=kinds,
                    start_file=start_file, start_pos=start_pos, end_file=end_file, end_pos=end_pos,
                    seconds=seconds)


# --------------------------------------------------------------------------------------------------
# runs

@dataclass
class Run:
    path: str  # bare / dbmux
    round: int
    txns: int = 0
    rows: int = 0
    total_s: float = 0.0  # start of the run -> last transaction
    first_s: float = 0.0  # start of the run -> first transaction
    cpu: dict[str, float | None] = field(default_factory=dict)
    threads: dict[str, float] = field(default_factory=dict)  # thread -> CPU s per wall s of the run
    ok: bool = False
    error: str = ""
    topic: str = ""
    topic_messages: int | None = None

    @property
    def total_rate(self) -> float:
        return self.txns / self.total_s if self.total_s else 0.0

    @property
    def cpu_us_per_txn(self) -> float | None:
        """CPU time of this process per transaction (start-up included): robust to other load on the
        machine, which slows the wall clock but not the work done per transaction."""
        cpu = self.cpu.get("self")
        return cpu * self.total_s / self.txns * 1e6 if cpu is not None and self.txns else None

    @property
    def steady_rate(self) -> float:
        span = self.total_s - self.first_s
        return (self.txns - 1) / span if span > 0 and self.txns > 1 else 0.0


def run_bare(binlog_dsn, prep: Prepared, domain: str, end_seq: int, probe: CpuProbe, rnd: int,
             timeout: float) -> Run:
    """The bare loop: same stream settings as the reader's thread; touch every value of every row."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import GtidEvent, MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

    from replicator.binlog_reader import _FREEZE_SCHEMA, _HEARTBEAT_S, _connection_settings

    res = Run("bare", rnd)
    probe.start()
    cpu0 = time.thread_time()
    t0 = time.monotonic()
    stream = BinLogStreamReader(
        connection_settings=_connection_settings(binlog_dsn), server_id=BARE_SERVER_ID, is_mariadb=True,
        auto_position=prep.start_gtid, blocking=True, resume_stream=True,
        only_events=[MariadbGtidEvent, QueryEvent, XidEvent, WriteRowsEvent, UpdateRowsEvent,
                     DeleteRowsEvent, TableMapEvent, RotateEvent],
        slave_heartbeat=_HEARTBEAT_S, enable_logging=False, freeze_schema=_FREEZE_SCHEMA)
    txns = rows = values = 0
    last_seq = -1
    first_at = 0.0
    deadline = t0 + timeout
    try:
        for ev in stream:
            if isinstance(ev, (MariadbGtidEvent, GtidEvent)):
                last_seq = int(str(ev.gtid).rsplit("-", 1)[-1]) if isinstance(ev, MariadbGtidEvent) else -1
            elif isinstance(ev, (WriteRowsEvent, DeleteRowsEvent)):
                for row in ev.rows:
                    rows += 1
                    for _v in row["values"].values():
                        values += 1
            elif isinstance(ev, UpdateRowsEvent):
                for row in ev.rows:
                    rows += 1
                    for _v in row["before_values"].values():
                        values += 1
                    for _v in row["after_values"].values():
                        values += 1
            elif isinstance(ev, RotateEvent):
                stream.table_map = {}  # as the reader does (table ids are per server run)
            elif isinstance(ev, XidEvent) or (isinstance(ev, QueryEvent) and ev.query == "COMMIT"):
                txns += 1
                if txns == 1:
                    first_at = time.monotonic()
                if last_seq >= end_seq:
                    break
            if time.monotonic() > deadline:
                res.error = f"timeout after {timeout:.0f}s ({txns} transactions)"
                break
    finally:
        t1 = time.monotonic()
        cpu1 = time.thread_time()
        probe.stop()
        stream.close()
    res.txns, res.rows = txns, rows
    res.total_s, res.first_s = t1 - t0, (first_at - t0 if first_at else 0.0)
    res.cpu = probe.result
    res.threads = {"main": (cpu1 - cpu0) / res.total_s if res.total_s else 0.0}
    res.ok = not res.error and txns == prep.txns
    if not res.error and txns != prep.txns:
        res.error = f"read {txns} transactions, expected {prep.txns}"
    return res


def _thread_cpu(native_id: int | None) -> float | None:
    return _proc_cpu(f"/proc/self/task/{native_id}/stat") if native_id else None


def run_dbmux(config_path: str, bootstrap: str, prep: Prepared, probe: CpuProbe, rnd: int, topic: str,
              timeout: float) -> Run:
    """The real reader class in this process, from --from-gtid <start> until every txn is acked."""
    from dbmux.config import load_config
    from replicator.binlog_reader import BinlogReader

    env = {k: v for k, v in os.environ.items() if not k.startswith("DBMUX_")}
    env["DBMUX_KAFKA_TOPIC"] = topic
    config = load_config(config_path, env=env)
    res = Run("dbmux", rnd, topic=topic)

    async def go() -> None:
        # freeze_gc as `dbmux binlog` does (gc.freeze() after start-up; undone below for the next run)
        reader = BinlogReader(config, from_gtid=prep.start_gtid, freeze_gc=True)
        stop = asyncio.Event()
        probe.start()
        main_cpu0 = time.thread_time()
        t0 = time.monotonic()
        task = asyncio.ensure_future(reader.run(stop))
        first_at = 0.0
        binlog_native: int | None = None
        thread_cpu = None
        deadline = t0 + timeout
        try:
            while True:
                n = reader.published
                if n and not first_at:
                    first_at = time.monotonic()
                if binlog_native is None:
                    binlog_native = next((t.native_id for t in threading.enumerate() if t.name == "dbmux-binlog"),
                                         None)
                if n >= prep.txns:
                    break
                if task.done():
                    rc = task.result()
                    raise BenchError(f"the binlog reader stopped (exit {rc}) after {n} transactions")
                if time.monotonic() > deadline:
                    res.error = f"timeout after {timeout:.0f}s ({n} transactions acknowledged)"
                    break
                await asyncio.sleep(POLL_S)
            t1 = time.monotonic()
            main_cpu1 = time.thread_time()
            thread_cpu = _thread_cpu(binlog_native)
            probe.stop()
        finally:
            stop.set()
            rc = await asyncio.wait_for(task, 60)
        res.txns = reader.published
        res.rows = prep.rows if reader.published == prep.txns else 0
        res.total_s, res.first_s = t1 - t0, (first_at - t0 if first_at else 0.0)
        res.cpu = probe.result
        wall = res.total_s or 1.0
        res.threads = {"event loop (encode, Kafka)": (main_cpu1 - main_cpu0) / wall}
        if thread_cpu is not None:
            res.threads = {"binlog thread (read, decode, assemble)": thread_cpu / wall, **res.threads}
        acked = reader._acked.text() if reader._acked is not None else ""  # noqa: SLF001 - sanity only
        if not res.error and rc != 0:
            res.error = f"reader exited {rc}"
        if not res.error and reader.published == prep.txns and _seq(acked, "0") < _seq(prep.end_gtid, "0"):
            res.error = f"acknowledged position {acked} is before the end {prep.end_gtid}"

    import gc

    import replicator.binlog_reader as br

    try:
        asyncio.run(go())
    finally:
        gc.unfreeze()
        br._gc_frozen = False  # noqa: SLF001 - each run starts like a fresh `dbmux binlog`
    res.topic_messages = end_offset(bootstrap, topic)
    if not res.error and res.topic_messages is not None and res.topic_messages != prep.txns:
        res.error = f"topic holds {res.topic_messages} messages, expected {prep.txns}"
    res.ok = not res.error and res.txns == prep.txns
    return res


# --------------------------------------------------------------------------------------------------
# report

def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def build_report(args, meta: dict, prep: Prepared, runs: list[Run], notes: list[str], command: str) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"### {meta['date']} — binlog reader vs bare python-mysql-replication loop")
    add("")
    add(f"- command: `{command}`")
    add(f"- machine: nproc={meta['nproc']}, cpu: {meta['cpu']}, mem {meta['mem']}, kernel {meta['kernel']}, "
        f"python {meta['python']}")
    add(f"- load average (1/5/15 min) at start: {meta.get('load_start', '?')}, at end: {meta.get('load_end', '?')} "
        "(other work on the machine skews absolute numbers and ratios)")
    add(f"- software: primary {meta.get('primary_version', '?')}, mysql-replication {meta.get('pmr', '?')}, "
        f"aiokafka {meta.get('aiokafka', '?')}, orjson {meta.get('orjson', '?')}; the whole local stack "
        "(Kafka, 3 MariaDB, 2 PostgreSQL) runs on the same machine")
    kinds = ", ".join(f"{v:,} {k}" for k, v in prep.kinds.items())
    size = f", {prep.binlog_bytes / 1e6:.1f} MB of binlog" if prep.binlog_bytes is not None else ""
    add(f"- workload: {prep.txns:,} transactions ({kinds}; {args.rows_per_txn} rows each = {prep.rows:,} row "
        f"images{size}) on `{DB}.{TABLE}` (BIGINT PK, INT, VARCHAR x2, DECIMAL(12,2), DATETIME(6) x2, BLOB "
        f"64-256 B), written in {prep.seconds:.1f} s straight to the primary; range "
        f"`{prep.start_gtid}` -> `{prep.end_gtid}`")
    add(f"- {args.rounds} round(s), order alternating (round 1: bare -> dbmux); dbmux = "
        "`replicator.binlog_reader.BinlogReader` in-process (what `dbmux binlog` runs), `--from-gtid` = range start, "
        "fresh topic per round, done when `published` (events acknowledged by Kafka) = transactions")
    add("")
    add("| round | path | txns | txns/s incl. start-up | txns/s steady | rows/s steady | first txn after | "
        "all after | this process CPU | CPU µs per txn | threads CPU | mariadbd CPU | kafka CPU | status |")
    add("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |")
    for r in runs:
        thr = "; ".join(f"{k} {v:.2f}" for k, v in r.threads.items())
        status = "ok" if r.ok else f"FAILED: {r.error}"
        if r.path == "dbmux" and r.topic_messages is not None:
            status += f" (topic: {r.topic_messages:,} messages)"
        rows_s = r.rows / (r.total_s - r.first_s) if r.total_s > r.first_s and r.rows else 0.0
        add(f"| {r.round} | {r.path} | {r.txns:,} | {r.total_rate:,.0f} | {r.steady_rate:,.0f} | {rows_s:,.0f} | "
            f"{r.first_s:.2f} s | {r.total_s:.2f} s | {_f(r.cpu.get('self'))} | "
            f"{_f(r.cpu_us_per_txn, '{:.0f}')} | {thr} | "
            f"{_f(r.cpu.get('mariadb'))} | {_f(r.cpu.get('kafka'))} | {status} |")
    add("")
    add("steady = (transactions - 1) / (first transaction -> last); incl. start-up = transactions / (start of the "
        "run -> last), which for dbmux includes probing the primary, creating the topic and the position topic, "
        "reading end offsets, saving the --from-gtid position and starting the producer. CPU = CPU seconds per wall "
        "second over the run (1.00 = one core; the machine has "
        f"{meta['nproc']}); CPU µs per txn = this process's CPU time / transactions (start-up included; less "
        "sensitive to other load on the machine than txns/s). For dbmux a transaction counts when Kafka acknowledged "
        "it; for bare when its XID was read.")
    add("")
    bare = [r for r in runs if r.path == "bare" and r.ok]
    dbm = [r for r in runs if r.path == "dbmux" and r.ok]
    if bare and dbm:
        add("| metric | bare (median) | dbmux (median) | dbmux/bare | target | verdict |")
        add("| --- | ---: | ---: | ---: | ---: | --- |")
        for label, attr in (("txns/s steady", "steady_rate"), ("txns/s incl. start-up", "total_rate")):
            b = statistics.median(getattr(r, attr) for r in bare)
            d = statistics.median(getattr(r, attr) for r in dbm)
            ratio = d / b if b else 0.0
            if attr == "steady_rate":
                tgt, verdict = f">= {GOAL:.1f}x", ("PASS" if ratio >= GOAL else "MISS")
            else:
                tgt, verdict = "", ""
            add(f"| {label} | {b:,.0f} | {d:,.0f} | {ratio:.2f}x | {tgt} | {verdict} |")
        bc = [r.cpu_us_per_txn for r in bare if r.cpu_us_per_txn]
        dc = [r.cpu_us_per_txn for r in dbm if r.cpu_us_per_txn]
        if bc and dc:
            b, d = statistics.median(bc), statistics.median(dc)
            add(f"| CPU µs per txn (this process; lower is better; ratio = bare/dbmux) | {b:,.0f} | {d:,.0f} | "
                f"{b / d:.2f}x |  |  |")
        add("")
    for n in notes:
        add(f"- {n}")
    if notes:
        add("")
    return "\n".join(lines)


SECTION = """
## bench/binlog_bench.py — binlog reader vs a bare python-mysql-replication loop

`.venv/bin/python bench/binlog_bench.py [--txns 20000] [--rows-per-txn 4] [--rounds 3] [--keep-topic]`
(needs the local stack: `dbmux stack up`; `DBMUX_STACK_DIR` for another stack directory).

Writes `--txns` transactions (6/10 multi-row INSERT, 3/10 UPDATE, 1/10 DELETE, `--rows-per-txn` rows
each; int, varchar, decimal, datetime(6), blob columns) straight to the primary, then reads exactly that
GTID range twice per round: with a bare `BinLogStreamReader` loop (the reader's own stream settings;
iterates every value of every row image, the least a consumer must do) and with the real binlog reader
(`BinlogReader`, what `dbmux binlog` runs, in-process, `--from-gtid` = range start, fresh topic) until
Kafka acknowledged the last transaction. Target: dbmux >= 1.0x the bare loop's transactions/s (steady).
"""


# --------------------------------------------------------------------------------------------------
# main

def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for key, dist in (("pmr", "mysql-replication"), ("aiokafka", "aiokafka"), ("orjson", "orjson")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = "?"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txns", type=int, default=20_000, help="transactions to write and read (default 20000)")
    ap.add_argument("--rows-per-txn", type=int, default=4, help="rows per transaction (default 4)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of bare + dbmux, order alternating (default 3)")
    ap.add_argument("--only", choices=("both", "bare", "dbmux"), default="both",
                    help="run only one path (for profiling; no ratio)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run before giving up (default 600)")
    ap.add_argument("--keep-topic", action="store_true", help="keep the bench topics (and the binlog_bench db)")
    ap.add_argument("--no-results", action="store_true", help=f"do not append to {RESULTS.relative_to(REPO)}")
    args = ap.parse_args(argv)
    if args.txns < 10 or args.rows_per_txn < 1 or args.rounds < 1:
        ap.error("--txns >= 10, --rows-per-txn >= 1, --rounds >= 1")
    command = ".venv/bin/python bench/binlog_bench.py" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    if os.environ.get("DBMUX_STACK_DIR"):
        command = f"DBMUX_STACK_DIR={shlex.quote(os.environ['DBMUX_STACK_DIR'])} {command}"
    signal.signal(signal.SIGTERM, _sigterm)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Stopping the reader shuts its socket down; the library logs that as a reconnect warning (after the
    # measurement, harmless). Keep the output readable.
    logging.getLogger("pymysqlreplication").setLevel(logging.ERROR)
    try:
        env = stack_env()
    except Prereq as exc:
        print(f"binlog_bench: {exc}", file=sys.stderr)
        return 2

    from dbmux.dsn import Dsn

    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    binlog_dsn = Dsn.parse(env.get("DBMUX_PRIMARY_BINLOG_URL") or env["DBMUX_PRIMARY_URL"])
    bootstrap = env["DBMUX_KAFKA"]
    config_path = env["DBMUX_CONFIG"]
    stack_dir = Path(os.environ.get("DBMUX_STACK_DIR") or REPO / ".stack")
    meta = dict(machine_info())
    meta.update(_versions())
    meta["date"] = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    meta["load_start"] = _loadavg()
    probe = CpuProbe(stack_dir / "run")
    tag = secrets.token_hex(4)
    topics: list[str] = []
    runs: list[Run] = []
    notes: list[str] = []
    interrupted = failed = False
    prep: Prepared | None = None
    try:
        c = _connect(primary)
        meta["primary_version"] = c.get_server_info().removeprefix("5.5.5-")
        c.close()
        if "mariadb" not in meta["primary_version"].lower():
            raise BenchError(f"the bench reads MariaDB GTIDs; primary is {meta['primary_version']}")
        print(f"preparing {args.txns:,} transactions x {args.rows_per_txn} rows in {DB}.{TABLE} ...", flush=True)
        prep = prepare(primary, args.txns, args.rows_per_txn)
        domain = "0"
        end_seq = _seq(prep.end_gtid, domain)
        prep.txns = end_seq - _seq(prep.start_gtid, domain)
        if prep.txns != args.txns:
            raise BenchError(f"the range {prep.start_gtid} -> {prep.end_gtid} holds {prep.txns} GTIDs in domain "
                             f"{domain}, expected {args.txns} (another writer on the primary?)")
        size = f", {prep.binlog_bytes / 1e6:.1f} MB binlog" if prep.binlog_bytes is not None else ""
        print(f"  written in {prep.seconds:.1f}s: {prep.start_gtid} -> {prep.end_gtid}{size}", flush=True)
        for rnd in range(1, args.rounds + 1):
            order = ["bare", "dbmux"] if rnd % 2 else ["dbmux", "bare"]
            for path in order:
                if args.only not in ("both", path):
                    continue
                if path == "bare":
                    r = run_bare(binlog_dsn, prep, domain, end_seq, probe, rnd, args.timeout)
                else:
                    topic = f"dbmux.binlogbench{tag}r{rnd}.txn"
                    topics.append(topic)
                    r = run_dbmux(config_path, bootstrap, prep, probe, rnd, topic, args.timeout)
                runs.append(r)
                print(f"  round {rnd} {path:5}: {r.txns:,} txns, {r.steady_rate:,.0f} txns/s steady, "
                      f"{r.total_rate:,.0f} incl. start-up ({r.total_s:.2f}s, first after {r.first_s:.2f}s), "
                      f"cpu {_f(r.cpu.get('self'))}, {_f(r.cpu_us_per_txn, '{:.0f}')} cpu-us/txn"
                      + ("" if r.ok else f"  FAILED: {r.error}"), flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; cleaning up", file=sys.stderr)
    except BenchError as exc:
        print(f"binlog_bench: {exc}", file=sys.stderr)
        failed = True
    finally:
        if not args.keep_topic:
            for t in topics:
                delete_topic(bootstrap, t)
                delete_topic(bootstrap, f"{t}.binlog-position")
            try:
                c = _connect(primary)
                with c.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS {DB}")
                c.close()
            except Exception as exc:  # noqa: BLE001
                print(f"  (could not drop {DB}: {exc})", file=sys.stderr)
        elif topics:
            notes.append(f"kept topics {', '.join(topics)} (and their .binlog-position topics) and database {DB}")
    if interrupted:
        return 130
    if failed or prep is None:
        return 1
    meta["load_end"] = _loadavg()
    return publish_report(build_report(args, meta, prep, runs, notes, command), no_results=args.no_results,
                          section=SECTION, marker="## bench/binlog_bench.py")


if __name__ == "__main__":
    sys.exit(main())
