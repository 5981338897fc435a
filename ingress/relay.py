"""The command phase of one client connection: classify, forward, capture (the ingress's Handler).

:class:`RelayHandler` is the :class:`~ingress.handler.Handler` the listener hands every authenticated
connection to; it serves each with a :class:`CommandRelay`. A relay touches only its own connection's
two streams, its own capture state and the shared :class:`~ingress.publisher.Publisher` (safe to
call from interleaved sessions).

The command phase is event-driven: both :class:`~ingress.wire.PacketStream` objects are in push
mode, a client command is dispatched from the client's ``data_received`` and the primary's response
is relayed from the upstream's ``data_received`` (a :class:`~ingress.response_relay.ResponseRelay`),
packet runs forwarded as they arrive, without a task switch. One command is in flight at a time: the
connection's state machine is in ``AWAIT_RESPONSE`` meanwhile, and what the client sends stays
buffered. Only a commit whose OK must wait for Kafka (``durability = sync``) pauses the relay (until
the publish future resolves); commands that need round trips of their own (COM_CHANGE_USER,
COM_RESET_CONNECTION) run as a coroutine in pull mode, then push mode resumes; so does the ingress's
own COMMIT before a statement that commits implicitly (:mod:`ingress.capture`), after which the
command goes as usual.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from prometheus_client import Counter

from dbmux.core.config import Config, IngressConfig
from dbmux.core.events import ChangeEvent
from dbmux.core.gtid import Gtid
from dbmux.core.passwords import redact_text
from dbmux.ingress.cache_session import CacheGate, SessionCache
from dbmux.ingress.capture import Commit, StatementOutcome, TransactionCapture
from dbmux.ingress.connection import Connection
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.commands import ComChangeUser, ComQuery
from dbmux.ingress.protocol.errors import ProtocolError
from dbmux.ingress.protocol.events import ResponseComplete
from dbmux.ingress.protocol.framing import Packet, frame
from dbmux.ingress.protocol.generic_packets import EofPacket, ErrPacket, OkPacket
from dbmux.ingress.protocol.response import ResponseReader, StatementResult
from dbmux.ingress.protocol.state import ConnectionState
from dbmux.ingress.publisher import Publishes
from dbmux.ingress.read_router import ReadRouter
from dbmux.ingress.read_session import SessionReads, SessionRules
from dbmux.ingress.relay_reads import ReadPaths
from dbmux.ingress.response_relay import DONE, NEED_CLIENT, ResponseRelay, relay_pull
from dbmux.ingress.result_cache import Ticket
from dbmux.ingress.schema_facts import SchemaFacts
from dbmux.ingress.statement_safety import SessionSafety
from dbmux.ingress.statements import (
    COMMIT_FIRST,
    COMMIT_SQL,
    PlannedStatement,
    PreparedStatements,
    QueryPlan,
    plan_query,
    with_commits,
    with_types_for_primary,
)

log = logging.getLogger(__name__)

_AWAIT_RESPONSE = ConnectionState.AWAIT_RESPONSE  # (module globals: faster than the Enum class lookup)
_REFUSED = (c.COM_BINLOG_DUMP, c.COM_BINLOG_DUMP_GTID, c.COM_REGISTER_SLAVE)

COMMITS_UNATTRIBUTED = Counter(
    "dbmux_ingress_commits_unattributed_total",
    "Commits whose statements the ingress cannot vouch for; not published (the binlog reader's copy stands)",
)
COMMITS_FIRST = Counter(
    "dbmux_ingress_commits_first_total",
    "COMMITs the ingress sent before a statement that commits implicitly, so each transaction gets its GTID",
)


class RelayHandler:
    """The ingress's Handler: one :class:`CommandRelay` per connection, all publishing to ``publisher``."""

    def __init__(self, config: Config, publisher: Publishes, facts: SchemaFacts | None = None,
                 router: ReadRouter | None = None, gate: CacheGate | None = None) -> None:
        self.ingress = config.ingress
        self.publisher = publisher
        self.facts = facts  # the primary's schema facts, shared by every session (ingress.schema_facts)
        self.router = router  # read routing (ingress.reads = "replicas"), shared by every session
        self.gate = gate  # the result cache (ingress.cache_bytes > 0), shared by every session

    async def serve(self, conn: Connection) -> None:
        gate = self.gate
        if gate is not None:
            gate.own_connections.add(conn.ctx.connection_id)
        try:
            await CommandRelay(conn, self.publisher, self.ingress, self.facts, self.router, gate).serve()
        finally:
            if gate is not None:
                gate.forget_connection(conn.ctx.connection_id)


