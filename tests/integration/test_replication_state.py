"""`dbmux status` and `dbmux verify` against the primary itself (issue 12, findings 10 and 11), on the real
stack with real replicators:

- a target whose replicator is stopped while the primary commits more -- some of it never published,
  some of it outside the target's tables -- shows lag against the primary in `dbmux status` (not
  "running, lag 0"), and `dbmux verify` fails naming it although its tables are equal; restarted, it
  holds the unpublished GTID as a gap, which `dbmux status` shows at once (before the replicator's gap
  alert), then as "waiting for gap"; the binlog reader closes the gap and both commands are satisfied
  again (the replicator's status row still says "waiting for gap": caught up wins);
- a target halted by a permanent apply error fails `dbmux verify` even once its tables are made equal.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from dbmux.core.dsn import Dsn

from .conftest import pipeline_config, run_dbmux, start_binlog_reader, start_ingress, stop_ingress, stop_processes
from .test_replicator_mysql import _conn, _start_replicator, _wait_equal

pytestmark = pytest.mark.integration


def _config(tmp: Path, stack, topic: str, target: str, replica: Dsn, db: str, gap_alert_ms: int = 600000) -> Path:
    return pipeline_config(tmp / f"{target}-{gap_alert_ms}.toml", stack, topic, {target: replica}, f"{db}.*",
                           extra=f'gap_alert_ms = {gap_alert_ms}\non_error = "halt"')


def _execute(dsn: Dsn, *sql: str) -> None:
    c = _conn(dsn)
    try:
        with c.cursor() as cur:
            for stmt in sql:
                cur.execute(stmt)
    finally:
        c.close()


def _gtid_pos(dsn: Dsn) -> str:
    c = _conn(dsn)
    try:
        with c.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            return cur.fetchone()[0]
    finally:
        c.close()


def _status_line(cfg: Path, target: str):
    out = run_dbmux("status", "-c", str(cfg), check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith(target + " ")), "")
    assert line, out.stdout + out.stderr
    return out, line


def _wait_status(cfg: Path, target: str, ok, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while True:
        out, line = _status_line(cfg, target)
        if ok(out, line):
            return out, line
        if time.monotonic() > deadline:
            raise AssertionError(f"status never showed {what}:\n{out.stdout}{out.stderr}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def test_stopped_target_is_behind_the_primary_in_status_and_verify(stack, tmp_path):
    ing = start_ingress(stack, tmp_path)
    target, db, other = f"st{uuid.uuid4().hex[:8]}", f"rs_{uuid.uuid4().hex[:8]}", f"rso_{uuid.uuid4().hex[:8]}"
    cfg = _config(tmp_path, stack, ing.topic, target, stack.replicas[0], db)
    log = tmp_path / "replicator.log"
    via = ing.dsn(stack.primary)
    procs: list[subprocess.Popen] = []
    try:
        _execute(via, f"CREATE DATABASE {db}", f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))",
                 f"INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b')", f"CREATE DATABASE {other}",
                 f"CREATE TABLE {other}.u (id INT PRIMARY KEY)")
        rep = _start_replicator(cfg, target, log)
        procs.append(rep)
        _wait_equal(f"SELECT * FROM {db}.t ORDER BY id", stack.primary, stack.replicas[0])
        out, line = _wait_status(cfg, target, lambda o, ln: o.returncode == 0, "running, caught up")
        assert line.split()[2] == "0" and "running" in line, out.stdout
        res = run_dbmux("verify", "-c", str(cfg), "--target", target, check=False)
        assert res.returncode == 0 and "replication: caught up" in res.stdout, res.stdout + res.stderr

        _stop(rep)
        before_gap = _gtid_pos(stack.primary)
        # the primary commits three more transactions, none of them in the target's tables: one directly
        # (no binlog reader runs: never published), then two through the ingress
        _execute(stack.primary, f"INSERT INTO {other}.u VALUES (1)")
        _execute(via, f"INSERT INTO {other}.u VALUES (2)")
        _execute(via, f"INSERT INTO {other}.u VALUES (3)")
        primary_now = _gtid_pos(stack.primary)

        out, line = _status_line(cfg, target)
        assert out.returncode == 1, out.stdout
        assert line.split()[2] == "3" and "behind: 3 transactions behind the primary" in line, out.stdout
        assert f"primary at {primary_now}" in out.stdout
        # its tables are equal, yet it is not caught up
        res = run_dbmux("verify", "-c", str(cfg), "--target", target, "--wait", "1", check=False)
        assert res.returncode == 1, res.stdout + res.stderr
        assert f"verify: NOT CAUGHT UP on {target} (behind by 3 transactions)" in res.stdout, res.stdout
        assert "all 1 targets equal" not in res.stdout and f"{db}.t" in res.stdout

        # restarted, it applies nothing: the first missing GTID is not on the topic, the two after it are
        # held behind it; the replicator's gap alert is 10 minutes away, status says so now
        started = log.read_text().count("replicating")
        rep = _start_replicator(cfg, target, log)
        procs.append(rep)
        deadline = time.monotonic() + 60
        while log.read_text().count("replicating") == started:
            assert rep.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(1.0)  # it has read the two events after the gap by now, and holds them
        out, line = _status_line(cfg, target)
        assert out.returncode == 1 and line.split()[2] == "3", out.stdout
        assert "behind: 3 transactions behind" in line and "2 events on the topic past its position" in line, line
        assert rep.poll() is None

        # with a short gap alert the replicator reports the gap in its status row...
        _stop(rep)
        fast = _config(tmp_path, stack, ing.topic, target, stack.replicas[0], db, gap_alert_ms=1000)
        procs.append(_start_replicator(fast, target, log))
        out, line = _wait_status(cfg, target, lambda o, ln: "waiting for gap: domain 0 waiting for seq" in ln,
                                 "the replicator's gap alert")
        assert out.returncode == 1 and line.split()[2] == "3" and "3 transactions behind" in line, out.stdout
        res = run_dbmux("verify", "-c", str(cfg), "--target", target, "--wait", "1", check=False)
        assert res.returncode == 1 and f"NOT CAUGHT UP on {target} (waiting for gap)" in res.stdout, res.stdout

        # ...and once the binlog reader's copy closes it, the target is caught up, whatever the row still says
        procs.append(start_binlog_reader(cfg, tmp_path / "binlog.log", "--from-gtid", before_gap))
        out, line = _wait_status(cfg, target, lambda o, ln: o.returncode == 0, "caught up again")
        assert line.split()[1:3] == [primary_now, "0"] and "running" in line, out.stdout
        res = run_dbmux("verify", "-c", str(cfg), "--target", target, check=False)
        assert res.returncode == 0 and "replication: caught up" in res.stdout, res.stdout + res.stderr
    finally:
        stop_processes(procs)
        stop_ingress(ing)
        _execute(stack.primary, f"DROP DATABASE IF EXISTS {db}", f"DROP DATABASE IF EXISTS {other}")
        _execute(stack.replicas[0], f"DROP DATABASE IF EXISTS {db}")


def test_halted_target_fails_verify_even_when_its_tables_are_equal(stack, tmp_path):
    ing = start_ingress(stack, tmp_path)
    target, db = f"sh{uuid.uuid4().hex[:8]}", f"rh_{uuid.uuid4().hex[:8]}"
    replica = stack.replicas[1]
    cfg = _config(tmp_path, stack, ing.topic, target, replica, db)
    log = tmp_path / "replicator.log"
    via = ing.dsn(stack.primary)
    procs: list[subprocess.Popen] = []
    try:
        _execute(via, f"CREATE DATABASE {db}", f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))",
                 f"INSERT INTO {db}.t VALUES (1, 'a')")
        rep = _start_replicator(cfg, target, log)
        procs.append(rep)
        _wait_equal(f"SELECT * FROM {db}.t ORDER BY id", stack.primary, replica)

        # a row written on the replica behind the replicator's back: the primary's insert of the same key
        # is a permanent error (duplicate key), and the target halts
        _execute(replica, f"INSERT INTO {db}.t VALUES (100, 'replica')")
        _execute(via, f"INSERT INTO {db}.t VALUES (100, 'primary')")
        assert rep.wait(60) == 3, log.read_text()[-3000:]
        out, line = _status_line(cfg, target)
        assert out.returncode == 1 and "halted" in line and "Duplicate entry" in line, out.stdout

        # someone "repairs" the row by hand: the tables are equal, but the target is still halted
        _execute(replica, f"UPDATE {db}.t SET v = 'primary' WHERE id = 100")
        _wait_equal(f"SELECT * FROM {db}.t ORDER BY id", stack.primary, replica)
        res = run_dbmux("verify", "-c", str(cfg), "--target", target, check=False)
        assert res.returncode == 1, res.stdout + res.stderr
        assert f"verify: NOT CAUGHT UP on {target} (halted)" in res.stdout, res.stdout
        assert "replication: NOT CAUGHT UP, HALTED" in res.stdout and "Duplicate entry" in res.stdout
        assert f"{db}.t" in res.stdout and "DIFFERENT" not in res.stdout
    finally:
        stop_processes(procs)
        stop_ingress(ing)
        _execute(stack.primary, f"DROP DATABASE IF EXISTS {db}")
        _execute(replica, f"DROP DATABASE IF EXISTS {db}")
