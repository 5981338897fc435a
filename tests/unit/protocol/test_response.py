import pytest

from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.commands import ComQuery, ComStmtClose, ComStmtExecute
from dbmux.ingress.protocol.errors import MalformedPacket
from dbmux.ingress.protocol.generic_packets import EofPacket, ErrPacket, OkPacket
from dbmux.ingress.protocol.response import PacketKind, Phase, ResponseReader

from .builders import column_def, eof, err, feed_each_way, lstr, ok, packet, session_sysvar, text_row, u8, u16, u32

BASE = c.CLIENT_PROTOCOL_41 | c.CLIENT_TRANSACTIONS | c.CLIENT_MULTI_RESULTS | c.CLIENT_SESSION_TRACK
DEP = BASE | c.CLIENT_DEPRECATE_EOF
MORE = c.SERVER_MORE_RESULTS_EXISTS | c.SERVER_STATUS_AUTOCOMMIT
AC = c.SERVER_STATUS_AUTOCOMMIT
GTID_OK = ok(1, 5, AC | c.SERVER_SESSION_STATE_CHANGED, rest=lstr(b"") + lstr(session_sysvar(b"last_gtid", b"0-1-9")))

E = PacketKind


def kinds(*names):
    return [E[n] for n in names]


# (command byte, capabilities, server payloads, expected kinds, expected results (type, status) per statement)
RESPONSE_TABLE = [
    pytest.param(c.COM_QUERY, BASE, [ok(1, 42, AC)], kinds("OK"), [(OkPacket, AC)], id="insert-ok"),
    pytest.param(c.COM_QUERY, BASE, [err(1062, b"23000", b"Duplicate")], kinds("ERR"), [(ErrPacket, None)], id="err"),
    pytest.param(
        c.COM_QUERY, BASE,
        [u8(2), column_def(b"a"), column_def(b"b"), eof(), text_row(b"1", None), text_row(b"", b"x"), eof(0, AC)],
        kinds("COLUMN_COUNT", "COLUMN_DEFINITION", "COLUMN_DEFINITION", "EOF", "ROW", "ROW", "EOF"),
        [(EofPacket, AC)], id="resultset-with-eof",
    ),  # fmt: skip
    pytest.param(
        c.COM_QUERY, DEP,
        [u8(1), column_def(b"a"), text_row(b"1"), ok(0, 0, AC, header=0xFE)],
        kinds("COLUMN_COUNT", "COLUMN_DEFINITION", "ROW", "EOF"), [(OkPacket, AC)], id="resultset-deprecate-eof",
    ),  # fmt: skip
    pytest.param(
        c.COM_QUERY, DEP,
        [u8(1), column_def(b"a"), text_row(b"1"), b"\xfe" + GTID_OK[1:]],
        kinds("COLUMN_COUNT", "COLUMN_DEFINITION", "ROW", "EOF"),
        [(OkPacket, AC | c.SERVER_SESSION_STATE_CHANGED)], id="deprecate-eof-terminator-longer-than-9",
    ),  # fmt: skip
    pytest.param(
        c.COM_QUERY, BASE,
        [u8(1), column_def(b"a"), eof(), eof(0, MORE), ok(1, 0, MORE), GTID_OK],
        kinds("COLUMN_COUNT", "COLUMN_DEFINITION", "EOF", "EOF", "OK", "OK"),
        [(EofPacket, MORE), (OkPacket, MORE), (OkPacket, AC | c.SERVER_SESSION_STATE_CHANGED)],
        id="multi-statement-empty-resultset-then-oks",
    ),  # fmt: skip
    pytest.param(
        c.COM_QUERY, DEP,
        [u8(1), column_def(b"a"), text_row(b"1"), ok(0, 0, MORE, header=0xFE), ok(0, 0, AC)],
        kinds("COLUMN_COUNT", "COLUMN_DEFINITION", "ROW", "EOF", "OK"),
        [(OkPacket, MORE), (OkPacket, AC)], id="call-procedure-deprecate-eof",
    ),  # fmt: skip
    pytest.param(
        c.COM_QUERY, BASE, [ok(1, 0, MORE), err(1146, b"42S02", b"no table")], kinds("OK", "ERR"),
        [(OkPacket, MORE), (ErrPacket, None)], id="multi-statement-error-stops",
    ),  # fmt: skip
    pytest.param(
        c.COM_QUERY, BASE, [u8(1), column_def(b"a"), eof(), text_row(b"1"), err(1317, b"70100", b"interrupted")],
        kinds("COLUMN_COUNT", "COLUMN_DEFINITION", "EOF", "ROW", "ERR"), [(ErrPacket, None)], id="err-mid-rows",
    ),  # fmt: skip
    pytest.param(
        c.COM_QUERY, BASE, [b"\xff\xff\xff\x01\x01\x02\x10\x00\x00" + lstr(b"altering"), ok(0, 0, AC)],
        kinds("PROGRESS", "OK"), [(OkPacket, AC)], id="mariadb-progress-then-ok",
    ),  # fmt: skip
    pytest.param(
        c.COM_STMT_PREPARE, BASE,
        [b"\x00" + u32(1) + u16(1) + u16(2) + b"\x00" + u16(0), column_def(b"?"), column_def(b"?"), eof(),
         column_def(b"id"), eof()],
        kinds("PREPARE_OK", "PARAM_DEFINITION", "PARAM_DEFINITION", "EOF", "COLUMN_DEFINITION", "EOF"), [],
        id="prepare-with-eofs",
    ),  # fmt: skip
    pytest.param(
        c.COM_STMT_PREPARE, DEP,
        [b"\x00" + u32(1) + u16(1) + u16(1) + b"\x00" + u16(0), column_def(b"?"), column_def(b"id")],
        kinds("PREPARE_OK", "PARAM_DEFINITION", "COLUMN_DEFINITION"), [], id="prepare-deprecate-eof",
    ),  # fmt: skip
    pytest.param(
        c.COM_STMT_PREPARE, BASE, [b"\x00" + u32(1) + u16(0) + u16(0) + b"\x00" + u16(0)], kinds("PREPARE_OK"), [],
        id="prepare-no-params-no-columns",
    ),  # fmt: skip
    pytest.param(
        c.COM_STMT_EXECUTE, BASE, [u8(1), column_def(b"n", 3), eof(), b"\x00\x00" + u32(7), eof(0, AC)],
        kinds("COLUMN_COUNT", "COLUMN_DEFINITION", "EOF", "ROW", "EOF"), [(EofPacket, AC)], id="execute-binary-rows",
    ),  # fmt: skip
    pytest.param(
        c.COM_FIELD_LIST, BASE, [column_def(b"a") + lstr(b"dflt"), column_def(b"b"), eof()],
        kinds("COLUMN_DEFINITION", "COLUMN_DEFINITION", "EOF"), [(EofPacket, AC)], id="field-list",
    ),  # fmt: skip
    pytest.param(c.COM_PING, BASE, [ok(0, 0, AC)], kinds("OK"), [(OkPacket, AC)], id="ping"),
    pytest.param(c.COM_SET_OPTION, BASE, [eof(0, AC)], kinds("EOF"), [(EofPacket, AC)], id="set-option-eof"),
    pytest.param(c.COM_STMT_FETCH, BASE, [b"\x00\x00" + u32(1), eof(0, AC | c.SERVER_STATUS_LAST_ROW_SENT)],
                 kinds("ROW", "EOF"), [(EofPacket, AC | c.SERVER_STATUS_LAST_ROW_SENT)], id="fetch"),  # fmt: skip
    pytest.param(c.COM_STATISTICS, BASE, [b"Uptime: 5  Threads: 1"], kinds("OTHER"), [], id="statistics"),
    pytest.param(c.COM_BINLOG_DUMP, BASE, [b"\x00event1", b"\x00event2", eof()],
                 kinds("BINLOG_EVENT", "BINLOG_EVENT", "EOF"), [(EofPacket, AC)], id="binlog-dump"),  # fmt: skip
]


