"""Statement form only when provably safe (issue 20): writes through the ingress that use temporary
tables (one shadowing a real table), tables with triggers (UUID(), auto-increment) and columns with
implicit values (DEFAULT CURRENT_TIMESTAMP(6), ON UPDATE, DEFAULT (UUID())) in a transaction spanning
more than a second reach both MariaDB replicas equal to the primary, row for row, with the binlog
reader and one replicator per replica running, and no target halted.

``DBMUX_TEST_STATEMENT_SAFETY=off`` runs the same test with the ingress's session and schema rules
switched off (``ingress.statement_safety = false``): it then fails (a replica halts on the temporary
table, or differs). The second test is that control for the silent cases, kept in the suite: without
the rules, the trigger's and the clock defaults' rows differ on the replicas.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pymysql
import pytest

from dbmux.core.dsn import Dsn

from .conftest import (
    pipeline_config,
    start_binlog_reader,
    start_ingress,
    stop_ingress,
    stop_processes,
    verify_until_equal,
)
from .test_replicator_mysql import _conn, _start_replicator

RULES_ON = os.environ.get("DBMUX_TEST_STATEMENT_SAFETY", "on") != "off"
TABLES = ("real_t", "tt_target", "items", "audit", "stamped")


def _schema(cur, db: str) -> None:
    cur.execute(f"CREATE DATABASE {db}")
    cur.execute(f"USE {db}")
    cur.execute("CREATE TABLE real_t (id INT PRIMARY KEY, v INT NOT NULL)")
    cur.execute("INSERT INTO real_t VALUES (1, 1), (2, 2), (3, 3)")
    cur.execute("CREATE TABLE tt_target (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL)")
    cur.execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20))")
    cur.execute("CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item_id INT, token CHAR(36))")
    cur.execute("CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW "
                "INSERT INTO audit (item_id, token) VALUES (NEW.id, UUID())")
    cur.execute("CREATE TABLE stamped (id INT PRIMARY KEY, v INT, "
                "created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), "
                "touched DATETIME(6) NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP(6), "
                "tag CHAR(36) DEFAULT (UUID()))")


def _temporary_tables(cur) -> None:
    """Temporary tables: one read into a real table, one shadowing a real table, a transaction that
    writes only temporary tables (no GTID at all), a transaction that mixes them with real ones."""
    cur.execute("CREATE TEMPORARY TABLE tt_tmp (n INT)")
    cur.execute("INSERT INTO tt_tmp VALUES (1), (2), (3)")
    cur.execute("INSERT INTO tt_target (n) SELECT n * 10 FROM tt_tmp ORDER BY n")
    cur.execute("CREATE TEMPORARY TABLE real_t (id INT PRIMARY KEY, v INT NOT NULL)")  # shadows real_t
    cur.execute("INSERT INTO real_t VALUES (1, 1998)")
    cur.execute("INSERT INTO tt_target (n) SELECT v FROM real_t")  # 1998 on the primary, 1 if read from real_t
    cur.execute("UPDATE tt_target SET n = n + (SELECT COUNT(*) FROM real_t) WHERE n = 1998")
    cur.execute("BEGIN")
    cur.execute("INSERT INTO tt_tmp VALUES (4)")
    cur.execute("UPDATE tt_tmp SET n = n + 1")
    cur.execute("COMMIT")  # (only temporary tables: nothing in the binlog, nothing published)
    cur.execute("BEGIN")
    cur.execute("INSERT INTO tt_tmp VALUES (7)")
    cur.execute("INSERT INTO tt_target (n) SELECT MAX(n) FROM tt_tmp")
    cur.execute("UPDATE real_t SET v = v + 1")  # (the temporary one)
    cur.execute("COMMIT")
    cur.execute("DROP TABLE real_t")  # drops the temporary one: real_t is the real table again
    cur.execute("DROP TEMPORARY TABLE tt_tmp")
    cur.execute("INSERT INTO real_t VALUES (4, 4)")  # a plain write afterwards: safe again, nothing held


def _triggers(cur) -> None:
    """A trigger with UUID() and an auto-increment of its own."""
    cur.execute("INSERT INTO items (name) VALUES ('a')")
    cur.execute("INSERT INTO items (name) VALUES ('b'), ('c')")
    cur.execute("BEGIN")
    cur.execute("INSERT INTO items (name) VALUES ('d')")
    cur.execute("INSERT INTO items (id, name) VALUES (50, 'e')")
    cur.execute("COMMIT")


def _implicit_values(cur) -> None:
    """Clock and function defaults filled implicitly, in a transaction spanning more than a second."""
    cur.execute("BEGIN")
    cur.execute("INSERT INTO stamped (id, v) VALUES (1, 1)")
    time.sleep(1.2)  # (the scenario: the transaction's statements run over a second apart)
    cur.execute("INSERT INTO stamped (id, v) VALUES (2, 2), (3, 3)")
    cur.execute("UPDATE stamped SET v = v + 10 WHERE id = 1")
    cur.execute("COMMIT")
    time.sleep(0.3)
    cur.execute("UPDATE stamped SET v = v + 100 WHERE id = 2")
    cur.execute("INSERT INTO stamped (id, v, created, touched, tag) VALUES (4, 4, '2024-01-02 03:04:05.123456', "
                "NULL, 'explicit')")  # (every implicit column set: may stay a statement)


def _primary_position(primary: Dsn) -> int:
    c = _conn(primary)
    with c.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        (pos,) = cur.fetchone()
    c.close()
    return max(int(g.split("-")[2]) for g in pos.split(",") if g.startswith("0-"))


def _wait_applied(replica: Dsn, target: str, topic: str, seq: int, proc: subprocess.Popen, log: Path,
                  timeout_s: float = 90) -> None:
    """Until ``target`` has applied GTID 0-x-``seq``; fails at once when its replicator halted or exited."""
    deadline = time.monotonic() + timeout_s
    applied = state = detail = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"replicator {target} exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        c = _conn(replica)
        try:
            with c.cursor() as cur:
                cur.execute("SELECT seq FROM dbmux_meta.gtids WHERE target = %s AND topic = %s AND domain_id = '0'",
                            (target, topic))
                row = cur.fetchone()
                cur.execute("SELECT state, detail FROM dbmux_meta.status WHERE target = %s", (target,))
                status = cur.fetchone()
        except pymysql.err.ProgrammingError:  # (a fresh replica: the replicator has not created dbmux_meta yet)
            row = status = None
        finally:
            c.close()
        applied = row[0] if row else None
        state, detail = status if status else (None, None)
        if state == "halted":
            raise AssertionError(f"target {target} halted: {detail}")
        if applied is not None and applied >= seq:
            return
        time.sleep(0.2)
    raise AssertionError(f"target {target} applied up to seq {applied} (state {state}: {detail}), "
                         f"not {seq}, within {timeout_s}s:\n{log.read_text()[-3000:]}")


def _rows(dsn: Dsn, db: str, table: str) -> list[tuple]:
    c = _conn(dsn)
    with c.cursor() as cur:
        cur.execute(f"SELECT * FROM {db}.{table} ORDER BY id")
        rows = list(cur.fetchall())
    c.close()
    return rows


def _wait_halted(replica: Dsn, target: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> str:
    """Until ``target``'s replicator has halted (and exited 3); returns the status row's detail."""
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"replicator {target} did not halt:\n{log.read_text()[-3000:]}") from exc
    assert proc.returncode == 3, log.read_text()[-3000:]
    c = _conn(replica)
    with c.cursor() as cur:
        cur.execute("SELECT state, detail FROM dbmux_meta.status WHERE target = %s", (target,))
        state, detail = cur.fetchone()
    c.close()
    assert state == "halted", (state, detail)
    return detail


def _replicate(stack, tmp_path: Path, scenario, *, rules: bool, self_verify: str = "halt",
               logs_out: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Run ``scenario(cursor)`` through an ingress (rules on or off), then the binlog reader and one
    replicator per replica until both have applied everything; returns the database and, per replica,
    the tables that differ from the primary -- or, with ``self_verify = "expect-halt"``, each replica's
    halt detail (self-verification on). ``logs_out``: filled with each replicator's log."""
    overrides = {} if rules else {"DBMUX_INGRESS_STATEMENT_SAFETY": "false"}
    ing = start_ingress(stack, tmp_path, **overrides)
    db = f"ss_{uuid.uuid4().hex[:8]}"
    targets = {f"ss{i}{uuid.uuid4().hex[:6]}": dsn for i, dsn in enumerate(stack.replicas[:2])}
    expect_halt = self_verify == "expect-halt"
    mode = "halt" if expect_halt else self_verify
    cfg = pipeline_config(tmp_path / "ss.toml", stack, ing.topic, targets, tables=f"{db}.*",
                          extra=f'self_verify = "{mode}"\nprefer_row_copies = false')  # statements applied
    procs: list[subprocess.Popen] = []
    logs = {name: tmp_path / f"{name}.log" for name in targets}
    try:
        procs.append(start_binlog_reader(cfg, tmp_path / "binlog.log"))
        # the binlog reader paused while the ingress writes: the ingress's copies come first in the topic, so
        # the replicas apply statements (prefer_row_copies off) -- else a row copy that won the race to the
        # topic makes the control below pass or fail by chance (seen in CI: 'stamped' equal)
        procs[0].send_signal(signal.SIGSTOP)
        try:
            c = _conn(ing.dsn(stack.primary))
            with c.cursor() as cur:
                _schema(cur, db)
                scenario(cur)
            c.close()
        finally:
            procs[0].send_signal(signal.SIGCONT)
        end = _primary_position(stack.primary)
        reps = {name: _start_replicator(cfg, name, logs[name]) for name in targets}
        procs += reps.values()
        if expect_halt:
            return db, [_wait_halted(dsn, name, reps[name], logs[name]) for name, dsn in targets.items()]
        for name, dsn in targets.items():
            _wait_applied(dsn, name, ing.topic, end, reps[name], logs[name])
        differing = [f"{name}: {table}" for name, dsn in targets.items() for table in TABLES
                     if _rows(dsn, db, table) != _rows(stack.primary, db, table)]
        return db, differing
    finally:
        stop_processes(procs)
        stop_ingress(ing)
        if logs_out is not None:
            logs_out.update({name: path.read_text() for name, path in logs.items()})


