"""MySQL target SQL text: literals and the one-round-trip group-commit request (pure: no server)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymysql.converters import escape_item

from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement
from dbmux.core.gtid import Gtid
from dbmux.replicator.mysql_applier import MySQLApplier, _KeyUnknown
from dbmux.replicator.mysql_sql import literal
from dbmux.replicator.positions import PartitionKey, TargetPosition

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.text(),
    st.floats(allow_nan=False, allow_infinity=False), st.binary(max_size=20),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.datetimes(), st.dates())


@settings(max_examples=500, deadline=None)
@given(st.one_of(SCALARS, st.binary(max_size=20)))
def test_literal_is_pymysqls_in_the_default_mode(value):
    assert literal(value) == escape_item(value, "utf8mb4")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_without_backslash_escapes_only_quotes_are_doubled(value):
    text = literal(value, backslash_escapes=False)
    assert text == "'" + value.replace("'", "''") + "'"


@pytest.mark.parametrize("value,charset,nbe,text", [
    ("plain", None, False, "'plain'"), ("it's", None, False, "'it\\'s'"), ("it's", None, True, "'it''s'"),
    ("a\\b", None, False, "'a\\\\b'"), ("a\\b", None, True, "'a\\b'"),
    (b"ABC", None, False, "_binary X'414243'"), (b"ABC", "utf8mb4", False, "'ABC'"),
    (b"it's", "utf8mb4", True, "'it''s'"), (b"it's", "utf8mb4", False, "'it\\'s'"),
    (b"\xff\x00", "utf8mb4", False, "_binary X'ff00'"),  # not text in that character set: binary, as it is
    (b"caf\xe9", "latin1", False, "_latin1 X'636166e9'"), (b"x", "bad name!", False, "_binary X'78'"),
    (7, None, True, "7"), (None, None, True, "NULL"), (True, None, False, "1"), (Decimal("1.50"), None, True, "1.50"),
    (dt.date(2024, 1, 2), None, True, "'2024-01-02'"),
])
def test_literal_table(value, charset, nbe, text):
    assert literal(value, charset, backslash_escapes=not nbe) == text


def _applier(pks=None, generated=None, netable=False) -> MySQLApplier:
    """An applier whose caches know ``pks`` and ``generated`` columns (default: tables d.t and d.u
    without generated columns, keys not looked up yet); ``netable``: may their row changes be applied
    as a net effect (default not: these tests are of the row-by-row path)."""
    a = MySQLApplier.__new__(MySQLApplier)
    a.target, a.topic, a._pk_cache = "t1", "topic", dict(pks or {})
    a._generated = dict(generated if generated is not None else {("d", "t"): frozenset(), ("d", "u"): frozenset()})
    a._netable = {k: netable for k in a._generated}
    return a


def _ins(i, table="t", cols=("id", "v")):
    return RowChange(table=table, db="d", op="insert", after=dict(zip(cols, (i, f"v{i}"), strict=True)))


def _ev(seq, *rows, ts=1000, session=None, statements=()):
    return ChangeEvent(gtid=Gtid("0", "1", seq), source="binlog" if rows else "ingress", ts_ms=ts, db="d",
                       rows=tuple(rows), statements=tuple(statements), session=session)


def _parts(applier, events):
    batch = [(ev, i) for i, ev in enumerate(events)]
    pos = TargetPosition({PartitionKey("topic", 0): len(events)}, {"0": events[-1].gtid.seq})
    sql = applier.prepare(batch, pos, {"0": events[-1]})
    assert sql is not None
    parts = sql.split(";\n")
    assert parts[0] == "START TRANSACTION" and parts[-1] == "COMMIT"
    body = [p for p in parts[1:-1] if "dbmux_meta" not in p]
    assert sum("dbmux_meta.positions" in p for p in parts) == 1 and sum("dbmux_meta.gtids" in p for p in parts) == 1
    return body


def test_row_inserts_merge_across_events_with_equal_timestamps():
    body = _parts(_applier(), [_ev(1, _ins(1), _ins(2)), _ev(2, _ins(3))])
    assert body == ["SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00'",  # row images: UTC
                    "SET timestamp = 1.000000", "USE `d`",
                    "INSERT INTO `d`.`t` (`id`, `v`) VALUES (1, 'v1'), (2, 'v2'), (3, 'v3')"]


@pytest.mark.parametrize("second,expected_inserts", [
    (_ev(2, _ins(3), ts=2000), 2),  # a new timestamp ends the run
    (_ev(2, _ins(3, table="u")), 2),  # another table
    (_ev(2, _ins(3, cols=("id", "w"))), 2),  # other columns
    (_ev(2, _ins(3)), 1),
])
def test_what_ends_an_insert_run(second, expected_inserts):
    body = _parts(_applier(), [_ev(1, _ins(1)), second])
    assert sum(p.startswith("INSERT INTO") for p in body) == expected_inserts
    assert sum(p.count("(") - 1 for p in body if p.startswith("INSERT INTO")) == 2  # both rows, once each


def test_update_between_inserts_keeps_order_and_needs_the_key():
    upd = RowChange(table="t", db="d", op="update", before={"id": 1, "v": "v1"}, after={"id": 1, "v": "x"})
    events = [_ev(1, _ins(1)), _ev(2, upd), _ev(3, _ins(2))]
    batch = [(ev, i) for i, ev in enumerate(events)]
    assert _applier().prepare(batch, TargetPosition(), {"0": events[-1]}) is None  # key unknown: built later
    with pytest.raises(_KeyUnknown):
        _applier()._round_trip_sql(batch, TargetPosition(), {})
    body = _parts(_applier({("d", "t"): ("id",)}), events)
    assert body[3:] == ["INSERT INTO `d`.`t` (`id`, `v`) VALUES (1, 'v1')",
                        "UPDATE `d`.`t` SET `id` = 1, `v` = 'x' WHERE `id` <=> 1",
                        "INSERT INTO `d`.`t` (`id`, `v`) VALUES (2, 'v2')"]


def test_generated_columns_are_left_out_of_row_images():
    """MariaDB and MySQL log generated columns' values; a target refuses to be given them (1906: "The value
    specified for generated column 'v' has been ignored", an error in strict mode) and computes them."""
    upd = RowChange(table="t", db="d", op="update", before={"id": 1, "v": "v1"}, after={"id": 1, "v": "x"})
    events = [_ev(1, _ins(1)), _ev(2, upd)]
    body = _parts(_applier({("d", "t"): ("id",)}, {("d", "t"): frozenset({"v"})}), events)
    assert body[3:] == ["INSERT INTO `d`.`t` (`id`) VALUES (1)", "UPDATE `d`.`t` SET `id` = 1 WHERE `id` <=> 1"]
    with pytest.raises(_KeyUnknown):  # a table not looked up yet: its generated columns are unknown
        _applier(generated={})._round_trip_sql([(events[0], 0)], TargetPosition(), {})


