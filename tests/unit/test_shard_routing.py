"""Shard routing: each shard target gets exactly its part of an event; what cannot be routed from the
statements takes the row form (never a silent drop)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from dbmux.core.events import ChangeEvent, ColumnType, RowChange, SessionContext, Statement, TableSchema
from dbmux.core.gtid import Gtid
from dbmux.replicator import shard_analysis
from dbmux.replicator.errors import ApplyError
from dbmux.replicator.mysql_sql import interpolate, literal
from dbmux.replicator.ordering import GtidOrderer
from dbmux.replicator.schema_info import StaticSchema, TableInfo
from dbmux.replicator.shard_routing import Decision, ShardMapError, ShardRouter, route_statement
from dbmux.shardmap import ShardMap

# ------------------------------------------------------------------------------------------ fixtures


@dataclass(frozen=True)
class TableRule:  # the shardmap API's rule (its module is developed alongside)
    kind: str
    key: tuple[str, ...] = ()
    shard: str | None = None


class FakeMap:
    """Two shards: an even first key value lives on ``a``, an odd one on ``b``; tables are sharded by
    their primary key unless listed."""

    version = 1
    shards = ("a", "b")
    RULES = {
        ("shop", "ref"): TableRule("reference"),
        ("shop", "one"): TableRule("single", shard="b"),
        ("shop", "two"): TableRule("single", shard="a"),
        ("shop", "one_old"): TableRule("single", shard="b"),
        ("shop", "two_old"): TableRule("single", shard="a"),
        ("shop", "orders"): TableRule("sharded", key=("tenant",)),
        ("shop", "bykey"): TableRule("sharded", key=("k",)),
        ("shop", "lines"): TableRule("sharded", key=("tenant", "line")),
    }

    def rule(self, db, table, primary_key):
        if (db, table) in self.RULES:
            return self.RULES[(db, table)]
        if not primary_key:
            raise ShardMapError(f"{db}.{table}: no shard key")
        return TableRule("sharded", key=tuple(primary_key))

    def locate(self, db, table, key):
        return self.shards[int(key[0]) % 2]

    def owners(self, rule):
        return (rule.shard,) if rule.kind == "single" else self.shards


SCHEMA = StaticSchema({
    ("shop", "t"): TableInfo(primary_key=("id",), columns=("id", "k", "c"), auto_increment="id"),
    ("shop", "orders"): TableInfo(primary_key=("tenant", "id"), columns=("tenant", "id", "total"), auto_increment="id"),
    ("shop", "bykey"): TableInfo(primary_key=("id",), columns=("id", "k")),
    ("shop", "lines"): TableInfo(primary_key=("tenant", "line"), columns=("tenant", "line", "qty")),
    ("shop", "ref"): TableInfo(primary_key=("id",), columns=("id", "x")),
    ("shop", "one"): TableInfo(primary_key=("id",), columns=("id", "x")),
    ("shop", "two"): TableInfo(primary_key=("id",), columns=("id", "x")),
    ("sbtest", "sbtest1"): TableInfo(primary_key=("id",), columns=("id", "k", "c", "pad"), auto_increment="id"),
})
MAP = FakeMap()
ROUTERS = {s: ShardRouter(MAP, SCHEMA, s) for s in MAP.shards}
GTID = Gtid.parse("0-1-9")


def ingress(*statements: Statement, db: str = "shop", sql_mode: str | None = None) -> ChangeEvent:
    return ChangeEvent(GTID, "ingress", 1_700_000_000_000, db=db, statements=tuple(statements),
                       session=SessionContext(user="app", db=db, sql_mode=sql_mode))


def values_of(statement: Statement) -> list[tuple]:
    """The rows a (routed) INSERT really inserts, as Python values: what the target would execute."""
    sql = statement.sql if statement.params is None else interpolate(statement.sql, statement.params)
    if sql.upper().startswith("REPLACE"):
        sql = "INSERT" + sql[len("REPLACE"):]
    sql = sql.replace(" VALUE (", " VALUES (")  # MySQL's synonym, unknown to sqlglot
    node = sqlglot.parse_one(sql, read="mysql")
    out = []
    for tup in node.expression.expressions:
        row = []
        for e in tup.expressions:
            if isinstance(e, exp.Neg) and isinstance(e.this, exp.Literal):
                row.append(-int(e.this.this))
            elif isinstance(e, exp.Literal):
                row.append(e.this if e.is_string else int(e.this))
            elif isinstance(e, exp.Introducer):  # _binary X'..' from interpolated bytes params
                row.append(bytes.fromhex(e.expression.this).decode())
            elif isinstance(e, exp.HexString):
                row.append(bytes.fromhex(e.this).decode())
            else:
                row.append(e.sql("mysql"))
        out.append(tuple(row))
    return out


# ------------------------------------------------------------------------------------------ statements

ROW = "row form"
BOTH = {"a", "b"}

# (sql, params, insert_id, expected, reason keyword)
# expected: ROW; a set of shards that apply the statement unchanged; or {shard: [rows it inserts]} for a split
STATEMENTS = [
    # INSERT ... VALUES: split by owner (1, 3 odd -> b; 2 even -> a), IGNORE / ODKU / REPLACE kept
    ("INSERT INTO t (id, k, c) VALUES (1, 10, 'x'), (2, 20, 'y'), (3, 30, 'z')", None, 0,
     {"a": [(2, 20, "y")], "b": [(1, 10, "x"), (3, 30, "z")]}, "split"),
    ("INSERT IGNORE INTO t (c, id) VALUES ('x', 4), ('y', 7)", None, 0, {"a": [("x", 4)], "b": [("y", 7)]}, "split"),
    ("INSERT INTO t (id, c) VALUES (1, 'x'), (2, 'y') ON DUPLICATE KEY UPDATE c = VALUES(c)", None, 0,
     {"a": [(2, "y")], "b": [(1, "x")]}, "split"),
    ("REPLACE INTO t (id, c) VALUES (6, 'x'), (9, 'y')", None, 0, {"a": [(6, "x")], "b": [(9, "y")]}, "split"),
    ("INSERT INTO t VALUES (8, 1, 'no column list'), (5, 2, 'uses the schema order')", None, 0,
     {"a": [(8, 1, "no column list")], "b": [(5, 2, "uses the schema order")]}, "split"),
    ("INSERT INTO t (id, k) VALUES (-3, 1), ('4', 2)", None, 0, {"a": [("4", 2)], "b": [(-3, 1)]}, "split"),
    ("INSERT INTO t (id, c) VALUES (2, 'x'), (4, 'y')", None, 0, {"a"}, "one shard"),
    ("INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)", (7, 3, b"c", b"p"), 0, {"b"}, "one shard"),
    ("INSERT INTO t (id, k, c) VALUES (?, ?, ?), (?, ?, ?)", (1, 2, b"odd", 2, 3, b"even"), 0,
     {"a": [(2, 3, "even")], "b": [(1, 2, "odd")]}, "split"),
    # key not a literal, or not an exact key
    ("INSERT INTO t (id, k) VALUES (1, 1), (1 + 1, 2)", None, 0, ROW, "not a literal"),
    ("INSERT INTO t (id, k) VALUES (RAND(), 1)", None, 0, ROW, "not a literal"),
    ("INSERT INTO t (id, k) VALUES ('05', 1)", None, 0, ROW, "exact key"),
    ("INSERT INTO t (id, k) VALUES (?, 1)", (1.5,), 0, ROW, "exact key"),
    # auto-increment keys: a single row takes insert_id; several generated rows need the row form
    ("INSERT INTO t (k, c) VALUES (1, 'x')", None, 41, {"b"}, "insert_id"),
    ("INSERT INTO t (id, k) VALUES (NULL, 1)", None, 42, {"a"}, "insert_id"),
    ("INSERT INTO t (id, k) VALUES (0, 1)", None, 43, {"b"}, "insert_id"),
    ("INSERT INTO t (id, k) VALUES (DEFAULT, 1)", None, 44, {"a"}, "insert_id"),
    ("INSERT INTO t (k, c) VALUES (1, 'x'), (2, 'y')", None, 41, ROW, "auto-increment"),
    ("INSERT INTO t (k) VALUES (1)", None, 0, ROW, "insert_id"),
    # a non-key AUTO_INCREMENT column: fine on one shard, not split over several
    ("INSERT INTO orders (tenant, total) VALUES (2, 10), (4, 20)", None, 100, {"a"}, "one shard"),
    ("INSERT INTO orders (tenant, total) VALUES (1, 10), (2, 20)", None, 100, ROW, "auto-increment"),
    ("INSERT INTO orders (tenant, id, total) VALUES (1, 7, 10), (2, 8, 20)", None, 8,
     {"a": [(2, 8, 20)], "b": [(1, 7, 10)]}, "split"),
    # conflicts: the shard key must be part of the primary key; ODKU must not move the key
    ("INSERT IGNORE INTO bykey (id, k) VALUES (1, 2)", None, 0, ROW, "primary key"),
    ("INSERT INTO bykey (id, k) VALUES (1, 2) ON DUPLICATE KEY UPDATE k = 3", None, 0, ROW, "primary key"),
    ("INSERT INTO bykey (id, k) VALUES (1, 2)", None, 0, {"a"}, "one shard"),
    ("INSERT INTO t (id, k) VALUES (1, 2) ON DUPLICATE KEY UPDATE id = id + 10", None, 0, ROW, "shard-key column"),
    # UPDATE / DELETE pinned by the key
    ("UPDATE t SET c = 'x' WHERE id = 5", None, 0, {"b"}, "pinned"),
    ("UPDATE t SET c = 'x' WHERE 6 = id", None, 0, {"a"}, "pinned"),
    ("UPDATE t SET c = 'x' WHERE (id = '7') AND k > 3", None, 0, {"b"}, "pinned"),
    ("UPDATE t SET c = 'x' WHERE id <=> 8", None, 0, {"a"}, "pinned"),
    ("UPDATE t AS x SET x.c = 'y' WHERE x.id = -2", None, 0, {"a"}, "pinned"),
    ("UPDATE t SET c = 'x' WHERE id IN (2, 4, 6)", None, 0, {"a"}, "pinned"),
    ("UPDATE t SET c = 'x' WHERE id IN (1, 2)", None, 0, BOTH, "pinned"),
    ("DELETE FROM t WHERE id = 3", None, 0, {"b"}, "pinned"),
    ("DELETE FROM t WHERE id = 3 LIMIT 1", None, 0, {"b"}, "pinned"),
    ("UPDATE orders SET total = 0 WHERE tenant = 3 AND id IN (1, 2, 3)", None, 0, {"b"}, "pinned"),
    ("UPDATE lines SET qty = 1 WHERE line = ? AND tenant = ?", (4, 3), 0, {"b"}, "pinned"),
    ("DELETE FROM lines WHERE tenant IN (2, 4) AND line IN (1, 2)", None, 0, {"a"}, "pinned"),
    ("UPDATE sbtest1 SET k=k+1 WHERE id=?", (10,), 0, {"a"}, "pinned"),
    ("UPDATE sbtest1 SET c=? WHERE id=?", (b"new c", 11), 0, {"b"}, "pinned"),
    ("DELETE FROM sbtest1 WHERE id=?", (12,), 0, {"a"}, "pinned"),
    # UPDATE / DELETE scattered
    ("UPDATE t SET c = 'x' WHERE k = 5", None, 0, BOTH, "scatter"),
    ("UPDATE t SET c = 'x' WHERE id = 1 OR id = 2", None, 0, BOTH, "scatter"),
    ("UPDATE t SET c = 'x' WHERE id = k", None, 0, BOTH, "scatter"),
    ("UPDATE t SET c = 'x' WHERE id = '05'", None, 0, BOTH, "scatter"),  # MySQL compares it as 5
    ("UPDATE orders SET total = 0 WHERE id = 3", None, 0, BOTH, "scatter"),
    ("UPDATE lines SET qty = 0 WHERE tenant = 3", None, 0, BOTH, "does not pin line"),
    ("DELETE FROM t", None, 0, BOTH, "scatter"),
    # ... that need the row form
    ("UPDATE t SET id = id + 1 WHERE id = 5", None, 0, ROW, "shard-key column"),
    ("UPDATE orders SET tenant = 2 WHERE tenant = 1", None, 0, ROW, "shard-key column"),
    ("DELETE FROM t WHERE k = 1 LIMIT 10", None, 0, ROW, "LIMIT"),
    ("UPDATE t SET c = 'x' WHERE k = 1 ORDER BY id LIMIT 1", None, 0, ROW, "LIMIT"),
    ("UPDATE t SET c = 'x' WHERE id IN (1, 2) LIMIT 1", None, 0, ROW, "LIMIT"),
    ("UPDATE IGNORE bykey SET id = id + 1 WHERE k = 2", None, 0, ROW, "primary key"),
    ("UPDATE t SET k = (@n := @n + 1) WHERE c = 'x'", None, 0, ROW, "user variables"),
    ("UPDATE ref SET x = (@n := @n + 1)", None, 0, BOTH, "reference"),
    # reading other shards' rows
    ("INSERT INTO t (id, k) SELECT id, x FROM ref", None, 0, ROW, "INSERT ... SELECT"),
    ("REPLACE INTO t SELECT * FROM t", None, 0, ROW, "INSERT ... SELECT"),
    ("UPDATE t SET c = (SELECT MAX(x) FROM ref) WHERE id = 1", None, 0, ROW, "subquery"),
    ("DELETE FROM t WHERE id IN (SELECT id FROM ref)", None, 0, ROW, "subquery"),
    ("INSERT INTO t (id, k) VALUES (1, (SELECT 1))", None, 0, ROW, "subquery"),
    ("UPDATE t JOIN ref ON t.id = ref.id SET t.c = ref.x", None, 0, ROW, "multi-table"),
    ("DELETE t FROM t JOIN orders ON t.id = orders.id", None, 0, ROW, "multi-table"),
    ("DELETE FROM t USING t, ref WHERE t.id = ref.id", None, 0, ROW, "multi-table"),
    ("UPDATE t, ref SET t.c = ref.x WHERE t.id = ref.id", None, 0, ROW, "unparsed"),
    ("WITH r AS (SELECT 1 AS id) DELETE FROM t WHERE id = 1", None, 0, ROW, "unparsed"),
    # reference and single tables
    ("INSERT INTO ref (id, x) VALUES (1, 'x'), (2, 'y')", None, 0, BOTH, "reference"),
    ("UPDATE ref SET x = 'y' ORDER BY id LIMIT 1", None, 0, BOTH, "reference"),
    ("DELETE FROM one WHERE id = 2", None, 0, {"b"}, "single"),
    ("INSERT INTO two (id, x) VALUES (1, 'x')", None, 0, {"a"}, "single"),
    ("INSERT INTO one (id, x) SELECT id, x FROM ref", None, 0, {"b"}, "unsharded"),
    ("INSERT INTO ref (id, x) SELECT id, x FROM ref WHERE id > 10", None, 0, BOTH, "unsharded"),
    ("UPDATE one JOIN two ON one.id = two.id SET one.x = two.x", None, 0, ROW, "exists only on shard"),
    ("UPDATE one JOIN ref ON one.id = ref.id SET ref.x = one.x", None, 0, ROW, "exists only on shard"),
    ("DELETE one FROM one JOIN ref ON one.id = ref.id", None, 0, {"b"}, "unsharded"),
    ("INSERT INTO ref (id, x) SELECT id, x FROM one", None, 0, ROW, "exists only on shard"),
    # DDL: the owners of the tables named; databases: every shard
    ("CREATE TABLE n (id INT NOT NULL AUTO_INCREMENT, v INT, PRIMARY KEY (id))", None, 0, BOTH, "DDL"),
    ("ALTER TABLE t ADD COLUMN z INT, ADD INDEX (z)", None, 0, BOTH, "DDL"),
    ("ALTER TABLE one ADD COLUMN z INT", None, 0, {"b"}, "DDL"),
    ("TRUNCATE TABLE t", None, 0, BOTH, "DDL"),
    ("TRUNCATE two", None, 0, {"a"}, "DDL"),
    ("CREATE INDEX i ON shop.one (x)", None, 0, {"b"}, "DDL"),
    ("DROP INDEX i ON two", None, 0, {"a"}, "DDL"),
    # DROP TABLE: every shard, IF EXISTS (where a table's rows are depends on the key it was created with,
    # which the schema may not say any more)
    ("DROP TABLE IF EXISTS ref", None, 0, {"a": "DROP TABLE IF EXISTS ref", "b": "DROP TABLE IF EXISTS ref"}, "split"),
    ("DROP TABLE one, two", None, 0, {s: "DROP TABLE IF EXISTS one, two" for s in BOTH}, "split"),
    ("DROP TABLE one, t", None, 0, {s: "DROP TABLE IF EXISTS one, t" for s in BOTH}, "split"),
    # a table the schema does not know (the primary dropped it already): every shard, IF EXISTS
    ("DROP TABLE gone, one", None, 0, {"a": "DROP TABLE IF EXISTS gone, one", "b": "DROP TABLE IF EXISTS gone, one"},
     "every shard"),
    ("DROP TABLES IF EXISTS gone", None, 0, {"a": "DROP TABLES IF EXISTS gone", "b": "DROP TABLES IF EXISTS gone"},
     "every shard"),
    ("RENAME TABLE one TO one_old, two TO two_old", None, 0,
     {"a": "RENAME TABLE two TO two_old", "b": "RENAME TABLE one TO one_old"}, "split"),
    ("CREATE DATABASE analytics", None, 0, BOTH, "database"),
    ("DROP SCHEMA IF EXISTS analytics", None, 0, BOTH, "database"),
    ("CREATE TABLE n2 AS SELECT * FROM t", None, 0, ROW, "SELECT"),
    ("CREATE TEMPORARY TABLE tmp (id INT)", None, 0, ROW, "temporary"),
    ("CREATE TABLE nokey (v INT)", None, 0, ROW, "shard map"),
    ("CREATE VIEW v AS SELECT * FROM t", None, 0, ROW, "unparsed"),
    # not understood: row form
    ("CALL refresh_totals()", None, 0, ROW, "unparsed"),
    ("DO RELEASE_LOCK('x')", None, 0, ROW, "unparsed"),
    ("LOAD DATA INFILE '/tmp/x' INTO TABLE t", None, 0, ROW, "unparsed"),
    ("SET GLOBAL max_connections = 10", None, 0, ROW, "unparsed"),
    ("INSERT INTO t SET id = 1", None, 0, ROW, "unparsed"),
    ("INSERT INTO t (id, c) VALUE (2, 'x'), (3, 'y')", None, 0, {"a": [(2, "x")], "b": [(3, "y")]}, "split"),
    ("UPDATE ghost SET v = 1 WHERE id = 1", None, 0, ROW, "unknown to the source schema"),
    ("INSERT INTO t (id) VALUES (?, ?)", (1,), 0, ROW, "placeholders"),
    ("INSERT INTO t (id, k) VALUES (1, 'it''s') garbage (", None, 0, ROW, "unparsed"),
    ("COMMIT", None, 0, set(), "transaction"),
]


@pytest.mark.parametrize("sql, params, insert_id, expected, reason", STATEMENTS,
                         ids=[f"{i:02d}-{s[0][:40]}" for i, s in enumerate(STATEMENTS)])
def test_statement_routing(sql, params, insert_id, expected, reason):
    db = "sbtest" if "sbtest" in sql else "shop"
    stmt = Statement(sql, params=params, insert_id=insert_id, kind="ddl" if sql.split()[0].upper() in (
        "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME") else "dml")
    decision = route_statement(sql, db, MAP, SCHEMA, params, insert_id)
    if isinstance(decision, Decision):
        assert reason.lower() in decision.reason.lower(), decision
    routed = {s: ROUTERS[s].route(ingress(stmt, db=db)) for s in MAP.shards}
    if expected == ROW:
        assert isinstance(decision, Decision) and decision.shards is None
        for out in routed.values():  # held for the binlog's row copy, on every shard
            assert [(s.sql, s.params, s.unsafe) for s in out.statements] == [(sql, params, True)]
    elif isinstance(expected, set):
        assert isinstance(decision, Decision) and decision.shards == expected
        for shard, out in routed.items():
            assert out.statements == ((stmt,) if shard in expected else ())
            assert out.gtid == GTID and out.db == db and out.session is not None
    else:
        assert isinstance(decision, dict) and set(decision) == set(expected)
        for shard, out in routed.items():
            if shard not in expected:
                assert out.statements == ()
                continue
            (mine,) = out.statements
            assert not mine.unsafe and mine.insert_id == insert_id
            if isinstance(expected[shard], str):
                assert mine.sql == expected[shard] == decision[shard]
            else:
                assert values_of(mine) == expected[shard]
                assert values_of(Statement(decision[shard])) == expected[shard]
                if params is not None:  # prepared: still prepared, with only this shard's params
                    assert "?" in mine.sql and len(mine.params) == mine.sql.count("?")


def test_split_keeps_the_text_exact():
    """The split slices the original text: escapes sqlglot would rewrite ('\\0' is a NUL byte to
    MySQL, sqlglot regenerates it as a backslash and a zero) and comments survive."""
    sql = r"INSERT /* bulk */ INTO t (id, c) VALUES (1, 'nul \0 and \Z'), (2, _binary'\0'), (3, x'00ff')"
    parts = route_statement(sql, "shop", MAP, SCHEMA)
    assert parts == {
        "a": r"INSERT /* bulk */ INTO t (id, c) VALUES (2, _binary'\0')",
        "b": r"INSERT /* bulk */ INTO t (id, c) VALUES (1, 'nul \0 and \Z'), (3, x'00ff')",
    }
    # prepared: the bytes stay bound params (no escaping round trip at all)
    stmt = Statement("INSERT INTO t (id, c) VALUES (?, ?), (?, ?)", params=(1, b"\x00\xff", 2, b"\x00"))
    (mine,) = ROUTERS["b"].route(ingress(stmt)).statements
    assert mine.sql == "INSERT INTO t (id, c) VALUES (?, ?)" and mine.params == (1, b"\x00\xff")


def test_split_keeps_on_duplicate_key_update_params():
    stmt = Statement("INSERT INTO t (id, k) VALUES (?, ?), (?, ?) AS new ON DUPLICATE KEY UPDATE k = new.k + ?",
                   params=(1, 10, 2, 20, 5))
    (a,) = ROUTERS["a"].route(ingress(stmt)).statements
    (b,) = ROUTERS["b"].route(ingress(stmt)).statements
    assert a.sql == b.sql == "INSERT INTO t (id, k) VALUES (?, ?) AS new ON DUPLICATE KEY UPDATE k = new.k + ?"
    assert a.params == (2, 20, 5) and b.params == (1, 10, 5)


@pytest.mark.parametrize("sql, params, shard", [
    ("UPDATE t SET c = 'x' WHERE id = 5", None, "b"),
    ("UPDATE t SET c = 'x' WHERE id = 6", None, "a"),
    ("UPDATE t SET c = ? WHERE id = ?", (b"x", 5), "b"),
    ("UPDATE t SET c = ? WHERE id = ?", (b"x", 6), "a"),
    ("UPDATE t SET c = 'x' WHERE id = ?", (b"7",), "b"),  # a string param compares like the key text
])
def test_parse_cache_keeps_values_apart(sql, params, shard):
    """Statements that differ only in values share one cached parse; each still routes by its own key."""
    assert route_statement(sql, "shop", MAP, SCHEMA, params).shards == {shard}


def test_literals_are_not_confused_with_comment_syntax():
    # MySQL reads 5--1 as 5 - (-1) = 6; sqlglot on its own reads "--1" as a comment, i.e. id = 5 (shard b)
    d = route_statement("UPDATE t SET c = 'x' WHERE id = 5--1", "shop", MAP, SCHEMA)
    assert d.shards == {"a", "b"} and "scatter" in d.reason  # an expression, not a key: every shard
    # an executable comment is code to MySQL: here it assigns the key
    d = route_statement("UPDATE t SET c = 'x' /*!, id = 8 */ WHERE id = 5", "shop", MAP, SCHEMA)
    assert d.shards is None and "shard-key" in d.reason


@pytest.mark.parametrize("sql_mode, sql", [
    ("NO_BACKSLASH_ESCAPES", r"UPDATE t SET c = 'a\' WHERE id = 5"),
])
def test_sql_modes_sqlglot_cannot_read_take_the_row_form(sql_mode, sql):
    out = ROUTERS["a"].route(ingress(Statement(sql), sql_mode=sql_mode))
    assert out.unsafe


@pytest.mark.parametrize("sql_mode", ["ANSI_QUOTES", "REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,ANSI", "ANSI"])
def test_ansi_quoted_names_are_routed_as_names(sql_mode):
    """Under ANSI_QUOTES ``"t"`` names a table (PyMySQL's MySQLdb tests run in sql_mode ANSI): routed by
    its key like the backquoted text, which the shard gets (a name in every sql_mode)."""
    ev = ingress(Statement('UPDATE "t" SET c = 1 WHERE "id" = 5'), sql_mode=sql_mode)
    assert not ROUTERS["a"].route(ev).statements and not ROUTERS["a"].route(ev).unsafe
    assert [s.sql for s in ROUTERS["b"].route(ev).statements] == ["UPDATE `t` SET c = 1 WHERE `id` = 5"]


# ------------------------------------------------------------------------------------------ rows

ROWS = [
    # (row change, {shard: expected row changes})
    (RowChange("t", "shop", "insert", after={"id": 3, "c": "x"}),
     {"a": [], "b": [("insert", None, {"id": 3, "c": "x"})]}),
    (RowChange("t", "shop", "delete", before={"id": 4, "c": "x"}),
     {"a": [("delete", {"id": 4, "c": "x"}, None)], "b": []}),
    (RowChange("t", "shop", "update", before={"id": 4, "c": "x"}, after={"id": 4, "c": "y"}),
     {"a": [("update", {"id": 4, "c": "x"}, {"id": 4, "c": "y"})], "b": []}),
    (RowChange("t", "shop", "update", before={"id": 4, "c": "x"}, after={"id": 6, "c": "x"}),  # same owner
     {"a": [("update", {"id": 4, "c": "x"}, {"id": 6, "c": "x"})], "b": []}),
    # moves a -> b: each keeps the other image (a PostgreSQL shard moves cascaded children with the row)
    (RowChange("t", "shop", "update", before={"id": 4, "c": "x"}, after={"id": 5, "c": "x"}),
     {"a": [("delete", {"id": 4, "c": "x"}, {"id": 5, "c": "x"})],
      "b": [("insert", {"id": 4, "c": "x"}, {"id": 5, "c": "x"})]}),
    (RowChange("orders", "shop", "update", before={"tenant": 1, "id": 9}, after={"tenant": 2, "id": 9}),
     {"a": [("insert", {"tenant": 1, "id": 9}, {"tenant": 2, "id": 9})],
      "b": [("delete", {"tenant": 1, "id": 9}, {"tenant": 2, "id": 9})]}),
    (RowChange("ref", "shop", "insert", after={"id": 1, "x": "r"}),
     {"a": [("insert", None, {"id": 1, "x": "r"})], "b": [("insert", None, {"id": 1, "x": "r"})]}),
    (RowChange("one", "shop", "delete", before={"id": 2, "x": "r"}),
     {"a": [], "b": [("delete", {"id": 2, "x": "r"}, None)]}),
    (RowChange("two", "shop", "update", before={"id": 1, "x": "r"}, after={"id": 3, "x": "s"}),
     {"a": [("update", {"id": 1, "x": "r"}, {"id": 3, "x": "s"})], "b": []}),
    # the binlog gives real column and table case; rules use lower case
    (RowChange("T", "Shop", "insert", after={"ID": 8, "C": "x"}),
     {"a": [("insert", None, {"ID": 8, "C": "x"})], "b": []}),
    (RowChange("Orders", "shop", "delete", before={"Tenant": Decimal("7"), "Id": 1}),
     {"a": [], "b": [("delete", {"Tenant": Decimal("7"), "Id": 1}, None)]}),
]


@pytest.mark.parametrize("row, expected", ROWS, ids=[f"{i:02d}-{r[0].table}-{r[0].op}" for i, r in enumerate(ROWS)])
def test_row_routing(row, expected):
    ev = ChangeEvent(GTID, "binlog", 1, db="shop", rows=(row,))
    for shard, want in expected.items():
        out = ROUTERS[shard].route(ev)
        assert [(r.op, r.before, r.after) for r in out.rows] == want
        assert all((r.table, r.db) == (row.table, row.db) for r in out.rows)
        assert out.gtid == GTID


def test_rows_that_cannot_be_routed_halt_loudly():
    unknown = ChangeEvent(GTID, "binlog", 1, rows=(RowChange("ghost", "shop", "insert", after={"v": 1}),))
    with pytest.raises(ApplyError, match="shop.ghost.*unknown to the source schema") as info:
        ROUTERS["a"].route(unknown)
    assert info.value.retriable  # a table created after the schema was loaded: retry with a fresh one
    no_key = ChangeEvent(GTID, "binlog", 1, rows=(RowChange("t", "shop", "insert", after={"c": "x"}),))
    with pytest.raises(ApplyError, match="'id'"):
        ROUTERS["a"].route(no_key)


# ------------------------------------------------------------------------------------------ events


def test_one_statement_needing_rows_makes_the_whole_event_wait_for_the_binlog_copy():
    ev = ingress(Statement("UPDATE t SET c = 'x' WHERE id = 2"),
                 Statement("UPDATE t SET id = 99 WHERE id = 3"),  # moves a row between shards
                 Statement("INSERT INTO ref (id, x) VALUES (1, 'r')"))
    routed = ROUTERS["a"].route(ev)
    assert routed.unsafe and all(s.unsafe for s in routed.statements)
    assert [s.sql for s in routed.statements] == [s.sql for s in ev.statements]

    orderer = GtidOrderer({"0": 8})
    assert orderer.offer(routed, 10, "p") == []  # held: the statements cannot be applied on a shard
    binlog = ChangeEvent(GTID, "binlog", 1, db="shop", rows=(
        RowChange("t", "shop", "update", before={"id": 2, "c": "o"}, after={"id": 2, "c": "x"}),
        RowChange("t", "shop", "update", before={"id": 3, "c": "o"}, after={"id": 99, "c": "o"}),
        RowChange("ref", "shop", "insert", after={"id": 1, "x": "r"})))
    row_form = ROUTERS["a"].route(binlog)
    assert [(r.op, r.before and r.before["id"], r.after and r.after["id"]) for r in row_form.rows] == [
        ("update", 2, 2), ("insert", None, 1)]  # row 3 -> 99 stays on b (both odd)
    released = orderer.offer(row_form, 11, "p")
    assert [(e.source, e.gtid) for e, _ in released] == [("binlog", GTID)]
    assert orderer.applied == {"0": 9}


def test_an_ingress_event_already_unsafe_stays_unsafe():
    ev = ingress(Statement("UPDATE t SET c = UUID() WHERE id = 2", unsafe=True),
                 Statement("DELETE FROM t WHERE id = 3"))
    out = ROUTERS["b"].route(ev)
    assert [s.unsafe for s in out.statements] == [True, True]


def test_binlog_statements_have_no_row_form_and_go_everywhere():
    trigger = "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.c = 'x'"
    ev = ChangeEvent(GTID, "binlog", 1, db="shop", statements=(Statement(trigger, kind="ddl"),))
    for router in ROUTERS.values():
        out = router.route(ev)
        assert out.statements == ev.statements and not out.unsafe
    ddl = ChangeEvent(GTID, "binlog", 1, db="shop", statements=(Statement("ALTER TABLE one ADD z INT", kind="ddl"),))
    assert ROUTERS["a"].route(ddl).statements == () and ROUTERS["b"].route(ddl).statements == ddl.statements


def test_session_statements_follow_the_event_statements_of_their_shard():
    ev = ingress(Statement("SET @batch = 7", kind="other"),
                 Statement("SET SESSION sql_mode = 'STRICT_TRANS_TABLES', NAMES utf8mb4", kind="other"),
                 Statement("UPDATE t SET c = @batch WHERE id = 4"))
    assert [s.sql for s in ROUTERS["a"].route(ev).statements] == [s.sql for s in ev.statements]
    b = ROUTERS["b"].route(ev)
    assert b.statements == () and b.gtid == GTID  # nothing of this transaction lives on b


def test_use_changes_the_database_of_later_statements():
    ev = ingress(Statement("USE sbtest", kind="other"), Statement("DELETE FROM sbtest1 WHERE id = 1"), db="shop")
    assert [s.sql for s in ROUTERS["b"].route(ev).statements] == ["USE sbtest", "DELETE FROM sbtest1 WHERE id = 1"]
    assert ROUTERS["a"].route(ev).statements == ()


def test_an_event_with_nothing_for_this_shard_is_empty_but_keeps_its_identity():
    ev = ingress(Statement("INSERT INTO t (id, c) VALUES (1, 'x')"), Statement("DELETE FROM one WHERE id = 3"))
    out = ROUTERS["a"].route(ev)
    assert (out.statements, out.rows) == ((), ())
    assert (out.gtid, out.source, out.ts_ms, out.db, out.session) == (ev.gtid, ev.source, ev.ts_ms, ev.db, ev.session)
    assert ROUTERS["b"].route(ev) is ev  # everything is b's: the event itself


def test_schema_can_be_swapped():
    router = ShardRouter(MAP, StaticSchema({}), "a")
    ev = ingress(Statement("DELETE FROM t WHERE id = 2"))
    assert router.route(ev).unsafe  # table unknown to this schema: row form
    router.schema = SCHEMA
    assert router.route(ev) is ev


def test_unknown_shard_is_refused():
    with pytest.raises(ValueError, match="'c'"):
        ShardRouter(MAP, SCHEMA, "c")


def test_decisions_are_logged(caplog):
    ev = ingress(Statement("INSERT INTO t (id) VALUES (1), (2), (3)"), Statement("UPDATE t SET k = 1 WHERE k = 2"),
                 Statement("DELETE FROM t WHERE id = 1"))
    with caplog.at_level(logging.DEBUG, logger="dbmux.replicator.shard_routing"):
        ROUTERS["b"].route(ev)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("shard b gtid 0-1-9 stmt 0: split 2/3 rows (")
    assert lines[1].startswith("shard b gtid 0-1-9 stmt 1: scatter (")
    assert lines[2].startswith("shard b gtid 0-1-9 stmt 2: one shard (")


def test_sysbench_statements_parse_once():
    """Executions of one prepared statement, and texts that differ only in literals, share one parse."""

    def event(i: int) -> ChangeEvent:
        return ingress(
            Statement("UPDATE sbtest1 SET k=k+1 WHERE id=?", (i,)),
            Statement("UPDATE sbtest1 SET c=? WHERE id=?", (f"{i}-c".encode(), i + 1)),
            Statement("DELETE FROM sbtest1 WHERE id=?", (i,)),
            Statement("INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)", (i, i, b"c", b"pad")),
            Statement(f"UPDATE sbtest1 SET k=k+1 WHERE id={i}"),
            Statement(f"UPDATE sbtest1 SET c='{i}-83868641912-28773972837' WHERE id={i}"),
            Statement(f"INSERT INTO sbtest1 (id, k, c, pad) VALUES ({i}, {i * 7}, '{i}-c', '{i}-pad')"),
            db="sbtest")

    ROUTERS["a"].route(event(0))
    misses = shard_analysis.shape_cache_info().misses
    for i in range(1, 50):
        out = ROUTERS["a"].route(event(i))
        assert len(out.statements) == (6 if i % 2 == 0 else 1)  # "id = i + 1" is on the other shard
    assert shard_analysis.shape_cache_info().misses == misses


def test_bulk_insert_beyond_the_cache_limit():
    rows = [(i, f"row {i}") for i in range(1, 3001)]  # (id 0 would mean "generate one")
    sql = "INSERT INTO t (id, c) VALUES " + ", ".join(f"({i}, '{c}')" for i, c in rows)
    parts = route_statement(sql, "shop", MAP, SCHEMA)
    assert values_of(Statement(parts["a"])) == [r for r in rows if r[0] % 2 == 0]
    assert values_of(Statement(parts["b"])) == [r for r in rows if r[0] % 2 == 1]


def test_statement_and_row_forms_agree_on_the_real_shard_map():
    """With the real map, a key reaches the same shard whether it comes from a statement literal, a
    bound param (bytes) or a binlog row image (int, Decimal)."""
    real = ShardMap(version=1, shards=("s1", "s2", "s3"), reference_tables=("shop.ref",))
    routers = [ShardRouter(real, SCHEMA, s) for s in real.shards]
    for key in range(1, 40):
        texts = [Statement(f"INSERT INTO t (id, c) VALUES ({key}, 'x')"),
                 Statement(f"INSERT INTO t (id, c) VALUES ('{key}', 'x')"),
                 Statement("INSERT INTO t (id, c) VALUES (?, ?)", params=(str(key).encode(), b"x")),
                 Statement(f"UPDATE t SET c = 'y' WHERE id = {key}")]
        rows = [RowChange("t", "shop", "insert", after={"id": key, "c": "x"}),
                RowChange("t", "shop", "delete", before={"id": Decimal(key), "c": "x"})]
        owners = set()
        for stmt in texts:
            owners |= {r.shard for r in routers if r.route(ingress(stmt)).statements}
        for row in rows:
            owners |= {r.shard for r in routers if r.route(ChangeEvent(GTID, "binlog", 1, rows=(row,))).rows}
        assert len(owners) == 1, (key, owners)
    ref = ingress(Statement("UPDATE ref SET x = 'y' WHERE id = 1"))
    assert all(r.route(ref) is ref for r in routers)


@given(rows=st.lists(st.tuples(st.integers(1, 10**6), st.text(max_size=8) | st.binary(max_size=8)),
                     min_size=1, max_size=12, unique_by=lambda r: r[0]),
       prepared=st.booleans())
@settings(max_examples=150, deadline=None)
def test_a_split_partitions_the_rows_exactly(rows, prepared):
    """Every row reaches exactly its owner, with its own value text or params, nothing else."""
    if prepared:
        stmt = Statement("INSERT INTO t (id, c) VALUES " + ", ".join("(?, ?)" for _ in rows),
                        params=tuple(v for row in rows for v in row))
    else:
        stmt = Statement("INSERT INTO t (id, c) VALUES " + ", ".join(f"({i}, {literal(c)})" for i, c in rows))
    for shard, router in ROUTERS.items():
        mine = [r for r in rows if MAP.locate("shop", "t", (r[0],)) == shard]
        out = router.route(ingress(stmt)).statements
        if not mine:
            assert out == ()
            continue
        (got,) = out
        if prepared:
            assert got.params == tuple(v for row in mine for v in row)
        else:
            assert got.sql == "INSERT INTO t (id, c) VALUES " + ", ".join(f"({i}, {literal(c)})" for i, c in mine)


@pytest.mark.parametrize("table, carried_key, shard", [
    ("ghost", ("v",), "b"),  # unknown to today's schema: routed by the key the event carries (v=1: odd)
    ("t", ("c",), "a"),  # today t's key is id (odd: b); at that GTID it was c (c=4: even)
])
def test_rows_are_routed_by_the_key_the_event_carries(table, carried_key, shard):
    """A table re-created with another key: its old events route by the key it had then. A table today's
    schema lacks is looked up again first (retriable: it may have been created since); once it is known to
    be gone (ShardTarget enters it without a key), by the carried key."""
    schema = TableSchema("shop", table, ("id", "v", "c"), (ColumnType("int"),) * 3, carried_key)
    ev = ChangeEvent(GTID, "binlog", 1, rows=(RowChange(table, "shop", "insert", after={"id": 1, "v": 1, "c": 4}),),
                     tables=(schema,))
    routers = ROUTERS
    if table == "ghost":
        with pytest.raises(ApplyError) as info:
            ROUTERS["a"].route(ev)
        assert info.value.retriable
        gone = StaticSchema({**SCHEMA.tables, ("shop", "ghost"): TableInfo()})
        routers = {s: ShardRouter(MAP, gone, s) for s in MAP.shards}
    assert {s: len(routers[s].route(ev).rows) for s in MAP.shards} == {s: int(s == shard) for s in MAP.shards}
