"""Binlog events → change events, fed with stand-ins that carry python-mysql-replication's attributes."""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field
from typing import Any

import pytest

from dbmux.binlog.assembler import TransactionAssembler
from dbmux.binlog.position import BinlogPosition, advance_with
from dbmux.binlog.row_decoder import _text_encoding, convert_value
from dbmux.core.codec import decode_event, encode_event
from dbmux.core.gtid import Gtid

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
    sql_mode: int | None = None  # (the status variables python-mysql-replication reads)
    time_zone: bytes = b""
    hrnow: int | None = None


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
    flags: int = 0  # 0x0002: NO_FOREIGN_KEY_CHECKS


@dataclass
class UpdateRowsEvent(WriteRowsEvent):
    pass


@dataclass
class DeleteRowsEvent(WriteRowsEvent):
    pass


def _txn(gtid: str, *events: Any) -> list[Any]:
    """A transaction as MariaDB logs it: the GTID event (no FL_STANDALONE) is the BEGIN."""
    return [MariadbGtidEvent(gtid), *events, XidEvent()]


def _mysql_txn(gtid: str, *events: Any) -> list[Any]:
    return [GtidEvent(gtid), QueryEvent("BEGIN"), *events, XidEvent()]


_DDL = 1 | 32  # MariaDB FL_STANDALONE | FL_DDL, as the server sets them on a DDL statement's GTID


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


@pytest.mark.parametrize("txn", [_txn, _mysql_txn])
def test_rows_after_a_released_savepoint_stay_in_the_transaction(txn):
    """BEGIN; INSERT (1); SAVEPOINT s1; INSERT (2); RELEASE SAVEPOINT s1; UPDATE id=1; COMMIT (issue 20 #1)."""
    out = _feed(txn("0-1-9",
                    WriteRowsEvent("t", [{"values": {"id": 1, "v": "a"}}]),
                    QueryEvent("SAVEPOINT `s1`"),
                    WriteRowsEvent("t", [{"values": {"id": 2, "v": "b"}}]),
                    QueryEvent("RELEASE SAVEPOINT `s1`"),
                    UpdateRowsEvent("t", [{"before_values": {"id": 1, "v": "a"}, "after_values": {"id": 1, "v": "c"}}]))
                + _txn("0-1-10", WriteRowsEvent("t", [{"values": {"id": 3, "v": "d"}}])))
    assert [str(e.gtid) for e in out] == ["0-1-9", "0-1-10"]
    assert [(r.op, (r.after or {}).get("id")) for r in out[0].rows] == [("insert", 1), ("insert", 2), ("update", 1)]
    assert out[0].statements == ()


@pytest.mark.parametrize("txn", [_txn, _mysql_txn])
def test_rollback_to_savepoint_drops_the_rows_logged_since_it(txn):
    """MariaDB logs the rolled-back rows and then ``ROLLBACK TO `s```: they must not be applied."""
    out = _feed(txn("0-1-11",
                    WriteRowsEvent("t", [{"values": {"id": 5}}]),
                    QueryEvent("SAVEPOINT `Outer`"),
                    WriteRowsEvent("t", [{"values": {"id": 6}}]),
                    QueryEvent("SAVEPOINT inner_1"),
                    WriteRowsEvent("t", [{"values": {"id": 7}}]),
                    QueryEvent("ROLLBACK TO inner_1"),
                    WriteRowsEvent("t", [{"values": {"id": 8}}]),
                    QueryEvent("ROLLBACK TO `outer`"),
                    WriteRowsEvent("t", [{"values": {"id": 9}}])))
    assert [r.after["id"] for r in out[0].rows] == [5, 9]


def test_rollback_to_an_unknown_savepoint_keeps_the_rows():
    out = _feed(_txn("0-1-12", WriteRowsEvent("t", [{"values": {"id": 1}}]), QueryEvent("ROLLBACK TO `nope`")))
    assert [r.after["id"] for r in out[0].rows] == [1]


