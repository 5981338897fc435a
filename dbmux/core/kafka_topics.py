"""Creating the change-event topic (infinite retention: it is the audit trail) and checking that its
message size limit admits ``kafka.fragment_bytes``."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from dbmux.core.config import KafkaConfig
from dbmux.core.errors import ConfigError, KafkaSetupError

log = logging.getLogger(__name__)

FRAGMENT_OVERHEAD = 512  # record batch and record headers, key: bytes on top of the value

TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


async def ensure_topic(kafka: KafkaConfig, topic: str, *, extra_config: dict[str, str] | None = None) -> bool:
    """Create ``topic`` if it does not exist, then check its size limit (:func:`check_message_size`).
    Returns True when this call created it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=kafka.request_timeout_ms)
    await admin.start()
    try:
        created = await _create(admin, kafka, topic, extra_config)
        await check_message_size(admin, kafka, topic)
        return created
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, kafka: KafkaConfig, topic: str,
                  extra_config: dict[str, str] | None) -> bool:
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


async def topic_config(admin: AIOKafkaAdminClient, topic: str, name: str) -> str | None:
    """One configuration value of ``topic`` as the broker reports it (its own or the broker default)."""
    for resp in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {name: None})]):
        for resource in resp.resources:
            for entry in resource[4]:
                if entry[0] == name:
                    return None if entry[1] is None else str(entry[1])
    return None


async def check_message_size(admin: AIOKafkaAdminClient, kafka: KafkaConfig, topic: str) -> None:
    """Raise :class:`ConfigError` naming ``kafka.fragment_bytes`` when the topic would refuse a fragment."""
    raw = await topic_config(admin, topic, "max.message.bytes")
    if raw is None:
        log.warning("topic %s: the broker did not report max.message.bytes; cannot check kafka.fragment_bytes", topic)
        return
    limit = int(raw)
    need = kafka.fragment_bytes + FRAGMENT_OVERHEAD
    if need > limit:
        raise ConfigError(
            "kafka.fragment_bytes",
            f"{kafka.fragment_bytes} (+{FRAGMENT_OVERHEAD} bytes of Kafka record overhead) is over topic {topic}'s "
            f"max.message.bytes = {limit}: Kafka would refuse every event of that size",
            f"set kafka.fragment_bytes to at most {limit - FRAGMENT_OVERHEAD}, or raise the topic's limit "
            f"(kafka-configs.sh --alter --entity-type topics --entity-name {topic} --add-config "
            f"max.message.bytes={need})")


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
