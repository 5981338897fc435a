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
3. **dbmux**: the real reader class (``binlog.reader.BinlogReader``, what ``dbmux binlog``
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
import logging
import os
import secrets
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

from binlog_runs import Run, run_bare, run_dbmux  # noqa: E402
from binlog_workload import DB, TABLE, Prepared, drop_workload, gtid_seq, prepare  # noqa: E402
from harness.cpu import CpuProbe  # noqa: E402
from harness.environment import REPO, loadavg, run_meta, stack_dir, stack_env  # noqa: E402
from harness.errors import BenchError, Prereq  # noqa: E402
from harness.processes import sigterm_as_interrupt  # noqa: E402
from harness.results import RESULTS, command_line, publish_report, report_head  # noqa: E402
from harness.sql import mysql_version  # noqa: E402
from harness.topics import delete_topic  # noqa: E402

GOAL = 1.0  # dbmux txns/s >= 1.0x the bare loop


# --------------------------------------------------------------------------------------------------
# report

def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def build_report(args, meta: dict, prep: Prepared, runs: list[Run], notes: list[str], command: str) -> str:
    lines = report_head("binlog reader vs bare python-mysql-replication loop", meta, command)
    add = lines.append
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
        "`binlog.reader.BinlogReader` in-process (what `dbmux binlog` runs), `--from-gtid` = range start, "
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
    command = command_line("binlog_bench.py")
    if os.environ.get("DBMUX_STACK_DIR"):
        command = f"DBMUX_STACK_DIR={shlex.quote(os.environ['DBMUX_STACK_DIR'])} {command}"
    sigterm_as_interrupt()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Stopping the reader shuts its socket down; the library logs that as a reconnect warning (after the
    # measurement, harmless). Keep the output readable.
    logging.getLogger("pymysqlreplication").setLevel(logging.ERROR)
    try:
        env = stack_env()
    except Prereq as exc:
        print(f"binlog_bench: {exc}", file=sys.stderr)
        return 2

    from dbmux.core.dsn import Dsn

    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    binlog_dsn = Dsn.parse(env.get("DBMUX_PRIMARY_BINLOG_URL") or env["DBMUX_PRIMARY_URL"])
    bootstrap = env["DBMUX_KAFKA"]
    config_path = env["DBMUX_CONFIG"]
    meta = run_meta()
    meta.update(_versions())
    probe = CpuProbe(stack_dir() / "run")
    tag = secrets.token_hex(4)
    topics: list[str] = []
    runs: list[Run] = []
    notes: list[str] = []
    interrupted = failed = False
    prep: Prepared | None = None
    try:
        meta["primary_version"] = mysql_version(primary)
        if "mariadb" not in meta["primary_version"].lower():
            raise BenchError(f"the bench reads MariaDB GTIDs; primary is {meta['primary_version']}")
        print(f"preparing {args.txns:,} transactions x {args.rows_per_txn} rows in {DB}.{TABLE} ...", flush=True)
        prep = prepare(primary, args.txns, args.rows_per_txn)
        domain = "0"
        end_seq = gtid_seq(prep.end_gtid, domain)
        prep.txns = end_seq - gtid_seq(prep.start_gtid, domain)
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
                drop_workload(primary)
            except Exception as exc:  # noqa: BLE001
                print(f"  (could not drop {DB}: {exc})", file=sys.stderr)
        elif topics:
            notes.append(f"kept topics {', '.join(topics)} (and their .binlog-position topics) and database {DB}")
    if interrupted:
        return 130
    if failed or prep is None:
        return 1
    meta["load_end"] = loadavg()
    return publish_report(build_report(args, meta, prep, runs, notes, command), no_results=args.no_results,
                          section=SECTION, marker="## bench/binlog_bench.py")


if __name__ == "__main__":
    sys.exit(main())
