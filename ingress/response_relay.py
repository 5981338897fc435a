"""One server response relayed to the client, as a synchronous step function for either I/O mode.

:class:`ResponseRelay` is shared by both phases of a connection: the connection phase relays the
authentication exchange with it (``ingress.connection``), the command relay every command's response
(``ingress.relay``), driven from the upstream stream's ``data_received`` in push mode or by
:func:`relay_pull` from a coroutine. It knows the two streams, the :class:`ConnectionContext` (OK
packets update it and are stripped for the client) and, for captured commands, a :class:`ResultSink`;
it never reaches into its owner.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from dbmux.ingress.context import ConnectionContext
from dbmux.ingress.protocol.framing import Packet
from dbmux.ingress.protocol.generic_packets import OkPacket
from dbmux.ingress.protocol.response import Phase, ResponseReader, StatementResult
from dbmux.ingress.statements import QueryPlan
from dbmux.ingress.wire import PacketStream

_DONE_PHASE = Phase.DONE  # (a module global: an Enum member looked up on its class costs ~80 ns)

# What ResponseRelay.pump returns besides None (needs more server bytes) and a future (wait for it).
DONE = "done"
NEED_CLIENT = "need_client"


class ResultSink(Protocol):
    """Who captures the results of a relayed command (see :attr:`ResponseRelay.plan`)."""

    def on_result(self, relay: ResponseRelay, index: int, result: StatementResult) -> asyncio.Future[bool] | None:
        """Statement ``index``'s final OK/ERR of ``relay``'s response (EOF results are not reported);
        returns a future the statement's packet must wait for before it goes to the client, or None."""


class ResponseRelay:
    """The relay of one server response to the client.

    :meth:`pump` takes what the upstream stream has buffered, accounts for it with the command's
    :class:`ResponseReader` and queues it for the client: result rows as whole raw runs, every other
    packet as the raw frame received, except OK packets whose injected session state is stripped. It
    returns ``None`` when it needs more server bytes, ``DONE`` when the response is complete,
    ``NEED_CLIENT`` when the response waits for a client packet (authentication exchange, LOCAL
    INFILE data; pass it to :meth:`client_packet`), or a future: a statement's final OK is held back
    until that future (the commit's publish) resolves, then the next ``pump`` sends it on.

    ``plan`` (None: results are not captured), ``params`` and ``on_prepare`` (the COM_STMT_PREPARE
    payload) are the owner's, carried for its ``sink``; ``seq_delta`` is set when TLS is on one hop
    only: the handshake's sequence ids are then shifted between the hops.
    """

    __slots__ = ("client", "upstream", "ctx", "reader", "sink", "plan", "params", "on_prepare", "seq_delta",
                 "_held")

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
        self._held: tuple[bytes, Packet] | None = None

    def pump(self) -> asyncio.Future[bool] | str | None:
        reader = self.reader
        held = self._held
        if held is not None:
            self._held = None
            self._emit(*held)
        if reader.awaiting_client:
            return NEED_CLIENT
        client, plan, frames, skim = self.client, self.plan, self.upstream.frames, reader.skim
        while reader.phase is not _DONE_PHASE:
            # Result-set metadata, rows and EOF terminators are only accounted for and forwarded, as many
            # at once as received (EOF results need nothing from the sink).
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
                ctx = self.ctx
                ctx.note_session_state(event)
                out = ctx.client_ok(event, pkt)
            if plan is not None and len(results) > done_before:
                assert self.sink is not None  # (the owner that gives a plan is its sink)
                wait = self.sink.on_result(self, done_before, results[-1])
                if wait is not None:
                    self._held = (out, pkt)
                    return wait
            self._emit(out, pkt)
            if reader.awaiting_client:
                return NEED_CLIENT
        return DONE

    def _emit(self, out: bytes, pkt: Packet) -> None:
        if self.seq_delta:
            payload = pkt.payload if out is pkt.raw else out[4:]  # a re-encoded OK is one small frame
            self.client.write(payload, (pkt.first_seq + self.seq_delta) & 0xFF)
        else:
            self.client.write_raw(out)

    def client_packet(self, data: Packet) -> None:
        """A client packet the response asked for: accounted for and queued for the primary."""
        self.reader.feed_client(data.payload)
        if self.seq_delta:
            self.upstream.write(data.payload, (data.first_seq - self.seq_delta) & 0xFF)
        else:
            self.upstream.write_raw(data.raw)


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
