"""One client session: handshake relay, authentication pass-through, the command loop, capture.

Concurrency contract: one ``ClientSession`` per client connection, one upstream connection to the
primary per session, all on one event loop; a session touches only its own two connections, the
shared :class:`~ingress.publisher.Publisher` (safe to call concurrently) and its own capture state.
A protocol error ends only this session (the client gets an ERR packet where possible).

The handshake and authentication run as a coroutine over both streams in pull mode. The command
phase is event-driven: both :class:`~ingress.wire.PacketStream` objects are in push mode, a client
command is dispatched from the client's ``data_received`` and the primary's response is relayed from
the upstream's ``data_received`` (:class:`_Relay`), packet runs forwarded as they arrive, without a
task switch. One command is in flight at a time; what the client sends meanwhile stays buffered.
Only a commit whose OK must wait for Kafka (``durability = sync``) pauses the relay (until the
publish future resolves); commands that need round trips of their own (COM_CHANGE_USER,
COM_RESET_CONNECTION) run as a coroutine in pull mode, then push mode resumes.
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
from ingress.protocol.response import PacketKind, Phase, ResponseReader
from ingress.protocol.resultset import TextRow
from ingress.protocol.session_state import SchemaChange, SystemVariableChange
from ingress.publisher import Publisher
from ingress.tls import upstream_context
from ingress.statements import PreparedStatements, QueryPlan, plan_query
from ingress.wire import PacketStream, PeerClosed

log = logging.getLogger(__name__)

_DONE_PHASE = Phase.DONE  # (a module global: an Enum member looked up on its class costs ~80 ns)

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


# What _Relay.pump returns besides None (needs more server bytes) and a future (wait for it).
_DONE = "done"
_NEED_CLIENT = "need_client"


class _Relay:
    """The relay of one server response to the client, as a synchronous step function.

    :meth:`pump` takes what the upstream stream has buffered, accounts for it with the command's
    :class:`ResponseReader` and queues it for the client: result rows as whole raw runs, every other
    packet as the raw frame received, except OK packets whose injected session state is stripped. It
    returns ``None`` when it needs more server bytes, ``_DONE`` when the response is complete,
    ``_NEED_CLIENT`` when the response waits for a client packet (authentication exchange, LOCAL
    INFILE data; pass it to :meth:`client_packet`), or a future: a statement's final OK is held back
    until that future (the commit's publish) resolves, then the next ``pump`` sends it on.
    The session's push-mode callbacks and its pull-mode coroutine drive the same object.
    """

    __slots__ = ("session", "reader", "plan", "params", "on_prepare", "seq_delta", "_held")

    def __init__(self, session: ClientSession, reader: ResponseReader, plan: QueryPlan | None = None,
                 params: tuple | None = None, on_prepare: bytes | None = None, seq_delta: int = 0) -> None:
        self.session = session
        self.reader = reader
        self.plan = plan  # None: results are not captured
        self.params = params
        self.on_prepare = on_prepare  # the COM_STMT_PREPARE payload
        self.seq_delta = seq_delta  # TLS on one hop only: the handshake's sequence ids are shifted
        self._held: tuple[bytes, Packet] | None = None

    def pump(self):
        session, reader = self.session, self.reader
        upstream, client = session.upstream, session.client
        assert upstream is not None
        if self._held is not None:
            out, pkt = self._held
            self._held = None
            self._emit(out, pkt)
        if reader.awaiting_client:
            return _NEED_CLIENT
        plan, frames, skim = self.plan, upstream.frames, reader.skim
        while reader.phase is not _DONE_PHASE:
            # Result-set metadata, rows and EOF terminators are only accounted for and forwarded, as many
            # at once as received (the EOF results need nothing from the session: see _on_result).
            run = frames.take_skimmed(skim)
            if run:
                client.write_raw(run)
                if reader.phase is _DONE_PHASE:
                    break
            pkt = frames.next_packet()
            if pkt is None:
                return None
            results = reader.results
            done_before = len(results)
            event = reader.feed(pkt.payload).event
            out = pkt.raw
            if type(event) is OkPacket:
                session._note_session_state(event)
                out = session._client_ok(event, pkt)
            if plan is not None and len(results) > done_before:
                wait = session._on_result(self, done_before, results[-1])
                if wait is not None:
                    self._held = (out, pkt)
                    return wait
            self._emit(out, pkt)
            if reader.awaiting_client:
                return _NEED_CLIENT
        return _DONE

    def _emit(self, out: bytes, pkt: Packet) -> None:
        client = self.session.client
        if self.seq_delta:
            payload = pkt.payload if out is pkt.raw else out[4:]  # a re-encoded OK is one small frame
            client.write(payload, (pkt.first_seq + self.seq_delta) & 0xFF)
        else:
            client.write_raw(out)

    def client_packet(self, data: Packet) -> None:
        """A client packet the response asked for: accounted for and queued for the primary."""
        upstream = self.session.upstream
        assert upstream is not None
        self.reader.feed_client(data.payload)
        if self.seq_delta:
            upstream.write(data.payload, (data.first_seq - self.seq_delta) & 0xFF)
        else:
            upstream.write_raw(data.raw)

    def finish(self) -> None:
        if self.on_prepare is not None and self.reader.prepare_ok is not None:
            self.session.prepared.on_prepared(self.on_prepare, self.reader)


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
        self._sync = config.ingress.durability == "sync"
        self._publish_timeout_s = config.ingress.publish_timeout_ms / 1000
        # command phase (push mode)
        self._done: asyncio.Future | None = None  # resolves (or fails) when the session ends
        self._busy = False  # a command is in flight (relayed by _relay, or run by _slow_task)
        self._relay: _Relay | None = None
        self._waiting = False  # the relay waits for a publish future
        self._slow_task: asyncio.Task | None = None
        self.tag = f"conn {next(_conn_ids)} from {client_addr}"

    # ---- lifecycle ---------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            if await self._handshake():
                await self._serve()
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
        task, self._slow_task = self._slow_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
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
            _, upstream = await asyncio.get_running_loop().create_connection(
                lambda: PacketStream(max_payload_bytes=1 << 30), dsn.host, dsn.port)
        except OSError as exc:
            log.error("%s: cannot reach the primary %s:%s: %s", self.tag, dsn.host, dsn.port, exc)
            self._send_client_error(2003, "HY000", "dbmux: the primary is unreachable", seq=0)
            return False
        self.upstream = upstream
        # Flow control: while one side cannot take more, reading from the other pauses.
        self.client.partner, upstream.partner = upstream, self.client
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
        await self._relay_async(_Relay(self, auth, seq_delta=self._auth_seq_delta))
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

    async def _relay_async(self, relay: _Relay) -> None:
        """Drive ``relay`` from a coroutine (pull mode), with the client packets it asks for."""
        client, upstream = self.client, self.upstream
        assert upstream is not None
        while True:
            step = relay.pump()
            if step is _DONE:
                break
            if step is None:
                await client.drain()  # the client gets what we have before we wait for more
                await upstream.receive_more()
            elif step is _NEED_CLIENT:
                await client.drain()
                relay.client_packet(await client.read())
                await upstream.drain()
            else:
                await step
        await client.drain()
        relay.finish()

    # ---- command phase (push mode) ---------------------------------------------------------------------
    async def _serve(self) -> None:
        """Serve commands until the client quits or a side goes away (raises what ended the session)."""
        assert self.upstream is not None
        self._done = asyncio.get_running_loop().create_future()
        self.client.flush()
        self._listen()
        if not self._done.done():
            self._on_client_data()  # commands that arrived with the handshake's last packet
        await self._done

    def _listen(self) -> None:
        assert self.upstream is not None
        self.client.listen(self._on_client_data, self._on_client_lost)
        self.upstream.listen(self._pump, self._on_upstream_lost)

    def _finish(self, exc: BaseException | None = None) -> None:
        """End the session (``run`` re-raises ``exc``, which decides what is logged and answered)."""
        done = self._done
        if done is not None and not done.done():
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)
        self.client.listen(None)
        if self.upstream is not None:
            self.upstream.listen(None)

    def _on_client_data(self) -> None:
        """Dispatch the complete commands the client sent, one at a time (push mode)."""
        client = self.client
        if self._busy:  # stays buffered until the command in flight is done
            client.limit_buffer()
            return
        frames = client.frames
        try:
            while not self._busy:
                cmd = frames.next_packet(0)
                if cmd is None:
                    break
                self._dispatch(cmd)
                if self._done is None or self._done.done():
                    return
        except Exception as exc:  # noqa: BLE001 - ProtocolError and friends end this session only
            self._finish(exc)
            return
        if not self._busy:
            client.flush()  # answers the ingress gave itself (refusals)
            self.upstream.flush()  # commands without a response (COM_STMT_CLOSE ...)
            if client.closed:
                self._finish(client.closed_error())

    def _on_client_lost(self, exc: BaseException | None) -> None:
        if not self._busy:
            self._on_client_data()  # what it sent before it left, then the end
        # else: the command in flight is relayed (and captured) to its end first

    def _on_upstream_lost(self, exc: BaseException | None) -> None:
        if not self._waiting:  # else the held OK goes out first (see _published)
            self._finish(self.upstream.closed_error())

    def _dispatch(self, cmd: Packet) -> None:
        payload = cmd.payload
        if not payload:
            raise ProtocolError("empty command packet")
        code = payload[0]
        if code == c.COM_STMT_EXECUTE:
            _, params, plan = self.prepared.on_execute(payload, self.upstream_caps)
            self._start(cmd.raw, code, plan, params)
        elif code == c.COM_QUERY:
            self._query(cmd)
        elif code == c.COM_QUIT:
            self._finish()
        elif code == c.COM_STMT_PREPARE:
            self._start(cmd.raw, code, on_prepare=payload)
        elif code in (c.COM_STMT_CLOSE, c.COM_STMT_SEND_LONG_DATA):
            # No response: queued, it goes upstream with the next command.
            self.prepared.on_no_response_command(payload, self.upstream_caps)
            self.upstream.write_raw(cmd.raw)
        elif code == c.COM_CHANGE_USER:
            self._slow(self._change_user(payload))
        elif code == c.COM_RESET_CONNECTION:
            self._slow(self._reset_connection(cmd.raw))
        elif code in (c.COM_BINLOG_DUMP, c.COM_BINLOG_DUMP_GTID, c.COM_REGISTER_SLAVE):
            self._send_client_error(1235, "42000",
                                    "dbmux: this command is not supported through the ingress; "
                                    "open a new connection instead")
        else:  # COM_INIT_DB, COM_PING, COM_STMT_RESET, COM_FIELD_LIST, ...
            self._start(cmd.raw, code)

    def _query(self, cmd: Packet) -> None:
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
        self._start(raw, c.COM_QUERY, plan)

    def _new_relay(self, raw: bytes, code: int, plan: QueryPlan | None, params: tuple | None,
                   on_prepare: bytes | None) -> _Relay:
        # A COM_STMT_EXECUTE that opens a cursor is answered with metadata only; rows come via COM_STMT_FETCH.
        # (raw = 4-byte frame header, command byte, 4-byte statement id, then the flags byte.)
        cursor = code == c.COM_STMT_EXECUTE and len(raw) > 9 and bool(raw[9] & 0x07)
        reader = ResponseReader(code, self.upstream_caps, self.ext_caps, cursor=cursor, decode_metadata=False)
        return _Relay(self, reader, plan, params, on_prepare)

    def _start(self, raw: bytes, code: int, plan: QueryPlan | None = None, params: tuple | None = None,
               on_prepare: bytes | None = None) -> None:
        """Send one command (``raw``: its frames, sequence ids from 0) upstream; its response is
        relayed by ``_pump`` as it arrives, capturing committed transactions."""
        upstream = self.upstream
        assert upstream is not None
        upstream.send(raw)
        self._relay = self._new_relay(raw, code, plan, params, on_prepare)
        self._busy = True
        if upstream.frames.buffered_bytes:  # (the primary does not speak first: rare)
            self._pump()

    def _pump(self) -> None:
        """Relay what the primary sent (the upstream's listener; also called to resume)."""
        relay = self._relay
        if relay is None or self._waiting:
            return  # nothing asked, or a held OK waits for Kafka: the bytes stay buffered
        try:
            step = relay.pump()
        except Exception as exc:  # noqa: BLE001 - a malformed response ends this session only
            self._finish(exc)
            return
        client = self.client
        client.flush()
        if step is _DONE:
            self._relay = None
            if relay.on_prepare is not None:
                relay.finish()
            self._idle()
        elif step is None:
            if self.upstream.closed:
                self._finish(self.upstream.closed_error())
        elif step is _NEED_CLIENT:  # rare (LOCAL INFILE data): the rest of this response in pull mode
            self._relay = None
            self._slow(self._relay_async(relay))
        else:
            self._waiting = True
            step.add_done_callback(self._published)

    def _published(self, _fut: asyncio.Future) -> None:
        self._waiting = False
        if self._done is not None and not self._done.done():
            self._pump()

    def _idle(self) -> None:
        self._busy = False
        if self.upstream.closed:  # it went away while a held OK waited for Kafka
            self._finish(self.upstream.closed_error())
            return
        client = self.client
        client.release_buffer()
        if client.frames.buffered_bytes or client.closed:
            self._on_client_data()

    def _slow(self, coro) -> None:
        """Run ``coro`` (a command with round trips of its own) as a task, both streams in pull mode."""
        self._busy = True
        self.client.listen(None)
        self.upstream.listen(None)
        self._slow_task = asyncio.get_running_loop().create_task(self._run_slow(coro))

    async def _run_slow(self, coro) -> None:
        try:
            await coro
        except Exception as exc:  # noqa: BLE001 - decided by run(), as for any other command
            self._finish(exc)
            return
        self._slow_task = None
        if self._done is None or self._done.done():
            return
        self._listen()  # reports a connection that ended meanwhile
        if not self._done.done():
            self._idle()

    # ---- commands with round trips of their own (pull mode) ------------------------------------------
    async def _forward_async(self, raw: bytes, code: int) -> _Relay:
        assert self.upstream is not None
        self.upstream.write_raw(raw)
        await self.upstream.drain()
        relay = self._new_relay(raw, code, None, None, None)
        await self._relay_async(relay)
        return relay

    async def _reset_connection(self, raw: bytes) -> None:
        await self._forward_async(raw, c.COM_RESET_CONNECTION)
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
        await self._relay_async(_Relay(self, reader))
        self.capture = TransactionCapture(last_gtid=self.capture.last_gtid)
        self.prepared.clear()
        if not reader.is_error:
            self.ctx.user = change.user.decode("utf-8", "replace")
            self.ctx.db = change.schema.decode("utf-8", "replace") if change.schema else None
            await self._setup_upstream()

    # ---- capture -------------------------------------------------------------------------------------
    def _on_result(self, relay: _Relay, index: int, result) -> asyncio.Future | None:
        """A statement's final OK/ERR/EOF; returns a future its packet must wait for (sync publish).
        EOF results need nothing (the relay does not even report those it skims)."""
        if type(result) is ErrPacket:
            self.capture.on_error(result.errno)
        elif type(result) is OkPacket:
            return self._on_statement_ok(relay.plan, index, result, relay.params)
        return None

    def _on_statement_ok(self, plan: QueryPlan, index: int, ok: OkPacket,
                         params: tuple | None) -> asyncio.Future | None:
        stmt = plan.statement(index)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: ok gtid=%s flags=0x%x kind=%s tcl=%s sql=%.60s", self.tag, ok.gtid, ok.status_flags,
                      stmt.kind, stmt.tcl, stmt.sql)
        commit = self.capture.on_success(StatementOutcome(
            sql=stmt.sql, kind=stmt.kind, tcl=stmt.tcl, unsafe=stmt.unsafe, status_flags=ok.status_flags,
            last_insert_id=ok.last_insert_id, gtid=ok.gtid, params=params, db=self.ctx.db))
        if commit is None:
            return None
        event = ChangeEvent(gtid=Gtid.parse(commit.gtid), source="ingress", ts_ms=int(time.time() * 1000),
                            db=commit.db, statements=commit.statements, session=self.ctx.snapshot())
        if not commit.statements:
            log.warning("%s: gtid %s committed with no captured statement; published empty (row form "
                        "comes from the binlog reader)", self.tag, commit.gtid)
        published = self.publisher.publish_within(event, self._publish_timeout_s)
        return published if self._sync else None

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
