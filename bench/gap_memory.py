#!/usr/bin/env python3
"""Replicator memory while a GTID gap is open (issue 19): the RSS curve over a long gap.

Usage (from the repository root, local stack up; ``DBMUX_STACK_DIR`` selects another stack)::

    .venv/bin/python bench/gap_memory.py [--seconds 600] [--rate 1000] [--bound-mib 64]
        [--threads 16] [--ps-mode auto|disable] [--sample-s 10] [--no-results]

One run: a fresh topic; ``dbmux ingress`` and ``dbmux replicate`` (target: replica1, tables
``gapbench.*``) from a generated config with ``replicator.max_held_bytes = --bound-mib``; sysbench
prepares one table through the ingress. Then **one write straight to the primary** opens a GTID gap
only the binlog reader can fill, and it is not running: sysbench ``oltp_write_only`` writes through
the ingress at ``--rate`` transactions/s for ``--seconds``. Every ``--sample-s`` the replicator's RSS
(``/proc``) and its held/spilled metrics are sampled. Then ``dbmux binlog`` starts from before the
gap and the time until the replica's tables are checksum-equal to the primary's is measured.
Reported: the RSS curve, its peak over the start, the bound, the events left in Kafka, catch-up
time. Pass (exit 0) when the peak RSS growth stays under the bound plus 64 MiB and the copies are
equal; a bench that could not run exits 1 (2: stack down).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.environment import free_port, loadavg, run_meta, stack_env  # noqa: E402
from harness.errors import BenchError  # noqa: E402
from harness.pipeline import dbmux_argv, env_without_dbmux  # noqa: E402
from harness.processes import Proc, rss, stop_all, wait_mysql_greeting  # noqa: E402
from harness.results import command_line, report_head, run_and_publish  # noqa: E402
from harness.sql import mysql_rows as _sql  # noqa: E402

from dbmux.core.dsn import Dsn  # noqa: E402

DB = "gapbench"
MARGIN = 64 * 1024 * 1024


def _metrics(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^(dbmux_replicator_\w+)\{[^}]*\} (\S+)$", body, re.M)}


def _sysbench(port: int, dsn: Dsn, command: str, *extra: str) -> list[str]:
    return ["sysbench", "oltp_write_only", "--mysql-host=127.0.0.1", f"--mysql-port={port}",
            f"--mysql-user={dsn.user}", f"--mysql-password={dsn.password}", f"--mysql-db={DB}", "--tables=1",
            "--table-size=10000", *extra, command]


def run(args: argparse.Namespace) -> str:
    env = stack_env()
    primary, replica = Dsn.parse(env["DBMUX_PRIMARY_URL"]), Dsn.parse(env["DBMUX_REPLICA_URLS"].split(",")[0])
    work = Path(f"/tmp/dbmux-gapbench-{uuid.uuid4().hex[:6]}")
    work.mkdir()
    topic, port, metrics_port, bound = f"dbmux.gapbench{uuid.uuid4().hex[:8]}.txn", free_port(), free_port(), \
        args.bound_mib * 1024 * 1024
    cfg = work / "gap.toml"
    cfg.write_text(f"""[kafka]\nbootstrap = "{env['DBMUX_KAFKA']}"\ntopic = "{topic}"\n[primary]
