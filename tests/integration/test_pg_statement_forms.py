"""PostgreSQL targets on the real stack: statements with no table meaning there (accounts, routines,
triggers, events, FLUSH, ANALYZE, ...) are not applied and never halt the target -- through the ingress
and straight to the primary; statement copies PostgreSQL cannot type faithfully (an expression written
into a LONGBLOB column, a multi-table UPDATE, a table with triggers) are applied from the binlog reader's
row copy: held as a GTID gap (never a halt) while that copy is missing."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
import uuid

import asyncpg
import pytest

from .conftest import (
    free_port,
    pipeline_config,
    run_dbmux,
    start_binlog_reader,
    start_ingress,
    stop_ingress,
    stop_processes,
)
from .test_replicator_mysql import _conn, _start_replicator
from .test_shard_targets import _drop_history


def _not_applied(port: int, target: str) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for m in re.finditer(r'^dbmux_replicator_statements_not_applied_total\{(.*)\} (\S+)$', body, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m[1]))
        if labels.get("target") == target:
            out[labels["kind"]] = float(m[2])
    return out


def _primary_rows(stack, query: str) -> list[tuple]:
    c = _conn(stack.primary)
    try:
        with c.cursor() as cur:
            cur.execute(query)
            return [tuple(bytes(v) if isinstance(v, (bytes, bytearray)) else v for v in r) for r in cur.fetchall()]
    finally:
        c.close()


def _pg(stack, target: str, query: str) -> tuple[list[tuple] | None, str | None]:
    """Rows of ``query`` on the PostgreSQL target (None: not there yet) and the target's status."""
    d = stack.shards[0]

    async def run():
        conn = await asyncpg.connect(host=d.host, port=d.port, user=d.user, password=d.password, database=d.database)
        try:
            rows: list[tuple] | None = None
            state = None
            try:
                state = await conn.fetchval("SELECT state FROM dbmux_meta.status WHERE target = $1", target)
                rows = [tuple(r) for r in await conn.fetch(query)]
            except asyncpg.PostgresError:  # not created yet
                pass
            return rows, state
        finally:
            await conn.close()

    return asyncio.run(run())


def _wait(what: str, pred, timeout_s: float = 90.0, proc=None, log=None):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s}s (exit {proc.poll() if proc else None})\n"
                         + (log.read_text()[-4000:] if log is not None and log.exists() else ""))


