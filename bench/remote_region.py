#!/usr/bin/env python3
"""Remote region: end-to-end lag of a replicator that reaches Kafka across a 100 ms round trip.

    .venv/bin/python bench/remote_region.py [--rtt-ms 100] [--rates 500,1000] [--seconds 15] [--conns 32]

Needs a local stack started with a remote listener (issue 17, deliverable 7):

    .venv/bin/dbmux stack up --kafka-remote-port 19100

Region A holds the primary, `dbmux ingress` and Kafka; region B holds `dbmux replicate` and MariaDB
replica 1. Every broker also listens on a ``REMOTE`` listener that advertises the address of a Toxiproxy
proxy in front of it, so a replicator bootstrapped there reaches every broker through the proxy (its
metadata never hands it the direct address). The bench sets a latency toxic of RTT/2 on each direction of
every proxy, measures the round trip it produced (a Kafka metadata request through the proxy), then runs
the lag bench of ``bench/replicator_bench.py`` (a paced writer of single-row INSERTs through the ingress,
a reader polling the replica every 5 ms; lag = first seen on the replica - sent) with the replicator's
``kafka.bootstrap`` set to the proxied brokers. The same bench at 0 ms added latency, through the same
proxy, runs first in the same run as the reference.

Target (the issue): lag p99 <= RTT + 250 ms at 500 and 1,000 txn/s.

Exit codes: 0 done (even with MISSes), 2 stack without a remote listener or down, 1 the bench failed,
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

from harness.environment import free_port, loadavg, run_meta, stack_dir, stack_env  # noqa: E402
from harness.errors import BenchError, Prereq  # noqa: E402
from harness.processes import Proc, sigterm_as_interrupt, stop_all  # noqa: E402
from harness.results import command_line, publish_report, report_head  # noqa: E402
from harness.sql import mysql_version  # noqa: E402
from replicator_bench import cleanup  # noqa: E402
from replicator_lag import LAG_DB, LagResult, lag_phase, pct  # noqa: E402
from up_backlog import _sql  # noqa: E402

LAG_BUDGET_MS = 250.0  # the issue: p99 <= RTT + 250 ms


async def measured_rtt_ms(bootstrap: str, samples: int = 10) -> float:
    """Median of ``samples`` Kafka metadata round trips to ``bootstrap`` (after the connection is up)."""
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await client.bootstrap()
    try:
        await client.fetch_all_metadata()
        times = []
        for _ in range(samples):
            t0 = time.monotonic()
            await client.fetch_all_metadata()
            times.append((time.monotonic() - t0) * 1000)
        return statistics.median(times)
    finally:
        await client.close()


NATIVE_PROXY = "primary-remote"


def native_starter(replica, primary, proxy_port: int):
    """Starts MariaDB's own replication of ``LAG_DB`` from the primary, reached through the proxy on
    ``proxy_port``, at the primary's current GTID position (the table already exists on both)."""
    def start() -> None:
        pos = _sql(primary, "SELECT @@gtid_binlog_pos")[0][0]
        _sql(replica, "STOP SLAVE", "RESET SLAVE ALL", f"SET GLOBAL replicate_do_db = '{LAG_DB}'")
        _sql(replica, "SET GLOBAL gtid_slave_pos = %s", args=(pos,))
        _sql(replica, f"CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {proxy_port}, MASTER_USER = "
                      f"'{primary.user}', MASTER_PASSWORD = '{primary.password}', MASTER_USE_GTID = slave_pos")
        _sql(replica, "START SLAVE")
    return start


def native_stop(replica) -> None:
    _sql(replica, "STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL replicate_do_db = ''", "SET GLOBAL gtid_slave_pos = ''",
         f"DROP DATABASE IF EXISTS {LAG_DB}")


async def measured_mysql_rtt_ms(primary, port: int, samples: int = 10) -> float:
    """Median of ``samples`` ``SELECT 1`` round trips to the primary through the proxy on ``port``."""
    import aiomysql

    conn = await aiomysql.connect(host="127.0.0.1", port=port, user=primary.user, password=primary.password)
    try:
        times = []
        async with conn.cursor() as cur:
            for _ in range(samples + 1):
                t0 = time.monotonic()
                await cur.execute("SELECT 1")
                await cur.fetchall()
                times.append((time.monotonic() - t0) * 1000)
        return statistics.median(times[1:])
    finally:
        conn.close()


def fmt_ms(v: float) -> str:
    return "-" if v != v else f"{v:,.1f}"


