"""Invalidating the result cache from the topic: writes that did not pass through this ingress.

Writes through this ingress invalidate before their OK (``ingress.cache_session``). Everything else
reaches the cache by the pipeline's topic, read from its end by :class:`CacheFeed`:

* **binlog events** (every transaction the primary commits, a write around dbmux included, in row form):
  the tables of their rows; DDL or anything without rows invalidates everything. A foreign-key cascade is
  not in the binlog: a cascaded child table changed around dbmux is not invalidated (bounded by
  ``ingress.cache_ttl_ms`` when set);
* **ingress events** of other ingress instances (their sessions' primary connection ids are not this
  ingress's): what their statements write, by the same rules as this ingress's own writes;
* a message that is a byte fragment (a huge or mixed transaction) invalidates everything; snapshot events
  and this ingress's own events change nothing.

So a bypassing write is invalidated within the binlog reader's lag plus the topic's delivery (measured in
bench/RESULTS.md), a write through another ingress within that ingress's publish.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer

from dbmux.core.codec import decode_event
from dbmux.core.config import Config
from dbmux.core.events import ChangeEvent
from dbmux.core.fragments import is_fragment
from dbmux.core.kafka_topics import topic_partitions
from dbmux.core.parts import decode_part, header, is_part
from dbmux.ingress.cache_session import CacheGate, qualified
from dbmux.ingress.classify import classify
from dbmux.ingress.statements import PlannedStatement

log = logging.getLogger(__name__)


def event_tables(gate: CacheGate, ev: ChangeEvent) -> tuple[str, ...] | None:
    """What an event from the topic invalidates: tables, () for nothing, None for everything."""
    if ev.snapshot is not None:
        return ()
    if ev.source == "ingress":
        if ev.session is not None and ev.session.connection_id in gate.own_connections:
            return ()  # this ingress's own write: invalidated before its OK
        out: set[str] = set()
        for st in ev.statements:
            cls = classify(st.sql)
            tables = gate.write_tables(PlannedStatement(st.sql, cls.kind, cls.tcl, False, cls=cls),
                                       ev.db or (ev.session.db if ev.session else None))
            if tables is None:
                return None
            out.update(tables)
        return tuple(out)
    if ev.statements and any(st.kind != "dml" for st in ev.statements):
        return None  # DDL in the binlog
    names = {qualified(row.table, row.db) for row in ev.rows}
    if None in names or (not names and ev.statements):
        return None
    return tuple(n for n in names if n is not None)


def message_tables(gate: CacheGate, value: bytes) -> tuple[str, ...] | None:
    if is_part(value):
        head, start = header(value)
        return event_tables(gate, decode_part(value, head, start))
    if is_fragment(value):
        return None
    return event_tables(gate, decode_event(value))


class CacheFeed:
    """Reads the topic from its end and invalidates the cache for every write in it (module docstring)."""

    def __init__(self, config: Config, gate: CacheGate) -> None:
        self.config = config
        self.gate = gate
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        kafka = self.config.kafka
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False,
                                    request_timeout_ms=kafka.request_timeout_ms, fetch_max_wait_ms=20)
        await consumer.start()
        tps = await topic_partitions(consumer, self.config.topic)
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        self.consumer = consumer
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self.consumer is not None
        async for msg in self.consumer:
            try:
                tables = message_tables(self.gate, msg.value)
            except Exception as exc:  # noqa: BLE001 - not understood: nothing cached is kept
                log.warning("result cache: a topic message not understood (%s): the cache is emptied", exc)
                tables = None
            self.gate.invalidate(tables)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        if self.consumer is not None:
            await self.consumer.stop()
