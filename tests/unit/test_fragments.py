"""dbmux.core.fragments: big encoded events split into Kafka-sized messages and put together again."""

from __future__ import annotations

import logging
import random

import pytest

from dbmux.core.codec import decode_event, encode_event
from dbmux.core.events import ChangeEvent, EnvelopeError, RowChange
from dbmux.core.fragments import HEADER_ROOM, Reassembler, is_fragment, split
from dbmux.core.gtid import Gtid


def _event(seq: int, size: int, source: str = "binlog") -> ChangeEvent:
    blob = random.Random(seq).randbytes(size)
    return ChangeEvent(gtid=Gtid.parse(f"0-1-{seq}"), source=source, ts_ms=1,
                       rows=(RowChange("t", "d", "insert", after={"id": seq, "b": blob}),))


def _messages(ev: ChangeEvent, max_bytes: int) -> list[bytes]:
    return split(encode_event(ev), max_bytes, str(ev.gtid), ev.source)


@pytest.mark.parametrize("size, max_bytes, n", [
    (100, 4096, 1),          # fits: the plain encoding, not a fragment
    (5000, 4096, 2),         # base64 grows it to ~6.8 kB: one full chunk and the rest
    (100_000, 1024, 174),
])
def test_split_sizes_and_round_trip(size, max_bytes, n):
    ev = _event(1, size)
    parts = _messages(ev, max_bytes)
    assert len(parts) == n
    assert all(len(p) <= max_bytes for p in parts)
    assert all(is_fragment(p) for p in parts) == (n > 1)
    r: Reassembler[int] = Reassembler()
    got = [r.add(p, 0, 10 + i) for i, p in enumerate(parts)]
    assert got[:-1] == [None] * (n - 1)
    value, offset = got[-1]
    assert offset == 10 and decode_event(value) == ev  # the offset of the first fragment
    assert r.pending_offsets() == {} and r.assembled == (1 if n > 1 else 0)


def test_split_refuses_a_size_with_no_room():
    with pytest.raises(EnvelopeError, match="no room"):
        split(b"x" * 1000, HEADER_ROOM, "0-1-1", "binlog")


def test_interleaved_copies_and_partitions_put_together_separately():
    a, b, c = _event(5, 3000, "ingress"), _event(5, 3000, "binlog"), _event(6, 10)
    pa, pb = _messages(a, 1024), _messages(b, 1024)
    pc = _messages(c, 1024)
    stream = [(pa[0], 0), (pb[0], 0), (pc[0], 0), *((p, 0) for p in pa[1:]), *((p, 0) for p in pb[1:])]
    r: Reassembler[int] = Reassembler()
    out = []
    pending = []
    for off, (msg, key) in enumerate(stream):
        got = r.add(msg, key, off)
        if got is not None:
            out.append((decode_event(got[0]).source, got[1]))
        pending.append(r.pending_offsets().get(0))
    assert out == [("binlog", 2), ("ingress", 0), ("binlog", 1)]  # c plain at 2; a from 0; b from 1
    # the earliest unfinished set's first offset, until each completes
    n_a = len(pa)
    assert pending == [0, 0, 0, *[0] * (n_a - 2), 1, *[1] * (len(pb) - 2), None]


def test_read_again_after_a_seek_back_is_idempotent():
    ev = _event(7, 4000)
    parts = _messages(ev, 1024)
    r: Reassembler[str] = Reassembler()
    for i in range(3):
        assert r.add(parts[i], "p", 100 + i) is None
    for i in range(3):  # seek back to 100: the same fragments again
        assert r.add(parts[i], "p", 100 + i) is None
    done = [r.add(parts[i], "p", 100 + i) for i in range(3, len(parts))]
    assert done[-1] is not None and done[-1][1] == 100 and decode_event(done[-1][0]) == ev
    # read once more from the start (an applied event re-read): whole again, the orderer skips it
    again = [r.add(p, "p", 100 + i) for i, p in enumerate(parts)]
    assert again[-1] is not None and again[-1][1] == 100


