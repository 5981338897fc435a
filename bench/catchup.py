#!/usr/bin/env python3
"""OLTP catch-up: dbmux's replicator vs native MariaDB replication on the same backlog (issue 14 #4).

Usage (from the repository root, local stack up; ``DBMUX_STACK_DIR`` selects another stack)::

    .venv/bin/python bench/catchup.py [--txns 20000] [--rounds 2] [--tables 2] [--table-size 10000]
        [--threads 8] [--no-pg] [--rows 200000] [--lag-seconds 10] [--no-results]

1. **Backlog** (as ``bench/self_verify_cost.py``): ``sysbench oltp_write_only prepare`` on the primary, its
   tables copied to MariaDB replica 1 (kept there as ``base_sbtestN``), the primary's GTID position
   recorded; then ``--txns`` transactions (prepared statements, ``--threads`` threads) through ``dbmux
   ingress`` with ``dbmux binlog`` running: the topic holds both copies of each transaction, and the
   primary's binlog the same transactions.
2. **Rounds** on replica 1, ``--rounds`` times each, tables reset from ``base_sbtestN`` before each:
   - ``native``: MariaDB's own replication from the primary (``CHANGE MASTER TO ... MASTER_USE_GTID =
     slave_pos`` from the recorded position, ``replicate_do_db`` the sysbench database), one SQL thread;
   - ``native-optimistic``: the same with ``slave_parallel_mode = optimistic``, 4 threads;
   - ``dbmux``: ``dbmux replicate`` to a new target (the topic from its beginning) with the defaults a
     user gets (``self_verify = "halt"``, ``batch_max_txns`` 500).
   Timed from the start (``START SLAVE`` / the replicator's process start) until the replica's applied
   position (``@@gtid_slave_pos`` / the target's stored GTID) reaches the backlog's last GTID; every
   round ends with ``CHECKSUM TABLE`` equal to the primary (else the bench fails).
3. **PostgreSQL** (unless ``--no-pg``; :mod:`catchup_pg`): a second backlog built from nothing through the
   ingress, replayed whole by a plain PostgreSQL target and by a shard target (issue 14 #3: >= 0.8x of the
   plain one's rate).
4. **Bulk inserts** (unless ``--rows 0``; :func:`replicator_apply.apply_phase`): ``--rows`` rows as row
   events applied by the replicator to MariaDB replica 1 and PostgreSQL shard a, against a raw multi-row
   INSERT load (target >= 0.7x, as before) and ``COPY`` (target >= 0.5x) of the same rows.
5. **Lag** (unless ``--lag-seconds 0``; :func:`replicator_lag.lag_phase`): 500 txn/s through the ingress,
   p99 from send to visible on replica 1 (target <= 250 ms: no regression).
6. **Report**: every row with its verdict -- txn/s per round and the ratio of dbmux's median to native
   one-thread's median (target >= 1.0x), the shard/plain ratio, bulk ratios, lag p99 -- appended to
   ``bench/RESULTS.md`` unless ``--no-results``.
"""

from __future__ import annotations

import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

from catchup_pg import build_pg_backlog, pg_round  # noqa: E402
from harness.environment import loadavg, run_meta, stack_env  # noqa: E402
from harness.errors import BenchError  # noqa: E402
from harness.processes import Proc, stop_all  # noqa: E402
from harness.results import command_line, report_head, run_and_publish  # noqa: E402
from harness.topics import delete_topic  # noqa: E402
from replicator_apply import apply_phase  # noqa: E402
from replicator_bench import add_apply_lag_options, cleanup, report_sections  # noqa: E402
from replicator_lag import LAG_GOAL_RATE, lag_phase  # noqa: E402
from self_verify_cost import Round, _checksums, backlog_parser, build_backlog, run_round  # noqa: E402
from sysbench_runner import check_tools  # noqa: E402
from up_backlog import DB, _sql  # noqa: E402

from dbmux.core.dsn import Dsn  # noqa: E402

GOAL = 1.0  # dbmux catch-up >= 1.0x native replication with one SQL thread
BULK_GOALS = {"mariadb": 0.7, "postgresql": 0.5}  # replicator bulk inserts vs multi-row INSERT / COPY


def _reset(replica: Dsn, tables: list[str]) -> None:
    _sql(replica, *[s for t in tables for s in (f"TRUNCATE {DB}.{t}", f"INSERT INTO {DB}.{t} SELECT * FROM "
                                                 f"{DB}.base_{t}")])


