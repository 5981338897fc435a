"""Translated statements do on the real PostgreSQL shard what the originals do on the real MariaDB primary."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import asyncpg
import pymysql
import pytest

from dbmux.replicator.pg_sql import row_statement, translate_statement
from dbmux.replicator.schema_info import StaticSchema, TableInfo

DDL = """CREATE TABLE alltypes (
  id INT NOT NULL AUTO_INCREMENT, ti TINYINT, tb TINYINT(1), tu TINYINT UNSIGNED, si SMALLINT,
  su SMALLINT UNSIGNED, mi MEDIUMINT, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
  de DECIMAL(10,2), fl FLOAT, db DOUBLE, ch CHAR(3), vc VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
  tx MEDIUMTEXT, bl BLOB, vb VARBINARY(8), dtm DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL, da DATE, tm TIME,
  yr YEAR, en ENUM('a','b') DEFAULT 'a', st SET('x','y'), js JSON, flag BOOL DEFAULT TRUE,
  PRIMARY KEY (id), UNIQUE KEY u_vc (vc), KEY k_i (i, bi)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

COLS = ("id", "ti", "tb", "tu", "si", "su", "mi", "i", "iu", "bi", "bu", "de", "fl", "db", "ch", "vc", "tx", "bl",
        "vb", "dtm", "ts", "da", "tm", "yr", "en", "st", "js", "flag")
SCHEMA_INFO_ALL = TableInfo(primary_key=("id",), columns=COLS, auto_increment="id")

FULL_ROW = ("(1, -128, 1, 255, -32768, 65535, -8388608, -2147483648, 4294967295, -9223372036854775808, "
            "18446744073709551615, 12345678.91, 1.5, 2.25, 'ab', 'Hello', 'long text', X'00FF10', X'0102', "
            "CAST('2024-01-02 03:04:05.123456' AS DATETIME(6)), CAST('2024-02-03 04:05:06.789' AS DATETIME(3)), "
            "CAST('2024-01-02' AS DATE), CAST('12:34:56' AS TIME), 2024, 'b', 'x,y', '{\"k\": [1, 2]}', 0)")

STATEMENTS: list[tuple[str, tuple | None]] = [
    (f"INSERT INTO alltypes ({', '.join(COLS)}) VALUES {FULL_ROW}", None),
    ("INSERT INTO alltypes (id, vc, de, dtm) VALUES (2, 'two', 1.5, CAST('2023-12-31 23:59:59' AS DATETIME)), "
     "(3, 'three', -0.01, NULL)", None),
    ("INSERT INTO alltypes (id, vc, bl, i, tm, da) VALUES (?, ?, ?, ?, ?, ?)",
     (4, "four", b"\x00\x01\xfe", 44, dt.timedelta(hours=1, minutes=2), dt.date(2020, 2, 29))),
    ("INSERT IGNORE INTO alltypes (id, vc) VALUES (4, 'dup'), (5, 'five')", None),
    ("INSERT INTO alltypes (id, vc, i) VALUES (5, 'x5', 1) ON DUPLICATE KEY UPDATE i = i + 10, vc = VALUES(vc)", None),
    ("INSERT INTO alltypes (id, vc, i) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE i = VALUES(i)", (6, "six", 6)),
    ("REPLACE INTO alltypes (id, vc, i) VALUES (2, 'two-replaced', 22)", None),
    ("REPLACE INTO alltypes (id, vc, de) VALUES (?, ?, ?)", (7, "seven", decimal.Decimal("7.70"))),
    ("UPDATE alltypes SET de = de * 2, tx = CONCAT('x', IFNULL(tx, '')) WHERE id IN (1, 3)", None),
    ("UPDATE `alltypes` SET `ch` = ?, yr = ? WHERE id = ?", ("zz", 1999, 4)),
    ("DELETE FROM alltypes WHERE id = 3", None),
    ("DELETE FROM alltypes WHERE vc = ?", ("six",)),
]


def _mysql(stack):
    d = stack.primary
    return pymysql.connect(host=d.host, port=d.port, user=d.user, password=d.password, autocommit=True,
                           charset="utf8mb4")


async def _pg(stack):
    d = stack.shards[0]
    return await asyncpg.connect(host=d.host, port=d.port, user=d.user, password=d.password,
                                 database=d.database or "dbmux")


def _norm(col: str, v):
    """Bring a MySQL (PyMySQL) or PostgreSQL (asyncpg) value to one comparable form."""
    if v is None:
        return None
    if isinstance(v, dt.timedelta):
        return (dt.datetime.min + v).time()
    if col == "ch":
        return v.rstrip(" ")  # PostgreSQL CHAR(n) reads back blank-padded
    if col == "js":
        return json.loads(v)
    if col == "fl":
        return round(float(v), 5)
    if col == "st" and isinstance(v, set):
        return ",".join(sorted(v))
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if col == "bu":
        return int(v)
    return v


async def _apply(conn, stmts):
    for st in stmts:
        await conn.execute(st.sql, *st.args) if st.args else await conn.execute(st.sql)


async def _rows_pg(conn, schema, table, cols, order):
    recs = await conn.fetch(f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{schema}"."{table}" '
                            f'ORDER BY {order}')
    return [{c: _norm(c, r[c]) for c in cols} for r in recs]


def _rows_my(cur, table, cols, order):
    cur.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")
    return [{c: _norm(c, v) for c, v in zip(cols, row, strict=True)} for row in cur.fetchall()]


@pytest.fixture
def names():
    return f"pgsql_{uuid.uuid4().hex[:10]}"


async def test_translated_statements_store_what_mysql_stores(stack, names):
    db = names
    my = _mysql(stack)
    pg = await _pg(stack)
    schema = StaticSchema({(db, "alltypes"): SCHEMA_INFO_ALL})
    try:
        with my.cursor() as cur:
            for sql in (f"CREATE DATABASE {db}", f"USE {db}", DDL):
                cur.execute(sql)
                await _apply(pg, translate_statement(sql, db, schema=schema))
            # the translated DDL created the index (named per table) and the unique constraint
            idx = {r["indexname"] for r in await pg.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", db)}
            assert {"alltypes_k_i", "alltypes_u_vc"} <= idx
            for sql, params in STATEMENTS:
                cur.execute(sql.replace("?", "%s"), params)
                await _apply(pg, translate_statement(sql, db, params, schema=schema))
            # an INSERT whose id the source generated: the translator writes the same id
            sql = "INSERT INTO alltypes (vc, i) VALUES ('gen1', 1), ('gen2', 2)"
            cur.execute(sql)
            await _apply(pg, translate_statement(sql, db, schema=schema, insert_id=cur.lastrowid))
            my_rows = _rows_my(cur, "alltypes", COLS, "id")
        pg_rows = await _rows_pg(pg, db, "alltypes", COLS, "id")
        assert [r["id"] for r in my_rows] == [1, 2, 4, 5, 7, 8, 9]
        assert pg_rows == my_rows
        # the ENUM check and the unique key still reject what MySQL (strict) rejects
        with pytest.raises(asyncpg.CheckViolationError):
            await _apply(pg, translate_statement("INSERT INTO alltypes (id, en) VALUES (50, 'zzz')", db))
        with pytest.raises(asyncpg.UniqueViolationError):
            await _apply(pg, translate_statement("INSERT INTO alltypes (id, vc) VALUES (51, 'Hello')", db))
    finally:
        with my.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        my.close()
        await _apply(pg, translate_statement(f"DROP DATABASE IF EXISTS {db}", None))
        await pg.close()


async def test_ddl_changes_and_row_form(stack, names):
    db = names
    my = _mysql(stack)
    pg = await _pg(stack)
    ddl = [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE {db}.k (a INT NOT NULL, b VARCHAR(10), c INT, PRIMARY KEY (a))",
        f"CREATE TABLE {db}.nopk (a INT, b VARCHAR(10))",
        f"ALTER TABLE {db}.k ADD COLUMN d DATETIME(6) NULL AFTER a, MODIFY COLUMN c BIGINT NOT NULL DEFAULT 7, "
        "ADD INDEX ib (b)",
        f"ALTER TABLE {db}.k CHANGE COLUMN b bb VARCHAR(20)",
        f"CREATE UNIQUE INDEX uc ON {db}.k (c, a)",
        f"DROP INDEX uc ON {db}.k",
        f"RENAME TABLE {db}.k TO {db}.kk",
        f"TRUNCATE TABLE {db}.nopk",
    ]
    try:
        with my.cursor() as cur:
            for sql in ddl:
                cur.execute(sql)
                await _apply(pg, translate_statement(sql, None))
        cols = ("a", "d", "bb", "c")
        changes = [
            ("kk", "insert", None, {"a": 1, "d": dt.datetime(2024, 1, 2, 3, 4, 5, 6), "bb": "x", "c": 10}, ("a",)),
            ("kk", "insert", None, {"a": 2, "d": None, "bb": None, "c": 20}, ("a",)),
            ("kk", "insert", None, {"a": 2, "d": None, "bb": "again", "c": 21}, ("a",)),  # redelivery: idempotent
            ("kk", "update", {"a": 1, "d": None, "bb": "x", "c": 10}, {"a": 3, "d": None, "bb": "y", "c": 11}, ("a",)),
            ("kk", "delete", {"a": 2, "d": None, "bb": "again", "c": 21}, None, ("a",)),
            ("nopk", "insert", None, {"a": 1, "b": None}, ()),
            ("nopk", "insert", None, {"a": 1, "b": None}, ()),
            ("nopk", "insert", None, {"a": 2, "b": "z"}, ()),
            ("nopk", "update", {"a": 1, "b": None}, {"a": 5, "b": "w"}, ()),  # exactly one of the twins
            ("nopk", "delete", {"a": 2, "b": "z"}, None, ()),
        ]
        for table, op, before, after, pk in changes:
            await _apply(pg, [row_statement(db, table, op, before, after, pk)])
        with my.cursor() as cur:  # the same changes as MySQL statements
            cur.execute(f"INSERT INTO {db}.kk (a, d, bb, c) VALUES (3, NULL, 'y', 11)")
            cur.execute(f"INSERT INTO {db}.nopk VALUES (1, NULL), (5, 'w')")
            my_k = _rows_my(cur, f"{db}.kk", cols, "a")
            my_n = _rows_my(cur, f"{db}.nopk", ("a", "b"), "a")
        assert await _rows_pg(pg, db, "kk", cols, "a") == my_k == [{"a": 3, "d": None, "bb": "y", "c": 11}]
        assert await _rows_pg(pg, db, "nopk", ("a", "b"), "a") == my_n
        idx = {r["indexname"] for r in await pg.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", db)}
        assert "k_ib" in idx and "k_uc" not in idx  # index names keep the table they were created on
        for sql in (f"DROP TABLE {db}.kk, {db}.nopk", f"DROP DATABASE {db}"):
            with my.cursor() as cur:
                cur.execute(sql)
            await _apply(pg, translate_statement(sql, None))
        assert not await pg.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", db)
    finally:
        with my.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        my.close()
        await pg.execute(f'DROP SCHEMA IF EXISTS "{db}" CASCADE')
        await pg.close()
