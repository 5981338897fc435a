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


async def _whole_events(bootstrap: str, topic: str) -> tuple[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from dbmux.core.fragments import Reassembler

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=15000,
                         auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024)
    await c.start()
    try:
        await c.topics()
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or set())]
        if not tps:
            return 0, 0
        ends = await c.end_offsets(tps)
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        parts: Reassembler[int] = Reassembler("bench")
        whole = messages = 0
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            for tp, recs in (await c.getmany(timeout_ms=1000)).items():
                for rec in recs:
                    messages += 1
                    whole += parts.add(rec.value, tp.partition, rec.offset) is not None
            todo = {tp for tp in todo if await c.position(tp) < ends[tp]}  # (not the last record: offsets may skip)
        return whole, messages
    finally:
        await c.stop()


def whole_events(bootstrap: str, topic: str) -> tuple[int, int] | None:
    """(events, messages) on ``topic``: events put together from their fragments (``kafka.fragment_bytes``),
    or None when it cannot be read."""
    try:
        return asyncio.run(_whole_events(bootstrap, topic))
    except Exception as exc:  # noqa: BLE001 - a sanity check, never fatal
        print(f"  (could not read {topic}: {exc})")
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
