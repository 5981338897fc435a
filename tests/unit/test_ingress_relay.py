"""CommandRelay, the command phase (push mode), against a scripted primary: what the client and the primary
see byte for byte, when a commit's OK may reach the client, what is published, how the connection's state
machine moves, and how the session ends.

The handshake is skipped: each test builds a Connection as it is after authentication (state COMMAND)
and runs ``CommandRelay.serve()`` (the event-driven command phase) on two PacketStreams with fake transports.
"""

from __future__ import annotations

import asyncio

import pytest

from dbmux.core.config import parse_config
from dbmux.ingress.connection import Connection
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.errors import MalformedPacket, PacketTooLarge
from dbmux.ingress.protocol.framing import FrameReader, frame
from dbmux.ingress.protocol.state import ConnectionState, ConnectionStateMachine
from dbmux.ingress.relay import CommandRelay
from dbmux.ingress.wire import BUFFER_LIMIT_BYTES, PacketStream, PeerClosed

from .protocol.builders import column_def, eof, lstr, ok, packet, session_sysvar, text_row, u8, u16, u32
from .test_ingress_connection import SETUP_COLUMNS
from .test_ingress_wire import FakeTransport

CAPS = (c.CLIENT_PROTOCOL_41 | c.CLIENT_TRANSACTIONS | c.CLIENT_MULTI_RESULTS | c.CLIENT_MULTI_STATEMENTS
        | c.CLIENT_SESSION_TRACK | c.CLIENT_PLUGIN_AUTH | c.CLIENT_SECURE_CONNECTION)
AC = c.SERVER_STATUS_AUTOCOMMIT
IN_TRANS = c.SERVER_STATUS_IN_TRANS | AC
CHANGED = c.SERVER_SESSION_STATE_CHANGED


class FakePublisher:
    def __init__(self) -> None:
        self.events = []
        self.answers: list[asyncio.Future] = []

    def publish_within(self, event, timeout_s):
        self.events.append(event)
        fut = asyncio.get_running_loop().create_future()
        self.answers.append(fut)
        return fut


class Harness:
    def __init__(self, durability: str = "sync", max_packet_bytes: int = 1 << 20) -> None:
        config = parse_config({"primary": {"url": "mysql://app:pw@127.0.0.1:3306"},
                               "ingress": {"durability": durability, "max_packet_bytes": max_packet_bytes}}, env={})
        self.client = PacketStream(max_payload_bytes=max_packet_bytes)
        self.upstream = PacketStream(max_payload_bytes=1 << 30)
        self.ct, self.ut = FakeTransport(), FakeTransport()
        self.client.connection_made(self.ct)
        self.upstream.connection_made(self.ut)
        self.publisher = FakePublisher()
        conn = Connection(config.primary, self.client, "127.0.0.1:40000")
        conn.upstream = self.upstream
        conn.machine = ConnectionStateMachine(ConnectionState.COMMAND)
        self.client.partner, self.upstream.partner = self.upstream, self.client
        ctx = conn.ctx
        ctx.client_caps = ctx.upstream_caps = CAPS
        ctx.user, ctx.db, ctx.sql_mode, ctx.time_zone = "app", "shop", "STRICT_TRANS_TABLES", "+00:00"
        conn.last_gtid = "0-1-9"
        self.conn = conn
        self.relay = CommandRelay(conn, self.publisher, config.ingress)  # type: ignore[arg-type]
        self.task: asyncio.Future | None = None

    async def start(self) -> Harness:
        self.task = asyncio.ensure_future(self.relay.serve())
        await asyncio.sleep(0)
        return self

    def send(self, *packets: bytes) -> None:
        """The client sends these frames, in one receive."""
        self.client.data_received(b"".join(packets))

    def answer(self, *payloads: bytes, first_seq: int = 1) -> bytes:
        """The primary answers with these payloads (sequence ids from ``first_seq``), in one receive."""
        wire = b"".join(packet(p, first_seq + i) for i, p in enumerate(payloads))
        self.upstream.data_received(wire)
        return wire

    def to_client(self) -> bytes:
        data = self.ct.written
        self.ct.writes.clear()
        return data

    def to_primary(self) -> bytes:
        data = self.ut.written
        self.ut.writes.clear()
        return data