def _all_classes(cur) -> None:
    _temporary_tables(cur)
    _triggers(cur)
    _implicit_values(cur)


def test_unsafe_statements_reach_both_replicas_as_the_primary_wrote_them(stack, tmp_path):
    logs: dict[str, str] = {}
    db, differing = _replicate(stack, tmp_path, _all_classes, rules=RULES_ON, logs_out=logs)
    assert differing == [], f"replicas differ from the primary in {differing}"
    for name, text in logs.items():  # the safe statements were checked against their row copies, equal
        found = re.search(r"self-verified (\d+) transactions applied from statements, (\d+) differences", text)
        assert found and int(found[1]) >= 1 and found[2] == "0", (name, text[-3000:])
    rows = _rows(stack.primary, db, "tt_target")
    assert [r[1] for r in rows] == [10, 20, 30, 1999, 7]  # (what the scenario means: the shadow was read)
    assert len(_rows(stack.primary, db, "audit")) == 5
    assert len({r[2] for r in _rows(stack.primary, db, "stamped")[:3]}) >= 2  # (times over a second apart)


def test_without_the_rules_trigger_and_clock_default_rows_differ(stack, tmp_path):
    """The control: what the rules prevent happens without them (so the test above can fail)."""

    def silent_classes(cur) -> None:
        _triggers(cur)
        _implicit_values(cur)

    _, differing = _replicate(stack, tmp_path, silent_classes, rules=False, self_verify="off")
    assert {d.split(": ")[1] for d in differing} >= {"audit", "stamped"}, differing
    assert not any(d.endswith(("items", "real_t")) for d in differing), differing


