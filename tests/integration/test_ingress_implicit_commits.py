"""Implicit commits and RETURNING through the ingress, on the real stack (issue 12 #5, issue 20 #2).

With autocommit off, a statement that commits implicitly (DDL, BEGIN inside a transaction, SET
autocommit = 1, LOCK TABLES), alone or inside a multi-statement batch, ends the open transaction: the
primary commits that transaction and the statement under two GTIDs. The ingress must publish them as
two events, each with its own GTID and exactly its own statements -- never the transaction's writes under
the DDL's GTID, where they would be applied a second time. Writes answered with a result set
(``... RETURNING``) must be captured, not published empty (which made targets skip the binlog copy).

Checked three ways: the ingress events hold exactly the transactions the session made; every ingress
event touches the same tables as the binlog reader's copy of the same GTID (a merged event would not);
and two MariaDB replicas fed by replicators (ingress events, binlog copies where the ingress published
nothing or flagged it unsafe) end equal to the primary, including a table without a primary key where a
double apply would show as a duplicate row.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pymysql
from pymysql.constants import CLIENT

from dbmux.core.dsn import Dsn

from .conftest import pipeline_config, read_topic, start_binlog_reader, start_ingress, stop_ingress, stop_processes
from .test_replicator_mysql import _conn, _start_replicator, _wait_equal

_TABLE = re.compile(r"(?i)\b(?:INTO|FROM|TABLE|TABLES)\s+`?(\w+)`?(?:\s*\.\s*`?(\w+)`?)?")


def _tables(sqls) -> set[str]:
    """Tables named in these statements (``db.t`` or ``t``: the table part)."""
    out = set()
    for sql in sqls:
        for m in _TABLE.finditer(sql):
            out.add((m.group(2) or m.group(1)).lower())
    return out


def _seq(dsn: Dsn) -> int:
    c = _conn(dsn)
    try:
        with c.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            pos = cur.fetchone()[0]
    finally:
        c.close()
    mine = [g for g in pos.split(",") if g.startswith("0-")]
    return int(mine[0].rsplit("-", 1)[1]) if mine else 0


def _topic_until(stack, topic: str, gtids: set[str], timeout_s: float = 90.0):
    """The topic's events once the binlog reader has published every GTID in ``gtids``."""
    deadline = time.monotonic() + timeout_s
    while True:
        events = asyncio.run(read_topic(stack.kafka, topic))
        missing = gtids - {str(e.gtid) for e in events if e.source == "binlog"}
        if not missing:
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"binlog copies missing on {topic}: {sorted(missing)}")
        time.sleep(0.5)


def _workload(via: Dsn, db: str) -> list[list[str]]:
    """Through the ingress; returns the transactions the ingress must publish, each as its statements."""
    expected: list[list[str]] = []
    c = pymysql.connect(host=via.host, port=via.port, user=via.user, password=via.password, database=db,
                        autocommit=False, client_flag=CLIENT.MULTI_STATEMENTS)
    with c.cursor() as cur:
        def run(*sqls: str) -> None:
            for sql in sqls:
                cur.execute(sql)
                cur.fetchall()

        # INSERT then DDL, statement by statement: the DDL commits the INSERTs implicitly
        run("INSERT INTO t VALUES (1, 'a')", "INSERT INTO tally VALUES (1)", "CREATE TABLE x1 (a INT)")
        expected += [["INSERT INTO t VALUES (1, 'a')", "INSERT INTO tally VALUES (1)"], ["CREATE TABLE x1 (a INT)"]]
        run("INSERT INTO tally VALUES (2)", "ALTER TABLE x1 ADD COLUMN b INT")
        expected += [["INSERT INTO tally VALUES (2)"], ["ALTER TABLE x1 ADD COLUMN b INT"]]
        run("INSERT INTO t VALUES (2, 'b')", "DROP TABLE x1")
        expected += [["INSERT INTO t VALUES (2, 'b')"], ["DROP TABLE x1"]]
        # ... inside one multi-statement batch, which goes on after the DDL
        cur.execute("INSERT INTO t VALUES (3, 'c'); INSERT INTO tally VALUES (3); CREATE TABLE x2 (a INT); "
                    "INSERT INTO t VALUES (4, 'd')")
        while cur.nextset():
            pass
        run("COMMIT")
        expected += [["INSERT INTO t VALUES (3, 'c')", "INSERT INTO tally VALUES (3)"], ["CREATE TABLE x2 (a INT)"],
                     ["INSERT INTO t VALUES (4, 'd')"]]
        # statements that commit implicitly and write nothing themselves
        run("INSERT INTO tally VALUES (4)", "BEGIN", "INSERT INTO tally VALUES (5)", "COMMIT")
        expected += [["INSERT INTO tally VALUES (4)"], ["INSERT INTO tally VALUES (5)"]]
        run("INSERT INTO t VALUES (5, 'e')", "SET autocommit = 1", "SET autocommit = 0")
        expected += [["INSERT INTO t VALUES (5, 'e')"]]
        run("INSERT INTO tally VALUES (6)", "LOCK TABLES t WRITE, tally WRITE", "INSERT INTO t VALUES (6, 'f')",
            "UNLOCK TABLES")
        expected += [["INSERT INTO tally VALUES (6)"], ["INSERT INTO t VALUES (6, 'f')"]]
        # a DDL that fails after its implicit commit: the INSERT is committed either way
        run("INSERT INTO tally VALUES (7)")
        try:
            cur.execute("DROP TABLE no_such_table")
            raise AssertionError("DROP TABLE no_such_table succeeded")
        except pymysql.err.OperationalError as exc:
            assert exc.args[0] == 1051, exc
        run("ROLLBACK")
        expected += [["INSERT INTO tally VALUES (7)"]]
        # RETURNING: answered with rows
        cur.execute("DELETE FROM t WHERE id = 1 RETURNING id, v")
        assert cur.fetchall() == ((1, "a"),)
        cur.execute("INSERT INTO tally VALUES (8) RETURNING n")
        assert cur.fetchall() == ((8,),)
        run("COMMIT")
        expected += [["DELETE FROM t WHERE id = 1 RETURNING id, v", "INSERT INTO tally VALUES (8) RETURNING n"]]
        run("SET autocommit = 1")
        # (autocommit, EOF packets: MariaDB never reports these GTIDs; the binlog copies alone carry them)
        cur.execute("DELETE FROM t WHERE id = 2 RETURNING id")
        assert cur.fetchall() == ((2,),)
        run("UPDATE t SET v = 'same' WHERE id = 999")  # (changes nothing: must not take the DELETE's GTID)
        cur.execute("REPLACE INTO t VALUES (3, 'c2') RETURNING id, v")
        assert cur.fetchall() == ((3, "c2"),)
        run("SET @x = 1")
        run("INSERT INTO tally VALUES (9)")
        expected += [["INSERT INTO tally VALUES (9)"]]
    c.close()
    return expected


