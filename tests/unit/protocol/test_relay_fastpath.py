"""The relay's fast path: raw frames from FrameReader, row runs, and ResponseReader without metadata
decoding must account for every response exactly like the full decoding path, and forward the
server's bytes unchanged."""

import types

import pytest

from ingress.protocol import constants as c
from ingress.protocol.binary_values import ParamType
from ingress.protocol.commands import ComStmtExecute
from ingress.protocol.errors import MalformedPacket, PacketTooLarge
from ingress.protocol.framing import FrameReader, frame
from ingress.protocol.resultset import StmtPrepareOk
from ingress.protocol.response import NOT_ROW_HEADERS, PacketKind, ResponseReader
from ingress.statements import PreparedStatements

from .builders import chunkings, packet, text_row, u24, u8
from .test_response import RESPONSE_TABLE


def _relay(wire: bytes, chunks: list[bytes], command: int, caps: int, reader: ResponseReader):
    """What ClientSession._relay does, minus the I/O: returns (forwarded bytes, kinds seen)."""
    frames = FrameReader()
    out, kinds, it = [], [], iter(chunks)
    while not reader.complete:
        if reader.in_rows:
            count, rows = frames.take_run(NOT_ROW_HEADERS)
            if count:
                reader.feed_rows(count)
                out.append(rows)
                kinds += [PacketKind.ROW] * count
                continue
        pkt = frames.next_packet()
        if pkt is None:
            frames.feed(next(it))
            continue
        kinds.append(reader.feed(pkt.payload).kind)
        out.append(pkt.raw)
    return b"".join(out), kinds


@pytest.mark.parametrize(("command", "caps", "payloads", "expected_kinds", "expected_results"), RESPONSE_TABLE)
def test_fast_relay_forwards_bytes_and_results_like_full_decoding(command, caps, payloads, expected_kinds,
                                                                   expected_results):
    wire = b"".join(packet(p, i + 1) for i, p in enumerate(payloads))
    for mode, chunks in chunkings(wire):
        if mode == "trailing":
            continue
        reader = ResponseReader(command, caps, decode_metadata=False)
        forwarded, kinds = _relay(wire, chunks, command, caps, reader)
        assert forwarded == wire, mode
        assert kinds == expected_kinds, mode
        assert [(type(r), getattr(r, "status_flags", None)) for r in reader.results] == expected_results
        assert reader.columns == [] and reader.prepare_params == []


def test_next_packet_raw_is_the_received_frames():
    reader = FrameReader(chunk_bytes=4)
    wire = frame(b"0123456789", 5, chunk_bytes=4) + packet(b"ab", 9)
    reader.feed(wire)
    first, second = reader.next_packet(), reader.next_packet()
    assert (first.first_seq, first.last_seq, first.payload) == (5, 7, b"0123456789")
    assert first.raw + second.raw == wire
    assert second.raw == frame(b"ab", 9) and reader.next_packet() is None


def test_take_run_takes_complete_single_frame_rows_only():
    rows = packet(text_row(b"1"), 2) + packet(text_row(b"22"), 3)
    reader = FrameReader()
    reader.feed(rows + packet(b"\xfe\x00\x00\x02\x00", 4) + packet(text_row(b"3"), 5))
    assert reader.take_run(NOT_ROW_HEADERS) == (2, rows)
    assert reader.take_run(NOT_ROW_HEADERS) == (0, b"")  # the EOF stops the run
    assert reader.next_packet().payload[:1] == b"\xfe"
    assert reader.take_run(NOT_ROW_HEADERS)[0] == 1
    reader.feed(packet(text_row(b"4"), 6)[:-1])  # incomplete
    assert reader.take_run(NOT_ROW_HEADERS) == (0, b"")
    assert reader.buffered_bytes == len(packet(text_row(b"4"), 6)) - 1


@pytest.mark.parametrize("wire", [
    packet(b"", 1),  # empty payload: for next_packet (and the response reader) to judge
    packet(b"\xff\x10\x04#HY000boom", 1),  # ERR
    u24(5) + u8(1) + b"01234",  # longer than max_payload_bytes: next_packet raises
    packet(b"0123", 1),  # a full chunk: a multi-frame payload starts
], ids=["empty", "err", "oversize", "continuation"])
def test_take_run_leaves_anything_else_to_next_packet(wire):
    reader = FrameReader(max_payload_bytes=4, chunk_bytes=4)
    reader.feed(wire)
    assert reader.take_run(NOT_ROW_HEADERS) == (0, b"")
    assert reader.buffered_bytes == len(wire)


def test_take_run_oversize_still_raises_in_next_packet():
    reader = FrameReader(max_payload_bytes=4)
    reader.feed(packet(b"abc", 1) + packet(b"abcde", 2))
    assert reader.take_run(NOT_ROW_HEADERS)[0] == 1
    with pytest.raises(PacketTooLarge):
        reader.next_packet()


def test_feed_rows_only_while_rows_are_expected():
    reader = ResponseReader(c.COM_QUERY, c.CLIENT_PROTOCOL_41)
    assert not reader.in_rows
    with pytest.raises(MalformedPacket):
        reader.feed_rows(1)


def test_metadata_eof_is_still_checked_without_decoding():
    reader = ResponseReader(c.COM_QUERY, c.CLIENT_PROTOCOL_41, decode_metadata=False)
    reader.feed(u8(1))
    assert reader.feed(b"\x03def\x00\x00\x00\x01a\x00\x0c\x21\x00\x01\x00\x00\x00\xfd\x00\x00\x00\x00\x00").event is None
    with pytest.raises(MalformedPacket):
        reader.feed(b"\xfe" + b"\x00" * 10)


def _prepared(sql: str, num_params: int) -> PreparedStatements:
    ps = PreparedStatements()
    ps.on_prepared(b"\x16" + sql.encode(), types.SimpleNamespace(prepare_ok=StmtPrepareOk(7, 0, num_params)))
    return ps


def _execute(value: int) -> bytes:
    return ComStmtExecute(7, 0, 1, True, (ParamType(c.MYSQL_TYPE_LONGLONG),), (value,)).encode()


def test_execute_parameters_are_decoded_only_for_captured_statements():
    writes = _prepared("UPDATE t SET a = a + 1 WHERE id = ?", 1)
    sql, params, plan = writes.on_execute(_execute(5), 0)
    assert params == (5,) and plan.statements[0].kind == "dml"
    reads = _prepared("SELECT c FROM t WHERE id = ?", 1)
    sql, params, plan = reads.on_execute(_execute(5), 0)
    assert sql == "SELECT c FROM t WHERE id = ?" and params is None and plan.statements[0].kind == "read"
    # a read's executions are never decoded, not even when they would not parse
    assert reads.on_execute(b"\x17" + (7).to_bytes(4, "little") + b"\x00", 0)[1] is None