@pytest.mark.parametrize(("command", "caps", "payloads", "expected_kinds", "expected_results"), RESPONSE_TABLE)
def test_response_reader_table(command, caps, payloads, expected_kinds, expected_results):
    wire = b"".join(packet(p, i + 1) for i, p in enumerate(payloads))
    for mode, got_payloads in feed_each_way(wire):
        assert got_payloads == payloads, mode
        reader = ResponseReader(command, caps)
        got_kinds = []
        for i, payload in enumerate(got_payloads):
            assert not reader.complete, f"complete before packet {i} ({mode})"
            got_kinds.append(reader.feed(payload).kind)
        assert reader.complete
        assert got_kinds == expected_kinds
        assert [(type(r), getattr(r, "status_flags", None)) for r in reader.results] == expected_results
        with pytest.raises(MalformedPacket):
            reader.feed(ok())


def test_results_expose_gtid_and_insert_id_per_statement():
    reader = ResponseReader(c.COM_QUERY, BASE)
    for payload in (ok(1, 10, MORE), GTID_OK):
        reader.feed(payload)
    assert [r.last_insert_id for r in reader.results] == [10, 5]
    assert reader.results[-1].gtid == "0-1-9"
    assert reader.status_flags & c.SERVER_SESSION_STATE_CHANGED