def test_implicit_commits_and_returning_one_event_per_gtid_and_replicas_equal(stack, tmp_path):
    ing = start_ingress(stack, tmp_path)
    db = f"ic_{uuid.uuid4().hex[:8]}"
    targets = {f"ic{uuid.uuid4().hex[:6]}{i}": replica for i, replica in enumerate(stack.replicas[:2])}
    cfg = pipeline_config(tmp_path / "pipeline.toml", stack, ing.topic, targets, f"{db}.*",
                          extra='on_error = "halt"')
    via = ing.dsn(stack.primary)
    procs: list = []
    try:
        procs.append(start_binlog_reader(cfg, tmp_path / "binlog.log"))
        setup = _conn(via)
        with setup.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
            cur.execute(f"CREATE TABLE {db}.tally (n INT)")  # no primary key: a double apply shows
        setup.close()
        first = _seq(stack.primary) + 1
        expected = _workload(via, db)
        last = _seq(stack.primary)
        gtids = {f"0-1-{s}" for s in range(first, last + 1)}
        for name in targets:
            procs.append(_start_replicator(cfg, name, tmp_path / f"{name}.log"))

        events = _topic_until(stack, ing.topic, gtids)
        ingress = [e for e in events if e.source == "ingress" and str(e.gtid) in gtids]
        binlog = {str(e.gtid): e for e in events if e.source == "binlog"}
        published = [[s.sql for s in e.statements] for e in ingress]
        assert len({str(e.gtid) for e in ingress}) == len(ingress), "two ingress events for one GTID"
        for txn in expected:  # each transaction on its own, in the session's order
            assert txn in published, f"no ingress event holds exactly {txn}; published: {published}"
        assert [p for p in published if p in expected] == expected
        for e in ingress:  # the content is that GTID's: the binlog copy touches the same tables
            copy = binlog[str(e.gtid)]
            want = _tables([s.sql for s in e.statements])
            got = {r.table.lower() for r in copy.rows} | _tables(s.sql for s in copy.statements)
            assert want == got, f"{e.gtid}: ingress {[s.sql for s in e.statements]} vs binlog tables {got}"
            assert all(s.unsafe for s in e.statements if "RETURNING" in s.sql)

        for replica in stack.replicas[:2]:
            for query in (f"SELECT * FROM {db}.t ORDER BY id", f"SELECT n, COUNT(*) FROM {db}.tally GROUP BY n",
                          f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' "
                          "ORDER BY table_name"):
                _wait_equal(query, stack.primary, replica)
        rows = _wait_equal(f"SELECT n FROM {db}.tally ORDER BY n", stack.primary, stack.replicas[0])
        assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
        for p in procs:
            assert p.poll() is None, "a pipeline process exited"
    finally:
        stop_processes(procs)
        stop_ingress(ing)
