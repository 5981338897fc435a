"""Real clients through the ingress see exactly what they see on the primary, and every committed
transaction (and nothing else) lands on the topic."""

from __future__ import annotations

import datetime as dt
import decimal
import socket
import subprocess
import uuid

import aiomysql
import mysql.connector
import pymysql
import pytest
import sqlalchemy as sa

from dbmux.core.dsn import Dsn

from .conftest import read_topic

ROWS = [("alice", decimal.Decimal("10.50"), "first", dt.date(2024, 1, 2)),
        ("bob", decimal.Decimal("-3.25"), None, dt.date(2023, 12, 31)),
        ("carol ☃", decimal.Decimal("0.00"), "x" * 3000, dt.date(2000, 2, 29))]
DDL = ("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL, "
       "amount DECIMAL(10,2), note TEXT, created DATE, UNIQUE KEY (name))")


def _db() -> str:
    return f"it_{uuid.uuid4().hex[:10]}"


def _pymysql(dsn: Dsn, **kw):
    return pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                           autocommit=True, **kw)


def pymysql_workload(dsn: Dsn, db: str) -> list:
    out: list = []
    conn = _pymysql(dsn, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute(DDL)
        out.append(cur.executemany("INSERT INTO t (name, amount, note, created) VALUES (%s, %s, %s, %s)", ROWS))
        out.append(cur.lastrowid)
        conn.begin()
        cur.execute("UPDATE t SET amount = amount * 2 WHERE name = %s", ("alice",))
        out.append(cur.rowcount)
        conn.commit()
        conn.begin()
        cur.execute("DELETE FROM t WHERE name = 'bob'")
        conn.rollback()
        try:
            cur.execute("INSERT INTO t (name) VALUES ('alice')")
        except pymysql.err.IntegrityError as exc:
            out.append(exc.args)
        cur.execute("INSERT INTO t (name, amount) VALUES ('dave', 1); UPDATE t SET note = 'multi' WHERE id = 1; "
                    "SELECT COUNT(*) FROM t")
        out.append(cur.rowcount)
        while cur.nextset():
            out.append((cur.rowcount, cur.fetchall()))
        cur.execute("SELECT id, name, amount, note, created FROM t ORDER BY id")
        out.append(cur.fetchall())
        out.append([d[:2] for d in cur.description])
        cur.execute("SELECT * FROM t WHERE 1 = 0")
        out.append(cur.fetchall())
    conn.close()
    return out


def test_pymysql_results_equal_the_primary(stack, ingress):
    direct, via = _db(), _db()
    expected = pymysql_workload(stack.primary, direct)
    got = pymysql_workload(ingress.dsn(stack.primary), via)
    assert got == expected


async def test_committed_transactions_only_and_in_order_on_topic(stack, ingress):
    db = _db()
    pymysql_workload(ingress.dsn(stack.primary), db)
    events = [e for e in await read_topic(stack.kafka, ingress.topic, min_count=1)
              if any(db in (s.sql or "") for s in e.statements) or e.db == db
              or (e.session and e.session.db == db)]
    sqls = [[s.sql for s in e.statements] for e in events]
    # CREATE DATABASE, CREATE TABLE, 3 inserts (executemany = one multi-row INSERT in PyMySQL), the
    # committed UPDATE, then the multi-statement's INSERT and UPDATE as two autocommit transactions.
    assert sqls[0] == [f"CREATE DATABASE {db}"]
    assert sqls[1] == [DDL]
    assert sqls[2][0].startswith("INSERT INTO t (name, amount, note, created) VALUES")
    assert sqls[3] == ["UPDATE t SET amount = amount * 2 WHERE name = 'alice'"]
    assert [s.strip() for s in sqls[4]] == ["INSERT INTO t (name, amount) VALUES ('dave', 1)"]
    assert [s.strip() for s in sqls[5]] == ["UPDATE t SET note = 'multi' WHERE id = 1"]
    assert len(events) == 6  # the rolled-back DELETE and the failed INSERT were not published
    assert not any("DELETE" in s for e in sqls for s in e)
    seqs = [e.gtid.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert events[2].statements[0].insert_id > 0
    assert all(e.source == "ingress" and e.session.user == stack.primary.user for e in events)
    all_events = await read_topic(stack.kafka, ingress.topic)
    all_gtids = [str(e.gtid) for e in all_events]
    assert len(all_gtids) == len(set(all_gtids))


def _mariadb_cli(dsn: Dsn, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mariadb", "-h", dsn.host, "-P", str(dsn.port), "-u", dsn.user,
                           f"-p{dsn.password}", "--batch", "-e", sql], capture_output=True, text=True, timeout=60)


def test_mariadb_cli_output_equals_the_primary(stack, ingress):
    script = ("CREATE DATABASE {db}; USE {db}; " + DDL + "; "
              "INSERT INTO t (name, amount, created) VALUES ('x', 1.5, '2024-05-06'), ('y', NULL, NULL); "
              "START TRANSACTION; UPDATE t SET amount = 7 WHERE name = 'y'; COMMIT; "
              "SELECT id, name, amount, created FROM t ORDER BY id; SELECT DATABASE() = '{db}' AS same_db; "
              "SHOW COLUMNS FROM t; SELECT LAST_INSERT_ID();")
    direct, via = _db(), _db()
    a = _mariadb_cli(stack.primary, script.format(db=direct))
    b = _mariadb_cli(ingress.dsn(stack.primary), script.format(db=via))
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert b.stdout == a.stdout
    err_a = _mariadb_cli(stack.primary, "SELECT * FROM no_such_db.t")
    err_b = _mariadb_cli(ingress.dsn(stack.primary), "SELECT * FROM no_such_db.t")
    assert err_a.returncode == err_b.returncode == 1
    assert err_b.stderr == err_a.stderr


async def _aiomysql_workload(dsn: Dsn, db: str) -> list:
    out: list = []
    conn = await aiomysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                  autocommit=False)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE DATABASE {db}")
            await cur.execute(f"USE {db}")
            await cur.execute(DDL)
            await cur.executemany("INSERT INTO t (name, amount, note, created) VALUES (%s, %s, %s, %s)", ROWS)
            await conn.commit()
            await cur.execute("SAVEPOINT s1")
            await cur.execute("UPDATE t SET note = 'kept' WHERE name = 'alice'")
            await cur.execute("SAVEPOINT s2")
            await cur.execute("UPDATE t SET note = 'undone' WHERE name = 'bob'")
            await cur.execute("ROLLBACK TO SAVEPOINT s2")
            await conn.commit()
            await cur.execute("SELECT name, note FROM t ORDER BY id")
            out.append(await cur.fetchall())
            await conn.commit()
    finally:
        conn.close()
    return out


