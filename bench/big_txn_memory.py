#!/usr/bin/env python3
"""Replicator memory and time applying one huge transaction (issue 12 #1: bounded replicator memory).

Usage (from the repository root, local stack up; ``DBMUX_STACK_DIR`` selects another stack)::

    .venv/bin/python bench/big_txn_memory.py [--rows 1000000] [--blob-mib 256] [--baseline-rev REV]
        [--no-results]

One run: a fresh topic; straight on the primary, one transaction of ``--rows`` rows (multi-row INSERTs)
and one of ``--blob-mib`` rows of 1 MiB each. Then for this checkout -- and, with ``--baseline-rev``, the
same commands from a ``git worktree`` of that revision, on a topic of its own -- ``dbmux binlog`` publishes
them (its row copies) and one ``dbmux replicate`` at a time applies the topic to replica1 (MariaDB)
and to shard-a's PostgreSQL as a plain target, each into a database of its own. Sampled every 0.1 s
until the target holds every row: the replicator's RSS. Reported per revision and target: peak RSS,
time to apply, rows/s. The binlog reader's own memory is not measured (it holds one transaction).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.environment import REPO, free_port, loadavg, run_meta, stack_env  # noqa: E402
from harness.errors import BenchError  # noqa: E402
from harness.pipeline import dbmux_argv, env_without_dbmux  # noqa: E402
from harness.processes import Proc, rss, stop_all  # noqa: E402
from harness.results import command_line, report_head, run_and_publish  # noqa: E402
from harness.sql import mysql_rows as _mysql  # noqa: E402
from harness.sql import pg_exec  # noqa: E402

from dbmux.core.dsn import Dsn  # noqa: E402

DB = "bigtxn"
MIB = 1024 * 1024


def _pg_count(dsn: Dsn, table: str) -> int:
    import asyncio

    import asyncpg

    async def main() -> int:
        conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                     database=dsn.database or "postgres")
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        except asyncpg.UndefinedTableError:
            return 0
        finally:
            await conn.close()

    return asyncio.run(main())


def _write(primary: Dsn, rows: int, blobs: int) -> None:
    import pymysql

    conn = pymysql.connect(host=primary.host, port=primary.port, user=primary.user, password=primary.password,
                           max_allowed_packet=64 * MIB)
    try:
        with conn.cursor() as cur:
            conn.begin()
            for start in range(0, rows, 20_000):
                cur.execute(f"INSERT INTO {DB}.many VALUES " + ",".join(
                    f"({i}, 'row {i:012d}')" for i in range(start, min(rows, start + 20_000))))
            conn.commit()
            conn.begin()
            for i in range(blobs):
                cur.execute(f"INSERT INTO {DB}.blobs VALUES (%s, REPEAT(%s, {MIB // 16}))", (i, f"{i:015d}-"))
            conn.commit()
    finally:
        conn.close()


def _worktree(rev: str) -> Path:
    path = Path(f"/tmp/dbmux-baseline-{rev[:12]}")
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=REPO, check=True,
                       capture_output=True)
    return path


def run(args: argparse.Namespace) -> str:
    env = stack_env()
    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    replica = Dsn.parse(env["DBMUX_REPLICA_URLS"].split(",")[0])
    pg = Dsn.parse(env["DBMUX_SHARD_URLS"].split(",")[0])
    work = Path(f"/tmp/dbmux-bigtxn-{uuid.uuid4().hex[:6]}")
    work.mkdir()
    tag = uuid.uuid4().hex[:6]
    revisions = [("this checkout", REPO)] + ([(f"baseline {args.baseline_rev}", _worktree(args.baseline_rev))]
                                             if args.baseline_rev else [])
    targets = {f"my{i}{tag}": ("mysql", replica) for i in range(len(revisions))}
    targets |= {f"pg{i}{tag}": ("pg", pg) for i in range(len(revisions))}
    cfgs = []
    for i in range(len(revisions)):  # a topic per revision, written by its own binlog reader (wire formats differ)
        cfgs.append(work / f"bigtxn{i}.toml")
        body = (f'[kafka]\nbootstrap = "{env["DBMUX_KAFKA"]}"\ntopic = "dbmux.bigtxn{i}{tag}.txn"\n[primary]\n'
                f'url = "{primary.url()}"\nbinlog_url = "{env["DBMUX_PRIMARY_BINLOG_URL"]}"\n[replicator]\n'
                f'metrics_port = {free_port()}\n')
        for name, (_, dsn) in targets.items():
            body += f'[targets.{name}]\nurl = "{dsn.url()}"\ntables = ["{DB}.*"]\n'
        cfgs[-1].write_text(body)
    _mysql(primary, f"DROP DATABASE IF EXISTS {DB}")
    _mysql(replica, f"DROP DATABASE IF EXISTS {DB}")
    procs: list[Proc] = []
    results = []
    try:
        start = _mysql(primary, "SELECT @@gtid_binlog_pos")[0][0]
        _mysql(primary, f"CREATE DATABASE {DB}", f"CREATE TABLE {DB}.many (id INT PRIMARY KEY, v VARCHAR(40))",
               f"CREATE TABLE {DB}.blobs (id INT PRIMARY KEY, b LONGTEXT)")
        t0 = time.monotonic()
        _write(primary, args.rows, args.blob_mib)
        write_s = time.monotonic() - t0
        for i, (label, cwd) in enumerate(revisions):
            cfg = cfgs[i]
            procs.append(Proc(f"binlog{i}", dbmux_argv("binlog", "-c", str(cfg), "--from-gtid", start),
                              work / f"binlog{i}.log", env=env_without_dbmux(), cwd=cwd))
            for kind in ("mysql", "pg"):
                name = f"{'my' if kind == 'mysql' else 'pg'}{i}{tag}"
                if kind == "mysql":
                    _mysql(replica, f"DROP DATABASE IF EXISTS {DB}")
                rep = Proc(name, dbmux_argv("replicate", "-c", str(cfg), "--target", name),
                           work / f"{name}.log", env=env_without_dbmux(), cwd=cwd)
                procs.append(rep)
                t1, peak, done = time.monotonic(), 0, False
                last_check = 0.0
                while time.monotonic() - t1 < args.timeout and rep.alive():
                    peak = max(peak, rss(rep.p.pid))
                    now = time.monotonic()
                    if now - last_check >= 1.0:
                        last_check = now
                        try:
                            if kind == "mysql":
                                got = _mysql(replica, f"SELECT (SELECT COUNT(*) FROM {DB}.many) + "
                                                      f"(SELECT COUNT(*) FROM {DB}.blobs)")[0][0]
                            else:
                                got = _pg_count(pg, f"{DB}.many") + _pg_count(pg, f"{DB}.blobs")
                        except Exception:  # noqa: BLE001 - not created yet
                            got = 0
                        if got == args.rows + args.blob_mib:
                            done = True
                            break
                    time.sleep(0.1)
                took = time.monotonic() - t1
                alive = rep.alive()
                rep.stop()
                procs.remove(rep)
                if not done:
                    raise BenchError(f"{label}: {name} did not apply every row in {took:.0f} s (alive: {alive}):\n"
                                     f"{rep.tail()}")
                results.append((label, "MariaDB replica" if kind == "mysql" else "PostgreSQL", peak, took))
                if kind == "pg":
                    _drop_pg(pg)
        args.meta["load_end"] = loadavg()
        lines = report_head("bench/big_txn_memory.py: replicator memory applying huge transactions", args.meta,
                            command_line("big_txn_memory.py"))
        lines += [f"- one transaction of {args.rows:,} rows (multi-row INSERTs of 20,000) and one of "
                  f"{args.blob_mib} rows of 1 MiB, written straight to the primary in {write_s:.1f} s; the "
                  "binlog reader's row copies; one replicator at a time, from the start of the topic", "",
                  "| code | target | replicator peak RSS (MiB) | time to apply both (s) |",
                  "| --- | --- | ---: | ---: |"]
        lines += [f"| {label} | {kind} | {peak / MIB:.0f} | {took:.1f} |" for label, kind, peak, took in results]
        return "\n".join(lines) + "\n"
    finally:
        stop_all(procs)
        _mysql(primary, f"DROP DATABASE IF EXISTS {DB}")
        _mysql(replica, f"DROP DATABASE IF EXISTS {DB}")
        _drop_pg(pg)


def _drop_pg(pg: Dsn) -> None:
    import asyncio

    asyncio.run(pg_exec(pg, f"DROP SCHEMA IF EXISTS {DB} CASCADE"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--blob-mib", type=int, default=256, help="rows of 1 MiB in the second transaction")
    ap.add_argument("--baseline-rev", default="", help="also run the replicator of this git revision")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per replicator run")
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args()
    args.meta = run_meta()
    return run_and_publish(run, args)


if __name__ == "__main__":
    sys.exit(main())
