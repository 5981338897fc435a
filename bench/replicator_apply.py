"""Phase 1 of bench/replicator_bench.py, apply throughput: the same rows loaded raw into MariaDB
replica 1 and PostgreSQL shard a, then applied by the real replicator from row-form change events."""

from __future__ import annotations

import asyncio
import random
import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path

from harness.cpu import cpu_per_wall
from harness.logs import replicator_problems
from harness.pipeline import start_replicator, write_config
from harness.processes import Proc
from harness.sql import mysql_exec, pg_exec

APPLY_DB = "bench_apply"
APPLY_GOAL = 0.7  # replicator rows/s >= 0.7x the raw load


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


async def produce_events(bootstrap: str, topic: str, rows, per_event: int) -> tuple[int, float]:
    from aiokafka import AIOKafkaProducer

    from dbmux.core.codec import encode_event
    from dbmux.core.config import KafkaConfig
    from dbmux.core.events import ChangeEvent, RowChange
    from dbmux.core.gtid import Gtid
    from dbmux.core.kafka_topics import ensure_topic
    from dbmux.core.topics import partition_key

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
# raw loads and the replicator

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
            res.cpu = cpu_per_wall(cpu0, proc.cpu_seconds(), res.rep_total_s)
            proc.stop()
            procs.remove(proc)
        res.ok = not res.error and res.rep_rows == args.rows
        res.log = replicator_problems(proc.log_path)
        print(f"apply[{kind}]: replicator {res.rep_rows} rows, first visible after {res.rep_first_s:.2f}s "
              f"({res.rep_first_rows} rows), all after {res.rep_total_s:.2f}s: {res.total_rps:,.0f} rows/s "
              f"incl. start-up, {res.steady_rps:,.0f} rows/s steady"
              + (f"; ERROR {res.error}" if res.error else ""), flush=True)
        if res.error:
            print("  replicator log tail:\n  " + proc.tail(20).replace("\n", "\n  "), flush=True)
    return results
