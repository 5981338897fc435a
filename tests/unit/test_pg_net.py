"""replicator/pg_net.py: a unit's row changes to a PostgreSQL target as their net effect per key.

The statements are run by a small interpreter of their three shapes over a dict standing for the table,
and compared with the row changes applied one by one as the applier's row statements would (an insert
is an upsert, an update ``UPDATE ... WHERE key``, a delete ``DELETE ... WHERE key``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbmux.core.events import ChangeEvent, RowChange
from dbmux.core.gtid import Gtid
from dbmux.replicator.pg_net import INSERTS, MIXED, KeyChanged, NetUnknown, PgNet, net_kind, net_statements
from dbmux.replicator.pg_sql import Untranslatable

PK = ("id",)


def ins(k, v):
    return RowChange("t", "d", "insert", None, {"id": k, "v": v})


def upd(k, v, new_k=None, old_v=0):
    return RowChange("t", "d", "update", {"id": k, "v": old_v}, {"id": k if new_k is None else new_k, "v": v})


def dele(k):
    return RowChange("t", "d", "delete", {"id": k, "v": 0}, None)


def row_by_row(table: dict, rows: list[RowChange]) -> dict:
    out = dict(table)
    for r in rows:
        if r.op == "insert":
            out[r.after["id"]] = r.after["v"]
        elif r.op == "delete":
            out.pop(r.before["id"], None)
        elif r.before["id"] in out:
            del out[r.before["id"]]
            out[r.after["id"]] = r.after["v"]
    return out


def run_net(table: dict, rows: list[RowChange]) -> tuple[dict, list[str]]:
    net = PgNet()
    for i, r in enumerate(rows):
        net.add("d", "t", PK, None, r, i)
    out = dict(table)
    verbs = []
    for sql, args, _tag, copy in net.statements():
        verb = sql.split()[0]
        verbs.append(verb)
        if verb == "DELETE":
            out.pop(args[0], None)
        elif verb == "UPDATE":  # SET id = $1, v = $2 WHERE id = $3
            assert args[0] == args[2]
            if args[2] in out:
                out[args[2]] = args[1]
        else:
            assert verb == "INSERT" and copy == ("d", "t", ("id", "v"))
            out[args[0]] = args[1]  # (COPY, or the upsert it falls back to when the row is there)
    return out, verbs


@pytest.mark.parametrize("rows, verbs", [
    ([ins(1, 1), ins(2, 2)], ["INSERT", "INSERT"]),
    ([upd(1, 5), upd(1, 6)], ["UPDATE"]),  # one update, the last image
    ([dele(1), ins(1, 3)], ["DELETE", "INSERT"]),  # sysbench's delete + insert of one id
    ([ins(1, 1), dele(1)], ["DELETE"]),  # came and went: deleted anyway (a drifted row goes too)
    ([ins(1, 1), upd(1, 2)], ["INSERT"]),  # inserted, then updated: the last image inserted
    ([upd(1, 2, new_k=7)], ["DELETE", "INSERT"]),  # a key change: delete the old key, insert the new one
    ([dele(1), upd(1, 9)], ["DELETE"]),  # an update after the delete matches nothing
    ([upd(1, 1), dele(2), ins(3, 3)], ["DELETE", "UPDATE", "INSERT"]),  # deletes, updates, inserts
])
def test_statements_per_key(rows, verbs):
    start = {1: 0, 2: 0}
    got, got_verbs = run_net(start, rows)
    assert got_verbs == verbs
    assert got == row_by_row(start, rows)


# a primary's history: operations on keys 1..6 valid in order (insert a key not there, update or delete
# one that is); the target starts equal to the primary
_OPS = st.lists(st.tuples(st.sampled_from(["insert", "update", "delete", "rekey"]), st.integers(1, 6),
                          st.integers(0, 99)), max_size=40)


def _history(start: dict, ops) -> list[RowChange]:
    state, rows = dict(start), []
    for op, k, v in ops:
        if op == "insert" and k not in state:
            rows.append(ins(k, v))
            state[k] = v
        elif op in ("update", "rekey") and k in state:
            new_k = next((n for n in range(1, 7) if n not in state), k) if op == "rekey" else k
            rows.append(upd(k, v, new_k, state[k]))
            del state[k]
            state[new_k] = v
        elif op == "delete" and k in state:
            rows.append(dele(k))
            del state[k]
    return rows


@settings(max_examples=300, deadline=None)
@given(start=st.dictionaries(st.integers(1, 6), st.integers(0, 99)), ops=_OPS)
def test_net_effect_equals_row_by_row(start, ops):
    rows = _history(start, ops)
    assert run_net(start, rows)[0] == row_by_row(start, rows) == row_by_row({}, [ins(k, v) for k, v in start.items()]
                                                                             + rows)


@settings(max_examples=300, deadline=None)
@given(primary=st.dictionaries(st.integers(1, 6), st.integers(0, 99)),
       target=st.dictionaries(st.integers(1, 6), st.integers(100, 199)),
       ops=st.lists(st.tuples(st.sampled_from(["insert", "update", "delete"]), st.integers(1, 6),
                              st.integers(0, 99)), max_size=40))
def test_a_drifted_target_ends_as_row_by_row_would_leave_it(primary, target, ops):
    """Without key changes, even a target that differs from the primary ends as row by row leaves it."""
    rows = _history(primary, ops)
    assert run_net(target, rows)[0] == row_by_row(target, rows)


def _ev(*rows, statements=(), no_fk=False):
    return ChangeEvent(Gtid("0", "1", 1), "binlog", 0, rows=tuple(rows), statements=statements, no_fk_checks=no_fk)


@pytest.mark.parametrize("ev, columns, kind", [
    (_ev(ins(1, 1)), {("d", "t"): 2}, INSERTS),
    (_ev(ins(1, 1), upd(1, 2)), {("d", "t"): 2}, MIXED),
    (_ev(dele(1)), {("d", "t"): 2}, MIXED),
    (_ev(ins(1, 1)), {("d", "t"): 0}, 0),  # the table does not allow it
    (_ev(ins(1, 1)), {("d", "t"): 3}, 0),  # a partial image (or a column the target has more)
    (_ev(ins(1, 1), no_fk=True), {("d", "t"): 2}, 0),
    (_ev(), {("d", "t"): 2}, 0),
    (_ev(RowChange("t", "d", "insert", {"id": 1, "v": 0}, {"id": 1, "v": 0})), {("d", "t"): 2}, 0),  # moving in
    (_ev(RowChange("t", "d", "delete", {"id": 1, "v": 0}, {"id": 1, "v": 0})), {("d", "t"): 2}, 0),  # moving out
])
def test_net_kind(ev, columns, kind):
    assert net_kind(ev, columns) == kind


def test_net_kind_asks_for_a_table_not_looked_up():
    with pytest.raises(NetUnknown) as exc:
        net_kind(_ev(ins(1, 1)), {})
    assert exc.value.args == ("d", "t")


def test_net_statements_report_the_event_of_each_keys_last_change_and_register_copies():
    e1 = ChangeEvent(Gtid("0", "1", 1), "binlog", 0, rows=(upd(1, 5), RowChange("U", "D", "insert", None,
                                                                                   {"Id": 4, "v": 1})))
    e2 = ChangeEvent(Gtid("0", "1", 2), "binlog", 0, rows=(upd(1, 6),))
    copy_into: dict = {}
    out = net_statements([(e1, 10), (e2, 11)], lambda ev, row, schema, table: (PK, None, None), copy_into)
    assert [(sql.split()[0], args, ev.gtid.seq, off) for sql, args, ev, off in out] == [
        ("UPDATE", (1, 6, 1), 2, 11), ("INSERT", (4, 1), 1, 10)]
    assert list(copy_into.values()) == [("d", "u", ("id", "v"))]  # lowercase, as on the target


def test_a_row_without_its_key_is_untranslatable():
    net = PgNet()
    with pytest.raises(Untranslatable, match="lacks primary key column id"):
        net.add("d", "t", PK, None, RowChange("t", "d", "insert", None, {"v": 1}), 0)


def test_a_table_keyed_two_ways_in_one_run_is_refused():
    net = PgNet()
    net.add("d", "t", PK, None, ins(1, 1), 0)
    with pytest.raises(KeyChanged):
        net.add("d", "t", ("id", "v"), None, ins(2, 2), 1)
