"""dbmux.core.parts: big events cut at row and statement boundaries into parts decodable one at a time."""

from __future__ import annotations

import pytest

from dbmux.core.codec import decode_event, encode_event
from dbmux.core.events import ChangeEvent, ColumnType, EnvelopeError, RowChange, SessionContext, Statement, TableSchema
from dbmux.core.fragments import Reassembler, is_fragment, split_event
from dbmux.core.gtid import Gtid
from dbmux.core.parts import Spooled, cut, decode_part, header, is_part, merge, rewritten

SCHEMAS = {t: TableSchema(db="d", table=t, columns=("id", "v"),
                          types=(ColumnType.parse("int"), ColumnType.parse("varchar")), primary_key=("id",))
           for t in ("a", "b")}


def _rows_event(n: int, seq: int = 7) -> ChangeEvent:
    rows = tuple(RowChange("a" if i % 3 else "b", "d", "insert", after={"id": i, "v": f"value {i:08d}"})
                 for i in range(n))
    return ChangeEvent(gtid=Gtid.parse(f"0-1-{seq}"), source="binlog", ts_ms=5, db="d", rows=rows,
                       tables=tuple(SCHEMAS.values()))


def _statements_event(n: int, *, unsafe_at: int | None = None) -> ChangeEvent:
    sts = tuple(Statement(f"INSERT INTO t VALUES ({i}, '{'x' * 50}')", insert_id=i, unsafe=i == unsafe_at)
                for i in range(n))
    return ChangeEvent(gtid=Gtid.parse("0-1-8"), source="ingress", ts_ms=6, db="d", statements=sts,
                       session=SessionContext(user="app", db="d", sql_mode="STRICT_ALL_TABLES", time_zone="+01:00"))


def _parts(ev: ChangeEvent, max_bytes: int) -> list[bytes]:
    out = cut(ev, encode_event(ev), max_bytes)
    assert out is not None
    return out


@pytest.mark.parametrize("event, max_bytes", [
    (_rows_event(5_000), 16 * 1024),
    (_rows_event(5_000), 200 * 1024),
    (_statements_event(2_000), 8 * 1024),
])
def test_parts_are_bounded_decodable_alone_and_put_together_give_the_event(event, max_bytes):
    msgs = _parts(event, max_bytes)
    assert len(msgs) >= 2 and all(len(m) <= max_bytes for m in msgs) and all(is_part(m) for m in msgs)
    events = []
    for i, m in enumerate(msgs):
        head, start = header(m)
        assert (head["i"], head["n"], head["gtid"], head["source"]) == (i, len(msgs), str(event.gtid), event.source)
        part = decode_part(m, head, start)
        assert (part.gtid, part.source, part.ts_ms, part.session, part.db) == (event.gtid, event.source,
                                                                               event.ts_ms, event.session, event.db)
        # each part carries the schemas of exactly the tables its rows change
        assert {(t.db, t.table) for t in part.tables} == {(r.db, r.table) for r in part.rows}
        events.append(part)
    assert merge(events) == event
    whole = Reassembler[int]()  # a consumer that puts them together (tools)
    got = [whole.add(m, 0, 100 + i) for i, m in enumerate(msgs)]
    assert got[:-1] == [None] * (len(msgs) - 1)
    value, offset = got[-1]
    assert offset == 100 and decode_event(value) == event


def test_unsafe_anywhere_in_the_transaction_is_in_every_part_header():
    msgs = _parts(_statements_event(2_000, unsafe_at=1_999), 8 * 1024)
    assert all(header(m)[0]["unsafe"] for m in msgs)
    assert not any(header(m)[0]["unsafe"] for m in _parts(_statements_event(2_000), 8 * 1024))


