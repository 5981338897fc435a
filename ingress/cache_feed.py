"""Invalidating the result cache from the topic: writes that did not pass through this ingress.

Writes through this ingress invalidate before their OK (``ingress.cache_session``). Everything else
reaches the cache by the pipeline's topic, read from its end by :class:`CacheFeed`:

* **binlog events** (every transaction the primary commits, a write around dbmux included, in row form):
  the keys of their rows (tables whose primary key is one integer column) or their tables, and for
  updated or deleted rows every table a foreign key cascades to from theirs (a cascade is not in the
  binlog: the schema facts' foreign keys are followed, as for writes through the ingress); DDL or anything
  without rows invalidates everything, and until the next schema reload no cascade is taken as known;
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
from collections.abc import Hashable

from aiokafka import AIOKafkaConsumer

from dbmux.core.codec import decode_event
from dbmux.core.config import Config
from dbmux.core.events import ChangeEvent, RowChange
from dbmux.core.fragments import is_fragment
from dbmux.core.kafka_topics import topic_partitions
from dbmux.core.parts import decode_part, header, is_part
from dbmux.ingress.cache_session import CacheGate, qualified
from dbmux.ingress.classify import classify
from dbmux.ingress.read_rules import SYSTEM_SCHEMAS
from dbmux.ingress.result_cache import Slots, write_slots
from dbmux.ingress.statements import PlannedStatement

log = logging.getLogger(__name__)
_NEVER_CACHED = SYSTEM_SCHEMAS | {"dbmux_meta"}  # (their changes cascade to no cached table)
_MISSING = object()


def event_slots(gate: CacheGate, ev: ChangeEvent) -> Slots | None:
    """What an event from the topic invalidates: slots, () for nothing, None for everything."""
    if ev.snapshot is not None:
        return ()
    if ev.source == "ingress":
        if ev.session is not None and ev.session.connection_id in gate.own_connections:
            return ()  # this ingress's own write: invalidated before its OK
        out: list[Hashable] = []
        for st in ev.statements:
            cls = classify(st.sql)
            slots = gate.write_slots(PlannedStatement(st.sql, cls.kind, cls.tcl, False, cls=cls),
                                     ev.db or (ev.session.db if ev.session else None), st.params)
            if slots is None:
                return None
            out.extend(slots)
        return tuple(out)
    if ev.statements and any(st.kind != "dml" for st in ev.statements):
        gate.facts.doubt_cascades()  # (DDL around the ingress: foreign keys may have changed)
        return None
    if not ev.rows:
        return None if ev.statements else ()
    return rows_slots(gate, ev.rows)


def rows_slots(gate: CacheGate, rows: tuple[RowChange, ...]) -> Slots | None:
    """Row images' tables -- per key where the table's primary key is one integer column -- and the tables
    their updates and deletes may cascade to (None: not known)."""
    keys: dict[str, set[int] | None] = {}
    changed: set[str] = set()  # (updated or deleted rows: foreign keys may cascade)
    for row in rows:
        name = qualified(row.table, row.db)
        if name is None:
            return None
        if row.db.lower() in _NEVER_CACHED:
            continue
        if row.op != "insert":
            changed.add(name)
        got = keys.setdefault(name, set())
        if got is None:
            continue
        facts = gate.facts.table(row.table, row.db)
        found = _row_keys(row, facts.int_pk) if facts is not None and facts.int_pk else None
        if found is None:
            keys[name] = None
        else:
            got.update(found)
    out: list[Hashable] = []
    for name, found_keys in keys.items():
        out.extend(write_slots(name, None if found_keys is None else frozenset(found_keys)))
    for name in changed:
        if not gate.cascades(name, out, {name}):
            return None
    return tuple(out)


def _row_keys(row: RowChange, pk: str) -> set[int] | None:
    """The values of integer key column ``pk`` in a row change's images (None: an image lacks it)."""
    found = set()
    for image in (row.before, row.after):
        if image is None:
            continue
        value = image[pk] if pk in image else next((v for k, v in image.items() if k.lower() == pk), _MISSING)
        if isinstance(value, int) and not isinstance(value, bool):
            found.add(value)
        elif not (value is _MISSING and image is row.after and row.op == "update"):
            return None  # (an update's after image leaves an unchanged key out under binlog_row_image=MINIMAL)
    return found


def message_slots(gate: CacheGate, value: bytes) -> Slots | None:
    if is_part(value):
        head, start = header(value)
        return event_slots(gate, decode_part(value, head, start))
    if is_fragment(value):
        return None
    return event_slots(gate, decode_event(value))


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
                slots = message_slots(self.gate, msg.value)
            except Exception as exc:  # noqa: BLE001 - not understood: nothing cached is kept
                log.warning("result cache: a topic message not understood (%s): the cache is emptied", exc)
                slots = None
            self.gate.invalidate(slots)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        if self.consumer is not None:
            await self.consumer.stop()
