"""The relay's fast path: raw frames from FrameReader, skimmed runs (ResponseReader.skim with
FrameReader.take_skimmed), row runs, and ResponseReader without metadata decoding must account for
every response exactly like the full decoding path, and forward the server's bytes unchanged."""

import os
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.binary_values import ParamType
from dbmux.ingress.protocol.commands import ComStmtExecute
from dbmux.ingress.protocol.errors import MalformedPacket, PacketTooLarge, ProtocolError
from dbmux.ingress.protocol.framing import FrameReader, frame
from dbmux.ingress.protocol.generic_packets import EofPacket
from dbmux.ingress.protocol.response import NOT_ROW_HEADERS, Phase, ResponseReader
from dbmux.ingress.protocol.resultset import StmtPrepareOk
from dbmux.ingress.statements import PreparedStatements

from .builders import chunkings, column_def, eof, err, feed_buffered, lenenc, ok, packet, text_row, u8, u16, u24, u32
from .test_response import AC, BASE, DEP, MORE, RESPONSE_TABLE


def _relay(chunks: list[bytes], reader: ResponseReader, frames: FrameReader | None = None):
    """What ResponseRelay.pump does, minus the I/O: skimmed runs and fed packets, in order.

    Returns (forwarded bytes, kinds of the packets that were fed rather than skimmed)."""
    frames = frames or FrameReader()
    out, fed, it = [], [], iter(chunks)
    while not reader.complete:
        run = frames.take_skimmed(reader.skim)
        if run:
            out.append(run)
            if reader.complete:
                break
        pkt = frames.next_packet()
        if pkt is None:
            frames.feed(next(it))
            continue
        fed.append(reader.feed(pkt.payload).kind)
        out.append(pkt.raw)
    return b"".join(out), fed


def _state(reader: ResponseReader):
    return (reader.phase, reader.packets_seen, reader._columns_left, reader.awaiting_client, reader.prepare_ok,
            [(type(r), r) for r in reader.results])


@pytest.mark.parametrize(("command", "caps", "payloads", "expected_kinds", "expected_results"), RESPONSE_TABLE)
def test_fast_relay_forwards_bytes_and_results_like_full_decoding(command, caps, payloads, expected_kinds,
                                                                   expected_results):
    wire = b"".join(packet(p, i + 1) for i, p in enumerate(payloads))
    for mode, chunks in chunkings(wire):
        if mode == "trailing":
            continue
        reader = ResponseReader(command, caps, decode_metadata=False)
        forwarded, fed = _relay(chunks, reader)
        assert forwarded == wire, mode
        assert reader.packets_seen == len(payloads), mode
        assert [(type(r), getattr(r, "status_flags", None)) for r in reader.results] == expected_results
        assert reader.columns == [] and reader.prepare_params == []
        it = iter(expected_kinds)  # the fed packets are a subsequence of all packets
        assert all(kind in it for kind in fed), (mode, fed)


@pytest.mark.parametrize(("command", "caps", "payloads", "expected_kinds", "expected_results"), RESPONSE_TABLE)
def test_skim_then_feed_leaves_the_reader_exactly_as_feed_alone(command, caps, payloads, expected_kinds,
                                                                 expected_results):
    """After every packet boundary, skimming what it may and feeding the rest gives the same reader state."""
    wire = b"".join(packet(p, i + 1) for i, p in enumerate(payloads))
    for cut in range(len(payloads) + 1):
        head = b"".join(packet(p, i + 1) for i, p in enumerate(payloads[:cut]))
        plain = ResponseReader(command, caps, decode_metadata=False)
        for p in payloads[:cut]:
            plain.feed(p)
        fast = ResponseReader(command, caps, decode_metadata=False)
        frames = FrameReader()
        frames.feed(head)
        while True:
            frames.take_skimmed(fast.skim)
            pkt = frames.next_packet()
            if pkt is None:
                break
            fast.feed(pkt.payload)
        assert _state(fast) == _state(plain), cut
        assert frames.buffered_bytes == 0 and len(wire) >= len(head)


_MARIADB_CACHE = c.MARIADB_CLIENT_CACHE_METADATA


