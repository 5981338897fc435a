"""One server response relayed to the client, as a synchronous step function for either I/O mode.

:class:`ResponseRelay` is shared by both phases of a connection: the connection phase relays the
authentication exchange with it (``ingress.connection``), the command relay every command's response
(``ingress.relay``), driven from the upstream stream's ``data_received`` in push mode or by
:func:`relay_pull` from a coroutine. It knows the two streams, the :class:`ConnectionContext` (OK
packets update it and are stripped for the client) and, for captured commands, a :class:`ResultSink`;
it never reaches into its owner.

What goes to the client is what the primary would have sent it (invariant 5). The ingress negotiates
CLIENT_SESSION_TRACK with the primary and tracks more than a client would (``ingress.context``), so:
OK packets are re-encoded for the client (:meth:`ConnectionContext.client_ok`), and the
``SERVER_SESSION_STATE_CHANGED`` flag of EOF packets is settled. The primary sets that flag in EOF
packets from the first tracked change of a statement on -- for clients without session tracking too
-- so an EOF packet flagging it may owe the flag to a change only the ingress tracks (the GTID of a
write inside a CALL, typically before its OUT-parameter result set). Such an EOF packet, and what
follows it, is held back until the next OK or ERR packet says what changed: the flag stays when a
change the client tracks is among them, and is cleared otherwise. Where both kinds changed within one
statement, the flag stays on every held EOF packet (the primary's order of the changes is not visible
in the protocol). A hold that would pass ``HOLD_MAX_BYTES``, or a response that ends without an OK,
clears the flag (a write inside a procedure is the common cause). Clients with CLIENT_DEPRECATE_EOF
get OK packets instead of EOF packets, settled exactly by ``client_ok``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from dbmux.ingress.context import ConnectionContext
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.framing import HEADER_BYTES, Packet, frame
from dbmux.ingress.protocol.generic_packets import ErrPacket, OkPacket
from dbmux.ingress.protocol.response import PacketKind, Phase, ResponseReader, StatementResult
from dbmux.ingress.statements import QueryPlan
from dbmux.ingress.wire import PacketStream

_DONE_PHASE = Phase.DONE  # (a module global: an Enum member looked up on its class costs ~80 ns)
_EOF_KIND = PacketKind.EOF
_CHANGED_HIGH = c.SERVER_SESSION_STATE_CHANGED >> 8  # the flag in an EOF payload's byte 4 (status high)
HOLD_MAX_BYTES = 1 << 20  # packets held back while an EOF packet's flag is unsettled (module docstring)

# What ResponseRelay.pump returns besides None (needs more server bytes) and a future (wait for it).
DONE = "done"
NEED_CLIENT = "need_client"


class ResultSink(Protocol):
    """Who captures the results of a relayed command (see :attr:`ResponseRelay.plan`)."""

    def on_result(self, relay: ResponseRelay, index: int, result: StatementResult) -> asyncio.Future[bool] | None:
        """Statement ``index``'s final OK/ERR/EOF of ``relay``'s response (the EOF packets that end result
        sets only where the plan has writes: ``QueryPlan.has_writes``); returns a future the statement's
        packet must wait for before it goes to the client, or None (always for an EOF)."""


class ResponseRelay:
    """The relay of one server response to the client.

    :meth:`pump` takes what the upstream stream has buffered, accounts for it with the command's
    :class:`ResponseReader` and queues it for the client: result rows as whole raw runs, every other
    packet as the raw frame received, except OK packets (re-encoded for the client) and EOF packets
    whose SERVER_SESSION_STATE_CHANGED flag is settled (see the module docstring). It returns
    ``None`` when it needs more server bytes, ``DONE`` when the response is complete, ``NEED_CLIENT``
    when the response waits for a client packet (authentication exchange, LOCAL INFILE data; pass it
    to :meth:`client_packet`), or a future: a statement's final OK is held back until that future (the
    commit's publish) resolves, then the next ``pump`` sends it on.

    ``plan`` (None: results are not captured), ``params`` and ``on_prepare`` (the COM_STMT_PREPARE
    payload) are the owner's, carried for its ``sink``; ``seq_delta`` is set when TLS is on one hop
    only: the handshake's sequence ids are then shifted between the hops.

    The results of the plan's internal statements (``QueryPlan.internal``: a COMMIT the ingress put
    into a batch) are the ingress's own: their OK goes to the sink but not to the client, and every
    packet after it moves up one sequence id (``seq_delta``), so the client sees the answer to what it
    sent. An internal statement's ERR is relayed: it ends the batch, as the implicit commit's failure
    would have.
    """

    __slots__ = ("client", "upstream", "ctx", "reader", "sink", "plan", "params", "on_prepare", "seq_delta",
                 "_held", "_result_sets", "_unsettled")

    def __init__(self, client: PacketStream, upstream: PacketStream, ctx: ConnectionContext, reader: ResponseReader,
                 sink: ResultSink | None = None, plan: QueryPlan | None = None, params: tuple[Any, ...] | None = None,
                 on_prepare: bytes | None = None, seq_delta: int = 0) -> None:
        self.client = client
        self.upstream = upstream
        self.ctx = ctx
        self.reader = reader
        self.sink = sink
        self.plan = plan
        self.params = params
        self.on_prepare = on_prepare
        self.seq_delta = seq_delta
        self._held: tuple[bytes | None, Packet] | None = None
        self._result_sets = plan is not None and plan.has_writes  # result-set ends go to the sink too
        self._unsettled: _UnsettledEofs | None = None  # held back for their flag (module docstring)

    def pump(self) -> asyncio.Future[bool] | str | None:
        reader = self.reader
        held = self._held
        if held is not None:
            self._held = None
            self._emit(*held)
        if reader.awaiting_client:
            self._settle(False)
            return NEED_CLIENT
        client, plan, frames, skim = self.client, self.plan, self.upstream.frames, reader.skim
        results = reader.results
        while reader.phase is not _DONE_PHASE:
            # Result-set metadata, rows and EOF terminators are only accounted for and forwarded, as many
            # at once as received (EOF results go to the sink only where a statement may write).
            before = len(results)
            run = frames.take_skimmed(skim)
            if run:
                run = _renumbered(run, self.seq_delta) if self.seq_delta else run
                if self._unsettled is None:
                    client.write_raw(run)
                else:
                    self._hold(run, False)
                if self._result_sets and len(results) > before:
                    assert self.sink is not None  # (the owner that gives a plan is its sink)
                    for index in range(before, len(results)):
                        self.sink.on_result(self, index, results[index])  # (an EOF never waits)
                if reader.phase is _DONE_PHASE:
                    break
            pkt = frames.next_packet()
            if pkt is None:
                return None
            done_before = len(results)
            kind, event = reader.feed(pkt.payload)
            out: bytes | None = pkt.raw
            eof = False
            if type(event) is OkPacket:
                ctx = self.ctx
                ctx.note_session_state(event)
                out = ctx.client_ok(event, pkt)
                if self._unsettled is not None:
                    self._settle(any(ctx.client_tracks(ch) for ch in event.session_state_changes))
            elif kind is _EOF_KIND:  # an EOF packet (a DEPRECATE_EOF terminator is an OkPacket)
                payload = pkt.payload
                eof = len(payload) >= 5 and bool(payload[4] & _CHANGED_HIGH)
                if eof and self._unsettled is None:
                    self._unsettled = _UnsettledEofs()
            elif type(event) is ErrPacket and self._unsettled is not None:
                self._settle(False)
            if plan is not None and len(results) > done_before:
                assert self.sink is not None  # (the owner that gives a plan is its sink)
                if plan.internal and done_before in plan.internal and type(event) is OkPacket:
                    out = None  # the ingress's own COMMIT: not the client's (see the class docstring)
                    self.seq_delta -= 1
                wait = self.sink.on_result(self, done_before, results[-1])
                if wait is not None:
                    self._held = (out, pkt)
                    return wait
            self._emit(out, pkt, eof)
            if reader.awaiting_client:
                self._settle(False)
                return NEED_CLIENT
        self._settle(False)
        return DONE

    def _emit(self, out: bytes | None, pkt: Packet, eof: bool = False) -> None:
        if out is None:
            return
        if self.seq_delta:
            payload = pkt.payload if out is pkt.raw else out[HEADER_BYTES:]  # a re-encoded OK is one small frame
            seq = (pkt.first_seq + self.seq_delta) & 0xFF
            if self._unsettled is None:
                self.client.write(payload, seq)
                return
            out = frame(payload, seq)
        if self._unsettled is None:
            self.client.write_raw(out)
        else:
            self._hold(out, eof)

    def _hold(self, data: bytes, eof: bool) -> None:
        """Hold ``data`` (framed) back while an EOF packet's flag is unsettled; ``eof``: it is one."""
        held = self._unsettled
        assert held is not None
        if eof:
            held.eofs.append(len(held.parts))
        held.parts.append(data)
        held.size += len(data)
        if held.size > HOLD_MAX_BYTES:
            self._settle(False)

    def _settle(self, keep: bool) -> None:
        """Send what is held back, the flag of its EOF packets kept or cleared."""
        held, self._unsettled = self._unsettled, None
        if held is None:
            return
        parts = held.parts
        if not keep:
            for i in held.eofs:
                eof = bytearray(parts[i])
                eof[HEADER_BYTES + 4] &= ~_CHANGED_HIGH & 0xFF
                parts[i] = bytes(eof)
        for part in parts:
            self.client.write_raw(part)

    def client_packet(self, data: Packet) -> None:
        """A client packet the response asked for: accounted for and queued for the primary."""
        self.reader.feed_client(data.payload)
        if self.seq_delta:
            self.upstream.write(data.payload, (data.first_seq - self.seq_delta) & 0xFF)
        else:
            self.upstream.write_raw(data.raw)


