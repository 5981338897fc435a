#!/usr/bin/env python3
"""What self-verification costs an OLTP catch-up (issue 20 #6: within 10% of the apply without it).

Usage (from the repository root, local stack up; ``DBMUX_STACK_DIR`` selects another stack)::

    .venv/bin/python bench/self_verify_cost.py [--txns 10000] [--rounds 2] [--tables 2] [--table-size 10000]
        [--threads 8] [--no-results]

1. **Backlog.** ``sbtest_up`` is recreated on the primary and MariaDB replica 1, ``sysbench
   oltp_write_only prepare`` runs on the primary and its tables are copied to the replica (and kept
   there as ``base_sbtestN``). With ``dbmux binlog`` and ``dbmux ingress`` running on a fresh topic,
   ``oltp_write_only run --events=<--txns>`` (prepared statements) goes through the ingress: the topic
   holds both copies of every transaction, the ingress's first -- so a target applies each from its
   statements and then checks it against the row copy: the worst case for the check.
2. **Rounds**, on replica 1, alternating ``replicator.self_verify = "off"`` and ``"halt"``, ``--rounds``
   pairs: the replica's tables reset from ``base_sbtestN``, a new target name (applies the topic from
   its beginning), ``dbmux replicate`` started, the time until the target's stored GTID reaches the
   backlog's last (polled every 50 ms). Each round ends with ``CHECKSUM TABLE`` equal to the primary
   (else the bench fails) and, with the check on, the replicator's "self-verified N" line.
3. **Report**: per round txn/s (from the replicator's start, and from its first applied transaction),
   and the median ratio halt/off. Appended to ``bench/RESULTS.md`` unless ``--no-results``.
"""

from __future__ import annotations

import argparse
import re
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

from harness.environment import free_port, loadavg, run_meta, stack_env  # noqa: E402
from harness.errors import BenchError  # noqa: E402
from harness.logs import replicator_problems  # noqa: E402
from harness.pipeline import dbmux_argv, env_without_dbmux, start_replicator  # noqa: E402
from harness.processes import Proc, stop_all, wait_mysql_greeting  # noqa: E402
from harness.results import command_line, report_head, run_and_publish  # noqa: E402
from harness.topics import delete_topic, end_offset  # noqa: E402
from sysbench_runner import Result, check_tools, parse_sysbench, run_sysbench  # noqa: E402
from up_backlog import DB, _copy_tables, _gtid_pos, _sb, _sql, _write_config  # noqa: E402

from dbmux.core.dsn import Dsn  # noqa: E402

GOAL = 0.9  # catch-up with the check >= 0.9x without it


@dataclass
class Round:
    mode: str
    target: str
    seconds: float = 0.0  # replicator start -> last transaction applied
    steady_s: float = 0.0  # first transaction applied -> last
    verified: int = -1  # the replicator's own count (self_verify on)
    problems: str = ""


def _applied(replica: Dsn, target: str, topic: str) -> int:
    try:
        rows = _sql(replica, "SELECT seq FROM dbmux_meta.gtids WHERE target = %s AND topic = %s AND domain_id = '0'",
                    args=(target, topic))
    except Exception:  # noqa: BLE001 - dbmux_meta not created yet
        return -1
    return int(rows[0][0]) if rows else -1


def _checksums(dsn: Dsn, tables: list[str]) -> list:
    return _sql(dsn, f"CHECKSUM TABLE {', '.join(f'{DB}.{t}' for t in tables)}")