@pytest.mark.parametrize("shard", [False, True], ids=["target", "shard-target"])
def test_statements_without_table_meaning_are_not_applied_and_never_halt(stack, tmp_path, shard):
    """A PostgreSQL target, and a PostgreSQL shard target (the tables are reference tables: it holds
    every row)."""
    ing = start_ingress(stack, tmp_path)
    db, tag = f"na_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:6]
    target, port = f"pgna_{tag}", free_port()
    users = [f"na_{tag}_{i}" for i in (1, 2)]
    extra, keys = f"metrics_port = {port}", {}
    if shard:
        _drop_history(stack.primary, [stack.shards[0]])
        extra += f'\n[shardmap]\nshards = ["{target}", "other"]\nreference_tables = ["{db}.*"]'
        keys = {"shard": target}
    cfg = pipeline_config(tmp_path / "na.toml", stack, ing.topic, {target: stack.shards[0]}, tables=f"{db}.*",
                          extra=extra, **keys)
    via = ing.dsn(stack.primary)
    procs = []
    log = tmp_path / "rep.log"
    table_rows = f"SELECT id, v FROM {db}.t ORDER BY id"
    audit_rows = f"SELECT id, t_id, note FROM {db}.audit ORDER BY id"
    try:
        c = _conn(via)
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
            cur.execute(f"CREATE TABLE {db}.audit (id INT AUTO_INCREMENT PRIMARY KEY, t_id INT, note VARCHAR(40))")
        c.close()
        procs.append(start_binlog_reader(cfg, tmp_path / "binlog.log"))
        procs.append(_start_replicator(cfg, target, log))
        c = _conn(via, database=db)  # through the ingress
        with c.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1, 'a')")
        _wait("the replicator running", lambda: _pg(stack, target, f'SELECT id FROM "{db}".t')[0] == [(1,)],
              proc=procs[1], log=log)
        with c.cursor() as cur:  # interleaved with table writes, while the target replicates
            for sql in [
                f"CREATE USER '{users[0]}'@'localhost' IDENTIFIED BY 'na-secret'",
                f"GRANT SELECT ON {db}.* TO '{users[0]}'@'localhost'",
                "INSERT INTO t VALUES (2, 'b')",
                "DROP PROCEDURE IF EXISTS p_fill",
                "CREATE PROCEDURE p_fill(n INT) BEGIN INSERT INTO t VALUES (n, 'proc'); END",
                "CREATE TRIGGER t_audit AFTER INSERT ON t FOR EACH ROW "
                "INSERT INTO audit (t_id, note) VALUES (NEW.id, CONCAT('new ', NEW.v))",
                "INSERT INTO t VALUES (3, 'c')",  # the trigger's row comes with the row form
                "CALL p_fill(4)",
                "FLUSH PRIVILEGES",
                "ANALYZE TABLE t",
                "CREATE EVENT ev_purge ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM t WHERE id < 0",
                "INSERT INTO t VALUES (5, 'e')",
                f"DROP USER '{users[0]}'@'localhost'",
            ]:
                cur.execute(sql)
        d = _conn(stack.primary, database=db)  # straight to the primary: the binlog reader's copies only
        with d.cursor() as cur:
            for sql in [
                f"CREATE USER '{users[1]}'@'localhost'",
                f"GRANT INSERT ON {db}.t TO '{users[1]}'@'localhost'",
                "DROP PROCEDURE IF EXISTS p_other",
                "CREATE PROCEDURE p_other() SELECT 1",
                "CREATE TRIGGER t_upper BEFORE UPDATE ON t FOR EACH ROW SET NEW.v = UPPER(NEW.v)",
                "UPDATE t SET v = 'x' WHERE id = 1",
                "FLUSH PRIVILEGES",
                "INSERT INTO t VALUES (6, 'f')",
                f"DROP USER '{users[1]}'@'localhost'",
            ]:
                cur.execute(sql)
        d.close()
        with c.cursor() as cur:
            cur.execute("UPDATE t SET v = 'y' WHERE id = 2")  # t_upper makes it 'Y': from the row form
            cur.execute("INSERT INTO t VALUES (7, 'g')")
        c.close()
        expected_t, expected_audit = _primary_rows(stack, table_rows), _primary_rows(stack, audit_rows)
        assert expected_t[1] == (2, "Y") and len(expected_audit) == 5, (expected_t, expected_audit)

        def converged():
            rows, state = _pg(stack, target, table_rows.replace(f"{db}.", f'"{db}".'))
            audit, _ = _pg(stack, target, audit_rows.replace(f"{db}.", f'"{db}".'))
            return rows == expected_t and audit == expected_audit and state

        state = _wait("the PostgreSQL target has every row", converged, proc=procs[1], log=log)
        assert state == "running" and procs[1].poll() is None
        counted = _wait("the last not-applied statement counted",
                        lambda: (n := _not_applied(port, target)).get("account", 0) >= 6 and n)
        assert counted == {"account": 6, "routine": 4, "trigger": 2, "server": 2, "maintenance": 1, "event": 1}, counted
        text = log.read_text()
        assert "HALTED" not in text and "not applied to PostgreSQL" in text and "na-secret" not in text
    finally:
        stop_processes(procs)
        stop_ingress(ing)
        p = _conn(stack.primary)
        with p.cursor() as cur:
            for u in users:
                cur.execute(f"DROP USER IF EXISTS '{u}'@'localhost'")
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        p.close()
        if shard:
            _drop_history(stack.primary, [stack.shards[0]])