def test_started_inside_a_set_is_counted_broken_not_assembled(caplog):
    parts = _messages(_event(8, 4000), 1024)
    r: Reassembler[int] = Reassembler("t")
    with caplog.at_level(logging.WARNING, logger="dbmux.core.fragments"):
        assert [r.add(p, 0, i) for i, p in enumerate(parts[2:])] == [None] * (len(parts) - 2)
    assert r.broken == 1 and r.pending_offsets() == {}  # one set, one warning: not one per fragment
    assert "0-1-8" in caplog.text and "waits for another copy" in caplog.text
    assert len(caplog.records) == 1


def test_a_missing_fragment_breaks_the_set():
    parts = _messages(_event(9, 4000), 1024)
    r: Reassembler[int] = Reassembler()
    assert r.add(parts[0], 0, 0) is None and r.add(parts[2], 0, 1) is None
    assert r.broken == 1 and r.pending_offsets() == {}


def test_sent_again_by_the_same_producer_replaces_the_unfinished_set():
    ev = _event(10, 4000)
    first, second = _messages(ev, 1024), _messages(ev, 1024)  # two sendings: two ids
    r: Reassembler[int] = Reassembler()
    r.add(first[0], 0, 0)
    r.add(first[1], 0, 1)  # then the send failed; the producer sends the event again
    got = [r.add(p, 0, 2 + i) for i, p in enumerate(second)]
    assert got[-1] is not None and got[-1][1] == 2 and decode_event(got[-1][0]) == ev
    assert r.broken == 1 and r.pending_offsets() == {}


def test_corrupt_whole_is_an_envelope_error():
    parts = _messages(_event(11, 4000), 1024)
    bad = parts[1][:-1] + bytes([parts[1][-1] ^ 1])
    r: Reassembler[int] = Reassembler()
    with pytest.raises(EnvelopeError, match="CRC"):
        for i, p in enumerate([parts[0], bad, *parts[2:]]):
            r.add(p, 0, i)


@pytest.mark.parametrize("msg, problem", [
    (b'{"frag":1,"id":"x"}', "newline"),
    (b'{"frag":nope\n', "not JSON"),
    (b'{"frag":1,"id":"x","gtid":"0-1-1","source":"binlog","i":0,"n":2,"size":3}\nabc', "'crc'"),
    (b'{"frag":1,"id":"x","gtid":"0-1-1","source":"binlog","i":2,"n":2,"size":3,"crc":1}\nabc', "outside"),
])
def test_unreadable_fragment_headers(msg, problem):
    with pytest.raises(EnvelopeError, match=problem):
        Reassembler[int]().add(msg, 0, 0)


def test_forget_drops_sets_of_applied_gtids():
    r: Reassembler[int] = Reassembler()
    r.add(_messages(_event(12, 4000), 1024)[0], 0, 50)
    r.add(_messages(_event(13, 4000), 1024)[0], 1, 60)
    assert r.pending_offsets() == {0: 50, 1: 60} and r.pending_bytes > 0
    assert r.forget(lambda g: g == "0-1-12") == 1
    assert r.pending_offsets() == {1: 60}


def test_fragments_of_a_forgotten_set_are_dropped_quietly(caplog):
    """Its GTID was applied from the other copy: the rest of the set is garbage, not a broken set."""
    parts = _messages(_event(14, 4000), 1024)
    r: Reassembler[int] = Reassembler()
    r.add(parts[0], 0, 0)
    assert r.forget(lambda g: g == "0-1-14") == 1
    with caplog.at_level(logging.WARNING, logger="dbmux.core.fragments"):
        assert [r.add(p, 0, i) for i, p in enumerate(parts[1:], 1)] == [None] * (len(parts) - 1)
    assert r.broken == 0 and r.pending_offsets() == {} and caplog.records == []
