"""The PostgreSQL rows of ``bench/catchup.py``: a plain PostgreSQL target and a shard target catching up
the same backlog (issue 14 #3, #4).

The backlog is built from nothing through the ingress (``CREATE DATABASE``, ``sysbench prepare`` and
the ``oltp_write_only`` run, with ``dbmux binlog`` running), so a target replays the whole topic from
its beginning: tables created, bulk-loaded, then the OLTP transactions. Rounds, each on a schema
dropped first and a new target name: ``pg`` -- PostgreSQL shard server A as a plain target (every row);
``shard`` -- shard server B as shard ``b`` of a two-shard map (``primary_key`` rule; its half of the
rows). Timed from the replicator's process start until its stored GTID reaches the backlog's last; each
round ends with ``dbmux verify --target`` passing (the shard: its part).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import asyncpg
from harness.environment import free_port
from harness.errors import BenchError
from harness.pipeline import config_head, dbmux_argv, env_without_dbmux, start_replicator
from harness.processes import Proc, stop_all
from self_verify_cost import start_producers, wait_published
from sysbench_runner import Result, parse_sysbench, run_sysbench
from up_backlog import _gtid_pos, _sb, _sql

from dbmux.core.dsn import Dsn

PG_DB = "sbtest_cupg"


def _config(path: Path, env: dict[str, str], topic: str, port: int, targets: str) -> None:
    path.write_text(config_head(env, topic) + f'tls = "disabled"\n\n[ingress]\nlisten = "127.0.0.1:{port}"\n'
                    f'durability = "async"\n\n[replicator]\non_error = "halt"\n\n[shardmap]\nshards = ["a", "b"]\n'
                    f'default_rule = "primary_key"\n\n{targets}')


def build_pg_backlog(args, env: dict[str, str], work: Path, topic: str, primary: Dsn) -> int:
    """The backlog from nothing, through the ingress; returns its last GTID seq (domain 0)."""
    _sql(primary, f"DROP DATABASE IF EXISTS {PG_DB}")
    port = free_port()
    cfg = work / "pg-backlog.toml"
    _config(cfg, env, topic, port, "")
    procs: list[Proc] = []
    try:
        start_producers(procs, cfg, work, port, prefix="pg-")
        via = Dsn("mysql", "127.0.0.1", port, primary.user, primary.password)
        _sql(via, f"CREATE DATABASE {PG_DB}")
        for command, threads, events in (("prepare", 2, 0), ("run", args.threads, args.txns)):
            argv = [a.replace("--mysql-db=sbtest_up", f"--mysql-db={PG_DB}")
                    for a in _sb("oltp_write_only", port, primary, args, "auto", 0, threads, command, events=events)]
            rc, out = run_sysbench(argv, timeout=3600)
            if command == "run" and not parse_sysbench(out, Result("oltp_write_only", "ingress", "auto", rc=rc)).ok:
                raise BenchError(f"sysbench run through the ingress failed (exit {rc}):\n{out[-3000:]}")
            if rc != 0:
                raise BenchError(f"sysbench {command} through the ingress failed (exit {rc}):\n{out[-3000:]}")
        last = wait_published(env["DBMUX_KAFKA"], topic)
    finally:
        stop_all(procs)
    end = _gtid_pos(primary)["0"]
    print(f"pg backlog: {args.txns:,} transactions after a prepare, {last:,} events on {topic}, primary at 0-x-{end}",
          flush=True)
    return end


async def _pg(dsn: Dsn, sql: str, *args) -> list:
    conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                 database=dsn.database or "postgres")
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def _applied(dsn: Dsn, target: str, topic: str) -> int:
    try:
        rows = asyncio.run(_pg(dsn, "SELECT seq FROM dbmux_meta.gtids WHERE target = $1 AND topic = $2 AND "
                                    "domain_id = '0'", target, topic))
    except Exception:  # noqa: BLE001 - dbmux_meta not created yet
        return -1
    return int(rows[0][0]) if rows else -1


def pg_round(kind: str, name: str, env: dict[str, str], work: Path, topic: str, dsn: Dsn, end: int) -> float:
    """One catch-up of the whole topic into ``dsn`` as a plain (``pg``) or shard (``shard``) target."""
    asyncio.run(_pg(dsn, f'DROP SCHEMA IF EXISTS "{PG_DB}" CASCADE'))
    cfg = work / f"{name}.toml"
    extra = 'shard = "b"\n' if kind == "shard" else ""
    _config(cfg, env, topic, free_port(), f'[targets.{name}]\nurl = "{dsn.url()}"\ntables = ["{PG_DB}.*"]\n{extra}')
    t0 = time.monotonic()
    proc = start_replicator(work, cfg, name)
    try:
        while _applied(dsn, name, topic) < end:
            if not proc.alive():
                raise BenchError(f"replicator {name} exited:\n{proc.tail()}")
            if time.monotonic() - t0 > 1800:
                raise BenchError(f"replicator {name} did not catch up in 30 min")
            time.sleep(0.05)
        took = time.monotonic() - t0
    finally:
        proc.stop(30)
    res = subprocess.run(dbmux_argv("verify", "-c", str(cfg), "--target", name, "--wait", "60"), capture_output=True,
                         text=True, env=env_without_dbmux({}), timeout=600)
    if res.returncode != 0:
        raise BenchError(f"round {name} ({kind}): dbmux verify failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    print(f"round {kind}: {took:.2f} s", flush=True)
    return took
