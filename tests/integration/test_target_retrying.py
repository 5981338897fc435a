"""A target that fails the same way again and again with a transient error is shown as "retrying", with
the error, by ``dbmux status`` -- not as merely "behind" -- and as running again once it applies.

go-sql-driver/mysql's suite through the ingress left both replicas retrying one GTID for minutes (a lost
connection: a statement over their max_allowed_packet) while ``dbmux status`` said "behind: 993
transactions". Here a row lock held on the target (its lock wait timeout lowered to 1 s) makes every
attempt fail with error 1205 until the lock is released.
"""

from __future__ import annotations

import time
import uuid

from .conftest import pipeline_config, run_dbmux, start_binlog_reader, start_ingress, stop_ingress, stop_processes
from .test_replicator_mysql import _conn, _start_replicator, _wait_equal


def _status(cfg) -> str:
    return run_dbmux("status", "-c", str(cfg), check=False).stdout


def _wait_for(cfg, text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    out = ""
    while time.monotonic() < deadline:
        out = _status(cfg)
        if text in out:
            return out
        time.sleep(0.5)
    raise AssertionError(f"`dbmux status` never said {text!r}:\n{out}")


def test_a_target_failing_again_and_again_is_shown_retrying_with_its_error(stack, tmp_path):
    replica = stack.replicas[1]
    ing = start_ingress(stack, tmp_path)
    db = f"retry_{uuid.uuid4().hex[:8]}"
    cfg = pipeline_config(tmp_path / "retry.toml", stack, ing.topic, {"retry": replica}, tables=f"{db}.*")
    procs: list = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    with _conn(replica).cursor() as cur:
        cur.execute("SELECT @@GLOBAL.innodb_lock_wait_timeout")
        (was,) = cur.fetchone()
    holder = None
    try:
        direct = _conn(stack.primary)
        with direct.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")
            cur.execute(f"INSERT INTO {db}.t VALUES (1, 0)")
        with _conn(replica).cursor() as cur:
            cur.execute("SET GLOBAL innodb_lock_wait_timeout = 1")  # for the replicator's sessions
        procs.append(_start_replicator(cfg, "retry", tmp_path / "retry.log"))
        _wait_equal(f"SELECT * FROM {db}.t", stack.primary, replica)
        _wait_for(cfg, "running", 30)

        holder = _conn(replica)
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"SELECT v FROM {db}.t WHERE id = 1 FOR UPDATE")
        with direct.cursor() as cur:
            cur.execute(f"UPDATE {db}.t SET v = 1 WHERE id = 1")
        out = _wait_for(cfg, "retrying", 90)
        assert "attempts in a row failed; last: ApplyError" in out and "Lock wait timeout" in out, out

        holder.rollback()  # the lock goes: the next attempt applies
        _wait_equal(f"SELECT * FROM {db}.t", stack.primary, replica)
        out = _wait_for(cfg, "running", 60)
        assert "retrying" not in out, out
    finally:
        if holder is not None:
            holder.close()
        with _conn(replica).cursor() as cur:
            cur.execute(f"SET GLOBAL innodb_lock_wait_timeout = {was}")
        stop_processes(procs)
        stop_ingress(ing)
        for dsn in (stack.primary, replica):
            with _conn(dsn).cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {db}")
