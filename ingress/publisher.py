"""Publishing change events to Kafka: idempotent producer, acks=all, key = GTID domain.

``publish`` returns once Kafka acknowledged the event, or raises. The session decides what a slow
ack means (``sync`` durability: wait at most ``publish_timeout_ms``, then answer the client anyway
and record the GTID as unpublished — the primary committed, the binlog reader covers it).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from dbmux.config import Config
from dbmux.envelope import ChangeEvent, encode_event, partition_key
from dbmux.kafka_topics import ensure_topic
from ingress.sequencer import GtidSequencer

log = logging.getLogger(__name__)

EVENTS_PUBLISHED = Counter("dbmux_ingress_events_published_total", "Change events acknowledged by Kafka")
EVENTS_UNPUBLISHED = Counter(
    "dbmux_ingress_events_unpublished_total",
    "Committed transactions whose event Kafka did not acknowledge in time (the binlog reader covers them)",
)


class Publisher:
    def __init__(self, config: Config) -> None:
        self._config = config
        self.topic = config.topic
        self._producer: AIOKafkaProducer | None = None
        self._sequencer: GtidSequencer | None = None

    async def start(self) -> None:
        k = self._config.kafka
        await ensure_topic(k, self.topic)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=k.bootstrap, acks="all", enable_idempotence=True, linger_ms=0,
            request_timeout_ms=k.request_timeout_ms, max_request_size=16 * 1024 * 1024,
            compression_type=None,
        )
        await self._producer.start()
        self._sequencer = GtidSequencer(self._send, self._config.ingress.reorder_window_ms / 1000)
        self._sequencer.start()

    async def _send(self, event: ChangeEvent) -> "asyncio.Future[object]":
        assert self._producer is not None, "Publisher.start() was not awaited"
        return await self._producer.send(self.topic, encode_event(event), key=partition_key(event))

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
        task = asyncio.ensure_future(self.publish(event))
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
            return True
        except asyncio.TimeoutError:
            EVENTS_UNPUBLISHED.inc()
            log.error("gtid %s: Kafka did not acknowledge within %.1fs; client answered OK, event unpublished "
                      "(the binlog reader will publish it)", event.gtid, timeout_s)
            task.add_done_callback(_log_late_result(str(event.gtid)))
            return False
        except Exception as exc:  # noqa: BLE001 - the commit happened; never fail the client for Kafka
            EVENTS_UNPUBLISHED.inc()
            log.error("gtid %s: publishing failed (%s); client answered OK, event unpublished", event.gtid, exc)
            return False


def _log_late_result(gtid: str):
    def done(task: asyncio.Future) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            log.warning("gtid %s: late Kafka acknowledgement arrived", gtid)
        else:
            log.error("gtid %s: late publish failed: %s", gtid, exc)
    return done
