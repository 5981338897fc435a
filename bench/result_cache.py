#!/usr/bin/env python3
"""The ingress's result cache (issue 16): sysbench through a caching ingress vs HAProxy and direct, in one run.

Usage (from the repository root, with the local stack up: ``dbmux stack up``)::

    .venv/bin/python bench/result_cache.py [--time 20] [--threads 8] [--tables 4] [--table-size 10000]
        [--cache-mib 256] [--no-results]

What it does, in one run (text protocol by default; ``--ps-mode auto``: prepared statements):

1. starts HAProxy, the binlog reader and two ingresses on a topic of their own -- one plain, one with
   ``ingress.cache_bytes`` -- and prepares ``sbtest_bench`` directly on the primary;
2. ``oltp_point_select`` against direct, HAProxy, the plain ingress and the caching ingress (each after a
   warm-up run that also fills the cache), with the hit ratio over the measured run from the ingress's
   own counters;
3. ``oltp_read_write`` through HAProxy, the plain and the caching ingress: what invalidation costs under
   writes -- in transactions (its reads then are not cached) and in autocommit (``--skip_trx=on``: each
   statement alone, reads cached between writes, which invalidate per key or per table);
4. writes around the ingress: the read checker's writers straight on the primary, its readers through the
   caching ingress for ``--time`` seconds: stale reads seen and the longest staleness (the issue's target:
   visible within 1 s at p99; the longest one bounds every percentile);
5. appends the report to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the read checker (tests/integration)

from harness.environment import free_port, run_meta, stack_env  # noqa: E402
from harness.pipeline import bench_pipeline, dbmux_argv, env_without_dbmux  # noqa: E402
from harness.processes import Proc, stop_all, wait_mysql_greeting  # noqa: E402
from harness.results import bench_main, command_line, report_head  # noqa: E402
from ingress_sysbench import start_haproxy  # noqa: E402
from sysbench_runner import (  # noqa: E402,E501
    Result,
    check_tools,
    parse_sysbench,
    prepare_db,
    redact,
    run_sysbench,
    sysbench_argv,
    sysbench_options,
)


def lookups(port: int) -> dict[str, float]:
    """The caching ingress's lookups by result, and its invalidations by scope (``inval_keys`` ...)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    pattern = r'^dbmux_ingress_cache_(lookups|invalidations)_total\{(?:result|scope)="([^"]+)"\} (\S+)$'
    return {(m.group(2) if m.group(1) == "lookups" else f"inval_{m.group(2)}"): float(m.group(3))
            for m in re.finditer(pattern, body, re.MULTILINE)}


