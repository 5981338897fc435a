"""Binlog events → change events, fed with stand-ins that carry python-mysql-replication's attributes."""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field
from typing import Any

import pytest

from dbmux.envelope import decode_event, encode_event
from dbmux.gtid import Gtid
from replicator.binlog_events import TransactionAssembler, convert_value
from replicator.binlog_position import BinlogPosition, advance_with

# ------------------------------------------------------------------ stand-ins (same names and attributes)


@dataclass
class MariadbGtidEvent:
    gtid: str
    timestamp: int = 1_700_000_000
    flags: int = 0


@dataclass
class GtidEvent:  # MySQL
    gtid: str
    timestamp: int = 1_700_000_000


@dataclass
class QueryEvent:
    query: str
    schema: bytes = b"shop"
    timestamp: int = 1_700_000_000


@dataclass
class XidEvent:
    xid: int = 1
    timestamp: int = 1_700_000_000


@dataclass
class RotateEvent:
    next_binlog: str = "mariadb-bin.000002"
    position: int = 4


@dataclass
class Column:
    name: str
    type: int = 15  # VARCHAR
    set_values: tuple[str, ...] | None = None


@dataclass
class WriteRowsEvent:
    table: str
    rows: list[dict[str, Any]]
    schema: str = "shop"
    columns: list[Column] = field(default_factory=list)


@dataclass
class UpdateRowsEvent(WriteRowsEvent):
    pass


@dataclass
class DeleteRowsEvent(WriteRowsEvent):
    pass


def _txn(gtid: str, *events: Any) -> list[Any]:
    return [MariadbGtidEvent(gtid), QueryEvent("BEGIN"), *events, XidEvent()]


def _feed(events: list[Any]) -> list:
    asm = TransactionAssembler()
    return [ev for ev in (asm.feed(e) for e in events) if ev is not None]


# ------------------------------------------------------------------ row images


def test_insert_update_delete_images_keyed_by_column_name():
    out = _feed(
        _txn("0-1-10", WriteRowsEvent("t", [{"values": {"id": 1, "v": "a"}}, {"values": {"id": 2, "v": None}}]))
        + _txn("0-1-11", UpdateRowsEvent("t", [{"before_values": {"id": 1, "v": "a"},
                                                "after_values": {"id": 1, "v": "b"}}]))
        + _txn("0-1-12", DeleteRowsEvent("t", [{"values": {"id": 2, "v": None}}]))
    )
    assert [str(e.gtid) for e in out] == ["0-1-10", "0-1-11", "0-1-12"]
    ins, upd, dele = out
    assert ins.source == "binlog" and ins.db == "shop" and ins.ts_ms == 1_700_000_000_000
    assert [(r.op, r.before, r.after) for r in ins.rows] == [
        ("insert", None, {"id": 1, "v": "a"}), ("insert", None, {"id": 2, "v": None})]
    assert [(r.op, r.before, r.after) for r in upd.rows] == [("update", {"id": 1, "v": "a"}, {"id": 1, "v": "b"})]
    assert [(r.op, r.table, r.db, r.before, r.after) for r in dele.rows] == [
        ("delete", "t", "shop", {"id": 2, "v": None}, None)]
    assert all(e.statements == () for e in out)


def test_multi_statement_transaction_is_one_event_in_row_order():
    out = _feed(_txn("0-1-5",
                     WriteRowsEvent("a", [{"values": {"id": 1}}]),
                     UpdateRowsEvent("b", [{"before_values": {"n": 1}, "after_values": {"n": 2}}]),
                     QueryEvent("SAVEPOINT `s1`"),
                     DeleteRowsEvent("a", [{"values": {"id": 1}}], schema="other")))
    assert len(out) == 1
    assert [(r.db, r.table, r.op) for r in out[0].rows] == [
        ("shop", "a", "insert"), ("shop", "b", "update"), ("other", "a", "delete")]
    assert out[0].statements == ()  # the savepoint is not replayed


def test_ddl_is_a_standalone_statement_without_xid():
    out = _feed([MariadbGtidEvent("0-1-7", flags=1), QueryEvent("ALTER TABLE t ADD COLUMN c INT", schema=b"shop"),
                 MariadbGtidEvent("0-1-8"), QueryEvent("CREATE DATABASE x", schema=b"")])
    assert [(str(e.gtid), e.db, [(s.sql, s.kind) for s in e.statements], e.rows) for e in out] == [
        ("0-1-7", "shop", [("ALTER TABLE t ADD COLUMN c INT", "ddl")], ()),
        ("0-1-8", None, [("CREATE DATABASE x", "ddl")], ()),
    ]


def test_commit_query_ends_a_non_transactional_transaction_and_rotate_is_ignored():
    out = _feed([RotateEvent(), MariadbGtidEvent("0-1-3"), QueryEvent("BEGIN"),
                 WriteRowsEvent("aria_t", [{"values": {"id": 1}}]), QueryEvent("COMMIT")])
    assert len(out) == 1 and out[0].rows[0].after == {"id": 1}


