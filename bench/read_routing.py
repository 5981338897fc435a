#!/usr/bin/env python3
"""Read routing (issue 15): sysbench ``oltp_read_only`` through the ingress with ``reads = "replicas"`` vs
``reads = "primary"``, in one run, a light write load beside it.

Usage (from the repository root, with the local stack up: ``dbmux stack up``)::

    .venv/bin/python bench/read_routing.py [--time 30] [--threads 8] [--tables 4] [--table-size 10000]
        [--write-rate 20] [--consistency session|causal|bounded] [--no-results]

What it does:

1. starts a pipeline on a topic of its own: the binlog reader, a replicator for each of the stack's two
   MariaDB replicas (targets ``rr1``, ``rr2``) and two ingresses -- ``reads = "primary"`` and
   ``reads = "replicas"`` (``--consistency``, default ``session``);
2. ``sysbench prepare`` through the routing ingress (so the replicators copy the tables), waits until both
   replicas have every row;
3. runs, against each ingress in turn (primary first): ``oltp_read_only`` (prepared statements,
   ``--skip-trx=on``) for ``--time`` seconds while ``oltp_update_index`` writes ``--write-rate``
   transactions per second through the same ingress;
4. reports QPS, p99 latency, sysbench errors and the servers' own ``Com_select`` counters: the share of
   reads served off the primary is ``1 - (primary's Com_select delta) / (reads sysbench made)`` -- an
   upper bound of what the primary answered (the ingress's own queries count as the primary's).
   Appends the report to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules

from harness.environment import free_port, run_meta, stack_env  # noqa: E402
from harness.errors import BenchError  # noqa: E402
from harness.pipeline import config_head, dbmux_argv, env_without_dbmux, start_replicator  # noqa: E402
from harness.processes import Proc, stop_all, wait_mysql_greeting  # noqa: E402
from harness.results import bench_main, command_line, report_head  # noqa: E402
from harness.sql import mysql_rows  # noqa: E402
from sysbench_runner import parse_sysbench, redact, run_sysbench, sysbench_options  # noqa: E402

DB = "sbtest_reads"
TARGETS = ("rr1", "rr2")


def sb(test: str, port: int, primary, args, command: str, seconds: int = 0, threads: int = 1,
       extra: tuple[str, ...] = ()) -> list[str]:
    argv = ["sysbench", test, "--mysql-host=127.0.0.1", f"--mysql-port={port}", f"--mysql-user={primary.user}",
            f"--mysql-password={primary.password}", f"--mysql-db={DB}", f"--tables={args.tables}",
            f"--table-size={args.table_size}", f"--threads={threads}", "--db-ps-mode=auto", *extra]
    if command == "run":
        argv += [f"--time={seconds}", "--events=0", "--rand-type=uniform", "--percentile=99"]
    return argv + [command]


def com_select(dsn) -> int:
    return int(mysql_rows(dsn, "SHOW GLOBAL STATUS LIKE 'Com_select'")[0][1])


def served(port: int) -> dict[str, float]:
    """The ingress's reads per backend (dbmux_ingress_reads_total; empty with reads = primary)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    pattern = r'^dbmux_ingress_reads_total\{backend="([^"]+)"\} (\S+)$'
    return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, body, re.MULTILINE)}


def write_config(path: Path, env: dict, topic: str, replicas: list[str]) -> None:
    body = "".join(f'[targets.{n}]\nurl = "{u}"\n' for n, u in zip(TARGETS, replicas, strict=True))
    path.write_text(config_head(env, topic) + f'[replicator]\nbatch_linger_ms = 5\n{body}')


def wait_copied(replicas, args, timeout_s: float = 600) -> None:
    want = args.tables * args.table_size
    deadline = time.monotonic() + timeout_s
    for dsn in replicas:
        while True:
            try:
                have = sum(int(mysql_rows(dsn, f"SELECT COUNT(*) FROM {DB}.sbtest{i}")[0][0])
                           for i in range(1, args.tables + 1))
            except Exception:  # noqa: BLE001 - the tables are not there yet
                have = 0
            if have >= want:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"replica {dsn.port} has {have} of {want} rows after {timeout_s:.0f}s")
            time.sleep(1)


