"""Fuzz every parser with random and mutated bytes: the only exception allowed out is ProtocolError.

Set DBMUX_FUZZ_EXAMPLES (default 300) to fuzz longer locally.
"""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.binary_values import ParamType, decode_binary_value
from dbmux.ingress.protocol.commands import ComStmtExecute, PreparedStatementInfo, parse_command
from dbmux.ingress.protocol.errors import ProtocolError
from dbmux.ingress.protocol.framing import FrameReader
from dbmux.ingress.protocol.generic_packets import (
    EofPacket,
    ErrPacket,
    OkPacket,
    ProgressReport,
    parse_generic_response,
    parse_terminator,
)
from dbmux.ingress.protocol.handshake import (
    AuthSwitchRequest,
    HandshakeResponse41,
    HandshakeV10,
    parse_auth_server_packet,
    parse_client_handshake,
)
from dbmux.ingress.protocol.response import ResponseReader
from dbmux.ingress.protocol.resultset import (
    BinaryRow,
    ColumnCount,
    ColumnDefinition41,
    LocalInfileRequest,
    StmtPrepareOk,
    TextRow,
)
from dbmux.ingress.protocol.session_state import decode_session_state

from . import test_commands, test_generic_packets, test_handshake, test_response
from .builders import column_def, eof, feed_buffered, ok, packet, text_row

FUZZ = settings(
    max_examples=int(os.environ.get("DBMUX_FUZZ_EXAMPLES", "300")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SEEDS = [
    test_handshake.MARIADB_GREETING,
    test_handshake.MYSQL8_GREETING,
    *(p.values[0].encode() for p in test_handshake.HANDSHAKE_RESPONSE_TABLE),
    *(p.values[0] for p in test_generic_packets.RESPONSE_TABLE),
    *(p.values[0] for p in test_commands.COMMAND_TABLE),
    test_commands.execute_payload(1, [(t, u, w) for t, u, w, _v in test_commands.PARAM_TABLE]),
    column_def(b"a"),
    text_row(b"1", None),
    eof(),
]

ALL_CAPS = [
    0,
    c.CLIENT_PROTOCOL_41 | c.CLIENT_TRANSACTIONS,
    c.CLIENT_PROTOCOL_41 | c.CLIENT_SESSION_TRACK | c.CLIENT_DEPRECATE_EOF | c.CLIENT_QUERY_ATTRIBUTES,
    0xFFFFFFFF,
    0xFFFFFFFE,  # MariaDB: CLIENT_MYSQL clear
]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and data:
            del data[pos]
    return bytes(data)


payloads = st.one_of(st.binary(max_size=200), mutated())
caps = st.sampled_from(ALL_CAPS)


def _try(fn, *args):
    try:
        fn(*args)
    except ProtocolError:
        pass


@FUZZ
@given(payload=payloads, capabilities=caps, ext=st.sampled_from([0, 0x1F]), num_params=st.integers(0, 40))
def test_every_parser_raises_only_protocol_error(payload, capabilities, ext, num_params):
    for parser in (
        HandshakeV10.parse, HandshakeResponse41.parse, parse_client_handshake, AuthSwitchRequest.parse,
        ProgressReport.parse, decode_session_state, TextRow.parse, LocalInfileRequest.parse,
    ):  # fmt: skip
        _try(parser, payload)
    for parser in (
        parse_auth_server_packet, parse_generic_response, OkPacket.parse, ErrPacket.parse, EofPacket.parse,
        parse_terminator, StmtPrepareOk.parse,
    ):  # fmt: skip
        _try(parser, payload, capabilities)
    _try(ColumnCount.parse, payload, capabilities, ext)
    _try(ColumnDefinition41.parse, payload, ext, capabilities)
    statements = {i: PreparedStatementInfo(num_params) for i in range(3)}
    _try(parse_command, payload, capabilities, statements)
    _try(ComStmtExecute.parse, payload, num_params, None, capabilities)
    types = tuple(ParamType(t) for t in (3, 253, 10, 11, 246, 5, 1, 12)[: num_params % 9])
    _try(ComStmtExecute.parse, payload, len(types), types, capabilities)
    _try(BinaryRow.parse, payload, types)


@FUZZ
@given(payload=payloads, type_code=st.integers(0, 255), unsigned=st.booleans(), pos=st.integers(0, 10))
def test_binary_value_decoder_raises_only_protocol_error(payload, type_code, unsigned, pos):
    _try(decode_binary_value, payload, pos, type_code, unsigned)


@FUZZ
@given(data=st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([packet(s)[:64] for s in SEEDS])), max_size=8),
       max_payload=st.integers(0, 100), expected=st.one_of(st.none(), st.integers(0, 255)))  # fmt: skip
def test_frame_reader_raises_only_protocol_error(data, max_payload, expected):
    reader = FrameReader(max_payload_bytes=max_payload, chunk_bytes=8)
    try:
        for chunk in data:
            reader.feed(chunk)
            while reader.next_payload(expected) is not None:
                pass
    except ProtocolError:
        pass


RESPONSE_SEEDS = [p for param in test_response.RESPONSE_TABLE for p in param.values[2]] + [ok()]