def test_session_context_is_set_once_and_again_on_change():
    ctx_a = SessionContext(db="d", sql_mode="STRICT_ALL_TABLES", time_zone="+00:00")
    ctx_b = SessionContext(db="d", sql_mode="", time_zone="+00:00")
    st_ = Statement(sql="UPDATE t SET v = ? WHERE id = ?", params=("x", 1), kind="dml")
    body = _parts(_applier(), [_ev(1, statements=[st_], session=ctx_a), _ev(2, statements=[st_], session=ctx_a),
                               _ev(3, statements=[st_], session=ctx_b)])
    assert [p for p in body if p.startswith("SET SESSION")] == [
        "SET SESSION sql_mode = 'STRICT_ALL_TABLES', time_zone = '+00:00'",
        "SET SESSION sql_mode = '', time_zone = '+00:00'"]
    assert body.count("UPDATE t SET v = 'x' WHERE id = 1") == 3


def test_single_events_and_ddl_are_not_prepared():
    ddl = Statement(sql="CREATE TABLE x (id INT PRIMARY KEY)", kind="ddl")
    a = _applier()
    assert a.prepare([(_ev(1, _ins(1)), 0)], TargetPosition(), {}) is None
    assert a.prepare([(_ev(1, _ins(1)), 0), (_ev(2, statements=[ddl]), 1)], TargetPosition(), {}) is None


