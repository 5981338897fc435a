#!/usr/bin/env python3
"""The result cache's memory bound (issue 16): an ingress with ``ingress.cache_bytes`` under a working set
of cacheable reads ten times larger -- does the process stay within ``cache_bytes`` + 10%?

Usage (from the repository root, with the local stack up: ``dbmux stack up``)::

    .venv/bin/python bench/cache_memory.py [--cache-mib 32] [--factor 10] [--answer-kib 4] [--threads 4]
        [--no-results]

What it does, in one run:

1. starts an ingress on a topic of its own with ``cache_bytes`` = ``--cache-mib`` and creates a table of
   1,000 rows through it;
2. warms it with 10,000 distinct reads made uncacheable (``FOR UPDATE``: the same relay paths, nothing
   kept; more texts than the per-text statement caches hold, so they are full) -- the resident set size
   then is the baseline;
3. sends distinct cacheable reads (``SELECT <n>, REPEAT('x', <answer>) FROM t WHERE id = <k>``) from
   ``--threads`` connections until their answers add up to ``--factor`` x ``cache_bytes``, then reads the
   first tenth again, sampling the ingress's RSS every 100 ms;
4. reports the peak RSS over the baseline against ``cache_bytes`` (the issue's bound: + 10%), with the
   cache's own byte count, entries and evictions, and appends it to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules

from harness.environment import free_port, run_meta, stack_env  # noqa: E402
from harness.pipeline import bench_pipeline, dbmux_argv, env_without_dbmux  # noqa: E402
from harness.processes import Proc, rss, stop_all, wait_mysql_greeting  # noqa: E402
from harness.results import bench_main, command_line, report_head  # noqa: E402

MIB = 1 << 20


def metrics(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for m in re.finditer(r"^(dbmux_ingress_cache_\w+?)(?:\{[^}]*\})? (\S+)$", body, re.MULTILINE):
        out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def run(args) -> str:
    import pymysql

    env = stack_env()
    from dbmux.core.dsn import Dsn

    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    topic, workdir, cfg = bench_pipeline(env, "cmem")
    cache_bytes = args.cache_mib * MIB
    answer = args.answer_kib * 1024
    meta = run_meta()
    meta.update({"topic": topic, "cache": f"{args.cache_mib} MiB"})
    port, mport = free_port(), free_port()
    base = env_without_dbmux({"PYTHONUNBUFFERED": "1"})
    ing = Proc("ingress", dbmux_argv("ingress", "-c", str(cfg)), workdir / "ingress.log",
               env={**base, "DBMUX_INGRESS_LISTEN": f"127.0.0.1:{port}", "DBMUX_INGRESS_CACHE_BYTES": str(cache_bytes),
                    "DBMUX_INGRESS_METRICS_PORT": str(mport)})
    procs = [ing]
    db = f"cmem_{secrets.token_hex(3)}"
    try:
        wait_mysql_greeting(port, ing, timeout=60)

        def connect() -> pymysql.Connection:
            return pymysql.connect(host="127.0.0.1", port=port, user=primary.user, password=primary.password,
                                   autocommit=True, read_timeout=60)

        admin = connect()
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")
            cur.execute(f"INSERT INTO {db}.t VALUES " + ",".join(f"({i}, {i})" for i in range(1000)))
        total = args.factor * cache_bytes // answer  # distinct reads whose answers add up to factor x cache
        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss(ing.p.pid))
                time.sleep(0.1)

        def reads(lo: int, hi: int, suffix: str) -> None:
            conn = connect()
            with conn.cursor() as cur:
                for n in range(lo, hi):
                    cur.execute(f"SELECT {n}, REPEAT('x', {answer}) FROM {db}.t WHERE id = {n % 1000}{suffix}")
                    cur.fetchall()
            conn.close()

        def spread(count: int, suffix: str) -> float:
            t0 = time.monotonic()
            step = -(-count // args.threads)
            threads = [threading.Thread(target=reads, args=(i * step, min(count, (i + 1) * step), suffix))
                       for i in range(args.threads)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return time.monotonic() - t0

        # warm: the same paths with nothing cached, 10,000 distinct texts -- more than the per-text statement
        # caches hold (classify 8,192, read verdicts 4,096: fixed costs of any ingress serving traffic)
        spread(10_000, " FOR UPDATE")
        baseline = rss(ing.p.pid)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        fill_s = spread(total, "")
        again_s = spread(total // 10, "")
        stop.set()
        sampler.join()
        m = metrics(mport)
        growth = peak[0] - baseline
        verdict = "PASS" if growth <= cache_bytes * 1.1 else "MISS"
        lines = [
            "", f"{total:,} distinct cacheable reads of ~{args.answer_kib} KiB answers "
            f"({total * answer / MIB:,.0f} MiB: "
            f"{args.factor}x cache_bytes) from {args.threads} connections in {fill_s:.1f}s, then the first tenth "
            f"again in {again_s:.1f}s; RSS sampled every 100 ms.", "",
            "| cache_bytes | working set | RSS baseline | RSS peak | peak - baseline | / cache_bytes "
            "| cache's own bytes | entries | evictions | lookups |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {cache_bytes / MIB:.0f} MiB | {total * answer / MIB:,.0f} MiB | {baseline / MIB:.1f} MiB | "
            f"{peak[0] / MIB:.1f} MiB | {growth / MIB:.1f} MiB | {growth / cache_bytes:.2f} | "
            f"{m.get('dbmux_ingress_cache_bytes', 0) / MIB:.1f} MiB | {m.get('dbmux_ingress_cache_entries', 0):,.0f} | "
            f"{m.get('dbmux_ingress_cache_evictions_total', 0):,.0f} | "
            f"{m.get('dbmux_ingress_cache_lookups_total', 0):,.0f} |",
            "", f"Bound (issue 16): the process within cache_bytes + 10% -- **{verdict}**.",
        ]
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
        admin.close()
        head = report_head("Result cache memory: a working set ten times cache_bytes", meta,
                           command_line("cache_memory.py"))
        return "\n".join(head + lines) + "\n"
    finally:
        stop_all(procs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache-mib", type=int, default=32)
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--answer-kib", type=int, default=4)
    ap.add_argument("--threads", type=int, default=4)
    return bench_main(ap, run, argv)


if __name__ == "__main__":
    sys.exit(main())
