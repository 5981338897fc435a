"""Self-verification on a PostgreSQL target (issue 20 deliver #6: every transaction applied from its
statements is checked against its row copy). The binlog reader is paused while the ingress writes, so
the target applies each transaction from its statements first; the row copies follow and are compared
with what the target holds. Equal rows pass (counted); a row changed on the target behind dbmux's back
before its row copy arrives halts the target, naming the GTID, table and key (so the check can fail)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator

import asyncpg

from .conftest import (
    free_port,
    pipeline_config,
    start_binlog_reader,
    start_ingress,
    stop_pipeline,
    stop_processes,
)
from .test_replicator_mysql import _conn, _start_replicator
from .test_statement_safety import _primary_position


async def _pg(dsn, sql: str, *args):
    conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                 database=dsn.database)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def _state(dsn, target: str, topic: str) -> tuple[int, str | None, str | None]:
    """(applied seq of domain 0, status, detail) of a PostgreSQL target."""
    try:
        seq = asyncio.run(_pg(dsn, "SELECT seq FROM dbmux_meta.gtids WHERE target = $1 AND topic = $2 AND "
                                   "domain_id = '0'", target, topic))
        status = asyncio.run(_pg(dsn, "SELECT state, detail FROM dbmux_meta.status WHERE target = $1", target))
    except asyncpg.UndefinedTableError:
        return -1, None, None
    state, detail = (status[0][0], status[0][1]) if status else (None, None)
    return (int(seq[0][0]) if seq else -1), state, detail


def _metric(port: int, name: str, target: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = re.search(rf'^{name}\{{target="{target}"\}} (\S+)$', body, re.M)
    return float(found[1]) if found else 0.0


def _until(what: str, check, log, timeout_s: float = 90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(0.2)
    raise AssertionError(f"not {what} within {timeout_s}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def _statement_applied(stack, tmp_path, *, tamper: bool) -> Iterator[tuple[str, str, object, int, str]]:
    """A PostgreSQL target that applied three transactions from their statements (binlog reader paused;
    with ``tamper``, a row then changed on the target); the row copies published once this yields.
    Yields (database, target, log, metrics port, topic)."""
    db, target, pg, port = f"pgsv_{uuid.uuid4().hex[:8]}", f"pgsv{uuid.uuid4().hex[:6]}", stack.shards[0], free_port()
    topic = f"dbmux.pgsv{uuid.uuid4().hex[:10]}.txn"
    cfg = pipeline_config(tmp_path / "pgsv.toml", stack, topic, {target: pg}, tables=f"{db}.*",
                          extra=f'self_verify = "halt"\nmetrics_port = {port}')
    log = tmp_path / f"{target}.log"
    reader = start_binlog_reader(cfg, tmp_path / "binlog.log")
    procs, ing = [reader], None
    try:
        d = _conn(stack.primary)  # the schema first, so the ingress knows it (an unknown table's writes are
        with d.cursor() as cur:  # unsafe: applied from the row copy, never checked)
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20), n DECIMAL(8, 2), "
                        f"at DATETIME(6), b VARBINARY(8))")
        d.close()
        ing = start_ingress(stack, tmp_path, DBMUX_KAFKA_TOPIC=topic)
        procs.append(_start_replicator(cfg, target, log))
        created = _primary_position(stack.primary)
        _until("the table created", lambda: _state(pg, target, topic)[0] >= created, log)
        reader.send_signal(signal.SIGSTOP)  # the ingress's copies first: applied from their statements
        try:
            c = _conn(ing.dsn(stack.primary))
            with c.cursor() as cur:
                cur.execute(f"INSERT INTO {db}.t VALUES (1, 'one', 1.50, '2026-12-06 10:11:12.123456', x'00ff'),"
                            f" (2, 'two', 2.25, NULL, NULL), (3, 'three', 3.00, NULL, x'')")
                cur.execute(f"UPDATE {db}.t SET v = CONCAT(v, '!'), n = n * 2 WHERE id IN (1, 2)")
                cur.execute(f"DELETE FROM {db}.t WHERE id = 3")
            c.commit()
            c.close()
            end = _primary_position(stack.primary)
            _until("applied from statements", lambda: _state(pg, target, topic)[0] >= end, log)
            if tamper:  # behind dbmux's back, before the row copies arrive
                asyncio.run(_pg(pg, f'UPDATE "{db}"."t" SET v = $1 WHERE id = 2', "changed"))
        finally:
            reader.send_signal(signal.SIGCONT)
        yield db, target, log, port, topic
    finally:
        stop_pipeline(stack.primary, procs, ing, db)
        asyncio.run(_pg(pg, f'DROP SCHEMA IF EXISTS "{db}" CASCADE'))


def test_statement_applied_transactions_on_postgresql_are_checked_equal(stack, tmp_path):
    with _statement_applied(stack, tmp_path, tamper=False) as (db, target, log, port, topic):
        _until("self-verified", lambda: _metric(port, "dbmux_replicator_self_verified_total", target) >= 3, log)
        assert _metric(port, "dbmux_replicator_self_verify_mismatches_total", target) == 0
        rows = asyncio.run(_pg(stack.shards[0], f'SELECT id, v, n, at, b FROM "{db}"."t" ORDER BY id'))
        assert [tuple(r)[:3] for r in rows] == [(1, "one!", 3), (2, "two!", 4.5)]
        assert _state(stack.shards[0], target, topic)[1] != "halted" and "HALTED" not in log.read_text()


def test_a_row_changed_on_postgresql_before_its_row_copy_halts_the_target(stack, tmp_path):
    with _statement_applied(stack, tmp_path, tamper=True) as (db, target, log, _, topic):
        _, state, detail = _until("halted", lambda: (s := _state(stack.shards[0], target, topic))[1] == "halted"
                                  and s, log)
        assert re.search(rf"self-verification: gtid 0-\d+-\d+ table {db}\.t key \(id=2\): the target's row differs "
                         "from the row copy", detail or ""), detail


def test_each_postgresql_shard_checks_its_own_part(stack, tmp_path):
    """Shard targets too: each shard compares the rows its part of a row copy holds. A row changed on one
    shard behind dbmux's back halts that shard, naming the key; the other shard's checks pass."""
    from .test_shard_targets import _drop_history, two_shards

    db, shards, topic, cfg, logs = two_shards(stack, tmp_path, "svs")
    reader = start_binlog_reader(cfg, logs["binlog"])
    procs, ing = [reader], None
    try:
        d = _conn(stack.primary)  # the schema first, so the ingress knows it
        with d.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
        d.close()
        procs += [_start_replicator(cfg, n, logs[n]) for n in shards]
        created = _primary_position(stack.primary)
        for n, dsn in shards.items():
            _until(f"{n} created the table", lambda n=n, dsn=dsn: _state(dsn, n, topic)[0] >= created, logs[n])
        ing = start_ingress(stack, tmp_path, DBMUX_KAFKA_TOPIC=topic)
        reader.send_signal(signal.SIGSTOP)  # the ingress's copies first: applied from their statements
        try:
            c = _conn(ing.dsn(stack.primary))
            with c.cursor() as cur:
                cur.execute(f"INSERT INTO {db}.t VALUES " + ", ".join(f"({i}, 'v{i}')" for i in range(1, 9)))
            c.commit()
            with c.cursor() as cur:
                cur.execute(f"UPDATE {db}.t SET v = 'two' WHERE id = 2")
            c.commit()
            c.close()
            end = _primary_position(stack.primary)
            for n, dsn in shards.items():
                _until(f"{n} applied", lambda n=n, dsn=dsn: _state(dsn, n, topic)[0] >= end, logs[n])
            holder = next(n for n, dsn in shards.items()
                          if asyncio.run(_pg(dsn, f'SELECT 1 FROM "{db}"."t" WHERE id = 2')))
            asyncio.run(_pg(shards[holder], f'UPDATE "{db}"."t" SET v = $1 WHERE id = 2', "changed"))
        finally:
            reader.send_signal(signal.SIGCONT)
        other = next(n for n in shards if n != holder)
        _, _, detail = _until("halted", lambda: (s := _state(shards[holder], holder, topic))[1] == "halted" and s,
                              logs[holder])
        assert re.search(rf"self-verification: gtid 0-\d+-\d+ table {db}\.t key \(id=2\): the target's row differs",
                         detail or ""), detail
        stop_processes(procs)
        procs = []
        found = re.search(r"self-verified (\d+) transactions applied from statements, (\d+) differences",
                          logs[other].read_text())
        assert found and int(found[1]) >= 1 and found[2] == "0", logs[other].read_text()[-3000:]
    finally:
        stop_pipeline(stack.primary, procs, ing, db)
        _drop_history(stack.primary, list(shards.values()))
        for dsn in shards.values():
            asyncio.run(_pg(dsn, f'DROP SCHEMA IF EXISTS "{db}" CASCADE'))