async def test_aiomysql_results_and_savepoints(stack, ingress):
    direct, via = _db(), _db()
    expected = await _aiomysql_workload(stack.primary, direct)
    got = await _aiomysql_workload(ingress.dsn(stack.primary), via)
    assert got == expected
    events = [e for e in await read_topic(stack.kafka, ingress.topic, min_count=1)
              if e.session and e.session.db == via]
    txn = [[s.sql for s in e.statements] for e in events]
    # the savepoint transaction is published with the kept update only
    assert ["UPDATE t SET note = 'kept' WHERE name = 'alice'"] in txn
    assert not any("undone" in s for t in txn for s in t)


def _connector_workload(dsn: Dsn, db: str) -> list:
    out: list = []
    conn = mysql.connector.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                   autocommit=True, use_pure=True)
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute(DDL)
        ps = conn.cursor(prepared=True)
        for row in ROWS:
            ps.execute("INSERT INTO t (name, amount, note, created) VALUES (?, ?, ?, ?)", row)
            out.append(ps.lastrowid)
        ps.execute("SELECT id, name, amount, note, created FROM t WHERE amount >= ? ORDER BY id",
                   (decimal.Decimal("-5"),))
        out.append(ps.fetchall())
        ps.execute("UPDATE t SET created = ? WHERE id = ?", (dt.date(1999, 9, 9), 2))
        out.append(ps.rowcount)
        ps.close()
        cur.execute("SELECT created FROM t WHERE id = 2")
        out.append(cur.fetchall())
    finally:
        conn.close()
    return out


async def test_mysql_connector_server_side_prepared(stack, ingress):
    direct, via = _db(), _db()
    expected = _connector_workload(stack.primary, direct)
    got = _connector_workload(ingress.dsn(stack.primary), via)
    assert got == expected
    events = [e for e in await read_topic(stack.kafka, ingress.topic, min_count=1)
              if e.session and e.session.db == via and e.statements and e.statements[0].params is not None]
    params = [e.statements[0].params for e in events]
    # bound values as the binary protocol carried them (strings as bytes in the connection charset)
    assert params[0] == (b"alice", decimal.Decimal("10.50"), b"first", dt.date(2024, 1, 2))
    assert params[1] == (b"bob", decimal.Decimal("-3.25"), None, dt.date(2023, 12, 31))
    assert params[2][0] == "carol ☃".encode() and params[2][2] == b"x" * 3000
    assert len(events) == 4  # three inserts and the update, with their bound values
    assert events[-1].statements[0].sql == "UPDATE t SET created = ? WHERE id = ?"
    assert events[-1].statements[0].params[1] == 2