class _UnsettledEofs:
    """Framed packets held back for the client from an EOF packet whose flag is unsettled on."""

    __slots__ = ("parts", "eofs", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.eofs: list[int] = []  # indexes of the EOF packets in parts
        self.size = 0


def _renumbered(run: bytes, delta: int) -> bytes:
    """A run of complete single-frame packets with each sequence id moved by ``delta``."""
    out = bytearray(run)
    pos, end = 0, len(out)
    while pos + 4 <= end:
        out[pos + 3] = (out[pos + 3] + delta) & 0xFF
        pos += 4 + (out[pos] | out[pos + 1] << 8 | out[pos + 2] << 16)
    return bytes(out)


async def relay_pull(relay: ResponseRelay) -> None:
    """Drive ``relay`` to the end of its response from a coroutine (both streams in pull mode), with
    the client packets it asks for."""
    client, upstream = relay.client, relay.upstream
    while True:
        step = relay.pump()
        if step is DONE:
            break
        if step is None:
            await client.drain()  # the client gets what we have before we wait for more
            await upstream.receive_more()
        elif step is NEED_CLIENT:
            await client.drain()
            relay.client_packet(await client.read())
            await upstream.drain()
        else:
            assert not isinstance(step, str)
            await step  # a held OK waits for its publish
    await client.drain()
