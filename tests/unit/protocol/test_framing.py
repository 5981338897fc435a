import pytest

from dbmux.ingress.protocol.errors import PacketTooLarge, SequenceError
from dbmux.ingress.protocol.framing import FrameReader, frame, frame_count, next_seq_after

from .builders import TRAILING, chunkings, packet, u8, u24

MAX = 0xFFFFFF

# (wire, [(first_seq, last_seq, payload)]) built by hand
FRAMING_TABLE = [
    pytest.param(packet(b"\x0e", 0), [(0, 0, b"\x0e")], id="ping"),
    pytest.param(packet(b"", 3), [(3, 3, b"")], id="empty-payload"),
    pytest.param(packet(b"abc", 1) + packet(b"de", 2), [(1, 1, b"abc"), (2, 2, b"de")], id="two-packets"),
    pytest.param(packet(b"x" * 300, 255), [(255, 255, b"x" * 300)], id="seq-255"),
]


@pytest.mark.parametrize(("wire", "expected"), FRAMING_TABLE)
def test_frame_reader_table(wire, expected):
    for mode, chunks in chunkings(wire):
        reader = FrameReader()
        got = []
        for chunk in chunks:
            reader.feed(chunk)
            while (p := reader.next_payload()) is not None:
                got.append(tuple(p))
        if mode == "trailing":
            assert got[-1] == (7, 7, TRAILING[4:])
            got = got[:-1]
        assert got == expected, mode
        assert reader.buffered_bytes == 0


@pytest.mark.parametrize(("wire", "expected"), FRAMING_TABLE)
def test_frame_is_inverse_of_reader(wire, expected):
    assert b"".join(frame(payload, first) for first, _, payload in expected) == wire


def test_partial_header_and_body_return_none():
    reader = FrameReader()
    reader.feed(b"\x03\x00")
    assert reader.next_payload() is None
    reader.feed(b"\x00\x00ab")
    assert reader.next_payload() is None
    assert reader.in_partial_payload
    reader.feed(b"c")
    assert reader.next_payload() == (0, 0, b"abc")
    assert not reader.in_partial_payload