Run = tuple[str, int, float, list[LagResult], str, str]  # (replication, added RTT, measured RTT, results, logs)


def build_report(args, meta: dict, runs: list[Run], command: str) -> str:
    lines = report_head("remote region: replicator across a latency proxy to Kafka (issue 17 #7)", meta, command)
    lines += [
        f"- primary: MariaDB {meta.get('primary_version', '?')}; Kafka brokers: {meta['brokers']} (topic replication "
        f"factor / min.insync.replicas: {meta['replication']}, acks=all); Toxiproxy "
        f"latency toxic on both directions of every broker's proxy; {args.conns} writer connections through the "
        f"ingress, autocommit single-row INSERTs, {args.seconds:g} s per rate, replica polled every "
        f"{args.poll_ms:g} ms",
        "",
        "| replication | added RTT ms | measured RTT ms | target rate | achieved txn/s | committed | errors "
        "| lag p50 ms | lag p99 ms | lag max ms | from OK p50 / p99 ms | unseen | replicator CPU | target | verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    problems = []
    for how, added, rtt, results, ing_log, rep_log in runs:
        goal = added + LAG_BUDGET_MS
        for r in results:
            p99 = pct(r.lags_send_ms, 99)
            reached = r.achieved >= 0.95 * r.rate
            ok = p99 <= goal and not r.unseen and not r.errors and not r.stalled
            verdict = ("PASS" if ok else "MISS") + ("" if reached else " (rate not reached)")
            if how != "dbmux":
                verdict = "(reference)" + ("" if reached else " rate not reached")
            cpu = "-" if r.replicator_cpu is None else f"{r.replicator_cpu:.2f}"
            target = f"p99 <= {goal:.0f} ms" if how == "dbmux" else "-"
            lines.append(
                f"| {how} | {added} | {rtt:.1f} | {r.rate:,} | {r.achieved:,.0f} | {r.committed:,} | {r.errors} "
                f"| {fmt_ms(pct(r.lags_send_ms, 50))} | {fmt_ms(p99)} "
                f"| {fmt_ms(max(r.lags_send_ms or [float('nan')]))} "
                f"| {fmt_ms(pct(r.lags_ok_ms, 50))} / {fmt_ms(pct(r.lags_ok_ms, 99))} | {r.unseen} "
                f"| {cpu} | {target} | {verdict} |")
            if r.first_error:
                problems.append(f"- {how}, {added} ms, {r.rate}/s: first writer error: `{r.first_error[:300]}`")
            if r.stalled:
                problems.append(f"- {how}, {added} ms, {r.rate}/s: the replica STOPPED making progress for > 5 s")
        for title, text in (("ingress", ing_log), ("replicator", rep_log)):
            if text:
                problems += [f"- {how}, {added} ms, {title} log (warnings/errors, excerpt):", "", "```", text, "```"]
    lines += [
        "",
        "lag = first poll that returned the row on the replica - the moment the writer sent the INSERT through "
        "the ingress (includes the ingress's Kafka ack, the trip to the replicator across the proxy, the apply "
        "and up to one poll interval). from OK = from the client's OK instead. measured RTT = median Kafka "
        "metadata round trip through the proxy. achieved = committed / (first slot -> last OK). native = what a "
        "user would run instead: MariaDB replica 2 replicating the table from the primary through a proxy with the "
        "same latency (its IO thread is the remote side), the same writes through the ingress, no dbmux "
        "replicator.",
        "",
        *(problems or ["Ingress and replicator logs: no warnings, errors or tracebacks."]),
        "",
    ]
    return "\n".join(lines)


SECTION = """
## bench/remote_region.py — a replicator in another region (latency to Kafka)

`.venv/bin/python bench/remote_region.py [--rtt-ms 100] [--rates 500,1000]` on a stack started with
`dbmux stack up --kafka-remote-port P` (a Toxiproxy proxy in front of every broker's advertised `REMOTE`
listener). The lag bench of `bench/replicator_bench.py` with the replicator bootstrapped through the proxies,
first at 0 ms added latency, then at the RTT. Target: lag p99 <= RTT + 250 ms at 500 and 1,000 txn/s.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtt-ms", type=int, default=100, help="added round trip to Kafka (default 100)")
    ap.add_argument("--rates", default="500,1000", help="comma-separated txn/s (default 500,1000)")
    ap.add_argument("--seconds", type=float, default=15, help="seconds per rate (default 15)")
    ap.add_argument("--conns", type=int, default=32, help="writer connections through the ingress (default 32)")
    ap.add_argument("--poll-ms", type=float, default=5, help="replica poll interval (default 5 ms)")
    ap.add_argument("--drain-seconds", type=float, default=30, help="wait this long for the last rows (default 30)")
    ap.add_argument("--skip-reference", action="store_true", help="skip the 0 ms reference run")
    ap.add_argument("--skip-native", action="store_true", help="skip native MariaDB replication at the RTT")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args(argv)
    # lag_phase reads these names
    args.lag_seconds, args.lag_conns = args.seconds, args.conns
    rates = [int(x) for x in args.rates.split(",") if x.strip()]
    command = command_line("remote_region.py")
    sigterm_as_interrupt()
    warnings.filterwarnings("ignore", message=".*database doesn't exist")

    from dbmux.core.dsn import Dsn
    from dbmux.stack.layout import Layout, kafka_replication
    from dbmux.stack.toxiproxy import add_proxy, proxy_latency, remove_proxy, set_latency

    try:
        env = stack_env()
    except Prereq as exc:
        print(f"remote_region: {exc}", file=sys.stderr)
        return 2
    layout = Layout.load(stack_dir())
    if not layout.kafka_remote_port:
        print(f"remote_region: the stack in {layout.root} has no remote listener; start a stack with one:\n"
              f"    .venv/bin/dbmux stack up --dir DIR --kafka-remote-port 19100 (plus free ports)", file=sys.stderr)
        return 2
    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    replica, replica2 = (Dsn.parse(u) for u in env["DBMUX_REPLICA_URLS"].split(",")[:2])
    bootstrap, remote = env["DBMUX_KAFKA"], env["DBMUX_KAFKA_REMOTE"]
    meta = run_meta()
    meta["brokers"] = layout.kafka_brokers
    meta["replication"] = "{} / {}".format(*kafka_replication(layout.kafka_brokers))
    workroot = Path(tempfile.mkdtemp(prefix="dbmux-remote-"))
    names: dict = {"targets": [], "topics": []}
    runs: list[Run] = []
    interrupted = failed = False
    native_on = False
    api = layout.toxiproxy_port
    print(f"workdir {workroot}", flush=True)
    try:
        meta["primary_version"] = mysql_version(primary)
        plan = [("dbmux", a) for a in ([] if args.skip_reference else [0]) + [args.rtt_ms]]
        plan += [] if args.skip_native else [("native", args.rtt_ms)]
        for how, added in plan:
            workdir = workroot / f"{how}-{added}"
            workdir.mkdir()
            procs: list[Proc] = []
            native = None
            if how == "native":
                port = free_port()
                asyncio.run(add_proxy(api, NATIVE_PROXY, f"127.0.0.1:{port}", f"127.0.0.1:{primary.port}"))
                asyncio.run(proxy_latency(api, NATIVE_PROXY, added // 2))
                rtt = asyncio.run(measured_mysql_rtt_ms(primary, port))
                native, native_on = native_starter(replica2, primary, port), True
            else:
                asyncio.run(set_latency(layout, added // 2))
                rtt = asyncio.run(measured_rtt_ms(remote))
            print(f"remote: {how}, {added} ms added, measured RTT {rtt:.1f} ms", flush=True)
            try:
                results, ing_log, rep_log = lag_phase(
                    args, workdir, bootstrap, primary, replica2 if native else replica,
                    f"dbmux.bench{secrets.token_hex(4)}.txn", meta, procs, names, rates,
                    replicator_bootstrap=remote, native=native, replication=kafka_replication(layout.kafka_brokers))
            finally:
                stop_all(procs)
            runs.append((how, added, rtt, results, ing_log, rep_log))
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; cleaning up", file=sys.stderr)
    except BenchError as exc:
        print(f"remote_region: {exc}", file=sys.stderr)
        failed = True
    finally:
        asyncio.run(set_latency(layout, 0))
        asyncio.run(remove_proxy(api, NATIVE_PROXY))
        if native_on:
            native_stop(replica2)
        for note in cleanup(names, bootstrap, primary, replica, None):  # no apply phase: no PostgreSQL
            print(f"  ({note})", file=sys.stderr)
        if failed or any(r[4] or r[5] for r in runs):
            print(f"kept {workroot} (configs, ingress and replicator logs)", file=sys.stderr)
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    if interrupted:
        return 130
    if failed:
        return 1
    meta["load_end"] = loadavg()
    return publish_report(build_report(args, meta, runs, command), no_results=args.no_results, section=SECTION,
                          marker="## bench/remote_region.py")


if __name__ == "__main__":
    sys.exit(main())
