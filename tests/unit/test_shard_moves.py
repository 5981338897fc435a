"""Rows moving between PostgreSQL shards with their cascaded children (replicator.shard_moves): the
pure parts -- which routed rows are moves, the steps they become, the queries that find the children."""

from __future__ import annotations

import pytest

from dbmux.core.events import RowChange
from dbmux.replicator.shard_moves import MOVE, Move, ShardMoves, _Edge, is_move, move_key, move_steps

BEFORE, AFTER = {"name": "dogbert", "type": "owner"}, {"name": "catbert", "type": "owner"}


@pytest.mark.parametrize("row, moving", [
    (RowChange("person", "d", "delete", before=BEFORE, after=AFTER), True),  # routed: moves out
    (RowChange("person", "d", "insert", before=BEFORE, after=AFTER), True),  # routed: moves in
    (RowChange("person", "d", "delete", before=BEFORE), False),
    (RowChange("person", "d", "insert", after=AFTER), False),
    (RowChange("person", "d", "update", before=BEFORE, after=AFTER), False),
])
def test_which_rows_move(row, moving):
    assert is_move(row) is moving


def test_both_shards_name_the_hand_over_alike():
    assert move_key(("name",), AFTER) == move_key(("NAME",), {"Name": "catbert", "type": "x"})
    assert move_key(("name",), AFTER) != move_key(("name",), BEFORE)
    assert move_key(("a", "b"), {"a": 1, "b": "1"}) != move_key(("a", "b"), {"a": "1", "b": 1})


def test_a_row_moving_out_becomes_one_step_with_its_update_and_both_deletes():
    steps = move_steps("d", "person", RowChange("person", "d", "delete", before=BEFORE, after=AFTER), ("name",),
                       None, "0-1-7")
    assert [sql for sql, _ in steps] == [MOVE]
    move = steps[0][1][0]
    assert (move.direction, move.schema, move.table, move.gtid) == ("out", "d", "person", "0-1-7")
    assert move.plain.sql.startswith("DELETE") and move.plain.args == ("dogbert",)
    assert move.update.sql.startswith("UPDATE") and "dogbert" in move.update.args and "catbert" in move.update.args
    assert move.delete_new.sql.startswith("DELETE") and move.delete_new.args == ("catbert",)


def test_a_row_moving_in_is_inserted_then_waits_for_its_children():
    steps = move_steps("d", "person", RowChange("person", "d", "insert", before=BEFORE, after=AFTER), ("name",),
                       None, "0-1-7")
    assert steps[0][0].startswith("INSERT") and steps[0][1] == ("catbert", "owner")
    assert steps[1][0] == MOVE and steps[1][1][0] == Move("in", "d", "person", "0-1-7", move_key(("name",), AFTER))


def test_children_and_grandchildren_are_found_through_their_parents_new_key():
    move = move_steps("d", "person", RowChange("person", "d", "delete", before=BEFORE, after=AFTER), ("name",),
                      None, "g")[0][1][0]
    closure = [_Edge("d", "manager", ("name",), 0, ("name",)), _Edge("d", "owner", ("mname",), 1, ("name",))]
    sel = ShardMoves._selects(move, closure)
    assert sel[0] == 'SELECT * FROM "d"."person" WHERE "name" = $1'
    assert sel[1] == f'SELECT * FROM "d"."manager" WHERE ("name") IN (SELECT "name" FROM ({sel[0]}) p1)'
    assert sel[2] == f'SELECT * FROM "d"."owner" WHERE ("mname") IN (SELECT "name" FROM ({sel[1]}) p2)'
