"""Phase 2 of bench/replicator_bench.py, end-to-end lag: a paced writer through ``dbmux ingress``,
a reader polling MariaDB replica 1 fed by ``dbmux replicate``."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.cpu import cpu_per_wall
from harness.environment import free_port
from harness.errors import BenchError
from harness.logs import ingress_problems, replicator_problems
from harness.pipeline import env_without_dbmux, ingress_env, start_ingress, start_replicator, write_config
from harness.processes import Proc, wait_mysql_greeting
from harness.sql import mysql_exec

LAG_DB = "bench_lag"
LAG_GOAL_MS = 250.0  # p99 at 500 txn/s
LAG_GOAL_RATE = 500


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


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
              procs: list[Proc], names: dict, rates: list[int], replicator_bootstrap: str = "",
              native: Callable[[], None] | None = None,
              replication: tuple[int, int] = (1, 1)) -> tuple[list[LagResult], str, str]:
    """``replicator_bootstrap``: the brokers as the replicator reaches them (default: ``bootstrap``, as the
    ingress does), e.g. through a latency proxy for a replicator in another region. ``replication``: the
    topic's (replication factor, min.insync.replicas). ``native``: instead of
    ``dbmux replicate``, the replica's own replication, which ``native()`` starts once the table exists (the
    ingress still carries the writes: the same write path for both)."""
    print(f"lag: creating {LAG_DB}.lag on the primary and replica {replica.port}", flush=True)
    names["lag_created"] = True
    ddl = f"CREATE TABLE {LAG_DB}.lag (id BIGINT NOT NULL PRIMARY KEY, t_commit_ns BIGINT NOT NULL) ENGINE=InnoDB"
    for dsn in (primary, replica):
        asyncio.run(mysql_exec(dsn, f"DROP DATABASE IF EXISTS {LAG_DB}", f"CREATE DATABASE {LAG_DB}", ddl))
    port = free_port()
    names["topics"].append(topic)
    cfg = workdir / "lag.toml"
    target = f"bench_lag_{secrets.token_hex(3)}"
    write_config(cfg, bootstrap=bootstrap, topic=topic, primary_url=primary.url(), targets={target: replica.url()},
                 ingress_listen=f"127.0.0.1:{port}", replication=replication)
    ing = start_ingress(workdir, cfg, ingress_env(port, topic, base=env_without_dbmux()))
    procs.append(ing)
    wait_mysql_greeting(port, ing, timeout=60)
    rep: Proc | None = None
    if native is not None:
        native()
        print(f"lag: ingress on 127.0.0.1:{port}, the replica's own replication, topic {topic}", flush=True)
    else:
        names["targets"].append((target, replica))
        rep_cfg = cfg
        if replicator_bootstrap and replicator_bootstrap != bootstrap:
            rep_cfg = workdir / "lag-replicator.toml"
            write_config(rep_cfg, bootstrap=replicator_bootstrap, topic=topic, primary_url=primary.url(),
                         targets={target: replica.url()}, ingress_listen=f"127.0.0.1:{port}",
                         replication=replication)
        rep = start_replicator(workdir, rep_cfg, target)
        procs.append(rep)
        print(f"lag: ingress on 127.0.0.1:{port}, replicator target {target}, topic {topic}", flush=True)
    # warm-up: a few transactions through the whole pipeline (also waits for the replicator to be ready)
    warm = asyncio.run(lag_run(port, replica, primary, 50, 2, 4, args.poll_ms, 0, drain_s=60))
    print(f"lag: warm-up {warm.committed} txns, {len(warm.lags_send_ms)} seen on the replica "
          f"(p50 {pct(warm.lags_send_ms, 50):.0f} ms)", flush=True)
    results = []
    watched = [ing] + ([rep] if rep is not None else [])
    for n, rate in enumerate(rates, start=1):
        for p in watched:
            if not p.alive():
                raise BenchError(f"{p.name} died (exit {p.p.returncode}); log tail:\n{p.tail()}")
        cpu0, t_0 = [p.cpu_seconds() for p in watched], time.monotonic()
        own0 = sum(os.times()[:2])
        r = asyncio.run(lag_run(port, replica, primary, rate, args.lag_seconds, args.lag_conns, args.poll_ms,
                                n * 10_000_000, drain_s=args.drain_seconds))
        cpu1, t_1 = [p.cpu_seconds() for p in watched], time.monotonic()
        r.bench_cpu = cpu_per_wall(own0, sum(os.times()[:2]), t_1 - t_0)
        r.ingress_cpu = cpu_per_wall(cpu0[0], cpu1[0], t_1 - t_0)
        if rep is not None:
            r.replicator_cpu = cpu_per_wall(cpu0[1], cpu1[1], t_1 - t_0)
        results.append(r)
        print(f"lag @ {rate}/s: achieved {r.achieved:,.0f} txn/s ({r.committed} committed, {r.errors} errors), "
              f"lag from send p50 {pct(r.lags_send_ms, 50):.1f} ms p99 {pct(r.lags_send_ms, 99):.1f} ms "
              f"max {max(r.lags_send_ms or [float('nan')]):.1f} ms, unseen {r.unseen}"
              + (" STALLED" if r.stalled else ""), flush=True)
    return results, ingress_problems(ing.log_path), replicator_problems(rep.log_path) if rep is not None else ""
