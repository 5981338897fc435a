"""dbmux history's index: row changes of binlog copies by table and key, ingress copies by GTID."""

from __future__ import annotations

import decimal

import pytest

from dbmux.cli.history_index import HistoryIndex, key_text
from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement
from dbmux.core.gtid import Gtid

KEYS = {("shop", "orders"): ("id",), ("shop", "lines"): ("order_id", "no")}


def _binlog(seq: int, *rows: RowChange, ts: int = 0) -> ChangeEvent:
    return ChangeEvent(Gtid.parse(f"0-1-{seq}"), "binlog", ts or seq * 1000, rows=rows)


@pytest.mark.parametrize("values, text", [
    ((5,), "5"), (("5",), "5"), ((decimal.Decimal("5"),), "5"), ((b"ab",), "ab"), ((b"\xff",), "0xff"),
    ((1, "x"), "1\x1fx"),
])
def test_key_text(values, text):
    assert key_text(values) == text


def test_changes_by_key_in_commit_order_each_gtid_once(tmp_path):
    idx = HistoryIndex(tmp_path / "h.sqlite", lambda d, t: KEYS.get((d, t)))
    ins = _binlog(10, RowChange("orders", "shop", "insert", after={"id": 1, "qty": 1}),
                  RowChange("orders", "shop", "insert", after={"id": 2, "qty": 1}))
    upd = _binlog(11, RowChange("Orders", "SHOP", "update", before={"ID": 1, "qty": 1}, after={"ID": 1, "qty": 2}))
    rekey = _binlog(12, RowChange("orders", "shop", "update", before={"id": 2, "qty": 1}, after={"id": 3, "qty": 1}))
    dele = _binlog(13, RowChange("orders", "shop", "delete", before={"id": 1, "qty": 2}))
    ing = ChangeEvent(Gtid.parse("0-1-11"), "ingress", 11_000, statements=(Statement("UPDATE orders SET qty=2"),),
                      session=SessionContext(user="app"))
    for off, ev in enumerate((ins, upd, ing, rekey, dele, upd)):  # upd read twice (a second binlog copy)
        idx.add(ev, 0, off)
    idx.advance({0: 6})
    got = idx.changes("shop", "orders", "1", None, None)
    assert [(seq, i, off) for _, seq, i, _, _, off in got] == [(10, 0, 0), (11, 0, 1), (13, 0, 4)]
    assert [seq for _, seq, *_ in idx.changes("shop", "orders", "2", None, None)] == [10, 12]  # moved away...
    assert [seq for _, seq, *_ in idx.changes("shop", "orders", "3", None, None)] == [12]  # ...and here
    assert [seq for _, seq, *_ in idx.changes("shop", "orders", "1", 11_000, 12_000)] == [11]
    assert idx.session_of("0", 11) == (0, 2) and idx.session_of("0", 10) is None
    assert idx.positions() == {0: 6}
    idx.close()
    again = HistoryIndex(tmp_path / "h.sqlite", lambda d, t: None)  # reopened: keys and positions kept
    assert again.key_columns("shop", "orders") == ("id",) and again.positions() == {0: 6}


def test_composite_keys_and_unknown_tables(tmp_path):
    idx = HistoryIndex(tmp_path / "h.sqlite", lambda d, t: KEYS.get((d, t)))
    idx.add(_binlog(1, RowChange("lines", "shop", "insert", after={"no": 2, "order_id": 7, "sku": "x"}),
                    RowChange("gone", "shop", "insert", after={"a": 1, "b": "z"})), 0, 0)
    assert len(idx.changes("shop", "lines", key_text([7, 2]), None, None)) == 1
    assert idx.key_columns("shop", "gone") == ()
    assert len(idx.changes("shop", "gone", key_text([1, "z"]), None, None)) == 1  # by all its values