def test_columns_and_prepare_details_are_parsed():
    reader = ResponseReader(c.COM_STMT_PREPARE, DEP)
    reader.feed(b"\x00" + u32(77) + u16(1) + u16(1) + b"\x00" + u16(0))
    reader.feed(column_def(b"?", c.MYSQL_TYPE_LONGLONG))
    reader.feed(column_def(b"id", c.MYSQL_TYPE_LONG, flags=c.UNSIGNED_FLAG))
    assert reader.prepare_ok.statement_id == 77 and reader.prepare_ok.num_params == 1
    assert reader.columns[0].name == b"id" and reader.columns[0].param_type.unsigned
    assert reader.prepare_params[0].type == c.MYSQL_TYPE_LONGLONG


def test_no_response_commands_are_complete_at_once():
    for code in (c.COM_STMT_CLOSE, c.COM_STMT_SEND_LONG_DATA, c.COM_QUIT):
        reader = ResponseReader(code, BASE)
        assert reader.complete and not reader.expects_response
    assert ResponseReader.for_command(ComStmtClose(1), BASE).complete
    assert not ResponseReader.for_command(ComQuery(b"x"), BASE).complete


def test_local_infile_round_trip():
    reader = ResponseReader(c.COM_QUERY, BASE)
    request = reader.feed(b"\xfb/tmp/data.csv")
    assert request.kind is PacketKind.LOCAL_INFILE_REQUEST and request.event.filename == b"/tmp/data.csv"
    assert reader.awaiting_client
    with pytest.raises(MalformedPacket):
        reader.feed(ok())  # the server must wait for the file
    reader.feed_client(b"1,2\n3,4\n")
    assert reader.awaiting_client
    reader.feed_client(b"")  # end of file
    assert not reader.awaiting_client and not reader.complete
    reader.feed(ok(2, 0, AC))
    assert reader.complete and reader.results[0].affected_rows == 2


def test_execute_with_cursor_completes_after_column_eof():
    execute = ComStmtExecute(1, flags=c.CURSOR_TYPE_READ_ONLY)
    reader = ResponseReader.for_command(execute, BASE)
    reader.feed(u8(1))
    reader.feed(column_def(b"a"))
    reader.feed(eof(0, AC | c.SERVER_STATUS_CURSOR_EXISTS))
    assert reader.complete
    # the same packets without a cursor keep reading rows
    plain = ResponseReader.for_command(ComStmtExecute(1), BASE)
    for payload in (u8(1), column_def(b"a"), eof(0, AC)):
        plain.feed(payload)
    assert plain.phase is Phase.ROWS


def test_change_user_auth_exchange():
    reader = ResponseReader(c.COM_CHANGE_USER, BASE)
    switch = reader.feed(b"\xfemysql_native_password\x00" + b"s" * 20 + b"\x00")
    assert switch.kind is PacketKind.AUTH and reader.awaiting_client
    reader.feed_client(b"r" * 20)
    assert not reader.awaiting_client
    reader.feed(b"\x01\x03")  # caching_sha2 fast auth success: no client packet expected
    assert not reader.awaiting_client
    reader.feed(ok(0, 0, AC))
    assert reader.complete


def test_optional_metadata_skips_column_definitions():
    caps = DEP | c.CLIENT_OPTIONAL_RESULTSET_METADATA
    reader = ResponseReader(c.COM_QUERY, caps)
    reader.feed(u8(2) + u8(c.RESULTSET_METADATA_NONE))
    assert reader.feed(text_row(b"1", b"2")).kind is PacketKind.ROW
    reader.feed(ok(0, 0, AC, header=0xFE))
    assert reader.complete


@pytest.mark.parametrize(
    ("command", "caps", "payloads"),
    [
        (c.COM_QUERY, BASE, [b"\xfe\x00\x00\x02\x00"]),  # EOF where a result was expected
        (c.COM_QUERY, BASE, [u8(1), b"\x03def"]),  # truncated column definition
        (c.COM_QUERY, BASE, [u8(1), column_def(b"a"), text_row(b"row-instead-of-eof")]),
        (c.COM_STMT_PREPARE, BASE, [b"\x00\x01"]),
        (c.COM_PING, BASE, [text_row(b"x")]),
    ],
)
def test_response_protocol_violations(command, caps, payloads):
    reader = ResponseReader(command, caps)
    with pytest.raises(MalformedPacket):
        for payload in payloads:
            reader.feed(payload)
