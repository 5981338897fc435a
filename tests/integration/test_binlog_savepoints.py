"""Savepoints written straight to the primary: the binlog reader publishes exactly the rows the primary
kept (issue 20 #1), and a replica fed from its events equals the primary."""

from __future__ import annotations

import uuid

from .conftest import start_binlog_reader, stop_processes
from .test_binlog_reader import _events_until, _last_gtid, _write_config, replica_fed_with
from .test_replicator_mysql import _conn, _wait_equal


def test_savepoint_transactions_straight_to_the_primary_replicate_exactly(stack, tmp_path):
    topic = f"dbmux.sp{uuid.uuid4().hex[:10]}.txn"
    cfg = _write_config(tmp_path, stack, topic)
    reader = start_binlog_reader(cfg, tmp_path / "binlog.log")
    db = f"sp_{uuid.uuid4().hex[:8]}"
    steps: dict[str, str] = {}
    try:
        c = _conn(stack.primary)
        with c.cursor() as cur:
            for sql in (f"CREATE DATABASE {db}", f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB"):
                cur.execute(sql)
                steps[_last_gtid(cur)] = "ddl"
            for name, body in (
                ("released", ["INSERT INTO t VALUES (1, 1)", "SAVEPOINT s1", "INSERT INTO t VALUES (2, 2)",
                              "RELEASE SAVEPOINT s1", "UPDATE t SET v = 9 WHERE id = 1"]),
                ("rolled_back", ["INSERT INTO t VALUES (3, 3)", "SAVEPOINT s2", "INSERT INTO t VALUES (4, 4)",
                                 "UPDATE t SET v = 0 WHERE id = 3", "ROLLBACK TO SAVEPOINT s2",
                                 "INSERT INTO t VALUES (5, 5)"]),
                ("nested", ["SAVEPOINT a", "INSERT INTO t VALUES (6, 6)", "SAVEPOINT `b``x`",
                            "INSERT INTO t VALUES (7, 7)", "ROLLBACK TO `b``x`", "DELETE FROM t WHERE id = 6",
                            "RELEASE SAVEPOINT a", "INSERT INTO t VALUES (8, 8)"]),
            ):
                cur.execute(f"USE {db}")
                c.begin()
                for sql in body:
                    cur.execute(sql)
                c.commit()
                steps[_last_gtid(cur)] = name
        c.close()
        events = _events_until(stack, topic, set(steps))
    finally:
        stop_processes([reader])
    by_name = {steps[str(e.gtid)]: e for e in events if str(e.gtid) in steps and steps[str(e.gtid)] != "ddl"}
    ops = {name: [(r.op, (r.after or r.before or {}).get("id")) for r in ev.rows] for name, ev in by_name.items()}
    assert ops == {"released": [("insert", 1), ("insert", 2), ("update", 1)],
                   "rolled_back": [("insert", 3), ("insert", 5)],
                   "nested": [("insert", 6), ("delete", 6), ("insert", 8)]}, ops

    # A replica fed only these events ends equal to the primary.
    with replica_fed_with(stack, tmp_path, topic, events, db) as (rep, rlog):
        rows = _wait_equal(f"SELECT id, v FROM {db}.t ORDER BY id", stack.primary, stack.replicas[1])
        assert rows == ((1, 9), (2, 2), (3, 3), (5, 5), (8, 8)), rows
        assert rep.poll() is None, rlog.read_text()[-3000:]