@pytest.mark.parametrize("event, why", [
    (ChangeEvent(gtid=Gtid.parse("0-1-1"), source="ingress", ts_ms=1,
                 statements=tuple(Statement(f"ALTER TABLE t{i} ADD c INT", kind="ddl") for i in range(900))), "DDL"),
    (ChangeEvent(gtid=Gtid.parse("0-1-1"), source="binlog", ts_ms=1,
                 rows=_rows_event(900).rows, statements=(Statement("DELETE FROM t", unsafe=True),)), "both forms"),
    (ChangeEvent(gtid=Gtid.parse("0-1-1"), source="binlog", ts_ms=1,
                 rows=(RowChange("a", "d", "insert", after={"id": 1, "v": "x" * 50_000}),)), "one row too big"),
])
def test_what_cannot_be_cut_travels_as_byte_fragments(event, why):
    payload = encode_event(event)
    assert cut(event, payload, 16 * 1024) is None, why
    msgs = split_event(event, payload, 16 * 1024)
    assert len(msgs) > 1 and all(is_fragment(m) for m in msgs)


def test_a_spooling_reassembler_keeps_parts_on_disk_and_gives_them_back_one_at_a_time():
    event = _rows_event(5_000)
    msgs = _parts(event, 16 * 1024)
    other = encode_event(_rows_event(1, seq=9))
    r: Reassembler[int] = Reassembler(spool=True)
    out = []
    for i, m in enumerate(msgs):
        out.append(r.take(m, 0, 2 * i))
        assert r.take(other, 0, 2 * i + 1) == (other, 2 * i + 1)  # interleaved: through at once
        assert r.pending_bytes == 0  # nothing held in memory
    assert out[:-1] == [None] * (len(msgs) - 1)
    spooled, offset = out[-1]
    assert isinstance(spooled, Spooled) and offset == 0 and spooled.n == len(msgs)
    assert list(spooled.messages()) == msgs
    assert merge(list(spooled.events())) == event
    spooled.close()


def test_a_missing_part_breaks_the_set_and_a_corrupt_part_is_an_envelope_error():
    msgs = _parts(_rows_event(5_000), 16 * 1024)
    r: Reassembler[int] = Reassembler(spool=True)
    r.take(msgs[0], 0, 0)
    assert r.take(msgs[2], 0, 1) is None and r.broken == 1
    assert r.pending_offsets() == {}  # a broken set holds no position back
    head, start = header(msgs[1])
    corrupt = msgs[1][:start] + msgs[1][start:].replace(b"value", b"VALUE", 1)
    with pytest.raises(EnvelopeError, match="CRC"):
        decode_part(corrupt, head, start)
    with pytest.raises(EnvelopeError, match="form"):
        header(b'{"part":1,"id":"x","gtid":"0-1-1","source":"binlog","i":0,"n":2,"form":"x","unsafe":false,'
               b'"crc":0}\n{}')


def test_a_part_rewritten_keeps_its_place_and_checks():
    msgs = _parts(_statements_event(2_000), 8 * 1024)
    changed = rewritten(msgs[1], lambda ev: ev)
    assert header(changed)[0]["i"] == 1 and decode_part(changed, *header(changed)) == decode_part(msgs[1],
                                                                                                   *header(msgs[1]))


def test_a_row_bigger_than_a_message_is_a_part_of_its_own_in_fragments():
    rows = (*_rows_event(2_000).rows, RowChange("a", "d", "insert", after={"id": -1, "v": "x" * 60_000}),
            *_rows_event(2_000, seq=9).rows)
    event = ChangeEvent(gtid=Gtid.parse("0-1-7"), source="binlog", ts_ms=5, db="d", rows=rows,
                        tables=tuple(SCHEMAS.values()))
    msgs = split_event(event, encode_event(event), 16 * 1024)
    assert all(len(m) <= 16 * 1024 for m in msgs)
    assert any(is_fragment(m) for m in msgs) and any(is_part(m) for m in msgs)
    r: Reassembler[int] = Reassembler(spool=True)
    out, held = [], 0
    for i, m in enumerate(msgs):
        out.append(r.take(m, 0, 50 + i))
        held = max(held, r.pending_bytes)
        assert r.pending_offsets() in ({}, {0: 50})  # a position is never stored inside the transaction
    assert out[:-1] == [None] * (len(msgs) - 1)
    spooled, offset = out[-1]
    assert offset == 50 and merge(list(spooled.events())) == event
    assert 16 * 1024 < held < 60_000  # in memory at most: fragments of the one big row's part
    whole = Reassembler[int]()
    assert decode_event([whole.add(m, 0, i) for i, m in enumerate(msgs)][-1][0]) == event
