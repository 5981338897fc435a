import datetime
import struct
from decimal import Decimal

import pytest

from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.binary_values import ParamType
from dbmux.ingress.protocol.commands import (
    ComChangeUser,
    ComFieldList,
    ComInitDb,
    ComPing,
    ComQuery,
    ComQuit,
    ComResetConnection,
    ComSetOption,
    ComStmtClose,
    ComStmtExecute,
    ComStmtFetch,
    ComStmtPrepare,
    ComStmtReset,
    ComStmtSendLongData,
    PreparedStatementInfo,
    QueryAttribute,
    UnknownCommand,
    command_code,
    parse_command,
)
from dbmux.ingress.protocol.errors import MalformedPacket, UnknownStatement

from .builders import feed_each_way, lstr, packet, u8, u16, u32, u64

SECURE = c.CLIENT_SECURE_CONNECTION | c.CLIENT_PLUGIN_AUTH | c.CLIENT_CONNECT_ATTRS

COMMAND_TABLE = [
    pytest.param(b"\x03SELECT 1", 0, ComQuery(b"SELECT 1"), id="query"),
    pytest.param(b"\x03", 0, ComQuery(b""), id="empty-query"),
    pytest.param(b"\x02shop", 0, ComInitDb(b"shop"), id="init-db"),
    pytest.param(b"\x01", 0, ComQuit(), id="quit"),
    pytest.param(b"\x0e", 0, ComPing(), id="ping"),
    pytest.param(b"\x1f", 0, ComResetConnection(), id="reset-connection"),
    pytest.param(b"\x04t1\x00%", 0, ComFieldList(b"t1", b"%"), id="field-list"),
    pytest.param(b"\x1b\x01\x00", 0, ComSetOption(c.MYSQL_OPTION_MULTI_STATEMENTS_OFF), id="set-option"),
    pytest.param(b"\x16INSERT INTO t VALUES (?)", 0, ComStmtPrepare(b"INSERT INTO t VALUES (?)"), id="prepare"),
    pytest.param(b"\x18" + u32(7) + u16(1) + b"blob-part", 0, ComStmtSendLongData(7, 1, b"blob-part"), id="long-data"),
    pytest.param(b"\x19" + u32(7), 0, ComStmtClose(7), id="stmt-close"),
    pytest.param(b"\x1a" + u32(7), 0, ComStmtReset(7), id="stmt-reset"),
    pytest.param(b"\x1c" + u32(7) + u32(100), 0, ComStmtFetch(7, 100), id="stmt-fetch"),
    pytest.param(b"\x09", 0, UnknownCommand(0x09, b"\x09"), id="statistics-unknown"),
    pytest.param(
        b"\x11bob\x00" + u8(20) + b"s" * 20 + b"db\x00" + u16(45) + b"mysql_native_password\x00"
        + lstr(lstr(b"_client_name") + lstr(b"libmariadb")),
        SECURE,
        ComChangeUser(b"bob", b"s" * 20, b"db", 45, "mysql_native_password", {b"_client_name": b"libmariadb"}),
        id="change-user",
    ),  # fmt: skip
    pytest.param(b"\x11bob\x00\x00\x00", SECURE, ComChangeUser(b"bob"), id="change-user-minimal"),
    pytest.param(
        b"\x03" + u8(1) + u8(1) + b"\x00" + u8(1) + u8(c.MYSQL_TYPE_VAR_STRING) + u8(0) + lstr(b"trace_id")
        + lstr(b"abc") + b"SELECT 1",
        c.CLIENT_QUERY_ATTRIBUTES,
        ComQuery(b"SELECT 1", (QueryAttribute(b"trace_id", ParamType(c.MYSQL_TYPE_VAR_STRING), b"abc"),)),
        id="query-attributes",
    ),  # fmt: skip
    pytest.param(b"\x03\x00\x01SELECT 1", c.CLIENT_QUERY_ATTRIBUTES, ComQuery(b"SELECT 1"), id="query-attrs-none"),
]


