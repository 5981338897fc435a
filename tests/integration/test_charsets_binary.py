"""Connection character sets and binary SQL through the ingress (issue 12 #6, issue 20 #4): what the primary
stored is what every target stores, byte for byte, for sessions in latin1, cp1251, binary and utf8mb4,
with bytes that are valid in several of them, ``_binary'...'`` and ``X'...'`` literals.

The MySQL replicas are fed by the ingress alone (no binlog reader): every value they hold came from a
statement event, applied as the primary's bytes in the primary's character set. The PostgreSQL target
takes what is not UTF-8 text from the binlog reader's row form."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
from pymysql.constants import CLIENT

from .conftest import read_topic, start_binlog_reader, start_ingress, stop_ingress, stop_processes
from .test_replicator_mysql import _conn, _start_replicator, _wait_equal, _write_config
from .test_replicator_pg import _config as _pg_config

TABLE = ("id INT PRIMARY KEY, note VARCHAR(40) CHARACTER SET utf8mb4, l1 VARCHAR(40) CHARACTER SET latin1, "
         "b VARBINARY(40)")
ISSUE = b"INSERT INTO t VALUES (1, 'caf\xc3\xa9', 'caf\xc3\xa9', 'caf\xc3\xa9')"  # issue 20 #4, in latin1
BINARY = b"INSERT INTO t VALUES (5, _latin1'caf\xe9', 'caf\xc3\xa9', _binary'\xff\x00\x80')"  # issue 12 #6

# (character set of the session, statement bytes): each its own transaction, in this order
WRITES = [
    ("latin1", ISSUE),
    ("latin1", b"INSERT INTO t VALUES (2, 'caf\xe9', 'caf\xe9', 'caf\xe9')"),
    ("cp1251", b"INSERT INTO t VALUES (3, '\xcf\xf0\xe8\xe2\xe5\xf2 \xd0\x9f', '\xa7\xa9\xb0', '\xd0\x9f')"),
    ("binary", b"INSERT INTO t VALUES (4, 'caf\xc3\xa9', 'abc', '\xff\x00\xfe')"),
    ("utf8mb4", BINARY),
    ("utf8mb4", b"INSERT INTO t VALUES (6, 'caf\xc3\xa9', NULL, X'FF00C3A9')"),
    ("latin1", b"UPDATE t SET b = CONCAT(b, X'01') WHERE note = 'caf\xc3\xa9'"),  # matches 1 (cafÃ©), not 6
]
# what the primary stores (HEX(note), HEX(l1), HEX(b)) -- asserted, so the test means what it says
EXPECTED_PRIMARY = {
    1: ("636166C383C2A9", "636166C3A9", "636166C3A901"),
    2: ("636166C3A9", "636166E9", "636166E9"),
    4: ("636166C3A9", "616263", "FF00FE"),
    5: ("636166C3A9", "636166E9", "FF0080"),
    6: ("636166C3A9", None, "FF00C3A9"),
}
COMPARE = "SELECT id, HEX(note), HEX(l1), HEX(b) FROM {db}.t ORDER BY id"


def _write_everything(via, db: str) -> None:
    """WRITES, then a transaction whose statements were sent in two character sets, a multi-statement
    request switching character set in its middle, and a prepared statement's latin1 parameter."""
    c = _conn(via, database=db, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with c.cursor() as cur:
            for charset, sql in WRITES:
                cur.execute(f"SET NAMES {charset}")
                cur.execute(sql)
            c.begin()
            cur.execute("SET NAMES latin1")
            cur.execute(b"INSERT INTO t VALUES (7, 'caf\xc3\xa9', 'caf\xc3\xa9', NULL)")
            cur.execute("SET NAMES cp1251")
            cur.execute(b"INSERT INTO t VALUES (8, '\xd0\x9f', NULL, NULL)")
            c.commit()
            cur.execute(b"SET NAMES latin1; INSERT INTO t VALUES (9, 'caf\xc3\xa9', NULL, NULL); "
                        b"SET NAMES utf8mb4; INSERT INTO t VALUES (10, 'caf\xc3\xa9', NULL, NULL)")
            while cur.nextset():
                pass
            cur.execute("SET NAMES utf8mb4")
    finally:
        c.close()
    import mysql.connector

    mc = mysql.connector.connect(host=via.host, port=via.port, user=via.user, password=via.password, database=db,
                                 autocommit=True, charset="latin1", use_pure=True)
    try:
        pc = mc.cursor(prepared=True)
        pc.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (11, "café", "café", b"\xe9"))
        pc.close()
    finally:
        mc.close()


