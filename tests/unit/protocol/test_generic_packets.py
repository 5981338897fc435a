import pytest

from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.errors import MalformedPacket
from dbmux.ingress.protocol.generic_packets import (
    EofPacket,
    ErrPacket,
    OkPacket,
    ProgressReport,
    is_result_terminator,
    parse_generic_response,
)
from dbmux.ingress.protocol.session_state import (
    GtidsChange,
    SchemaChange,
    StateChange,
    SystemVariableChange,
    TransactionStateChange,
    UnknownSessionChange,
)

from .builders import eof, err, feed_each_way, lenenc, lstr, ok, packet, session_gtids, session_sysvar, u8, u16

CAPS41 = c.CLIENT_PROTOCOL_41 | c.CLIENT_TRANSACTIONS
TRACK = CAPS41 | c.CLIENT_SESSION_TRACK
CHANGED = c.SERVER_SESSION_STATE_CHANGED | c.SERVER_STATUS_AUTOCOMMIT

MYSQL_UUID = b"3E11FA47-71CA-11E1-9E33-C80AA9429562:23"
RECORDS = b"Records: 3  Duplicates: 0  Warnings: 0"
MATCHED = b"Rows matched: 1  Changed: 1  Warnings: 0"

# (payload, capabilities, expected event)
RESPONSE_TABLE = [
    pytest.param(ok(), CAPS41, OkPacket(status_flags=2), id="plain-ok"),
    pytest.param(  # the info text is length-encoded also without CLIENT_SESSION_TRACK (as servers send it)
        ok(affected=3, insert_id=0x10000, status=c.SERVER_STATUS_IN_TRANS, warnings=1, rest=lstr(RECORDS)),
        CAPS41, OkPacket(3, 0x10000, c.SERVER_STATUS_IN_TRANS, 1, RECORDS), id="ok-info-without-session-track",
    ),  # fmt: skip
    pytest.param(
        ok(affected=1, rest=lstr(MATCHED)), CAPS41, OkPacket(1, 0, 2, 0, MATCHED), id="ok-rows-matched-info",
    ),  # fmt: skip
    pytest.param(
        ok(affected=1, status=2, rest=lstr(MATCHED)), TRACK, OkPacket(1, 0, 2, 0, MATCHED), id="track-info-only",
    ),  # fmt: skip
    pytest.param(
        ok(affected=1, insert_id=7, status=CHANGED, rest=lstr(b"") + lstr(session_sysvar(b"last_gtid", b"0-1-42"))),
        TRACK,
        OkPacket(1, 7, CHANGED, 0, b"", (SystemVariableChange("last_gtid", "0-1-42"),)),
        id="mariadb-last-gtid",
    ),  # fmt: skip
    pytest.param(
        ok(status=CHANGED, rest=lstr(b"") + lstr(session_gtids(MYSQL_UUID) + u8(5) + lstr(lstr(b"T_____W_")))),
        TRACK,
        OkPacket(0, 0, CHANGED, 0, b"", (GtidsChange(MYSQL_UUID.decode()), TransactionStateChange("T_____W_"))),
        id="mysql-session-track-gtids",
    ),  # fmt: skip
    pytest.param(
        ok(status=CHANGED, rest=lstr(b"info") + lstr(
            u8(1) + lstr(lstr(b"shop")) + u8(2) + lstr(lstr(b"1")) + u8(0) + lstr(lstr(b"autocommit") + lstr(b"ON"))
            + u8(200) + lstr(b"\x01\x02")
        )),
        TRACK,
        OkPacket(0, 0, CHANGED, 0, b"info", (
            SchemaChange("shop"), StateChange("1"), SystemVariableChange("autocommit", "ON"),
            UnknownSessionChange(200, b"\x01\x02"),
        )),
        id="schema-state-sysvar-unknown",
    ),  # fmt: skip
    pytest.param(ok(status=2), TRACK, OkPacket(status_flags=2), id="track-without-info"),
    pytest.param(err(1064, b"42000", b"You have an error"), CAPS41, ErrPacket(1064, "42000", "You have an error"),
                 id="err"),  # fmt: skip
    pytest.param(b"\xff\x10\x04Too many connections", 0, ErrPacket(1040, None, "Too many connections"),
                 id="err-without-sqlstate"),  # fmt: skip
    pytest.param(eof(1, c.SERVER_MORE_RESULTS_EXISTS), CAPS41, EofPacket(1, c.SERVER_MORE_RESULTS_EXISTS), id="eof"),
    pytest.param(b"\xff\xff\xff\x01\x01\x03" + b"\xe8\x03\x00" + lstr(b"copy to tmp"), CAPS41,
                 ProgressReport(1, 3, 1000, b"copy to tmp"), id="mariadb-progress"),  # fmt: skip
]


