"""`dbmux status`: per target, the applied GTID, lag in transactions and seconds, and state."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer

from dbmux.core.config import Config, TargetConfig
from dbmux.core.kafka_topics import topic_partitions
from dbmux.core.mysql_connect import connect_aiomysql
from dbmux.replicator.positions import META_SCHEMA


@dataclass(frozen=True, slots=True)
class TargetStatus:
    name: str
    applied: str  # last applied GTID(s)
    lag_events: int | None
    lag_s: float | None
    state: str
    detail: str


async def _end_offsets(config: Config) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=config.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, config.topic, attempts=1)
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def _mysql_status(config: Config, target: TargetConfig, ends: dict[int, int]) -> TargetStatus:
    dsn = target.dsn
    try:
        conn = await connect_aiomysql(dsn, connect_timeout=5)
    except Exception as exc:  # noqa: BLE001 - shown as the state
        return TargetStatus(target.name, "-", None, None, "unreachable", f"{dsn.redacted()}: {exc}")
    try:
        async with conn.cursor() as cur:
            try:
                await cur.execute(f"SELECT last_gtid, ts_ms FROM {META_SCHEMA}.gtids WHERE target = %s "
                                  "AND topic = %s", (target.name, config.topic))
                gtids = await cur.fetchall()
                await cur.execute(f"SELECT kafka_partition, next_offset FROM {META_SCHEMA}.positions "
                                  "WHERE target = %s AND topic = %s", (target.name, config.topic))
                offsets = dict(await cur.fetchall())
                await cur.execute(f"SELECT state, detail FROM {META_SCHEMA}.status WHERE target = %s",
                                  (target.name,))
                row = await cur.fetchone()
            except Exception:  # noqa: BLE001 - no metadata yet
                return TargetStatus(target.name, "-", None, None, "not started", "")
    finally:
        conn.close()
    return _summarise(target.name, gtids, offsets, row, ends)


async def _pg_status(config: Config, target: TargetConfig, ends: dict[int, int]) -> TargetStatus:
    dsn = target.dsn
    try:
        conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                     database=dsn.database or "postgres", timeout=5)
    except Exception as exc:  # noqa: BLE001 - shown as the state
        return TargetStatus(target.name, "-", None, None, "unreachable", f"{dsn.redacted()}: {exc}")
    try:
        try:
            gtids = [(r[0], r[1]) for r in await conn.fetch(
                f"SELECT last_gtid, ts_ms FROM {META_SCHEMA}.gtids WHERE target = $1 AND topic = $2",
                target.name, config.topic)]
            offsets = {r[0]: r[1] for r in await conn.fetch(
                f"SELECT kafka_partition, next_offset FROM {META_SCHEMA}.positions WHERE target = $1 AND topic = $2",
                target.name, config.topic)}
            row = await conn.fetchrow(f"SELECT state, detail FROM {META_SCHEMA}.status WHERE target = $1",
                                      target.name)
        except asyncpg.PostgresError:
            return TargetStatus(target.name, "-", None, None, "not started", "")
    finally:
        await conn.close()
    return _summarise(target.name, gtids, offsets, (row["state"], row["detail"]) if row else None, ends)


def _summarise(name: str, gtids: Sequence[tuple[str, int]], offsets: dict[int, int], row: tuple[str, str] | None,
               ends: dict[int, int]) -> TargetStatus:
    lag = sum(max(0, end - offsets.get(p, 0)) for p, end in ends.items())
    newest_ms = max((ts for _, ts in gtids), default=None)
    lag_s = 0.0 if lag == 0 else (time.time() - newest_ms / 1000 if newest_ms else None)
    state, detail = row if row else ("not started", "")
    return TargetStatus(name, ",".join(g for g, _ in gtids) or "-", lag, lag_s, state, detail)


async def collect(config: Config) -> list[TargetStatus]:
    ends = await _end_offsets(config)
    out = []
    for t in config.targets:
        if t.dsn.kind == "mysql":
            out.append(await _mysql_status(config, t, ends))
        else:
            out.append(await _pg_status(config, t, ends))
    return out
