"""One client session: handshake relay, authentication pass-through, the command loop, capture.

Concurrency contract: one ``ClientSession`` per client connection, one upstream connection to the
primary per session, all on one event loop; a session touches only its own two connections, the
shared :class:`~ingress.publisher.Publisher` (safe to call concurrently) and its own capture state.
A protocol error ends only this session (the client gets an ERR packet where possible).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import itertools
import logging
import time
from dataclasses import dataclass

from dbmux.config import Config
from dbmux.envelope import ChangeEvent, SessionContext
from dbmux.gtid import Gtid
from ingress.capture import StatementOutcome, TransactionCapture
from ingress.protocol import constants as c
from ingress.protocol.commands import ComChangeUser, ComQuery
from ingress.protocol.errors import ProtocolError
from ingress.protocol.framing import Packet, frame
from ingress.protocol.generic_packets import ErrPacket, OkPacket
from ingress.protocol.handshake import HandshakeResponse41, HandshakeV10, SSLRequest, parse_client_handshake
from ingress.protocol.response import NOT_ROW_HEADERS, PacketKind, ResponseReader
from ingress.protocol.resultset import TextRow
from ingress.protocol.session_state import SchemaChange, SystemVariableChange
from ingress.publisher import Publisher
from ingress.tls import upstream_context
from ingress.statements import PreparedStatements, QueryPlan, plan_query
from ingress.wire import PacketStream, PeerClosed

log = logging.getLogger(__name__)

# Capabilities the ingress never lets through: compression (not implemented), LOCAL INFILE (refused:
# the primary answers LOAD DATA LOCAL with its own "not allowed" error), and SSL unless configured.
_STRIP_ALWAYS = c.CLIENT_COMPRESS | c.CLIENT_LOCAL_FILES | c.CLIENT_ZSTD_COMPRESSION_ALGORITHM
_TRACKED = "autocommit,character_set_client,character_set_connection,character_set_results,time_zone,sql_mode"
_INJECTED_VARS = frozenset({"last_gtid", "sql_mode"})  # tracked for capture only; stripped for clients
_conn_ids = itertools.count(1)


@dataclass
class _Context:
    user: str = ""
    client_addr: str = ""
    connection_id: int = 0
    db: str | None = None
    sql_mode: str | None = None
    time_zone: str | None = None
    charset: str | None = None

    def snapshot(self) -> SessionContext:
        return SessionContext(user=self.user, client_addr=self.client_addr, connection_id=self.connection_id,
                              db=self.db, sql_mode=self.sql_mode, time_zone=self.time_zone, charset=self.charset)


class ClientSession:
    def __init__(self, config: Config, publisher: Publisher, client: PacketStream, client_addr: str,
                 tls_server: "ssl.SSLContext | None" = None) -> None:
        self.config = config
        self.publisher = publisher
        self.client = client
        self.upstream: PacketStream | None = None
        self.ctx = _Context(client_addr=client_addr)
        self.capture = TransactionCapture()
        self.prepared = PreparedStatements()
        self.client_caps = 0
        self.upstream_caps = 0
        self.ext_caps = 0
        self.is_mariadb = True
        self.system_time_zone: str | None = None
        self.tls_server = tls_server  # ssl context when the ingress offers TLS to clients
        self._auth_seq_delta = 0
        self.tag = f"conn {next(_conn_ids)} from {client_addr}"

    # ---- lifecycle ---------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            if await self._handshake():
                await self._command_loop()
        except PeerClosed:
            pass
        except ProtocolError as exc:
            log.warning("%s: protocol error, closing the session: %s", self.tag, exc)
            self._send_client_error(1156, "08S01", f"dbmux: bad packet: {exc}")
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("%s: connection lost: %s", self.tag, exc)
        finally:
            await self._close()

    async def _close(self) -> None:
        for stream in (self.client, self.upstream):
            if stream is not None:
                stream.close()

    def _send_client_error(self, errno: int, sqlstate: str, message: str, seq: int = 1) -> None:
        try:
            self.client.write(ErrPacket(errno, sqlstate, message.encode()).encode(c.CLIENT_PROTOCOL_41), seq)
        except Exception:  # noqa: BLE001 - the client may already be gone
            pass

    # ---- handshake and authentication -------------------------------------------------------------
    async def _handshake(self) -> bool:
        dsn = self.config.primary.dsn
        try:
            reader, writer = await asyncio.open_connection(dsn.host, dsn.port)
        except OSError as exc:
            log.error("%s: cannot reach the primary %s:%s: %s", self.tag, dsn.host, dsn.port, exc)
            self._send_client_error(2003, "HY000", "dbmux: the primary is unreachable", seq=0)
            return False
        self.upstream = PacketStream(reader, writer, max_payload_bytes=1 << 30)
        greet = await self.upstream.read(expected_seq=0)
        if greet.payload[:1] == b"\xff":  # e.g. too many connections: pass it on
            self.client.write(greet.payload, 0)
            return False
        hello = HandshakeV10.parse(greet.payload)
        self.is_mariadb = hello.is_mariadb
        self.ctx.connection_id = hello.connection_id
        server_caps = hello.capabilities
        offered = server_caps & ~(_STRIP_ALWAYS | c.CLIENT_SSL)
        if self.tls_server is not None:
            offered |= c.CLIENT_SSL
        self.client.write(_replace(hello, capabilities=offered).encode(), 0)

        first = await self.client.read(expected_seq=1)
        msg = parse_client_handshake(first.payload)
        client_seq = 1
        if isinstance(msg, SSLRequest):
            if self.tls_server is None:
                self._send_client_error(1045, "28000", "dbmux: TLS was not offered", seq=2)
                return False
            await self.client.start_tls(self.tls_server, server_side=True)
            first = await self.client.read(expected_seq=2)
            msg = parse_client_handshake(first.payload)
            if isinstance(msg, SSLRequest):
                raise ProtocolError("a second SSLRequest inside TLS")
            client_seq = 2
        resp: HandshakeResponse41 = msg
        self.client_caps = resp.capabilities & offered
        self.ext_caps = resp.mariadb_ext_caps & hello.mariadb_ext_caps
        self.upstream_caps = (self.client_caps | (server_caps & c.CLIENT_SESSION_TRACK)) & ~(_STRIP_ALWAYS | c.CLIENT_SSL)
        self.ctx.user = resp.username.decode("utf-8", "replace")
        if resp.database:
            self.ctx.db = resp.database.decode("utf-8", "replace")
        upstream_seq = 1
        tls_mode = self.config.primary.tls
        if server_caps & c.CLIENT_SSL and tls_mode != "disabled":
            self.upstream_caps |= c.CLIENT_SSL
            self.upstream.write(SSLRequest(self.upstream_caps, resp.max_packet, resp.charset,
                                           resp.mariadb_ext_caps).encode(), 1)
            await self.upstream.start_tls(upstream_context(self.config.primary.tls_ca), server_side=False)
            upstream_seq = 2
        elif tls_mode == "required":
            log.error("%s: primary.tls = required but the primary does not offer TLS", self.tag)
            self._send_client_error(2026, "HY000", "dbmux: the primary does not offer TLS (primary.tls = required)",
                                    seq=client_seq + 1)
            return False
        # Sequence ids of the authentication exchange differ by this much between the two hops.
        self._auth_seq_delta = client_seq - upstream_seq
        self.upstream.write(_replace(resp, capabilities=self.upstream_caps).encode(), upstream_seq)
        await self.upstream.drain()
        # The authentication exchange (auth switch, caching_sha2 fast/full auth, ed25519) is relayed
        # packet by packet; the primary alone decides. Its reader is the COM_CHANGE_USER one.
        auth = ResponseReader(c.COM_CHANGE_USER, self.upstream_caps, self.ext_caps)
        await self._relay(auth, seq_delta=self._auth_seq_delta)
        if auth.is_error:
            log.info("%s: authentication rejected by the primary", self.tag)
            return False
        await self._setup_upstream()
        return True

    async def _setup_upstream(self) -> None:
        """Make the primary report what capture needs: the session's GTIDs and context variables."""
        if self.is_mariadb:
            await self._internal_query(
                f"SET SESSION session_track_system_variables='{_TRACKED},last_gtid', session_track_schema=ON")
            row = await self._internal_query(
                "SELECT DATABASE(), @@session.sql_mode, @@session.time_zone, @@session.character_set_client, "
                "@@session.last_gtid, @@global.system_time_zone")
        else:
            await self._internal_query(
                f"SET SESSION session_track_gtids='OWN_GTID', session_track_system_variables='{_TRACKED}', "
                "session_track_schema=ON")
            row = await self._internal_query(
                "SELECT DATABASE(), @@session.sql_mode, @@session.time_zone, @@session.character_set_client, NULL, "
                "@@global.system_time_zone")
        if row:
            db, self.ctx.sql_mode, self.ctx.time_zone, self.ctx.charset, gtid, self.system_time_zone = row
            self.ctx.db = db
            self.capture.last_gtid = gtid or None

    async def _internal_query(self, sql: str) -> tuple[str | None, ...] | None:
        """Run a query of the ingress's own on the upstream connection; returns the first row."""
        assert self.upstream is not None
        self.upstream.write(ComQuery(sql.encode()).encode(self.upstream_caps), 0)
        await self.upstream.drain()
        reader = ResponseReader(c.COM_QUERY, self.upstream_caps, self.ext_caps)
        row: tuple[str | None, ...] | None = None
        while not reader.complete:
            pkt = await self.upstream.read()
            kind, _ = reader.feed(pkt.payload)
            if kind is PacketKind.ROW and row is None:
                values = TextRow.parse(pkt.payload, len(reader.columns)).values
                row = tuple(None if v is None else v.decode("utf-8", "replace") for v in values)
        if reader.is_error:
            err = reader.final_result
            raise ProtocolError(f"dbmux setup query failed on the primary: {err}")
        return row

    # ---- commands ----------------------------------------------------------------------------------
    async def _command_loop(self) -> None:
        assert self.upstream is not None
        while True:
            await self.client.drain()
            cmd = await self.client.read(expected_seq=0)
            payload = cmd.payload
            if not payload:
                raise ProtocolError("empty command packet")
            code = payload[0]
            if code == c.COM_QUIT:
                return
            if code == c.COM_QUERY:
                await self._query(cmd)
            elif code == c.COM_STMT_PREPARE:
                await self._forward(cmd.raw, code, on_prepare=payload)
            elif code == c.COM_STMT_EXECUTE:
                await self._execute(cmd)
            elif code in (c.COM_STMT_CLOSE, c.COM_STMT_SEND_LONG_DATA):
                # No response: queued, it goes upstream with the next command (or at close).
                self.prepared.on_no_response_command(payload, self.upstream_caps)
                self.upstream.write_raw(cmd.raw)
            elif code == c.COM_INIT_DB:
                await self._forward(cmd.raw, code)
            elif code == c.COM_CHANGE_USER:
                await self._change_user(payload)
            elif code in (c.COM_BINLOG_DUMP, c.COM_BINLOG_DUMP_GTID, c.COM_REGISTER_SLAVE):
                self._send_client_error(1235, "42000",
                                        "dbmux: this command is not supported through the ingress; "
                                        "open a new connection instead")
            else:
                await self._forward(cmd.raw, code)
                if code == c.COM_RESET_CONNECTION:
                    self.capture = TransactionCapture(last_gtid=self.capture.last_gtid)
                    self.prepared.clear()
                    await self._setup_upstream()

    async def _change_user(self, payload: bytes) -> None:
        """COM_CHANGE_USER: the primary re-authenticates (any open transaction is rolled back)."""
        assert self.upstream is not None
        change = ComChangeUser.parse(payload, self.upstream_caps)
        self.upstream.write(payload, 0)
        await self.upstream.drain()
        reader = ResponseReader(c.COM_CHANGE_USER, self.upstream_caps, self.ext_caps)
        await self._relay(reader)
        self.capture = TransactionCapture(last_gtid=self.capture.last_gtid)
        self.prepared.clear()
        if not reader.is_error:
            self.ctx.user = change.user.decode("utf-8", "replace")
            self.ctx.db = change.schema.decode("utf-8", "replace") if change.schema else None
            await self._setup_upstream()

    async def _relay(self, reader: ResponseReader, on_result=None, seq_delta: int = 0) -> None:
        """Relay one server response (and the client packets it asks for) to the client.

        ``on_result(index, result)`` is awaited for each statement's final OK/ERR/EOF *before* that
        packet is sent on, so a commit's OK reaches the client only after its event was published.
        Packets the ingress does not change are forwarded as the raw frames received, and everything
        relayed from one upstream read goes to the client in one write.
        """
        upstream, client = self.upstream, self.client
        assert upstream is not None
        while not reader.complete:
            if reader.in_rows:  # rows are only counted and forwarded, as many at once as received
                count, rows = upstream.take_run(NOT_ROW_HEADERS)
                if count:
                    reader.feed_rows(count)
                    client.write_raw(rows)
                    continue
            pkt = upstream.poll()
            if pkt is None:
                await client.drain()  # the client gets what we have before we wait for more
                pkt = await upstream.read()
            done_before = len(reader.results)
            _, event = reader.feed(pkt.payload)
            out = pkt.raw
            if isinstance(event, OkPacket):
                self._note_session_state(event)
                out = self._client_ok(event, pkt)
            if on_result is not None and len(reader.results) > done_before:
                await on_result(done_before, reader.results[-1])
            if seq_delta:  # TLS on one hop only: the handshake's sequence ids are shifted
                payload = pkt.payload if out is pkt.raw else out[4:]  # a re-encoded OK is one small frame
                client.write(payload, (pkt.first_seq + seq_delta) & 0xFF)
            else:
                client.write_raw(out)
            if reader.awaiting_client:
                await client.drain()
                data = await client.read()
                reader.feed_client(data.payload)
                if seq_delta:
                    upstream.write(data.payload, (data.first_seq - seq_delta) & 0xFF)
                else:
                    upstream.write_raw(data.raw)
                await upstream.drain()
        await client.drain()

    async def _query(self, cmd: Packet) -> None:
        q = ComQuery.parse(cmd.payload, self.upstream_caps)
        sql = q.sql.decode("utf-8", "surrogateescape")
        zone = self.ctx.time_zone
        if zone == "SYSTEM":
            zone = self.system_time_zone
        backslash = "NO_BACKSLASH_ESCAPES" not in (self.ctx.sql_mode or "")
        plan = plan_query(sql, time_zone=zone, backslash_escapes=backslash)
        if plan.refusal:
            self._send_client_error(1235, "42000", plan.refusal)
            return
        raw = cmd.raw
        if plan.rewritten is not None:
            rewritten = _replace(q, sql=plan.rewritten.encode("utf-8", "surrogateescape"))
            raw = frame(rewritten.encode(self.upstream_caps), 0)
        await self._forward(raw, c.COM_QUERY, plan=plan)

    async def _execute(self, cmd: Packet) -> None:
        _, params, plan = self.prepared.on_execute(cmd.payload, self.upstream_caps)
        await self._forward(cmd.raw, c.COM_STMT_EXECUTE, plan=plan, params=params)

    async def _forward(self, raw: bytes, code: int, *, plan: QueryPlan | None = None,
                       params: tuple | None = None, on_prepare: bytes | None = None) -> None:
        """Send one command (``raw``: its frames, sequence ids from 0) upstream and relay its whole
        response, capturing committed transactions. ``on_prepare``: the COM_STMT_PREPARE payload."""
        assert self.upstream is not None
        self.upstream.write_raw(raw)
        await self.upstream.drain()
        # A COM_STMT_EXECUTE that opens a cursor is answered with metadata only; rows come via COM_STMT_FETCH.
        # (raw = 4-byte frame header, command byte, 4-byte statement id, then the flags byte.)
        cursor = code == c.COM_STMT_EXECUTE and len(raw) > 9 and bool(raw[9] & 0x07)
        reader = ResponseReader(code, self.upstream_caps, self.ext_caps, cursor=cursor, decode_metadata=False)

        async def on_result(index: int, result) -> None:
            if isinstance(result, ErrPacket):
                self.capture.on_error(result.errno)
            elif plan is not None and isinstance(result, OkPacket):
                await self._on_statement_ok(plan, index, result, params)

        await self._relay(reader, on_result if plan is not None else None)
        if on_prepare is not None and reader.prepare_ok is not None:
            self.prepared.on_prepared(on_prepare, reader)

    async def _on_statement_ok(self, plan: QueryPlan, index: int, ok: OkPacket, params: tuple | None) -> None:
        stmt = plan.statement(index)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: ok gtid=%s flags=0x%x kind=%s tcl=%s sql=%.60s", self.tag, ok.gtid, ok.status_flags,
                      stmt.kind, stmt.tcl, stmt.sql)
        commit = self.capture.on_success(StatementOutcome(
            sql=stmt.sql, kind=stmt.kind, tcl=stmt.tcl, unsafe=stmt.unsafe, status_flags=ok.status_flags,
            last_insert_id=ok.last_insert_id, gtid=ok.gtid, params=params, db=self.ctx.db))
        if commit is None:
            return
        event = ChangeEvent(gtid=Gtid.parse(commit.gtid), source="ingress", ts_ms=int(time.time() * 1000),
                            db=commit.db, statements=commit.statements, session=self.ctx.snapshot())
        if not commit.statements:
            log.warning("%s: gtid %s committed with no captured statement; published empty (row form "
                        "comes from the binlog reader)", self.tag, commit.gtid)
        if self.config.ingress.durability == "sync":
            await self.publisher.publish_bounded(event, self.config.ingress.publish_timeout_ms / 1000)
        else:
            asyncio.ensure_future(self.publisher.publish_bounded(event, self.config.ingress.publish_timeout_ms / 1000))

    # ---- session state -------------------------------------------------------------------------------
    def _note_session_state(self, ok: OkPacket) -> None:
        for change in ok.session_state_changes:
            if isinstance(change, SystemVariableChange):
                if change.name == "sql_mode":
                    self.ctx.sql_mode = change.value
                elif change.name == "time_zone":
                    self.ctx.time_zone = change.value
                elif change.name == "character_set_client":
                    self.ctx.charset = change.value
            elif isinstance(change, SchemaChange):
                self.ctx.db = change.schema

    def _client_ok(self, ok: OkPacket, pkt: Packet) -> bytes:
        """The OK packet's frames as the client should see them: without what only the ingress asked for."""
        if self.client_caps & c.CLIENT_SESSION_TRACK:
            if not ok.status_flags & c.SERVER_SESSION_STATE_CHANGED:
                return pkt.raw
            kept = tuple(ch for ch in ok.session_state_changes
                         if not (isinstance(ch, SystemVariableChange) and ch.name in _INJECTED_VARS))
            if len(kept) == len(ok.session_state_changes):
                return pkt.raw
            flags = ok.status_flags if kept else ok.status_flags & ~c.SERVER_SESSION_STATE_CHANGED
            stripped = _replace(ok, session_state_changes=kept, status_flags=flags)
        elif self.upstream_caps & c.CLIENT_SESSION_TRACK:
            stripped = _replace(ok, session_state_changes=(),
                                status_flags=ok.status_flags & ~c.SERVER_SESSION_STATE_CHANGED)
        else:
            return pkt.raw
        return frame(stripped.encode(self.client_caps), pkt.first_seq)


def _replace(obj, **changes):
    return dataclasses.replace(obj, **changes)
