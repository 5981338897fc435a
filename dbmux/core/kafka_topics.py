"""Creating the change-event topic: infinite retention (it is the audit trail)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from dbmux.core.config import KafkaConfig
from dbmux.core.errors import KafkaSetupError

log = logging.getLogger(__name__)

TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


async def ensure_topic(kafka: KafkaConfig, topic: str, *, extra_config: dict[str, str] | None = None) -> bool:
    """Create ``topic`` if it does not exist. Returns True when this call created it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=kafka.request_timeout_ms)
    await admin.start()
    try:
        existing = await admin.list_topics()
        if topic in existing:
            return False
        try:
            resp = await admin.create_topics([NewTopic(
                topic, num_partitions=kafka.partitions, replication_factor=kafka.replication_factor,
                topic_configs={**TOPIC_CONFIG, **(extra_config or {})})])
        except TopicAlreadyExistsError:
            return False
        for _, code, *rest in getattr(resp, "topic_errors", ()):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise KafkaSetupError(f"creating topic {topic!r} failed with Kafka error {code}: {rest}")
        log.info("created topic %s (partitions=%s)", topic, kafka.partitions)
        return True
    finally:
        await admin.close()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str, attempts: int = 20) -> list[TopicPartition]:
    """The partitions of ``topic`` as a started aiokafka consumer sees them, in order. A topic created a
    moment ago may be missing from the consumer's metadata: refresh it (a few times, 0.1 s apart)."""
    parts = consumer.partitions_for_topic(topic)
    for _ in range(attempts):
        if parts:
            break
        await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await asyncio.sleep(0.1)
    return [TopicPartition(topic, p) for p in sorted(parts or ())]