def run(args) -> str:
    from dbmux.core.dsn import Dsn
    from tests.integration.read_checker import Checker, create_table

    meta = check_tools()
    env = stack_env()
    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    topic, workdir, cfg = bench_pipeline(env, "cache")
    meta.update(run_meta())
    meta.update({"topic": topic, "cache": f"{args.cache_mib} MiB"})
    procs: list[Proc] = []
    try:
        base = env_without_dbmux({"PYTHONUNBUFFERED": "1"})
        procs.append(Proc("binlog", dbmux_argv("binlog", "-c", str(cfg)), workdir / "binlog.log", env=base))
        ports = {"direct": primary.port}
        hp_port = free_port()
        procs.append(start_haproxy(workdir, hp_port, primary.host, primary.port, maxconn=2000))
        wait_mysql_greeting(hp_port, procs[-1])
        ports["haproxy"] = hp_port
        metrics = free_port()
        for name, cache in (("ingress", 0), ("ingress+cache", args.cache_mib << 20)):
            port = free_port()
            extra = {"DBMUX_INGRESS_CACHE_BYTES": str(cache), "DBMUX_INGRESS_METRICS_PORT": str(metrics)} if cache \
                else {}
            ing = Proc(name, dbmux_argv("ingress", "-c", str(cfg)), workdir / f"{name}.log",
                       env={**base, "DBMUX_INGRESS_LISTEN": f"127.0.0.1:{port}", **extra})
            procs.append(ing)
            wait_mysql_greeting(port, ing, timeout=60)
            ports[name] = port
        prepare_db(primary.host, primary.port, primary.user, primary.password, args)
        lines = ["| test | target | QPS | TPS | p95 ms | errors | hit ratio | vs HAProxy |",
                 "|---|---|---:|---:|---:|---:|---:|---:|"]
        results: dict[tuple[str, str], Result] = {}
        # (autocommit: oltp_read_write's statements each on their own -- its reads cacheable, its writes
        # invalidating; 1062: two threads may delete and re-insert one id at once without the transaction)
        autocommit = ["--skip_trx=on", "--mysql-ignore-errors=1062"]
        for test, targets in (("oltp_point_select", ("direct", "haproxy", "ingress", "ingress+cache")),
                              ("oltp_read_write", ("haproxy", "ingress", "ingress+cache")),
                              ("oltp_read_write autocommit", ("haproxy", "ingress", "ingress+cache"))):
            for target in targets:
                name, *extra = test.split()
                argv, warm = (sysbench_argv(name, "127.0.0.1", ports[target], primary.user, primary.password, args,
                                            args.ps_mode, secs, args.threads) for secs in (args.time, args.warmup))
                if extra:
                    argv, warm = argv[:-1] + autocommit + argv[-1:], warm[:-1] + autocommit + warm[-1:]
                run_sysbench(warm, timeout=args.warmup + 120)
                before = lookups(metrics) if target == "ingress+cache" else {}
                print(f"$ {redact(argv)}", flush=True)
                rc, out = run_sysbench(argv, timeout=args.time + 180)
                res = parse_sysbench(out, Result(test, target, args.ps_mode, rc=rc))
                results[(test, target)] = res
                hit = "-"
                if target == "ingress+cache":
                    after = lookups(metrics)
                    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                    total = sum(v for k, v in delta.items() if not k.startswith("inval_"))
                    hit = f"{delta.get('hit', 0) / total:.1%}" if total else "0 lookups"
                    if any(delta.get(f"inval_{s}") for s in ("keys", "tables", "all")):
                        hit += " (invalidations: " + ", ".join(f"{delta.get(f'inval_{s}', 0):,.0f} {s}"
                                                               for s in ("keys", "tables", "all")) + ")"
                base_res = results.get((test, "haproxy"))
                vs = (f"{res.qps / base_res.qps:.2f}x" if base_res and base_res.qps and target != "haproxy" else "-")
                lines.append(f"| {test} | {target} | {res.qps:,.0f} | {res.tps:,.0f} | {res.p95_ms:.2f} | "
                             f"{res.errors} (rc {rc}) | {hit} | {vs} |")
                print(lines[-1], flush=True)
        # writes around the ingress: how long the cache answers a value the primary has replaced
        via = Dsn("mysql", "127.0.0.1", ports["ingress+cache"], primary.user, primary.password)
        db = f"cache_{secrets.token_hex(3)}"
        create_table(via, db, 8)  # (through the ingress: its schema facts know the table at once)
        time.sleep(1)
        before = lookups(metrics)
        checker = Checker(primary, via, db, writers=2, readers=4, write_pause_s=0.02)
        checker.start()
        time.sleep(args.time)
        report = checker.stop()
        after = lookups(metrics)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if not k.startswith("inval_")}
        lines += ["", f"Writes around the ingress ({args.time}s, 2 writers on the primary at ~50/s each, 4 readers "
                  f"through the caching ingress, {delta.get('hit', 0):,.0f} cache hits of "
                  f"{sum(delta.values()):,.0f} lookups): {report.summary()}; longest staleness "
                  f"{report.staleness_s * 1000:.0f} ms (issue 16: within 1 s at p99)."]
        head = report_head("Result cache: sysbench through a caching ingress vs HAProxy and direct", meta,
                           command_line("result_cache.py"))
        notes = ["", f"--db-ps-mode={args.ps_mode} (disable: text protocol; auto: prepared statements), "
                 f"{args.threads} threads, {args.time}s per run after a "
                 f"{args.warmup}s warm-up (which also fills the cache), {args.tables}x{args.table_size} rows; "
                 "hit ratio from the caching ingress's own counters over the measured run.", ""]
        return "\n".join(head + notes + lines) + "\n"
    finally:
        stop_all(procs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sysbench_options(ap)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--cache-mib", type=int, default=256)
    ap.add_argument("--ps-mode", choices=("disable", "auto"), default="disable",
                    help="sysbench --db-ps-mode: disable = text protocol (default), auto = prepared statements")
    return bench_main(ap, run, argv)


if __name__ == "__main__":
    sys.exit(main())