url = "{primary.url()}"\nbinlog_url = "{env['DBMUX_PRIMARY_BINLOG_URL']}"\n[ingress]\nlisten = "127.0.0.1:{port}"
durability = "async"\n[replicator]\nmax_held_bytes = {bound}\nmetrics_port = {metrics_port}\ngap_alert_ms = 5000
[targets.gapbench]\nurl = "{replica.url()}"\ntables = ["{DB}.*"]\n""")
    for dsn in (primary, replica):
        _sql(dsn, f"DROP DATABASE IF EXISTS {DB}")
    procs: list[Proc] = []
    try:
        procs.append(Proc("ingress", dbmux_argv("ingress", "-c", str(cfg)), work / "ingress.log",
                          env=env_without_dbmux()))
        wait_mysql_greeting(port, procs[-1])
        _sql(Dsn("mysql", "127.0.0.1", port, primary.user, primary.password, ""), f"CREATE DATABASE {DB}",
             f"CREATE TABLE {DB}.gapmark (id INT PRIMARY KEY)")
        subprocess.run(_sysbench(port, primary, "prepare"), check=True, capture_output=True)
        rep = Proc("replicator", dbmux_argv("replicate", "-c", str(cfg), "--target", "gapbench"),
                   work / "replicator.log", env=env_without_dbmux())
        procs.append(rep)
        deadline = time.monotonic() + 120
        while _sql(replica, f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{DB}' "
                            "AND TABLE_NAME = 'sbtest1'")[0][0] == 0 or \
                _sql(replica, f"SELECT COUNT(*) FROM {DB}.sbtest1")[0][0] < 10000:
            if time.monotonic() > deadline or not rep.alive():
                raise BenchError(f"the replica did not get the prepared table:\n{rep.tail()}")
            time.sleep(1)
        before_gap = _sql(primary, "SELECT @@gtid_binlog_pos")[0][0]
        _sql(primary, f"INSERT INTO {DB}.gapmark VALUES (1)")  # around the ingress: a gap
        base = rss(rep.p.pid)
        load = subprocess.Popen(_sysbench(port, primary, "run", f"--db-ps-mode={args.ps_mode}",
                                          f"--threads={args.threads}", f"--rate={args.rate}",
                                          f"--time={args.seconds}", "--events=0"),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        t0, curve = time.monotonic(), []
        while load.poll() is None:
            time.sleep(args.sample_s)
            m = _metrics(metrics_port)
            curve.append((time.monotonic() - t0, rss(rep.p.pid), m.get("dbmux_replicator_held_bytes", 0),
                          m.get("dbmux_replicator_spilled_total", 0)))
        out = load.stdout.read() if load.stdout else ""
        tps = re.search(r"transactions:\s+\d+\s+\((\S+) per sec", out)
        gap_s = time.monotonic() - t0
        if load.returncode != 0:
            failed = "\n".join(out.strip().splitlines()[-15:])
            raise BenchError(f"sysbench through the ingress exited {load.returncode} after {gap_s:.0f} s:\n{failed}\n"
                             f"ingress log tail:\n{procs[0].tail()}")
        binlog = Proc("binlog", dbmux_argv("binlog", "-c", str(cfg), "--from-gtid", before_gap), work / "binlog.log",
                      env=env_without_dbmux())
        procs.append(binlog)
        t1, equal = time.monotonic(), False
        check = f"CHECKSUM TABLE {DB}.sbtest1, {DB}.gapmark EXTENDED"
        while time.monotonic() - t1 < 1800 and rep.alive():
            if _sql(primary, check) == _sql(replica, check):
                equal = True
                break
            time.sleep(1)
        catchup = time.monotonic() - t1
        peak = max(r for _, r, _, _ in curve) if curve else base
        args.meta["load_end"] = loadavg()
        lines = report_head("bench/gap_memory.py: replicator RSS while a GTID gap is open", args.meta,
                            command_line("gap_memory.py"))
        lines += [f"- gap for {gap_s:.0f} s, sysbench oltp_write_only through the ingress at --rate "
                  f"{args.rate} (--db-ps-mode={args.ps_mode}, {args.threads} threads): "
                  f"{tps[1] if tps else '?'} txn/s achieved; bound max_held_bytes = "
                  f"{args.bound_mib} MiB", "",
                  "| t (s) | replicator RSS (MiB) | held (MiB) | events left in Kafka so far |",
                  "| ---: | ---: | ---: | ---: |"]
        lines += [f"| {t:.0f} | {r / 2**20:.1f} | {h / 2**20:.1f} | {s:,.0f} |" for t, r, h, s in curve]
        verdict = "PASS" if equal and peak - base < bound + MARGIN else "MISS"
        lines += ["", f"- RSS at the gap's start {base / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB: growth "
                  f"{(peak - base) / 2**20:.1f} MiB (bound {args.bound_mib} MiB + 64 MiB margin): {verdict}",
                  f"- binlog reader started after the gap: replica checksum-equal to the primary "
                  f"{f'after {catchup:.1f} s' if equal else f'NOT reached within {catchup:.0f} s'}", ""]
        return "\n".join(lines)
    finally:
        stop_all(procs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=16, help="sysbench threads (enough to keep up with --rate)")
    ap.add_argument("--ps-mode", default="auto", choices=("auto", "disable"),
                    help="sysbench --db-ps-mode: auto = prepared statements (default), disable = text protocol")
    ap.add_argument("--bound-mib", type=int, default=64)
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args()
    args.meta = run_meta()
    return run_and_publish(run, args)


if __name__ == "__main__":
    sys.exit(main())
