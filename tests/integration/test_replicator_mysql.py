"""Replicator to a MariaDB replica: the ingress's stream applied exactly once, in order, surviving
SIGKILL at random moments."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pymysql
import pytest

from dbmux.core.dsn import Dsn

from .conftest import REPO, start_ingress, stop_ingress


def _conn(dsn: Dsn, **kw):
    return pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                           autocommit=True, **kw)


def _new_database(via: Dsn, prefix: str, table_ddl: str) -> tuple[str, pymysql.Connection]:
    """A fresh database with table ``t`` (``table_ddl``: its column list), created through ``via``;
    returns its name and the still open connection."""
    db = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = _conn(via)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t ({table_ddl})")
    return db, conn


def _write_config(tmp: Path, stack, ingress, target: str, replica: Dsn, **target_keys) -> Path:
    extra = "".join(f'{k} = "{v}"\n' for k, v in target_keys.items())
    cfg = tmp / f"{target}.toml"
    cfg.write_text(f"""
[kafka]
bootstrap = "{stack.kafka}"
topic = "{ingress.topic}"
[primary]
url = "{stack.primary.url()}"
[replicator]
batch_linger_ms = 5
gap_alert_ms = 2000
[targets.{target}]
url = "{replica.url()}"
{extra}""")
    return cfg


def _start_replicator(cfg: Path, target: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dbmux.cli", "-v", "replicate", "-c", str(cfg),
                             "--target", target], cwd=REPO, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _wait_equal(query: str, a: Dsn, b: Dsn, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        results = []
        for dsn in (a, b):
            try:
                c = _conn(dsn)
                with c.cursor() as cur:
                    cur.execute(query)
                    results.append(cur.fetchall())
                c.close()
            except pymysql.err.MySQLError as exc:
                results.append(exc)
        if results[0] == results[1]:
            return results[0]
        last = results
        time.sleep(0.2)
    raise AssertionError(f"not equal within {timeout_s}s: {str(last)[:2000]}")


@pytest.fixture
def pipeline(stack, tmp_path):
    ing = start_ingress(stack, tmp_path)
    target = f"r{uuid.uuid4().hex[:8]}"
    cfg = _write_config(tmp_path, stack, ing, target, stack.replicas[0])
    log = tmp_path / "replicator.log"
    procs: list[subprocess.Popen] = []

    def start():
        p = _start_replicator(cfg, target, log)
        procs.append(p)
        return p

    yield ing, target, cfg, start, log
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    stop_ingress(ing)


def test_statements_replicate_in_order(stack, pipeline):
    ing, target, cfg, start, log = pipeline
    db = f"rp_{uuid.uuid4().hex[:8]}"
    via = ing.dsn(stack.primary)
    c = _conn(via)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40), at DATETIME(6), "
                    "n DECIMAL(8,2))")
        cur.execute("INSERT INTO t (v, at, n) VALUES ('a', NOW(6), 1.5), ('b', NOW(6), NULL)")
        c.begin()
        cur.execute("UPDATE t SET n = 7 WHERE v = 'b'")
        cur.execute("INSERT INTO t (v, at) VALUES ('c', NOW(6))")
        c.commit()
        c.begin()
        cur.execute("DELETE FROM t")
        c.rollback()
        cur.execute("ALTER TABLE t ADD COLUMN extra INT DEFAULT 5")
        cur.execute("CREATE INDEX t_v ON t (v)")
        cur.execute("UPDATE t SET extra = id * 10")
    c.close()
    proc = start()
    rows = _wait_equal(f"SELECT * FROM {db}.t ORDER BY id", stack.primary, stack.replicas[0])
    assert [r[1] for r in rows] == ["a", "b", "c"] and rows[1][3] == 7 and rows[2][4] == 30
    idx = _wait_equal(f"SHOW INDEX FROM {db}.t WHERE Key_name = 't_v'", stack.primary, stack.replicas[0])
    assert idx
    assert proc.poll() is None, log.read_text()
    from .conftest import run_dbmux

    deadline = time.monotonic() + 30
    while True:  # status: running, nothing left to apply
        out = run_dbmux("status", "-c", str(cfg), check=False)
        line = next(x for x in out.stdout.splitlines() if x.startswith(target))
        if out.returncode == 0 and line.split()[2] == "0" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert out.returncode == 0 and "running" in line and line.split()[2] == "0", out.stdout


def create_ledger(via: Dsn, db: str) -> None:
    """The independent exactly-once check: each workload transaction adds a ledger row and bumps
    the counter, so counter == ledger rows == transactions, on every copy."""
    c = _conn(via)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.ledger (id CHAR(32) PRIMARY KEY, payload VARCHAR(64))")
        cur.execute(f"CREATE TABLE {db}.counter (id INT PRIMARY KEY, n BIGINT NOT NULL)")
        cur.execute(f"INSERT INTO {db}.counter VALUES (1, 0)")
    c.close()


def assert_ledger_exactly_once(stack, cfg: Path, target: str, db: str, *, min_n: int) -> None:
    """After a ledger workload: the replica converges on the primary, its counter equals its number
    of ledger rows (no transaction missed or applied twice), and `dbmux verify` agrees."""
    import os

    from .conftest import run_dbmux

    replica = stack.replicas[0]
    n = _wait_equal(f"SELECT n FROM {db}.counter", stack.primary, replica, timeout_s=120)[0][0]
    assert n > min_n
    assert _wait_equal(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM {db}.ledger", stack.primary,
                       replica) == ((n, n),)
    _wait_equal(f"CHECKSUM TABLE {db}.ledger, {db}.counter EXTENDED", stack.primary, replica)
    env = {**os.environ, f"DBMUX_TARGET_{target.upper()}_TABLES": f"{db}.*"}
    out = run_dbmux("verify", "-c", str(cfg), "--target", target, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{db}.ledger" in out.stdout and f"{db}.counter" in out.stdout


def _workload(via: Dsn, db: str, stop: threading.Event, errors: list) -> None:
    try:
        c = _conn(via)
        with c.cursor() as cur:
            while not stop.is_set():
                c.begin()
                cur.execute(f"INSERT INTO {db}.ledger (id, payload) VALUES (%s, %s)",
                            (uuid.uuid4().hex, random.randbytes(20).hex()))
                cur.execute(f"UPDATE {db}.counter SET n = n + 1 WHERE id = 1")
                c.commit()
        c.close()
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def test_sigkill_five_times_under_load_applies_each_transaction_exactly_once(stack, pipeline):
    ing, target, cfg, start, log = pipeline
    db = f"rk_{uuid.uuid4().hex[:8]}"
    via = ing.dsn(stack.primary)
    create_ledger(via, db)
    stop, errors = threading.Event(), []
    workers = [threading.Thread(target=_workload, args=(via, db, stop, errors)) for _ in range(3)]
    for w in workers:
        w.start()
    rng = random.Random()
    try:
        proc = start()
        for _ in range(5):
            time.sleep(rng.uniform(0.8, 2.5))
            assert proc.poll() is None, log.read_text()[-3000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = start()
        time.sleep(1.0)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert not errors, errors
    assert_ledger_exactly_once(stack, cfg, target, db, min_n=50)
    assert proc.poll() is None, log.read_text()[-3000:]

def _diverge_and_write(stack, ing, db: str) -> None:
    via = ing.dsn(stack.primary)
    c = _conn(via)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute(f"INSERT INTO {db}.t VALUES (1, 'one')")
    c.close()


@pytest.mark.parametrize("policy", ["halt", "dead-letter"])
def test_diverged_target_halts_or_dead_letters(stack, tmp_path, policy):
    import asyncio

    from .conftest import read_topic

    ing = start_ingress(stack, tmp_path)
    target = f"d{uuid.uuid4().hex[:8]}"
    cfg = _write_config(tmp_path, stack, ing, target, stack.replicas[1], on_error=policy)
    log = tmp_path / "replicator.log"
    db = f"dv_{uuid.uuid4().hex[:8]}"
    proc = None
    try:
        _diverge_and_write(stack, ing, db)
        proc = _start_replicator(cfg, target, log)
        _wait_equal(f"SELECT * FROM {db}.t", stack.primary, stack.replicas[1])
        # a conflicting row inserted by hand on the target, then the same key through the ingress
        rc = _conn(stack.replicas[1])
        with rc.cursor() as cur:
            cur.execute(f"INSERT INTO {db}.t VALUES (2, 'by hand')")
        rc.close()
        c = _conn(ing.dsn(stack.primary))
        with c.cursor() as cur:
            cur.execute(f"INSERT INTO {db}.t VALUES (2, 'two')")
            gtid = None
            cur.execute("SELECT @@last_gtid")
            gtid = cur.fetchone()[0]
            cur.execute(f"INSERT INTO {db}.t VALUES (3, 'three')")
        c.close()
        if policy == "halt":
            assert proc.wait(60) == 3
            text = log.read_text()
            assert "HALTED" in text and f"gtid {gtid}" in text and f"{db}.t" in text and "1062" in text
            rc = _conn(stack.replicas[1])
            with rc.cursor() as cur:
                cur.execute(f"SELECT id, v FROM {db}.t ORDER BY id")
                assert cur.fetchall() == ((1, "one"), (2, "by hand"))  # nothing after the failure applied
                cur.execute("SELECT state, detail FROM dbmux_meta.status WHERE target = %s", (target,))
                state, detail = cur.fetchone()
            rc.close()
            assert state == "halted" and gtid in detail
        else:
            rows = _wait_equal(f"SELECT id FROM {db}.t WHERE id = 3", stack.primary, stack.replicas[1])
            assert rows == ((3,),) and proc.poll() is None
            dlq = asyncio.run(read_topic(stack.kafka, ing.topic + ".dlq", min_count=1))
            assert [str(e.gtid) for e in dlq] == [gtid]
            assert "dead-lettered" in log.read_text()
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(20)
        stop_ingress(ing)


LITERAL_VALUES = ["plain", "it's", "back\\slash", "both \\' mixed \\\\", "nul\x00, newline\n, ctrl-z\x1a", "é ☃ 𝄞",
                  '"double"', "", 0, -42, 2**63 - 1, None]


@pytest.mark.parametrize("mode", ["", "NO_BACKSLASH_ESCAPES", "ANSI_QUOTES,NO_BACKSLASH_ESCAPES"])
def test_literals_read_back_as_the_value_under_every_sql_mode(stack, mode):
    """What the applier writes as a literal for a session's sql_mode is read back by a real server as
    the same value (under NO_BACKSLASH_ESCAPES pymysql's escaping would change values)."""
    from dbmux.replicator.mysql_sql import literal

    c = _conn(stack.replicas[0], charset="utf8mb4")
    try:
        with c.cursor() as cur:
            cur.execute("SET SESSION sql_mode = %s", (mode,))
            esc = "NO_BACKSLASH_ESCAPES" not in mode
            for value in LITERAL_VALUES:
                cur.execute(f"SELECT {literal(value, backslash_escapes=esc)}")
                assert cur.fetchone()[0] == value, (mode, value)
            for data in (b"\x00\xff'\\\x1a", b"plain bytes", b""):
                cur.execute(f"SELECT {literal(data, backslash_escapes=esc)}")  # binary data stays binary
                assert cur.fetchone()[0] == data
            # string parameters bound as bytes are text in the session's character set, as on the primary
            abc, five, caf, xy = (literal(b"ABC", "utf8mb4", backslash_escapes=esc),
                                  literal(b"5", "utf8mb4", backslash_escapes=esc),
                                  literal(b"CAF", "latin1", backslash_escapes=esc),
                                  literal(b"x\\y", "utf8mb4", backslash_escapes=esc))
            cur.execute(f"SELECT 'abc' = {abc}, {five} + 1, 'caf' = {caf}, {xy}")
            assert cur.fetchone() == (1, 6, 1, "x\\y")
    finally:
        c.close()


def test_prepared_string_parameters_and_no_backslash_escapes_replicate_exactly(stack, pipeline):
    """Server-side prepared statements bind strings as bytes: the replica must compare them as text
    (a case-insensitive WHERE matches there as on the primary) and keep quotes and backslashes intact,
    also for a session in NO_BACKSLASH_ESCAPES mode."""
    import mysql.connector

    ing, target, cfg, start, log = pipeline
    via = ing.dsn(stack.primary)
    db, setup = _new_database(via, "lit", "id INT PRIMARY KEY, name VARCHAR(40) COLLATE utf8mb4_general_ci, "
                                          "n INT NOT NULL DEFAULT 0, note TEXT, raw BLOB")
    setup.close()
    mc = mysql.connector.connect(host=via.host, port=via.port, user=via.user, password=via.password,
                                 database=db, autocommit=True, charset="utf8mb4", use_pure=True)
    try:
        for mode in ("", "NO_BACKSLASH_ESCAPES"):
            cur = mc.cursor(prepared=True)
            cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES" + ("," + mode if mode else "") + "'")
            base = 10 if mode else 0
            cur.execute("INSERT INTO t (id, name, note, raw) VALUES (?, ?, ?, ?)",
                        (base + 1, "abc", "it's a \\ test 'quoted' \\n", b"\x00\xff'\\"))
            cur.execute("INSERT INTO t (id, name, note) VALUES (?, ?, ?)", (base + 2, "Ünïcödé", "x"))
            cur.execute("UPDATE t SET n = n + 1 WHERE name = ? AND id > ?", ("ABC", base))  # 'abc' (general_ci)
            cur.execute("UPDATE t SET n = n + 10 WHERE name = ? AND id > ?", ("ünïcödé", base))
            cur.execute("UPDATE t SET note = CONCAT(note, ?) WHERE id = ?", ("\\'", base + 1))
            cur.close()
    finally:
        mc.close()
    start()
    rows = _wait_equal(f"SELECT id, name, n, note, HEX(raw) FROM {db}.t ORDER BY id", stack.primary,
                       stack.replicas[0])
    assert [r[2] for r in rows] == [1, 10, 1, 10]  # each UPDATE matched on the replica too
    assert rows[0][3] == "it's a \\ test 'quoted' \\n\\'" and rows[0][4] == "00FF275C"


def test_row_images_after_an_ingress_session_changed_time_zone_and_escapes(stack, pipeline, tmp_path):
    """Row images (from the binlog reader: writes that bypassed the ingress) applied right after
    ingress events whose session had another time zone and NO_BACKSLASH_ESCAPES: TIMESTAMPs (UTC in
    the row image) and backslashes must land as on the primary."""
    from .conftest import start_binlog_reader, stop_processes

    ing, target, cfg, start, log = pipeline
    db, app = _new_database(ing.dsn(stack.primary), "rows", "id INT PRIMARY KEY, ts TIMESTAMP(6) NULL, note TEXT")
    reader = start_binlog_reader(cfg, tmp_path / "binlog.log")
    direct = _conn(stack.primary)
    try:
        with app.cursor() as a, direct.cursor() as d:
            a.execute("SET time_zone = '+05:00', sql_mode = 'NO_BACKSLASH_ESCAPES'")
            a.execute(f"INSERT INTO {db}.t VALUES (1, '2024-01-01 10:00:00', 'a\\b it''s')")  # NBE: a\b
            d.execute(f"INSERT INTO {db}.t VALUES (%s, %s, %s)", (2, "2024-06-01 12:00:00.5", "c\\d it's"))
            a.execute(f"UPDATE {db}.t SET note = CONCAT(note, '\\') WHERE id = 1")
            d.execute(f"UPDATE {db}.t SET ts = ts + INTERVAL 1 HOUR, note = CONCAT(note, %s) WHERE id = 2",
                      ("\\'",))
            a.execute(f"INSERT INTO {db}.t VALUES (3, '2024-12-31 23:59:59', 'e')")
        start()
        rows = _wait_equal(f"SELECT id, UNIX_TIMESTAMP(ts), note FROM {db}.t ORDER BY id", stack.primary,
                           stack.replicas[0])
        assert [r[2] for r in rows] == ["a\\b it's\\", "c\\d it's\\'", "e"]
    finally:
        stop_processes([reader])
        app.close()
        direct.close()


def test_a_database_dropped_and_created_again_while_it_is_the_current_one(stack, pipeline):
    """DROP DATABASE of the applier's current database unselects it on the target: the next statement in a
    database of that name must select it again (found by bench/read_routing.py re-running sysbench prepare)."""
    ing, target, cfg, start, log = pipeline
    db = f"rd_{uuid.uuid4().hex[:8]}"
    via = ing.dsn(stack.primary)
    c = _conn(via)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute("CREATE TABLE t1 (id INT PRIMARY KEY)")
        cur.execute(f"DROP DATABASE {db}")
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute("CREATE TABLE t2 (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t2 VALUES (1), (2)")
    c.close()
    proc = start()
    rows = _wait_equal(f"SELECT id FROM {db}.t2 ORDER BY id", stack.primary, stack.replicas[0])
    assert rows == ((1,), (2,)) and proc.poll() is None, log.read_text()[-3000:]