def test_payload_of_exactly_16mib_minus_one_needs_empty_terminator():
    payload = bytes(range(256)) * (MAX // 256) + bytes(range(MAX % 256))
    assert len(payload) == MAX
    wire = frame(payload, 0)
    assert wire[:4] == u24(MAX) + u8(0)
    assert wire[-4:] == b"\x00\x00\x00\x01"  # the empty continuation frame, seq 1
    reader = FrameReader()
    reader.feed(wire[:-4])
    assert reader.next_payload() is None  # a full-size frame alone is not the end
    reader.feed(wire[-4:] + TRAILING)
    assert reader.next_payload() == (0, 1, payload)
    assert reader.next_payload() == (7, 7, TRAILING[4:])


def test_payload_larger_than_16mib_spans_frames_with_wrapping_seq():
    payload = b"a" * MAX + b"b" * MAX + b"tail"
    wire = frame(payload, 254)
    assert frame_count(len(payload)) == 3
    assert next_seq_after(len(payload), 254) == 1
    assert [wire[3], wire[4 + MAX + 3], wire[2 * (4 + MAX) + 3]] == [254, 255, 0]
    reader = FrameReader()
    for i in range(0, len(wire), 1 << 20):  # in 1 MiB chunks
        reader.feed(wire[i : i + (1 << 20)])
    assert reader.next_payload() == (254, 0, payload)


def test_lowered_chunk_size_continuation():
    wire = frame(b"0123456789", 5, chunk_bytes=4)
    assert wire == packet(b"0123", 5) + packet(b"4567", 6) + packet(b"89", 7)
    for _mode, chunks in chunkings(wire):
        reader = FrameReader(chunk_bytes=4)
        got = []
        for chunk in chunks:
            reader.feed(chunk)
            while (p := reader.next_payload()) is not None:
                got.append(tuple(p))
        assert got[0] == (5, 7, b"0123456789")


def test_wrong_continuation_sequence_raises():
    reader = FrameReader(chunk_bytes=4)
    reader.feed(packet(b"0123", 5) + packet(b"45", 9))
    with pytest.raises(SequenceError) as exc_info:
        reader.next_payload()
    assert (exc_info.value.expected, exc_info.value.got) == (6, 9)


def test_expected_first_sequence_is_checked_when_given():
    reader = FrameReader()
    reader.feed(packet(b"\x03select 1", 2))
    with pytest.raises(SequenceError):
        reader.next_payload(expected_seq=0)
    reader = FrameReader()
    reader.feed(packet(b"\x03select 1", 2))
    assert reader.next_payload(expected_seq=2).payload == b"\x03select 1"


def test_oversize_raises_from_header_before_buffering():
    reader = FrameReader(max_payload_bytes=100)
    reader.feed(u24(101) + u8(0))  # only the header: the body never arrives
    with pytest.raises(PacketTooLarge) as exc_info:
        reader.next_payload()
    assert exc_info.value.max_payload_bytes == 100


def test_oversize_counts_continuations():
    reader = FrameReader(max_payload_bytes=10, chunk_bytes=4)
    reader.feed(packet(b"0123", 0) + packet(b"4567", 1) + u24(3) + u8(2))
    with pytest.raises(PacketTooLarge):
        reader.next_payload()


def test_exactly_max_payload_is_allowed():
    reader = FrameReader(max_payload_bytes=10)
    reader.feed(packet(b"x" * 10))
    assert reader.next_payload().payload == b"x" * 10


def test_take_buffered_returns_unframed_bytes():
    reader = FrameReader()
    reader.feed(packet(b"ssl-request", 1) + b"\x16\x03\x01tls-client-hello")
    assert reader.next_payload().payload == b"ssl-request"
    assert reader.take_buffered() == b"\x16\x03\x01tls-client-hello"
    assert reader.buffered_bytes == 0


# (chunk size, payload length): multi-frame payloads (a payload that is a multiple of the chunk size
# ends with an empty frame)
CONTINUATION_TABLE = [
    pytest.param(4, 10, id="3-frames"),
    pytest.param(4, 8, id="empty-last-frame"),
    pytest.param(4, 4 * 70 + 1, id="71-frames-seq-wraps"),
    pytest.param(16, 16 * 300 + 5, id="301-frames"),
]


@pytest.mark.parametrize(("chunk", "size"), CONTINUATION_TABLE)
def test_continuation_frames_are_read_once_however_the_bytes_arrive(chunk, size):
    """Structural (linear reassembly): each frame header of a multi-frame payload is read once, whether
    the frames arrive whole or byte by byte, and the packet's raw bytes are the frames as received."""
    payload = bytes(i & 0xFF for i in range(size))
    wire = frame(payload, 250, chunk_bytes=chunk)
    frames = frame_count(size, chunk)
    trailing = packet(b"\x0e", 9)  # (TRAILING is longer than these chunk sizes)
    modes = [("whole", [wire]), ("byte_by_byte", [wire[i : i + 1] for i in range(len(wire))]),
             ("trailing", [wire + trailing])]
    for mode, chunks in modes:
        reader = FrameReader(chunk_bytes=chunk)
        got = []
        for piece in chunks:
            reader.feed(piece)
            while (p := reader.next_packet()) is not None:
                got.append(p)
        assert reader.frames_read == frames, mode
        assert (got[0].first_seq, got[0].last_seq) == (250, (250 + frames - 1) & 0xFF), mode
        assert got[0].payload == payload and got[0].raw == wire, mode
        assert [p.raw for p in got[1:]] == ([trailing] if mode == "trailing" else []), mode
        assert reader.buffered_bytes == 0


def test_a_partial_multi_frame_payload_is_buffered_and_counted():
    wire = frame(b"0123456789", 5, chunk_bytes=4)
    reader = FrameReader(chunk_bytes=4)
    reader.feed(wire[:-1])
    assert reader.next_packet() is None and reader.in_partial_payload
    assert reader.buffered_bytes == len(wire) - 1
    assert reader.take_skimmed(lambda buf, pos, end, limit: end) == b""  # nothing taken mid-payload
    reader.feed(wire[-1:])
    assert reader.next_packet().payload == b"0123456789" and not reader.in_partial_payload