def query(sql: bytes) -> bytes:
    return packet(b"\x03" + sql, 0)


def gtid_ok(gtid: bytes, status: int = AC, *more_state: bytes) -> bytes:
    state = session_sysvar(b"last_gtid", gtid) + b"".join(more_state)
    return ok(0, 0, status | CHANGED, rest=lstr(b"") + lstr(state))


async def test_result_set_is_relayed_unchanged_with_one_write_per_receive():
    h = await Harness().start()
    h.send(query(b"SELECT a FROM t"))
    assert h.to_primary() == query(b"SELECT a FROM t")
    rows = [u8(1), column_def(b"a"), eof(0, AC), text_row(b"1"), text_row(b"22"), eof(0, AC)]
    wire = b"".join(packet(p, i + 1) for i, p in enumerate(rows))
    h.upstream.data_received(wire[:30])
    h.upstream.data_received(wire[30:])
    assert len(h.ct.writes) == 2 and h.ct.writes[0] == packet(u8(1), 1)  # what was complete, then the rest
    assert h.to_client() == wire
    assert not h.relay.busy and h.publisher.events == []


async def test_commit_ok_waits_for_kafka_and_loses_the_injected_gtid():
    h = await Harness().start()
    h.send(query(b"BEGIN"))
    h.answer(ok(0, 0, IN_TRANS))
    h.send(query(b"INSERT INTO t (a) VALUES (1)"))
    h.answer(ok(1, 5, IN_TRANS))
    h.send(query(b"COMMIT"))
    h.to_client()
    h.answer(gtid_ok(b"0-1-10"))
    assert h.to_client() == b""  # held until Kafka acknowledged
    (event,) = h.publisher.events
    assert str(event.gtid) == "0-1-10" and [s.sql for s in event.statements] == ["INSERT INTO t (a) VALUES (1)"]
    assert event.statements[0].insert_id == 5 and event.db == "shop" and event.session.user == "app"
    h.publisher.answers[0].set_result(True)
    await asyncio.sleep(0)
    assert h.to_client() == packet(ok(0, 0, AC), 1)  # no session state left: the flag is cleared too
    assert not h.relay.busy


async def test_kept_session_state_is_relayed_without_the_injected_variables():
    h = await Harness(durability="async").start()
    h.send(query(b"USE other"))
    schema = u8(c.SESSION_TRACK_SCHEMA) + lstr(lstr(b"other"))
    h.answer(ok(0, 0, AC | CHANGED, rest=lstr(b"") + lstr(schema + session_sysvar(b"sql_mode", b"ANSI"))))
    assert h.to_client() == packet(ok(0, 0, AC | CHANGED, rest=lstr(b"") + lstr(schema)), 1)
    assert h.relay.ctx.db == "other" and h.relay.ctx.sql_mode == "ANSI"


async def test_async_durability_answers_at_once():
    h = await Harness(durability="async").start()
    h.send(query(b"INSERT INTO t (a) VALUES (1)"))
    h.answer(gtid_ok(b"0-1-10"))
    assert h.to_client() == packet(ok(0, 0, AC), 1)
    assert len(h.publisher.events) == 1


async def test_pipelined_commands_go_upstream_one_response_at_a_time():
    h = await Harness().start()
    h.send(query(b"SELECT 1"), query(b"SELECT 2"))
    assert h.to_primary() == query(b"SELECT 1")
    h.answer(u8(1), column_def(b"1"), eof(0, AC), text_row(b"1"), eof(0, AC))
    assert h.to_primary() == query(b"SELECT 2")
    h.answer(u8(1), column_def(b"2"), eof(0, AC), text_row(b"2"), eof(0, AC))
    assert h.to_primary() == b"" and not h.relay.busy


