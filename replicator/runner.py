"""One replicator: consume the change-event topic and apply it to one target, exactly once, in order.

Per-partition flow (aiokafka ``local_state_consumer`` style): on start the position stored in the
target is loaded and every partition is sought to its *next* offset (the beginning for a new target);
events pass through :class:`GtidOrderer` (duplicates skipped, gaps held, never skipped) and are
applied in group-commit batches, each with its position, in one target transaction. Kafka's own
consumer-group offsets are committed afterwards only for lag display.

Failures: a transient error (connection lost, deadlock, lock wait, broker unavailable, target
restarting: :func:`dbmux.core.transient.is_transient`) rolls back, waits with backoff
(:func:`dbmux.core.supervise.supervise`) and restarts from the stored position -- nothing is
applied twice. A permanent error follows the target's policy: ``halt`` (stop, record and log the
GTID, offset and error, exit non-zero) or ``dead-letter`` (publish the event and the error to
``<topic>.dlq``, record it as applied, continue). Nothing is ever skipped silently.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter, Gauge

from dbmux.core import gctune
from dbmux.core.codec import decode_event, encode_event
from dbmux.core.config import Config, TargetConfig
from dbmux.core.errors import DbmuxError
from dbmux.core.events import ChangeEvent, EnvelopeError
from dbmux.core.fragments import Reassembler, split
from dbmux.core.gtid import Gtid
from dbmux.core.kafka_topics import ensure_topic, topic_partitions
from dbmux.core.parts import Spooled
from dbmux.core.passwords import redact_event, redact_payload, redact_text
from dbmux.core.supervise import supervise
from dbmux.core.topics import dlq_topic
from dbmux.replicator.errors import ApplyError, TargetHalted, TargetLocked
from dbmux.replicator.filtering import filter_event
from dbmux.replicator.handover import commit_for_lag, drained, hand_over, read_to_end
from dbmux.replicator.mysql_applier import MySQLApplier
from dbmux.replicator.ordering import GapClock, GtidOrderer, gap_detail
from dbmux.replicator.pg_applier import PostgresApplier
from dbmux.replicator.positions import PartitionKey, TargetPosition
from dbmux.replicator.self_verify import SelfVerifier
from dbmux.replicator.shard_target import ShardTarget
from dbmux.replicator.status import RETRYING
from dbmux.replicator.streamed import (
    STREAMED_HELD_BYTES,
    StreamedEvent,
    as_unsafe,
    count_applied,
    dead_letter_messages,
    parts_to_apply,
    streamed_event,
)
from dbmux.replicator.units import Item, chunks_for_commit, ingress_copy_of, later_items, position_after, row_copies
from dbmux.shardmap.model import VERSIONS_DB

log = logging.getLogger(__name__)

APPLIED = Counter("dbmux_replicator_transactions_applied_total", "Source transactions applied", ["target"])
DUPLICATES = Counter("dbmux_replicator_duplicates_skipped_total", "Duplicate GTIDs skipped", ["target"])
GAP_SECONDS = Gauge("dbmux_replicator_gap_seconds", "How long the oldest GTID gap has been open", ["target"])
DEAD_LETTERED = Counter("dbmux_replicator_dead_lettered_total", "Events sent to the DLQ", ["target"])
HELD_EVENTS = Gauge("dbmux_replicator_held_events", "Events held in memory behind a GTID gap", ["target"])
HELD_BYTES = Gauge("dbmux_replicator_held_bytes", "Bytes of the events held behind a GTID gap", ["target"])
HELD_BYTES_PEAK = Gauge("dbmux_replicator_held_bytes_peak", "Most bytes held at once since start", ["target"])
SPILLED = Counter("dbmux_replicator_spilled_total",
                  "Events left in Kafka at the memory bound (replicator.max_held_bytes), read again later", ["target"])
REWINDS = Counter("dbmux_replicator_rewinds_total", "Seeks back to read spilled events again", ["target"])

# What a held event costs in memory per byte of its encoding: its decoded objects (measured with
# bench/gap_memory.py: RSS grew 2.25-2.3x the encoded bytes held), so max_held_bytes bounds memory
HELD_MEMORY_FACTOR = 3
# with prefer_row_copies, a bigger ingress copy takes its row copy on targets that translate statements
# (PostgreSQL, shards): translating a 200 KB multi-row INSERT costs ~0.3 s, its row copy follows in ms
TRANSLATE_MAX_BYTES = 64 * 1024
PIPELINE_DEPTH = 2  # units cut ahead of the one being applied
# records decoded between two chances for the apply task to run: it sends the next unit (already cut) as soon as
# the target has applied one, instead of after the whole fetch is decoded (OLTP catch-up, bench/catchup.py: the
# target sat idle meanwhile; 16: 13% less time; 8: more ingress copies met without their row copy in one fetch)
YIELD_EVERY = 16
STANDBY_POLL_S = 0.5  # a standby replicator tries the target's lock this often
RETRIES_SHOWN = 3  # transient failures in a row after which `dbmux status` shows "retrying"
LAG_COMMIT_S = 1.0  # Kafka offsets (for lag display only) are committed at most this often while busy


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_txns: int
    max_bytes: int
    linger_s: float


def batch_limits(config: Config, target: TargetConfig) -> BatchLimits:
    r = config.replicator
    return BatchLimits(
        max_txns=target.batch_max_txns or r.batch_max_txns,
        max_bytes=r.batch_max_bytes,
        linger_s=(target.batch_linger_ms if target.batch_linger_ms >= 0 else r.batch_linger_ms) / 1000,
    )


def make_applier(config: Config, target: TargetConfig, topic: str):
    dsn = target.dsn
    if dsn.kind == "mysql":
        return MySQLApplier(dsn, target.name, topic)
    peers = {t.name: t.dsn for t in config.targets if t.shard and t.name != target.name and t.dsn.kind != "mysql"}
    return PostgresApplier(dsn, target.name, topic, config.primary.dsn, peers if target.shard else None)


class Replicator:
    def __init__(self, config: Config, target_name: str) -> None:
        self.config = config
        self.target = config.target(target_name)
        self.shard = ShardTarget(config, self.target) if self.target.shard else None
        self.tables = tuple(self.target.tables)
        if self.shard is not None and "*" not in self.tables:
            self.tables += (VERSIONS_DB + ".*",)  # map switches reach every shard whatever it replicates
        self.policy = config.on_error(self.target)
        self.limits = batch_limits(config, self.target)
        self.topic = config.topic
        self.group_id = f"dbmux.{config.cluster.name}.{self.target.name}"
        self.halted: ApplyError | None = None
        # GC tuned for batch throughput (dbmux.core.gctune): for a process of its own (`dbmux replicate`), not
        # for `dbmux up`, whose ingress would feel the longer, rarer collections as latency
        self.tune_gc = False
        self._sizes: dict[tuple[PartitionKey, int], int] = {}  # (partition, offset) -> event bytes
        self._fragments: Reassembler[PartitionKey] = Reassembler()
        self.max_held_bytes = self.target.max_held_bytes or config.replicator.max_held_bytes
        self._retries = 0  # transient failures in a row (reset once a unit applies)
        self._last_failure = ""

    async def run(self, stop: asyncio.Event) -> int:
        """Replicate until ``stop`` is set (exit 0) or the target halts (exit 3)."""
        await ensure_topic(self.config.kafka, self.topic)
        name = self.target.name

        def on_retry(exc: Exception, delay_s: float) -> None:
            log.warning("target %s: transient failure (%s); restarting from the stored position in %.1fs",
                        name, exc, delay_s)
            self._retries += 1
            self._last_failure = f"{type(exc).__name__}: {exc}"

        try:
            # an attempt that ran for a minute had been running fine: the back-off starts afresh
            await supervise(lambda: self._run_once(stop), stop=stop, on_retry=on_retry, fresh_after_s=60.0)
        except TargetHalted:
            return 3
        except Exception as exc:  # noqa: BLE001 - permanent (supervise retried the transient ones)
            if isinstance(exc, DbmuxError):  # an ApplyError, or e.g. tls=required without TLS
                log.error("target %s: %s", name, exc)
            else:
                log.exception("target %s: stopped on an unexpected error", name)
            await self._record_stop(exc)
            return 3
        return 0

    async def _record_stop(self, exc: Exception) -> None:
        """A permanent error outside an apply (start-up, a bug): `dbmux status` says "halted" and why, not
        "behind" (best effort: the target may be what failed)."""
        applier = make_applier(self.config, self.target, self.topic)
        try:
            await asyncio.wait_for(applier.connect(), 10)
            await applier.set_status("halted", redact_text(f"stopped on {type(exc).__name__}: {exc}"))
        except Exception:  # noqa: BLE001 - unreachable target: the log says it
            log.warning("target %s: could not record the stop in the target's status", self.target.name)
        finally:
            try:
                await applier.close()
            except Exception:  # noqa: BLE001
                pass

    async def _run_once(self, stop: asyncio.Event) -> None:
        applier = make_applier(self.config, self.target, self.topic)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.config.kafka.bootstrap, group_id=self.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024,
            request_timeout_ms=self.config.kafka.request_timeout_ms)
        dlq: AIOKafkaProducer | None = None
        try:
            await applier.connect()
            await self._lock(applier, stop)
            if stop.is_set():
                return
            position = await applier.load_position()
            backfill = await applier.load_backfill()
            if backfill is not None and backfill[0] != "done":
                raise ApplyError(f"target {self.target.name} has an unfinished backfill (state {backfill[0]!r}): "
                                 f"run 'dbmux backfill --target {self.target.name}' again to finish it first")
            if self.shard is not None:
                await self.shard.start(applier)
            await consumer.start()
            tps = await topic_partitions(consumer, self.topic)
            consumer.assign(tps)
            for tp in tps:
                stored = position.offsets.get(PartitionKey(tp.topic, tp.partition))
                if stored is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, stored)
            if self.tune_gc:  # after start-up: what is alive now is frozen out of collections
                gctune.for_batches()
            log.info("target %s: replicating %s from %s (gtids %s)", self.target.name, self.topic,
                     {f"{k.topic}[{k.partition}]": v for k, v in position.offsets.items()} or "the beginning",
                     position.gtids or "none yet")
            if self._retries >= RETRIES_SHOWN:  # not a blip: `dbmux status` says so, not merely "behind"
                await applier.set_status(RETRYING, redact_text(
                    f"{self._retries} attempts in a row failed; last: {self._last_failure}"))
            elif not self._retries:  # else "running" once a unit applies (_apply_units)
                await applier.set_status("running", "")
            if self.policy == "dead-letter":
                dlq = AIOKafkaProducer(bootstrap_servers=self.config.kafka.bootstrap, acks="all",
                                       enable_idempotence=True)
                await ensure_topic(self.config.kafka, dlq_topic(self.topic))
                await dlq.start()
            await self._loop(stop, consumer, applier, position, tps, dlq)
        finally:
            try:
                # bounded: with the broker gone, aiokafka's shutdown can wait on its metadata loop forever
                await asyncio.wait_for(consumer.stop(), 10)
            except Exception:  # noqa: BLE001 - shutting down
                log.warning("target %s: Kafka consumer did not stop cleanly", self.target.name)
            if dlq is not None:
                await dlq.stop()
            await applier.close()

    async def _lock(self, applier, stop: asyncio.Event) -> None:
        """Take the target's lock; while another replicator holds it, stand by (polling every
        ``STANDBY_POLL_S``) and take over as soon as it is released (that replicator stopped or died)."""
        waited = None
        while not stop.is_set():
            try:
                await applier.lock_target()
            except TargetLocked:
                if waited is None:
                    waited = time.monotonic()
                    log.warning("target %s: another replicator holds the target's lock; standing by to take over",
                                self.target.name)
                try:
                    await asyncio.wait_for(stop.wait(), STANDBY_POLL_S)
                except TimeoutError:
                    pass
                continue
            if waited is not None:
                log.warning("target %s: took over the target's lock after standing by %.1fs", self.target.name,
                            time.monotonic() - waited)
            return

    async def _loop(self, stop, consumer, applier, position: TargetPosition, tps, dlq) -> None:
        """Consume, decode, order and cut group-commit units here; apply them in a task of their own.

        The two overlap: while the target executes one unit, the next is fetched, decoded and (where
        the applier can) turned into its SQL. Units are applied strictly in the order they were cut,
        each with the position it was cut with (``planned``: the position once every unit cut so far
        is applied), so a crash anywhere resumes from what the target committed. A unit with DDL, a
        transaction applied part by part and a shard map switch are barriers: nothing more is cut until
        they are applied (a shard target's other units overlap like any target's).
        """
        orderer: GtidOrderer[PartitionKey] = GtidOrderer(position.gtids, max_held_bytes=self.max_held_bytes)
        fragments: Reassembler[PartitionKey] = Reassembler(f"target {self.target.name}", spool=True)
        self._fragments = fragments
        consumed: dict[PartitionKey, int] = {}
        planned = position.copy()
        ready: list[Item] = []
        batch_started = 0.0
        last_gap_log = 0.0
        gap_clock = GapClock()
        status_says_gap = False
        committed_for_lag: dict[PartitionKey, int] = {}
        last_lag_commit = 0.0
        lag_commit: asyncio.Future | None = None
        name = self.target.name
        row_form_if = getattr(applier, "needs_row_form", None)
        prefer_rows = self.config.replicator.prefer_row_copies
        mode = self.config.replicator.self_verify
        verifier = SelfVerifier(name, mode) if mode != "off" else None
        units: asyncio.Queue[_Unit | SelfVerifier | None] = asyncio.Queue(maxsize=PIPELINE_DEPTH)
        apply_task = asyncio.ensure_future(self._apply_units(units, applier, dlq, position))
        try:
            while not stop.is_set() and not apply_task.done():
                timeout_ms = 200 if not ready else max(1, int(self.limits.linger_s * 1000))
                # at most one unit's worth at a time: decoding more without yielding would hold up the apply task
                records = await consumer.getmany(*tps, timeout_ms=timeout_ms, max_records=self.limits.max_txns)
                if self._retries and not records and not ready and await read_to_end(consumer, tps):
                    await drained(units, apply_task)  # (the status row is written on the apply connection)
                    await self._up_again(applier)  # nothing left that could fail again
                for tp, recs in records.items():
                    key = PartitionKey(tp.topic, tp.partition)
                    copies = row_copies(recs) if prefer_rows else None
                    for i, rec in enumerate(recs, 1):
                        if i % YIELD_EVERY == 0:  # the apply task sends the next unit as soon as one is done
                            await asyncio.sleep(0)
                        consumed[key] = rec.offset + 1
                        gap_clock.read(rec.timestamp)
                        value, offset = rec.value, rec.offset
                        if copies and (g := ingress_copy_of(value, copies)) and Gtid.parse(g).domain in orderer.applied:
                            continue  # its row copy (the primary's truth) is in this fetch: applied instead
                            # (not the first event of a domain: the first one offered starts its sequence)
                        try:
                            got = fragments.take(value, key, offset)
                            if got is None:  # a fragment of an event not complete yet
                                continue
                            whole, offset = got
                            if isinstance(whole, Spooled):  # parts on disk: applied one at a time
                                ev: ChangeEvent = streamed_event(whole)
                                size = STREAMED_HELD_BYTES
                            else:
                                value = whole
                                ev = decode_event(value)
                                size = len(value)
                        except EnvelopeError as exc:
                            await drained(units, apply_task)  # the DLQ/halt decision comes after what is cut
                            await self._permanent(applier, dlq, ApplyError(f"undecodable event: {exc}",
                                                                          offset=offset), value)
                            continue
                        if ev.source == "snapshot":  # dbmux snapshot's copy: the target has those rows already
                            continue  # (it replicated them, or was backfilled): for rebuild and history only
                        streamed = isinstance(ev, StreamedEvent)  # (filtered and routed part by part)
                        if (row_form_if is not None and prefer_rows and not streamed and ev.source == "ingress"
                                and size > TRANSLATE_MAX_BYTES):  # (first: its statements are then neither
                            ev = as_unsafe(ev)  # parsed for the filter nor analysed for routing)
                        ev = filter_event(ev, self.tables)
                        if self.shard is not None and not streamed:  # decides now whether it needs the row form
                            ev = await self._routed(self.shard.probe, ev, applier, units, apply_task)
                        if verifier is not None:  # (a shard: its part; a map switch moves rows unlogged)
                            verifier.observed(ev, barrier=streamed or (self.shard is not None
                                                                       and self.shard.changes_map(ev)))
                        # (a shard's applier judges -- and translates ahead -- what it will apply: its part)
                        if isinstance(ev, StreamedEvent):
                            if ev.source == "ingress" and (row_form_if is not None or self.shard is not None):
                                ev = as_unsafe(ev)  # statements judged part by part: the row form
                        elif row_form_if is not None and not ev.unsafe and row_form_if(ev):
                            ev = as_unsafe(ev)  # held by the orderer until the binlog reader's row form arrives
                        before, spilled = orderer.duplicates, orderer.spilled_events
                        released = orderer.offer(ev, offset, key, size=size * HELD_MEMORY_FACTOR)
                        if orderer.duplicates != before:
                            DUPLICATES.labels(name).inc()
                        if orderer.spilled_events != spilled:
                            SPILLED.labels(name).inc()
                        elif orderer.duplicates == before:  # sizes only of what is held or released: a
                            self._sizes[(key, offset)] = size  # long gap must not grow this
                        if released and not ready:
                            batch_started = time.monotonic()
                        if self.shard is not None:  # in GTID order, with the map in force at each event
                            released = [(dataclasses.replace(e, shard_map=self.shard.map)  # (routed per part)
                                         if isinstance(e, StreamedEvent) else
                                         await self._routed(self.shard.release, e, applier, units, apply_task), off)
                                        for e, off in released]
                        if verifier is not None:
                            verifier.released(released)
                        ready.extend((e, key, off) for e, off in released)
                if fragments.pending_offsets():  # sets of GTIDs applied meanwhile (another copy) are garbage
                    fragments.forget(lambda g: _applied(orderer, g))
                for key, offset in orderer.take_rewind().items():
                    # a gap closed: read again what was left in Kafka at the memory bound
                    consumer.seek(TopicPartition(key.topic, key.partition), offset)
                    consumed[key] = min(consumed.get(key, offset), offset)
                    REWINDS.labels(name).inc()
                    log.info("target %s: GTID gap closed; reading %s[%d] again from offset %d (events left in "
                             "Kafka at the memory bound)", name, key.topic, key.partition, offset)
                HELD_EVENTS.labels(name).set(orderer.held_events)
                HELD_BYTES.labels(name).set(orderer.held_bytes)
                HELD_BYTES_PEAK.labels(name).set(orderer.held_bytes_peak)
                gaps = orderer.gaps()
                topic_ms = gap_clock.topic_ms(gaps)  # (from when each gap was first seen)
                now = time.monotonic()
                if gaps:
                    oldest = min(g.since_s for g in gaps)
                    GAP_SECONDS.labels(name).set(now - oldest)
                    alert_ms = self.config.replicator.gap_alert_ms
                    if (now - oldest) * 1000 > alert_ms and now - last_gap_log > 10 and (
                            not records or topic_ms > alert_ms):  # (else: catching up towards its copy)
                        last_gap_log = now
                        detail = gap_detail(gaps, orderer)
                        log.error("target %s: GTID gap open for %.0fs: %s (waiting, never skipping)",
                                  name, now - oldest, detail)
                        await drained(units, apply_task)  # the status row is written on the apply connection
                        await applier.set_status("waiting for gap", detail)
                        status_says_gap = True
                else:
                    GAP_SECONDS.labels(name).set(0)
                    if status_says_gap:  # the gap closed: the status row says so again
                        await drained(units, apply_task)
                        await applier.set_status("running", "")
                        status_says_gap = False
                        log.info("target %s: GTID gap closed", name)
                due = ready and (len(ready) >= self.limits.max_txns
                                 or now - batch_started >= self.limits.linger_s or not records)
                if due:
                    for unit in self._cut(ready, orderer, consumed, planned):
                        if not unit.barrier:
                            unit.prepared = applier.prepare([(ev, off) for ev, _, off in unit.chunk], unit.pos,
                                                            unit.last)
                        await hand_over(units, unit, apply_task)
                        if unit.barrier:
                            await drained(units, apply_task)
                        else:
                            await asyncio.sleep(0)  # let the apply task send it now
                    ready = []
                    # sizes of what is cut, and of duplicates and replaced unsafe events (never released):
                    # everything below the planned offsets; held events lie at or above them
                    floor = planned.offsets
                    self._sizes = {k: v for k, v in self._sizes.items() if k[1] >= floor.get(k[0], 0)}
                if verifier is not None and not ready and not verifier.queued and verifier.due(planned.gtids):
                    verifier.queued = True  # checks what arrived, once everything released so far is applied
                    await hand_over(units, verifier, apply_task)
                if position.offsets != committed_for_lag and (now - last_lag_commit >= LAG_COMMIT_S or not records) \
                        and (lag_commit is None or lag_commit.done()):
                    # in the background: a round trip to the coordinator (100 ms from a remote region) never
                    # holds up fetching and applying; at most one in flight
                    committed_for_lag, last_lag_commit = dict(position.offsets), now
                    lag_commit = asyncio.ensure_future(commit_for_lag(consumer, committed_for_lag))
            if not apply_task.done():  # stopping: finish what was cut (its positions are already planned)
                await hand_over(units, None, apply_task)
            await apply_task  # raises what stopped it, if anything did
            if lag_commit is not None:
                await lag_commit
            if position.offsets != committed_for_lag:
                await commit_for_lag(consumer, dict(position.offsets))
        finally:
            if lag_commit is not None and not lag_commit.done():
                lag_commit.cancel()
            if verifier is not None:
                log.info("target %s: self-verified %d transactions applied from statements, %d differences",
                         name, verifier.verified, verifier.mismatches)
            if not apply_task.done():
                apply_task.cancel()
                try:
                    await apply_task
                except BaseException:  # noqa: BLE001 - already failing or cancelled; the first error wins
                    pass

    def _cut(self, ready: list[Item], orderer: GtidOrderer[PartitionKey], consumed: dict[PartitionKey, int],
             planned: TargetPosition) -> list[_Unit]:
        """Group-commit units for ``ready``, each with the position it stores; ``planned`` advances past them."""
        shard = self.shard
        chunks = chunks_for_commit(ready, self.limits.max_txns, self.limits.max_bytes, self._sizes,
                                   alone=lambda ev: isinstance(ev, StreamedEvent) or (shard is not None
                                                                                     and shard.is_switch(ev)))
        held = orderer.needed_offsets()
        for key, offset in self._fragments.pending_offsets().items():  # never store a position inside a set
            held[key] = min(offset, held.get(key, offset))
        snapshot = dict(consumed)
        units = []
        for i, chunk in enumerate(chunks):
            later = [item for c in chunks[i + 1:] for item in c]
            base = planned.copy()
            pos = position_after(base, chunk, later, held, snapshot)
            planned.offsets.update(pos.offsets)
            planned.gtids.update(pos.gtids)
            last: dict[str, ChangeEvent] = {}
            for ev, _, _ in chunk:
                last[ev.gtid.domain] = ev
            # (a shard map switch deletes, when applied, the rows the new map moves away: read from the target)
            barrier = any(ev.has_ddl or isinstance(ev, StreamedEvent) or (shard is not None and shard.is_switch(ev))
                          for ev, _, _ in chunk)
            units.append(_Unit(chunk, pos, last, base, later, held, snapshot, barrier))
        return units

    async def _apply_units(self, units: asyncio.Queue[_Unit | SelfVerifier | None], applier, dlq,
                           position: TargetPosition) -> None:
        """The apply task: units in order until the None that ends the stream (or an error)."""
        while True:
            unit = await units.get()
            try:
                if unit is None:
                    return
                if isinstance(unit, SelfVerifier):
                    unit.queued = False
                    differences = await unit.run(applier, dict(position.gtids))
                    for problem in differences:
                        log.error("target %s: self-verification: %s (applied from its statements; the row copy "
                                  "is the primary's truth)", self.target.name, problem)
                    if differences and unit.mode == "halt":
                        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
                        await self._halt(applier, ApplyError(f"self-verification: {differences[0]}{more}"))
                    continue
                await self._apply_unit(applier, dlq, unit, position)
                await self._up_again(applier)
            finally:
                units.task_done()

    async def _up_again(self, applier) -> None:
        """After transient failures in a row: the target works again, and its status row says "running"."""
        if self._retries:
            self._retries = 0
            await applier.set_status("running", "")

    async def _apply_unit(self, applier, dlq, unit: _Unit, position: TargetPosition) -> None:
        shard = self.shard
        chunk = unit.chunk
        prepared = unit.prepared
        if shard is not None and shard.is_switch(chunk[0][0]):  # earlier units are applied by now
            chunk = [(await shard.with_moved_rows_deleted(chunk[0][0], applier), chunk[0][1], chunk[0][2])]
            prepared = None
        try:
            if isinstance(first := chunk[0][0], StreamedEvent):  # a unit of its own
                await applier.apply_parts(parts_to_apply(first, self.tables, shard, chunk[0][2]), chunk[0][2],
                                          unit.pos, unit.last)
                count_applied(self.target.name, first)
            else:
                await applier.apply([(ev, off) for ev, _, off in chunk], unit.pos, unit.last, prepared)
        except ApplyError as exc:
            if exc.retriable:
                raise
            if len(chunk) == 1:
                await self._permanent(applier, dlq, exc, chunk[0][0], unit.pos)
            else:  # isolate the failing event: apply one by one from here
                base = unit.base
                for single in chunk:
                    one_pos = position_after(base, [single], later_items(chunk, single) + unit.later, unit.held,
                                             unit.consumed)
                    try:
                        await applier.apply([(single[0], single[2])], one_pos, {single[0].gtid.domain: single[0]})
                    except ApplyError as one_exc:
                        if one_exc.retriable:
                            raise
                        await self._permanent(applier, dlq, one_exc, single[0], one_pos)
                    position.offsets.update(one_pos.offsets)
                    position.gtids.update(one_pos.gtids)
                    base = one_pos
                    APPLIED.labels(self.target.name).inc()
                return
        position.offsets.update(unit.pos.offsets)
        position.gtids.update(unit.pos.gtids)
        APPLIED.labels(self.target.name).inc(len(chunk))

    async def _permanent(self, applier, dlq, exc: ApplyError, event, pos: TargetPosition | None = None) -> None:
        problem = redact_text(str(exc))  # the log, the DLQ header and `dbmux status` never show a password
        if self.policy == "dead-letter" and dlq is not None:
            headers = [("dbmux-error", problem.encode()[:4000]), ("dbmux-target", self.target.name.encode()),
                       ("dbmux-offset", str(exc.offset).encode())]
            if isinstance(event, StreamedEvent):
                parts = dead_letter_messages(event, self.config.kafka.fragment_bytes)
            elif isinstance(event, bytes):  # undecodable: as it was (the whole, when fragments were put together)
                parts = [redact_payload(event)]
                if len(parts[0]) > self.config.kafka.fragment_bytes:
                    parts = split(parts[0], self.config.kafka.fragment_bytes, "unknown", "undecodable")
            else:
                parts = split(encode_event(redact_event(event)), self.config.kafka.fragment_bytes, str(event.gtid),
                              event.source)
            for part in parts:
                await dlq.send_and_wait(dlq_topic(self.topic), part, headers=headers)
            DEAD_LETTERED.labels(self.target.name).inc()
            log.error("target %s: %s -> dead-lettered to %s, continuing", self.target.name, problem,
                      dlq_topic(self.topic))
            if pos is not None and isinstance(event, ChangeEvent):
                await applier.apply([], pos, {event.gtid.domain: event})  # position only: recorded as handled
            return
        await self._halt(applier, exc, problem)

    async def _routed(self, route, ev: ChangeEvent, applier, units, apply_task) -> ChangeEvent:
        """A shard's routing of ``ev``; a permanent error halts the target as an apply error does (the
        status says so), after what is already cut is applied."""
        try:
            return await route(ev)
        except ApplyError as exc:
            if exc.retriable:
                raise
            await drained(units, apply_task)
            await self._halt(applier, exc)
            raise  # (_halt raised)

    async def _halt(self, applier, exc: ApplyError, problem: str | None = None) -> None:
        problem = redact_text(str(exc)) if problem is None else problem
        self.halted = exc
        log.error("target %s HALTED on a permanent error: %s", self.target.name, problem)
        try:
            await applier.set_status("halted", problem)
        except Exception:  # noqa: BLE001 - the halt itself matters more
            pass
        raise TargetHalted(problem)


def _applied(orderer: GtidOrderer[PartitionKey], gtid_text: str) -> bool:
    gtid = Gtid.parse(gtid_text)
    return orderer.applied.get(gtid.domain, -1) >= gtid.seq


@dataclass(slots=True)
class _Unit:
    """One target transaction: cut by the consume loop, applied by the apply task, in cut order."""

    chunk: list[Item]
    pos: TargetPosition  # stored with it: the position once it is applied
    last: dict[str, ChangeEvent]  # last event per GTID domain in it
    base: TargetPosition  # the position before it (to position events one by one on an error)
    later: list[Item]  # items cut after it in the same round
    held: dict[PartitionKey, int]  # per partition the lowest offset the orderer needed when it was cut
    consumed: dict[PartitionKey, int]  # next offset per partition when it was cut
    barrier: bool  # nothing more is cut until it is applied
    prepared: object = None  # the applier's ready-made form of it (applier.prepare), or None