@pytest.mark.parametrize(("caps", "ext", "payloads", "skimmed"), [
    # MariaDB with cached metadata: column count + metadata_follows=0, EOF, binary row, EOF (sysbench's execute)
    pytest.param(BASE, _MARIADB_CACHE, [b"\x01\x00", eof(), b"\x00\x00" + u32(7), eof(0, AC)], 4, id="cached-metadata"),
    pytest.param(BASE, _MARIADB_CACHE, [b"\x01\x01", column_def(b"n"), eof(), b"\x00\x00", eof(0, AC)], 5,
                 id="metadata-follows"),
    pytest.param(BASE, 0, [u8(1), column_def(b"a"), eof(), text_row(b"1"), eof(0, MORE), ok(0, 0, AC)], 5,
                 id="more-results-then-ok"),
    pytest.param(DEP, 0, [u8(1), column_def(b"a"), text_row(b"1"), ok(0, 0, AC, header=0xFE)], 3,
                 id="deprecate-eof-terminator-is-fed"),
    pytest.param(BASE, 0, [u8(1), column_def(b"a"), eof(), b"\xfe" + b"\x01" * 9, eof(0, AC)], 3,
                 id="fe-row-is-fed"),
    pytest.param(BASE, 0, [u8(1), column_def(b"a"), eof(), text_row(b"1"), err(1317, b"70100", b"x")], 4,
                 id="err-is-fed"),
    pytest.param(BASE, 0, [lenenc(300)] + [column_def(b"c")] * 300 + [eof(), eof(0, AC)], 0, id="lenenc-count-is-fed"),
    pytest.param(BASE, 0, [ok(1, 0, AC)], 0, id="ok-is-fed"),
    # an EOF packet flagging SERVER_SESSION_STATE_CHANGED: the relay may rewrite its status
    pytest.param(BASE, 0, [u8(1), column_def(b"a"), eof(0, AC | MORE | c.SERVER_SESSION_STATE_CHANGED)], 2,
                 id="flagged-metadata-eof-is-fed"),
    pytest.param(BASE, 0, [u8(1), column_def(b"a"), eof(), text_row(b"1"),
                           eof(0, AC | MORE | c.SERVER_SESSION_STATE_CHANGED)], 4, id="flagged-terminator-is-fed"),
    pytest.param(BASE, 0, [b"\xfb" + b"file", ], 0, id="local-infile-is-fed"),
])
def test_skim_takes_what_needs_no_decoding(caps, ext, payloads, skimmed):
    reader = ResponseReader(c.COM_QUERY, caps, ext, decode_metadata=False)
    wire = b"".join(packet(p, (i + 1) & 0xFF) for i, p in enumerate(payloads))
    frames = FrameReader()
    frames.feed(wire)
    run = frames.take_skimmed(reader.skim)
    assert run == b"".join(packet(p, (i + 1) & 0xFF) for i, p in enumerate(payloads[:skimmed]))
    assert reader.packets_seen == skimmed
    if skimmed == len(payloads):
        assert reader.complete and [type(r) for r in reader.results] == [EofPacket]


@pytest.mark.parametrize("payloads", [
    [b"\x01\x00\x00"],  # column count with a trailing byte: feed() refuses it, skim leaves it
    [u8(1), column_def(b"a"), text_row(b"1")],  # a row where the EOF after the columns belongs
    [u8(1), column_def(b"a"), eof(), text_row(b"1"), b"\xfe\x00\x00"],  # truncated EOF terminator
    [u8(1), column_def(b"a"), b""],  # empty packet
])
def test_skim_leaves_malformed_packets_to_feed(payloads):
    reader = ResponseReader(c.COM_QUERY, BASE, decode_metadata=False)
    wire = b"".join(packet(p, i + 1) for i, p in enumerate(payloads))
    frames = FrameReader()
    frames.feed(wire)
    frames.take_skimmed(reader.skim)
    with pytest.raises(MalformedPacket):
        while (pkt := frames.next_packet()) is not None:
            reader.feed(pkt.payload)


def test_skim_stops_at_packets_longer_than_max_length_and_next_packet_raises():
    reader = ResponseReader(c.COM_QUERY, BASE, decode_metadata=False)
    frames = FrameReader(max_payload_bytes=8)
    frames.feed(packet(u8(1), 1) + packet(b"12345678", 2) + packet(b"123456789", 3))
    assert frames.take_skimmed(reader.skim) == packet(u8(1), 1) + packet(b"12345678", 2)
    with pytest.raises(PacketTooLarge):
        frames.next_packet()