async def test_a_command_without_response_goes_with_the_next_one():
    h = await Harness().start()
    close = packet(b"\x19" + u32(7), 0)
    h.send(close, packet(b"\x0e", 0))
    assert h.ut.writes == [close + packet(b"\x0e", 0)]
    h.answer(ok(0, 0, AC))
    assert h.to_client() == packet(ok(0, 0, AC), 1)


async def test_prepared_write_is_captured_with_its_parameters():
    h = await Harness(durability="async").start()
    h.send(packet(b"\x16UPDATE t SET a = ? WHERE id = 1", 0))
    h.answer(b"\x00" + u32(7) + u16(0) + u16(1) + b"\x00" + u16(0), column_def(b"?"), eof(0, AC))
    execute = (b"\x17" + u32(7) + b"\x00" + u32(1) + b"\x00" + b"\x01" + u16(c.MYSQL_TYPE_LONGLONG)
               + (42).to_bytes(8, "little"))
    h.send(packet(execute, 0))
    assert h.to_primary().endswith(packet(execute, 0))
    h.answer(gtid_ok(b"0-1-10"))
    (event,) = h.publisher.events
    assert event.statements[0].sql == "UPDATE t SET a = ? WHERE id = 1" and event.statements[0].params == (42,)


async def test_long_data_goes_upstream_unanswered_and_is_captured_as_the_parameters_value():
    h = await Harness(durability="async").start()
    h.send(packet(b"\x16INSERT INTO t (a, b) VALUES (?, ?)", 0))
    h.answer(b"\x00" + u32(7) + u16(0) + u16(2) + b"\x00" + u16(0), column_def(b"?"), column_def(b"?"), eof(0, AC))
    h.to_client(), h.to_primary()
    chunks = [b"\x00blob\xff" * 1000, b"", b"tail"]
    sends = [packet(b"\x18" + u32(7) + u16(1) + chunk, 0) for chunk in chunks]
    # a = 42 inline; b sent as long data: typed, NULL bit clear, no value in the execute
    execute = (b"\x17" + u32(7) + b"\x00" + u32(1) + b"\x00" + b"\x01" + u16(c.MYSQL_TYPE_LONGLONG)
               + u16(c.MYSQL_TYPE_BLOB) + (42).to_bytes(8, "little"))
    h.send(*sends[:2])
    h.send(sends[2], packet(execute, 0))
    assert h.to_primary() == b"".join(sends) + packet(execute, 0)  # in order, the execute last
    assert h.to_client() == b"" and h.relay.busy  # long data has no answer; the execute's comes next
    h.answer(gtid_ok(b"0-1-10"))
    assert h.to_client() == packet(ok(0, 0, AC), 1)
    (event,) = h.publisher.events
    assert event.statements[0].params == (42, b"".join(chunks))
    # the next execute of the statement sends both values inline: no stale long data
    again = (b"\x17" + u32(7) + b"\x00" + u32(1) + b"\x00" + b"\x00" + (43).to_bytes(8, "little")
             + lstr(b"inline"))
    h.send(packet(again, 0))
    h.answer(gtid_ok(b"0-1-11"))
    assert h.publisher.events[1].statements[0].params == (43, b"inline")