def _check_primary(stack, db: str) -> list[tuple]:
    c = _conn(stack.primary)
    try:
        with c.cursor() as cur:
            cur.execute(COMPARE.format(db=db))
            rows = cur.fetchall()
    finally:
        c.close()
    got = {r[0]: r[1:] for r in rows}
    for i, values in EXPECTED_PRIMARY.items():
        assert got[i] == values, (i, got[i])
    assert got[7][0] == got[9][0] == "636166C383C2A9" and got[10][0] == "636166C3A9"
    assert got[8][0] == "D0A0D19F" and got[3][1] == "A7A9B0"  # cp1251 'Рџ' (the UTF-8 bytes of 'П')
    assert got[11] == ("636166C3A9", "636166E9", "E9")
    assert len(rows) == 11
    return list(rows)


def _new_db(via) -> str:
    db = f"cs_{uuid.uuid4().hex[:8]}"
    c = _conn(via)
    try:
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t ({TABLE})")
    finally:
        c.close()
    return db


def test_replicas_store_the_primarys_bytes_in_every_connection_charset(stack, tmp_path):
    ing = start_ingress(stack, tmp_path)
    procs = []
    try:
        via = ing.dsn(stack.primary)
        db = _new_db(via)
        _write_everything(via, db)
        primary_rows = _check_primary(stack, db)
        assert "not valid UTF-8" not in ing.log()
        events = asyncio.run(read_topic(stack.kafka, ing.topic, min_count=2 + len(WRITES) + 4))
        stmts = [s for ev in events for s in ev.statements]
        issue = next(s for s in stmts if s.data == ISSUE)  # published byte-exact, with its character set
        assert issue.charset == "latin1" and issue.sql == "INSERT INTO t VALUES (1, 'cafÃ©', 'cafÃ©', 'cafÃ©')"
        assert next(s for s in stmts if s.data == BINARY).charset == "utf8mb4"
        two = next(ev for ev in events if any(b"(7," in s.data for s in ev.statements))
        assert [s.charset for s in two.statements] == ["latin1", "cp1251"]
        # the replicas: from these statement events alone (no binlog reader runs)
        for i, replica in enumerate(stack.replicas[:2]):
            target = f"cs{i}_{uuid.uuid4().hex[:6]}"
            cfg = _write_config(tmp_path, stack, ing, target, replica)
            procs.append(_start_replicator(cfg, target, tmp_path / f"{target}.log"))
        for replica in stack.replicas[:2]:
            assert _wait_equal(COMPARE.format(db=db), stack.primary, replica, timeout_s=60) == tuple(primary_rows)
    finally:
        stop_processes(procs)
        stop_ingress(ing)


def test_postgresql_takes_the_row_form_of_what_is_not_utf8(stack, tmp_path):
    """Statements PostgreSQL cannot read as UTF-8 text wait (a GTID gap, never a halt) for the binlog
    reader's row form; the values then equal the primary's, as characters (text) and bytes (BYTEA)."""
    ing = start_ingress(stack, tmp_path)
    target = f"pgcs_{uuid.uuid4().hex[:6]}"
    procs = []
    pg = stack.shards[0]
    try:
        via = ing.dsn(stack.primary)
        db = _new_db(via)
        cfg = _pg_config(tmp_path, stack, ing, {target: pg.url()}, f"{db}.*", "gap_alert_ms = 200")
        procs.append(_start_replicator(cfg, target, tmp_path / "pg.log"))
        direct = _conn(stack.primary)
        with direct.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            (before,) = cur.fetchone()
            _write_everything(via, db)
            cur.execute(f"SELECT id, HEX(CONVERT(note USING utf8mb4)), HEX(CONVERT(l1 USING utf8mb4)), HEX(b) "
                        f"FROM {db}.t ORDER BY id")
            expected = [tuple(r) for r in cur.fetchall()]
        direct.close()
        _wait_pg(pg, target, db, lambda rows, state: state == "waiting for gap", "the held event reported")
        procs.append(start_binlog_reader(cfg, tmp_path / "binlog.log", "--from-gtid", before))
        rows, state = _wait_pg(pg, target, db, lambda rows, state: rows == expected, "the primary's values")
        assert state == "running"
    finally:
        stop_processes(procs)
        stop_ingress(ing)


def _wait_pg(pg, target: str, db: str, pred, what: str, timeout_s: float = 90.0):
    async def read():
        conn = await asyncpg.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password,
                                     database=pg.database)
        try:
            state = await conn.fetchval("SELECT state FROM dbmux_meta.status WHERE target = $1", target)
            rows = await conn.fetch(f"SELECT id, upper(encode(convert_to(note, 'UTF8'), 'hex')), "
                                    f"upper(encode(convert_to(l1, 'UTF8'), 'hex')), upper(encode(b, 'hex')) "
                                    f"FROM {db}.t ORDER BY id")
            return [tuple(r) for r in rows], state
        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
            return [], None
        finally:
            await conn.close()

    deadline = time.monotonic() + timeout_s
    got: tuple = ([], None)
    while time.monotonic() < deadline:
        got = asyncio.run(read())
        if pred(*got):
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s}s (last: {got})")

