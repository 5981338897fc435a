"""Self-verification under fast traffic through the ingress (found re-running SQLAlchemy's test suite):
rows inserted and deleted again hundreds of times a second, with both replicators running live, and an
ORM's teardown (``SET foreign_key_checks = 0`` then emptying a self-referencing table). Every
transaction the replicas applied from statements is checked against its row copy; none may differ, no
replica may halt, and both end equal to the primary. (Before the fix a row copy was checked before its
own transaction was applied -- a false halt within a second -- and the teardown's DELETE, replayed with
foreign-key checks on, halted the replicas with 1451; a child row changed by ON UPDATE/DELETE CASCADE,
which the binlog does not log, was a false difference.)"""

from __future__ import annotations

import re
import signal
import subprocess
import uuid

from .conftest import pipeline_config, start_binlog_reader, start_ingress, stop_pipeline
from .test_replicator_mysql import _conn, _start_replicator
from .test_statement_safety import _primary_position, _wait_applied

ROUNDS = 300


def test_fast_insert_delete_and_an_orm_teardown_self_verify_clean(stack, tmp_path):
    db = f"svt_{uuid.uuid4().hex[:8]}"
    topic = f"dbmux.svt{uuid.uuid4().hex[:10]}.txn"
    targets = {f"svt{i}{uuid.uuid4().hex[:6]}": dsn for i, dsn in enumerate(stack.replicas[:2])}
    cfg = pipeline_config(tmp_path / "svt.toml", stack, topic, targets, tables=f"{db}.*")
    logs = {name: tmp_path / f"{name}.log" for name in targets}
    reader = start_binlog_reader(cfg, tmp_path / "binlog.log")
    procs: list[subprocess.Popen] = [reader]
    ing = None
    try:
        d = _conn(stack.primary)  # the schema first, so the ingress knows it (an unknown table's writes are
        with d.cursor() as cur:  # unsafe: applied from the row copy, never checked)
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10))")
            cur.execute(f"CREATE TABLE {db}.nodes (id INT PRIMARY KEY, parent_id INT, "
                        f"FOREIGN KEY (parent_id) REFERENCES {db}.nodes (id)) ENGINE=InnoDB")
            # SQLAlchemy's natural-primary-key tests: children follow their parent's key by ON UPDATE /
            # ON DELETE CASCADE, which the binlog does not log (each server cascades itself)
            cur.execute(f"CREATE TABLE {db}.person (name VARCHAR(20) PRIMARY KEY) ENGINE=InnoDB")
            cur.execute(f"CREATE TABLE {db}.manager (name VARCHAR(20) PRIMARY KEY, FOREIGN KEY (name) REFERENCES "
                        f"{db}.person (name) ON UPDATE CASCADE ON DELETE CASCADE) ENGINE=InnoDB")
        d.close()
        ing = start_ingress(stack, tmp_path, DBMUX_KAFKA_TOPIC=topic)
        # the binlog reader paused: the ingress's copies come first in the topic, so the replicas apply
        # every safe transaction from its statements and check it when the row copy follows
        reader.send_signal(signal.SIGSTOP)
        c = _conn(ing.dsn(stack.primary))
        with c.cursor() as cur:
            cur.execute(f"USE {db}")
            for i in range(ROUNDS):
                cur.execute(f"INSERT INTO t VALUES (1, 'a{i}'), (2, 'b{i}')")
                cur.execute("DELETE FROM t")
            cur.execute("INSERT INTO t VALUES (3, 'kept')")
            cur.execute("INSERT INTO nodes VALUES (1, NULL), (2, 1), (3, 1)")
            cur.execute("SET foreign_key_checks = 0")
            cur.execute("DELETE FROM nodes")  # parent first: only without checks
            cur.execute("SET foreign_key_checks = 1")
            cur.execute("INSERT INTO nodes VALUES (7, NULL)")
            for name in ("dogbert", "wally", "alice"):
                cur.execute(f"INSERT INTO person VALUES ('{name}')")
                cur.execute(f"INSERT INTO manager VALUES ('{name}')")
            cur.execute("UPDATE person SET name = 'dogbert2' WHERE name = 'dogbert'")  # cascades to manager
            cur.execute("DELETE FROM person WHERE name = 'wally'")  # cascades
            cur.execute("BEGIN")  # inserted and cascaded away in one transaction
            cur.execute("INSERT INTO person VALUES ('ted')")
            cur.execute("INSERT INTO manager VALUES ('ted')")
            cur.execute("DELETE FROM person WHERE name = 'ted'")
            cur.execute("COMMIT")
        c.close()
        end = _primary_position(stack.primary)
        reader.send_signal(signal.SIGCONT)
        reps = {name: _start_replicator(cfg, name, logs[name]) for name in targets}
        procs += reps.values()
        for name, dsn in targets.items():
            _wait_applied(dsn, name, topic, end, reps[name], logs[name])
        for dsn in targets.values():
            r = _conn(dsn)
            with r.cursor() as cur:
                cur.execute(f"SELECT * FROM {db}.t")
                assert cur.fetchall() == ((3, "kept"),)
                cur.execute(f"SELECT * FROM {db}.nodes")
                assert cur.fetchall() == ((7, None),)
                cur.execute(f"SELECT name FROM {db}.manager ORDER BY name")
                assert cur.fetchall() == (("alice",), ("dogbert2",))
            r.close()
    finally:
        reader.send_signal(signal.SIGCONT)
        stop_pipeline(stack.primary, procs, ing, db)
    for name in targets:
        text = logs[name].read_text(errors="replace")
        found = re.search(r"self-verified (\d+) transactions applied from statements, (\d+) differences", text)
        assert found and int(found[1]) >= ROUNDS and found[2] == "0", text[-3000:]
        assert "HALTED" not in text
