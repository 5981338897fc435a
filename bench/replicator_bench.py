#!/usr/bin/env python3
"""Replicator benchmark: apply throughput (MariaDB replica, PostgreSQL) vs raw loads, and end-to-end lag.

Usage (from the repository root, with the local stack up: ``dbmux stack up``)::

    .venv/bin/python bench/replicator_bench.py [--rows 200000] [--rows-per-event 10]
        [--lag-rates 500,2000] [--lag-seconds 15] [--lag-conns 32] [--poll-ms 5]
        [--skip-apply] [--skip-lag] [--no-results] [--keep-workdir]

What it does, in one run (everything it creates is removed again in ``finally``):

1. **Apply throughput.** Creates ``bench_apply.t`` (id BIGINT PK, k INT, c VARCHAR(120), pad VARCHAR(60))
   on the primary (the PostgreSQL applier reads primary keys from the primary's schema), on MariaDB
   replica 1 and as schema ``bench_apply`` on PostgreSQL shard a. Produces ``--rows`` rows as row-form
   change events (``source="binlog"``, ``--rows-per-event`` inserts per event, GTIDs ``0-1-1..``) to a
   fresh topic ``dbmux.bench<random>.txn``. Per target: first the *raw* load of the same rows into a
   fresh table ``bench_apply.t_raw`` on the same server (MariaDB: multi-row INSERT, ``--raw-batch`` rows per
   statement, one connection, commit per batch; PostgreSQL: asyncpg ``copy_records_to_table``), then the
   real replicator (``python -m dbmux.cli.main replicate``, a generated config, a unique target name,
   ``batch_max_txns = 500``), polling ``COUNT(*)`` every 20 ms until every row is visible.
   Reported: rows/s from the replicator's process start (includes Python start-up, Kafka consumer
   start, target connect) *and* steady-state rows/s from the first rows visible to the last; the ratio
   against the raw load uses the steady-state rate (the start-up-inclusive ratio is shown too).
2. **End-to-end lag.** Creates ``bench_lag.lag (id BIGINT PK, t_commit_ns BIGINT)`` on the primary and
   replica 1 directly, starts ``dbmux ingress`` (fresh topic, free port, durability as in the stack
   config) and ``dbmux replicate`` to replica 1. Per rate in ``--lag-rates``: a paced writer (asyncio +
   aiomysql, ``--lag-conns`` connections through the ingress, autocommit, each INSERT is one
   transaction; transaction i is due at ``t0 + i/rate`` -- a fixed schedule, so late operations do not
   push later ones back) runs ``--lag-seconds``; a reader polls the replica every ``--poll-ms``
   (``SELECT id FROM bench_lag.lag WHERE id > <all-seen watermark>``) and stamps the first time it sees
   each id. Lag = visible on the replica - the moment the writer *sent* the INSERT (an upper bound of
   commit-on-primary -> visible; the same process clock for both ends). Lag measured from the client's
   OK is shown too (with ``durability = sync`` the OK waits for Kafka's ack, so it is a lower bound).
   Reported: p50/p99/max, achieved commit rate, rows never seen within the drain timeout.
3. Prints a report with PASS/MISS per target (apply >= 0.7x raw on both targets; lag p99 <= 250 ms
   at 500 txn/s) and appends it to ``bench/RESULTS.md``. A MISS never makes the exit code non-zero.

Caveat: no binlog reader exists yet, so a GTID consumed on the primary by a write that bypassed the
ingress (another session using the primary during the lag phase) leaves a gap on the lag topic that
the replicator holds forever (by design: never skipped). The bench detects a stalled replica, says so
in the report and quotes the replicator's gap log.

Exit codes: 0 done (even with MISSes), 2 stack down, 1 the bench itself failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

from harness.environment import REPO, loadavg, run_meta, stack_env  # noqa: E402
from harness.errors import BenchError, Prereq  # noqa: E402
from harness.processes import Proc, sigterm_as_interrupt, stop_all  # noqa: E402
from harness.results import RESULTS, command_line, publish_report, report_head  # noqa: E402
from harness.sql import mysql_exec, mysql_version, pg_exec, pg_version  # noqa: E402
from harness.topics import delete_topic  # noqa: E402
from replicator_apply import APPLY_DB, APPLY_GOAL, ApplyResult, apply_phase  # noqa: E402
from replicator_lag import LAG_DB, LAG_GOAL_MS, LAG_GOAL_RATE, LagResult, lag_phase, pct  # noqa: E402

# --------------------------------------------------------------------------------------------------
# clean-up

def cleanup(names: dict, bootstrap: str, primary, replica, pg) -> list[str]:
    notes = []

    def attempt(what: str, fn) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - best effort, reported
            notes.append(f"clean-up {what}: {type(exc).__name__}: {exc}")

    if names.get("apply_created"):
        attempt("primary bench_apply", lambda: asyncio.run(mysql_exec(primary, f"DROP DATABASE IF EXISTS {APPLY_DB}")))
        attempt("replica bench_apply", lambda: asyncio.run(mysql_exec(replica, f"DROP DATABASE IF EXISTS {APPLY_DB}")))
        attempt("pg bench_apply", lambda: asyncio.run(pg_exec(pg, f"DROP SCHEMA IF EXISTS {APPLY_DB} CASCADE")))
    if names.get("lag_created"):
        for dsn in (primary, replica):
            attempt(f"{dsn.port} bench_lag",
                    lambda d=dsn: asyncio.run(mysql_exec(d, f"DROP DATABASE IF EXISTS {LAG_DB}")))
    for target, dsn in names["targets"]:
        sqls = [f"DELETE FROM dbmux_meta.{t} WHERE target = '{target}'" for t in ("positions", "gtids", "status")]
        if dsn.kind == "mysql":
            attempt(f"dbmux_meta {target}", lambda d=dsn, s=sqls: asyncio.run(mysql_exec(d, *s)))
        else:
            attempt(f"dbmux_meta {target}", lambda d=dsn, s=sqls: asyncio.run(pg_exec(d, *s)))

    # consumer groups (dbmux.bench.<target>, offsets for lag display only) are left to Kafka's offset
    # retention: aiokafka 0.12's admin client cannot delete groups.
    for topic in dict.fromkeys(names["topics"]):
        delete_topic(bootstrap, topic)
    return notes


# --------------------------------------------------------------------------------------------------
# report

def fmt_ms(v: float) -> str:
    return "-" if v != v else f"{v:,.1f}"  # nan -> "-"


def build_report(args, meta: dict, apply: list[ApplyResult], lag: list[LagResult], ingress_log: str,
                 rep_log: str, notes: list[str], command: str) -> str:
    lines = report_head("replicator apply throughput and end-to-end lag", meta, command)
    lines += [f"- software: primary MariaDB {meta.get('primary_version', '?')}, PostgreSQL "
              f"{meta.get('pg_version', '?')}; the whole local stack (Kafka, 3 MariaDB, 2 PostgreSQL) runs on the "
              "same machine", ""]
    lines += report_sections(args, meta, apply, lag, ingress_log, rep_log)
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    return "\n".join(lines)


def report_sections(args, meta: dict, apply: list[ApplyResult], lag: list[LagResult], ingress_log: str,
                    rep_log: str, goals: dict[str, float] | None = None) -> list[str]:
    """The apply-throughput and lag tables; ``goals``: the apply target per target kind (default
    ``APPLY_GOAL`` for each)."""
    lines: list[str] = []
    add = lines.append
    if apply:
        add(f"#### Apply throughput ({args.rows:,} rows, {args.rows_per_event} rows per row-form event = "
            f"{meta.get('apply_events', '?')} events, replicator batch_max_txns 500, linger 20 ms)")
        add("")
        add("| target | raw load | raw rows/s | replicator rows/s (steady) | replicator rows/s (incl. start-up) "
            "| first rows visible after | all rows after | replicator CPU | ratio steady | ratio incl. start-up "
            "| target | verdict |")
        add("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in apply:
            raw = (f"multi-row INSERT x{args.raw_batch}, commit per batch" if r.target == "mariadb"
                   else "asyncpg copy_records_to_table")
            ratio_s = r.steady_rps / r.raw_rps if r.raw_rps else 0.0
            ratio_t = r.total_rps / r.raw_rps if r.raw_rps else 0.0
            goal = (goals or {}).get(r.target, APPLY_GOAL)
            verdict = "PASS" if r.ok and ratio_s >= goal else "MISS"
            if not r.ok:
                verdict += f" ({r.error or 'incomplete'})"
            cpu = f"{r.cpu:.2f}" if r.cpu is not None else "-"
            add(f"| {r.target} | {raw} | {r.raw_rps:,.0f} | {r.steady_rps:,.0f} | {r.total_rps:,.0f} | "
                f"{r.rep_first_s:.2f} s ({r.rep_first_rows:,} rows) | {r.rep_total_s:.2f} s | {cpu} | "
                f"{ratio_s:.2f}x | {ratio_t:.2f}x | >= {goal:.1f}x | {verdict} |")
        add("")
        add("steady = (rows - rows visible at the first poll that saw any) / (time of the last row - time of that "
            "poll); incl. start-up = rows / (replicator process start -> last row visible), which includes "
            "Python start-up, the Kafka consumer joining and the target connect. COUNT(*) polled every 20 ms. "
            "The verdict uses the steady ratio. replicator CPU = CPU seconds per wall second (1.00 = one core).")
        add("")
        for r in apply:
            if r.log:
                add(f"Replicator log ({r.target}), warnings/errors:")
                add("")
                add("```")
                add(r.log)
                add("```")
                add("")
    if lag:
        add(f"#### End-to-end lag (INSERT through the ingress -> row visible on MariaDB replica 1; "
            f"{args.lag_conns} writer connections, autocommit, {args.lag_seconds:g} s per rate, "
            f"replica polled every {args.poll_ms:g} ms)")
        add("")
        add("| target rate | achieved txn/s | committed | errors | lag p50 ms | lag p99 ms | lag max ms "
            "| from OK p50 / p99 ms | client commit p50 / p99 ms | sent late p99 ms | unseen | ingress CPU "
            "| replicator CPU | bench CPU | target | verdict |")
        add("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in lag:
            p99 = pct(r.lags_send_ms, 99)
            if r.rate == LAG_GOAL_RATE:
                tgt = f"p99 <= {LAG_GOAL_MS:.0f} ms"
                ok = r.committed and not r.unseen and p99 <= LAG_GOAL_MS and r.achieved >= 0.95 * r.rate
                verdict = "PASS" if ok else "MISS"
                if r.achieved < 0.95 * r.rate:
                    verdict += " (rate not reached)"
                if r.unseen:
                    verdict += f" ({r.unseen} rows never visible)"
            else:
                tgt, verdict = "-", "(no target)" + (" rate not reached" if r.achieved < 0.95 * r.rate else "")
            add(f"| {r.rate:,} | {r.achieved:,.0f} | {r.committed:,} | {r.errors} | {fmt_ms(pct(r.lags_send_ms, 50))} "
                f"| {fmt_ms(p99)} | {fmt_ms(max(r.lags_send_ms or [float('nan')]))} | "
                f"{fmt_ms(pct(r.lags_ok_ms, 50))} / {fmt_ms(pct(r.lags_ok_ms, 99))} | "
                f"{fmt_ms(pct(r.commit_ms, 50))} / {fmt_ms(pct(r.commit_ms, 99))} | {fmt_ms(pct(r.late_ms, 99))} | "
                f"{r.unseen} | {r.ingress_cpu or 0:.2f} | {r.replicator_cpu or 0:.2f} | {r.bench_cpu or 0:.2f} | "
                f"{tgt} | {verdict} |")
        add("")
        add("lag = first poll that returned the row on the replica - the moment the writer sent the INSERT (an "
            "upper bound of commit-on-primary -> visible; includes up to one poll interval). from OK = from the "
            "client's OK instead (durability sync: after Kafka's ack; a lower bound). client commit = INSERT "
            "round trip through the ingress. sent late = how far behind its schedule slot an INSERT was sent "
            "(large values: the rate was not sustained: every writer connection was busy waiting for its OK). "
            "achieved = "
            "committed / (first slot -> last OK); the writer stops at the end of the schedule even when behind it. "
            "CPU = CPU seconds per wall second of that process over the run incl. drain (bench = this script's "
            "writer + reader, one Python process).")
        add("")
        for r in lag:
            if r.first_error:
                add(f"- {r.rate}/s: first writer error: `{r.first_error[:300]}`")
            if r.stalled:
                add(f"- {r.rate}/s: the replica STOPPED making progress for > 5 s while rows were outstanding "
                    "(see the replicator log below: most likely a GTID gap from a write that bypassed the ingress).")
        add("")
        for title, text in (("Ingress log", ingress_log), ("Replicator log (lag)", rep_log)):
            if text:
                add(f"{title} (warnings/errors/gaps, excerpt):")
                add("")
                add("```")
                add(text)
                add("```")
            else:
                add(f"{title}: no warnings, errors or tracebacks.")
            add("")
    return lines


SECTION = """
## bench/replicator_bench.py — replicator apply throughput and end-to-end lag