def _sqlalchemy_workload(dsn: Dsn, db: str) -> list:
    admin = _pymysql(dsn)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
    admin.close()
    engine = sa.create_engine(f"mysql+pymysql://{dsn.user}:{dsn.password}@{dsn.host}:{dsn.port}/{db}")
    meta = sa.MetaData()
    items = sa.Table("items", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                     sa.Column("label", sa.String(50), nullable=False), sa.Column("qty", sa.Integer))
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(items.insert(), [{"label": f"l{i}", "qty": i} for i in range(20)])
        with engine.begin() as conn:
            conn.execute(items.update().where(items.c.qty > 10).values(qty=items.c.qty + 100))
        with engine.connect() as conn:
            rows = conn.execute(sa.select(items).order_by(items.c.id)).all()
            total = conn.execute(sa.select(sa.func.sum(items.c.qty))).scalar()
        return [[tuple(r) for r in rows], total]
    finally:
        engine.dispose()


def test_sqlalchemy_results_equal_the_primary(stack, ingress):
    assert _sqlalchemy_workload(ingress.dsn(stack.primary), _db()) == \
        _sqlalchemy_workload(stack.primary, _db())


@pytest.mark.parametrize("user, password", [("dbmux", "wrong-password"), ("nobody", "x"), ("dbmux", "")])
def test_bad_credentials_rejected_exactly_like_the_primary(stack, ingress, user, password):
    def attempt(dsn: Dsn):
        with pytest.raises(pymysql.err.OperationalError) as info:
            pymysql.connect(host=dsn.host, port=dsn.port, user=user, password=password)
        return info.value.args

    assert attempt(ingress.dsn(stack.primary)) == attempt(stack.primary)


def test_now_and_uuid_are_identical_on_primary_and_in_event(stack, ingress):
    db = _db()
    conn = _pymysql(ingress.dsn(stack.primary))
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.d (id INT PRIMARY KEY, t6 DATETIME(6), t0 DATETIME, u CHAR(36), "
                    "d DATE, r DOUBLE)")
        cur.execute(f"INSERT INTO {db}.d VALUES (1, NOW(6), NOW(), UUID(), CURDATE(), RAND())")
        cur.execute(f"SELECT t6, t0, u, d, r FROM {db}.d")
        t6, t0, u, d, r = cur.fetchone()
    conn.close()
    stored = _pymysql(stack.primary)
    with stored.cursor() as cur:
        cur.execute(f"SELECT t6, t0, u, d, r FROM {db}.d")
        assert cur.fetchone() == (t6, t0, u, d, r)
    stored.close()

    (ev,) = _events_for(stack, ingress, f"INSERT INTO {db}.d")
    sql = ev.statements[0].sql
    assert "NOW(" not in sql.upper() and "UUID(" not in sql.upper() and "RAND(" not in sql.upper()
    assert t6.strftime("%Y-%m-%d %H:%M:%S.%f") in sql
    assert t0.strftime("%Y-%m-%d %H:%M:%S") in sql
    assert u in sql and d.isoformat() in sql
    assert ev.statements[0].unsafe is False


def _events_for(stack, ingress, prefix: str):
    import asyncio

    events = asyncio.run(read_topic(stack.kafka, ingress.topic, min_count=1))
    return [e for e in events if e.statements and e.statements[0].sql.startswith(prefix)]


def test_malformed_packet_ends_only_that_session(stack, ingress):
    healthy = _pymysql(ingress.dsn(stack.primary))
    for garbage in (b"\xff\xff\xff\x01" + b"A" * 64,  # a 16 MiB length claim, then truncated
                    b"\x05\x00\x00\x07hello",  # wrong sequence id
                    b"\x01\x00\x00\x01"):  # a 1-byte handshake response
        with socket.create_connection((ingress.host, ingress.port), timeout=10) as s:
            s.recv(4096)  # greeting
            s.sendall(garbage)
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        # either an ERR packet or a plain close, but the session ended
        assert data == b"" or data[4] == 0xFF
    with healthy.cursor() as cur:
        cur.execute("SELECT 42")
        assert cur.fetchone() == (42,)
    healthy.close()
    assert ingress.proc.poll() is None


def test_prepared_read_with_parameters_through_the_ingress(stack, ingress):
    """A prepared read (binary result set) with a bound parameter equals the primary's answer."""
    def run(dsn: Dsn):
        conn = mysql.connector.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                       use_pure=True)
        try:
            cur = conn.cursor(prepared=True)
            cur.execute("SELECT seq FROM (SELECT 1 AS seq UNION ALL SELECT 2 UNION ALL SELECT 3) x WHERE seq > ?",
                        (1,))
            return cur.fetchall()
        finally:
            conn.close()

    assert run(ingress.dsn(stack.primary)) == run(stack.primary) == [(2,), (3,)]
