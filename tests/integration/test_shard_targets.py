"""Shard targets: sysbench writes through the ingress; two PostgreSQL shard targets together hold exactly
the primary's rows, each row on exactly one shard -- the one `dbmux shardmap locate` names -- and
`dbmux verify` passes in owned mode; then a third shard is added online (`dbmux reshard`) while the
workload runs, and the property holds for three shards with only the planned keys moved."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from dbmux.core.config import load_config
from dbmux.core.dsn import Dsn
from dbmux.replicator.shard_target import current_map

from .conftest import pipeline_config, run_dbmux, start_binlog_reader, start_ingress, stop_ingress, stop_processes
from .test_backfill import _applied_mysql, _applied_pg, _wait_caught_up
from .test_pipeline_sysbench_kill import _sysbench, prepare_sysbench
from .test_replicator_mysql import _conn, _start_replicator

TABLES = 2


def _config(tmp: Path, stack, topic: str, db: str, shards: dict[str, Dsn]) -> Path:
    names = [n for n in shards if not n.endswith("c")]  # the third shard joins later, by dbmux reshard
    return pipeline_config(tmp / "shards.toml", stack, topic, shards, tables=f"{db}.*", shard="{name}",
                           extra="[shardmap]\nshards = [" + ", ".join(f'"{n}"' for n in names) + "]\n")


def two_shards(stack, tmp: Path, prefix: str) -> tuple[str, dict[str, Dsn], str, Path, dict[str, Path]]:
    """A database name, both PostgreSQL shards as targets (shard history dropped first), their own
    topic, the config, and a log path per process (binlog and each shard): for one test's pipeline."""
    tag = uuid.uuid4().hex[:8]
    db = f"{prefix}_{tag}"
    shards = {f"{prefix}{tag}a": stack.shards[0], f"{prefix}{tag}b": stack.shards[1]}
    _drop_history(stack.primary, list(shards.values()))
    topic = f"dbmux.{prefix}{tag}.txn"
    logs = {"binlog": tmp / "binlog.log", **{n: tmp / f"{n}.log" for n in shards}}
    return db, shards, topic, _config(tmp, stack, topic, db, shards), logs


@contextlib.contextmanager
def shard_pipeline(stack, tmp: Path, prefix: str) -> Iterator[tuple[str, dict[str, Dsn], Path, dict[str, Path], Any]]:
    """:func:`two_shards` running: the binlog reader, a replicator per shard and an ingress on their topic.
    Yields (database, shards, config, logs, ingress); afterwards all stopped, the database and this
    test's map history dropped."""
    db, shards, topic, cfg, logs = two_shards(stack, tmp, prefix)
    procs = [start_binlog_reader(cfg, logs["binlog"])]
    procs += [_start_replicator(cfg, n, logs[n]) for n in shards]
    ing = start_ingress(stack, tmp, DBMUX_KAFKA_TOPIC=topic)
    try:
        yield db, shards, cfg, logs, ing
    finally:
        stop_ingress(ing)
        stop_processes(procs)
        c = _conn(stack.primary)
        with c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        c.close()
        _drop_history(stack.primary, list(shards.values()))


async def _pg_keys(dsn: Dsn, db: str, table: str) -> set[int]:
    if dsn.kind == "mysql":
        c = _conn(dsn)
        try:
            with c.cursor() as cur:
                cur.execute(f"SELECT id FROM `{db}`.`{table}`")
                return {r[0] for r in cur.fetchall()}
        except Exception:  # noqa: BLE001 - not created there (yet)
            return set()
        finally:
            c.close()
    conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                 database=dsn.database)
    try:
        return {r[0] for r in await conn.fetch(f'SELECT id FROM "{db}"."{table}"')}
    except asyncpg.UndefinedTableError:
        return set()
    finally:
        await conn.close()


def _primary_keys(primary: Dsn, db: str, table: str) -> set[int]:
    c = _conn(primary)
    with c.cursor() as cur:
        cur.execute(f"SELECT id FROM {db}.{table}")
        out = {r[0] for r in cur.fetchall()}
    c.close()
    return out


def _assert_partitioned(stack, cfg: Path, db: str, shards: dict[str, Dsn]) -> dict[str, dict[str, set[int]]]:
    """Each row on exactly one shard, the one the newest map (and `dbmux shardmap locate`) names."""
    config = load_config(str(cfg))
    shard_map = asyncio.run(current_map(config))
    held: dict[str, dict[str, set[int]]] = {}
    for i in range(1, TABLES + 1):
        table = f"sbtest{i}"
        primary = _primary_keys(stack.primary, db, table)
        on = {name: asyncio.run(_pg_keys(dsn, db, table)) for name, dsn in shards.items()}
        names = list(on)
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                assert not on[names[a]] & on[names[b]], f"{table}: rows on both {names[a]} and {names[b]}"
        assert set().union(*on.values()) == primary, f"{table}: the shards' union differs from the primary"
        for name, keys in on.items():
            wrong = [k for k in keys if shard_map.locate(db, table, (k,)) != name]
            assert not wrong, f"{table}: {len(wrong)} rows on {name} belong elsewhere, e.g. {wrong[:5]}"
            held.setdefault(name, {})[table] = keys
        for name, keys in on.items():  # the CLI agrees, for a few keys of each shard
            for k in sorted(keys)[:3]:
                out = run_dbmux("shardmap", "locate", "-c", str(cfg), f"{db}.{table}", str(k))
                assert out.stdout.strip() == name, (k, out.stdout, out.stderr)
    for name in shards:
        if name in held:
            res = run_dbmux("verify", "-c", str(cfg), "--target", name, check=False)
            assert res.returncode == 0 and "[shard, owned]" in res.stdout, res.stdout + res.stderr
    return held