@pytest.mark.parametrize("scenario, table, what", [
    (_triggers, "audit", "the target has no such row"),  # the trigger's row: only in the row copy
    (_implicit_values, "stamped", "the target's row differs from the row copy"),  # the replicator's clock
])
def test_self_verification_halts_on_what_the_rules_would_have_prevented(stack, tmp_path, scenario, table, what):
    """Without the rules, each silent class is applied from its statements and differs: the check
    against the row copy finds it and halts the target, naming the GTID, table and key."""
    _, details = _replicate(stack, tmp_path, scenario, rules=False, self_verify="expect-halt")
    for detail in details:
        assert re.search(rf"self-verification: gtid 0-\d+-\d+ table ss_\w+\.{table} key \(id=\d+\): {what}",
                         detail), details


def test_the_ingress_flags_each_class_unsafe_and_publishes_nothing_for_temporary_only_transactions(stack, tmp_path):
    import asyncio

    from .conftest import read_topic

    ing = start_ingress(stack, tmp_path)
    try:
        c = _conn(ing.dsn(stack.primary))
        db = f"sf_{uuid.uuid4().hex[:8]}"
        with c.cursor() as cur:
            _schema(cur, db)
            cur.execute("INSERT INTO real_t VALUES (10, 10)")  # safe
            cur.execute("INSERT INTO stamped (id, v) VALUES (10, 10)")  # clock default
            cur.execute("INSERT INTO items (name) VALUES ('x')")  # trigger
            cur.execute("CREATE TEMPORARY TABLE only_tmp (n INT)")
            cur.execute("BEGIN")
            cur.execute("INSERT INTO only_tmp VALUES (1)")
            cur.execute("COMMIT")
            cur.execute("INSERT INTO real_t VALUES (11, 11)")  # while a temporary table exists
            cur.execute("DROP TEMPORARY TABLE only_tmp")
            cur.execute("INSERT INTO real_t VALUES (12, 12)")  # safe again
        c.close()
        events = asyncio.run(read_topic(stack.kafka, ing.topic, min_count=13))
    finally:
        stop_ingress(ing)
    writes = [(st.sql, st.unsafe) for ev in events for st in ev.statements
              if st.kind == "dml" and not st.sql.startswith("INSERT INTO real_t VALUES (1, 1)")]
    assert writes == [
        ("INSERT INTO real_t VALUES (10, 10)", False),
        ("INSERT INTO stamped (id, v) VALUES (10, 10)", True),
        ("INSERT INTO items (name) VALUES ('x')", True),
        ("INSERT INTO real_t VALUES (11, 11)", True),
        ("INSERT INTO real_t VALUES (12, 12)", False),
    ]
    assert not any("only_tmp" in st.sql for ev in events for st in ev.statements)




