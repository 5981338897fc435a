"""PostgreSQL targets type row events by the event's own schema (issue 12 #8): tables dropped and re-created
with other column types -- written straight to the primary, so only the binlog reader's row events carry
them -- replicate to two PostgreSQL shard targets, both when the replicators catch up later (the primary's
schema is then the new one for every old event) and when they run through the change live.
"""

from __future__ import annotations

import asyncio
import time

from dbmux.core.events import ChangeEvent

from .conftest import assert_targets_equal, read_topic, start_binlog_reader, stop_processes
from .test_replicator_mysql import _conn, _start_replicator
from .test_shard_targets import _drop_history, two_shards

ROWS = 40  # one transaction of this many inserts: the PostgreSQL applier copies them (COPY_MIN_ROWS)


def _old_then_new(cur, db: str, table: str) -> None:
    """``table`` with INT/BIT/VARCHAR columns and rows, dropped, re-created with other types and rows."""
    cur.execute(f"CREATE TABLE {db}.{table} (id INT PRIMARY KEY, v INT, b BIT(8), s VARCHAR(10))")
    cur.execute(f"INSERT INTO {db}.{table} VALUES " + ", ".join(f"({i}, {i * 7}, {i % 256}, 's{i}')"
                                                               for i in range(1, ROWS + 1)))
    cur.execute(f"INSERT INTO {db}.{table} VALUES (1000, -5, b'101', NULL)")
    cur.execute(f"UPDATE {db}.{table} SET v = v + 1, b = b'11' WHERE id = 2")
    cur.execute(f"DELETE FROM {db}.{table} WHERE id = 3")
    cur.execute(f"DROP TABLE {db}.{table}")
    cur.execute(f"CREATE TABLE {db}.{table} (id INT PRIMARY KEY, v VARCHAR(20), b INT, s BIT(4))")
    cur.execute(f"INSERT INTO {db}.{table} VALUES " + ", ".join(f"({i}, 'a string {i}', {i * 3}, b'{i % 2}1')"
                                                               for i in range(1, ROWS + 1)))
    cur.execute(f"INSERT INTO {db}.{table} VALUES (1000, 'a string', NULL, b'1010')")
    cur.execute(f"UPDATE {db}.{table} SET v = 'another', b = 9, s = b'1' WHERE id = 2")
    cur.execute(f"DELETE FROM {db}.{table} WHERE id = 3")


def _wait_published(kafka: str, topic: str, table: str) -> list[ChangeEvent]:
    """The events on ``topic`` once the binlog reader has published the last row ``_old_then_new`` wrote
    into ``table``."""
    deadline = time.monotonic() + 60
    while True:
        events = asyncio.run(read_topic(kafka, topic))
        if any(r.table == table and r.op == "delete" and r.before and r.before.get("v") == "a string 3"
               for ev in events for r in ev.rows):
            return events
        assert time.monotonic() < deadline, f"the binlog reader has not published {table}'s rows"
        time.sleep(0.5)


def test_tables_dropped_and_recreated_with_other_types_reach_pg_shards(stack, tmp_path):
    db, shards, topic, cfg, logs = two_shards(stack, tmp_path, "evs")
    procs = [start_binlog_reader(cfg, logs["binlog"])]
    c = _conn(stack.primary)
    c.autocommit(True)
    try:
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            _old_then_new(cur, db, "caught_up")  # before any replicator runs: they catch up later
        events = _wait_published(stack.kafka, topic, "caught_up")
        carried = [ev.table_schema(db, "caught_up") for ev in events if any(r.table == "caught_up" for r in ev.rows)]
        assert len(carried) == 8 and all(ts is not None for ts in carried), carried
        assert [t.text for t in carried[0].types] == ["int", "int", "bit(8)", "varchar charset utf8mb4"]
        assert [t.text for t in carried[-1].types] == ["int", "varchar charset utf8mb4", "int", "bit(4)"]
        assert carried[0].primary_key == carried[-1].primary_key == ("id",)
        procs += [_start_replicator(cfg, n, logs[n]) for n in shards]
        assert_targets_equal(cfg, logs, 2)
        with c.cursor() as cur:  # and through the change while the replicators run
            _old_then_new(cur, db, "live")
            # mixed-case column names (MySQL's are case-insensitive; PostgreSQL has them lower-case), by
            # COPY and by single statements (a client test suite's table)
            cur.execute(f"CREATE TABLE {db}.dc (Name CHAR(20) PRIMARY KEY, DOB DATETIME)")
            cur.execute(f"INSERT INTO {db}.dc VALUES " + ", ".join(
                f"('n{i}', '1990-02-06 23:04:56')" for i in range(ROWS)))
            cur.execute(f"UPDATE {db}.dc SET DOB = '2000-01-01 00:00:00' WHERE Name = 'n1'")
            cur.execute(f"DELETE FROM {db}.dc WHERE Name = 'n2'")
        assert_targets_equal(cfg, logs, 2)
    finally:
        stop_processes(procs)
        with c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        c.close()
        _drop_history(stack.primary, list(shards.values()))