def test_skim_never_takes_part_of_a_multi_frame_payload():
    reader = ResponseReader(c.COM_QUERY, BASE, decode_metadata=False)
    frames = FrameReader(chunk_bytes=8)
    frames.feed(packet(u8(1), 1) + packet(b"abcdefgh", 2) + packet(b"ij", 3) + packet(eof(), 4))
    assert frames.take_skimmed(reader.skim) == packet(u8(1), 1)
    pkt = frames.next_packet()
    assert pkt.payload == b"abcdefghij"
    reader.feed(pkt.payload)
    assert frames.take_skimmed(reader.skim) == packet(eof(), 4) and reader.phase is Phase.ROWS


@pytest.mark.parametrize("reader", [
    ResponseReader(c.COM_QUERY, BASE),  # decoding metadata
    ResponseReader(c.COM_STMT_EXECUTE, BASE, cursor=True, decode_metadata=False),  # the EOF may open a cursor
    ResponseReader(c.COM_STMT_PREPARE, BASE, decode_metadata=False),
    ResponseReader(c.COM_CHANGE_USER, BASE, decode_metadata=False),
], ids=["decode-metadata", "cursor", "prepare", "auth"])
def test_skim_takes_nothing_where_feed_decodes(reader):
    frames = FrameReader()
    frames.feed(packet(u8(1), 1) + packet(column_def(b"a"), 2) + packet(eof(), 3))
    assert frames.take_skimmed(reader.skim) == b"" and reader.packets_seen == 0


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
    column = b"\x03def\x00\x00\x00\x01a\x00\x0c\x21\x00\x01\x00\x00\x00\xfd\x00\x00\x00\x00\x00"
    assert reader.feed(column).event is None
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


_ROW_LENGTHS = st.sampled_from([1, 2, 5, 123, 255, 256, 300, 511])


@settings(max_examples=int(os.environ.get("DBMUX_FUZZ_EXAMPLES", "300")), deadline=None)
@given(
    runs=st.lists(st.tuples(_ROW_LENGTHS, st.integers(1, 40), st.sampled_from([0x00, 0x01, 0xFB, 0xFD, 0xFE, 0xFF])),
                  min_size=1, max_size=6),
    terminator=st.sampled_from([eof(0, AC), eof(0, MORE), b"\xff" + u16(1317) + b"#70100x", b""]),
    cut=st.integers(0, 64),
    max_payload=st.sampled_from([300, 1 << 30]),
)  # fmt: skip
def test_bulk_row_hopping_counts_exactly_like_walking(runs, terminator, cut, max_payload):
    """Runs of same-length rows are hopped over in bulk (ResponseReader.skim): the reader must end in
    the state feeding packet by packet gives, whatever the lengths, first bytes, terminator or cut."""
    payloads = [u8(1), column_def(b"c"), eof()]
    for length, count, first in runs:
        payloads += [bytes((first,)) + b"r" * (length - 1)] * count
    if terminator:
        payloads.append(terminator)
    wire = b"".join(packet(p, (i + 1) & 0xFF) for i, p in enumerate(payloads))
    wire = wire[:len(wire) - cut] if cut else wire
    outcomes = []
    for skim in (False, True):
        reader = ResponseReader(c.COM_QUERY, BASE, decode_metadata=False)
        frames = FrameReader(max_payload_bytes=max_payload)
        frames.feed(wire)
        try:
            feed_buffered(reader, frames, skim)
        except ProtocolError as exc:
            outcomes.append((type(exc), str(exc)))
            continue
        outcomes.append((_state(reader), frames.buffered_bytes))
    assert outcomes[0] == outcomes[1]


def test_bulk_row_hopping_takes_a_uniform_result_set_in_one_go():
    rows = [b"\x00\x00\x78" + b"c" * 120] * 100
    payloads = [b"\x01\x00", eof()] + rows + [eof(0, AC)]
    wire = b"".join(packet(p, (i + 1) & 0xFF) for i, p in enumerate(payloads))
    reader = ResponseReader(c.COM_STMT_EXECUTE, BASE, c.MARIADB_CLIENT_CACHE_METADATA, decode_metadata=False)
    frames = FrameReader()
    frames.feed(wire)
    assert frames.take_skimmed(reader.skim) == wire
    assert reader.complete and reader.packets_seen == len(payloads)