async def test_stmt_reset_discards_the_long_data_sent_so_far():
    h = await Harness(durability="async").start()
    h.send(packet(b"\x16INSERT INTO t (b) VALUES (?)", 0))
    h.answer(b"\x00" + u32(3) + u16(0) + u16(1) + b"\x00" + u16(0), column_def(b"?"), eof(0, AC))
    h.send(packet(b"\x18" + u32(3) + u16(0) + b"discarded", 0), packet(b"\x1a" + u32(3), 0))
    h.answer(ok(0, 0, AC))
    h.send(packet(b"\x18" + u32(3) + u16(0) + b"kept", 0))
    h.send(packet(b"\x17" + u32(3) + b"\x00" + u32(1) + b"\x00" + b"\x01" + u16(c.MYSQL_TYPE_BLOB), 0))
    h.answer(gtid_ok(b"0-1-10"))
    assert h.publisher.events[0].statements[0].params == (b"kept",)


async def test_a_malformed_response_ends_the_session():
    h = await Harness().start()
    h.send(query(b"SELECT 1"))
    h.answer(eof(0, AC))  # 0xFE where OK/ERR/column count belongs
    with pytest.raises(MalformedPacket):
        await h.task


async def test_an_oversized_command_ends_the_session():
    h = await Harness(max_packet_bytes=1024).start()
    h.send(query(b"x" * 2000)[:100])
    with pytest.raises(PacketTooLarge):
        await h.task
    assert h.to_primary() == b""


async def test_the_client_leaving_mid_commit_still_publishes_the_commit():
    h = await Harness().start()
    h.send(query(b"INSERT INTO t (a) VALUES (1)"))
    h.client.connection_lost(None)
    h.answer(gtid_ok(b"0-1-10"))
    assert len(h.publisher.events) == 1 and not h.task.done()
    h.publisher.answers[0].set_result(True)
    with pytest.raises(PeerClosed):
        await h.task


async def test_the_primary_leaving_ends_the_session():
    h = await Harness().start()
    h.upstream.connection_lost(None)
    with pytest.raises(PeerClosed):
        await h.task


async def test_quit_ends_the_session():
    h = await Harness().start()
    h.send(packet(b"\x01", 0))
    assert await h.task is None
    assert h.conn.machine.state is ConnectionState.CLOSED


async def test_one_command_in_flight_is_the_state_machines_await_response():
    h = await Harness().start()
    assert h.conn.machine.state is ConnectionState.COMMAND
    h.send(query(b"SELECT 1"))
    assert h.relay.busy and h.conn.machine.state is ConnectionState.AWAIT_RESPONSE
    h.answer(ok(0, 0, AC))
    assert not h.relay.busy and h.conn.machine.state is ConnectionState.COMMAND


async def test_a_refused_command_is_answered_by_the_ingress_and_the_next_one_goes():
    h = await Harness().start()
    h.send(packet(b"\x12" + u32(4) + b"\x00\x00" + u32(1), 0), query(b"SELECT 1"))  # COM_BINLOG_DUMP, then a query
    assert h.to_primary() == query(b"SELECT 1") and h.relay.busy
    h.answer(ok(0, 0, AC))
    reply = h.to_client()  # the refusal first (queued), then the query's answer
    assert reply[3] == 1 and reply[4] == 0xFF and b"not supported through the ingress" in reply
    assert reply.endswith(packet(ok(0, 0, AC), 1)) and h.conn.machine.state is ConnectionState.COMMAND


@pytest.mark.parametrize("refused", [
    query(b"XA START 'x'"),
    query(b"SELECT 1; XA RECOVER"),
    packet(b"\x12" + u32(4) + b"\x00\x00" + u32(1), 0),  # COM_BINLOG_DUMP
    packet(b"\x1e" + u32(1) + u16(0) + u32(1) + b"\x00" * 14, 0),  # COM_BINLOG_DUMP_GTID
    packet(b"\x15" + u32(9) + b"\x00\x00\x00" + u16(3306) + u32(0) + u32(1), 0),  # COM_REGISTER_SLAVE
], ids=["xa-start", "xa-in-multi-statement", "binlog-dump", "binlog-dump-gtid", "register-slave"])
async def test_a_refusal_is_answered_at_once_in_sequence_and_logged(refused, caplog):
    h = await Harness().start()
    with caplog.at_level("INFO", logger="dbmux.ingress.relay"):
        h.send(refused, query(b"SELECT 1"))
    # the ERR goes out before the primary answered the query behind it, with the sequence id after the command's
    err = h.to_client()
    assert err[3] == 1 and err[4] == 0xFF and err[5:7] == u16(1235) and err[7:13] == b"#42000"
    assert len(err) == 4 + int.from_bytes(err[:3], "little")  # one packet
    assert h.to_primary() == query(b"SELECT 1")
    assert any("refused command" in r.getMessage() for r in caplog.records)
    h.answer(ok(0, 0, AC))
    assert h.to_client() == packet(ok(0, 0, AC), 1) and h.conn.machine.state is ConnectionState.COMMAND


