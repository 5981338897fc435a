#!/usr/bin/env python3
"""sysbench through the dbmux ingress vs HAProxy vs the primary directly, in one run.

Usage (from the repository root, with the local stack up: ``dbmux stack up``)::

    .venv/bin/python bench/ingress_sysbench.py [--time 20] [--threads 8] [--table-size 10000]
        [--tables 4] [--warmup 5] [--ps-mode auto|disable|both] [--with-pure] [--no-results] [--keep-topic]

What it does, in one run:

1. reads the stack addresses (``dbmux.stack``); fails clearly when the stack is down;
2. starts HAProxy (TCP mode, ``bench/haproxy.cfg.template``) and the dbmux ingress (publishing on,
   to a topic of its own, ``dbmux.bench<random>.txn``) on free loopback ports;
3. drops/recreates database ``sbtest_bench`` on the primary and runs ``sysbench oltp_read_write
   prepare`` directly against the primary;
4. runs ``oltp_point_select`` then ``oltp_read_write``, each against direct → haproxy → ingress
   (always this order), each preceded by a short warm-up run whose numbers are discarded;
5. prints QPS/TPS per target, the ratios, the issue's targets (ingress >= 0.8x HAProxy on
   point_select QPS and read_write TPS, both protocol modes; PASS/MISS, never a non-zero exit for a MISS) and the
   number of events the ingress published during the measured read_write run vs sysbench's count;
6. appends the same report to ``bench/RESULTS.md``.

The ingress runs its compiled modules (``scripts/compile``; the report says which ran). ``--with-pure`` adds
a fourth target, a second ingress on the same source with ``DBMUX_PURE=1``: what the compiled build gains,
measured in the same run.

Nothing is installed: when sysbench or haproxy is missing it prints the apt-get command and exits 2.
Exit codes: 0 done (even with MISSes), 2 prerequisites missing / stack down, 1 the bench itself
failed (a server did not start), 130 interrupted.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

from harness.environment import BENCH_DIR, REPO, free_port, loadavg, run_meta, stack_env  # noqa: E402
from harness.errors import BenchError, Prereq  # noqa: E402
from harness.logs import ingress_log_section, ingress_problems  # noqa: E402
from harness.pipeline import dbmux_argv, ingress_env, start_ingress  # noqa: E402
from harness.processes import Proc, sigterm_as_interrupt, stop_all, wait_mysql_greeting  # noqa: E402
from harness.results import RESULTS, command_line, publish_report, report_head  # noqa: E402
from harness.sql import mysql_version  # noqa: E402
from harness.topics import delete_topic, end_offset  # noqa: E402
from sysbench_runner import (  # noqa: E402
    DB_NAME,
    Result,
    check_tools,
    parse_sysbench,
    prepare_db,
    redact,
    run_sysbench,
    sysbench_argv,
    sysbench_options,
)

HAPROXY_TEMPLATE = BENCH_DIR / "haproxy.cfg.template"
PURE_ENV = "DBMUX_PURE"  # (dbmux._compiled.PURE_ENV) the second ingress of --with-pure runs pure Python
TARGETS = ("direct", "haproxy", "ingress")
TESTS = ("oltp_point_select", "oltp_read_write")
# The acceptance targets: ingress vs HAProxy, on the metric that matters for each test.
GOALS = {"oltp_point_select": ("qps", 0.8), "oltp_read_write": ("tps", 0.8)}  # issue 13: >= 0.8x HAProxy


# --------------------------------------------------------------------------------------------------
# haproxy

def start_haproxy(workdir: Path, port: int, host: str, primary_port: int, maxconn: int) -> Proc:
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(string.Template(HAPROXY_TEMPLATE.read_text()).substitute(
        listen_port=port, primary_host=host, primary_port=primary_port, maxconn=maxconn))
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    if check.returncode != 0:
        raise BenchError(f"haproxy rejected {cfg}:\n{check.stdout}{check.stderr}")
    return Proc("haproxy", ["haproxy", "-db", "-f", str(cfg)], workdir / "haproxy.log")


# --------------------------------------------------------------------------------------------------
# report

def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def build_report(results: list[Result], args, ps_modes: list[str], meta: dict[str, str],
                 problems: str, command: str) -> str:
    lines = report_head("ingress vs HAProxy vs direct (sysbench)", meta, command)
    add = lines.append
    targets = TARGETS + (("ingress-pure",) if args.with_pure else ())
    add(f"- software: {meta['sysbench']}; {meta['haproxy']}; primary: MariaDB {meta['primary_version']}")
    add(f"- ingress modules: {meta['modules']}" + ("; ingress-pure: the same source with DBMUX_PURE=1"
                                                   if args.with_pure else ""))
    add(f"- setup: {args.tables} tables x {args.table_size} rows, --threads={args.threads}, "
        f"--time={args.time}s per measured run after a {args.warmup}s warm-up (discarded), --rand-type=uniform; "
        f"order per test: {' -> '.join(targets)}; ingress durability={meta['durability']} "
        f"(topic {meta['topic']}), HAProxy nbthread 1 `mode tcp` `balance first`; "
        f"the whole local stack (Kafka, 3 MariaDB, 2 PostgreSQL) runs on the same machine")
    add("")
    for ps in ps_modes:
        rs = {(r.test, r.target): r for r in results if r.ps_mode == ps}
        add(f"#### --db-ps-mode={ps}" + (" (server-side prepared statements)" if ps == "auto" else
                                         " (text protocol, client-side interpolation)"))
        add("")
        add("| test | target | QPS | TPS | p95 ms | avg ms | errors | reconnects | proxy CPU | status |")
        add("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for test in TESTS:
            for target in targets:
                r = rs.get((test, target))
                if r is None:
                    continue
                status = "ok" if r.ok else f"FAILED (exit {r.rc})"
                cpu = f"{r.proxy_cpu:.2f}" if r.proxy_cpu is not None else "-"
                add(f"| {test} | {target} | {r.qps:,.0f} | {r.tps:,.1f} | {r.p95_ms:.2f} | {r.avg_ms:.2f} | "
                    f"{r.errors} | {r.reconnects} | {cpu} | {status} |")
        add("")
        add("proxy CPU = CPU seconds the HAProxy / ingress process used per wall-clock second of the run "
            "(1.00 = one core saturated; the machine has " + meta["nproc"] + " cores shared with sysbench, "
            "MariaDB and Kafka).")
        add("")
        add("| test | metric | ingress/haproxy | ingress/direct | haproxy/direct | target (ingress/haproxy) "
            "| verdict |")
        add("| --- | --- | ---: | ---: | ---: | ---: | --- |")
        for test in TESTS:
            d, h, i = (rs.get((test, t)) for t in TARGETS)
            if not (d and h and i):
                continue
            metric, goal = GOALS[test]
            for m in ("qps", "tps"):
                iv, hv, dv = getattr(i, m), getattr(h, m), getattr(d, m)
                if m == metric:
                    verdict = ("PASS" if hv and iv / hv >= goal and i.ok else "MISS")
                    if not i.ok:
                        verdict += " (ingress run failed)"
                    tgt = f">= {goal:.1f}x"
                else:
                    verdict, tgt = "", ""
                add(f"| {test} | {m.upper()} | {ratio(iv, hv)} | {ratio(iv, dv)} | {ratio(hv, dv)} | {tgt} "
                    f"| {verdict} |")
        add("")
        for test in TESTS if args.with_pure else ():
            i, p = rs.get((test, "ingress")), rs.get((test, "ingress-pure"))
            if i and p:
                metric = GOALS[test][0]
                add(f"- compiled vs pure-Python ingress, {test} {metric.upper()}: "
                    f"{ratio(getattr(i, metric), getattr(p, metric))} (proxy CPU per 1,000 queries: "
                    f"{_cpu_per_kq(i)} vs {_cpu_per_kq(p)})")
        rw = rs.get(("oltp_read_write", "ingress"))
        ps_i = rs.get(("oltp_point_select", "ingress"))
        if rw is not None:
            if rw.events is None:
                add("- Kafka sanity: end offset of the bench topic could not be read")
            else:
                match = "matches" if rw.events == rw.transactions else \
                    f"DIFFERS by {rw.events - rw.transactions:+d}"
                add(f"- Kafka sanity (read_write via ingress, measured run only): {rw.events} events published "
                    f"to the bench topic vs {rw.transactions} transactions reported by sysbench ({match})")
        if ps_i is not None and ps_i.events is not None:
            add(f"- Kafka sanity (point_select via ingress, read-only): {ps_i.events} events published (expected 0)")
        failed = [r for r in results if r.ps_mode == ps and (not r.ok or r.ignored_errors)]
        for r in failed:
            add(f"- {r.test} via {r.target}: exit {r.rc}, ignored errors {r.ignored_errors}"
                + (": " + " / ".join(f"`{f}`" for f in r.fatal[:5]) if r.fatal else ""))
        add("")
    lines += ingress_log_section(problems)
    return "\n".join(lines)


def _cpu_per_kq(r: Result) -> str:
    return f"{r.proxy_cpu / r.qps * 1000 * 1000:.1f} ms" if r.proxy_cpu is not None and r.qps else "-"


# --------------------------------------------------------------------------------------------------
# main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sysbench_options(ap)
    ap.add_argument("--warmup", type=int, default=5, help="seconds of discarded warm-up before each run (default 5)")
    ap.add_argument("--ps-mode", choices=("auto", "disable", "both"), default="auto",
                    help="sysbench --db-ps-mode: auto = server-side prepared statements (default), "
                         "disable = text protocol, both = run everything twice")
    ap.add_argument("--durability", choices=("config", "sync", "async"), default="config",
                    help="ingress.durability for the bench ingress: as in the stack config (default; the "
                         "stack config says sync), or override (DBMUX_INGRESS_DURABILITY)")
    ap.add_argument("--with-pure", action="store_true",
                    help="also run a second ingress with DBMUX_PURE=1 (the pure-Python modules), in the same run")
    ap.add_argument("--no-results", action="store_true", help=f"do not append to {RESULTS.relative_to(REPO)}")
    ap.add_argument("--keep-topic", action="store_true", help="keep the bench Kafka topic afterwards")
    ap.add_argument("--keep-workdir", action="store_true", help="keep the temp dir (configs, logs) afterwards")
    args = ap.parse_args(argv)
    command = command_line("ingress_sysbench.py")
    sigterm_as_interrupt()

    try:
        meta = check_tools()
        env = stack_env()
    except Prereq as exc:
        print(f"ingress_sysbench: {exc}", file=sys.stderr)
        return 2

    from dbmux.core.config import load_config
    from dbmux.core.dsn import Dsn

    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    host, port, user, password = primary.host, primary.port, primary.user, primary.password
    bootstrap = env["DBMUX_KAFKA"]
    config_path = env["DBMUX_CONFIG"]
    topic = f"dbmux.bench{secrets.token_hex(4)}.txn"
    ps_modes = ["auto", "disable"] if args.ps_mode == "both" else [args.ps_mode]
    meta.update(run_meta())
    meta["topic"] = topic
    from dbmux import _compiled
    meta["modules"] = _compiled.describe()  # (this process and the ingress load the same build)
    meta["durability"] = load_config(config_path, env=ingress_env(16033, topic, args.durability)).ingress.durability

    workdir = Path(tempfile.mkdtemp(prefix="dbmux-bench-"))
    procs: list[Proc] = []
    results: list[Result] = []
    keep_workdir = args.keep_workdir
    interrupted = False
    ingress_log, pure_log = workdir / "ingress.log", workdir / "ingress-pure.log"
    try:
        meta["primary_version"] = mysql_version(primary)

        hp_port, in_port = free_port(), free_port()
        while in_port == hp_port:
            in_port = free_port()
        print(f"workdir {workdir}\nstarting haproxy on 127.0.0.1:{hp_port} -> {host}:{port}", flush=True)
        hp = start_haproxy(workdir, hp_port, host, port, maxconn=max(2000, 4 * args.threads))
        procs.append(hp)
        wait_mysql_greeting(hp_port, hp)
        print(f"starting ingress on 127.0.0.1:{in_port} (topic {topic})", flush=True)
        ing = start_ingress(workdir, config_path, ingress_env(in_port, topic, args.durability))
        procs.append(ing)
        version = wait_mysql_greeting(in_port, ing, timeout=60)
        print(f"ingress up (greeting server version {version!r})", flush=True)
        targets = TARGETS
        ports = {"direct": port, "haproxy": hp_port, "ingress": in_port}
        proxies = {"haproxy": hp, "ingress": ing}
        if args.with_pure:
            ports["ingress-pure"] = pure_port = free_port()
            pure_env = {**ingress_env(pure_port, topic, args.durability), PURE_ENV: "1"}
            pure = Proc("ingress-pure", dbmux_argv("ingress", "-c", str(config_path)), pure_log, env=pure_env)
            procs.append(pure)
            wait_mysql_greeting(pure_port, pure, timeout=60)
            targets, proxies["ingress-pure"] = TARGETS + ("ingress-pure",), pure

        print(f"preparing {DB_NAME}: {args.tables} tables x {args.table_size} rows on the primary", flush=True)
        prepare_db(host, port, user, password, args)

        for ps in ps_modes:
            for test in TESTS:
                for target in targets:
                    if args.warmup > 0:
                        wa = sysbench_argv(test, "127.0.0.1", ports[target], user, password, args, ps,
                                           args.warmup, args.threads)
                        run_sysbench(wa, timeout=args.warmup + 120)
                    for p in procs:
                        if not p.alive():
                            raise BenchError(f"{p.name} died (exit {p.p.returncode}); log tail:\n{p.tail()}")
                    before = end_offset(bootstrap, topic) if target.startswith("ingress") else None
                    sa = sysbench_argv(test, "127.0.0.1", ports[target], user, password, args, ps,
                                       args.time, args.threads)
                    print(f"$ {redact(sa)}", flush=True)
                    proxy = proxies.get(target)
                    cpu0, t0 = (proxy.cpu_seconds() if proxy else None), time.monotonic()
                    rc, out = run_sysbench(sa, timeout=args.time + 180)
                    cpu1, t1 = (proxy.cpu_seconds() if proxy else None), time.monotonic()
                    res = parse_sysbench(out, Result(test, target, ps, rc=rc))
                    if cpu0 is not None and cpu1 is not None:
                        res.proxy_cpu = (cpu1 - cpu0) / (t1 - t0)
                    if target.startswith("ingress"):
                        time.sleep(1.0)  # let any late (async) acknowledgements land
                        after = end_offset(bootstrap, topic)
                        res.events = after - before if after is not None and before is not None else None
                    results.append(res)
                    (workdir / f"sysbench-{ps}-{test}-{target}.out").write_text(out)
                    print(f"  {test:<18} {target:<8} qps={res.qps:>10,.1f} tps={res.tps:>9,.1f} "
                          f"p95={res.p95_ms:>7.2f}ms errors={res.errors} rc={rc}"
                          + (f" proxy_cpu={res.proxy_cpu:.2f}" if res.proxy_cpu is not None else "")
                          + (f" events={res.events}" if res.events is not None else ""), flush=True)
                    if not res.ok:
                        keep_workdir = True
                        print("    sysbench output tail:\n    " + "\n    ".join(out.strip().splitlines()[-15:]),
                              flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping haproxy and the ingress", file=sys.stderr)
    except BenchError as exc:
        print(f"ingress_sysbench: {exc}", file=sys.stderr)
        keep_workdir = True
        return 1
    finally:
        stop_all(procs)
        problems = ingress_problems(ingress_log) + (ingress_problems(pure_log) if pure_log.exists() else "")
        if problems:
            keep_workdir = True
        if not args.keep_topic:
            delete_topic(bootstrap, topic)
        if keep_workdir:
            print(f"kept {workdir} (haproxy.cfg, haproxy.log, ingress.log, sysbench outputs)", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    if interrupted:
        return 130
    meta["load_end"] = loadavg()
    return publish_report(build_report(results, args, ps_modes, meta, problems, command), no_results=args.no_results)


if __name__ == "__main__":
    sys.exit(main())