@pytest.mark.parametrize(("payload", "caps", "expected"), RESPONSE_TABLE)
def test_generic_response_table(payload, caps, expected):
    for mode, payloads in feed_each_way(packet(payload, 1)):
        assert payloads == [payload], mode
        parsed = parse_generic_response(payloads[0], caps)
        assert parsed == expected
        encoded = parsed.encode() if isinstance(parsed, ProgressReport) else parsed.encode(caps)
        assert encoded == payload


def test_ok_gtid_helpers():
    by_id = {p.id: p.values[0] for p in RESPONSE_TABLE}
    mariadb = parse_generic_response(by_id["mariadb-last-gtid"], TRACK)
    assert mariadb.gtid == "0-1-42"
    assert mariadb.system_variables == {"last_gtid": "0-1-42"}
    assert mariadb.autocommit and not mariadb.in_transaction
    mysql = parse_generic_response(by_id["mysql-session-track-gtids"], TRACK)
    assert mysql.gtid == MYSQL_UUID.decode()
    assert parse_generic_response(ok(), CAPS41).gtid is None


def test_session_state_ignored_without_session_track_capability():
    payload = ok(status=CHANGED, rest=lstr(b"") + lstr(session_sysvar(b"last_gtid", b"0-1-42")))
    parsed = OkPacket.parse(payload, CAPS41)
    assert parsed.session_state_changes == ()
    assert parsed.info == payload[7:]


def test_info_that_is_not_one_length_encoded_string_is_taken_whole():
    """Another server's string<EOF> info is kept (and re-encoded the way MariaDB and MySQL send it)."""
    for rest in (b"Records: 3", b"\x05abc", b"\x02ab" + b"cd"):
        parsed = OkPacket.parse(ok(rest=rest), CAPS41)
        assert parsed.info == rest
        assert parsed.encode(CAPS41) == ok(rest=lstr(rest))
    assert OkPacket.parse(ok(rest=b""), CAPS41).info == b""


def test_an_ok_reencoded_for_a_client_without_session_track_is_what_the_server_sends_it():
    """The ingress's upstream OK (session tracking on) re-encoded without CLIENT_SESSION_TRACK: the info
    keeps its length prefix, the session state goes, an empty info is not written at all."""
    tracked = ok(affected=1, status=CHANGED, rest=lstr(MATCHED) + lstr(session_sysvar(b"last_gtid", b"0-1-42")))
    parsed = OkPacket.parse(tracked, TRACK)
    plain = OkPacket(parsed.affected_rows, parsed.last_insert_id, c.SERVER_STATUS_AUTOCOMMIT, 0, parsed.info)
    assert plain.encode(CAPS41) == ok(affected=1, rest=lstr(MATCHED))  # MariaDB's bytes to PyMySQL
    assert OkPacket(1, 0, 2).encode(CAPS41) == ok(affected=1)
    long_info = b"x" * 300  # a 2-byte length
    assert OkPacket(info=long_info).encode(CAPS41).endswith(b"\xfc\x2c\x01" + long_info)
    assert OkPacket.parse(OkPacket(info=long_info).encode(CAPS41), CAPS41).info == long_info


def test_session_state_with_non_utf8_value_roundtrips():
    payload = ok(status=CHANGED, rest=lstr(b"") + lstr(session_sysvar(b"character_set_client", b"\xff\xfe")))
    parsed = OkPacket.parse(payload, TRACK)
    assert parsed.encode(TRACK) == payload


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00",
        b"\x00\x01",
        ok(status=CHANGED, rest=lstr(b"") + lstr(u8(0) + lstr(b"\x05ab"))),  # truncated var name
        ok(status=CHANGED, rest=lstr(b"") + lstr(u8(3) + lstr(b""))),  # GTIDS entry without spec byte
        ok(status=CHANGED, rest=lstr(b"") + lstr(session_sysvar(b"a", b"b")) + b"junk"),
        b"\x05not-a-response",
    ],
)
def test_malformed_generic_responses(payload):
    with pytest.raises(MalformedPacket):
        parse_generic_response(payload, TRACK)


def test_err_encode_for_synthesised_errors():
    wire = ErrPacket(1105, "HY000", "dbmux: publisher unavailable").encode()
    assert wire == b"\xff" + u16(1105) + b"#HY000dbmux: publisher unavailable"
    with pytest.raises(ValueError):
        ErrPacket(1, "HY0", "x").encode()


def test_result_terminator_rule():
    long_ok = ok(status=CHANGED, rest=lstr(b"") + lstr(session_sysvar(b"last_gtid", b"0-1-42")), header=0xFE)
    assert len(long_ok) >= 9
    assert is_result_terminator(long_ok, CAPS41 | c.CLIENT_DEPRECATE_EOF)
    assert not is_result_terminator(long_ok, CAPS41)  # without DEPRECATE_EOF only short 0xFE packets
    assert is_result_terminator(eof(), CAPS41)
    row_starting_fe = b"\xfe" + lenenc(0x1000000)[1:] + b"x" * 10
    assert not is_result_terminator(row_starting_fe, CAPS41)