def test_statements_postgresql_cannot_type_come_from_the_row_form(stack, tmp_path):
    """The issue's case: ``INSERT INTO p3.big VALUES (2, REPEAT('z', 1))`` into a LONGBLOB column (PostgreSQL:
    bytea, but the expression is text). Without the binlog reader the event is held as a gap (the target
    waits, it does not halt); with it, the row copy is applied and the target equals the primary."""
    ing = start_ingress(stack, tmp_path)
    db, target = f"p3_{uuid.uuid4().hex[:8]}", f"pgrf_{uuid.uuid4().hex[:6]}"
    cfg = pipeline_config(tmp_path / "rf.toml", stack, ing.topic, {target: stack.shards[0]}, tables=f"{db}.*",
                          extra="gap_alert_ms = 200")
    via = ing.dsn(stack.primary)
    log = tmp_path / "rep.log"
    procs = []
    query = f"SELECT id, b, note FROM {db}.big ORDER BY id"
    pg_query = query.replace(f"{db}.", f'"{db}".')

    def pg_rows():
        rows, state = _pg(stack, target, pg_query)
        return [(i, bytes(b) if b is not None else None, n) for i, b, n in rows or []], state

    try:
        c = _conn(via)
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"USE {db}")
            cur.execute("CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB, note TEXT)")
            cur.execute("CREATE TABLE other (id INT PRIMARY KEY, note TEXT)")
            cur.execute("CREATE TABLE flags (id INT PRIMARY KEY, f BIT(3), y YEAR)")
            cur.execute("INSERT INTO big VALUES (1, 'a', 'one')")
        procs.append(_start_replicator(cfg, target, log))
        _wait("the first row (statement form)", lambda: pg_rows()[0] == [(1, b"a", "one")], proc=procs[0], log=log)
        with _conn(stack.primary).cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            (before,) = cur.fetchone()
        with c.cursor() as cur:
            cur.execute(f"INSERT INTO {db}.big VALUES (2, REPEAT('z', 1), 'two')")
            cur.execute("INSERT INTO big VALUES (3, 'c', 'three')")
        rows, state = _wait("the held event reported as a gap",
                            lambda: (r := pg_rows())[1] == "waiting for gap" and r, proc=procs[0], log=log)
        assert rows == [(1, b"a", "one")]  # 2 waits for its row form, 3 behind it
        assert procs[0].poll() is None and "HALTED" not in log.read_text()

        procs.append(start_binlog_reader(cfg, tmp_path / "binlog.log", "--from-gtid", before))
        _wait("the row copy applied", lambda: pg_rows()[0] == _primary_rows(stack, query), proc=procs[0], log=log)
        with c.cursor() as cur:  # with the binlog reader running
            cur.execute("INSERT INTO other VALUES (1, 'joined'), (3, 'joined too')")
            cur.execute("UPDATE big JOIN other ON big.id = other.id SET big.note = other.note")  # multi-table
            cur.execute("UPDATE big SET b = CONCAT(b, 'x') WHERE id = 1")  # an expression into LONGBLOB
            cur.execute("INSERT INTO big VALUES (4, X'00FF', 'four')")  # plain values: statement form
            cur.execute("INSERT INTO big (id, b, note) VALUES (5, 'e', INET_ATON('10.0.0.1'))")  # unknown function
            cur.execute("INSERT INTO flags VALUES (1, b'101', 24), (2, NULL, 1999)")  # BIT; a two-digit YEAR
        c.close()
        flag_rows = f"SELECT id, f + 0, y FROM {db}.flags ORDER BY id"
        assert _primary_rows(stack, flag_rows) == [(1, 5, 2024), (2, None, 1999)]
        pg_flags = f'SELECT id, f::bit(3)::int, y FROM "{db}".flags ORDER BY id'
        _wait("BIT and YEAR from the row form",
              lambda: _pg(stack, target, pg_flags)[0] == [(1, 5, 2024), (2, None, 1999)], proc=procs[0], log=log)
        expected = _primary_rows(stack, query)
        assert expected[0] == (1, b"ax", "joined") and expected[4] == (5, b"e", "167772161"), expected
        rows, state = _wait("the target equal to the primary", lambda: (r := pg_rows())[0] == expected and r,
                            proc=procs[0], log=log)
        assert state != "halted" and procs[0].poll() is None  # (the status row keeps "waiting for gap" once set)
        res = run_dbmux("verify", "-c", str(cfg), "--target", target, check=False, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        stop_processes(procs)
        stop_ingress(ing)
        p = _conn(stack.primary)
        with p.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        p.close()

