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
   real replicator (``python -m dbmux.cli replicate``, a generated config, a unique target name,
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
import datetime as dt
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import string
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
RESULTS = BENCH_DIR / "RESULTS.md"
for p in (str(REPO), str(BENCH_DIR)):
    if p not in sys.path:
        sys.path.insert(0, p)

from ingress_sysbench import (  # noqa: E402 - shared helpers of the bench scripts
    BenchError, Prereq, Proc, _loadavg, delete_topic, free_port, ingress_problems, machine_info, publish_report,
    stack_env,
    wait_mysql_greeting)

APPLY_DB = "bench_apply"
LAG_DB = "bench_lag"
APPLY_GOAL = 0.7  # replicator rows/s >= 0.7x the raw load
LAG_GOAL_MS = 250.0  # p99 at 500 txn/s
LAG_GOAL_RATE = 500
PY = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable


def _sigterm(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """os.environ without DBMUX_* overrides (they would silently change the generated config), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBMUX_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def write_config(path: Path, *, bootstrap: str, topic: str, primary_url: str, targets: dict[str, str],
                 ingress_listen: str = "127.0.0.1:16033", durability: str = "sync") -> None:
    lines = ['[cluster]', 'name = "bench"', '', '[kafka]', f'bootstrap = "{bootstrap}"', f'topic = "{topic}"', '',
             '[primary]', f'url = "{primary_url}"', '', '[ingress]', f'listen = "{ingress_listen}"',
             f'durability = "{durability}"', '', '[replicator]', 'batch_max_txns = 500', 'gap_alert_ms = 2000',
             'on_error = "halt"', '']
    for name, url in targets.items():
        lines += [f'[targets.{name}]', f'url = "{url}"', 'tables = ["*"]', '']
    path.write_text("\n".join(lines))


def start_replicator(workdir: Path, config: Path, target: str) -> Proc:
    argv = [PY, "-m", "dbmux.cli", "-v", "replicate", "-c", str(config), "--target", target]
    profile_dir = os.environ.get("BENCH_PYSPY_DIR")  # profile the replicator: a py-spy flame graph per target
    if profile_dir:
        argv = [str(Path(PY).parent / "py-spy"), "record", "--nonblocking", "-r", "200", "-o",
                str(Path(profile_dir) / f"replicate-{target}.txt"), "-f", "raw", "--", *argv]
    proc = Proc(f"replicator[{target}]", argv, workdir / f"replicate-{target}.log", env=clean_env({}))
    if profile_dir:
        proc.stop_signal = signal.SIGINT  # py-spy writes its profile on SIGINT (and stops the replicator)
    return proc


_BAD = re.compile(r"Traceback|\bERROR\b|\bWARNING\b|HALTED|gap", re.I)


def log_problems(proc: Proc, limit: int = 40) -> str:
    try:
        lines = proc.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    bad = [ln for ln in lines if _BAD.search(ln)]
    if not bad:
        return ""
    out = bad[:limit]
    if len(bad) > limit:
        out.append(f"... ({len(bad)} matching lines, full log {proc.log_path})")
    return "\n".join(out)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


# --------------------------------------------------------------------------------------------------
# data

def make_rows(n: int, seed: int = 42) -> list[tuple[int, int, str, str]]:
    rnd = random.Random(seed)
    digits = string.digits

    def chunky(groups: int) -> str:
        return "-".join("".join(rnd.choices(digits, k=11)) for _ in range(groups))

    return [(i, rnd.randint(1, n), chunky(10)[:119], chunky(5)[:59]) for i in range(1, n + 1)]


MYSQL_DDL = ("CREATE TABLE {name} (id BIGINT NOT NULL PRIMARY KEY, k INT NOT NULL DEFAULT 0, "
             "c VARCHAR(120) NOT NULL DEFAULT '', pad VARCHAR(60) NOT NULL DEFAULT '') ENGINE=InnoDB")
PG_DDL = ("CREATE TABLE {name} (id BIGINT NOT NULL PRIMARY KEY, k INT NOT NULL DEFAULT 0, "
          "c VARCHAR(120) NOT NULL DEFAULT '', pad VARCHAR(60) NOT NULL DEFAULT '')")


async def mysql_exec(dsn, *sqls: str) -> None:
    import aiomysql

    conn = await aiomysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                  autocommit=True)
    try:
        async with conn.cursor() as cur:
            for sql in sqls:
                await cur.execute(sql)
    finally:
        conn.close()


async def pg_exec(dsn, *sqls: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                 database=dsn.database or "postgres")
    try:
        for sql in sqls:
            await conn.execute(sql)
    finally:
        await conn.close()


async def produce_events(bootstrap: str, topic: str, rows, per_event: int) -> tuple[int, float]:
    from aiokafka import AIOKafkaProducer

    from dbmux.config import KafkaConfig
    from dbmux.envelope import ChangeEvent, RowChange, encode_event, partition_key
    from dbmux.gtid import Gtid
    from dbmux.kafka_topics import ensure_topic

    await ensure_topic(KafkaConfig(bootstrap=bootstrap), topic)
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                            max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024)
    await prod.start()
    t0 = time.monotonic()
    n = 0
    try:
        futs = []
        ts = int(time.time() * 1000)
        for start in range(0, len(rows), per_event):
            n += 1
            chunk = rows[start:start + per_event]
            ev = ChangeEvent(gtid=Gtid("0", "1", n), source="binlog", ts_ms=ts, db=APPLY_DB, rows=tuple(
                RowChange(table="t", db=APPLY_DB, op="insert", after={"id": r[0], "k": r[1], "c": r[2], "pad": r[3]})
                for r in chunk))
            futs.append(await prod.send(topic, encode_event(ev), key=partition_key(ev)))
        await prod.flush()
        for f in futs:
            await f
    finally:
        await prod.stop()
    return n, time.monotonic() - t0


# --------------------------------------------------------------------------------------------------
# apply throughput

@dataclass
class ApplyResult:
    target: str  # mariadb / postgresql
    rows: int
    raw_s: float = 0.0
    raw_rows: int = 0
    rep_total_s: float = 0.0  # replicator process start -> last row visible
    rep_first_s: float = 0.0  # replicator process start -> first rows visible
    rep_first_rows: int = 0  # rows already visible at that first poll
    rep_rows: int = 0  # rows visible at the end
    ok: bool = False
    error: str = ""
    cpu: float | None = None  # replicator CPU seconds per wall second
    log: str = ""

    @property
    def raw_rps(self) -> float:
        return self.raw_rows / self.raw_s if self.raw_s else 0.0

    @property
    def total_rps(self) -> float:
        return self.rep_rows / self.rep_total_s if self.rep_total_s else 0.0

    @property
    def steady_rps(self) -> float:
        span = self.rep_total_s - self.rep_first_s
        return (self.rep_rows - self.rep_first_rows) / span if span > 0 else 0.0


async def raw_mysql(dsn, rows, batch: int) -> tuple[int, float]:
    import aiomysql

    conn = await aiomysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                  autocommit=False, charset="utf8mb4")
    try:
        t0 = time.monotonic()
        async with conn.cursor() as cur:
            for start in range(0, len(rows), batch):
                vals = ",".join(f"({r[0]},{r[1]},{conn.literal(r[2])},{conn.literal(r[3])})"
                                for r in rows[start:start + batch])
                await cur.execute(f"INSERT INTO {APPLY_DB}.t_raw (id, k, c, pad) VALUES {vals}")
                await conn.commit()
        elapsed = time.monotonic() - t0
        async with conn.cursor() as cur:
            await cur.execute(f"SELECT COUNT(*) FROM {APPLY_DB}.t_raw")
            (count,) = await cur.fetchone()
        await conn.commit()
        return int(count), elapsed
    finally:
        conn.close()


async def raw_pg(dsn, rows) -> tuple[int, float]:
    import asyncpg

    conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                 database=dsn.database or "postgres")
    try:
        t0 = time.monotonic()
        await conn.copy_records_to_table("t_raw", schema_name=APPLY_DB, records=rows, columns=["id", "k", "c", "pad"])
        elapsed = time.monotonic() - t0
        return int(await conn.fetchval(f"SELECT COUNT(*) FROM {APPLY_DB}.t_raw")), elapsed
    finally:
        await conn.close()


class Counter:
    """COUNT(*) of bench_apply.t on a MariaDB or PostgreSQL target, one connection."""

    def __init__(self, dsn) -> None:
        self.dsn = dsn
        self.conn = None

    async def __aenter__(self):
        if self.dsn.kind == "mysql":
            import aiomysql

            self.conn = await aiomysql.connect(host=self.dsn.host, port=self.dsn.port, user=self.dsn.user,
                                               password=self.dsn.password, autocommit=True)
        else:
            import asyncpg

            self.conn = await asyncpg.connect(host=self.dsn.host, port=self.dsn.port, user=self.dsn.user,
                                              password=self.dsn.password, database=self.dsn.database)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.dsn.kind == "mysql":
            self.conn.close()
        else:
            await self.conn.close()

    async def count(self) -> int:
        if self.dsn.kind == "mysql":
            async with self.conn.cursor() as cur:
                await cur.execute(f"SELECT COUNT(*) FROM {APPLY_DB}.t")
                return int((await cur.fetchone())[0])
        return int(await self.conn.fetchval(f"SELECT COUNT(*) FROM {APPLY_DB}.t"))


async def run_replicator_until(proc: Proc, dsn, n_rows: int, timeout: float, poll_s: float = 0.02
                               ) -> tuple[float, float, int, int, str]:
    """(start->last row s, start->first rows s, rows at first sight, rows at end, error)."""
    t0 = proc.t_start
    first_s, first_rows, last = 0.0, 0, 0
    async with Counter(dsn) as c:
        while True:
            n = await c.count()
            now = time.monotonic()
            if n and not first_rows:
                first_s, first_rows = now - t0, n
            last = n
            if n >= n_rows:
                return now - t0, first_s, first_rows, n, ""
            if not proc.alive():
                return now - t0, first_s, first_rows, n, f"replicator exited with {proc.p.returncode}"
            if now - t0 > timeout:
                return now - t0, first_s, first_rows, last, f"timeout after {timeout:.0f}s ({n}/{n_rows} rows)"
            await asyncio.sleep(poll_s)


def apply_phase(args, workdir: Path, bootstrap: str, primary, replica, pg, topic: str, meta: dict,
                procs: list[Proc], names: dict) -> list[ApplyResult]:
    rows = make_rows(args.rows)
    print(f"apply: creating {APPLY_DB}.t on the primary, replica {replica.port} and PostgreSQL {pg.port}",
          flush=True)
    names["apply_created"] = True
    asyncio.run(mysql_exec(primary, f"DROP DATABASE IF EXISTS {APPLY_DB}", f"CREATE DATABASE {APPLY_DB}",
                           MYSQL_DDL.format(name=f"{APPLY_DB}.t")))
    asyncio.run(mysql_exec(replica, f"DROP DATABASE IF EXISTS {APPLY_DB}", f"CREATE DATABASE {APPLY_DB}",
                           MYSQL_DDL.format(name=f"{APPLY_DB}.t"), MYSQL_DDL.format(name=f"{APPLY_DB}.t_raw")))
    asyncio.run(pg_exec(pg, f"DROP SCHEMA IF EXISTS {APPLY_DB} CASCADE", f"CREATE SCHEMA {APPLY_DB}",
                        PG_DDL.format(name=f"{APPLY_DB}.t"), PG_DDL.format(name=f"{APPLY_DB}.t_raw")))
    names["topics"].append(topic)
    n_events, secs = asyncio.run(produce_events(bootstrap, topic, rows, args.rows_per_event))
    meta["apply_events"] = n_events
    print(f"apply: produced {n_events} events ({args.rows} rows) to {topic} in {secs:.1f}s", flush=True)

    results = []
    tag = secrets.token_hex(3)
    for kind, dsn in (("mariadb", replica), ("postgresql", pg)):
        res = ApplyResult(kind, args.rows)
        results.append(res)
        if kind == "mariadb":
            res.raw_rows, res.raw_s = asyncio.run(raw_mysql(dsn, rows, args.raw_batch))
        else:
            res.raw_rows, res.raw_s = asyncio.run(raw_pg(dsn, rows))
        print(f"apply[{kind}]: raw load {res.raw_rows} rows in {res.raw_s:.2f}s = {res.raw_rps:,.0f} rows/s",
              flush=True)
        target = f"bench_{kind[:2]}_{tag}"
        names["targets"].append((target, dsn))
        cfg = workdir / f"apply-{kind}.toml"
        write_config(cfg, bootstrap=bootstrap, topic=topic, primary_url=primary.url(), targets={target: dsn.url()})
        proc = start_replicator(workdir, cfg, target)
        proc.t_start = time.monotonic()
        procs.append(proc)
        cpu0 = proc.cpu_seconds()
        try:
            (res.rep_total_s, res.rep_first_s, res.rep_first_rows, res.rep_rows,
             res.error) = asyncio.run(run_replicator_until(proc, dsn, args.rows, args.apply_timeout))
        finally:
            cpu1 = proc.cpu_seconds()
            if cpu0 is not None and cpu1 is not None and res.rep_total_s:
                res.cpu = (cpu1 - cpu0) / res.rep_total_s
            proc.stop()
            procs.remove(proc)
        res.ok = not res.error and res.rep_rows == args.rows
        res.log = log_problems(proc)
        print(f"apply[{kind}]: replicator {res.rep_rows} rows, first visible after {res.rep_first_s:.2f}s "
              f"({res.rep_first_rows} rows), all after {res.rep_total_s:.2f}s: {res.total_rps:,.0f} rows/s "
              f"incl. start-up, {res.steady_rps:,.0f} rows/s steady"
              + (f"; ERROR {res.error}" if res.error else ""), flush=True)
        if res.error:
            print("  replicator log tail:\n  " + proc.tail(20).replace("\n", "\n  "), flush=True)
    return results


# --------------------------------------------------------------------------------------------------
# end-to-end lag

@dataclass
class LagResult:
    rate: int
    seconds: float
    conns: int
    sent: int = 0
    committed: int = 0
    errors: int = 0
    first_error: str = ""
    write_span_s: float = 0.0
    lags_send_ms: list[float] = field(default_factory=list)
    lags_ok_ms: list[float] = field(default_factory=list)
    commit_ms: list[float] = field(default_factory=list)  # client-side INSERT latency through the ingress
    late_ms: list[float] = field(default_factory=list)  # how late vs the schedule each INSERT was sent
    unseen: int = 0
    stalled: bool = False
    ingress_cpu: float | None = None
    replicator_cpu: float | None = None
    bench_cpu: float | None = None  # this process (writer + reader)

    @property
    def achieved(self) -> float:
        return self.committed / self.write_span_s if self.write_span_s else 0.0


async def lag_run(ingress_port: int, replica, primary, rate: int, seconds: float, conns: int, poll_ms: float,
                  id_base: int, drain_s: float) -> LagResult:
    import aiomysql

    res = LagResult(rate, seconds, conns)
    total = int(rate * seconds)
    send_ns: dict[int, int] = {}
    ok_ns: dict[int, int] = {}
    seen_ns: dict[int, int] = {}
    pool = [await aiomysql.connect(host="127.0.0.1", port=ingress_port, user=primary.user,
                                   password=primary.password, autocommit=True) for _ in range(conns)]
    reader = await aiomysql.connect(host=replica.host, port=replica.port, user=replica.user,
                                    password=replica.password, autocommit=True)
    next_i = 0
    writing_done = asyncio.Event()
    t0 = time.monotonic_ns() + 200_000_000  # first transaction due 200 ms from now
    period_ns = 1e9 / rate
    deadline = t0 + int(seconds * 1e9) + 100_000_000

    async def writer(conn) -> None:
        nonlocal next_i
        async with conn.cursor() as cur:
            while True:
                i = next_i
                if i >= total or time.monotonic_ns() > deadline:  # schedule over: stop even if behind
                    return
                next_i += 1
                due = t0 + int(i * period_ns)
                delay = (due - time.monotonic_ns()) / 1e9
                if delay > 0:
                    await asyncio.sleep(delay)
                rid = id_base + i + 1
                ts = time.monotonic_ns()
                res.late_ms.append(max(0, ts - due) / 1e6)
                send_ns[rid] = ts
                try:
                    await cur.execute(f"INSERT INTO {LAG_DB}.lag (id, t_commit_ns) VALUES (%s, %s)",
                                      (rid, time.time_ns()))
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    res.errors += 1
                    res.first_error = res.first_error or f"{type(exc).__name__}: {exc}"
                    del send_ns[rid]
                    continue
                ok_ns[rid] = time.monotonic_ns()

    async def poller() -> None:
        watermark = id_base  # every id <= watermark has been seen
        last_progress = time.monotonic()
        async with reader.cursor() as cur:
            while True:
                await cur.execute(f"SELECT id FROM {LAG_DB}.lag WHERE id > %s", (watermark,))
                got = await cur.fetchall()
                now = time.monotonic_ns()
                new = 0
                for (rid,) in got:
                    if rid not in seen_ns:
                        seen_ns[rid] = now
                        new += 1
                if new:
                    last_progress = time.monotonic()
                while (watermark + 1) in seen_ns or (writing_done.is_set() and watermark + 1 <= id_base + total
                                                     and (watermark + 1) not in ok_ns):
                    watermark += 1  # failed INSERTs never appear: skipped once writing is done
                if writing_done.is_set():
                    if all(r in seen_ns for r in ok_ns):
                        return
                    if time.monotonic() - drain_started > drain_s:
                        return
                if time.monotonic() - last_progress > 5 and send_ns and not res.stalled:
                    res.stalled = any(r not in seen_ns for r in ok_ns)
                await asyncio.sleep(poll_ms / 1000)

    drain_started = 0.0
    poll_task = asyncio.create_task(poller())
    try:
        await asyncio.gather(*(writer(c) for c in pool))
        drain_started = time.monotonic()
        writing_done.set()
        await poll_task
    finally:
        if not poll_task.done():
            poll_task.cancel()
        for c in pool:
            c.close()
        reader.close()
    res.sent = len(send_ns)
    res.committed = len(ok_ns)
    if ok_ns:
        res.write_span_s = (max(ok_ns.values()) - t0) / 1e9
    for rid, t_ok in ok_ns.items():
        res.commit_ms.append((t_ok - send_ns[rid]) / 1e6)
        seen = seen_ns.get(rid)
        if seen is None:
            res.unseen += 1
            continue
        res.lags_send_ms.append((seen - send_ns[rid]) / 1e6)
        res.lags_ok_ms.append(max(0, seen - t_ok) / 1e6)
    return res


def lag_phase(args, workdir: Path, bootstrap: str, primary, replica, topic: str, meta: dict,
              procs: list[Proc], names: dict, rates: list[int]) -> tuple[list[LagResult], str, str]:
    print(f"lag: creating {LAG_DB}.lag on the primary and replica {replica.port}", flush=True)
    names["lag_created"] = True
    ddl = f"CREATE TABLE {LAG_DB}.lag (id BIGINT NOT NULL PRIMARY KEY, t_commit_ns BIGINT NOT NULL) ENGINE=InnoDB"
    for dsn in (primary, replica):
        asyncio.run(mysql_exec(dsn, f"DROP DATABASE IF EXISTS {LAG_DB}", f"CREATE DATABASE {LAG_DB}", ddl))
    port = free_port()
    target = f"bench_lag_{secrets.token_hex(3)}"
    names["targets"].append((target, replica))
    names["topics"].append(topic)
    cfg = workdir / "lag.toml"
    write_config(cfg, bootstrap=bootstrap, topic=topic, primary_url=primary.url(), targets={target: replica.url()},
                 ingress_listen=f"127.0.0.1:{port}")
    ing = Proc("ingress", [PY, "-m", "dbmux.cli", "-v", "ingress", "-c", str(cfg)], workdir / "ingress.log",
               env=clean_env({"DBMUX_INGRESS_LISTEN": f"127.0.0.1:{port}", "DBMUX_KAFKA_TOPIC": topic}))
    procs.append(ing)
    wait_mysql_greeting(port, ing, timeout=60)
    rep = start_replicator(workdir, cfg, target)
    procs.append(rep)
    print(f"lag: ingress on 127.0.0.1:{port}, replicator target {target}, topic {topic}", flush=True)
    # warm-up: a few transactions through the whole pipeline (also waits for the replicator to be ready)
    warm = asyncio.run(lag_run(port, replica, primary, 50, 2, 4, args.poll_ms, 0, drain_s=60))
    print(f"lag: warm-up {warm.committed} txns, {len(warm.lags_send_ms)} seen on the replica "
          f"(p50 {pct(warm.lags_send_ms, 50):.0f} ms)", flush=True)
    results = []
    for n, rate in enumerate(rates, start=1):
        for p in (ing, rep):
            if not p.alive():
                raise BenchError(f"{p.name} died (exit {p.p.returncode}); log tail:\n{p.tail()}")
        ci0, cr0, t_0 = ing.cpu_seconds(), rep.cpu_seconds(), time.monotonic()
        own0 = sum(os.times()[:2])
        r = asyncio.run(lag_run(port, replica, primary, rate, args.lag_seconds, args.lag_conns, args.poll_ms,
                                n * 10_000_000, drain_s=args.drain_seconds))
        ci1, cr1, t_1 = ing.cpu_seconds(), rep.cpu_seconds(), time.monotonic()
        r.bench_cpu = (sum(os.times()[:2]) - own0) / (t_1 - t_0)
        if None not in (ci0, ci1):
            r.ingress_cpu = (ci1 - ci0) / (t_1 - t_0)
        if None not in (cr0, cr1):
            r.replicator_cpu = (cr1 - cr0) / (t_1 - t_0)
        results.append(r)
        print(f"lag @ {rate}/s: achieved {r.achieved:,.0f} txn/s ({r.committed} committed, {r.errors} errors), "
              f"lag from send p50 {pct(r.lags_send_ms, 50):.1f} ms p99 {pct(r.lags_send_ms, 99):.1f} ms "
              f"max {max(r.lags_send_ms or [float('nan')]):.1f} ms, unseen {r.unseen}"
              + (" STALLED" if r.stalled else ""), flush=True)
    return results, ingress_problems(ing.log_path), log_problems(rep)


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
            attempt(f"{dsn.port} bench_lag", lambda d=dsn: asyncio.run(mysql_exec(d, f"DROP DATABASE IF EXISTS {LAG_DB}")))
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
    lines: list[str] = []
    add = lines.append
    add(f"### {meta['date']} — replicator apply throughput and end-to-end lag")
    add("")
    add(f"- command: `{command}`")
    add(f"- machine: nproc={meta['nproc']}, cpu: {meta['cpu']}, mem {meta['mem']}, kernel {meta['kernel']}, "
        f"python {meta['python']}")
    add(f"- load average (1/5/15 min) at start: {meta.get('load_start', '?')}, at end: {meta.get('load_end', '?')} "
        "(other work on the machine skews absolute numbers and ratios)")
    add(f"- software: primary MariaDB {meta.get('primary_version', '?')}, PostgreSQL {meta.get('pg_version', '?')}; "
        "the whole local stack (Kafka, 3 MariaDB, 2 PostgreSQL) runs on the same machine")
    add("")
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
            verdict = "PASS" if r.ok and ratio_s >= APPLY_GOAL else "MISS"
            if not r.ok:
                verdict += f" ({r.error or 'incomplete'})"
            cpu = f"{r.cpu:.2f}" if r.cpu is not None else "-"
            add(f"| {r.target} | {raw} | {r.raw_rps:,.0f} | {r.steady_rps:,.0f} | {r.total_rps:,.0f} | "
                f"{r.rep_first_s:.2f} s ({r.rep_first_rows:,} rows) | {r.rep_total_s:.2f} s | {cpu} | "
                f"{ratio_s:.2f}x | {ratio_t:.2f}x | >= {APPLY_GOAL:.1f}x | {verdict} |")
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
        add("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
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
                f"{r.unseen} | {r.ingress_cpu or 0:.2f} | {r.replicator_cpu or 0:.2f} | {r.bench_cpu or 0:.2f} | {tgt} | {verdict} |")
        add("")
        add("lag = first poll that returned the row on the replica - the moment the writer sent the INSERT (an "
            "upper bound of commit-on-primary -> visible; includes up to one poll interval). from OK = from the "
            "client's OK instead (durability sync: after Kafka's ack; a lower bound). client commit = INSERT "
            "round trip through the ingress. sent late = how far behind its schedule slot an INSERT was sent "
            "(large values: the rate was not sustained: every writer connection was busy waiting for its OK). achieved = "
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
    for n in notes:
        add(f"- {n}")
    if notes:
        add("")
    return "\n".join(lines)


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

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000, help="rows for the apply benchmark (default 200000)")
    ap.add_argument("--rows-per-event", type=int, default=10, help="row inserts per change event (default 10)")
    ap.add_argument("--raw-batch", type=int, default=1000, help="rows per multi-row INSERT of the raw MariaDB load")
    ap.add_argument("--apply-timeout", type=float, default=300, help="seconds to wait for the replicator per target")
    ap.add_argument("--lag-rates", default="500,2000", help="comma-separated txn/s (default 500,2000)")
    ap.add_argument("--lag-seconds", type=float, default=15, help="seconds per lag rate (default 15)")
    ap.add_argument("--lag-conns", type=int, default=32, help="writer connections through the ingress (default 32)")
    ap.add_argument("--poll-ms", type=float, default=5, help="replica poll interval (default 5 ms)")
    ap.add_argument("--drain-seconds", type=float, default=30, help="wait this long for the last rows (default 30)")
    ap.add_argument("--skip-apply", action="store_true")
    ap.add_argument("--skip-lag", action="store_true")
    ap.add_argument("--no-results", action="store_true", help=f"do not append to {RESULTS.relative_to(REPO)}")
    ap.add_argument("--keep-workdir", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args(argv)
    rates = [int(x) for x in args.lag_rates.split(",") if x.strip()]
    command = ".venv/bin/python bench/replicator_bench.py" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    signal.signal(signal.SIGTERM, _sigterm)
    warnings.filterwarnings("ignore", message=".*database doesn't exist")  # DROP ... IF EXISTS notes
    try:
        env = stack_env()
    except Prereq as exc:
        print(f"replicator_bench: {exc}", file=sys.stderr)
        return 2

    from dbmux.dsn import Dsn

    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    replica = Dsn.parse(env["DBMUX_REPLICA_URLS"].split(",")[0])
    pg = Dsn.parse(env["DBMUX_SHARD_URLS"].split(",")[0])
    bootstrap = env["DBMUX_KAFKA"]
    meta = dict(machine_info())
    meta["date"] = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    meta["load_start"] = _loadavg()
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
        import asyncpg  # noqa: F401
        import pymysql

        c = pymysql.connect(host=primary.host, port=primary.port, user=primary.user, password=primary.password)
        meta["primary_version"] = c.get_server_info().removeprefix("5.5.5-")
        c.close()

        async def pgv() -> str:
            import asyncpg

            conn = await asyncpg.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password,
                                         database=pg.database)
            try:
                return (await conn.fetchval("SHOW server_version")).split()[0]
            finally:
                await conn.close()

        meta["pg_version"] = asyncio.run(pgv())
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
        for p in reversed(procs):
            try:
                p.stop()
            except Exception as exc:  # noqa: BLE001
                print(f"  (stopping {p.name}: {exc})", file=sys.stderr)
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
    meta["load_end"] = _loadavg()
    return publish_report(build_report(args, meta, apply_res, lag_res, ingress_log, rep_log, notes, command),
                          no_results=args.no_results, section=SECTION, marker="## bench/replicator_bench.py")


if __name__ == "__main__":
    sys.exit(main())
