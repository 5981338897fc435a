"""Foreign keys on a PostgreSQL target as MySQL's DDL and sessions use them (found replaying
SQLAlchemy's suite into a plain PostgreSQL target, each a halt): ``ALTER TABLE a DROP FOREIGN KEY
a_ibfk_1`` names a key InnoDB named itself (PostgreSQL had named it ``a_bid_fkey``), and an ORM's
teardown empties a self-referencing table parent first with ``foreign_key_checks = 0``."""

from __future__ import annotations

import uuid

from .conftest import assert_targets_equal, pipeline_config, start_binlog_reader, stop_processes
from .test_pg_spatial_uuid import _pg_rows
from .test_replicator_mysql import _conn, _start_replicator


def test_innodb_key_names_and_checks_off_reach_postgresql(stack, tmp_path):
    db, target = f"pgfk_{uuid.uuid4().hex[:8]}", f"pgfk{uuid.uuid4().hex[:6]}"
    topic = f"dbmux.pgfk{uuid.uuid4().hex[:10]}.txn"
    cfg = pipeline_config(tmp_path / "pgfk.toml", stack, topic, {target: stack.shards[0]}, tables=f"{db}.*")
    logs = {"binlog": tmp_path / "binlog.log", target: tmp_path / f"{target}.log"}
    procs = [start_binlog_reader(cfg, logs["binlog"])]
    d = _conn(stack.primary)
    try:
        procs.append(_start_replicator(cfg, target, logs[target]))
        with d.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"USE {db}")
            cur.execute("CREATE TABLE nodes (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) "
                        "REFERENCES nodes (id))")
            cur.execute("CREATE TABLE b (id INT PRIMARY KEY)")
            cur.execute("CREATE TABLE a (id INT PRIMARY KEY, bid INT)")
            cur.execute("ALTER TABLE a ADD FOREIGN KEY (bid) REFERENCES b (id)")  # a_ibfk_1
            cur.execute("ALTER TABLE a ADD FOREIGN KEY (bid) REFERENCES b (id)")  # a_ibfk_2
            cur.execute("ALTER TABLE a DROP FOREIGN KEY a_ibfk_1")
            cur.execute("ALTER TABLE a DROP FOREIGN KEY a_ibfk_2")
            cur.execute("INSERT INTO nodes VALUES (1, NULL), (2, 1), (3, 1), (4, 3)")
            d.commit()
            cur.execute("SET foreign_key_checks = 0")
            cur.execute("DELETE FROM nodes ORDER BY id")  # parents first
            cur.execute("SET foreign_key_checks = 1")
            cur.execute("INSERT INTO nodes VALUES (5, NULL)")
            cur.execute("INSERT INTO a VALUES (1, 99)")  # no key left: no b row needed
        d.commit()
        assert_targets_equal(cfg, logs, 1)
        names = {r[0] for r in _pg_rows_sync(stack.shards[0], "SELECT conname FROM pg_constraint WHERE "
                                              f"conrelid = '\"{db}\".\"nodes\"'::regclass AND contype = 'f'")}
        assert names == {"nodes_ibfk_1"}
    finally:
        stop_processes(procs)
        with d.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        d.close()
        _pg_rows_sync(stack.shards[0], f'DROP SCHEMA IF EXISTS "{db}" CASCADE')


def _pg_rows_sync(dsn, sql: str) -> list[tuple]:
    import asyncio

    return asyncio.run(_pg_rows(dsn, sql))
