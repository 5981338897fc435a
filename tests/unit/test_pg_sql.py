"""MySQL → PostgreSQL translation (replicator.pg_sql): tables of statement → exact PostgreSQL text."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbmux.replicator.created_tables import created_table
from dbmux.replicator.pg_sql import (
    PgStatement,
    Untranslatable,
    quote_ident,
    row_statement,
    to_pg_value,
    translate_statement,
)
from dbmux.replicator.pg_types import value_list
from dbmux.replicator.schema_info import StaticSchema, TableInfo

SCHEMA = StaticSchema({
    ("d", "t"): TableInfo(primary_key=("id",), columns=("id", "a", "b"), auto_increment="id"),
    ("d", "ts"): TableInfo(primary_key=("id",), columns=("id", "a", "upd"), time_defaults=frozenset({"upd"}),
                           on_update=frozenset({"upd"})),
    ("d", "k2"): TableInfo(primary_key=("x", "y"), columns=("x", "y", "v")),
    ("other", "t"): TableInfo(primary_key=("a",), columns=("a",)),
    ("x", "t"): TableInfo(primary_key=("a",), columns=("a",)),
})

Q = '"d"."t"'
CASES = [
    # --- DML
    ("INSERT INTO t (a, b) VALUES (1, 'x')", [f"INSERT INTO {Q} (\"a\", \"b\") VALUES (1, 'x')"]),
    ("INSERT INTO `t` (`a`) VALUES (1), (2), (3)", [f'INSERT INTO {Q} ("a") VALUES (1), (2), (3)']),
    ("INSERT INTO other.T (A) VALUES (1)", ['INSERT INTO "other"."t" ("a") VALUES (1)']),
    ("INSERT INTO t (a, b) VALUES (1, CAST('2024-01-02 03:04:05.123456' AS DATETIME(6)))",
     [f"INSERT INTO {Q} (\"a\", \"b\") VALUES (1, CAST('2024-01-02 03:04:05.123456' AS TIMESTAMP(6)))"]),
    ("INSERT INTO t (a) VALUES (CAST('2024-01-02 03:04:05' AS DATETIME))",
     [f"INSERT INTO {Q} (\"a\") VALUES (CAST('2024-01-02 03:04:05' AS TIMESTAMP))"]),
    ("INSERT INTO t (a) VALUES (CAST('2024-01-02' AS DATE))",
     [f"INSERT INTO {Q} (\"a\") VALUES (CAST('2024-01-02' AS DATE))"]),
    ("INSERT INTO t (a) VALUES (CAST('03:04:05' AS TIME))",
     [f"INSERT INTO {Q} (\"a\") VALUES (CAST('03:04:05' AS TIME))"]),
    ("INSERT INTO t (a) VALUES (IFNULL(NULL, 1))", [f'INSERT INTO {Q} ("a") VALUES (COALESCE(NULL, 1))']),
    ("INSERT INTO t (a) VALUES (DATE_FORMAT(CAST('2024-01-02' AS DATE), '%Y'))",
     [f"INSERT INTO {Q} (\"a\") VALUES (TO_CHAR(CAST('2024-01-02' AS DATE), 'YYYY'))"]),
    ("INSERT INTO t (a, b) VALUES (X'00FF10', 0xFFF)",
     [f"INSERT INTO {Q} (\"a\", \"b\") VALUES (DECODE('00ff10', 'hex'), DECODE('0fff', 'hex'))"]),
    ("INSERT IGNORE INTO t (a) VALUES (1)", [f'INSERT INTO {Q} ("a") VALUES (1) ON CONFLICT DO NOTHING']),
    ("INSERT INTO t (a) SELECT a FROM u WHERE b > 1", [f'INSERT INTO {Q} ("a") SELECT "a" FROM "d"."u" WHERE "b" > 1']),
    ("INSERT INTO t (id, a) VALUES (1, 2) ON DUPLICATE KEY UPDATE a = VALUES(a)",
     [f'INSERT INTO {Q} ("id", "a") VALUES (1, 2) ON CONFLICT("id") DO UPDATE SET "a" = "excluded"."a"']),
    ("INSERT INTO t (id, a) VALUES (1, 2) ON DUPLICATE KEY UPDATE a = a + 1, b = VALUES(b)",
     [f'INSERT INTO {Q} ("id", "a") VALUES (1, 2) ON CONFLICT("id") DO UPDATE SET "a" = "t"."a" + 1, '
      '"b" = "excluded"."b"']),
    ("INSERT INTO k2 (x, y, v) VALUES (1, 2, 3) ON DUPLICATE KEY UPDATE v = VALUES(v)",
     ['INSERT INTO "d"."k2" ("x", "y", "v") VALUES (1, 2, 3) ON CONFLICT("x", "y") DO UPDATE SET '
      '"v" = "excluded"."v"']),
    ("REPLACE INTO t (id, a, b) VALUES (1, 2, 3)",
     [f'INSERT INTO {Q} ("id", "a", "b") VALUES (1, 2, 3) ON CONFLICT("id") DO UPDATE SET "a" = "excluded"."a", '
      '"b" = "excluded"."b"']),
    ("REPLACE INTO t (id, a) VALUES (1, 2)",
     [f'INSERT INTO {Q} ("id", "a") VALUES (1, 2) ON CONFLICT("id") DO UPDATE SET "a" = "excluded"."a", '
      '"b" = DEFAULT']),
    ("REPLACE t VALUES (1, 2, 3)",
     [f'INSERT INTO {Q} VALUES (1, 2, 3) ON CONFLICT("id") DO UPDATE SET "a" = "excluded"."a", "b" = "excluded"."b"']),
    ("UPDATE t SET a = 1 WHERE b = 2", [f'UPDATE {Q} SET "a" = 1 WHERE "b" = 2']),
    ("UPDATE t SET a = a + 1, b = 'x' WHERE id IN (1, 2)",
     [f'UPDATE {Q} SET "a" = "a" + 1, "b" = \'x\' WHERE "id" IN (1, 2)']),
    ("UPDATE ts SET a = 1, upd = CAST('2024-01-01 00:00:00' AS DATETIME)",
     ['UPDATE "d"."ts" SET "a" = 1, "upd" = CAST(\'2024-01-01 00:00:00\' AS TIMESTAMP)']),
    ("DELETE FROM t WHERE a = 1", [f'DELETE FROM {Q} WHERE "a" = 1']),
    ("DELETE FROM x.t WHERE a IS NULL", ['DELETE FROM "x"."t" WHERE "a" IS NULL']),
    ("DELETE FROM t", [f"DELETE FROM {Q}"]),
    # --- DDL
    ("CREATE DATABASE x", ['CREATE SCHEMA "x"']),
    ("CREATE DATABASE IF NOT EXISTS x", ['CREATE SCHEMA IF NOT EXISTS "x"']),
    ("CREATE DATABASE d2 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", ['CREATE SCHEMA "d2"']),
    ("CREATE SCHEMA x", ['CREATE SCHEMA "x"']),
    ("DROP DATABASE x", ['DROP SCHEMA "x" CASCADE']),
    ("DROP DATABASE IF EXISTS x", ['DROP SCHEMA IF EXISTS "x" CASCADE']),
    ("CREATE TABLE t (id INT UNSIGNED NOT NULL AUTO_INCREMENT, a TINYINT(1), b ENUM('x','y') DEFAULT 'x', "
     "c VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, d DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6) "
     "ON UPDATE CURRENT_TIMESTAMP(6), PRIMARY KEY (id), UNIQUE KEY uk (c), KEY k (a, b), "
     "CONSTRAINT fk FOREIGN KEY (a) REFERENCES o (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
     [f'CREATE TABLE {Q} ("id" BIGINT GENERATED BY DEFAULT AS IDENTITY NOT NULL, "a" SMALLINT, '
      '"b" TEXT DEFAULT \'x\' CHECK ("b" IN (\'x\', \'y\')), "c" VARCHAR(10), '
      '"d" TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6), '
      'PRIMARY KEY ("id"), CONSTRAINT "t_uk" UNIQUE ("c"), '
      'CONSTRAINT "fk" FOREIGN KEY ("a") REFERENCES "d"."o" ("id") DEFERRABLE INITIALLY IMMEDIATE)',
      f'CREATE INDEX "t_k" ON {Q} ("a", "b")']),
    ("CREATE TABLE IF NOT EXISTS x.b (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, x BIT(3), y YEAR, "
     "z SET('a','b') NOT NULL DEFAULT '', j JSON, f FLOAT, g DOUBLE, dd DECIMAL, n DECIMAL(12,3) UNSIGNED, "
     "tt TIME(3), bl LONGBLOB, vb VARBINARY(5), bo BOOL DEFAULT TRUE, c CHAR(2), ts TIMESTAMP NULL DEFAULT NULL, "
     "u VARCHAR(5) COMMENT 'x' UNIQUE, m MEDIUMINT UNSIGNED, s SMALLINT UNSIGNED, tu TINYINT UNSIGNED, "
     "bu BIGINT UNSIGNED, tx MEDIUMTEXT, bi BINARY(2), dt DATETIME, da DATE, KEY kc (c(1)), CHECK (f > 0))",
     ['CREATE TABLE IF NOT EXISTS "x"."b" ("id" BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, '
      '"x" BIT VARYING(3), "y" SMALLINT, "z" TEXT DEFAULT \'\' NOT NULL, "j" JSONB, "f" REAL, "g" DOUBLE PRECISION, '
      '"dd" NUMERIC(10,0), "n" NUMERIC(12,3), "tt" INTERVAL(3), "bl" BYTEA, "vb" BYTEA, "bo" SMALLINT DEFAULT 1, '
      '"c" CHAR(2), "ts" TIMESTAMP(0) DEFAULT NULL NULL, "u" VARCHAR(5) CONSTRAINT "b_u" UNIQUE, "m" INTEGER, '
      '"s" INTEGER, "tu" SMALLINT, "bu" NUMERIC(20), "tx" TEXT, "bi" BYTEA, "dt" TIMESTAMP(0), "da" DATE, '
      'CHECK ("f" > 0))',
      'CREATE INDEX IF NOT EXISTS "b_kc" ON "x"."b" ("c")']),
    ("CREATE TABLE c (x INT, FOREIGN KEY (x) REFERENCES p.o (id) ON DELETE CASCADE)",
     ['CREATE TABLE "d"."c" ("x" INTEGER, CONSTRAINT "c_ibfk_1" FOREIGN KEY ("x") REFERENCES "p"."o" ("id") '
      'ON DELETE CASCADE DEFERRABLE INITIALLY IMMEDIATE)']),
    ("CREATE UNIQUE INDEX i ON t (a)", [f'CREATE UNIQUE INDEX "t_i" ON {Q} ("a")']),
    ("CREATE INDEX ix ON d.t (a(5), b DESC)", [f'CREATE INDEX "t_ix" ON {Q} ("a", "b" DESC)']),
    ("DROP INDEX i ON t", ['DROP INDEX "d"."t_i"']),
    ("DROP INDEX `PRIMARY` ON t", [f'ALTER TABLE {Q} DROP CONSTRAINT "t_pkey"']),
    # CASCADE: a child's foreign key referencing it goes too (MySQL drops such a parent with
    # foreign_key_checks = 0; PostgreSQL refuses without CASCADE: SQLAlchemy's teardown halted a shard)
    ("DROP TABLE t", [f"DROP TABLE {Q} CASCADE"]),
    ("DROP TABLE IF EXISTS a, b.c", ['DROP TABLE IF EXISTS "d"."a", "b"."c" CASCADE']),
    ("CREATE TABLE bar (id INT, v VARCHAR(30), w INT, PRIMARY KEY (id), CONSTRAINT uix1 UNIQUE (v, w))",
     ['CREATE TABLE "d"."bar" ("id" INTEGER, "v" VARCHAR(30), "w" INTEGER, PRIMARY KEY ("id"), '
      'CONSTRAINT "bar_uix1" UNIQUE ("v", "w"))']),
    ("TRUNCATE TABLE t", [f"TRUNCATE TABLE {Q}"]),
    ("TRUNCATE x.t", ['TRUNCATE TABLE "x"."t"']),
    ("RENAME TABLE a TO b", ['ALTER TABLE "d"."a" RENAME TO "b"']),
    ("RENAME TABLE a TO b, c TO e.f",
     ['ALTER TABLE "d"."a" RENAME TO "b"', 'ALTER TABLE "d"."c" SET SCHEMA "e"', 'ALTER TABLE "e"."c" RENAME TO "f"']),
    ("ALTER TABLE t RENAME TO q", [f'ALTER TABLE {Q} RENAME TO "q"']),
    ("ALTER TABLE t ADD COLUMN x INT NOT NULL DEFAULT 0 AFTER y, DROP COLUMN z",
     [f'ALTER TABLE {Q} ADD COLUMN "x" INTEGER DEFAULT 0 NOT NULL', f'ALTER TABLE {Q} DROP COLUMN "z"']),
    ("ALTER TABLE t ADD e ENUM('a') FIRST",
     [f'ALTER TABLE {Q} ADD COLUMN "e" TEXT CHECK ("e" IN (\'a\'))']),
    ("ALTER TABLE t MODIFY COLUMN w BIGINT NOT NULL DEFAULT 5",
     [f'ALTER TABLE {Q} ALTER COLUMN "w" TYPE BIGINT USING "w"::BIGINT',
      f'ALTER TABLE {Q} ALTER COLUMN "w" SET NOT NULL',
      f'ALTER TABLE {Q} ALTER COLUMN "w" SET DEFAULT 5']),
    ("ALTER TABLE t CHANGE COLUMN x y VARCHAR(20)",
     [f'ALTER TABLE {Q} RENAME COLUMN "x" TO "y"',
      f'ALTER TABLE {Q} ALTER COLUMN "y" TYPE VARCHAR(20) USING "y"::VARCHAR(20)',
      f'ALTER TABLE {Q} ALTER COLUMN "y" DROP NOT NULL', f'ALTER TABLE {Q} ALTER COLUMN "y" DROP DEFAULT']),
    ("ALTER TABLE t ADD INDEX i (a), ADD UNIQUE KEY u (b)",
     [f'CREATE INDEX "t_i" ON {Q} ("a")', f'ALTER TABLE {Q} ADD CONSTRAINT "t_u" UNIQUE ("b")']),
    ("ALTER TABLE t ADD PRIMARY KEY (a), DROP PRIMARY KEY, DROP FOREIGN KEY fk, "
     "ADD CONSTRAINT fk2 FOREIGN KEY (a) REFERENCES o(id) ON DELETE CASCADE",
     [f'ALTER TABLE {Q} ADD PRIMARY KEY ("a")', f'ALTER TABLE {Q} DROP CONSTRAINT "t_pkey"',
      f'ALTER TABLE {Q} DROP CONSTRAINT "fk"',
      f'ALTER TABLE {Q} ADD CONSTRAINT "fk2" FOREIGN KEY ("a") REFERENCES "d"."o" ("id") ON DELETE CASCADE '
      'DEFERRABLE INITIALLY IMMEDIATE']),
    ("ALTER TABLE t DROP INDEX i", ['DROP INDEX "d"."t_i"']),
    ("ALTER TABLE t ALTER COLUMN a SET DEFAULT 3, ALTER a DROP DEFAULT",
     [f'ALTER TABLE {Q} ALTER COLUMN "a" SET DEFAULT 3', f'ALTER TABLE {Q} ALTER COLUMN "a" DROP DEFAULT']),
    ("ALTER TABLE t RENAME INDEX i TO j, RENAME COLUMN a TO c",
     ['ALTER INDEX "d"."t_i" RENAME TO "t_j"', f'ALTER TABLE {Q} RENAME COLUMN "a" TO "c"']),
    ("ALTER TABLE t ENGINE=InnoDB", []),
    # --- spatial columns: BYTEA (MySQL's internal form, SRID + WKB); SPATIAL keys: hash indexes (same names)
    ("CREATE TABLE t2 (g GEOMETRY)", ['CREATE TABLE "d"."t2" ("g" BYTEA)']),
    ("CREATE TABLE i363 (id INTEGER PRIMARY KEY, geom LINESTRING NOT NULL /* 80003 SRID 0 */, SPATIAL KEY geom (geom))"
     " ENGINE=MyISAM", ['CREATE TABLE "d"."i363" ("id" INTEGER PRIMARY KEY, "geom" BYTEA NOT NULL)',
                        'CREATE INDEX "i363_geom" ON "d"."i363" USING hash ("geom")']),
    ("CREATE TABLE g (`p` POINT SRID 4326 NOT NULL, point INT, c GEOMCOLLECTION, m MULTIPOLYGON, SPATIAL INDEX (p))",
     ['CREATE TABLE "d"."g" ("p" BYTEA NOT NULL, "point" INTEGER, "c" BYTEA, "m" BYTEA)',
      'CREATE INDEX "g_p" ON "d"."g" USING hash ("p")']),
    ("CREATE SPATIAL INDEX sp ON g (p)", ['CREATE INDEX "g_sp" ON "d"."g" USING hash ("p")']),
    ("ALTER TABLE g ADD COLUMN q POLYGON, ADD SPATIAL INDEX sq (q)",
     ['ALTER TABLE "d"."g" ADD COLUMN "q" BYTEA', 'CREATE INDEX "g_sq" ON "d"."g" USING hash ("q")']),
    ("ALTER TABLE g MODIFY q MULTILINESTRING NOT NULL",
     ['ALTER TABLE "d"."g" ALTER COLUMN "q" TYPE BYTEA USING "q"::BYTEA',
      'ALTER TABLE "d"."g" ALTER COLUMN "q" SET NOT NULL', 'ALTER TABLE "d"."g" ALTER COLUMN "q" DROP DEFAULT']),
    # generated columns: plain columns (values from the row form; statements writing the table take it)
    ("CREATE TABLE e (n VARCHAR(20), v VARCHAR(30) GENERATED ALWAYS AS (CONCAT(n, 'x')) STORED, "
     "w INT AS (1 + 1) VIRTUAL, p INT AS (2) PERSISTENT, q INT GENERATED ALWAYS AS (3))",
     ['CREATE TABLE "d"."e" ("n" VARCHAR(20), "v" VARCHAR(30), "w" INTEGER, "p" INTEGER, "q" INTEGER)']),
    # type synonyms sqlglot would read otherwise: LONG is MEDIUMTEXT (not BIGINT), INT8 BIGINT (not TINYINT),
    # REAL DOUBLE (not FLOAT4; FLOAT under REAL_AS_FLOAT: test_real_follows_the_sessions_sql_mode)
    ("CREATE TABLE s (a LONG, b LONG VARCHAR, c LONG VARBINARY, d MIDDLEINT, e INT1, f INT3, g INT8, h FLOAT4, "
     "i FLOAT8, r REAL, n NCHAR(3), v NATIONAL VARCHAR(4), `date` INT8, KEY real (r))",
     ['CREATE TABLE "d"."s" ("a" TEXT, "b" TEXT, "c" BYTEA, "d" INTEGER, "e" SMALLINT, "f" INTEGER, "g" BIGINT, '
      '"h" REAL, "i" DOUBLE PRECISION, "r" DOUBLE PRECISION, "n" CHAR(3), "v" VARCHAR(4), "date" BIGINT)',
      'CREATE INDEX "s_real" ON "d"."s" ("r")']),
    # MariaDB's UUID: PostgreSQL's uuid
    ("CREATE TABLE u (id UUID PRIMARY KEY, v UUID)", ['CREATE TABLE "d"."u" ("id" UUID PRIMARY KEY, "v" UUID)']),
    # --- session / transaction: nothing to do on the target
    ("SET NAMES utf8mb4", []),
    ("SET CHARACTER SET utf8", []),
    ("SET sql_mode = 'STRICT_ALL_TABLES'", []),
    ("SET autocommit=1, @@session.sql_mode='x', SESSION time_zone = '+00:00'", []),
    ("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", []),
    ("USE x", []),
    ("BEGIN", []),
    ("START TRANSACTION", []),
    ("COMMIT", []),
    ("ROLLBACK", []),
    ("", []),
]


@pytest.mark.parametrize(("mysql", "expected"), CASES, ids=[c[0][:50] for c in CASES])
def test_translate(mysql, expected):
    got = translate_statement(mysql, "d", schema=SCHEMA)
    assert [s.sql for s in got] == expected
    assert all(s.args == () for s in got)


def test_enough_cases():
    assert len(CASES) >= 50


UNTRANSLATABLE = [
    ("INSERT INTO t (id, a) VALUES (1, 2) ON DUPLICATE KEY UPDATE a = 1", None, "primary key is unknown"),
    ("REPLACE INTO nopk (a) VALUES (1)", StaticSchema({("d", "nopk"): TableInfo(columns=("a",))}),
     "primary key is unknown"),
    ("INSERT INTO gen (id) VALUES (1)", StaticSchema({("d", "gen"): TableInfo(("id",), ("id", "g"),
                                                                            generated=frozenset({"g"}))}),
     "has generated column g"),
    # a table dropped on the source since (the schema is today's): its row form carries its types
    ("INSERT INTO gone (a) VALUES (1)", SCHEMA, "writing d.gone, which is not in the source schema"),
    ("UPDATE gone SET a = 1", SCHEMA, "not in the source schema"),
    ("DELETE FROM gone WHERE a = 1", SCHEMA, "not in the source schema"),
    ("UPDATE t SET a = 1 ORDER BY b LIMIT 1", SCHEMA, "ORDER BY/LIMIT"),
    ("DELETE FROM t WHERE a = 1 LIMIT 2", SCHEMA, "ORDER BY/LIMIT"),
    ("UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.a = 1", SCHEMA, "multi-table"),
    ("DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id", SCHEMA, "multi-table DELETE"),
    ("UPDATE t SET a = a + 1, b = a WHERE id = 1", SCHEMA, "assigned earlier"),
    ("INSERT INTO t (id, a) VALUES (1, 2) ON DUPLICATE KEY UPDATE a = 5, b = a", SCHEMA, "assigned earlier"),
    ("UPDATE ts SET a = 1", SCHEMA, "ON UPDATE CURRENT_TIMESTAMP column upd"),
    ("INSERT INTO ts (id, a) VALUES (1, 2)", SCHEMA, "CURRENT_TIMESTAMP default column upd"),
    ("INSERT INTO t (a) VALUES (@x)", SCHEMA, "variable @x"),
    ("UPDATE t SET a = @@session.sql_mode", SCHEMA, "variable"),
    ("SET @x = 1", SCHEMA, "SET @x"),
    ("SET GLOBAL sql_mode = ''", SCHEMA, "SET GLOBAL"),
    ("SET insert_id = 5", SCHEMA, "SET insert_id"),
    ("LOCK TABLES t WRITE", SCHEMA, "LOCK TABLES"),
    ("UNLOCK TABLES", SCHEMA, "UNLOCK TABLES"),
    ("GRANT ALL ON *.* TO u", SCHEMA, "GRANT"),
    ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1", SCHEMA, "CREATE"),
    ("CREATE PROCEDURE p() BEGIN END", SCHEMA, "CREATE PROCEDURE"),
    ("CALL p()", SCHEMA, "CALL"),
    ("SAVEPOINT s", SCHEMA, "SAVEPOINT"),
    ("SELECT 1", SCHEMA, "SELECT"),
    ("INSERT INTO t SET a = 1", SCHEMA, "cannot parse"),
    ("CREATE TABLE t2 (a INT, FULLTEXT KEY f ((a + 1)))", SCHEMA, "FULLTEXT key on an expression"),
    ("CREATE TABLE t2 (a VARCHAR(100), UNIQUE KEY u (a(10)))", SCHEMA, "UNIQUE key on a column prefix"),
    ("CREATE TABLE t2 LIKE t", SCHEMA, "LIKE"),
    ("CREATE TABLE t2 AS SELECT 1", SCHEMA, "SELECT"),
    ("CREATE TEMPORARY TABLE t2 (a INT)", SCHEMA, "TEMPORARY"),
    ("DROP TEMPORARY TABLE t", SCHEMA, "TEMPORARY"),
    ("ALTER TABLE t ADD COLUMN n INT AUTO_INCREMENT", SCHEMA, "AUTO_INCREMENT"),
    ("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4", SCHEMA, "CONVERT"),
    ("ALTER TABLE t RENAME TO other.q", SCHEMA, "another database"),
    ("INSERT INTO t (a) VALUES (?)", SCHEMA, "1 placeholders but 0 parameters"),
]


@pytest.mark.parametrize(("mysql", "schema", "construct"), UNTRANSLATABLE, ids=[c[0][:50] for c in UNTRANSLATABLE])
def test_untranslatable(mysql, schema, construct):
    with pytest.raises(Untranslatable) as info:
        translate_statement(mysql, "d", schema=schema)
    assert construct in info.value.construct
    assert info.value.retriable is False
    assert mysql[:20] in str(info.value)


def test_unqualified_table_without_current_database():
    with pytest.raises(Untranslatable, match="no current database"):
        translate_statement("DELETE FROM t", None)


def test_long_statement_truncated_in_error():
    sql = "GRANT ALL ON *.* TO u" + " " * 1000 + "x"
    err = pytest.raises(Untranslatable, translate_statement, sql, "d").value
    assert len(err.statement) < 300


# ------------------------------------------------------------------------------------------ params


def test_placeholders_numbered_in_text_order_and_bytes_stay_bytes():
    got = translate_statement("UPDATE t SET a = ?, b = ? WHERE id = ? AND c = '?'", "d", (b"\x00\xff", "x", 7))
    assert got == [PgStatement(f'UPDATE {Q} SET "a" = $1, "b" = $2 WHERE "id" = $3 AND "c" = \'?\'',
                               (b"\x00\xff", "x", 7))]


def test_replace_with_placeholders():
    got = translate_statement("REPLACE INTO t (id, a, b) VALUES (?, ?, ?)", "d", (1, 2, None), schema=SCHEMA)
    assert got[0].sql.startswith(f'INSERT INTO {Q} ("id", "a", "b") VALUES ($1, $2, $3) ON CONFLICT("id")')
    assert got[0].args == (1, 2, None)


def test_params_converted_for_asyncpg():
    got = translate_statement("INSERT INTO t (a, b) VALUES (?, ?)", "d", (bytearray(b"ab"), dt.timedelta(hours=1)))
    assert got[0].args == (b"ab", dt.timedelta(hours=1))  # MySQL TIME: INTERVAL (the codec takes it for TIME too)


@pytest.mark.parametrize("value, ok", [
    ("12:34:56", True), ("-838:59:59", True), ("838:59:58.999999", True), ("12:34", True),
    ("1234", False), ("123456", False), ("1 12:00:00", False), ("12:60:00", False), ("  12:00:00", False),
])
def test_time_text_is_faithful_only_in_the_form_mysql_and_interval_read_alike(value, ok):
    """MySQL reads '1234' as 00:12:34, an INTERVAL as 1234 seconds: such statements take the row form."""
    schema = StaticSchema({("d", "tm"): TableInfo(("id",), ("id", "t"), retyped={"t": ("time", ())})})
    sql = f"INSERT INTO tm (id, t) VALUES (1, '{value}')"
    if ok:
        want = f'INSERT INTO "d"."tm" ("id", "t") VALUES (1, \'{value}\')'
        assert translate_statement(sql, "d", schema=schema)[0].sql == want
    else:
        with pytest.raises(Untranslatable):
            translate_statement(sql, "d", schema=schema)
    assert translate_statement("INSERT INTO tm (id, t) VALUES (1, ?)", "d", (dt.timedelta(hours=900),),
                               schema=schema)[0].args == (dt.timedelta(hours=900),)


def test_the_time_codec_takes_mysql_time_values_within_a_day():
    from dbmux.replicator.pg_types import time_micros, time_of_micros

    for value in (dt.timedelta(0), dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
                  dt.timedelta(seconds=5, microseconds=7)):
        assert time_of_micros(time_micros(value)) == (dt.datetime.min + value).time()
    assert time_of_micros(time_micros(dt.time(1, 2, 3, 4))) == dt.time(1, 2, 3, 4)
    for value in (dt.timedelta(days=1), dt.timedelta(seconds=-1), dt.timedelta(hours=120)):
        with pytest.raises(Untranslatable, match="ALTER its column TYPE INTERVAL"):
            time_micros(value)


# ------------------------------------------------------------------------------------------ auto-increment


def test_source_generated_ids_are_written_explicitly():
    got = translate_statement("INSERT INTO t (a, b) VALUES (1, 2), (3, 4)", "d", schema=SCHEMA, insert_id=7)
    assert got[0].sql == f'INSERT INTO {Q} ("a", "b", "id") VALUES (1, 2, 7), (3, 4, 8)'
    got = translate_statement("INSERT INTO t (id, a) VALUES (NULL, 1), (0, 2)", "d", schema=SCHEMA, insert_id=3)
    assert got[0].sql == f'INSERT INTO {Q} ("id", "a") VALUES (3, 1), (4, 2)'


def test_explicit_id_from_a_placeholder_is_kept():
    # MySQL reports an explicit AUTO_INCREMENT value as the insert id too (sysbench's delete + insert)
    got = translate_statement("INSERT INTO t (id, a) VALUES (?, ?)", "d", (504, 1), schema=SCHEMA, insert_id=504)
    assert got[0].sql == f'INSERT INTO {Q} ("id", "a") VALUES ($1, $2)' and got[0].args == (504, 1)


@pytest.mark.parametrize("params", [(None, 1), (0, 1)])
def test_id_generated_from_a_placeholder_is_refused(params):
    with pytest.raises(Untranslatable, match="NULL/0 placeholder"):
        translate_statement("INSERT INTO t (id, a) VALUES (?, ?)", "d", params, schema=SCHEMA, insert_id=5)


@pytest.mark.parametrize("sql", ["INSERT INTO t (id, a) VALUES (NULL, 1), (9, 2), (NULL, 3)",
                                 "INSERT IGNORE INTO t (a) VALUES (1), (2)",
                                 "INSERT INTO u (a) VALUES (1)"])
def test_generated_ids_we_cannot_place(sql):
    with pytest.raises(Untranslatable):
        translate_statement(sql, "d", schema=SCHEMA, insert_id=5)


# ------------------------------------------------------------------------------------------ row form


def test_row_insert_is_an_upsert():
    st = row_statement("d", "t", "insert", None, {"id": 1, "a": "x", "b": None}, ("id",))
    assert st == PgStatement(f'INSERT INTO {Q} ("id", "a", "b") VALUES ($1, $2, $3) ON CONFLICT ("id") '
                             'DO UPDATE SET "a" = EXCLUDED."a", "b" = EXCLUDED."b"', (1, "x", None))
    st = row_statement("d", "t", "insert", None, {"id": 1}, ("id",))
    assert st.sql.endswith('ON CONFLICT ("id") DO NOTHING')


def test_row_update_uses_the_before_key():
    st = row_statement("d", "t", "update", {"id": 1, "a": "x"}, {"id": 2, "a": "y"}, ("id",))
    assert st == PgStatement(f'UPDATE {Q} SET "id" = $1, "a" = $2 WHERE "id" = $3', (2, "y", 1))


def test_row_delete_with_composite_key():
    st = row_statement("d", "k2", "delete", {"x": 1, "y": 2, "v": 3}, None, ("x", "y"))
    assert st == PgStatement('DELETE FROM "d"."k2" WHERE "x" = $1 AND "y" = $2', (1, 2))


def test_row_without_pk_matches_one_row_on_every_column():
    st = row_statement("d", "t", "delete", {"a": 1, "b": None}, None, ())
    assert st == PgStatement(f'DELETE FROM {Q} WHERE ctid = (SELECT ctid FROM {Q} WHERE "a" IS NOT DISTINCT FROM $1 '
                             'AND "b" IS NOT DISTINCT FROM $2 LIMIT 1)', (1, None))
    st = row_statement("d", "t", "update", {"a": 1}, {"a": 2}, ())
    assert st.sql == (f'UPDATE {Q} SET "a" = $1 WHERE ctid = (SELECT ctid FROM {Q} WHERE "a" IS NOT DISTINCT FROM $2 '
                      'LIMIT 1)')
    assert st.args == (2, 1)


def test_row_errors():
    with pytest.raises(Untranslatable, match="primary key column id"):
        row_statement("d", "t", "delete", {"a": 1}, None, ("id",))
    with pytest.raises(Untranslatable, match="op"):
        row_statement("d", "t", "upsert", None, {"a": 1}, ())


# ------------------------------------------------------------------------------------------ values


@pytest.mark.parametrize(("value", "pg_type", "expected"), [
    (dt.timedelta(hours=25), "TIME", Untranslatable),
    (dt.timedelta(seconds=-1), "TIME", Untranslatable),
    (dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=5), "TIME", dt.time(23, 59, 59, 5)),
    (dt.timedelta(hours=25), "INTERVAL", dt.timedelta(hours=25)),
    ("0000-00-00", None, Untranslatable),
    ("0000-00-00 00:00:00", "TIMESTAMP(0)", Untranslatable),
    ("2024-00-10", "DATE", Untranslatable),
    ("2024-00-10", "TEXT", "2024-00-10"),
    (memoryview(b"ab"), "BYTEA", b"ab"),
    ("ab", "BYTEA", b"ab"),
    (True, "SMALLINT", 1),
    (None, "DATE", None),
])
def test_to_pg_value(value, pg_type, expected):
    if expected is Untranslatable:
        with pytest.raises(Untranslatable):
            to_pg_value(value, pg_type)
    else:
        got = to_pg_value(value, pg_type)
        assert got == expected and type(got) is type(expected)


def test_quote_ident():
    assert quote_ident('we"ird') == '"we""ird"'
    with pytest.raises(Untranslatable):
        quote_ident("")


_ROW_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(), st.binary(max_size=8),
    st.sampled_from(["0000-00-00", "0000-00-00 00:00:00", "2024-00-10", "0000-00-001", "12:30"]),
    st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(hours=23)), st.dates(), st.datetimes())


@settings(max_examples=400, deadline=None)
@given(st.lists(_ROW_VALUES, min_size=1, max_size=6))
def test_row_insert_args_fast_path_equals_to_pg_value(values):
    after = {f"c{i}": v for i, v in enumerate(values)}
    try:
        expected = tuple(to_pg_value(v) for v in values)
    except Untranslatable:
        with pytest.raises(Untranslatable):
            row_statement("d", "t", "insert", None, after, ("c0",))
        return
    got = row_statement("d", "t", "insert", None, after, ("c0",)).args
    assert got == expected and [type(v) for v in got] == [type(v) for v in expected]


# ------------------------------------------------------------------------------------------ faithful values

RETYPED = {"b": ("longblob", ()), "v": ("varbinary", ()), "j": ("json", ()), "e": ("enum", ("a", "it's")),
           "s": ("set", ("x", "y")), "y": ("year", ()), "bt": ("bit", ())}
TYPED = StaticSchema({("d", "big"): TableInfo(("id",), ("id", "b", "v", "j", "e", "s", "y", "bt", "note"),
                                              retyped=RETYPED),
                      ("d", "trig"): TableInfo(("id",), ("id", "a"), triggers=True),
                      ("d", "t"): TableInfo(("id",), ("id", "a", "b"))})
FAITHFUL = [  # (statement, params, None: translated / the construct that makes it Untranslatable)
    ("INSERT INTO big (id, b) VALUES (2, REPEAT('z', 1))", None, "expression written into LONGBLOB column b"),
    ("INSERT INTO big (id, b) VALUES (2, 'zz'), (3, X'00ff'), (4, NULL), (5, DEFAULT)", None, None),
    ("INSERT INTO big (id, b) VALUES (2, 'a\\\\x41')", None, "string value written into LONGBLOB column b"),
    ("INSERT INTO big (id, v) VALUES (2, 5)", None, "number value written into VARBINARY column v"),
    ("INSERT INTO big (id, b) VALUES (?, ?)", (2, b"\x00\xff"), None),
    ("INSERT INTO big (id, b) VALUES (?, ?)", (2, "text"), "param value written into LONGBLOB column b"),
    ("UPDATE big SET b = CONCAT(b, 'x') WHERE id = 1", None, "expression written into LONGBLOB column b"),
    ("UPDATE big SET note = CONCAT(note, 'x'), b = 'y' WHERE id = 1", None, None),  # TEXT: expressions are fine
    ("INSERT INTO big (id, b) SELECT id, a FROM t", None, "expression written into LONGBLOB column b"),
    ("INSERT INTO big (id, note) SELECT id, a FROM t", None, None),
    ("INSERT INTO big (id, b) VALUES (1, 'x') ON DUPLICATE KEY UPDATE b = VALUES(b)", None, None),
    ("INSERT INTO big (id, b) VALUES (1, 'x') ON DUPLICATE KEY UPDATE b = CONCAT(b, VALUES(b))", None,
     "expression written into LONGBLOB column b"),
    ("INSERT INTO big VALUES (1, 'b', 'v', '{}', 'a', 'x,y', 2024, NULL, CONCAT('a', 'b'))", None, None),
    ("UPDATE big SET j = JSON_OBJECT('a', 1)", None, "expression written into JSON column j"),
    ("UPDATE big SET j = ?", ('{"a": 1}',), None),
    ("UPDATE big SET j = ?", (b'{"a": 1}',), "param value written into JSON column j"),
    ("UPDATE big SET e = 'it''s'", None, None),
    ("UPDATE big SET e = ?", (b"a",), None),
    ("UPDATE big SET e = 'A'", None, "string value written into ENUM column e"),  # MySQL stores 'a'
    ("UPDATE big SET e = 2", None, "number value written into ENUM column e"),  # MySQL: the 2nd value
    ("UPDATE big SET s = ''", None, None),
    ("UPDATE big SET s = 'y,x'", None, "string value written into SET column s"),  # MySQL stores 'x,y'
    ("UPDATE big SET s = 'x,x'", None, "string value written into SET column s"),
    ("UPDATE big SET y = 0", None, None),
    ("UPDATE big SET y = '2024'", None, None),
    ("UPDATE big SET y = 24", None, "number value written into YEAR column y"),  # MySQL stores 2024
    ("UPDATE big SET y = '24'", None, "string value written into YEAR column y"),
    ("UPDATE big SET bt = b'101'", None, "written into BIT column bt"),
    ("UPDATE big SET bt = NULL", None, None),
    ("INSERT INTO trig (id, a) VALUES (1, 2)", None, "d.trig, which has triggers on the source"),
    ("UPDATE trig SET a = 1", None, "d.trig, which has triggers on the source"),
    ("DELETE FROM trig WHERE id = 1", None, "d.trig, which has triggers on the source"),
    ("INSERT INTO t (id, a) SELECT id, a FROM trig", None, None),  # reading fires nothing
    ("INSERT INTO t (id, a) VALUES (1, INET_ATON('1.2.3.4'))", None, "function INET_ATON() unknown"),
    ("INSERT INTO t (id, a) VALUES (1, my_stored_function(2))", None, "function my_stored_function() unknown"),
    ("INSERT INTO t (id, a) VALUES (1, _utf8mb4'x')", None, "character set introducer"),
]


@pytest.mark.parametrize(("mysql", "params", "construct"), FAITHFUL, ids=[c[0][:60] for c in FAITHFUL])
def test_values_postgresql_holds_differently(mysql, params, construct):
    if construct is None:
        assert translate_statement(mysql, "d", params, schema=TYPED)
    else:
        with pytest.raises(Untranslatable) as info:
            translate_statement(mysql, "d", params, schema=TYPED)
        assert construct in info.value.construct


@pytest.mark.parametrize(("column_type", "values"), [
    ("enum('a','b')", ("a", "b")), ("set('x','it''s','')", ("x", "it's", "")), ("enum('a,b')", ("a,b",)),
    ("int(11)", ()),
])
def test_value_list(column_type, values):
    assert value_list(column_type) == values


@pytest.mark.parametrize(("sql", "expected"), [
    ("CREATE TABLE d.n (id INT AUTO_INCREMENT, b LONGBLOB, e ENUM('a','it''s'), f BIT(4), y YEAR, "
     "ts TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), PRIMARY KEY (id))",
     TableInfo(primary_key=("id",), columns=("id", "b", "e", "f", "y", "ts"), auto_increment="id",
               time_defaults=frozenset({"ts"}), on_update=frozenset({"ts"}), utc_columns=frozenset({"ts"}),
               retyped={"b": ("longblob", ()), "e": ("enum", ("a", "it's")), "f": ("bit", ()), "y": ("year", ())},
               bits={"f": 4})),
    ("CREATE TABLE n (k VARCHAR(5), CONSTRAINT pk PRIMARY KEY (k), j JSON)",
     TableInfo(primary_key=("k",), columns=("k", "j"), retyped={"j": ("json", ())})),
    ("CREATE TABLE n (id UUID PRIMARY KEY, t TIME(3), g POINT NOT NULL, c VARCHAR(9) AS (CONCAT(id, 'x')) PERSISTENT)",
     TableInfo(primary_key=("id",), columns=("id", "t", "g", "c"), uuids=frozenset({"id"}),
               generated=frozenset({"c"}), retyped={"t": ("time", ()), "g": ("geometry", ())})),
    ("CREATE TABLE n LIKE t", None),
    ("CREATE TABLE n AS SELECT 1", None),
    ("ALTER TABLE t ADD b BLOB", None),
])
def test_created_table(sql, expected):
    """What a CREATE TABLE consumed just now tells the translator before the source schema is reloaded."""
    got = created_table(sql, "d")
    assert (TableInfo(**got[1]) if got else None) == expected
    if got:
        assert got[0] == ("d", "n")


@pytest.mark.parametrize("op, before, after, sql", [
    ("insert", None, {"ID": 1, "DOB": "1990-02-06"},
     'INSERT INTO "shop"."dc" ("id", "dob") VALUES ($1, $2) ON CONFLICT ("id") DO UPDATE SET "dob" = EXCLUDED."dob"'),
    ("update", {"ID": 1, "DOB": None}, {"ID": 1, "DOB": "1990-02-06"},
     'UPDATE "shop"."dc" SET "id" = $1, "dob" = $2 WHERE "id" = $3'),
    ("delete", {"ID": 1, "DOB": None}, None, 'DELETE FROM "shop"."dc" WHERE "id" = $1'),
])
def test_row_images_name_columns_as_the_translated_ddl_does(op, before, after, sql):
    """MySQL column names are case-insensitive; the PostgreSQL tables have them lower-case, and a key
    from a schema may be spelled otherwise than the row image (a client test suite's ``DOB`` column)."""
    st = row_statement("shop", "dc", op, before, after, ("id",))
    assert st.sql == sql
    assert 1 in st.args


@pytest.mark.parametrize("sql_mode, pg_type", [("", "DOUBLE PRECISION"), ("ANSI", "REAL"), ("REAL_AS_FLOAT", "REAL")])
def test_real_follows_the_sessions_sql_mode(sql_mode, pg_type):
    from dbmux.core.events import Statement
    from dbmux.replicator.pg_applier import as_the_session_meant

    st = Statement('CREATE TABLE "t" (r REAL, "real" INT)' if "ANSI" in sql_mode else "CREATE TABLE t (r REAL)",
                   kind="ddl")
    got = translate_statement(as_the_session_meant(st, sql_mode), "d")[0].sql
    assert got.startswith(f'CREATE TABLE "d"."t" ("r" {pg_type}')


@pytest.mark.parametrize("sql, sql_mode, expected", [
    ('DROP TABLE "tb1" /* generated by server */', "ANSI", "DROP TABLE `tb1` /* generated by server */"),
    ('SELECT "a""b", \'"x"\' FROM "t`q"', "ANSI_QUOTES", "SELECT `a\"b`, '\"x\"' FROM `t``q`"),
    ('DROP TABLE "tb1"', "STRICT_TRANS_TABLES", 'DROP TABLE "tb1"'),  # a string outside ANSI_QUOTES
    ('INSERT INTO t VALUES ("unterminated', "ANSI", 'INSERT INTO t VALUES ("unterminated'),
])
def test_ansi_quoted_names_are_backquoted(sql, sql_mode, expected):
    from dbmux.core.sqllex import ansi_names_backquoted

    assert ansi_names_backquoted(sql, sql_mode) == expected