def run(args) -> str:
    from dbmux.core.dsn import Dsn

    env = stack_env()
    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    replica_urls = env["DBMUX_REPLICA_URLS"].split(",")[:2]
    replicas = [Dsn.parse(u) for u in replica_urls]
    topic = f"dbmux.reads{secrets.token_hex(4)}.txn"
    workdir = Path(tempfile.mkdtemp(prefix="dbmux-reads-"))
    cfg = workdir / "reads.toml"
    write_config(cfg, env, topic, replica_urls)
    procs: list[Proc] = []
    meta = run_meta()
    meta.update({"topic": topic, "consistency": args.consistency})
    try:
        base = env_without_dbmux({"PYTHONUNBUFFERED": "1"})
        procs.append(Proc("binlog", dbmux_argv("binlog", "-c", str(cfg)), workdir / "binlog.log", env=base))
        procs += [start_replicator(workdir, cfg, t) for t in TARGETS]
        ports, metrics = {}, {}
        for mode in ("primary", "replicas"):
            port, metrics[mode] = free_port(), free_port()
            ports[mode] = port
            ing = Proc(f"ingress[{mode}]", dbmux_argv("ingress", "-c", str(cfg)), workdir / f"ingress-{mode}.log",
                       env={**base, "DBMUX_INGRESS_LISTEN": f"127.0.0.1:{port}", "DBMUX_INGRESS_READS": mode,
                            "DBMUX_INGRESS_READ_CONSISTENCY": args.consistency,
                            "DBMUX_INGRESS_METRICS_PORT": str(metrics[mode])})
            procs.append(ing)
            wait_mysql_greeting(port, ing, timeout=60)
        mysql_rows(primary, f"DROP DATABASE IF EXISTS {DB}")
        routing = Dsn("mysql", "127.0.0.1", ports["replicas"], primary.user, primary.password)
        mysql_rows(routing, f"CREATE DATABASE {DB}")
        prep = sb("oltp_read_write", ports["replicas"], primary, args, "prepare", threads=min(args.tables, 4))
        print(f"$ {redact(prep)}", flush=True)
        rc, out = run_sysbench(prep, timeout=900)
        if rc:
            raise BenchError(f"sysbench prepare failed:\n{out[-2000:]}")
        wait_copied(replicas, args)
        lines = [f"| reads = | QPS | p99 ms | errors | reads | primary Com_select | {TARGETS[0]} | {TARGETS[1]} "
                 "| off the primary (Com_select) | by replicas (ingress counters) | writes beside |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for mode in ("primary", "replicas"):
            port = ports[mode]
            warm = sb("oltp_read_only", port, primary, args, "run", 5, args.threads, ("--skip-trx=on",))
            run_sysbench(warm, timeout=120)
            writer = sb("oltp_update_index", port, primary, args, "run", args.time + 4, 1,
                        (f"--rate={args.write_rate}",))
            wout: dict[str, str] = {}

            def write(w: list[str] = writer, out: dict[str, str] = wout) -> None:
                out["out"] = run_sysbench(w, args.time + 120)[1]

            wt = threading.Thread(target=write)
            wt.start()
            time.sleep(1)
            before = [com_select(d) for d in (primary, *replicas)]
            served0 = served(metrics[mode])
            reader = sb("oltp_read_only", port, primary, args, "run", args.time, args.threads, ("--skip-trx=on",))
            print(f"$ {redact(reader)}", flush=True)
            rc, out = run_sysbench(reader, timeout=args.time + 180)
            after = [com_select(d) for d in (primary, *replicas)]
            served1 = served(metrics[mode])
            by_replicas = sum(served1.get(t, 0) - served0.get(t, 0) for t in TARGETS)
            by_all = by_replicas + served1.get("primary", 0) - served0.get("primary", 0)
            wt.join()
            res = parse_sysbench(out, parse_sysbench("", _result(mode)))
            p99 = re.search(r"99th percentile:\s+([0-9.]+)", out)
            reads = int(m.group(1)) if (m := re.search(r"read:\s+(\d+)", out)) else 0
            writes = re.search(r"transactions:\s+(\d+)", wout.get("out", ""))
            delta = [a - b for a, b in zip(after, before, strict=True)]
            off = 1 - delta[0] / reads if reads else 0.0
            lines.append(f"| {mode} | {res.qps:,.0f} | {p99.group(1) if p99 else '?'} | {res.errors} (rc {rc}) "
                         f"| {reads:,} | {delta[0]:,} | {delta[1]:,} | {delta[2]:,} | {off:.1%} "
                         f"| {(by_replicas / by_all if by_all else 0):.1%} of {by_all:,.0f} "
                         f"| {writes.group(1) if writes else '?'} txns |")
            print(lines[-1], flush=True)
            (workdir / f"sysbench-{mode}.out").write_text(out + "\n--- writer\n" + wout.get("out", ""))
        head = report_head("Read routing: sysbench oltp_read_only through the ingress, reads = primary vs replicas",
                           meta, command_line("read_routing.py"))
        notes = ["", f"{args.threads} reader threads, prepared statements, --skip-trx=on, {args.time}s each; "
                 f"oltp_update_index at {args.write_rate}/s beside; {args.tables}x{args.table_size} rows; "
                 f"read_consistency = {args.consistency}. Com_select: each server's delta over the measured run "
                 "(replicas' include the ingress's position polls and the replicators' own reads; the primary's, in "
                 "causal mode, the ingress's fence queries -- so 'off the primary (Com_select)' is a lower bound); "
                 "'by replicas': the routing ingress's own counters of reads per backend.", ""]
        return "\n".join(head + notes + lines) + "\n"
    finally:
        stop_all(procs)


def _result(mode: str):
    from sysbench_runner import Result

    return Result("oltp_read_only", mode, "auto")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sysbench_options(ap, seconds=30)
    ap.add_argument("--write-rate", type=int, default=20, help="oltp_update_index transactions per second beside")
    ap.add_argument("--consistency", choices=("session", "causal", "bounded"), default="session")
    return bench_main(ap, run, argv)


if __name__ == "__main__":
    sys.exit(main())
