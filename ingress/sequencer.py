"""Hand committed transactions to Kafka in GTID order, across all sessions of the ingress.

Sessions learn their commit GTIDs concurrently, so the commit OK of GTID n+1 can reach the ingress
before that of n. The sequencer holds an event until its predecessor (same domain) was handed on,
for at most ``window_s``; after that it hands on what it holds, in order, accepting the gap (the
missing GTID was written by someone bypassing the ingress, or is still in flight; replicators order
by GTID anyway and the binlog reader closes real gaps). Ingress-only traffic is thus strictly
increasing on the topic; nothing is ever dropped.

Handing on is a single ordered queue, so the Kafka producer receives ``send`` calls in that order
(the idempotent producer keeps per-partition order).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from dbmux.core.events import ChangeEvent

log = logging.getLogger(__name__)

Send = Callable[[ChangeEvent], Awaitable["asyncio.Future[object]"]]


class GtidSequencer:
    def __init__(self, send: Send, window_s: float) -> None:
        self._send = send
        self._window_s = window_s
        self._next: dict[str, int] = {}
        self._held: dict[str, dict[int, tuple[ChangeEvent, asyncio.Future]]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._outbox: asyncio.Queue[tuple[ChangeEvent, asyncio.Future]] = asyncio.Queue()
        self._sender: asyncio.Task | None = None

    def start(self) -> None:
        self._sender = asyncio.ensure_future(self._run_sender())

    async def stop(self) -> None:
        for domain in list(self._held):
            self._release_all(domain)
        await self._outbox.join()
        if self._sender is not None:
            self._sender.cancel()
            try:
                await self._sender
            except asyncio.CancelledError:
                pass

    def submit(self, event: ChangeEvent) -> asyncio.Future:
        """Queue ``event``; the returned future resolves when Kafka acknowledged it (or fails)."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        domain, seq = event.gtid.domain, event.gtid.seq
        held = self._held.setdefault(domain, {})
        nxt = self._next.get(domain)
        if nxt is not None and seq < nxt:
            # Older than what was already handed on: a late arrival after a window expired.
            self._outbox.put_nowait((event, fut))
            return fut
        held[seq] = (event, fut)
        self._release_consecutive(domain)
        if held and domain not in self._timers:
            self._timers[domain] = asyncio.get_running_loop().call_later(
                self._window_s, self._window_expired, domain)
        return fut

    def _release_consecutive(self, domain: str) -> None:
        held = self._held[domain]
        nxt = self._next.get(domain)
        while held:
            lowest = min(held)
            if nxt is not None and lowest != nxt:
                break
            self._hand_on(domain, lowest)
            nxt = lowest + 1
        if not held and domain in self._timers:
            self._timers.pop(domain).cancel()

    def _window_expired(self, domain: str) -> None:
        self._timers.pop(domain, None)
        held = self._held.get(domain) or {}
        if held:
            log.debug("domain %s: gap before seq %s not filled within %.0f ms; publishing in order anyway",
                      domain, min(held), self._window_s * 1000)
        self._release_all(domain)

    def _release_all(self, domain: str) -> None:
        for seq in sorted(self._held.get(domain, {})):
            self._hand_on(domain, seq)
        if domain in self._timers:
            self._timers.pop(domain).cancel()

    def _hand_on(self, domain: str, seq: int) -> None:
        event, fut = self._held[domain].pop(seq)
        self._next[domain] = seq + 1
        self._outbox.put_nowait((event, fut))

    async def _run_sender(self) -> None:
        while True:
            event, fut = await self._outbox.get()
            try:
                ack = await self._send(event)
            except Exception as exc:  # noqa: BLE001 - reported to the waiting session
                if not fut.done():
                    fut.set_exception(exc)
            else:
                _chain(ack, fut)
            finally:
                self._outbox.task_done()


def _chain(source: asyncio.Future, target: asyncio.Future) -> None:
    def done(src: asyncio.Future) -> None:
        if target.done():
            return
        if src.cancelled():
            target.cancel()
        elif (exc := src.exception()) is not None:
            target.set_exception(exc)
        else:
            target.set_result(src.result())
    source.add_done_callback(done)
