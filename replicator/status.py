"""``dbmux status``: per target, the applied GTID, how far it is behind the primary, and its state.

Lag is measured against the primary itself, never against what reached Kafka: the primary's current
GTID position (``@@gtid_binlog_pos`` on MariaDB, ``@@gtid_executed`` on MySQL) against the target's
last applied sequence number per GTID domain (``dbmux_meta.gtids``, written by its replicator in the
same transaction as the changes). Transactions that never reached the topic (a write that bypassed the
ingress while the binlog reader is down) count, and a target held at a GTID gap shows as behind at
once, not only once its replicator's gap alert (``replicator.gap_alert_ms``) writes ``waiting for
gap`` into its status row.

The decision is :func:`judge` (pure; ``dbmux verify`` uses it too):

=================  ==================================================================================
``running``        caught up: in every domain of the primary the target applied the primary's last
                   sequence number (with ``max_lag_s``: or is at most that many seconds behind)
``behind``         the status row says running, but some domain is behind the primary
``waiting for      the replicator reported a GTID gap (status row) and the target is still behind; once
gap``              it has caught up, the gap is closed whatever the row still says
``halted``         the replicator halted on a permanent error (status row), whatever the positions say
``not started``    the target holds no position and no status row for this target name and topic
=================  ==================================================================================

``lag txns`` = the sum over the primary's domains of (primary's seq - applied seq); a domain the target
never applied counts from 0. ``lag s`` = 0 when caught up; otherwise the primary's clock minus the
commit time of the last transaction the target applied in the furthest-behind domain: an upper bound of
the age of the oldest transaction it lacks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from dbmux.core.config import Config, TargetConfig
from dbmux.core.gtid import Gtid
from dbmux.core.kafka_topics import topic_partitions
from dbmux.replicator.verify_readers import MySQLReader, ReplicationMeta, connect_reader

RUNNING = "running"
BEHIND = "behind"
WAITING = "waiting for gap"
HALTED = "halted"
RETRYING = "retrying"  # transient failures in a row (replicator.runner.RETRIES_SHOWN): the row says the last
NOT_STARTED = "not started"
UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class Judgement:
    """Where a target stands against the primary (:func:`judge`)."""

    state: str  # RUNNING, BEHIND, WAITING, RETRYING, HALTED or NOT_STARTED
    detail: str
    lag_txns: int | None  # transactions behind the primary; None: unknown (the primary's position is)
    lag_s: float | None  # seconds behind (see the module docstring); None: unknown
    behind: dict[str, int]  # domain -> transactions behind (only domains that are)

    @property
    def caught_up(self) -> bool:
        return self.state == RUNNING and self.lag_txns is not None


def _domains(primary: Mapping[str, Gtid], meta: ReplicationMeta, behind: Mapping[str, int]) -> str:
    parts = []
    for d in sorted(behind):
        applied = meta.applied.get(d)
        parts.append(f"domain {d}: applied {applied.gtid if applied else 'nothing'}, primary {primary[d]}")
    return "; ".join(parts)


def judge(primary: Mapping[str, Gtid] | None, meta: ReplicationMeta | None, *, now_s: float | None = None,
          max_lag_s: float = 0.0, kafka_backlog: int | None = None) -> Judgement:
    """Decide a target's state from the primary's GTID position (``None``: could not be read), the
    target's stored replication state (``None``: it has none) and, for ``lag s``, the primary's clock.

    ``max_lag_s`` > 0: a target the status row says is running and at most that many seconds behind
    counts as running. ``kafka_backlog`` (events on the topic past the target's stored offsets) only
    explains a target that is behind."""
    if meta is None:
        return Judgement(NOT_STARTED, "no position stored for this topic: its replicator has not run yet",
                         None, None, {})
    row_state, row_detail = meta.status if meta.status else (RUNNING, "")
    if primary is None:
        return Judgement(row_state, "; ".join(x for x in (row_detail, "the primary's GTID position could not be "
                                                           "read: whether it is behind is unknown") if x),
                         None, None, {})
    behind = {d: g.seq - (meta.applied[d].seq if d in meta.applied else 0) for d, g in primary.items()}
    behind = {d: n for d, n in behind.items() if n > 0}
    lag_txns = sum(behind.values())
    lag_s: float | None = 0.0
    if behind:
        stamps = [meta.applied[d].ts_ms for d in behind if d in meta.applied]
        lag_s = max(0.0, now_s - min(stamps) / 1000) if now_s is not None and len(stamps) == len(behind) else None
    ahead = [f"domain {d}: applied {a.gtid}, primary {primary[d]}" for d, a in sorted(meta.applied.items())
             if d in primary and a.seq > primary[d].seq]
    notes = [f"ahead of the primary ({'; '.join(ahead)}): was its binlog reset?"] if ahead else []
    if row_state == HALTED:
        return Judgement(HALTED, "; ".join([row_detail or "(no reason recorded)", *notes]), lag_txns, lag_s, behind)
    if not behind:
        # caught up: no gap can be open below the primary's position, whatever an old status row says
        return Judgement(row_state if row_state not in (WAITING, BEHIND) else RUNNING, "; ".join(notes), 0, 0.0,
                         behind)
    where = (f"{lag_txns} transaction{'s' if lag_txns != 1 else ''} behind the primary "
             f"({_domains(primary, meta, behind)})")
    if row_state == WAITING:
        return Judgement(WAITING, "; ".join([row_detail, where, *notes]), lag_txns, lag_s, behind)
    if row_state == RUNNING and max_lag_s > 0 and lag_s is not None and lag_s <= max_lag_s:
        return Judgement(RUNNING, "; ".join([where, f"within --max-lag {max_lag_s:g}s", *notes]), lag_txns, lag_s,
                         behind)
    if kafka_backlog == 0:
        notes.append("nothing on the topic past its position: the missing transactions were not published "
                     "(is the binlog reader running?)")
    elif kafka_backlog:
        notes.append(f"{kafka_backlog} event{'s' if kafka_backlog != 1 else ''} on the topic past its position (not "
                     "applied yet, or held behind a missing GTID)")
    if row_state not in (RUNNING, BEHIND):  # a state this version does not know: shown as it is
        return Judgement(row_state, "; ".join([x for x in (row_detail, where) if x] + notes), lag_txns, lag_s, behind)
    return Judgement(BEHIND, "; ".join([where, *notes]), lag_txns, lag_s, behind)


@dataclass(frozen=True, slots=True)
class TargetStatus:
    name: str
    applied: str  # last applied GTID per domain, comma-separated ("-": none)
    lag_txns: int | None  # transactions behind the primary
    lag_s: float | None
    state: str
    detail: str
    kafka_backlog: int | None = None  # events on the topic past its stored offsets (None: unknown)
    reads: str = ""  # with ingress.reads = "replicas": "in rotation", "out" or "-" (serves none); else ""

    @property
    def ok(self) -> bool:
        """Running and caught up with the primary (within ``max_lag_s``); unknown lag is not ok."""
        return self.state == RUNNING and self.lag_txns is not None


@dataclass(frozen=True, slots=True)
class StatusReport:
    primary: str  # the primary's GTID position as read ("" when it could not be read)
    primary_error: str
    kafka_error: str
    targets: list[TargetStatus]

    @property
    def exit_code(self) -> int:
        """0 when every target is running and caught up with the primary, else 1 (also when the primary's
        position could not be read: caught up cannot be shown)."""
        return 0 if all(t.ok for t in self.targets) else 1


async def _end_offsets(config: Config) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=config.kafka.bootstrap, enable_auto_commit=False,
                                request_timeout_ms=config.kafka.request_timeout_ms)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, config.topic, attempts=1)
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def primary_position(config: Config) -> tuple[dict[str, Gtid], float]:
    """The primary's GTID position and clock (raises what the connection raises)."""
    reader = await MySQLReader.connect("primary", config.primary.dsn)
    try:
        return await reader.gtid_position()
    finally:
        await reader.close()


async def _target_status(config: Config, target: TargetConfig, primary: dict[str, Gtid] | None, now_s: float | None,
                         ends: dict[int, int] | None, max_lag_s: float) -> TargetStatus:
    dsn = target.dsn
    try:
        reader = await connect_reader(target.name, dsn)
    except Exception as exc:  # noqa: BLE001 - shown as the state
        return TargetStatus(target.name, "-", None, None, UNREACHABLE, f"{dsn.redacted()}: {exc}")
    try:
        meta = await reader.replication_meta(target.name, config.topic)
    except Exception as exc:  # noqa: BLE001 - shown as the state
        return TargetStatus(target.name, "-", None, None, UNREACHABLE,
                            f"{dsn.redacted()}: cannot read {type(exc).__name__}: {exc}")
    finally:
        await reader.close()
    backlog = None
    if ends is not None and meta is not None:
        backlog = sum(max(0, end - meta.offsets.get(p, 0)) for p, end in ends.items())
    j = judge(primary, meta, now_s=now_s, max_lag_s=max_lag_s, kafka_backlog=backlog)
    applied = ",".join(a.gtid for _, a in sorted(meta.applied.items())) if meta else ""
    return TargetStatus(target.name, applied or "-", j.lag_txns, j.lag_s, j.state, j.detail, backlog)


def read_state(serves_reads: bool, state: str) -> str:
    """A target's place in read routing as the ingress decides it (ingress.read_router): in rotation while
    its replicator's status row says running (behind or not: each read waits for what it must see)."""
    if not serves_reads:
        return "-"
    return "in rotation" if state in (RUNNING, BEHIND) else "out"


async def collect(config: Config, *, max_lag_s: float = 0.0) -> StatusReport:
    """Every target's state against the primary's current GTID position (see the module docstring)."""
    primary: dict[str, Gtid] | None
    now_s: float | None
    try:
        primary, now_s = await primary_position(config)
        primary_error = ""
    except Exception as exc:  # noqa: BLE001 - reported; the targets' own states are still shown
        primary, now_s = None, None
        primary_error = f"cannot read the primary at {config.primary.dsn.redacted()}: {type(exc).__name__}: {exc}"
    ends: dict[int, int] | None
    try:
        ends = await _end_offsets(config)
        kafka_error = ""
    except Exception as exc:  # noqa: BLE001 - only the explanation of a lag needs it
        ends, kafka_error = None, f"cannot read the end offsets of {config.topic}: {type(exc).__name__}: {exc}"
    out = [await _target_status(config, t, primary, now_s, ends, max_lag_s) for t in config.targets]
    if config.ingress.reads == "replicas":
        out = [dataclasses.replace(status, reads=read_state(target.reads_here, status.state))
               for status, target in zip(out, config.targets, strict=True)]
    text = ",".join(str(g) for _, g in sorted(primary.items())) if primary is not None else ""
    return StatusReport(text, primary_error, kafka_error, out)