def test_ddl_is_a_standalone_statement_without_xid():
    out = _feed([MariadbGtidEvent("0-1-7", flags=1), QueryEvent("ALTER TABLE t ADD COLUMN c INT", schema=b"shop"),
                 MariadbGtidEvent("0-1-8", flags=_DDL), QueryEvent("CREATE DATABASE x", schema=b"")])
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
                + [MariadbGtidEvent("0-1-22", flags=_DDL),
                   QueryEvent("CREATE TABLE heartbeat (x INT)", schema=b"dbmux_meta")]
                + [MariadbGtidEvent("0-1-23", flags=_DDL), QueryEvent("TRUNCATE mysql.general_log", schema=b"shop")])
    assert [str(e.gtid) for e in out] == ["0-1-20", "0-1-21", "0-1-22", "0-1-23"]
    assert all(e.rows == () and e.statements == () for e in out)
    for ev in out:  # the envelope accepts an event that only advances the GTID
        assert decode_event(encode_event(ev)) == ev


def test_account_statements_are_kept():
    sql = "CREATE USER 'app'@'%' IDENTIFIED BY PASSWORD '*0123456789ABCDEF0123456789ABCDEF01234567'"
    out = _feed([MariadbGtidEvent("0-1-30", flags=_DDL), QueryEvent(sql, schema=b"mysql")])
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
    from dbmux.core.events import ChangeEvent

    pos = BinlogPosition.parse("0-1-5")
    events = [ChangeEvent(Gtid.parse("0-1-6"), "binlog", 0), ChangeEvent(Gtid.parse("0-1-9"), "ingress", 0)]
    assert advance_with(pos, events).text() == "0-1-6"


# ------------------------------------------------------------------ fast row decoding vs the library
#
# binlog.row_decoder decodes row images itself (_fast_row_changes). Each column decoder, fed the
# same bytes as the library's own value reader (RowsEvent.__read_values_name, on a packet holding just
# those bytes), must give what convert_value makes of the library's value, and consume as many bytes.
# A decoder may decline (raise, or need more bytes than there are): the library then decodes the event.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dbmux.binlog import row_decoder as be  # noqa: E402


def _library_value(column: Any, data: bytes) -> tuple[Any, int]:
    """(convert_value of the library's value, bytes it consumed); raises what the library raises."""
    from pymysql.protocol import MysqlPacket
    from pymysqlreplication.packet import BinLogPacketWrapper
    from pymysqlreplication.row_event import RowsEvent
    from pymysqlreplication.table import Table

    wrapper = BinLogPacketWrapper.__new__(BinLogPacketWrapper)
    wrapper.packet = MysqlPacket(data, "utf8")
    wrapper.read_bytes = 0
    wrapper._BinLogPacketWrapper__data_buffer = b""
    ev = RowsEvent.__new__(RowsEvent)
    ev.packet = wrapper
    ev._ignore_decode_errors = False
    ev._RowsEvent__none_sources = {}
    ev.table_id = 1
    ev.table_map = {1: Table(1, "s", "t", [column], primary_key="")}
    value = ev._RowsEvent__read_values_name(column, b"\x00", 0, False, b"\x01", column.unsigned, 0)
    none_source = ev._RowsEvent__none_sources.get(column.name) if value is None else None
    value = convert_value(value, column, none_source)
    if column.type == 254 and value is not None and _text_encoding(column) is None and column.max_length <= 255:
        value = (value if isinstance(value, bytes) else b"").ljust(column.max_length, b"\0")  # BINARY(n): padded
    return value, wrapper.read_bytes


def _fast_value(column: Any, data: bytes) -> tuple[Any, int] | None:
    dec = be._column_decoder(column)
    assert dec is not None, f"type {column.type} not covered"
    try:
        value, end = dec(data, 0)
    except Exception:  # noqa: BLE001 - declined: the library decodes
        return None
    return (value, end) if end <= len(data) else None


def _col(type_: int, **kw: Any) -> Any:
    from pymysqlreplication.column import Column as LibColumn

    base = {"type": type_, "name": "c", "unsigned": False, "is_primary": False, "charset_id": None,
            "character_set_name": None, "collation_name": None, "enum_values": None, "set_values": None,
            "visibility": False}
    return LibColumn(**{**base, **kw})