def test_a_bad_event_is_not_prepared_but_left_to_apply_to_report():
    bad = Statement(sql="UPDATE t SET v = ? WHERE id = ?", params=("only one",), kind="dml")
    events = [_ev(1, _ins(1)), _ev(2, statements=[bad], session=SessionContext(db="d"))]
    assert _applier().prepare([(ev, i) for i, ev in enumerate(events)], TargetPosition(), {}) is None
    with pytest.raises(ValueError, match="1 parameters"):
        _applier()._round_trip_sql([(ev, i) for i, ev in enumerate(events)], TargetPosition(), {})


def test_row_images_after_an_ingress_event_get_their_own_session_back():
    """An ingress event sets its session's sql_mode and time zone; row images after it must not be
    read in them (TIMESTAMPs are UTC; NO_BACKSLASH_ESCAPES would misread the escaped literals)."""
    ctx = SessionContext(db="d", sql_mode="NO_BACKSLASH_ESCAPES", time_zone="+05:00", charset="utf8mb4")
    st_ = Statement(sql="UPDATE t SET v = ? WHERE id = ?", params=(b"a\\b", 1), kind="dml")
    row = RowChange(table="t", db="d", op="insert", after={"id": 2, "v": "c\\d"})
    body = _parts(_applier(), [_ev(1, statements=[st_], session=ctx), _ev(2, row)])
    assert body == ["SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES', time_zone = '+05:00'",
                    "SET timestamp = 1.000000", "USE `d`",
                    "UPDATE t SET v = 'a\\b' WHERE id = 1",  # as the session reads it: no escapes
                    "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00'",
                    "INSERT INTO `d`.`t` (`id`, `v`) VALUES (2, 'c\\\\d')"]


def test_a_run_of_row_only_events_of_net_applicable_tables_is_applied_as_its_net_effect():
    a = _applier(pks={("d", "t"): ("id",), ("d", "u"): ("id",)}, netable=True)
    ing = ChangeEvent(Gtid("0", "1", 3), "ingress", 2, "d", statements=(Statement("UPDATE t SET v = 9"),),
                      session=SessionContext(db="d", sql_mode="", time_zone="+00:00"))
    upd = ChangeEvent(Gtid("0", "1", 2), "binlog", 1, "d", rows=(
        RowChange("t", "d", "update", before={"id": 1, "v": "a"}, after={"id": 1, "v": "b"}),))
    batch = [(ChangeEvent(Gtid("0", "1", 1), "binlog", 1, "d", rows=(_ins(1), _ins(2))), 0), (upd, 1), (ing, 2),
             (ChangeEvent(Gtid("0", "1", 4), "binlog", 1, "d", rows=(
                 RowChange("t", "d", "delete", before={"id": 2, "v": "x"}),)), 3)]
    sql = a._round_trip_sql(batch, TargetPosition(), {})
    stmts = sql.split(";\n")
    net1 = [s for s in stmts if s.startswith("INSERT INTO `d`.`t`")]
    assert net1[0] == "INSERT INTO `d`.`t` (`id`, `v`) VALUES (1, 'b'), (2, 'v2')"  # inserted, 1 updated
    # the ingress statement comes after that run and before the delete of the last run, in order
    i_net, i_ing = stmts.index(net1[0]), stmts.index("UPDATE t SET v = 9")
    i_del = stmts.index("DELETE FROM `d`.`t` WHERE (`id`) IN (2)")
    assert i_net < i_ing < i_del