def build_backlog(args, env: dict[str, str], work: Path, topic: str, primary: Dsn, replica: Dsn,
                  start_pos: dict[str, str] | None = None) -> int:
    """The backlog (see the module docstring); returns its last GTID seq (domain 0). ``start_pos["pos"]``:
    the primary's GTID position before it (the prepared tables copied)."""
    tables = [f"sbtest{i}" for i in range(1, args.tables + 1)]
    for dsn in (primary, replica):
        _sql(dsn, f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}")
    rc, out = run_sysbench(_sb("oltp_write_only", primary.port, primary, args, "auto", 0, 2, "prepare"), timeout=900)
    if rc != 0:
        raise BenchError(f"sysbench prepare failed (exit {rc}):\n{out[-3000:]}")
    _copy_tables(primary, [replica], tables)
    if start_pos is not None:
        start_pos["pos"] = _sql(primary, "SELECT @@gtid_binlog_pos")[0][0]
    for t in tables:
        _sql(replica, f"CREATE TABLE {DB}.base_{t} LIKE {DB}.{t}", f"INSERT INTO {DB}.base_{t} SELECT * FROM {DB}.{t}")
    port = free_port()
    cfg = work / "backlog.toml"
    _write_config(cfg, env=env, cluster=topic.split(".")[1], topic=topic, port=port, durability="async", targets={})
    procs: list[Proc] = []
    try:
        start_producers(procs, cfg, work, port)
        rc, out = run_sysbench(_sb("oltp_write_only", port, primary, args, "auto", 0, args.threads, events=args.txns),
                               timeout=3600)
        res = parse_sysbench(out, Result("oltp_write_only", "ingress", "auto", rc=rc))
        if not res.ok:
            raise BenchError(f"sysbench through the ingress failed (exit {rc}):\n{out[-3000:]}")
        last = wait_published(env["DBMUX_KAFKA"], topic)
    finally:
        stop_all(procs)
    end = _gtid_pos(primary)["0"]
    print(f"backlog: {res.transactions:,} sysbench transactions, {last:,} events on {topic}, primary at 0-x-{end}",
          flush=True)
    return end


def start_producers(procs: list[Proc], cfg: Path, work: Path, port: int, prefix: str = "") -> None:
    """``dbmux binlog`` (streaming) and ``dbmux ingress`` (accepting on ``port``) of ``cfg``, into ``procs``."""
    procs.append(Proc("binlog", dbmux_argv("binlog", "-c", str(cfg)), work / f"{prefix}binlog.log",
                      env=env_without_dbmux({"PYTHONUNBUFFERED": "1"})))
    deadline = time.monotonic() + 60
    while "streaming from primary" not in procs[-1].log_path.read_text(errors="replace"):
        if time.monotonic() > deadline or not procs[-1].alive():
            raise BenchError(f"the binlog reader did not start:\n{procs[-1].tail()}")
        time.sleep(0.2)
    procs.append(Proc("ingress", dbmux_argv("ingress", "-c", str(cfg)), work / f"{prefix}ingress.log",
                      env=env_without_dbmux({"PYTHONUNBUFFERED": "1"})))
    wait_mysql_greeting(port, procs[-1], timeout=60)


def wait_published(kafka: str, topic: str) -> int:
    """Wait until ``topic``'s end offset has not moved for 3 s (the binlog reader has published everything);
    returns it."""
    last, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 3:
        now = end_offset(kafka, topic) or 0
        if now != last:
            last, stable_since = now, time.monotonic()
        time.sleep(0.5)
    return last


def run_round(rnd: Round, env: dict[str, str], work: Path, topic: str, primary: Dsn, replica: Dsn, end: int,
              tables: list[str], extra: str = "prefer_row_copies = false\n") -> None:
    """One catch-up of the backlog (``extra``: more [replicator] settings; by default every ingress copy is
    applied from its statements and checked, the worst case for the check)."""
    _sql(replica, *[s for t in tables for s in (f"TRUNCATE {DB}.{t}", f"INSERT INTO {DB}.{t} SELECT * FROM "
                                                 f"{DB}.base_{t}")])
    cfg = work / f"{rnd.target}.toml"
    _write_config(cfg, env=env, cluster=topic.split(".")[1], topic=topic, port=free_port(), durability="async",
                  targets={rnd.target: replica})
    cfg.write_text(cfg.read_text().replace("[replicator]\n", f'[replicator]\nself_verify = "{rnd.mode}"\n'
                                           f"batch_max_txns = 500\n{extra}"))
    t0 = time.monotonic()
    proc = start_replicator(work, cfg, rnd.target)
    first = None
    try:
        while (seq := _applied(replica, rnd.target, topic)) < end:
            if first is None and seq > 0:
                first = time.monotonic()
            if not proc.alive():
                raise BenchError(f"replicator {rnd.target} exited:\n{proc.tail()}")
            if time.monotonic() - t0 > 1800:
                raise BenchError(f"replicator {rnd.target} did not catch up in 30 min")
            time.sleep(0.05)
        rnd.seconds = time.monotonic() - t0
        rnd.steady_s = time.monotonic() - (first or t0)
    finally:
        proc.stop(30)
    text = proc.log_path.read_text(errors="replace")
    found = re.search(r"self-verified (\d+) transactions applied from statements, (\d+) differences", text)
    rnd.verified = int(found[1]) if found else -1
    rnd.problems = replicator_problems(proc.log_path)
    if _checksums(replica, tables) != _checksums(primary, tables):
        raise BenchError(f"round {rnd.target} ({rnd.mode}): replica 1 differs from the primary after catch-up")
    print(f"round {rnd.mode}: {rnd.seconds:.2f} s (steady {rnd.steady_s:.2f} s), verified {rnd.verified}", flush=True)


