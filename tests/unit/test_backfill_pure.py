"""Backfill's pure parts: the catch-up filter that brings a partial copy forward, GTID positions, the record."""

from __future__ import annotations

import pytest

from dbmux.core.events import ChangeEvent, RowChange, Statement
from dbmux.core.gtid import Gtid, parse_gtid_list
from dbmux.replicator.backfill.record import BackfillRecord, TableProgress, catchup_rows, key_resumable
from dbmux.replicator.errors import BackfillError
from dbmux.replicator.verify_readers import TableShape

BIG = TableShape("d", "big", ("id", "v"), ("bigint", "varchar"), (0,))
TEXT = TableShape("d", "names", ("name", "v"), ("varchar", "int"), (0,))
SHAPES = {"d.big": BIG, "d.names": TEXT, "d.done": TableShape("d", "done", ("id",), ("int",), (0,)),
          "d.later": TableShape("d", "later", ("id",), ("int",), (0,))}


def _progress():
    return {"d.big": TableProgress(False, 100, [100]), "d.done": TableProgress(True, 5, [5]),
            "d.later": TableProgress()}


def _ev(*rows, statements=()):
    return ChangeEvent(Gtid.parse("0-1-7"), "binlog", 0, rows=rows, statements=statements)


def _ins(t, i):
    return RowChange(t, "d", "insert", after={"id": i, "v": "x"})


def _del(t, i):
    return RowChange(t, "d", "delete", before={"id": i, "v": "x"})


def _upd(t, a, b):
    return RowChange(t, "d", "update", before={"id": a, "v": "x"}, after={"id": b, "v": "y"})


@pytest.mark.parametrize("row, expected", [
    (_ins("big", 100), [("insert", 100)]),          # at the last copied key: copied range
    (_ins("big", 101), []),                          # above: the remaining chunks copy it
    (_del("big", 3), [("delete", 3)]),
    (_del("big", 500), []),
    (_upd("big", 3, 4), [("update", 3)]),
    (_upd("big", 3, 900), [("delete", 3)]),          # moves out of the copied range
    (_upd("big", 900, 3), [("insert", 3)]),          # moves into it
    (_upd("big", 900, 901), []),
    (_ins("done", 10**9), [("insert", 10**9)]),      # a finished table takes every change
    (_upd("done", 1, 2), [("update", 1)]),
    (_ins("later", 1), []),                          # not started: nothing copied yet
    (_ins("other", 1), []),                          # not selected
])
def test_catchup_rows_keeps_exactly_the_copied_range(row, expected):
    out = catchup_rows(_ev(row), SHAPES, _progress())
    got = [(r.op, (r.before or r.after)["id"]) for r in out]
    assert got == expected


def test_catchup_matches_key_columns_case_insensitively():
    row = RowChange("big", "d", "insert", after={"ID": 7, "v": "x"})
    assert len(catchup_rows(_ev(row), SHAPES, _progress())) == 1


def test_catchup_refuses_ddl_on_a_copied_table_but_not_on_others():
    ddl = Statement("ALTER TABLE d.big ADD COLUMN z INT", kind="ddl")
    with pytest.raises(BackfillError, match="d.big.*--restart"):
        catchup_rows(_ev(statements=(ddl,)), SHAPES, _progress())
    other = Statement("ALTER TABLE d.later ADD COLUMN z INT", kind="ddl")
    assert catchup_rows(_ev(statements=(other,)), SHAPES, _progress()) == []


@pytest.mark.parametrize("text, expected", [
    ("0-1-100", {"0": "0-1-100"}),
    ("0-1-100,1-2-5", {"0": "0-1-100", "1": "1-2-5"}),
    ("", {}),
    ("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-23", {"3e11fa47-71ca-11e1-9e33-c80aa9429562":
                                                   "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"}),
    ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1",
     {"3e11fa47-71ca-11e1-9e33-c80aa9429562": "3e11fa47-71ca-11e1-9e33-c80aa9429562:9",
      "4e11fa47-71ca-11e1-9e33-c80aa9429562": "4e11fa47-71ca-11e1-9e33-c80aa9429562:1"}),
])
def test_gtid_positions_from_mariadb_and_mysql(text, expected):
    assert {d: str(g) for d, g in parse_gtid_list(text).items()} == expected


def test_record_round_trips():
    rec = BackfillRecord({"0": "0-1-9"}, 123, {"d.big": TableProgress(False, 10, [10]), "d.t": TableProgress(True, 3)})
    back = BackfillRecord.loads(rec.dumps())
    assert back == rec and back.gtids() == {"0": Gtid.parse("0-1-9")}
    assert back.tables["d.big"].started and not TableProgress().started


@pytest.mark.parametrize("shape, ok", [
    (BIG, True), (TEXT, False), (TableShape("d", "n", ("a",), ("int",), ()), False),
    (TableShape("d", "c", ("a", "b"), ("int", "smallint"), (0, 1)), True),
    (TableShape("d", "c", ("a", "b"), ("int", "datetime"), (0, 1)), False),
])
def test_only_integer_keys_resume_mid_table(shape, ok):
    assert key_resumable(shape) is ok