`.venv/bin/python bench/replicator_bench.py [--rows 200000] [--lag-rates 500,2000] [--lag-seconds 15]`
(needs the local stack: `dbmux stack up`).

- **Apply throughput**: the same rows loaded raw (MariaDB: multi-row INSERTs, 1000 rows per statement,
  commit per batch; PostgreSQL: `COPY` via asyncpg) and through the real replicator (`dbmux replicate`
  consuming row-form events, 10 rows per event, from a fresh topic) into MariaDB replica 1 and
  PostgreSQL shard a (as a plain, non-shard target). Target: replicator >= 0.7x raw rows/s.
- **End-to-end lag**: a paced writer commits single-row INSERTs through `dbmux ingress` at a fixed
  rate; a reader polls MariaDB replica 1 every 5 ms; lag = visible - sent. Target: p99 <= 250 ms at
  500 txn/s. 2,000 txn/s is reported as achieved (the ingress is one Python process on 2 cores).
"""


# --------------------------------------------------------------------------------------------------
# main

def add_apply_lag_options(ap: argparse.ArgumentParser, *, lag_seconds: float) -> None:
    """The options of the apply-throughput and lag phases (shared with bench/catchup.py)."""
    ap.add_argument("--rows", type=int, default=200_000, help="rows for the apply benchmark (default 200000)")
    ap.add_argument("--rows-per-event", type=int, default=10, help="row inserts per change event (default 10)")
    ap.add_argument("--raw-batch", type=int, default=1000, help="rows per multi-row INSERT of the raw MariaDB load")
    ap.add_argument("--apply-timeout", type=float, default=300, help="seconds to wait for the replicator per target")
    ap.add_argument("--lag-seconds", type=float, default=lag_seconds,
                    help=f"seconds per lag rate (default {lag_seconds:g})")
    ap.add_argument("--lag-conns", type=int, default=32, help="writer connections through the ingress (default 32)")
    ap.add_argument("--poll-ms", type=float, default=5, help="replica poll interval (default 5 ms)")
    ap.add_argument("--drain-seconds", type=float, default=30, help="wait this long for the last rows (default 30)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_apply_lag_options(ap, lag_seconds=15)
    ap.add_argument("--lag-rates", default="500,2000", help="comma-separated txn/s (default 500,2000)")
    ap.add_argument("--skip-apply", action="store_true")
    ap.add_argument("--skip-lag", action="store_true")
    ap.add_argument("--no-results", action="store_true", help=f"do not append to {RESULTS.relative_to(REPO)}")
    ap.add_argument("--keep-workdir", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args(argv)
    rates = [int(x) for x in args.lag_rates.split(",") if x.strip()]
    command = command_line("replicator_bench.py")
    sigterm_as_interrupt()
    warnings.filterwarnings("ignore", message=".*database doesn't exist")  # DROP ... IF EXISTS notes
    try:
        env = stack_env()
    except Prereq as exc:
        print(f"replicator_bench: {exc}", file=sys.stderr)
        return 2

    from dbmux.core.dsn import Dsn

    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    replica = Dsn.parse(env["DBMUX_REPLICA_URLS"].split(",")[0])
    pg = Dsn.parse(env["DBMUX_SHARD_URLS"].split(",")[0])
    bootstrap = env["DBMUX_KAFKA"]
    meta = run_meta()
    workdir = Path(tempfile.mkdtemp(prefix="dbmux-repbench-"))
    procs: list[Proc] = []
    names: dict = {"targets": [], "topics": []}
    apply_res: list[ApplyResult] = []
    lag_res: list[LagResult] = []
    ingress_log = rep_log = ""
    notes: list[str] = []
    interrupted = failed = False
    print(f"workdir {workdir}", flush=True)
    try:
        meta["primary_version"] = mysql_version(primary)
        meta["pg_version"] = pg_version(pg)
        if not args.skip_apply:
            apply_res = apply_phase(args, workdir, bootstrap, primary, replica, pg,
                                    f"dbmux.bench{secrets.token_hex(4)}.txn", meta, procs, names)
        if not args.skip_lag:
            lag_res, ingress_log, rep_log = lag_phase(args, workdir, bootstrap, primary, replica,
                                                      f"dbmux.bench{secrets.token_hex(4)}.txn", meta, procs,
                                                      names, rates)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; cleaning up", file=sys.stderr)
    except BenchError as exc:
        print(f"replicator_bench: {exc}", file=sys.stderr)
        failed = True
    finally:
        stop_all(procs)
        notes = cleanup(names, bootstrap, primary, replica, pg)
        for n in notes:
            print(f"  ({n})", file=sys.stderr)
        if args.keep_workdir or failed or ingress_log or rep_log or any(r.error for r in apply_res):
            print(f"kept {workdir} (configs, ingress and replicator logs)", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if interrupted:
        return 130
    if failed:
        return 1
    meta["load_end"] = loadavg()
    return publish_report(build_report(args, meta, apply_res, lag_res, ingress_log, rep_log, notes, command),
                          no_results=args.no_results, section=SECTION, marker="## bench/replicator_bench.py")


if __name__ == "__main__":
    sys.exit(main())