class CommandRelay(ReadPaths):
    """The command phase of one authenticated connection (see the module docstring)."""

    def __init__(self, conn: Connection, publisher: Publishes, ingress: IngressConfig,
                 facts: SchemaFacts | None = None, router: ReadRouter | None = None,
                 gate: CacheGate | None = None) -> None:
        assert conn.upstream is not None
        self.conn = conn
        self.client, self.upstream = conn.client, conn.upstream
        self.ctx = conn.ctx
        self.machine = conn.machine
        self.publisher = publisher
        self.capture = TransactionCapture(last_gtid=conn.last_gtid, late_reports=not conn.is_mariadb)
        self.prepared = PreparedStatements()
        ctx = conn.ctx
        # session and schema rules for `unsafe`
        self.safety = SessionSafety(facts, ingress.statement_safety, lambda: ctx.foreign_key_checks)
        self.tag = conn.tag
        rules = SessionRules(conn, self.safety) if router is not None or gate is not None else None
        self.rules = rules
        self.reads = None if router is None or rules is None else SessionReads(
            router, conn, rules, lambda: self.capture.last_gtid, self._types_of)
        self.cache = None if gate is None else SessionCache(gate, ctx)
        self._ticket: Ticket | None = None  # a cacheable read's miss in flight (its answer is tapped)
        self._sync = ingress.durability == "sync"
        self._publish_timeout_s = ingress.publish_timeout_ms / 1000
        self._done: asyncio.Future[None] | None = None  # resolves (or fails) when the session ends
        self._relay: ResponseRelay | None = None  # the response relayed in push mode
        self._waiting = False  # the relay waits for a publish future
        self._slow_task: asyncio.Task[None] | None = None  # a command run in pull mode

    def _types_of(self, stmt_id: int) -> bytes | None:
        st = self.prepared.get(stmt_id)
        return None if st is None else st.raw_types

    @property
    def busy(self) -> bool:
        """A command is in flight (its response is relayed, or it runs in pull mode)."""
        return self.machine.state is _AWAIT_RESPONSE

    # ---- lifecycle -----------------------------------------------------------------------------------
    async def serve(self) -> None:
        """Serve commands until the client quits or a side goes away (raises what ended the session)."""
        self._done = asyncio.get_running_loop().create_future()
        try:
            self.client.flush()
            self._listen()
            if not self._done.done():
                self._on_client_data()  # commands that arrived with the handshake's last packet
            await self._done
        finally:
            self._finish()
            task, self._slow_task = self._slow_task, None
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    def _listen(self) -> None:
        self.client.listen(self._on_client_data, self._on_client_lost)
        self.upstream.listen(self._pump, self._on_upstream_lost)

    def _finish(self, exc: BaseException | None = None) -> None:
        """End the session (``serve`` raises ``exc``, which decides what is logged and answered)."""
        done = self._done
        if done is not None and not done.done():
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)
        self.client.listen(None)
        self.upstream.listen(None)
        self.safety.close()
        if self.reads is not None:
            self.reads.close()
        self._cache_done(False)

    # ---- push mode -----------------------------------------------------------------------------------
    def _on_client_data(self) -> None:
        """Dispatch the complete commands the client sent, one at a time."""
        client, machine = self.client, self.machine
        if machine.state is _AWAIT_RESPONSE:  # stays buffered until the command in flight is done
            client.limit_buffer()
            return
        frames = client.frames
        try:
            while machine.state is not _AWAIT_RESPONSE:
                cmd = frames.next_packet(0)
                if cmd is None:
                    break
                self._dispatch(cmd)
                if self._done is None or self._done.done():
                    return
        except Exception as exc:  # noqa: BLE001 - ProtocolError and friends end this session only
            self._finish(exc)
            return
        if machine.state is not _AWAIT_RESPONSE:
            client.flush()  # answers the ingress gave itself (refusals)
            self.upstream.flush()  # commands without a response (COM_STMT_CLOSE ...)
            if client.closed:
                self._finish(client.closed_error())

    def _on_client_lost(self, exc: BaseException | None) -> None:
        if self.machine.state is not _AWAIT_RESPONSE:
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
        self.machine.process_command(code)  # COMMAND -> AWAIT_RESPONSE (COMMAND: no response; CLOSED: quit)
        if code == c.COM_STMT_EXECUTE:
            long_data = self.rules is not None and self.prepared.sent_long_data(payload)
            _, params, plan = self.prepared.on_execute(payload, self.ctx.upstream_caps)
            if self.cache is not None and self._cached_execute(cmd, plan, long_data, params):
                return
            if self.reads is None or not self._execute_on_replica(cmd, plan, long_data, params):
                if self.reads is not None:
                    self.reads.on_forwarded(plan)
                self._forward(cmd, cmd.raw, code, plan, params)
        elif code == c.COM_QUERY:
            self._query(cmd)
        elif code == c.COM_QUIT:
            self._finish()
        elif code == c.COM_STMT_PREPARE:
            self._start(cmd.raw, code, on_prepare=payload)
        elif code in (c.COM_STMT_CLOSE, c.COM_STMT_SEND_LONG_DATA):
            # No response: queued, it goes upstream with the next command.
            self.prepared.on_no_response_command(payload, self.ctx.upstream_caps)
            self.upstream.write_raw(cmd.raw)
        elif code == c.COM_CHANGE_USER:
            self._slow(self._change_user(payload))
        elif code == c.COM_RESET_CONNECTION:
            self._slow(self._reset_connection(cmd.raw))
        elif code == c.COM_STMT_RESET:
            self.prepared.on_reset(payload)
            self._start(cmd.raw, code)
        elif code in _REFUSED:
            self._refuse(cmd, "dbmux: this command is not supported through the ingress; open a new connection "
                              "instead")
        else:  # COM_INIT_DB, COM_PING, COM_FIELD_LIST, ...
            self._start(cmd.raw, code)

    def _refuse(self, cmd: Packet, message: str) -> None:
        """Answer the command in flight with an error of the ingress's own, at once (it never reaches the
        primary); its sequence id follows the command's last frame."""
        log.info("%s: refused command 0x%02X (%d bytes): %s", self.tag, cmd.payload[0], len(cmd.payload), message)
        self.conn.send_error(1235, "42000", message, seq=(cmd.last_seq + 1) & 0xFF)
        self.client.flush()
        self.machine.process_type(ResponseComplete)

    def _query(self, cmd: Packet, routed: bool = False) -> None:
        """A COM_QUERY (``routed``: read routing already decided it goes to the primary)."""
        ctx = self.ctx
        attributes, start = ComQuery.parse_head(cmd.payload, ctx.upstream_caps)
        with memoryview(cmd.payload) as view, view[start:] as text:  # (decoded in place: one copy, not two)
            sql = str(text, "utf-8", "surrogateescape")
        if self.cache is not None and not routed and self._cache_hit(cmd, sql):
            return
        zone = ctx.time_zone
        if zone == "SYSTEM":
            zone = ctx.system_time_zone
        backslash = "NO_BACKSLASH_ESCAPES" not in (ctx.sql_mode or "")
        plan = plan_query(sql, time_zone=zone, backslash_escapes=backslash)
        if plan.refusal:
            self._refuse(cmd, plan.refusal)
            return
        if len(plan.statements) > 1 and ctx.upstream_caps & c.CLIENT_MULTI_STATEMENTS:
            plan = with_commits(plan, bool(self.capture.pending))  # COMMITs of the ingress's own, in the batch
        if self.cache is not None and not routed and self._cached(cmd, plan):
            return
        if self.reads is not None and not routed and self._query_reads(cmd, plan, self.reads):
            return
        if self.rules is not None and self.reads is None:
            self.rules.on_forwarded(plan)
        raw = cmd.raw
        if plan.rewritten is not None:
            rewritten = ComQuery(plan.rewritten.encode("utf-8", "surrogateescape"), attributes)
            raw = frame(rewritten.encode(ctx.upstream_caps), 0)
        self._forward(cmd, raw, c.COM_QUERY, plan)

    def _forward(self, cmd: Packet, raw: bytes, code: int, plan: QueryPlan | None,
                 params: tuple[Any, ...] | None = None) -> None:
        """Send the client's command, first committing the open transaction where its first statement
        would commit it implicitly as well as be a transaction of its own (see ``ingress.capture``)."""
        first = plan.statements[0] if plan is not None and plan.statements else None
        if first is not None and self.capture.needs_commit_before(first.kind, first.implicit_commit):
            self._slow(self._commit_first(cmd, raw, code, plan, params))
        else:
            self._start(raw, code, plan, params)

    def _new_relay(self, raw: bytes, code: int, plan: QueryPlan | None, params: tuple[Any, ...] | None,
                   on_prepare: bytes | None) -> ResponseRelay:
        # A COM_STMT_EXECUTE that opens a cursor is answered with metadata only; rows come via COM_STMT_FETCH.
        # (raw = 4-byte frame header, command byte, 4-byte statement id, then the flags byte.)
        ctx = self.ctx
        cursor = code == c.COM_STMT_EXECUTE and len(raw) > 9 and bool(raw[9] & 0x07)
        reader = ResponseReader(code, ctx.upstream_caps, ctx.ext_caps, cursor=cursor, decode_metadata=False)
        return ResponseRelay(self.client, self.upstream, ctx, reader, self, plan, params, on_prepare)

    def _start(self, raw: bytes, code: int, plan: QueryPlan | None = None, params: tuple[Any, ...] | None = None,
               on_prepare: bytes | None = None) -> None:
        """Send one command (``raw``: its frames, sequence ids from 0) upstream; its response is
        relayed by ``_pump`` as it arrives, capturing committed transactions."""
        upstream = self.upstream
        self.safety.on_dispatch(plan, self.ctx.db)
        if self.cache is not None:
            self.cache.on_dispatch(plan, params)
        if code == c.COM_STMT_EXECUTE and self.rules is not None and len(raw) == int.from_bytes(raw[:3], "little") + 4:
            st = self.prepared.get(int.from_bytes(raw[5:9], "little"))
            if st is not None:  # (earlier executes may have been answered elsewhere)
                raw = with_types_for_primary(raw, st)
        upstream.send(raw)
        self._relay = self._new_relay(raw, code, plan, params, on_prepare)
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
        self.client.flush()
        if step is DONE:
            self._relay = None
            if relay.on_prepare is not None:
                self._response_done(relay)
            if self._ticket is not None:
                self._cache_done(not relay.reader.is_error)
            self._idle()
        elif step is None:
            if self.upstream.closed:
                self._finish(self.upstream.closed_error())
        elif step is NEED_CLIENT:  # rare (LOCAL INFILE data): the rest of this response in pull mode
            self._relay = None
            self._slow(self._relay_pull(relay))
        else:  # a held OK waits for its publish
            assert not isinstance(step, str)
            self._waiting = True
            step.add_done_callback(self._published)

    def _published(self, _fut: asyncio.Future[bool]) -> None:
        self._waiting = False
        if self._done is not None and not self._done.done():
            self._pump()

    def _response_done(self, relay: ResponseRelay) -> None:
        if relay.on_prepare is not None and relay.reader.prepare_ok is not None:
            self.prepared.on_prepared(relay.on_prepare, relay.reader)

    def _idle(self) -> None:
        """The command in flight is done: the next one may go."""
        try:
            self.machine.process_type(ResponseComplete)  # AWAIT_RESPONSE -> COMMAND
        except ProtocolError as exc:
            self._finish(exc)
            return
        if self.upstream.closed:  # it went away while a held OK waited for Kafka
            self._finish(self.upstream.closed_error())
            return
        self._next_commands()

    def _next_commands(self) -> None:
        """Go on with what the client sent while a command was in flight."""
        client = self.client
        client.release_buffer()
        if client.frames.buffered_bytes or client.closed:
            self._on_client_data()

    # ---- commands with round trips of their own (pull mode) --------------------------------------------
    def _slow(self, coro: Coroutine[Any, Any, Callable[[], None] | None]) -> None:
        """Run ``coro`` (a command with round trips of its own) as a task, both streams in pull mode."""
        self.client.listen(None)
        self.upstream.listen(None)
        self._slow_task = asyncio.get_running_loop().create_task(self._run_slow(coro))

    async def _run_slow(self, coro: Coroutine[Any, Any, Callable[[], None] | None]) -> None:
        """Run ``coro``; then the command is done, or, when it returns a callable, that goes on with it
        (in push mode)."""
        try:
            after = await coro
        except Exception as exc:  # noqa: BLE001 - decided by serve()'s caller, as for any other command
            self._finish(exc)
            return
        self._slow_task = None
        if self._done is None or self._done.done():
            return
        self._listen()  # reports a connection that ended meanwhile
        if not self._done.done():
            (after or self._idle)()
            # (what goes on may have been answered at once -- a cache hit --: then the next commands go)
            if after is not None and self.machine.state is not _AWAIT_RESPONSE and not self._done.done():
                self.client.flush()
                self._next_commands()

    async def _commit_first(self, cmd: Packet, raw: bytes, code: int, plan: QueryPlan | None,
                            params: tuple[Any, ...] | None) -> Callable[[], None] | None:
        """The ingress's own COMMIT, answered to nobody, its transaction captured and published; then
        the command goes on as usual. If the commit fails, the client gets its ERR as the command's
        answer and the command is not sent (as when a statement's implicit commit fails)."""
        COMMITS_FIRST.inc()
        ctx, upstream = self.ctx, self.upstream
        upstream.write(ComQuery(COMMIT_SQL.encode()).encode(ctx.upstream_caps), 0)
        await upstream.drain()
        reader = ResponseReader(c.COM_QUERY, ctx.upstream_caps, ctx.ext_caps)
        last = await upstream.read()
        reader.feed(last.payload)
        while not reader.complete:  # (progress reports)
            last = await upstream.read()
            reader.feed(last.payload)
        result = reader.final_result
        if type(result) is OkPacket:
            ctx.note_session_state(result)
            wait = self._on_statement_ok(COMMIT_FIRST, result, None)
            if wait is not None:
                await wait
            return lambda: self._start(raw, code, plan, params)
        if type(result) is not ErrPacket:
            raise ProtocolError(f"the primary answered the ingress's COMMIT with {type(result).__name__}")
        self.capture.on_error(result.errno)
        log.info("%s: the ingress's COMMIT before an implicitly committing statement failed: %s %s", self.tag,
                 result.errno, result.message)
        self.client.write(last.payload, (cmd.last_seq + 1) & 0xFF)
        self.client.flush()
        return None

    async def _relay_pull(self, relay: ResponseRelay) -> None:
        await relay_pull(relay)
        self._response_done(relay)

    async def _reset_connection(self, raw: bytes) -> None:
        self.upstream.write_raw(raw)
        await self.upstream.drain()
        await relay_pull(self._new_relay(raw, c.COM_RESET_CONNECTION, None, None, None))
        if self.reads is not None:
            self.reads.on_new_session(user_changed=False)
        await self._new_session()

    async def _change_user(self, payload: bytes) -> None:
        """COM_CHANGE_USER: the primary re-authenticates (any open transaction is rolled back)."""
        ctx = self.ctx
        change = ComChangeUser.parse(payload, ctx.upstream_caps)
        self.upstream.write(payload, 0)
        await self.upstream.drain()
        reader = ResponseReader(c.COM_CHANGE_USER, ctx.upstream_caps, ctx.ext_caps)
        await relay_pull(ResponseRelay(self.client, self.upstream, ctx, reader))
        if reader.is_error:
            self._forget_session()
            return
        ctx.user = change.user.decode("utf-8", "replace")
        ctx.db = change.schema.decode("utf-8", "replace") if change.schema else None
        self.conn.auth_response = change.auth_response
        if self.reads is not None:
            self.reads.on_new_session(user_changed=True)
        await self._new_session()

    def _forget_session(self) -> None:
        """The primary's session was reset: no open transaction, no prepared statement."""
        self.capture = TransactionCapture(last_gtid=self.capture.last_gtid, late_reports=self.capture.late_reports)
        self.prepared.clear()
        self.safety.reset()

    async def _new_session(self) -> None:
        self._forget_session()
        if await self.conn.setup_upstream():
            self.capture.last_gtid = self.conn.last_gtid

    # ---- capture -------------------------------------------------------------------------------------
    def on_result(self, relay: ResponseRelay, index: int, result: StatementResult) -> asyncio.Future[bool] | None:
        """A statement's final OK/ERR, or the EOF that ends its result set (the ResultSink of the relays
        this relay starts); returns a future its packet must wait for (sync publish)."""
        assert relay.plan is not None  # (a relay reports results only when it has a plan)
        stmt = self.safety.settle(index, relay.plan.statement(index), result, self.ctx.db)
        kind = type(result)
        if kind is OkPacket:
            assert isinstance(result, OkPacket)
            return self._on_statement_ok(stmt, result, relay.params)
        if kind is ErrPacket:
            assert isinstance(result, ErrPacket)
            self.capture.on_error(result.errno, may_write=stmt.kind != "read")
        elif kind is EofPacket and stmt.kind != "read":  # a write answered with rows (RETURNING)
            assert isinstance(result, EofPacket)
            if self.cache is not None:
                self.cache.on_ok(stmt, result.status_flags, relay.params)
            self.capture.on_success(self._outcome(stmt, result.status_flags, 0, None, relay.params, rows=True,
                                                  reports_state=False))  # (no GTID: never a commit)
        return None

    def _outcome(self, stmt: PlannedStatement, status_flags: int, last_insert_id: int, gtid: str | None,
                 params: tuple[Any, ...] | None, *, rows: bool, reports_state: bool = True) -> StatementOutcome:
        return StatementOutcome(
            sql=stmt.sql, kind=stmt.kind, tcl=stmt.tcl, unsafe=stmt.unsafe, status_flags=status_flags,
            last_insert_id=last_insert_id, gtid=gtid, params=params, db=self.ctx.db, charset=self.ctx.charset,
            implicit_commit=stmt.implicit_commit, reports_state=reports_state, rows=rows)

    def _on_statement_ok(self, stmt: PlannedStatement, ok: OkPacket,
                         params: tuple[Any, ...] | None) -> asyncio.Future[bool] | None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: ok gtid=%s flags=0x%x kind=%s tcl=%s sql=%.60s", self.tag, ok.gtid, ok.status_flags,
                      stmt.kind, stmt.tcl, redact_text(stmt.sql[:200]))
        if self.cache is not None:  # (before the writer sees its OK)
            self.cache.on_ok(stmt, ok.status_flags, params)
        rows = ok.header == c.EOF_HEADER  # the OK that ends a result set (CLIENT_DEPRECATE_EOF)
        commit = self.capture.on_success(self._outcome(stmt, ok.status_flags, ok.last_insert_id, ok.gtid, params,
                                                       rows=rows))
        return None if commit is None else self._publish(commit)

    def _publish(self, commit: Commit) -> asyncio.Future[bool] | None:
        if commit.unattributed is not None:
            COMMITS_UNATTRIBUTED.inc()
            log.info("%s: gtid %s not published (%s); the binlog reader's copy stands", self.tag, commit.gtid,
                     commit.unattributed)
            return None
        event = ChangeEvent(gtid=Gtid.parse(commit.gtid), source="ingress", ts_ms=int(time.time() * 1000),
                            db=commit.db, statements=commit.statements, session=self.ctx.snapshot())
        published = self.publisher.publish_within(event, self._publish_timeout_s)
        return published if self._sync else None