def _savepoints_straight_to_the_primary(primary: Dsn, db: str) -> None:
    """ORM-style nested transactions around the ingress: the binlog reader's copy is the only one."""
    c = _conn(primary)
    with c.cursor() as cur:
        cur.execute(f"USE {db}")
        c.begin()
        for sql in ("INSERT INTO real_t VALUES (101, 1)", "SAVEPOINT s1", "INSERT INTO real_t VALUES (102, 2)",
                    "RELEASE SAVEPOINT s1", "SAVEPOINT s2", "INSERT INTO real_t VALUES (103, 3)",
                    "ROLLBACK TO SAVEPOINT s2", "UPDATE real_t SET v = 9 WHERE id = 101"):
            cur.execute(sql)
        c.commit()
    c.close()


def test_the_statement_safety_suite_leaves_replicas_and_pg_shards_equal(stack, tmp_path):
    """Issue 20 #9: every class through the ingress and savepoint transactions straight to the primary;
    both replicas and both PostgreSQL shard targets end equal (``dbmux verify``), and the replicas'
    self-verification checked statement-applied transactions and found no difference."""
    from .test_real_traffic import _config
    from .test_shard_targets import _drop_history

    tag = uuid.uuid4().hex[:8]
    db = f"ssx_{tag}"
    names = {"r1": f"sx1{tag}", "r2": f"sx2{tag}", "sa": f"sxa{tag}", "sb": f"sxb{tag}"}
    ing = start_ingress(stack, tmp_path)
    _drop_history(stack.primary, list(stack.shards))
    cfg = _config(tmp_path, stack, ing.topic, db, f"ssx_unused_{tag}", names)
    logs = {n: tmp_path / f"{n}.log" for n in names.values()}
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    try:
        procs += [_start_replicator(cfg, n, logs[n]) for n in names.values()]
        c = _conn(ing.dsn(stack.primary))
        procs[0].send_signal(signal.SIGSTOP)  # the ingress's copies first in the topic: safe transactions are
        try:  # applied from their statements (and self-verified) whatever the race with the binlog reader
            with c.cursor() as cur:
                _schema(cur, db)
                _all_classes(cur)
        finally:
            procs[0].send_signal(signal.SIGCONT)
        c.close()
        _savepoints_straight_to_the_primary(stack.primary, db)
        res = verify_until_equal(cfg, 600)
        tails = "".join(f"\n--- {n}\n{p.read_text(errors='replace')[-2500:]}" for n, p in logs.items())
        assert res.returncode == 0 and "all 4 targets equal and caught up" in res.stdout, \
            res.stdout + res.stderr + tails
    finally:
        stop_processes(procs)
        stop_ingress(ing)
    for key in ("r1", "r2"):
        text = logs[names[key]].read_text(errors="replace")
        found = re.search(r"self-verified (\d+) transactions applied from statements, (\d+) differences", text)
        assert found and int(found[1]) >= 1 and found[2] == "0", text[-3000:]
    assert [r[1] for r in _rows(stack.primary, db, "real_t") if r[0] > 100] == [9, 2]
