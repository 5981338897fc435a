"""The replicator's fetch loop and its apply task (:mod:`dbmux.replicator.runner`): handing units over,
waiting for them, and what the loop asks of Kafka besides records (the offsets for lag display, whether
it has read to the end)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from dbmux.replicator.errors import ApplyError
from dbmux.replicator.positions import PartitionKey

log = logging.getLogger(__name__)


async def hand_over(units: asyncio.Queue[Any], unit: Any, apply_task: asyncio.Future) -> None:
    """Queue ``unit`` for the apply task; if that task ends first, raise what ended it."""
    if not apply_task.done() and not units.full():
        units.put_nowait(unit)
        return
    await race(units.put(unit), apply_task)


async def drained(units: asyncio.Queue[Any], apply_task: asyncio.Future) -> None:
    """Wait until every queued unit is applied (or raise what stopped the apply task)."""
    await race(units.join(), apply_task)
    if apply_task.done():  # a failed unit is marked done too (task_done in a finally): its error, not "drained"
        apply_task.result()


async def race(coro, apply_task: asyncio.Future) -> None:
    waiter = asyncio.ensure_future(coro)
    try:
        await asyncio.wait({waiter, apply_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiter.done():
            waiter.cancel()
    if waiter.done() and not waiter.cancelled():
        waiter.result()
        return
    apply_task.result()  # raises the apply task's error
    raise ApplyError("the apply task stopped unexpectedly", retriable=True)


async def commit_for_lag(consumer, offsets: dict[PartitionKey, int]) -> None:
    try:
        await consumer.commit({TopicPartition(k.topic, k.partition): v for k, v in offsets.items()})
    except KafkaError as exc:  # lag display only
        log.debug("offset commit for lag display failed: %s", exc)
    except Exception as exc:  # noqa: BLE001 - runs in the background: said here, never lost as unretrieved
        log.warning("offset commit for lag display failed: %s: %s", type(exc).__name__, exc)


async def read_to_end(consumer, tps: list[TopicPartition]) -> bool:
    """Has ``consumer`` read every partition of ``tps`` to its end (nothing on the topic left to apply)?"""
    ends = await consumer.end_offsets(tps)
    return all([await consumer.position(tp) >= ends[tp] for tp in tps])