@st.composite
def _columns(draw: Any) -> Any:
    t = draw(st.sampled_from(["int", "float", "decimal", "datetime2", "timestamp2", "time2", "date", "year",
                              "string", "blob", "enum", "set", "bit"]))
    if t == "int":
        return _col(draw(st.sampled_from([1, 2, 3, 8, 9])), unsigned=draw(st.booleans()))
    if t == "float":
        return _col(draw(st.sampled_from([4, 5])))
    if t == "decimal":
        precision = draw(st.integers(1, 65))
        return _col(246, precision=precision, decimals=draw(st.integers(0, min(30, precision))))
    if t in ("datetime2", "timestamp2", "time2"):
        return _col({"datetime2": 18, "timestamp2": 17, "time2": 19}[t], fsp=draw(st.integers(0, 6)))
    if t == "date":
        return _col(10)
    if t == "year":
        return _col(13)
    charset = draw(st.sampled_from([None, "utf8mb4", "latin1", "binary", "ascii", "utf16", "ucs2", "gbk"]))
    if t == "string":
        return _col(draw(st.sampled_from([15, 254])), max_length=draw(st.sampled_from([1, 40, 255, 256, 1200])),
                    character_set_name=charset)
    if t == "blob":
        return _col(252, length_size=draw(st.integers(1, 4)), character_set_name=charset)
    if t == "enum":
        return _col(247, size=draw(st.integers(1, 2)), enum_values=draw(st.none() | st.just(["", "a", "b"])))
    if t == "set":
        return _col(248, size=draw(st.integers(1, 8)),
                    set_values=draw(st.none() | st.just([]) | st.just(["a", "b", "c", "d", "e", "f", "g", "h", "i"])))
    bits = draw(st.integers(1, 64))
    return _col(16, bits=bits, bytes=(bits + 7) // 8)


def _same(column: Any, data: bytes) -> bool:
    """True when the fast decoder gave a value (and it equals the library's)."""
    fast = _fast_value(column, data)
    if fast is None:
        return False
    value, end = fast
    lib_value, lib_end = _library_value(column, data)
    # repr: also tells NaN from NaN and Decimal("1.0") from Decimal("1.00")
    assert (type(value), repr(value), end) == (type(lib_value), repr(lib_value), lib_end), (column.data, data)
    return True


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_columns(), st.binary(max_size=40))
def test_property_column_decoders_equal_the_library(column, data):
    _same(column, data)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 65).flatmap(lambda p: st.tuples(st.just(p), st.integers(0, min(30, p)))),
       st.integers(0, 10**65 - 1), st.booleans())