def test_system_schema_transaction_is_published_empty():
    out = _feed(_txn("0-1-20", WriteRowsEvent("gtid_slave_pos", [{"values": {"domain_id": 0}}], schema="mysql"))
                + _txn("0-1-21", UpdateRowsEvent("positions", [{"before_values": {"a": 1}, "after_values": {"a": 2}}],
                                                 schema="dbmux_meta"))
                + [MariadbGtidEvent("0-1-22"), QueryEvent("CREATE TABLE heartbeat (x INT)", schema=b"dbmux_meta")]
                + [MariadbGtidEvent("0-1-23"), QueryEvent("TRUNCATE mysql.general_log", schema=b"shop")])
    assert [str(e.gtid) for e in out] == ["0-1-20", "0-1-21", "0-1-22", "0-1-23"]
    assert all(e.rows == () and e.statements == () for e in out)
    for ev in out:  # the envelope accepts an event that only advances the GTID
        assert decode_event(encode_event(ev)) == ev


def test_account_statements_are_kept():
    sql = "CREATE USER 'app'@'%' IDENTIFIED BY PASSWORD '*0123456789ABCDEF0123456789ABCDEF01234567'"
    out = _feed([MariadbGtidEvent("0-1-30"), QueryEvent(sql, schema=b"mysql")])
    assert [s.sql for s in out[0].statements] == [sql]


def test_new_gtid_while_open_drops_the_partial_and_tail_without_gtid_is_ignored():
    asm = TransactionAssembler()
    stray = [QueryEvent("BEGIN"), WriteRowsEvent("t", [{"values": {"id": 9}}]), XidEvent()]
    assert [asm.feed(e) for e in stray] == [None, None, None]
    assert asm.feed(MariadbGtidEvent("0-1-40")) is None
    asm.feed(QueryEvent("BEGIN"))
    asm.feed(WriteRowsEvent("t", [{"values": {"id": 1}}]))
    events = [asm.feed(e) for e in _txn("0-1-40", WriteRowsEvent("t", [{"values": {"id": 1}}]))]
    done = [e for e in events if e is not None]
    assert asm.dropped_partial == 1 and len(done) == 1 and len(done[0].rows) == 1


def test_mysql_gtid_event():
    out = _feed([GtidEvent("3e11fa47-71ca-11e1-9e33-c80aa9429562:23"), QueryEvent("BEGIN"),
                 WriteRowsEvent("t", [{"values": {"id": 1}}]), XidEvent()])
    assert out[0].gtid == Gtid.parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:23")


# ------------------------------------------------------------------ values


@pytest.mark.parametrize(("value", "column", "none_source", "expected"), [
    ({"b", "a"}, Column("s", 248, ("c", "b", "a")), None, "b,a"),  # definition order
    ({"b", "a"}, None, None, "a,b"),
    (None, Column("s", 248, ("a",)), "empty set", ""),
    (None, Column("s", 248, ("a",)), "null", None),
    ({"k": [1, {"n": None}], "t": True}, None, None, '{"k":[1,{"n":null}],"t":true}'),
    ([1, "x"], None, None, '[1,"x"]'),
    ({b"k": b"v"}, None, None, '{"k":"v"}'),
    ("10110", Column("bits", 16), None, 22),
    (decimal.Decimal("-0.10"), None, None, decimal.Decimal("-0.10")),
    (b"\x00\xff", None, None, b"\x00\xff"),
    (dt.datetime(2024, 1, 2, 3, 4, 5, 6), None, None, dt.datetime(2024, 1, 2, 3, 4, 5, 6)),
    (dt.date(2024, 1, 2), None, None, dt.date(2024, 1, 2)),
    (dt.timedelta(hours=-1), None, None, dt.timedelta(hours=-1)),
    (2**64 - 1, None, None, 2**64 - 1),
    ("héllo", None, None, "héllo"),
])
def test_convert_value(value, column, none_source, expected):
    got = convert_value(value, column, none_source)
    assert got == expected and type(got) is type(expected)


def test_converted_images_round_trip_through_the_envelope():
    cols = [Column("s", 248, ("a", "b")), Column("j", 245), Column("bits", 16)]
    row = {"values": {"id": 1, "s": {"b", "a"}, "j": {"x": 1}, "bits": "11", "d": decimal.Decimal("1.50"),
                      "b": b"\x01", "at": dt.datetime(2024, 5, 6, 7, 8, 9), "empty": None},
           "none_sources": {"empty": "null"}}
    (ev,) = _feed(_txn("0-1-50", WriteRowsEvent("t", [row], columns=cols)))
    back = decode_event(encode_event(ev))
    assert back.rows[0].after == {"id": 1, "s": "a,b", "j": '{"x":1}', "bits": 3, "d": decimal.Decimal("1.50"),
                                  "b": b"\x01", "at": dt.datetime(2024, 5, 6, 7, 8, 9), "empty": None}


# ------------------------------------------------------------------ position


def test_position_text_and_codec():
    pos = BinlogPosition.parse("0-1-5,1-2-9").advance(Gtid.parse("0-1-7")).advance(Gtid.parse("0-1-6"))
    assert pos.text() == "0-1-7,1-2-9"
    pos = pos.with_offsets({0: 42})
    back = BinlogPosition.decode(pos.encode("t"))
    assert back.gtids == pos.gtids and back.offsets == {0: 42}
    mysql = BinlogPosition.parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23")
    assert mysql.text() == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23"
    assert BinlogPosition.parse("").text() == ""


def test_reconcile_only_counts_binlog_events():
    from dbmux.envelope import ChangeEvent

    pos = BinlogPosition.parse("0-1-5")
    events = [ChangeEvent(Gtid.parse("0-1-6"), "binlog", 0), ChangeEvent(Gtid.parse("0-1-9"), "ingress", 0)]
    assert advance_with(pos, events).text() == "0-1-6"
