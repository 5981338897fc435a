"""Read routing for one client session: whether a read may leave the primary, and serving it from a replica.

The command relay (``ingress.relay``) asks :meth:`SessionReads.route` for every COM_QUERY and
COM_STMT_EXECUTE; a statement the rules send to a replica is served by :meth:`SessionReads.serve` (a
round trip of its own, in pull mode), which answers False when the read must go to the primary after
all -- then the relay forwards it as usual. What keeps a read on the primary, besides the statement's
own rules (:mod:`ingress.read_rules`), is the session's state (each a reason in
``dbmux_ingress_read_fallbacks_total``):

================  ====================================================================================
transaction       a transaction is open (``SERVER_STATUS_IN_TRANS``), read-only ones included
autocommit_off    autocommit is off (each read would open a transaction on the primary)
lock_tables       ``LOCK TABLES`` is in force
temporary_tables  the session has temporary tables (they exist on the primary only)
session_variables the session SET a variable the ingress does not carry to replicas (only ``sql_mode``,
                  ``time_zone``, ``NAMES``/``CHARACTER SET`` and ``character_set_*``/
                  ``collation_connection``, ``autocommit`` and user variables are carried or harmless)
auth_method       the client did not log in with ``mysql_native_password`` as the primary's stored hash
                  confirms (see ``ingress.replica_auth``)
prepared          a prepared execution that opens a cursor, has long data, or uses query attributes
================  ====================================================================================

The session's own floor (what ``session`` consistency promises: read-your-writes and monotonic reads)
is its last GTID as the primary reported it, raised to each replica position it read from.

Failures: a replica that fails before any byte of its answer reached the client (connect, login,
session setup, prepare, an ERR answer, a lost connection early in the answer) is dropped from the read
and the primary answers instead, invisibly. Once part of a result went out, the session ends as it
would when the primary's connection is lost (the client sees a lost connection).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dbmux.core.gtid import Gtid, GtidError
from dbmux.ingress.classify import scan
from dbmux.ingress.connection import Connection
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.errors import ProtocolError
from dbmux.ingress.protocol.framing import frame
from dbmux.ingress.protocol.response import ResponseReader
from dbmux.ingress.read_router import FALLBACKS, READS, ReadRouter, ReplicaState, merge
from dbmux.ingress.read_rules import ReadRoute, judge_read
from dbmux.ingress.replica_link import ReplicaLink, ReplicaLinkError, Settings
from dbmux.ingress.response_relay import DONE, ResponseRelay
from dbmux.ingress.statement_safety import SessionSafety
from dbmux.ingress.statements import QueryPlan
from dbmux.ingress.wire import PeerClosed

log = logging.getLogger(__name__)

FLUSH_BYTES = 64 * 1024  # an answer is held back up to this much (so a failing replica can still be replaced)
# Variables a session may SET without keeping its reads on the primary (carried to replicas, or not
# changing what a read answers).
_CARRIED = frozenset({
    "SQL_MODE", "TIME_ZONE", "NAMES", "CHARACTER", "CHARSET", "CHARACTER_SET_CLIENT", "CHARACTER_SET_CONNECTION",
    "CHARACTER_SET_RESULTS", "COLLATION_CONNECTION", "AUTOCOMMIT",
    # the next transaction's characteristics (a routed read is never in a transaction) and timeouts
    "TRANSACTION", "TX_ISOLATION", "TRANSACTION_ISOLATION", "TX_READ_ONLY", "TRANSACTION_READ_ONLY",
    "WAIT_TIMEOUT", "INTERACTIVE_TIMEOUT", "NET_READ_TIMEOUT", "NET_WRITE_TIMEOUT", "SQL_NOTES", "SQL_WARNINGS",
})
_SCOPES = frozenset({"SESSION", "LOCAL", "@@SESSION", "@@LOCAL"})
_UNSET = object()


class ReadLost(ConnectionError):
    """A replica failed after part of its answer reached the client: the session ends."""


def _set_names(sql: str) -> list[str]:
    """The variables a SET statement assigns (upper case; user variables as ``@``)."""
    names: list[str] = []
    depth = 0
    expect = True
    for t in scan(sql)[1:]:
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif depth == 0 and t.text == ",":
            expect = True
        elif expect and depth == 0:
            if t.type == "var":
                names.append("@")
                expect = False
            elif t.upper in _SCOPES or (t.type == "word" and t.upper in ("SESSION", "LOCAL")):
                continue
            elif t.type == "sysvar":
                name = t.text.split(".", 1)[-1].lstrip("@").upper()
                names.append(name)
                expect = False
            else:
                names.append(t.upper if t.type == "word" else t.text.upper())
                expect = False
    return names


def starts_read_only(sql: str) -> bool:
    """``START TRANSACTION READ ONLY`` (with or without ``WITH CONSISTENT SNAPSHOT``)."""
    try:
        words = [t.upper for t in scan(sql) if t.type == "word"]
    except Exception:  # noqa: BLE001 - (LexError) not one
        return False
    return words[:2] == ["START", "TRANSACTION"] and any(
        a == "READ" and b == "ONLY" for a, b in zip(words, words[1:], strict=False))


@dataclass(slots=True)
class _Pinned:
    """A read-only transaction open on a replica link."""

    replica: ReplicaState
    key: Any
    link: ReplicaLink


class SessionRules:
    """What keeps a session's reads where they are sent (the primary): an open transaction, autocommit off,
    LOCK TABLES, temporary tables, SET of a variable reads depend on that is not carried. Shared by read
    routing and the result cache."""

    def __init__(self, conn: Connection, safety: SessionSafety) -> None:
        self.conn = conn
        self.safety = safety
        self.pinned = ""  # a session-level reason that keeps every read on the primary
        self.locked = False  # LOCK TABLES in force

    def on_forwarded(self, plan: QueryPlan | None) -> None:
        """Take the session-level effects of statements sent to the primary."""
        if plan is None:
            return
        for stmt in plan.statements:
            if stmt.tcl == "lock_tables":
                self.locked = True
            elif stmt.tcl == "unlock_tables":
                self.locked = False
            elif (stmt.kind == "session" and stmt.cls is not None and stmt.cls.verb.startswith("SET")
                  and not self.pinned):  # (SET, SET NAMES, SET ROLE, ...)
                try:
                    names = _set_names(stmt.sql)
                except Exception:  # noqa: BLE001 - (LexError) unknown: keep reads on the primary
                    names = ["?"]
                if any(n != "@" and n not in _CARRIED for n in names):
                    self.pinned = "session_variables"

    def on_new_session(self) -> None:
        self.pinned = ""
        self.locked = False

    def reason(self) -> str:
        flags = self.conn.ctx.status_flags
        if flags & c.SERVER_STATUS_IN_TRANS:
            return "transaction"
        if not flags & c.SERVER_STATUS_AUTOCOMMIT:
            return "autocommit_off"
        if self.locked:
            return "lock_tables"
        if self.safety.temporary or self.safety.hidden_temporary:
            return "temporary_tables"
        return self.pinned


class SessionReads:
    """One session's read routing (see the module docstring)."""

    def __init__(self, router: ReadRouter, conn: Connection, rules: SessionRules,
                 last_gtid: Callable[[], str | None], types_of: Callable[[int], bytes | None]) -> None:
        self.router = router
        self.conn = conn
        self.rules = rules
        self.last_gtid = last_gtid
        self.types_of = types_of  # client statement id -> the parameter types its last bound execute sent
        self.floor: dict[str, int] = {}  # replica positions this session read from (monotonic reads)
        self._secret: object = _UNSET  # bytes | None once derived
        self.txn: _Pinned | None = None  # a read-only transaction open on a replica link

    def on_forwarded(self, plan: QueryPlan | None) -> None:
        self.rules.on_forwarded(plan)

    def on_new_session(self, user_changed: bool) -> None:
        """COM_RESET_CONNECTION or COM_CHANGE_USER: the primary's session starts over."""
        self.rules.on_new_session()
        self.close()
        if user_changed:
            self._secret = _UNSET

    # ---- routing --------------------------------------------------------------------------------------
    def route(self, sql: str) -> ReadRoute | None:
        """The read's route when it may go to a replica (None: the primary; the reason is counted)."""
        route = judge_read(sql)
        reason = route.reason or self._session_reason()
        if reason:
            if route.reason != "not_a_read":
                self.count_fallback(reason)
            return None
        return route

    def _session_reason(self) -> str:
        reason = self.rules.reason()
        if not reason and self._secret is None:
            return "auth_method"
        return reason

    def _own(self) -> dict[str, int]:
        own = dict(self.floor)
        text = self.last_gtid()
        if text:
            try:
                g = Gtid.parse(text)
            except GtidError:
                return own
            merge(own, {g.domain: g.seq})
        return own

    def count_fallback(self, reason: str) -> None:
        """A read the primary answers, and why (metrics)."""
        FALLBACKS.labels(reason).inc()
        READS.labels("primary").inc()

    def _fallback(self, reason: str) -> bool:
        self.count_fallback(reason)
        return False

    async def serve(self, code: int, raw: bytes, route: ReadRoute, prepared_sql: str = "", num_params: int = 0) -> bool:
        """Answer the command (``raw``: its frames) from a replica; False: nothing was sent, the primary
        must answer it. ``prepared_sql``/``num_params``: a COM_STMT_EXECUTE's statement."""
        return await self._on_replica(code, raw, route.tables, prepared_sql, num_params, begin=False)

    async def begin(self, raw: bytes) -> bool:
        """``START TRANSACTION READ ONLY``: opened on a replica that replicates every table (the session's
        statements then go there until the transaction ends: :meth:`txn_route`); False: the primary
        must take it (nothing was sent)."""
        reason = self._session_reason()
        if reason and reason != "autocommit_off":  # (an explicit transaction is one with autocommit off too)
            self.count_fallback(reason)
            return False
        return await self._on_replica(c.COM_QUERY, raw, (), "", 0, begin=True)

    async def _on_replica(self, code: int, raw: bytes, tables: tuple[str, ...], prepared_sql: str,
                          num_params: int, *, begin: bool) -> bool:
        conn, router = self.conn, self.router
        ctx = conn.ctx
        if self._secret is _UNSET:
            self._secret = await router.secret(ctx.user, conn.scramble, conn.auth_response)
        secret = self._secret
        if not isinstance(secret, bytes):
            return self._fallback("auth_method")
        try:
            need = await router.need(self._own())
        except ReplicaLinkError as exc:
            log.warning("read routing: %s", exc)
            return self._fallback("primary_position")
        replica, why = await router.choose(need, tables, ctx.db, whole=begin)
        if replica is None:
            return self._fallback(why)
        seen = dict(replica.applied)
        key = (ctx.user, secret, ctx.upstream_caps, ctx.ext_caps)
        if not router.may_try(replica, key):
            return self._fallback("replica_error")
        user = ctx.user.encode("utf-8", "surrogateescape")

        def opener() -> Awaitable[ReplicaLink]:
            return ReplicaLink.open(replica.host, replica.port, user, secret, ctx.upstream_caps, ctx.ext_caps,
                                    conn.charset_id)

        link: ReplicaLink | None = None
        answered = False
        try:
            link = await router.acquire(replica, key, opener)
            if ctx.db is None and link.db is not None:  # (no command unselects a database: a new link)
                link.close()
                link = await opener()
            await self._sync(link)
            if code == c.COM_STMT_EXECUTE:
                raw = await self._execute_frames(link, raw, prepared_sql, num_params)
            answered = await self._relay(link, code, raw)
        except ReplicaLinkError as exc:
            router.refused(replica, key, exc)
            log.warning("read routing: replica %s: %s; the primary answers", replica.name, exc)
            return self._fallback("replica_error")
        finally:
            if link is not None and not (begin and answered):  # back to the pool (an ERR answer leaves it
                router.release(replica, key, link)  # usable; a failed one is closed)
        if not answered:
            return self._fallback("replica_error")
        merge(self.floor, seen)
        READS.labels(replica.name).inc()
        if begin:
            assert link is not None
            self.txn = _Pinned(replica, key, link)
        return True

    async def _sync(self, link: ReplicaLink) -> None:
        ctx = self.conn.ctx
        await link.sync(ctx.db, Settings(ctx.sql_mode, ctx.time_zone, ctx.charset, ctx.charset_connection,
                                         ctx.collation_connection, ctx.charset_results))

    # ---- a read-only transaction on a replica ---------------------------------------------------------------
    def txn_route(self, code: int, plan: QueryPlan | None, sql: str) -> str:
        """Where a command goes while a read-only transaction is open on a replica: ``link`` (reads a replica
        answers, writes -- refused there as on the primary: the transaction is read only --, savepoints),
        ``end`` (COMMIT/ROLLBACK, on the link; the transaction is over), ``primary`` (reads of session
        state: variables, LAST_INSERT_ID(), SHOW ...; SET and USE, which the link then follows), or
        ``commit_first`` (a statement that commits implicitly, a temporary table, a batch: the replica
        transaction is committed, then the statement goes as it would outside it)."""
        if plan is None or len(plan.statements) != 1:
            return "commit_first" if plan is not None else "primary"
        stmt = plan.statements[0]
        if stmt.tcl in ("commit", "rollback"):
            return "end" if code == c.COM_QUERY else "commit_first"
        if stmt.implicit_commit or (stmt.cls is not None and stmt.cls.temporary):
            return "commit_first"
        if stmt.kind == "read":
            return "link" if judge_read(sql).replica else "primary"
        if stmt.kind == "session":
            return "primary"
        return "link"

    async def on_link(self, code: int, raw: bytes, prepared_sql: str = "", num_params: int = 0) -> None:
        """A command of the open read-only transaction, answered by its replica (whatever it answers: an
        error included). A link that fails ends the session (the transaction is lost)."""
        txn = self.txn
        assert txn is not None
        try:
            await self._sync(txn.link)
            if code == c.COM_STMT_EXECUTE:
                raw = await self._execute_frames(txn.link, raw, prepared_sql, num_params)
        except ReplicaLinkError as exc:
            self.close()
            raise ReadLost(f"the replica of a read-only transaction failed: {exc}") from None
        if not await self._relay(txn.link, code, raw, final=True):
            self.close()
            raise ReadLost("the replica of a read-only transaction failed")
        READS.labels(txn.replica.name).inc()

    def end_txn(self) -> None:
        """The transaction ended on its link (COMMIT, ROLLBACK): the link goes back to the pool."""
        txn, self.txn = self.txn, None
        if txn is not None:
            self.router.release(txn.replica, txn.key, txn.link)

    async def commit_txn(self) -> None:
        """End the open transaction on its replica before a statement that would commit it implicitly."""
        txn = self.txn
        if txn is None:
            return
        try:
            await txn.link.round_trip_query("COMMIT")
        except ReplicaLinkError:
            self.close()
            return
        self.conn.ctx.status_flags &= ~(c.SERVER_STATUS_IN_TRANS | c.SERVER_STATUS_IN_TRANS_READONLY)
        self.end_txn()

    def close(self) -> None:
        """The session ends (or starts over): an open replica transaction's link is closed (rolled back)."""
        txn, self.txn = self.txn, None
        if txn is not None:
            txn.link.close()

    async def _execute_frames(self, link: ReplicaLink, raw: bytes, sql: str, num_params: int) -> bytes:
        """The client's COM_STMT_EXECUTE for the link's statement id, its parameter types always bound."""
        payload = bytearray(raw[4:])  # (a command of one frame: route() is not asked for bigger ones)
        client_id = int.from_bytes(payload[1:5], "little")
        payload[1:5] = (await link.statement_id(sql)).to_bytes(4, "little")
        if num_params:
            flag_at = 10 + (num_params + 7) // 8
            if payload[flag_at] == 0:
                types = self.types_of(client_id)
                if types is None:
                    raise ReplicaLinkError("the statement's parameter types are unknown")
                payload[flag_at:flag_at + 1] = b"\x01" + types
        return frame(bytes(payload), 0)

    async def _relay(self, link: ReplicaLink, code: int, raw: bytes, *, final: bool = False) -> bool:
        """Relay the link's answer to the client; False when the primary must answer instead (nothing
        was sent). Raises :class:`ReadLost` when the link failed after part of the answer went out.
        ``final``: the link's answer is the answer, an error included (inside a replica transaction)."""
        ctx, client, stream = self.conn.ctx, self.conn.client, link.stream
        mark = client.mark()
        reader = ResponseReader(code, ctx.upstream_caps, ctx.ext_caps, decode_metadata=False)
        relay = ResponseRelay(client, stream, ctx, reader)
        sent = False
        stream.partner = client
        try:
            stream.send(raw)
            while True:
                step = relay.pump()
                if step is DONE:
                    break
                if step is not None:
                    raise ProtocolError("the replica's answer waits for the client")
                if client.queued_bytes() > FLUSH_BYTES:
                    sent = True
                    await client.drain()
                await stream.receive_more()
        except (OSError, ConnectionError, PeerClosed, ProtocolError) as exc:
            link.close()
            if sent:
                raise ReadLost(f"the replica failed while its answer was relayed: {exc}") from None
            client.rewind(mark)
            log.warning("read routing: a replica failed before answering (%s); the primary answers", exc)
            return False
        finally:
            stream.partner = None
        if reader.is_error and not sent and not final:  # (e.g. a table another session created, not there yet)
            client.rewind(mark)
            log.debug("%s: the replica answered %s; the primary answers", self.conn.tag, reader.final_result)
            return False
        await client.drain()
        return True
