"""Table-driven tests for ingress.write_shape: what a DML statement writes, from its tokens."""

from __future__ import annotations

import pytest

from dbmux.core.sqllex import scan
from dbmux.ingress.classify import classify
from dbmux.ingress.write_shape import write_shape

ALL = None  # columns: every column (INSERT without a column list)

# sql, expected fields (only those named are checked)
CASES = [
    # INSERT / REPLACE
    ("INSERT INTO t VALUES (1, 2)", {"verb": "INSERT", "tables": ("t",), "columns": ALL, "source": "values",
                                     "rows": 1}),
    ("insert into `shop`.`orders` (a, `b`) values (1, 2), (3, 4)",
     {"tables": ("shop.orders",), "columns": frozenset({"a", "b"}), "rows": 2}),
    ("INSERT INTO t (t.a, db.t.b) VALUES (?, ?)", {"columns": frozenset({"a", "b"})}),
    ("INSERT INTO t VALUES ()", {"columns": frozenset(), "rows": 1}),
    ("INSERT INTO t () VALUES ()", {"columns": frozenset()}),
    ("INSERT INTO t VALUE (1)", {"source": "values", "rows": 1}),
    ("INSERT INTO t VALUES ROW(1, 2), ROW(3, 4)", {"rows": 2}),
    ("INSERT LOW_PRIORITY IGNORE INTO t (a) VALUES (1)", {"ignore": True, "columns": frozenset({"a"})}),
    ("INSERT INTO t PARTITION (p0) (a) VALUES (1)", {"tables": ("t",), "columns": frozenset({"a"})}),
    ("INSERT INTO t SET a = 1, t.b = NOW()", {"source": "set", "columns": frozenset({"a", "b"})}),
    ("INSERT INTO t (a, b) VALUES (1, DEFAULT)", {"uses_default": True}),
    ("INSERT INTO t (a) VALUES (DEFAULT(b))", {"uses_default": True}),
    ("INSERT INTO t (a) VALUES ('DEFAULT')", {"uses_default": False}),
    ("INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE b = VALUES(b), c = c + 1",
     {"on_duplicate": True, "dup_columns": frozenset({"b", "c"})}),
    ("INSERT INTO t (a) VALUES (1) AS new ON DUPLICATE KEY UPDATE a = new.a",
     {"on_duplicate": True, "dup_columns": frozenset({"a"})}),
    ("INSERT INTO t SELECT * FROM u", {"source": "select", "columns": ALL, "tables": ("t",)}),
    ("INSERT INTO t (a) SELECT x FROM u JOIN v ON u.id = v.id ON DUPLICATE KEY UPDATE a = 2",
     {"source": "select", "on_duplicate": True, "dup_columns": frozenset({"a"})}),
    ("INSERT INTO t (a) SELECT x FROM u JOIN v ON u.id = v.id", {"source": "select", "on_duplicate": False}),
    ("INSERT INTO t (SELECT 1)", {"source": "select"}),
    ("INSERT INTO t TABLE u", {"source": "select"}),
    ("INSERT INTO t SELECT * FROM u ORDER BY id LIMIT 3", {"nested_limit": True}),
    ("INSERT INTO t VALUES (1) RETURNING id", {"source": "values", "rows": 1}),
    ("REPLACE t VALUES (1)", {"verb": "REPLACE", "tables": ("t",), "columns": ALL}),
    ("REPLACE INTO t (a) SELECT 1", {"verb": "REPLACE", "source": "select"}),
    # UPDATE
    ("UPDATE t SET a = 1", {"verb": "UPDATE", "tables": ("t",), "columns": frozenset({"a"}), "limit": False,
                            "multi_table": False}),
    ("UPDATE LOW_PRIORITY IGNORE d.t SET a = a + 1, t.b = DEFAULT WHERE c = 2",
     {"tables": ("d.t",), "ignore": True, "columns": frozenset({"a", "b"}), "uses_default": True}),
    ("UPDATE t SET a = 1 WHERE b = 2 ORDER BY id, c DESC LIMIT 2", {"limit": True, "order_by": ("id", "c")}),
    ("UPDATE t SET a = 1 ORDER BY a + 1 LIMIT 2", {"limit": True, "order_by": None}),
    ("UPDATE t SET a = 1 LIMIT 2", {"limit": True, "order_by": None}),
    ("UPDATE t SET a = (SELECT MAX(x) FROM u ORDER BY x LIMIT 1) WHERE id = 3",
     {"tables": ("t",), "limit": False, "nested_limit": True}),
    ("UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.a = t2.a", {"tables": ("t1", "t2"), "multi_table": True}),
    ("UPDATE t1, d.t2 SET t1.a = 1", {"tables": ("t1", "d.t2"), "multi_table": True}),
    ("UPDATE t AS x LEFT JOIN (SELECT id FROM z) AS q USING (id) SET x.a = 1",
     {"tables": ("t",), "multi_table": True}),
    ("UPDATE (t1 JOIN t2 ON t1.a = t2.a) SET b = 1", {"tables": ("t1", "t2")}),
    ("UPDATE t USE INDEX (i) SET a = 1", {"tables": ("t",), "columns": frozenset({"a"})}),
    # DELETE
    ("DELETE FROM t WHERE a = 1", {"verb": "DELETE", "tables": ("t",), "multi_table": False}),
    ("DELETE LOW_PRIORITY QUICK IGNORE FROM d.t", {"tables": ("d.t",), "ignore": True}),
    ("DELETE FROM t WHERE id IN (SELECT id FROM u) ORDER BY id LIMIT 5",
     {"tables": ("t",), "limit": True, "order_by": ("id",)}),
    ("DELETE t1, t2 FROM t1 JOIN t2 ON t1.id = t2.id", {"tables": ("t1", "t2"), "multi_table": True}),
    ("DELETE a FROM t AS a JOIN (SELECT id FROM z) AS q ON a.id = q.id", {"tables": ("t",), "multi_table": True}),
    ("DELETE FROM t1, t2 USING t1 JOIN t2 JOIN t3", {"tables": ("t1", "t2", "t3"), "multi_table": True}),
    ("DELETE FROM t RETURNING *", {"tables": ("t",)}),
]

UNRECOGNISED = [
    "INSERT INTO",
    "INSERT INTO t",
    "INSERT INTO t (a + 1) VALUES (1)",
    "UPDATE t",
    "UPDATE t SET a + 1 = 2",
    "DELETE t1",
    "DELETE FROM (SELECT 1) x",
    "SELECT 1",
]


@pytest.mark.parametrize(("sql", "expected"), CASES, ids=[c[0][:70] for c in CASES])
def test_write_shape(sql, expected):
    shape = write_shape(scan(sql))
    assert shape is not None
    got = {name: getattr(shape, name) for name in expected}
    assert got == expected


@pytest.mark.parametrize("sql", UNRECOGNISED)
def test_forms_not_recognised_have_no_shape(sql):
    assert write_shape(scan(sql)) is None


def test_classify_carries_the_shape_of_dml_only():
    assert classify("UPDATE t SET a = 1").shape == write_shape(scan("UPDATE t SET a = 1"))
    assert classify("/*!40000 INSERT INTO t (a) VALUES (1) */").shape.columns == frozenset({"a"})
    assert classify("SELECT 1").shape is None
    assert classify("CREATE TABLE t (a INT)").shape is None