@pytest.mark.parametrize(("payload", "caps", "expected"), COMMAND_TABLE)
def test_command_table(payload, caps, expected):
    for mode, payloads in feed_each_way(packet(payload)):
        assert payloads == [payload], mode
        event = parse_command(payloads[0], caps)
        assert event == expected
        assert event.encode(caps) == payload
        assert command_code(event) == payload[0]


def test_proxy_rewrites_query_text():
    event = parse_command(b"\x03SELECT NOW()")
    rewritten = ComQuery(b"SELECT '2024-01-01 00:00:00'", event.query_attributes)
    assert rewritten.encode() == b"\x03SELECT '2024-01-01 00:00:00'"


@pytest.mark.parametrize(
    "payload", [b"", b"\x01extra", b"\x19\x01\x00", b"\x1b\x00", b"\x04no-nul", b"\x11user-no-nul"]
)
def test_malformed_commands(payload):
    with pytest.raises(MalformedPacket):
        parse_command(payload, SECURE)


# ---- COM_STMT_EXECUTE: every parameter type, built by hand -------------------------------------------
# (type, unsigned, wire value bytes, decoded value)
PARAM_TABLE = [
    (c.MYSQL_TYPE_TINY, False, b"\xff", -1),
    (c.MYSQL_TYPE_TINY, True, b"\xff", 255),
    (c.MYSQL_TYPE_SHORT, False, struct.pack("<h", -300), -300),
    (c.MYSQL_TYPE_SHORT, True, struct.pack("<H", 65535), 65535),
    (c.MYSQL_TYPE_YEAR, False, struct.pack("<h", 2024), 2024),
    (c.MYSQL_TYPE_INT24, False, struct.pack("<i", -8388608), -8388608),
    (c.MYSQL_TYPE_LONG, False, struct.pack("<i", -2**31), -2**31),
    (c.MYSQL_TYPE_LONG, True, struct.pack("<I", 2**32 - 1), 2**32 - 1),
    (c.MYSQL_TYPE_LONGLONG, False, struct.pack("<q", -2**63), -2**63),
    (c.MYSQL_TYPE_LONGLONG, True, struct.pack("<Q", 2**64 - 1), 2**64 - 1),
    (c.MYSQL_TYPE_FLOAT, False, struct.pack("<f", 1.5), 1.5),
    (c.MYSQL_TYPE_DOUBLE, False, struct.pack("<d", -2.25), -2.25),
    (c.MYSQL_TYPE_NEWDECIMAL, False, lstr(b"-12345.6789"), Decimal("-12345.6789")),
    (c.MYSQL_TYPE_DECIMAL, False, lstr(b"0.10"), Decimal("0.10")),
    (c.MYSQL_TYPE_VAR_STRING, False, lstr("héllo".encode()), "héllo".encode()),
    (c.MYSQL_TYPE_STRING, False, lstr(b""), b""),
    (c.MYSQL_TYPE_VARCHAR, False, lstr(b"v"), b"v"),
    (c.MYSQL_TYPE_BLOB, False, lstr(b"\x00\xff" * 200), b"\x00\xff" * 200),
    (c.MYSQL_TYPE_TINY_BLOB, False, lstr(b"t"), b"t"),
    (c.MYSQL_TYPE_MEDIUM_BLOB, False, lstr(b"m"), b"m"),
    (c.MYSQL_TYPE_LONG_BLOB, False, lstr(b"l"), b"l"),
    (c.MYSQL_TYPE_JSON, False, lstr(b'{"a": 1}'), b'{"a": 1}'),
    (c.MYSQL_TYPE_ENUM, False, lstr(b"red"), b"red"),
    (c.MYSQL_TYPE_SET, False, lstr(b"a,b"), b"a,b"),
    (c.MYSQL_TYPE_BIT, False, lstr(b"\x05"), b"\x05"),
    (c.MYSQL_TYPE_GEOMETRY, False, lstr(b"\x00\x00\x00\x00\x01\x01"), b"\x00\x00\x00\x00\x01\x01"),
    (c.MYSQL_TYPE_DATE, False, u8(4) + u16(2024) + u8(2) + u8(29), datetime.date(2024, 2, 29)),
    (c.MYSQL_TYPE_DATE, False, u8(0), "0000-00-00"),
    (c.MYSQL_TYPE_DATETIME, False, u8(7) + u16(2024) + bytes((1, 2, 3, 4, 5)), datetime.datetime(2024, 1, 2, 3, 4, 5)),
    (c.MYSQL_TYPE_DATETIME, False, u8(11) + u16(1999) + bytes((12, 31, 23, 59, 59)) + u32(999999),
     datetime.datetime(1999, 12, 31, 23, 59, 59, 999999)),
    (c.MYSQL_TYPE_DATETIME, False, u8(4) + u16(2024) + bytes((5, 6)), datetime.datetime(2024, 5, 6)),
    (c.MYSQL_TYPE_TIMESTAMP, False, u8(0), "0000-00-00 00:00:00"),
    (c.MYSQL_TYPE_DATETIME, False, u8(7) + u16(2024) + bytes((2, 30, 1, 2, 3)), "2024-02-30 01:02:03"),
    (c.MYSQL_TYPE_TIME, False, u8(0), datetime.timedelta(0)),
    (c.MYSQL_TYPE_TIME, False, u8(8) + b"\x00" + u32(1) + bytes((2, 3, 4)),
     datetime.timedelta(days=1, hours=2, minutes=3, seconds=4)),
    (c.MYSQL_TYPE_TIME, False, u8(12) + b"\x01" + u32(34) + bytes((22, 59, 59)) + u32(500000),
     -datetime.timedelta(days=34, hours=22, minutes=59, seconds=59, microseconds=500000)),
    (c.MYSQL_TYPE_NULL, False, None, None),  # clients also set the NULL-bitmap bit
]  # fmt: skip