def run(args) -> str:
    meta = check_tools()
    meta.update(run_meta())
    env = stack_env()
    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    replica = Dsn.parse(env["DBMUX_REPLICA_URLS"].split(",")[0])
    cluster = f"svbench{secrets.token_hex(4)}"
    topic = f"dbmux.{cluster}.txn"
    tables = [f"sbtest{i}" for i in range(1, args.tables + 1)]
    work = Path(tempfile.mkdtemp(prefix="dbmux-svbench-"))
    print(f"workdir {work}, topic {topic}", flush=True)
    rounds = [Round(mode, f"{cluster}_{mode}{i}") for i in range(args.rounds) for mode in ("off", "halt")]
    try:
        end = build_backlog(args, env, work, topic, primary, replica)
        for rnd in rounds:
            run_round(rnd, env, work, topic, primary, replica, end, tables)
    finally:
        for t in (topic, f"{topic}.binlog-position"):
            delete_topic(env["DBMUX_KAFKA"], t)
        _sql(replica, "DELETE FROM dbmux_meta.gtids WHERE target LIKE %s", "DELETE FROM dbmux_meta.positions "
             "WHERE target LIKE %s", "DELETE FROM dbmux_meta.status WHERE target LIKE %s", args=(f"{cluster}%",))
    meta["load_end"] = loadavg()
    n = args.txns
    ratios = [on.seconds and off.seconds / on.seconds for off, on in zip(rounds[::2], rounds[1::2], strict=True)]
    ratio = statistics.median(ratios)
    lines = report_head("self-verification cost: OLTP catch-up with and without the check", meta,
                        command_line("self_verify_cost.py"))
    lines += ["", f"Backlog: {n:,} sysbench oltp_write_only transactions ({args.tables} x {args.table_size:,} rows, "
              f"prepared statements, {args.threads} threads) through `dbmux ingress` with `dbmux binlog` running "
              f"(both copies of each transaction in the topic, ingress first: every one applied from its "
              f"statements, then checked); applied by `dbmux replicate` to MariaDB replica 1 "
              f"(batch_max_txns 500), tables reset before each round; last GTID seq {end}.", "",
              "| round | self_verify | seconds (start -> all applied) | txn/s | steady txn/s | self-verified |",
              "| ---: | --- | ---: | ---: | ---: | ---: |"]
    for i, r in enumerate(rounds, 1):
        lines.append(f"| {i} | {r.mode} | {r.seconds:.2f} | {n / r.seconds:,.0f} | {n / r.steady_s:,.0f} | "
                     f"{r.verified if r.verified >= 0 else '-'} |")
    verdict = "PASS" if ratio >= GOAL else "MISS"
    lines += ["", f"Median ratio (txn/s with the check / without, per pair): **{ratio:.2f}x** "
              f"(pairs: {', '.join(f'{x:.2f}' for x in ratios)}); target >= {GOAL}x: **{verdict}**. "
              "Each round ended with CHECKSUM TABLE equal to the primary.", ""]
    problems = "\n".join(r.problems for r in rounds if r.problems)
    lines.append(f"Replicator logs: {problems or 'no warnings, errors or tracebacks.'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = backlog_parser(__doc__, txns=10000, rounds_help="pairs of rounds, off then halt (default 2)")
    return run_and_publish(run, ap.parse_args(argv))


def backlog_parser(doc: str | None, *, txns: int, rounds_help: str) -> argparse.ArgumentParser:
    """The options of a bench that builds a sysbench backlog (:func:`build_backlog`) and runs rounds on it."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    ap.add_argument("--txns", type=int, default=txns, help=f"oltp_write_only transactions (default {txns})")
    ap.add_argument("--rounds", type=int, default=2, help=rounds_help)
    ap.add_argument("--tables", type=int, default=2, help="sysbench tables (default 2)")
    ap.add_argument("--table-size", type=int, default=10000, help="rows per table (default 10000)")
    ap.add_argument("--threads", type=int, default=8, help="sysbench threads writing the backlog (default 8)")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    return ap


if __name__ == "__main__":
    sys.exit(main())
