"""Connection.handshake, the connection phase, against a scripted primary on a local socket: the state
machine it drives (COMMAND once authenticated, CLOSED when refused), what it learns at setup, and an
illegal transition (a second SSLRequest) ending the connection with a ProtocolError.

The client side is a PacketStream with a fake transport whose packets are fed up front.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest

from dbmux.core.config import parse_config
from dbmux.ingress.connection import Connection
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.errors import IllegalTransition, ProtocolError
from dbmux.ingress.protocol.handshake import HandshakeResponse41, HandshakeV10, SSLRequest
from dbmux.ingress.protocol.state import ConnectionState
from dbmux.ingress.wire import PacketStream

from .protocol.builders import column_def, eof, err, ok, packet, text_row, u8
from .test_ingress_wire import FakeTransport

S = ConnectionState
SETUP_COLUMNS = (b"db", b"m", b"tz", b"cs", b"g", b"stz", b"fk", b"cc", b"col", b"cr")
CAPS = (c.CLIENT_PROTOCOL_41 | c.CLIENT_TRANSACTIONS | c.CLIENT_MULTI_RESULTS | c.CLIENT_PLUGIN_AUTH
        | c.CLIENT_SECURE_CONNECTION | c.CLIENT_SESSION_TRACK | c.CLIENT_CONNECT_WITH_DB)
GREETING = HandshakeV10("10.11.6-MariaDB", 42, b"s" * 20, CAPS | c.CLIENT_SSL,
                        auth_plugin_name="mysql_native_password").encode()
RESPONSE = HandshakeResponse41(CAPS, b"app", b"x" * 20, b"shop", "mysql_native_password").encode()
SETUP_ROW = [u8(10), *[column_def(n) for n in SETUP_COLUMNS], eof(),
             text_row(b"shop", b"ANSI", b"SYSTEM", b"utf8mb4", b"0-1-12", b"UTC", b"1", b"utf8mb4",
                      b"utf8mb4_general_ci", b"utf8mb4"), eof()]


class ScriptedPrimary:
    """Sends ``greeting`` on connect, then the next answer of ``answers`` for every packet it receives."""

    def __init__(self, greeting: bytes, answers: list[list[bytes]]) -> None:
        self.greeting, self.answers = greeting, answers
        self.received: list[bytes] = []
        self.server: asyncio.AbstractServer | None = None
        self.ended = asyncio.Event()

    async def __aenter__(self) -> ScriptedPrimary:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await asyncio.wait_for(self.ended.wait(), 5)  # the test closed its Connection: the primary sees EOF

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(packet(self.greeting, 0))
        try:
            for answer in self.answers:
                header = await reader.readexactly(4)
                payload = await reader.readexactly(int.from_bytes(header[:3], "little"))
                self.received.append(payload)
                writer.write(b"".join(packet(p, header[3] + 1 + i) for i, p in enumerate(answer)))
            await reader.read()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
        self.ended.set()


def connection(port: int, *client_packets: bytes, tls: bool = False) -> tuple[Connection, FakeTransport]:
    config = parse_config({"primary": {"url": f"mysql://app:pw@127.0.0.1:{port}", "tls": "disabled"}}, env={})
    client, transport = PacketStream(max_payload_bytes=1 << 20), FakeTransport()
    client.connection_made(transport)
    client.data_received(b"".join(client_packets))
    tls_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) if tls else None
    return Connection(config.primary, client, "127.0.0.1:40000", tls_server=tls_server), transport


async def test_an_authenticated_connection_is_in_command_state_with_its_context_set_up():
    async with ScriptedPrimary(GREETING, [[ok(0, 0, 2)], [ok(0, 0, 2)], SETUP_ROW]) as primary:
        conn, transport = connection(primary.port, packet(RESPONSE, 1))
        assert conn.machine.state is S.CONNECTING
        assert await conn.handshake()
        assert conn.machine.state is S.COMMAND
        ctx = conn.ctx
        assert (ctx.user, ctx.db, ctx.sql_mode, ctx.system_time_zone, conn.last_gtid) == (
            "app", "shop", "ANSI", "UTC", "0-1-12")
        assert ctx.client_caps & c.CLIENT_SESSION_TRACK and not ctx.client_caps & c.CLIENT_SSL
        greeting = HandshakeV10.parse(transport.writes[0][4:])
        assert not greeting.capabilities & c.CLIENT_SSL  # not offered: the ingress has no TLS configured
        assert transport.written.endswith(packet(ok(0, 0, 2), 2))  # the primary's auth OK, relayed
        assert b"session_track_system_variables" in primary.received[1]
        conn.close()
        assert conn.machine.state is S.CLOSED


async def test_an_err_greeting_is_passed_on_and_closes():
    async with ScriptedPrimary(err(1040, b"08004", b"Too many connections"), []) as primary:
        conn, transport = connection(primary.port)
        assert not await conn.handshake()
        assert conn.machine.state is S.CLOSED
        conn.close()
        assert transport.written == packet(err(1040, b"08004", b"Too many connections"), 0)


async def test_a_rejected_authentication_closes():
    denied = err(1045, b"28000", b"Access denied")
    async with ScriptedPrimary(GREETING, [[denied]]) as primary:
        conn, transport = connection(primary.port, packet(RESPONSE, 1))
        assert not await conn.handshake()
        assert conn.machine.state is S.CLOSED
        conn.close()
        assert transport.written.endswith(packet(denied, 2))


@pytest.mark.pure_only
async def test_a_second_ssl_request_is_an_illegal_transition(monkeypatch):
    async with ScriptedPrimary(GREETING, []) as primary:
        ssl_request = SSLRequest(CAPS).encode()
        conn, _ = connection(primary.port, packet(ssl_request, 1), packet(ssl_request, 2), tls=True)

        async def no_tls(ctx: ssl.SSLContext, *, server_side: bool) -> None:  # the fake transport has no TLS
            assert server_side and conn.machine.state is S.SSL_HANDSHAKE

        monkeypatch.setattr(conn.client, "start_tls", no_tls)
        with pytest.raises(IllegalTransition) as exc_info:
            await conn.handshake()
        assert isinstance(exc_info.value, ProtocolError)
        assert exc_info.value.state is S.AWAIT_CLIENT_HANDSHAKE_TLS
        assert conn.machine.state is S.ERROR
        conn.close()
        assert conn.machine.state is S.ERROR


async def test_an_unreachable_primary_is_answered_with_an_error():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn, transport = connection(port)
    assert not await conn.handshake()
    assert conn.machine.state is S.CONNECTING
    conn.close()
    assert conn.machine.state is S.CLOSED
    written = transport.written
    assert written[3] == 0 and written[4] == 0xFF and b"the primary is unreachable" in written