def execute_payload(stmt_id, params, new_bound=True, flags=0):
    """Build COM_STMT_EXECUTE from (type, unsigned, wire value or None for NULL)."""
    bitmap = bytearray((len(params) + 7) // 8)
    for i, (_t, _u, wire) in enumerate(params):
        if wire is None:
            bitmap[i // 8] |= 1 << (i % 8)
    out = b"\x17" + u32(stmt_id) + u8(flags) + u32(1)
    if params:
        out += bytes(bitmap) + u8(1 if new_bound else 0)
        if new_bound:
            out += b"".join(u8(t) + u8(0x80 if u else 0) for t, u, _w in params)
        out += b"".join(w for _t, _u, w in params if w is not None)
    return out


@pytest.mark.parametrize(("type_code", "unsigned", "wire", "value"), PARAM_TABLE)
def test_execute_single_param_of_each_type(type_code, unsigned, wire, value):
    payload = execute_payload(3, [(type_code, unsigned, wire)])
    statements = {3: PreparedStatementInfo(num_params=1)}
    for _mode, payloads in feed_each_way(packet(payload)):
        event = parse_command(payloads[0], 0, statements)
        assert event.param_types == (ParamType(type_code, unsigned),)
        got = event.param_values[0]
        assert got == value and type(got) is type(value)


def test_execute_all_types_with_nulls_in_one_packet():
    params = []
    for i, (t, u, w, _v) in enumerate(PARAM_TABLE):
        params.append((t, u, w))
        if i % 3 == 0:
            params.append((c.MYSQL_TYPE_LONG, False, None))  # NULL value of a non-NULL type
    expected = []
    for i, (_t, _u, _w, v) in enumerate(PARAM_TABLE):
        expected.append(v)
        if i % 3 == 0:
            expected.append(None)
    payload = execute_payload(9, params)
    event = ComStmtExecute.parse(payload, num_params=len(params))
    assert list(event.param_values) == expected
    assert event.new_params_bound
    assert event.null_bitmap == payload[10 : 10 + (len(params) + 7) // 8]
    # re-encoding is byte-identical (checked on the prefix without text-kept zero dates)
    reencodable = ComStmtExecute.parse(execute_payload(9, params[:12]), num_params=12)
    assert reencodable.encode() == execute_payload(9, params[:12])


def test_execute_without_types_uses_previous_types():
    types = [(c.MYSQL_TYPE_LONGLONG, True, u64(2**64 - 1)), (c.MYSQL_TYPE_VAR_STRING, False, lstr(b"x"))]
    first = ComStmtExecute.parse(execute_payload(1, types), num_params=2)
    info = PreparedStatementInfo(2).after_execute(first)
    assert info.param_types == (ParamType(c.MYSQL_TYPE_LONGLONG, True), ParamType(c.MYSQL_TYPE_VAR_STRING))
    second_payload = execute_payload(1, [(0, 0, u64(5)), (0, 0, None)], new_bound=False)
    second = parse_command(second_payload, 0, {1: info})
    assert second.param_values == (5, None)
    assert not second.new_params_bound
    assert second.encode() == second_payload
    assert info.after_execute(second) is info
    with pytest.raises(MalformedPacket, match="previous_types"):
        ComStmtExecute.parse(second_payload, num_params=2)


def test_execute_unknown_statement_and_no_params():
    with pytest.raises(UnknownStatement) as exc_info:
        parse_command(execute_payload(42, []), 0, {})
    assert exc_info.value.statement_id == 42
    event = parse_command(execute_payload(42, [], flags=c.CURSOR_TYPE_READ_ONLY), 0, {42: PreparedStatementInfo(0)})
    assert event == ComStmtExecute(42, c.CURSOR_TYPE_READ_ONLY, 1)


def test_execute_with_query_attributes_names():
    caps = c.CLIENT_QUERY_ATTRIBUTES
    payload = (
        b"\x17" + u32(5) + u8(c.PARAMETER_COUNT_AVAILABLE) + u32(1) + u8(2) + b"\x00" + u8(1)
        + u8(c.MYSQL_TYPE_LONG) + u8(0) + lstr(b"") + u8(c.MYSQL_TYPE_STRING) + u8(0) + lstr(b"trace")
        + u32(7) + lstr(b"t-1")
    )  # fmt: skip
    event = ComStmtExecute.parse(payload, num_params=1, capabilities=caps)
    assert event.param_values == (7, b"t-1")
    assert event.param_names == (b"", b"trace")
    assert event.encode(caps) == payload


@pytest.mark.parametrize(
    "payload",
    [
        execute_payload(1, [(c.MYSQL_TYPE_LONG, False, b"\x01\x02")]),  # truncated value
        execute_payload(1, [(99, False, b"")]),  # unknown type
        execute_payload(1, [(c.MYSQL_TYPE_NEWDECIMAL, False, lstr(b"12abc"))]),
        execute_payload(1, [(c.MYSQL_TYPE_DATE, False, u8(5) + b"\x00" * 5)]),  # bad temporal length
        execute_payload(1, [(c.MYSQL_TYPE_TIME, False, u8(8) + b"\x00" + u32(2**32 - 1) + b"\x00" * 3)]),
        execute_payload(1, [(c.MYSQL_TYPE_TINY, False, b"\x01\x02")]),  # trailing byte
    ],
)
def test_malformed_execute(payload):
    with pytest.raises(MalformedPacket):
        ComStmtExecute.parse(payload, num_params=1)


# ---- COM_STMT_EXECUTE after COM_STMT_SEND_LONG_DATA ------------------------------------------------
# A parameter sent as long data is not in the execute's values at all (its NULL bit is ignored, its type
# is still sent). (params as (type, wire value; None = NULL, LONG = sent as long data), long data chunks by
# parameter, expected values)
LONG = object()
LONG_DATA_TABLE = [
    pytest.param([(c.MYSQL_TYPE_BLOB, LONG)], {0: [b"abc", b"", b"def"]}, (b"abcdef",), id="one-param-three-chunks"),
    pytest.param([(c.MYSQL_TYPE_LONG, u32(7)), (c.MYSQL_TYPE_BLOB, LONG), (c.MYSQL_TYPE_VAR_STRING, lstr(b"z"))],
                 {1: [b"\x00\xff" * 300, b"tail"]}, (7, b"\x00\xff" * 300 + b"tail", b"z"), id="middle-param"),
    pytest.param([(c.MYSQL_TYPE_STRING, LONG), (c.MYSQL_TYPE_LONG, None), (c.MYSQL_TYPE_STRING, LONG)],
                 {0: [b"first"], 2: [b"se", b"cond"]}, (b"first", None, b"second"), id="two-params-and-null"),
    pytest.param([(c.MYSQL_TYPE_BLOB, LONG)] + [(c.MYSQL_TYPE_TINY, b"\x01")] * 9, {0: [b"x" * 70000]},
                 (b"x" * 70000,) + (1,) * 9, id="ten-params-two-bitmap-bytes"),
    pytest.param([(c.MYSQL_TYPE_BLOB, LONG)], {0: [b""]}, (b"",), id="empty-long-data"),
]  # fmt: skip


def long_data_execute(stmt_id, params):
    """COM_STMT_EXECUTE as a client sends it after long data: LONG parameters typed, bit clear, no value."""
    bitmap = bytearray((len(params) + 7) // 8)
    for i, (_t, wire) in enumerate(params):
        if wire is None:
            bitmap[i // 8] |= 1 << (i % 8)
    out = b"\x17" + u32(stmt_id) + u8(0) + u32(1) + bytes(bitmap) + u8(1)
    out += b"".join(u8(t) + u8(0) for t, _w in params)
    return out + b"".join(w for _t, w in params if w is not None and w is not LONG)


@pytest.mark.parametrize(("params", "chunks", "expected"), LONG_DATA_TABLE)
def test_execute_after_long_data(params, chunks, expected):
    payload = long_data_execute(4, params)
    sends = [packet(b"\x18" + u32(4) + u16(i) + data) for i, parts in chunks.items() for data in parts]
    long_params = tuple(sorted(chunks))
    for mode, payloads in feed_each_way(b"".join(sends) + packet(payload)):
        info = PreparedStatementInfo(len(params))
        for sent in payloads[:-1]:
            event = parse_command(sent, 0, {4: info})
            assert isinstance(event, ComStmtSendLongData)
            info = info.with_long_data(event)
        event = parse_command(payloads[-1], 0, {4: info})
        assert event.param_values == expected, mode
        assert event.long_data_params == long_params
        assert event.encode() == payload  # the long-data parameters stay out of the values again
        assert info.after_execute(event).long_data == {}
    whole = {i: b"".join(parts) for i, parts in chunks.items()}
    assert ComStmtExecute.parse(payload, len(params), long_data=whole).param_values == expected
    with pytest.raises(MalformedPacket):  # without the long data the values are short: the packet is invalid
        ComStmtExecute.parse(payload, len(params))


def test_long_data_ignores_the_null_bit_and_out_of_range_parameters():
    payload = b"\x17" + u32(1) + u8(0) + u32(1) + b"\x01" + u8(1) + u8(c.MYSQL_TYPE_BLOB) + u8(0)
    event = ComStmtExecute.parse(payload, 1, long_data={0: b"data", 5: b"ignored"})
    assert event.param_values == (b"data",) and event.long_data_params == (0,)