@FUZZ
@given(
    command=st.sampled_from([c.COM_QUERY, c.COM_STMT_PREPARE, c.COM_STMT_EXECUTE, c.COM_FIELD_LIST, c.COM_PING,
                             c.COM_CHANGE_USER, c.COM_STMT_FETCH, c.COM_BINLOG_DUMP, c.COM_STATISTICS, 0x99]),
    capabilities=caps,
    ext=st.sampled_from([0, 0x1F]),
    packets=st.lists(st.one_of(st.binary(max_size=60), st.sampled_from(RESPONSE_SEEDS), mutated()), max_size=10),
    client_turns=st.lists(st.booleans(), max_size=10),
)  # fmt: skip
def test_response_reader_raises_only_protocol_error(command, capabilities, ext, packets, client_turns):
    reader = ResponseReader(command, capabilities, ext, cursor=bool(client_turns))
    try:
        for i, payload in enumerate(packets):
            if reader.awaiting_client and i < len(client_turns) and client_turns[i]:
                reader.feed_client(payload)
            else:
                reader.feed(payload)
    except ProtocolError:
        pass


def _outcome(reader: ResponseReader, frames: FrameReader, skim: bool):
    """Feed everything buffered (skimming first when asked); the reader's final state or the error."""
    try:
        feed_buffered(reader, frames, skim)
    except ProtocolError as exc:
        return type(exc), str(exc)
    return (reader.phase, reader.packets_seen, reader._columns_left, reader.awaiting_client,
            [(type(r), r) for r in reader.results], frames.buffered_bytes)


@FUZZ
@given(
    command=st.sampled_from([c.COM_QUERY, c.COM_STMT_EXECUTE, c.COM_STMT_FETCH, c.COM_PING]),
    capabilities=caps,
    ext=st.sampled_from([0, 0x1F]),
    packets=st.lists(st.one_of(st.binary(max_size=12), st.sampled_from(RESPONSE_SEEDS), mutated()), max_size=12),
    max_payload=st.sampled_from([6, 40, 1 << 30]),
)  # fmt: skip
def test_skimming_changes_nothing_but_speed(command, capabilities, ext, packets, max_payload):
    """ResponseReader.skim + feed must end in exactly the state (or the error) of feed alone."""
    wire = b"".join(packet(p[:255], i + 1) for i, p in enumerate(packets))
    results = []
    for skim in (False, True):
        frames = FrameReader(max_payload_bytes=max_payload)
        frames.feed(wire)
        reader = ResponseReader(command, capabilities, ext, decode_metadata=False)
        results.append(_outcome(reader, frames, skim))
    assert results[0] == results[1]


def _reparse_equal(parse, encode, payload):
    """encode() of anything parse() accepts must parse again and re-encode to the same bytes.

    Compared as bytes, not events, so NaN floats/decimals (never equal to themselves) do not fail it.
    """
    try:
        event = parse(payload)
    except ProtocolError:
        return
    wire = encode(event)
    again = parse(wire)
    assert type(again) is type(event)
    assert encode(again) == wire


@FUZZ
@given(payload=payloads, capabilities=caps, num_params=st.integers(0, 40))
def test_whatever_parses_reencodes_to_the_same_event(payload, capabilities, num_params):
    _reparse_equal(HandshakeV10.parse, lambda e: e.encode(), payload)
    _reparse_equal(parse_client_handshake, lambda e: e.encode(), payload)
    _reparse_equal(lambda p: parse_generic_response(p, capabilities),
                   lambda e: e.encode() if isinstance(e, ProgressReport) else e.encode(capabilities),
                   payload)  # fmt: skip
    statements = {i: PreparedStatementInfo(num_params) for i in range(3)}
    _reparse_equal(lambda p: parse_command(p, capabilities, statements), lambda e: e.encode(capabilities),
                   payload)
    _reparse_equal(lambda p: ColumnDefinition41.parse(p, 0, capabilities), lambda e: e.encode(), payload)


def test_an_execute_sending_fewer_parameters_than_its_statement_has_is_malformed():
    """Found by the fuzzer: with query attributes, a parameter count below the statement's parameters
    parsed as an execute without parameters, which re-encoded without its count (and then did not parse)."""
    payload = b"\x17" + bytes(4) + b"\x00" + bytes(4) + b"\x00"  # id 0, no flags, count 0
    with pytest.raises(ProtocolError, match="sends 0 parameters for a statement with 1"):
        ComStmtExecute.parse(payload, 1, None, c.CLIENT_QUERY_ATTRIBUTES)
    assert ComStmtExecute.parse(payload[:-1], 0, None, c.CLIENT_QUERY_ATTRIBUTES).param_values == ()


def test_greeting_with_a_long_scramble_and_no_plugin_auth_reencodes_exactly():
    """Found by the fuzzer: a 21-byte scramble without CLIENT_PLUGIN_AUTH lost a byte on re-encoding."""
    from dbmux.ingress.protocol.handshake import HandshakeV10

    payload = (b"\n\x00" + bytes(4) + bytes(8) + b"\x00" + b"\x00\x80" + b"\x00" + bytes(2) + bytes(2) + b"\x16"
               + bytes(10) + bytes(14))
    _reparse_equal(HandshakeV10.parse, HandshakeV10.encode, payload)
    assert len(HandshakeV10.parse(HandshakeV10.parse(payload).encode()).auth_plugin_data) == 21