@pytest.mark.pure_only
async def test_a_multi_frame_refused_command_is_answered_after_its_last_frame(monkeypatch):
    monkeypatch.setattr("dbmux.ingress.wire.FrameReader", lambda max_payload_bytes: FrameReader(
        max_payload_bytes, chunk_bytes=8))
    h = await Harness().start()
    h.send(frame(b"\x03XA START 'long xid'", 0, chunk_bytes=8))  # 3 frames: seq 0, 1, 2
    assert h.to_client()[3] == 3


async def test_a_client_sending_far_ahead_is_paused_until_the_response_is_done():
    h = await Harness(max_packet_bytes=4 << 20).start()
    h.send(query(b"SELECT 1"))
    h.send(query(b"x" * (BUFFER_LIMIT_BYTES + 10)))
    assert h.ct.paused
    h.answer(ok(0, 0, AC))
    assert not h.ct.paused and h.to_primary().endswith(query(b"x" * (BUFFER_LIMIT_BYTES + 10)))


async def test_a_slow_client_pauses_reading_from_the_primary():
    h = await Harness().start()
    h.client.pause_writing()
    assert h.ut.paused
    h.client.resume_writing()
    assert not h.ut.paused


async def test_deadlock_error_drops_the_buffered_transaction():
    h = await Harness().start()
    h.send(query(b"BEGIN"))
    h.answer(ok(0, 0, IN_TRANS))
    h.send(query(b"UPDATE t SET a = 1"))
    h.answer(ok(1, 0, IN_TRANS))
    h.send(query(b"UPDATE t SET a = 2"))
    h.answer(b"\xff" + u16(1213) + b"#40001Deadlock found")
    assert h.relay.capture.pending == []


async def test_reset_connection_runs_its_round_trips_then_push_mode_resumes():
    h = await Harness().start()
    h.send(packet(b"\x1f", 0), query(b"SELECT 1"))  # COM_RESET_CONNECTION, and a query right behind it
    await asyncio.sleep(0)
    assert h.to_primary() == packet(b"\x1f", 0)
    h.answer(ok(0, 0, AC))
    await asyncio.sleep(0)
    assert h.to_client() == packet(ok(0, 0, AC), 1)
    assert b"SET SESSION session_track_system_variables" in h.to_primary()  # the ingress's own setup
    h.answer(ok(0, 0, AC))
    await asyncio.sleep(0)
    assert b"SELECT DATABASE()" in h.to_primary()
    h.answer(u8(10), *[column_def(n) for n in SETUP_COLUMNS], eof(0, AC),
             text_row(b"shop", b"ANSI", b"SYSTEM", b"utf8mb4", b"0-1-12", b"UTC", b"1", b"utf8mb4",
                      b"utf8mb4_general_ci", b"utf8mb4"), eof(0, AC))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert h.relay.capture.last_gtid == "0-1-12" and h.relay.ctx.sql_mode == "ANSI"
    assert h.to_primary() == query(b"SELECT 1") and h.to_client() == b""  # setup answers stay inside
    h.answer(ok(0, 0, AC))
    assert h.to_client() == packet(ok(0, 0, AC), 1)
