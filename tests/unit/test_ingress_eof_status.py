"""What the client gets of the primary's OK and EOF packets when the ingress tracks more session state than
the client (issue 20 #8): the bytes the primary would have sent the client itself.

The primary's rules, seen on MariaDB 10.11 (tests/integration/test_ingress_transcript.py compares them
byte by byte): an OK packet's info text is length-encoded with or without CLIENT_SESSION_TRACK; an OK
packet carries no SERVER_SESSION_STATE_CHANGED flag for a client without session tracking; EOF packets
carry the flag from the first change of a statement its trackers follow on -- also for a client without
session tracking -- and the ingress also tracks ``last_gtid`` and ``sql_mode``.
"""

from __future__ import annotations

import asyncio

from dbmux.ingress import response_relay
from dbmux.ingress.protocol import constants as c

from .protocol.builders import column_def, eof, lstr, ok, packet, session_sysvar, text_row, u8
from .test_ingress_relay import AC, CAPS, CHANGED, Harness, gtid_ok, query

MORE = c.SERVER_MORE_RESULTS_EXISTS
PLAIN = CAPS & ~c.CLIENT_SESSION_TRACK
MATCHED = b"Rows matched: 1  Changed: 1  Warnings: 0"
TIME_ZONE = session_sysvar(b"time_zone", b"+02:00")


async def _harness(client_caps: int = PLAIN) -> Harness:
    h = Harness(durability="async")
    h.conn.ctx.client_caps = client_caps  # the primary's side keeps session tracking (CAPS)
    return await h.start()


def _call_response(status: int, final: bytes) -> list[bytes]:
    """A CALL's answer: one result set (its EOF packets with ``status``), then the CALL's OK."""
    return [u8(1), column_def(b"y"), eof(0, status), text_row(b"2"), eof(0, status), final]


def _wire(payloads: list[bytes]) -> bytes:
    return b"".join(packet(p, i + 1) for i, p in enumerate(payloads))


async def test_info_keeps_its_length_prefix_for_a_client_without_session_tracking():
    h = await _harness()
    h.send(query(b"UPDATE t SET v = v + 1 WHERE id = 1"))
    h.answer(ok(1, 0, AC | CHANGED, rest=lstr(MATCHED) + lstr(session_sysvar(b"last_gtid", b"0-1-10"))))
    assert h.to_client() == packet(ok(1, 0, AC, rest=lstr(MATCHED)), 1)  # b"(Rows matched: ..." as sent directly


async def test_info_and_kept_state_for_a_client_with_session_tracking():
    h = await _harness(CAPS)
    h.send(query(b"UPDATE t SET v = v + 1 WHERE id = 1"))
    h.answer(ok(1, 0, AC | CHANGED, rest=lstr(MATCHED) + lstr(session_sysvar(b"last_gtid", b"0-1-10"))))
    assert h.to_client() == packet(ok(1, 0, AC, rest=lstr(MATCHED)), 1)
    h.send(query(b"SET time_zone = '+02:00'"))
    h.answer(ok(0, 0, AC | CHANGED, rest=lstr(b"") + lstr(TIME_ZONE)))
    assert h.to_client() == packet(ok(0, 0, AC | CHANGED, rest=lstr(b"") + lstr(TIME_ZONE)), 1)


async def test_eof_flag_owed_to_the_ingress_gtid_alone_is_cleared():
    """A procedure that writes, then answers with rows (a prepared CALL's OUT parameters are the same)."""
    for client_caps in (PLAIN, CAPS):
        h = await _harness(client_caps)
        h.send(query(b"CALL pws()"))
        h.answer(*_call_response(AC | MORE | CHANGED, gtid_ok(b"0-1-10")))
        assert h.to_client() == _wire(_call_response(AC | MORE, ok(0, 0, AC)))


async def test_eof_flag_owed_to_a_change_the_client_tracks_is_kept():
    for client_caps, final in ((PLAIN, ok(0, 0, AC)), (CAPS, ok(0, 0, AC | CHANGED, rest=lstr(b"") + lstr(TIME_ZONE)))):
        h = await _harness(client_caps)
        h.send(query(b"CALL ps()"))
        h.answer(*_call_response(AC | MORE | CHANGED, ok(0, 0, AC | CHANGED, rest=lstr(b"") + lstr(TIME_ZONE))))
        assert h.to_client() == _wire(_call_response(AC | MORE | CHANGED, final))


async def test_both_kinds_of_change_keep_the_flag():
    h = await _harness()
    h.send(query(b"CALL psws()"))
    h.answer(*_call_response(AC | MORE | CHANGED, gtid_ok(b"0-1-10", AC, TIME_ZONE)))
    assert h.to_client() == _wire(_call_response(AC | MORE | CHANGED, ok(0, 0, AC)))


async def test_packets_after_a_flagged_eof_wait_for_the_statements_ok():
    h = await _harness()
    h.send(query(b"CALL pws()"))
    payloads = _call_response(AC | MORE | CHANGED, gtid_ok(b"0-1-10"))
    h.answer(*payloads[:5])
    assert h.to_client() == _wire(payloads[:2])  # up to the flagged EOF
    h.answer(payloads[5], first_seq=6)
    assert h.to_client() == _wire(_call_response(AC | MORE, ok(0, 0, AC)))[len(_wire(payloads[:2])):]
    assert not h.relay.busy


async def test_eof_packets_without_the_flag_go_at_once():
    h = await _harness()
    h.send(query(b"CALL p()"))
    payloads = _call_response(AC | MORE, ok(0, 0, AC))
    h.answer(*payloads[:5])
    assert h.to_client() == _wire(payloads[:5])


async def test_a_response_ending_without_ok_clears_the_flag():
    h = await _harness()
    h.send(query(b"SELECT f()"))
    payloads = [u8(1), column_def(b"f"), eof(0, AC | CHANGED), text_row(b"1"), eof(0, AC | CHANGED)]
    h.answer(*payloads)
    assert h.to_client() == _wire([u8(1), column_def(b"f"), eof(0, AC), text_row(b"1"), eof(0, AC)])
    assert not h.relay.busy


async def test_a_hold_past_its_bound_is_sent_with_the_flag_cleared(monkeypatch):
    monkeypatch.setattr(response_relay, "HOLD_MAX_BYTES", 64)
    h = await _harness()
    h.send(query(b"CALL big()"))
    rows = [text_row(b"x" * 40)] * 4
    payloads = [u8(1), column_def(b"y"), eof(0, AC | MORE | CHANGED), *rows, eof(0, AC | MORE | CHANGED)]
    h.answer(*payloads)
    sent = h.to_client()  # not held to the end: the bound was passed
    expected = _wire([u8(1), column_def(b"y"), eof(0, AC | MORE), *rows])
    assert sent.startswith(expected)
    h.answer(ok(0, 0, AC | CHANGED, rest=lstr(b"") + lstr(TIME_ZONE)), first_seq=len(payloads) + 1)
    await asyncio.sleep(0)
    assert not h.relay.busy
