"""Kafka housekeeping of a bench: counting what landed on its topic, deleting its topics afterwards."""

from __future__ import annotations

import asyncio


async def _end_offset(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=15000)
    await c.start()
    try:
        await c.topics()  # refreshes metadata for all topics
        parts = c.partitions_for_topic(topic) or set()
        if not parts:
            return 0
        offs = await c.end_offsets([TopicPartition(topic, p) for p in sorted(parts)])
        return sum(offs.values())
    finally:
        await c.stop()


def end_offset(bootstrap: str, topic: str) -> int | None:
    """Messages on ``topic`` (sum of its partitions' end offsets), or None when it cannot be read."""
    try:
        return asyncio.run(_end_offset(bootstrap, topic))
    except Exception as exc:  # noqa: BLE001 - a sanity check, never fatal
        print(f"  (could not read the end offset of {topic}: {exc})")
        return None


def delete_topic(bootstrap: str, topic: str) -> None:
    async def go() -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()

    try:
        asyncio.run(go())
    except Exception as exc:  # noqa: BLE001
        print(f"  (could not delete topic {topic}: {exc})")