def _drop_history(primary: Dsn, shards: list[Dsn]) -> None:
    """The map history lives on the primary (one per source cluster) and on every shard (a reference
    table): this test's is its own."""
    c = _conn(primary)
    with c.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS dbmux_shardmap")
    c.close()

    async def drop(dsn: Dsn) -> None:
        conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                     database=dsn.database)
        try:
            await conn.execute("DROP SCHEMA IF EXISTS dbmux_shardmap CASCADE")
        finally:
            await conn.close()

    for dsn in shards:
        asyncio.run(drop(dsn))


def test_sysbench_into_two_pg_shards_then_a_third_added_online(stack, tmp_path):
    db = f"shd_{uuid.uuid4().hex[:8]}"
    uid = uuid.uuid4().hex[:5]
    # the third shard is a second database on the first PostgreSQL server
    third = Dsn.parse(stack.shards[0].url().rsplit("/", 1)[0] + "/postgres")
    shards = {f"s{uid}a": stack.shards[0], f"s{uid}b": stack.shards[1], f"s{uid}c": third}
    _drop_history(stack.primary, list(shards.values()))
    ing = start_ingress(stack, tmp_path)
    cfg = _config(tmp_path, stack, ing.topic, db, shards)
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    run = None
    try:
        via = ing.dsn(stack.primary)
        prepare_sysbench(via, db)
        two = [n for n in shards if not n.endswith("c")]
        for name in two:
            procs.append(_start_replicator(cfg, name, tmp_path / f"replicator-{name}.log"))
        run = _sysbench(via, db, "--threads=3", "--time=10", "--report-interval=0", "run")
        assert run.wait(120) == 0, run.stdout.read()
        for name in two:
            _wait_caught_up(stack.primary, lambda n=name: _applied_pg(shards[n], n))
        before = _assert_partitioned(stack, cfg, db, {n: shards[n] for n in two})
        assert all(before[n]["sbtest1"] for n in two), "a shard got no rows: placement is broken"
        v1 = asyncio.run(current_map(load_config(str(cfg))))

        # a third shard, added while the workload runs
        new = [n for n in shards if n.endswith("c")][0]
        run = _sysbench(via, db, "--threads=3", "--time=25", "--report-interval=0", "run")
        time.sleep(3.0)
        out = run_dbmux("-v", "reshard", "-c", str(cfg), "--add-shard", new, "--chunk-rows", "500", "--no-progress")
        assert "version 2" in out.stdout, out.stdout + out.stderr
        procs.append(_start_replicator(cfg, new, tmp_path / f"replicator-{new}.log"))
        assert run.wait(120) == 0, run.stdout.read()
        for name in shards:
            _wait_caught_up(stack.primary, lambda n=name: _applied_pg(shards[n], n))
        after = _assert_partitioned(stack, cfg, db, shards)
        from dbmux.shardmap.plan import plan_add_shard

        plan = plan_add_shard(v1, new)
        for table in ("sbtest1", "sbtest2"):
            for name in two:  # an old shard keeps only keys it owned before: nothing moved between them
                assert all(v1.locate(db, table, (k,)) == name for k in after[name][table])
            moved = after[new][table]
            assert all(plan.move(db, table, (k,)) is not None for k in moved)  # only the planned keys
            total = sum(len(after[n][table]) for n in shards)
            assert 0.2 < len(moved) / total < 0.45, (len(moved), total)  # about 1/3
        c = _conn(stack.primary)
        with c.cursor() as cur:
            cur.execute("SELECT version, note FROM dbmux_shardmap.versions ORDER BY version")
            history = cur.fetchall()
        c.close()
        assert [v for v, _ in history][-2:] == [1, 2] and new in history[-1][1]
        for p in procs:
            assert p.poll() is None, p.args
    finally:
        stop_processes(procs)
        if run is not None and run.poll() is None:
            run.kill()
        stop_ingress(ing)
        _drop_history(stack.primary, list(shards.values()))


def test_sysbench_into_two_mariadb_shards(stack, tmp_path):
    db = f"shm_{uuid.uuid4().hex[:8]}"
    uid = uuid.uuid4().hex[:5]
    shards = {f"m{uid}a": stack.replicas[0], f"m{uid}b": stack.replicas[1]}
    c = _conn(stack.primary)
    with c.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS dbmux_shardmap")
    c.close()
    for dsn in shards.values():
        c = _conn(dsn)
        with c.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS dbmux_shardmap")
        c.close()
    ing = start_ingress(stack, tmp_path)
    cfg = _config(tmp_path, stack, ing.topic, db, shards)
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    try:
        via = ing.dsn(stack.primary)
        prepare_sysbench(via, db)
        for name in shards:
            procs.append(_start_replicator(cfg, name, tmp_path / f"replicator-{name}.log"))
        run = _sysbench(via, db, "--threads=3", "--time=8", "--report-interval=0", "run")
        assert run.wait(120) == 0, run.stdout.read()
        for name, dsn in shards.items():
            _wait_caught_up(stack.primary, lambda n=name, d=dsn: _applied_mysql(d, n))
        held = _assert_partitioned(stack, cfg, db, shards)
        assert all(held[n]["sbtest1"] for n in shards)
        for p in procs:
            assert p.poll() is None, p.args
    finally:
        stop_processes(procs)
        stop_ingress(ing)