def native_round(replica: Dsn, source: Dsn, start: str, end: int, tables: list[str], threads: int,
                 mode: str) -> float:
    _reset(replica, tables)
    _sql(replica, "STOP SLAVE", "RESET SLAVE ALL")
    _sql(replica, f"SET GLOBAL replicate_do_db = '{DB}'", f"SET GLOBAL slave_parallel_threads = {threads}",
         f"SET GLOBAL slave_parallel_mode = '{mode}'")
    _sql(replica, "SET GLOBAL gtid_slave_pos = %s", args=(start,))
    _sql(replica, f"CHANGE MASTER TO MASTER_HOST = '{source.host}', MASTER_PORT = {source.port}, MASTER_USER = "
                  f"'{source.user}', MASTER_PASSWORD = '{source.password}', MASTER_USE_GTID = slave_pos")
    t0 = time.monotonic()
    _sql(replica, "START SLAVE")
    try:
        while True:
            pos = _sql(replica, "SELECT @@gtid_slave_pos")[0][0] or ""
            seqs = {p.split("-")[0]: int(p.split("-")[2]) for p in pos.split(",") if p.count("-") == 2}
            if seqs.get("0", 0) >= end:
                took = time.monotonic() - t0
                break
            status = _sql(replica, "SHOW SLAVE STATUS")
            if status and status[0][37]:  # Last_Error
                raise BenchError(f"native replication stopped: {status[0][37]}")
            if time.monotonic() - t0 > 1800:
                raise BenchError("native replication did not catch up in 30 min")
            time.sleep(0.02)
    finally:
        _sql(replica, "STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL replicate_do_db = ''",
             "SET GLOBAL slave_parallel_threads = 0")
    return took


def run(args) -> str:
    meta = check_tools()
    meta.update(run_meta())
    env = stack_env()
    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    source = Dsn.parse(env["DBMUX_PRIMARY_BINLOG_URL"])  # the replication user
    replica = Dsn.parse(env["DBMUX_REPLICA_URLS"].split(",")[0])
    cluster = f"cubench{secrets.token_hex(4)}"
    topic = f"dbmux.{cluster}.txn"
    tables = [f"sbtest{i}" for i in range(1, args.tables + 1)]
    work = Path(tempfile.mkdtemp(prefix="dbmux-catchup-"))
    print(f"workdir {work}, topic {topic}", flush=True)
    times: dict[str, list[float]] = {"native": [], "native-optimistic": [], "dbmux": []}
    pg_times: dict[str, list[float]] = {"pg": [], "shard": []}
    steady: list[float] = []  # dbmux rounds from the first transaction applied (its start-up left out)
    pg_topic = f"dbmux.{cluster}pg.txn"
    shards = [Dsn.parse(u) for u in env["DBMUX_SHARD_URLS"].split(",")]
    try:
        start: dict[str, str] = {}
        end = build_backlog(args, env, work, topic, primary, replica, start_pos=start)
        want = _checksums(primary, tables)
        for i in range(args.rounds):
            for name, threads, mode in (("native", 0, "conservative"), ("native-optimistic", 4, "optimistic")):
                took = native_round(replica, source, start["pos"], end, tables, threads, mode)
                if _checksums(replica, tables) != want:
                    raise BenchError(f"round {name}: replica 1 differs from the primary after catch-up")
                times[name].append(took)
                print(f"round {i + 1} {name}: {took:.2f} s", flush=True)
            rnd = Round("halt", f"{cluster}_{i}")
            run_round(rnd, env, work, topic, primary, replica, end, tables, extra="")  # (a user's defaults;
            # it checks the checksums itself)
            times["dbmux"].append(rnd.seconds)
            steady.append(rnd.steady_s)
        if not args.no_pg:
            pg_end = build_pg_backlog(args, env, work, pg_topic, primary)
            for i in range(args.rounds):
                pg_times["pg"].append(pg_round("pg", f"{cluster}_pg{i}", env, work, pg_topic, shards[0], pg_end))
                pg_times["shard"].append(pg_round("shard", f"{cluster}_sh{i}", env, work, pg_topic, shards[1],
                                                  pg_end))
    finally:
        for t in (topic, f"{topic}.binlog-position", pg_topic, f"{pg_topic}.binlog-position"):
            delete_topic(env["DBMUX_KAFKA"], t)
        try:
            _sql(replica, "DELETE FROM dbmux_meta.gtids WHERE target LIKE %s", "DELETE FROM dbmux_meta.positions "
                 "WHERE target LIKE %s", "DELETE FROM dbmux_meta.status WHERE target LIKE %s", args=(f"{cluster}%",))
        except Exception as exc:  # noqa: BLE001 - no replicator ran (dbmux_meta not created)
            print(f"cleanup: {exc}", flush=True)
    bulk = bulk_and_lag(args, env, work, primary, replica, shards[0])
    meta["load_end"] = loadavg()
    n = args.txns
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["native"] / med["dbmux"]
    lines = report_head("OLTP catch-up: dbmux replicator vs native MariaDB replication", meta,
                        command_line("catchup.py"))
    lines += ["", f"Backlog: {n:,} sysbench oltp_write_only transactions ({args.tables} x {args.table_size:,} rows, "
              f"prepared statements, {args.threads} threads) through `dbmux ingress` with `dbmux binlog` running; "
              f"the same transactions in the primary's binlog (last GTID seq {end}). Each round on MariaDB replica 1, "
              "its tables reset first, timed from START SLAVE / the replicator's process start to the last GTID "
              "applied; each ended with CHECKSUM TABLE equal to the primary.", "",
              "| path | rounds (s) | median s | txn/s |", "| --- | --- | ---: | ---: |"]
    for k, v in times.items():
        lines.append(f"| {k} | {', '.join(f'{x:.2f}' for x in v)} | {med[k]:.2f} | {n / med[k]:,.0f} |")
    verdict = "PASS" if ratio >= GOAL else "MISS"
    lines += ["", f"dbmux / native (one SQL thread): **{ratio:.2f}x** (target >= {GOAL}x: **{verdict}**); "
              f"dbmux / native optimistic (4 threads): {med['native-optimistic'] / med['dbmux']:.2f}x. Without the "
              f"replicator's start-up (imports, Kafka, the target; native starts in a running server): dbmux rounds "
              f"from the first transaction applied {', '.join(f'{x:.2f}' for x in steady)} s, "
              f"{med['native'] / statistics.median(steady):.2f}x of native.", ""]
    if pg_times["pg"]:
        pmed = {k: statistics.median(v) for k, v in pg_times.items()}
        share = pmed["pg"] / pmed["shard"]
        lines += [f"PostgreSQL: a second backlog built from nothing through the ingress (CREATE DATABASE, sysbench "
                  f"prepare of {args.tables} x {args.table_size:,} rows, then the same {n:,} transactions), replayed "
                  "whole from the topic by a plain PostgreSQL target (shard server A) and by shard `b` of a two-shard "
                  "map (shard server B: its half of the rows), each round on a dropped schema, ending with `dbmux "
                  "verify --target` passing.", "", "| path | rounds (s) | median s | txn/s (OLTP transactions) |",
                  "| --- | --- | ---: | ---: |"]
        for k, v in pg_times.items():
            lines.append(f"| {k} | {', '.join(f'{x:.2f}' for x in v)} | {pmed[k]:.2f} | {n / pmed[k]:,.0f} |")
        lines += ["", f"shard target / plain PostgreSQL target: **{share:.2f}x** (target >= 0.8x: "
                  f"**{'PASS' if share >= 0.8 else 'MISS'}**).", ""]
    return "\n".join(lines + bulk) + "\n"


