"""``dbmux reshard --add-shard NAME``: add a shard online, with writes continuing.

1. The plan: the next map version = the newest one (recorded on the primary, else the config's) with
   ``NAME`` appended. With jump or ring placement only about 1/N of the keys move, all to ``NAME``.
2. The history table ``dbmux_shardmap.versions`` is created on the primary if needed, and the current
   version recorded in it if it is not yet (so the history starts where sharding started).
3. ``NAME``'s target is backfilled from a consistent snapshot with exactly the rows the new version
   gives it (see :mod:`dbmux.replicator.backfill`), and seeded to replicate with the new version from the
   snapshot's GTID on.
4. The new version is recorded on the primary: that insert's GTID is the switch. Every shard
   replicator reaches it in commit order; the old shards delete the rows they no longer own in the same
   target transaction (:mod:`dbmux.replicator.shard_target`), the new shard already holds them.
Start ``NAME``'s replicator (``dbmux replicate --target NAME``) at any time after step 3.
"""

from __future__ import annotations

import logging

import orjson

from dbmux.core.config import Config
from dbmux.core.mysql_connect import connect_aiomysql
from dbmux.replicator.backfill.run import ProgressSink, backfill
from dbmux.replicator.errors import ReplicatorError
from dbmux.replicator.shard_target import VERSIONS_TABLE, current_map, recorded_maps_on_primary
from dbmux.shardmap import ShardMap
from dbmux.shardmap.model import VERSIONS_DB
from dbmux.shardmap.plan import plan_add_shard

log = logging.getLogger(__name__)

_CREATE = (f"CREATE TABLE IF NOT EXISTS {VERSIONS_DB}.{VERSIONS_TABLE} (version INT NOT NULL PRIMARY KEY, "
           "map LONGTEXT NOT NULL, note VARCHAR(255) NOT NULL DEFAULT '', "
           "recorded_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB")


class ReshardError(ReplicatorError):
    """Resharding cannot go ahead as asked; the message says what to do."""


async def _primary(config: Config):
    return await connect_aiomysql(config.primary.dsn, charset="utf8mb4", autocommit=True)


async def record_version(config: Config, shard_map: ShardMap, note: str) -> str:
    """Insert ``shard_map`` into the primary's history; returns the GTID of that transaction."""
    conn = await _primary(config)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE DATABASE IF NOT EXISTS {VERSIONS_DB}")
            await cur.execute(_CREATE)
            await cur.execute(f"INSERT INTO {VERSIONS_DB}.{VERSIONS_TABLE} (version, map, note) VALUES (%s, %s, %s)",
                              (shard_map.version, orjson.dumps(shard_map.to_dict()).decode(), note[:255]))
            await cur.execute("SELECT @@last_gtid")
            row = await cur.fetchone()
            if not row or not row[0]:
                await cur.execute("SELECT @@gtid_executed")  # MySQL
                row = await cur.fetchone()
        return str(row[0])
    finally:
        conn.close()


async def add_shard(config: Config, name: str, *, lower_bound: int | None = None, chunk_rows: int = 5000,
                    progress: ProgressSink | None = None) -> tuple[ShardMap, str]:
    targets = [t for t in config.targets if t.shard == name]
    if len(targets) != 1:
        raise ReshardError(f"shard {name!r} needs exactly one target: add [targets.<name>] with shard = \"{name}\" "
                           f"to {config.source}")
    current = await current_map(config)
    if name in current.shards:
        recorded = {m.version for m in await recorded_maps_on_primary(config)}
        raise ReshardError(f"shard {name!r} is already in shard map version {current.version}"
                           + ("" if current.version in recorded else " (the config's)"))
    plan = plan_add_shard(current, name, lower_bound)
    new = plan.new
    recorded = {m.version for m in await recorded_maps_on_primary(config)}
    if current.version not in recorded:
        await record_version(config, current, "the shard map before the first resharding")
    log.info("resharding: version %d -> %d, adding %s", current.version, new.version, name)
    await backfill(config, targets[0].name, chunk_rows=chunk_rows, progress=progress, shard_map=new)
    gtid = await record_version(config, new, f"add shard {name}")
    return new, gtid
