"""An ALTER TABLE that reads the clock reaches the replicas with the primary's time (issue 20 #6:
implicit timestamps). ``ADD COLUMN c DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6)`` fills every existing
row with the time the statement ran at. Before, a replica applied the ingress's copy at the ingress's
clock (milliseconds) or the binlog's at the GTID event's (whole seconds): every existing row differed.
Now the ingress flags such an ALTER unsafe and the binlog copy carries the query's own clock with its
microseconds (``Q_HRNOW``), which the replica sets (``SET timestamp``) before running it, as MariaDB's
own replicas do. The binlog reader is paused while the ingress copy is published, so that copy comes
first in the topic: only the flag keeps the replicas from applying it.
"""

from __future__ import annotations

import asyncio
import signal
import uuid

from .conftest import (
    assert_targets_equal,
    pipeline_config,
    start_binlog_reader,
    start_ingress,
    stop_ingress,
    stop_processes,
)
from .test_pg_spatial_uuid import _pg_rows
from .test_replicator_mysql import _conn, _start_replicator


def test_an_alter_table_filling_rows_with_the_clock_reaches_replicas_equal(stack, tmp_path):
    db = f"clk_{uuid.uuid4().hex[:8]}"
    topic = f"dbmux.clk{uuid.uuid4().hex[:10]}.txn"
    targets = {f"clk{i}{uuid.uuid4().hex[:6]}": dsn for i, dsn in enumerate(stack.replicas[:2])}
    pg = f"clkpg{uuid.uuid4().hex[:6]}"  # a PostgreSQL target: the literal default, then the clock again
    targets[pg] = stack.shards[0]
    cfg = pipeline_config(tmp_path / "clk.toml", stack, topic, targets, tables=f"{db}.*")
    logs = {name: tmp_path / f"{name}.log" for name in targets}
    reader = start_binlog_reader(cfg, tmp_path / "binlog.log")
    procs = [reader, *(_start_replicator(cfg, n, logs[n]) for n in targets)]
    d = _conn(stack.primary)
    d.autocommit(True)
    ing = None
    try:
        with d.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.a (id INT PRIMARY KEY, x INT)")
            cur.execute(f"INSERT INTO {db}.a VALUES (1, 1), (2, 2), (3, 3)")
        ing = start_ingress(stack, tmp_path, DBMUX_KAFKA_TOPIC=topic)
        c = _conn(ing.dsn(stack.primary))
        c.autocommit(True)
        reader.send_signal(signal.SIGSTOP)
        try:
            with c.cursor() as cur:
                cur.execute(f"ALTER TABLE {db}.a ADD COLUMN t6 DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), "
                            "ADD COLUMN t0 TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP")
                cur.execute(f"INSERT INTO {db}.a (id, x) VALUES (4, 4)")
        finally:
            reader.send_signal(signal.SIGCONT)
        c.close()
        with d.cursor() as cur:  # straight to the primary: the binlog copy only
            cur.execute(f"ALTER TABLE {db}.a ADD COLUMN d6 TIMESTAMP(6) NOT NULL DEFAULT NOW(6)")
        assert_targets_equal(cfg, {"binlog": tmp_path / "binlog.log", **logs}, 3)
        with d.cursor() as cur:
            cur.execute(f"SELECT id, t6, t0, d6 FROM {db}.a ORDER BY id")
            want = cur.fetchall()
        assert len({r[1] for r in want[:3]}) == 1 and want[0][1].microsecond  # one instant, to the microsecond
        for dsn in stack.replicas[:2]:
            r = _conn(dsn)
            with r.cursor() as cur:
                cur.execute(f"SELECT id, t6, t0, d6 FROM {db}.a ORDER BY id")
                assert cur.fetchall() == want
            r.close()
        pg_rows = asyncio.run(_pg_rows(stack.shards[0], f'SELECT id, t6, t0, d6 FROM "{db}"."a" ORDER BY id'))
        assert tuple(pg_rows) == want
    finally:
        if ing is not None:
            stop_ingress(ing)
        stop_processes(procs)
        with d.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        d.close()
        asyncio.run(_pg_rows(stack.shards[0], f'DROP SCHEMA IF EXISTS "{db}" CASCADE'))
        for r in stack.replicas[:2]:  # (the replicators stopped before the drop reached them)
            c = _conn(r)
            with c.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {db}")
            c.close()
