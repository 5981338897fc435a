"""The connection phase of one client connection: the primary, the handshake, TLS, authentication.

:class:`Connection` is one client connection and its own upstream connection to the primary. The
listener (``ingress.server``) creates it for an accepted client and runs :meth:`Connection.handshake`:
connect to the primary, relay its greeting (capabilities the ingress cannot relay taken out), TLS on
either hop (``SSLRequest``), the client's handshake response, then the authentication exchange packet
by packet -- the primary alone decides -- and finally set the primary session up for capture
(:meth:`Connection.setup_upstream`). An authenticated connection, in state ``COMMAND``, is then handed
to a :class:`~ingress.handler.Handler` for the command phase.

Everything here runs in pull mode (a coroutine awaiting both streams), on the ingress's event loop.
The connection's :class:`~ingress.protocol.state.ConnectionStateMachine` is driven with what arrives;
an event the table does not allow raises ``IllegalTransition``, a ProtocolError that ends this
connection only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import ssl

from dbmux.core.config import PrimaryConfig
from dbmux.ingress.context import TRACKED_VARIABLES, ConnectionContext
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.commands import ComQuery
from dbmux.ingress.protocol.errors import ProtocolError
from dbmux.ingress.protocol.events import ConnectionClosed, TlsEstablished, TransportConnected
from dbmux.ingress.protocol.generic_packets import ErrPacket
from dbmux.ingress.protocol.handshake import HandshakeResponse41, HandshakeV10, SSLRequest, parse_client_handshake
from dbmux.ingress.protocol.response import PacketKind, ResponseReader
from dbmux.ingress.protocol.resultset import TextRow
from dbmux.ingress.protocol.state import ConnectionStateMachine
from dbmux.ingress.response_relay import ResponseRelay, relay_pull
from dbmux.ingress.tls import upstream_context
from dbmux.ingress.wire import PacketStream

log = logging.getLogger(__name__)

# Capabilities the ingress never lets through: compression (not implemented) and SSL unless configured.
# LOCAL INFILE goes through as the client asks: the file's packets are relayed (ingress.response_relay) and
# the statement's copy is flagged unsafe (ingress.rewrite): targets apply the binlog reader's row copy.
_STRIP_ALWAYS = c.CLIENT_COMPRESS | c.CLIENT_ZSTD_COMPRESSION_ALGORITHM
_conn_ids = itertools.count(1)


class Connection:
    """One client connection, its upstream connection to the primary, and what the handshake negotiated.

    ``client`` and ``upstream`` are the two hops' streams (``upstream`` is None until the primary
    answered), ``ctx`` the session context and negotiated capabilities, ``machine`` the connection's
    state, ``last_gtid`` the session's last GTID as the primary reported it at setup.
    """

    def __init__(self, primary: PrimaryConfig, client: PacketStream, client_addr: str,
                 tls_server: ssl.SSLContext | None = None, routing: bool = False) -> None:
        self.primary = primary
        # reads may be answered by replicas or the result cache: result metadata is never left out as
        # "cached" (a replica's statement, a cached answer, has its own) -- MARIADB_CLIENT_CACHE_METADATA is
        # not offered
        self.strip_ext_caps = c.MARIADB_CLIENT_CACHE_METADATA if routing else 0
        self.client = client
        self.upstream: PacketStream | None = None
        self.ctx = ConnectionContext(client_addr=client_addr)
        self.machine = ConnectionStateMachine()
        self.tls_server = tls_server  # ssl context when the ingress offers TLS to clients
        self.is_mariadb = True
        self.last_gtid: str | None = None
        # the client's login, for read routing's login to replicas as the same user (ingress.replica_auth):
        # the primary's scramble, the client's response and character set (never logged)
        self.scramble = b""
        self.auth_response = b""
        self.charset_id = 0
        self.tag = f"conn {next(_conn_ids)} from {client_addr}"

    def send_error(self, errno: int, sqlstate: str, message: str, seq: int = 1) -> None:
        """Queue an ERR packet of the ingress's own for the client (nothing if it is gone)."""
        try:
            self.client.write(ErrPacket(errno, sqlstate, message).encode(c.CLIENT_PROTOCOL_41), seq)
        except Exception:  # noqa: BLE001 - the client may already be gone
            pass

    def close(self) -> None:
        """End the connection: both streams are closed (what is queued for the client is sent first)."""
        if self.machine.can_process_type(ConnectionClosed):
            self.machine.process_type(ConnectionClosed)
        for stream in (self.client, self.upstream):
            if stream is not None:
                stream.close()

    # ---- the connection phase ----------------------------------------------------------------------
    async def handshake(self) -> bool:
        """Connect the client to the primary and relay the handshake and authentication. True when the
        client is authenticated (state ``COMMAND``); False when the connection phase ended with an
        answer to the client (primary unreachable, refused, authentication failed)."""
        machine, client, primary = self.machine, self.client, self.primary
        dsn = primary.dsn
        try:
            _, upstream = await asyncio.get_running_loop().create_connection(
                lambda: PacketStream(max_payload_bytes=1 << 30), dsn.host, dsn.port)
        except OSError as exc:
            log.error("%s: cannot reach the primary %s:%s: %s", self.tag, dsn.host, dsn.port, exc)
            self.send_error(2003, "HY000", "dbmux: the primary is unreachable", seq=0)
            return False
        machine.process_type(TransportConnected)
        self.upstream = upstream
        # Flow control: while one side cannot take more, reading from the other pauses.
        client.partner, upstream.partner = upstream, client
        greet = await upstream.read(expected_seq=0)
        if greet.payload[:1] == b"\xff":  # e.g. too many connections: pass it on
            machine.process_type(ErrPacket)
            client.write(greet.payload, 0)
            return False
        hello = HandshakeV10.parse(greet.payload)
        machine.process(hello)
        self.is_mariadb = hello.is_mariadb
        ctx = self.ctx
        ctx.connection_id = hello.connection_id
        ctx.status_flags = hello.status_flags
        self.scramble = hello.auth_plugin_data
        server_caps = hello.capabilities
        offered = server_caps & ~(_STRIP_ALWAYS | c.CLIENT_SSL)
        if self.tls_server is not None:
            offered |= c.CLIENT_SSL
        offered_ext = hello.mariadb_ext_caps & ~self.strip_ext_caps
        client.write(dataclasses.replace(hello, capabilities=offered, mariadb_ext_caps=offered_ext).encode(), 0)

        first = await client.read(expected_seq=1)
        msg = parse_client_handshake(first.payload)
        machine.process(msg)
        client_seq = 1
        if isinstance(msg, SSLRequest):
            if self.tls_server is None:
                self.send_error(1045, "28000", "dbmux: TLS was not offered", seq=2)
                return False
            await client.start_tls(self.tls_server, server_side=True)
            machine.process_type(TlsEstablished)
            first = await client.read(expected_seq=2)
            msg = parse_client_handshake(first.payload)
            machine.process(msg)  # a second SSLRequest is an illegal transition
            client_seq = 2
        assert isinstance(msg, HandshakeResponse41)
        resp = msg
        ctx.client_caps = resp.capabilities & offered
        ctx.ext_caps = resp.mariadb_ext_caps & offered_ext
        upstream_caps = (ctx.client_caps | (server_caps & c.CLIENT_SESSION_TRACK)) & ~(_STRIP_ALWAYS | c.CLIENT_SSL)
        ctx.user = resp.username.decode("utf-8", "replace")
        self.auth_response, self.charset_id = resp.auth_response, resp.charset
        if resp.database:
            ctx.db = resp.database.decode("utf-8", "replace")
        upstream_seq = 1
        if server_caps & c.CLIENT_SSL and primary.tls != "disabled":
            upstream_caps |= c.CLIENT_SSL
            upstream.write(SSLRequest(upstream_caps, resp.max_packet, resp.charset, resp.mariadb_ext_caps).encode(), 1)
            await upstream.start_tls(upstream_context(primary.tls_ca), server_side=False)
            upstream_seq = 2
        elif primary.tls == "required":
            log.error("%s: primary.tls = required but the primary does not offer TLS", self.tag)
            self.send_error(2026, "HY000", "dbmux: the primary does not offer TLS (primary.tls = required)",
                            seq=client_seq + 1)
            return False
        ctx.upstream_caps = upstream_caps
        upstream.write(dataclasses.replace(resp, capabilities=upstream_caps).encode(), upstream_seq)
        await upstream.drain()
        # The authentication exchange (auth switch, caching_sha2 fast/full auth, ed25519) is relayed
        # packet by packet; the primary alone decides. Its reader is the COM_CHANGE_USER one. Sequence
        # ids of the exchange differ by client_seq - upstream_seq between the two hops.
        auth = ResponseReader(c.COM_CHANGE_USER, upstream_caps, ctx.ext_caps)
        await relay_pull(ResponseRelay(client, upstream, ctx, auth, seq_delta=client_seq - upstream_seq))
        machine.process_type(type(auth.final_result))  # OkPacket: COMMAND; ErrPacket: CLOSED
        if auth.is_error:
            log.info("%s: authentication rejected by the primary", self.tag)
            return False
        await self.setup_upstream()
        return True

    async def setup_upstream(self) -> bool:
        """Make the primary report what capture needs: the session's GTIDs and context variables.
        Also after COM_CHANGE_USER and COM_RESET_CONNECTION. True when the primary answered the context
        query: ``ctx`` and ``last_gtid`` are then the primary's."""
        if self.is_mariadb:
            await self.internal_query(
                f"SET SESSION session_track_system_variables='{TRACKED_VARIABLES},last_gtid', "
                "session_track_schema=ON")
            row = await self.internal_query(
                "SELECT DATABASE(), @@session.sql_mode, @@session.time_zone, @@session.character_set_client, "
                "@@session.last_gtid, @@global.system_time_zone, @@session.foreign_key_checks, "
                "@@session.character_set_connection, @@session.collation_connection, "
                "@@session.character_set_results")
        else:
            await self.internal_query(
                f"SET SESSION session_track_gtids='OWN_GTID', session_track_system_variables='{TRACKED_VARIABLES}', "
                "session_track_schema=ON")
            row = await self.internal_query(
                "SELECT DATABASE(), @@session.sql_mode, @@session.time_zone, @@session.character_set_client, NULL, "
                "@@global.system_time_zone, @@session.foreign_key_checks, @@session.character_set_connection, "
                "@@session.collation_connection, @@session.character_set_results")
        if not row:
            return False
        ctx = self.ctx
        (db, ctx.sql_mode, ctx.time_zone, ctx.charset, gtid, ctx.system_time_zone, fk_checks,
         ctx.charset_connection, ctx.collation_connection, ctx.charset_results) = row
        ctx.foreign_key_checks = str(fk_checks) not in ("0", "OFF")
        ctx.db = db
        self.last_gtid = gtid or None
        return True

    async def internal_query(self, sql: str) -> tuple[str | None, ...] | None:
        """Run a query of the ingress's own on the upstream connection; returns the first row."""
        upstream, caps = self.upstream, self.ctx.upstream_caps
        assert upstream is not None
        upstream.write(ComQuery(sql.encode()).encode(caps), 0)
        await upstream.drain()
        reader = ResponseReader(c.COM_QUERY, caps, self.ctx.ext_caps)
        row: tuple[str | None, ...] | None = None
        while not reader.complete:
            pkt = await upstream.read()
            kind, _ = reader.feed(pkt.payload)
            if kind is PacketKind.ROW and row is None:
                values = TextRow.parse(pkt.payload, len(reader.columns)).values
                row = tuple(None if v is None else v.decode("utf-8", "replace") for v in values)
        if reader.is_error:
            err = reader.final_result
            raise ProtocolError(f"dbmux setup query failed on the primary: {err}")
        return row