def bulk_and_lag(args, env: dict[str, str], work: Path, primary: Dsn, replica: Dsn, pg: Dsn) -> list[str]:
    """Bulk inserts (MariaDB replica 1 and PostgreSQL shard a, vs a raw multi-row INSERT load and COPY) and the
    lag at 500 txn/s: the report's tables with their verdicts."""
    if not args.rows and not args.lag_seconds:
        return []
    bootstrap = env["DBMUX_KAFKA"]
    procs: list[Proc] = []
    names: dict = {"targets": [], "topics": []}
    meta: dict = {}
    apply_res, lag_res, ingress_log, rep_log = [], [], "", ""
    try:
        if args.rows:
            apply_res = apply_phase(args, work, bootstrap, primary, replica, pg,
                                    f"dbmux.bench{secrets.token_hex(4)}.txn", meta, procs, names)
        if args.lag_seconds:
            lag_res, ingress_log, rep_log = lag_phase(args, work, bootstrap, primary, replica,
                                                      f"dbmux.bench{secrets.token_hex(4)}.txn", meta, procs, names,
                                                      [LAG_GOAL_RATE])
    finally:
        stop_all(procs)
        for note in cleanup(names, bootstrap, primary, replica, pg):
            print(f"  ({note})", file=sys.stderr)
    return report_sections(args, meta, apply_res, lag_res, ingress_log, rep_log, goals=BULK_GOALS)


def main(argv: list[str] | None = None) -> int:
    ap = backlog_parser(__doc__, txns=20000, rounds_help="rounds of each path (default 2)")
    ap.add_argument("--no-pg", action="store_true", help="only the MariaDB rows (no PostgreSQL and shard targets)")
    add_apply_lag_options(ap, lag_seconds=10)  # --rows 0 / --lag-seconds 0: no bulk / lag rows
    return run_and_publish(run, ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
