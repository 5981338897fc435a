"""The command relay's read paths: the result cache and read routing (a mixin of ``ingress.relay.CommandRelay``).

Kept apart from the relay's core (forwarding, capture) so each stays readable; the methods run on the
relay's own state (its streams, state machine, session rules, cache and routing) and call back into its
forwarding (``_start``, ``_forward``, ``_query``, ``_slow``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from dbmux.ingress.cache_session import SessionCache
from dbmux.ingress.context import ConnectionContext
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.events import ResponseComplete
from dbmux.ingress.protocol.framing import Packet
from dbmux.ingress.protocol.state import ConnectionStateMachine
from dbmux.ingress.read_rules import ReadRoute
from dbmux.ingress.read_session import SessionReads, SessionRules, starts_read_only
from dbmux.ingress.result_cache import Ticket
from dbmux.ingress.statements import PreparedStatements, QueryPlan, bound_values, execute_values
from dbmux.ingress.wire import PacketStream


class ReadPaths:
    """The relay's read paths (see the module docstring)."""

    client: PacketStream
    ctx: ConnectionContext
    machine: ConnectionStateMachine
    prepared: PreparedStatements
    rules: SessionRules | None
    reads: SessionReads | None
    cache: SessionCache | None
    _ticket: Ticket | None

    # (the relay's own, called back)
    def _slow(self, coro: Coroutine[Any, Any, Callable[[], None] | None]) -> None: ...  # pragma: no cover
    def _query(self, cmd: Packet, routed: bool = False) -> None: ...  # pragma: no cover
    def _forward(self, cmd: Packet, raw: bytes, code: int, plan: QueryPlan | None,
                 params: tuple[Any, ...] | None = None) -> None: ...  # pragma: no cover

    # ---- the result cache (ingress.cache_session) ------------------------------------------------------
    def _may_cache(self, cmd: Packet) -> bool:
        """A command of one frame in a session whose state lets a cached answer stand for the primary's
        (``ingress.read_session.SessionRules``; not inside a read-only transaction on a replica)."""
        rules = self.rules
        assert rules is not None
        return (len(cmd.raw) == len(cmd.payload) + 4 and not rules.reason()
                and (self.reads is None or self.reads.txn is None))

    def _plain_execute(self, cmd: Packet, long_data: bool) -> bool:
        """A COM_STMT_EXECUTE the cache or a replica may answer: one frame, no cursor, no long data, no query
        attributes."""
        payload = cmd.payload
        return not (long_data or len(payload) < 10 or payload[5] & 0x07
                    or self.ctx.upstream_caps & c.CLIENT_QUERY_ATTRIBUTES or len(cmd.raw) != len(payload) + 4)

    def _cache_hit(self, cmd: Packet, sql: str) -> bool:
        """A hit by the statement's exact text, before it is planned (only cacheable reads are ever stored
        under a key, and the key holds all that decides the answer's bytes): answered, True."""
        cache = self.cache
        assert cache is not None
        if not self._may_cache(cmd):
            return False
        answer = cache.hit(sql)
        if answer is None:
            return False
        self.client.write_raw(answer)
        self.machine.process_type(ResponseComplete)
        return True

    def _cached(self, cmd: Packet, plan: QueryPlan) -> bool:
        """Answer a cacheable read from the cache (True), or wait for the same read in flight (True), or
        let it go on as a miss whose answer is kept (False)."""
        cache = self.cache
        assert cache is not None
        if len(plan.statements) != 1 or plan.statements[0].kind != "read" or not self._may_cache(cmd):
            return False
        answer, flight, key = cache.lookup(plan.statements[0].sql)
        return self._lookup_result(answer, flight, key, lambda: self._query(cmd))

    def _cached_execute(self, cmd: Packet, plan: QueryPlan | None, long_data: bool,
                        params: tuple[Any, ...] | None) -> bool:
        """As :meth:`_cached`, for a COM_STMT_EXECUTE of a prepared read (not one that opens a cursor, has
        long data or query attributes)."""
        cache, payload = self.cache, cmd.payload
        assert cache is not None
        st = self.prepared.get(int.from_bytes(payload[1:5], "little"))
        if (st is None or plan is None or plan.statements[0].kind != "read" or not self._plain_execute(cmd, long_data)
                or (st.num_params and st.raw_types is None) or not self._may_cache(cmd)):
            return False
        key = cache.execute_key(st.sql, st.raw_types, bound_values(payload, st.num_params))
        answer, flight, key_or_none = cache.lookup(st.sql, key, lambda: execute_values(payload, st,
                                                                                      self.ctx.upstream_caps))
        return self._lookup_result(answer, flight, key_or_none,
                                   lambda: self._forward(cmd, cmd.raw, c.COM_STMT_EXECUTE, plan, params))

    def _lookup_result(self, answer: bytes | None, flight: Ticket | None, key: tuple | None,
                       retry: Callable[[], None]) -> bool:
        """Act on a lookup: a hit is answered, a read in flight waited for (True); a miss goes on, its answer
        tapped (False)."""
        cache = self.cache
        assert cache is not None
        if answer is not None:
            self.client.write_raw(answer)
            self.machine.process_type(ResponseComplete)
            return True
        if flight is not None:  # (waiting from now on: the answer may land before the task runs)
            self._slow(self._wait_flight(cache.gate.cache.wait_for(flight), retry))
            return True
        if key is not None:
            self._ticket = cache.begin(key)
            self.client.tap = bytearray()
        return False

    async def _wait_flight(self, waiting: asyncio.Future[bytes | None],
                           retry: Callable[[], None]) -> Callable[[], None] | None:
        answer = await waiting
        if answer is None:  # (not kept: ask for it)
            return retry
        self.client.write_raw(answer)
        await self.client.drain()
        return None

    def _cache_done(self, ok: bool) -> None:
        """The answer of the cacheable miss in flight went out: keep it (``ok``) or not."""
        ticket, self._ticket = self._ticket, None
        tap, self.client.tap = self.client.tap, None
        if ticket is not None and self.cache is not None:
            gate = self.cache.gate
            if ok and tap is not None:
                gate.cache.store(ticket, bytes(tap))
            else:
                gate.cache.abandon(ticket)

    # ---- read routing (ingress.read_session) ------------------------------------------------------------
    def _query_reads(self, cmd: Packet, plan: QueryPlan, reads: SessionReads) -> bool:
        """Read routing of a COM_QUERY: True when it took the command (to a replica, or into the read-only
        transaction open on one); False: it goes to the primary as usual."""
        if reads.txn is not None:
            self._slow(self._in_replica_txn(cmd, c.COM_QUERY, plan))
            return True
        stmt = plan.statements[0] if len(plan.statements) == 1 and len(cmd.raw) == len(cmd.payload) + 4 else None
        if stmt is not None and stmt.kind == "read":
            route = reads.route(stmt.sql)
            if route is not None:
                self._serve_read(cmd, c.COM_QUERY, route, plan)
            return route is not None
        if stmt is not None and stmt.tcl == "begin" and starts_read_only(stmt.sql):
            self._serve_read(cmd, c.COM_QUERY, None, plan)
            return True
        reads.on_forwarded(plan)
        return False

    async def _in_replica_txn(self, cmd: Packet, code: int, plan: QueryPlan | None, sql: str = "",
                              num_params: int = 0, params: tuple[Any, ...] | None = None) -> Callable[[], None] | None:
        """A command while a read-only transaction is open on a replica (SessionReads.txn_route says where)."""
        reads = self.reads
        assert reads is not None
        text = sql or (plan.statements[0].sql if plan is not None and plan.statements else "")
        where = reads.txn_route(code, plan, text)
        if where in ("link", "end"):
            await reads.on_link(code, cmd.raw, sql, num_params)
            if where == "end":
                reads.end_txn()
            return None
        if where == "commit_first":
            await reads.commit_txn()
        elif code == c.COM_QUERY:
            reads.on_forwarded(plan)
        if code == c.COM_QUERY:
            return lambda: self._query(cmd, routed=reads.txn is not None)
        return lambda: self._forward(cmd, cmd.raw, code, plan, params)

    def _execute_on_replica(self, cmd: Packet, plan: QueryPlan | None, long_data: bool,
                            params: tuple[Any, ...] | None) -> bool:
        """Serve a prepared read from a replica when the routing rules allow (False: it goes to the primary)."""
        reads, payload = self.reads, cmd.payload
        assert reads is not None
        st = self.prepared.get(int.from_bytes(payload[1:5], "little"))
        if reads.txn is not None:
            self._slow(self._in_replica_txn(cmd, c.COM_STMT_EXECUTE, plan, st.sql if st else "",
                                            st.num_params if st else 0, params))
            return True
        if st is None or plan is None:
            return False
        if plan.statements[0].kind != "read":
            return False
        if not self._plain_execute(cmd, long_data):
            reads.count_fallback("prepared")
            return False
        route = reads.route(st.sql)
        if route is None:
            return False
        self._serve_read(cmd, c.COM_STMT_EXECUTE, route, plan, st.sql, st.num_params)
        return True

    def _serve_read(self, cmd: Packet, code: int, route: ReadRoute | None, plan: QueryPlan, sql: str = "",
                    num_params: int = 0) -> None:
        """The read (``route`` None: START TRANSACTION READ ONLY) goes to a replica, in pull mode; if it
        cannot, to the primary as usual."""
        reads = self.reads
        assert reads is not None

        raw = cmd.raw

        async def run() -> Callable[[], None] | None:
            if await (reads.begin(raw) if route is None else reads.serve(code, raw, route, sql, num_params)):
                # a replica's answer is kept only when it saw every acknowledged write (causal); in session
                # or bounded mode it may miss another session's write, which that session must not read
                self._cache_done(reads.router.consistency == "causal")
                return None
            return lambda: self._forward(cmd, raw, code, plan)

        self._slow(run())

