"""MySQL target SQL text: literals and the one-round-trip group-commit request (pure: no server)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymysql.converters import escape_item

from dbmux.envelope import ChangeEvent, RowChange, SessionContext, Statement
from dbmux.gtid import Gtid
from replicator.mysql_applier import MySQLApplier, _KeyUnknown
from replicator.mysql_sql import literal
from replicator.positions import PartitionKey, TargetPosition

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.text(),
    st.floats(allow_nan=False, allow_infinity=False), st.binary(max_size=20),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.datetimes(), st.dates())


@settings(max_examples=500, deadline=None)
@given(SCALARS, st.sampled_from([None, "utf8mb4", "latin1"]))
def test_literals_hold_no_mode_dependent_character(value, charset):
    """A backslash or a quote inside a literal would read differently under NO_BACKSLASH_ESCAPES."""
    text = literal(value, charset)
    if text.startswith("'"):
        assert text.endswith("'") and "'" not in text[1:-1] and "\\" not in text
    else:
        assert "\\" not in text and ("'" not in text or re.fullmatch(r"_\w+ X'[0-9a-f]*'", text)), text


@pytest.mark.parametrize("value,charset,text", [
    ("plain", None, "'plain'"), ("it's", None, "_utf8mb4 X'69742773'"), ("a\\b", None, "_utf8mb4 X'615c62'"),
    ("line\nbreak\x00", None, "'line\nbreak\x00'"), ("é", None, "'é'"),
    (b"ABC", None, "_binary X'414243'"), (b"ABC", "utf8mb4", "'ABC'"), (b"it's", "utf8mb4", "_utf8mb4 X'69742773'"),
    (b"\xff\x00", "utf8mb4", "_binary X'ff00'"),  # not text in that character set: binary, as it is
    (b"caf\xe9", "latin1", "_latin1 X'636166e9'"), (b"x", "bad name!", "_binary X'78'"),
    (7, None, "7"), (-3, None, "-3"), (None, None, "NULL"), (True, None, "1"), (Decimal("1.50"), None, "1.50"),
    (dt.date(2024, 1, 2), None, "'2024-01-02'"),
])
def test_literal_table(value, charset, text):
    assert literal(value, charset) == text


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                 st.decimals(allow_nan=False, allow_infinity=False, places=4), st.datetimes(), st.dates(),
                 st.text(alphabet=st.characters(blacklist_characters="'\\\"\x00\n\r\x1a"))))
def test_literal_is_pymysqls_where_no_escaping_is_involved(value):
    assert literal(value) == escape_item(value, "utf8mb4")


def _applier(pks=None) -> MySQLApplier:
    a = MySQLApplier.__new__(MySQLApplier)
    a.target, a.topic, a._pk_cache = "t1", "topic", dict(pks or {})
    return a


def _ins(i, table="t", cols=("id", "v")):
    return RowChange(table=table, db="d", op="insert", after=dict(zip(cols, (i, f"v{i}"))))


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
    assert body == ["SET timestamp = 1.000000", "USE `d`",
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
    assert body[2:] == ["INSERT INTO `d`.`t` (`id`, `v`) VALUES (1, 'v1')",
                        "UPDATE `d`.`t` SET `id` = 1, `v` = 'x' WHERE `id` <=> 1",
                        "INSERT INTO `d`.`t` (`id`, `v`) VALUES (2, 'v2')"]


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
