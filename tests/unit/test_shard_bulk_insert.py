"""Bulk multi-row INSERTs on shard targets: their shape comes from the first row's (cached) instead of
sqlglot parsing every row -- and must be exactly the shape the full parse gives, or none at all."""

from __future__ import annotations

import pytest

from dbmux.core.sqllex import scan_with_markers
from dbmux.replicator.shard_analysis import _bulk_insert_shape, _dml_shape_text, analyze
from dbmux.replicator.shard_shapes import Slot
from dbmux.replicator.shard_skeleton import skeleton


def _skeleton(sql: str):
    tokens, _ = scan_with_markers(sql)
    return skeleton(tokens, slot_literals=True)


def _rows(n: int, row: str = "({i}, 'v{i}')") -> str:
    return ", ".join(row.format(i=i) for i in range(n))


@pytest.mark.parametrize("sql", [
    f"INSERT INTO d.t VALUES {_rows(3)}",
    f"insert into d.t (id, v) values {_rows(4)}",
    f"REPLACE INTO t VALUES {_rows(2)}",
    f"INSERT IGNORE INTO d.t (id) VALUES {_rows(5, '({i})')}",
    f"INSERT INTO d.t (id, v) VALUES {_rows(3)} ON DUPLICATE KEY UPDATE v = VALUES(v)",
    f"INSERT INTO d.t (id, v) VALUES {_rows(3)} AS new ON DUPLICATE KEY UPDATE v = new.v",
    "INSERT INTO d.t (id, v, n) VALUES " + _rows(3, "({i}, 'v{i}', {i}.25)"),
])
def test_a_bulk_insert_has_the_shape_the_full_parse_gives(sql):
    sk = _skeleton(sql)
    fast = _bulk_insert_shape(sk.text, len(sk.slots))
    assert fast is not None
    assert fast == _dml_shape_text(sk.text, len(sk.slots))


@pytest.mark.parametrize("sql", [
    "INSERT INTO d.t VALUES (1, 'a')",  # one row: nothing to gain
    f"INSERT INTO d.t VALUES {_rows(3)}, (4, NOW())",  # a row with an expression
    f"INSERT INTO d.t VALUES {_rows(3)}, (4)",  # rows of another width
    f"INSERT INTO d.t VALUES {_rows(3)} ON DUPLICATE KEY UPDATE v = 'x'",  # a value after the rows
    f"INSERT INTO d.t (id, v) SELECT 1, 'a' UNION SELECT {_rows(1)[1:-1]}",  # not a VALUES list
    f"UPDATE d.t SET v = 'a' WHERE id IN {_rows(1)}",
    f"INSERT INTO d.t VALUES {_rows(3, '({i}, -{i})')}",  # negated values: not plain slots
    f"INSERT INTO d.t VALUES {_rows(3)}, (SELECT 1, 2)",
    f"INSERT INTO d.t (id, v, n) VALUES {_rows(3, '({i}, NULL, {i}.5)')}",  # NULL stays in the text
])
def test_anything_else_is_left_to_the_full_parse(sql):
    sk = _skeleton(sql)
    assert _bulk_insert_shape(sk.text, len(sk.slots)) is None


def test_analyze_takes_the_bulk_path_for_long_statements_and_agrees_with_the_parse():
    sql = f"INSERT INTO d.many (id, v) VALUES {_rows(8000)}"  # a skeleton over the cached length
    shape, sk = analyze(sql)
    assert sk is not None and len(sk.slots) == 16000
    assert shape == _dml_shape_text(sk.text, len(sk.slots))
    assert _bulk_insert_shape(sk.text, len(sk.slots)) == shape
    assert len(shape.rows) == 8000 and shape.rows[7999] == (Slot(15998), Slot(15999))  # type: ignore[union-attr]