def test_property_decimal_decoder_takes_every_value_the_server_writes(pd, magnitude, negative):
    """Encode like the server (sign bit, complement for negatives) and decode: always the fast path."""
    precision, decimals = pd
    magnitude %= 10**precision
    integral, fraction = divmod(magnitude, 10**decimals)
    ip, fp = precision - decimals, decimals
    parts = []  # (digits, bytes)
    lead = ip % 9
    if lead:
        parts.append((integral // 10 ** (ip - lead), be._DECIMAL_BYTES[lead]))
    for k in range(ip // 9):
        parts.append((integral // 10 ** (9 * (ip // 9 - 1 - k)) % 10**9, 4))
    for k in range(fp // 9):
        parts.append((fraction // 10 ** (fp - 9 * (k + 1)) % 10**9, 4))
    if fp % 9:
        parts.append((fraction % 10 ** (fp % 9), be._DECIMAL_BYTES[fp % 9]))
    raw = bytearray(b"".join(v.to_bytes(n, "big") for v, n in parts))
    if negative:
        raw = bytearray(b ^ 0xFF for b in raw)
    raw[0] ^= 0x80
    column = _col(246, precision=precision, decimals=decimals)
    assert _same(column, bytes(raw) + b"tail")
    value = _fast_value(column, bytes(raw))[0]
    expected = decimal.Decimal(magnitude).scaleb(-decimals, decimal.Context(prec=100))
    assert value == (expected.copy_negate() if negative else expected)


@settings(max_examples=1000, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1000, 1, 1)), st.integers(0, 6))
def test_property_datetime2_decoder_takes_every_value_the_server_writes(value, fsp):
    us = value.microsecond // 10 ** (6 - fsp) * 10 ** (6 - fsp)
    packed = ((value.year * 13 + value.month) << 22 | value.day << 17 | value.hour << 12 | value.minute << 6
              | value.second) | 1 << 39
    frac_bytes = {0: 0, 1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3}[fsp]
    frac = us // 10 ** (6 - fsp) * (10 if fsp % 2 else 1)
    raw = packed.to_bytes(5, "big") + frac.to_bytes(frac_bytes, "big")
    column = _col(18, fsp=fsp)
    assert _same(column, raw)
    assert _fast_value(column, raw)[0] == value.replace(microsecond=us)


def test_zero_and_invalid_dates_decode_to_none_like_the_library():
    feb_30 = ((2024 * 13 + 2) << 22 | 30 << 17 | 1 << 39).to_bytes(5, "big")
    for raw in (bytes(5), (1 << 39).to_bytes(5, "big"), feb_30):
        assert _same(_col(18, fsp=0), raw) and _fast_value(_col(18, fsp=0), raw)[0] is None
    assert _same(_col(10), bytes(3)) and _fast_value(_col(10), bytes(3))[0] is None


def test_empty_binary_string_is_an_empty_str_like_the_library():
    # Python decodes b"" to "" before it looks the codec up, so the library's binary columns give ""
    column = _col(15, max_length=20, character_set_name="binary")
    assert _same(column, b"\x00") and _fast_value(column, b"\x00")[0] == ""
    assert _same(column, b"\x02ab") and _fast_value(column, b"\x02ab")[0] == b"ab"


def test_stand_ins_and_unsupported_types_use_the_library():
    assert be._fast_row_changes(WriteRowsEvent("t", [{"values": {"id": 1}}])) is None
    assert be._column_decoder(_col(255, length_size=4)) is None  # GEOMETRY
    assert be._column_decoder(_col(245, length_size=4)) is None  # MySQL JSON
    assert be._column_decoder(_col(12)) is None  # old DATETIME


def _field_size(column: Any) -> int:
    """Bytes a fixed-size column takes (decoding zeros, or 0x80 then zeros for DECIMAL)."""
    dec = be._column_decoder(column)
    try:
        return dec(bytes(64), 0)[1]
    except ValueError:
        return dec(b"\x80" + bytes(63), 0)[1]


@st.composite
def _rows(draw: Any) -> tuple[list[Any], bytes]:
    """Columns and a row image for them that mostly decodes: null bitmap, then per non-null column
    bytes of its size (strings: a short length and that many bytes), sometimes cut short or random."""
    columns = draw(st.lists(_columns(), min_size=1, max_size=12))
    null_len = (len(columns) + 7) // 8
    nulls = draw(st.integers(0, (1 << len(columns)) - 1) | st.just(0))
    data = nulls.to_bytes(null_len, "little")
    for i, c in enumerate(columns):
        if nulls >> i & 1:
            continue
        string = getattr(be._column_decoder(c), "string", None)
        if string is not None:
            n = draw(st.integers(0, 12))
            data += n.to_bytes(string[0], "little") + draw(st.binary(min_size=n, max_size=n))
        else:
            n = _field_size(c)
            data += draw(st.binary(min_size=n, max_size=n))
    data = draw(st.just(data) | st.just(data[:draw(st.integers(0, len(data)))]) | st.binary(max_size=120))
    return columns, data


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows())
def test_property_generated_row_plan_equals_the_column_decoders_in_turn(row):
    """_RowsPlan generates one function per table (numbers and strings inlined): it must decode a row
    image (null bitmap, then each non-null column) exactly as the column decoders do one by one."""
    columns, data = row
    for i, c in enumerate(columns):
        c.name = f"c{i}"
    table = type("T", (), {})()
    table.columns = columns
    plan = be._RowsPlan.compile(table)
    assert plan is not be._UNSUPPORTED
    try:
        got = plan.image(data, 0)
    except Exception:  # noqa: BLE001 - the plan declined: the library decodes
        got = None
    null_len = (len(columns) + 7) // 8
    nulls = int.from_bytes(data[:null_len], "little")
    pos, want = null_len, {}
    try:
        for i, c in enumerate(columns):
            if nulls >> i & 1:
                want[c.name] = None
            else:
                want[c.name], pos = be._column_decoder(c)(data, pos)
    except Exception:  # noqa: BLE001
        want = None
    want_ok = want is not None and pos <= len(data)
    got_ok = got is not None and got[1] <= len(data)  # else declined / ran past the data: the library decodes
    assert want_ok == got_ok, (want, pos, got)
    if not got_ok:
        return
    image, end = got
    assert end == pos and list(image) == list(want)
    assert [(type(v), repr(v)) for v in image.values()] == [(type(v), repr(v)) for v in want.values()]


@pytest.mark.parametrize("bits, time_zone, mariadb, mode, zone", [
    (4, b"", True, "ANSI_QUOTES", "SYSTEM"),  # MariaDB logs DROP TABLE "t" in ANSI_QUOTES: apply it so
    (1 | 2 | 4 | 8 | 32 | 1 << 18, b"+02:00", True, "REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,"
     "ONLY_FULL_GROUP_BY,ANSI", "+02:00"),
    (1 << 20 | 1 << 32, b"", True, "NO_BACKSLASH_ESCAPES,EMPTY_STRING_IS_NULL", "SYSTEM"),
    (1 << 20 | 1 << 32 | 1 << 9, b"", False, "NO_BACKSLASH_ESCAPES,TIME_TRUNCATE_FRACTIONAL", "SYSTEM"),  # MySQL
])
def test_a_standalone_statement_carries_its_sql_mode_and_time_zone(bits, time_zone, mariadb, mode, zone):
    asm = TransactionAssembler(mariadb=mariadb)
    events = [MariadbGtidEvent("0-1-20", flags=_DDL), QueryEvent('DROP TABLE "t" /* generated by server */',
                                                                   sql_mode=bits, time_zone=time_zone)]
    (ev,) = [e for e in (asm.feed(x) for x in events) if e is not None]
    assert ev.session is not None and (ev.session.sql_mode, ev.session.time_zone) == (mode, zone)
    assert ev.rows == () and ev.statements[0].sql.startswith('DROP TABLE "t"')


def test_row_transactions_carry_no_session():
    """Row images are applied in the applier's own row session (UTC, NO_AUTO_VALUE_ON_ZERO)."""
    (ev,) = _feed(_txn("0-1-21", WriteRowsEvent("t", [{"values": {"id": 1}}])))
    assert ev.session is None


@pytest.mark.parametrize("flags, expected", [((0, 0), False), ((0, 2), True), ((2 | 4, 0), True)])
def test_rows_changed_without_foreign_key_checks_mark_the_event(flags, expected):
    (ev,) = _feed(_txn("0-1-22", WriteRowsEvent("t", [{"values": {"id": 1}}], flags=flags[0]),
                       DeleteRowsEvent("t", [{"values": {"id": 2}}], flags=flags[1])))
    assert ev.no_fk_checks is expected
    assert decode_event(encode_event(ev)).no_fk_checks is expected
    assert (b"no_fk_checks" in encode_event(ev)) is expected  # (absent unless set: old decoders ignore it)


@pytest.mark.parametrize("hrnow, clock", [(None, 1_700_000_000_000_000), (123_456, 1_700_000_000_123_456)])
def test_a_standalone_statement_carries_the_primary_clock_it_ran_with(hrnow, clock):
    """An ALTER TABLE adding a CURRENT_TIMESTAMP(6) column fills every existing row with the time it ran at:
    the query's start, with its microseconds when the statement used them (Q_HRNOW), as the primary's own
    replicas take it. The event round-trips through the envelope with it."""
    from dbmux.core.codec import decode_event, encode_event

    asm = TransactionAssembler(mariadb=True)
    events = [MariadbGtidEvent("0-1-21", flags=_DDL), QueryEvent(
        "ALTER TABLE t ADD COLUMN c DATETIME(6) DEFAULT NOW(6)", sql_mode=0, hrnow=hrnow)]
    (ev,) = [e for e in (asm.feed(x) for x in events) if e is not None]
    assert ev.session is not None and ev.session.timestamp_us == clock
    assert decode_event(encode_event(ev)).session == ev.session
