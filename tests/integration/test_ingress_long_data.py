"""COM_STMT_SEND_LONG_DATA through the ingress: a real client (mysql-connector-python, pure protocol,
server-side prepared statements) sends a parameter in chunks; the row lands on the primary as sent,
the session goes on, and the published event carries the parameter's whole value."""

from __future__ import annotations

import io
import uuid

import mysql.connector
import pymysql

from dbmux.core.dsn import Dsn

from .conftest import read_topic

# mysql-connector sends a file-like parameter as COM_STMT_SEND_LONG_DATA in 128 KiB chunks: 3 chunks here,
# and the event stays below Kafka's default message size limit (1 MB).
BLOB = bytes(range(256)) * 1200  # 307,200 bytes: every byte value, escapes included
TEXT = ("long text ☃ " * 12000).encode()  # 168,000 bytes


def _workload(dsn: Dsn, db: str) -> list:
    conn = mysql.connector.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                   autocommit=True, use_pure=True)
    out: list = []
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, a INT, b LONGBLOB, c LONGTEXT)")
        ps = conn.cursor(prepared=True)
        sql = "INSERT INTO t (id, a, b, c) VALUES (?, ?, ?, ?)"
        ps.execute(sql, (1, 7, io.BytesIO(BLOB), io.BytesIO(TEXT)))  # two parameters as long data
        out.append(ps.rowcount)
        ps.execute(sql, (2, 8, b"inline", "inline"))  # the same statement, values inline again
        out.append(ps.rowcount)
        ps.execute(sql, (3, None, io.BytesIO(b"x"), None))  # one-byte long data, NULLs around it
        out.append(ps.rowcount)
        ps.execute("SELECT id, LENGTH(b), MD5(b), MD5(c) FROM t WHERE id <= ? ORDER BY id", (3,))
        out.append(ps.fetchall())
        ps.close()
        cur.execute("SELECT 1")  # the session is still usable
        out.append(cur.fetchall())
    finally:
        conn.close()
    return out


def _rows(dsn: Dsn, db: str) -> list:
    conn = pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password, database=db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, a, b, c FROM t ORDER BY id")
            return list(cur.fetchall())
    finally:
        conn.close()


async def test_long_data_is_relayed_and_published_whole(stack, ingress):
    direct, via = f"it_{uuid.uuid4().hex[:10]}", f"it_{uuid.uuid4().hex[:10]}"
    expected = _workload(stack.primary, direct)
    got = _workload(ingress.dsn(stack.primary), via)  # failed before: the client was disconnected
    assert got == expected
    rows = _rows(stack.primary, via)
    assert rows == _rows(stack.primary, direct)
    assert rows[0] == (1, 7, BLOB, TEXT.decode()) and rows[2] == (3, None, b"x", None)

    events = [e for e in await read_topic(stack.kafka, ingress.topic, min_count=3)
              if e.session and e.session.db == via and e.statements and e.statements[0].params is not None]
    params = [e.statements[0].params for e in events]
    assert params == [(1, 7, BLOB, TEXT), (2, 8, b"inline", b"inline"), (3, None, b"x", None)]
    assert all(e.statements[0].sql == "INSERT INTO t (id, a, b, c) VALUES (?, ?, ?, ?)" for e in events)
