"""Publishing change events to Kafka: idempotent producer, acks=all, key = GTID domain.

``publish`` returns once Kafka acknowledged the event, or raises. The session decides what a slow
ack means (``sync`` durability: wait at most ``publish_timeout_ms``, then answer the client anyway
and record the GTID as unpublished — the primary committed, the binlog reader covers it).

An event bigger than ``kafka.fragment_bytes`` is sent as fragments (:mod:`dbmux.core.fragments`); its
ack is that of every fragment. A failed send poisons an idempotent producer (its sequence numbers no
longer line up: every later send fails with ``OutOfOrderSequenceNumber``), so after any failed send
the next event goes out on a new producer; sends in flight on the old one are reported unpublished.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, cast

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from dbmux.core.codec import encode_event
from dbmux.core.config import Config
from dbmux.core.events import ChangeEvent
from dbmux.core.fragments import split_event
from dbmux.core.kafka_topics import ensure_topic
from dbmux.core.topics import partition_key
from dbmux.ingress.sequencer import GtidSequencer

log = logging.getLogger(__name__)

EVENTS_PUBLISHED = Counter("dbmux_ingress_events_published_total", "Change events acknowledged by Kafka")
FRAGMENTED = Counter("dbmux_ingress_events_fragmented_total",
                     "Events over kafka.fragment_bytes, sent as fragments")
PRODUCERS_RENEWED = Counter("dbmux_ingress_producer_renewals_total",
                            "Kafka producers replaced after a failed send (a failed send poisons an idempotent one)")
EVENTS_UNPUBLISHED = Counter(
    "dbmux_ingress_events_unpublished_total",
    "Committed transactions whose event Kafka did not acknowledge in time (the binlog reader covers them)",
)


class Publishes(Protocol):
    """What a session's relay needs of the publisher (a protocol: the relay may be compiled, the publisher
    or a test's stand-in not)."""

    def publish_within(self, event: ChangeEvent, timeout_s: float) -> asyncio.Future[bool]: ...


class Publisher:
    def __init__(self, config: Config) -> None:
        self._config = config
        self.topic = config.topic
        self._producer: AIOKafkaProducer | None = None
        self._poisoned = False  # a send failed: the next one goes out on a new producer
        self._stopping: set[asyncio.Future[None]] = set()  # replaced producers being stopped
        self._sequencer: GtidSequencer | None = None

    async def start(self) -> None:
        await ensure_topic(self._config.kafka, self.topic)
        self._producer = await self._new_producer()
        self._sequencer = GtidSequencer(self._send, self._config.ingress.reorder_window_ms / 1000)
        self._sequencer.start()

    async def _new_producer(self) -> AIOKafkaProducer:
        k = self._config.kafka
        producer = AIOKafkaProducer(
            bootstrap_servers=k.bootstrap, acks="all", enable_idempotence=True, linger_ms=0,
            request_timeout_ms=k.request_timeout_ms, max_request_size=k.fragment_bytes + 64 * 1024,
            compression_type=None,
        )
        await producer.start()
        return producer

    async def _renew(self) -> AIOKafkaProducer:
        old, self._producer, self._poisoned = self._producer, None, False
        if old is not None:  # what it still has in flight fails (reported unpublished); do not wait for it
            task = asyncio.ensure_future(_stop_quietly(old))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        self._producer = await self._new_producer()
        PRODUCERS_RENEWED.inc()
        log.warning("Kafka producer replaced after a failed send (the old one's sequence numbers are spent)")
        return self._producer

    async def _send(self, event: ChangeEvent) -> asyncio.Future[object]:
        producer = self._producer
        assert producer is not None, "Publisher.start() was not awaited"
        if self._poisoned:
            producer = await self._renew()
        parts = split_event(event, encode_event(event), self._config.kafka.fragment_bytes)
        key = partition_key(event)
        acks: list[asyncio.Future[object]] = []
        try:
            for part in parts:
                acks.append(await producer.send(self.topic, part, key=key))
        except Exception:
            self._poisoned = True
            for sent in acks:  # fragments already handed over fail or land; either way nobody waits for them
                sent.add_done_callback(_retrieve)
            raise
        ack: asyncio.Future[object] = acks[0]
        if len(acks) > 1:
            ack = cast("asyncio.Future[object]", asyncio.gather(*acks))
            FRAGMENTED.inc()

        def failed(done: asyncio.Future[object]) -> None:
            if not done.cancelled() and done.exception() is not None and self._producer is producer:
                self._poisoned = True
        ack.add_done_callback(failed)
        return ack

    async def stop(self) -> None:
        if self._sequencer is not None:
            await self._sequencer.stop()
            self._sequencer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, event: ChangeEvent) -> None:
        """Queue in GTID order, send, and wait for Kafka's acknowledgement."""
        assert self._sequencer is not None, "Publisher.start() was not awaited"
        await self._sequencer.submit(event)
        EVENTS_PUBLISHED.inc()

    async def publish_bounded(self, event: ChangeEvent, timeout_s: float) -> bool:
        """Publish, waiting at most ``timeout_s`` for the ack. False (and a log line) on timeout or error.

        On timeout the send keeps going in the background: the event may still land (consumers
        skip duplicate GTIDs), and the binlog reader publishes it regardless.
        """
        return await self.publish_within(event, timeout_s)

    def publish_within(self, event: ChangeEvent, timeout_s: float) -> asyncio.Future[bool]:
        """:meth:`publish_bounded` as a future, for callers that are not coroutines (the session's relay):
        hands ``event`` to the sequencer now; the future resolves to True once Kafka acknowledged it,
        or to False (logged, counted) when ``timeout_s`` passed first or publishing failed. It never fails.
        """
        assert self._sequencer is not None, "Publisher.start() was not awaited"
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        ack = self._sequencer.submit(event)
        gtid = event.gtid

        def expired() -> None:
            if not answer.done():
                EVENTS_UNPUBLISHED.inc()
                log.error("gtid %s: Kafka did not acknowledge within %.1fs; client answered OK, event unpublished "
                          "(the binlog reader will publish it)", gtid, timeout_s)
                answer.set_result(False)

        timer = loop.call_later(timeout_s, expired)

        def acked(done: asyncio.Future) -> None:
            timer.cancel()
            exc = done.exception() if not done.cancelled() else asyncio.CancelledError()
            if exc is None:
                EVENTS_PUBLISHED.inc()
            if not answer.done():
                if exc is None:
                    answer.set_result(True)
                else:
                    EVENTS_UNPUBLISHED.inc()
                    log.error("gtid %s: publishing failed (%s); client answered OK, event unpublished", gtid, exc)
                    answer.set_result(False)
            elif exc is None:  # after the timeout
                log.warning("gtid %s: late Kafka acknowledgement arrived", gtid)
            elif not done.cancelled():
                log.error("gtid %s: late publish failed: %s", gtid, exc)

        ack.add_done_callback(acked)
        return answer


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 30)
    except Exception as exc:  # noqa: BLE001 - a replaced producer: nothing depends on it any more
        log.debug("stopping a replaced Kafka producer: %s", exc)


def _retrieve(fut: asyncio.Future[object]) -> None:
    if not fut.cancelled():
        fut.exception()
