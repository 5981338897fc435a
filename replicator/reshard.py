"""``dbmux reshard --add-shard NAME``: add a shard online, with writes continuing.

1. The plan: the next map version = the newest one (recorded on the primary, else the config's) with
   ``NAME`` appended. With jump or ring placement only about 1/N of the keys move, all to ``NAME``.
2. The history table ``dbmux_shardmap.versions`` is created on the primary if needed, and the current
   version recorded in it if it is not yet (so the history starts where sharding started).
3. ``NAME``'s target is backfilled from a consistent snapshot with exactly the rows the new version
   gives it (see :mod:`replicator.backfill`), and seeded to replicate with the new version from the
   snapshot's GTID on.
4. The new version is recorded on the primary: that insert's GTID is the switch. Every shard
   replicator reaches it in commit order; the old shards delete the rows they no longer own in the same
   target transaction (:mod:`replicator.shard_target`), the new shard already holds them.
Start ``NAME``'s replicator (``dbmux replicate --target NAME``) at any time after step 3.
"""

from __future__ import annotations

import argparse
import logging

import orjson

from dbmux.config import Config
from dbmux.errors import DbmuxError
from replicator.backfill import backfill
from replicator.shard_target import VERSIONS_TABLE, current_map, recorded_maps_on_primary
from shardmap import ShardMap
from shardmap.model import VERSIONS_DB
from shardmap.plan import plan_add_shard

log = logging.getLogger(__name__)

_CREATE = (f"CREATE TABLE IF NOT EXISTS {VERSIONS_DB}.{VERSIONS_TABLE} (version INT NOT NULL PRIMARY KEY, "
           "map LONGTEXT NOT NULL, note VARCHAR(255) NOT NULL DEFAULT '', "
           "recorded_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB")


class ReshardError(DbmuxError):
    pass


async def _primary(config: Config):
    from dbmux.mysql_connect import connect_aiomysql

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
                    progress: bool = True) -> tuple[ShardMap, str]:
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


def add_reshard_parser(sub) -> None:
    from dbmux.cli import _default_config

    p = sub.add_parser("reshard", help="add a shard online: backfill the keys it takes, then switch every shard "
                                       "to the new map version at a recorded GTID")
    p.add_argument("-c", "--config", default=_default_config(),
                   help="pipeline config TOML (default: $DBMUX_CONFIG, else the local stack's)")
    p.add_argument("--add-shard", required=True, metavar="NAME", help="the shard to add (a target with shard = NAME)")
    p.add_argument("--lower-bound", type=int, metavar="N", help="placement 'range': the new shard's lower bound")
    p.add_argument("--chunk-rows", type=int, default=5000, help="backfill rows per chunk (default 5000)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.set_defaults(func=cmd_reshard)


def cmd_reshard(args: argparse.Namespace) -> int:
    from dbmux.cli import _run_async, _stack_config
    from dbmux.config import load_config

    config = load_config(args.config or _stack_config())

    async def main() -> int:
        new, gtid = await add_shard(config, args.add_shard, lower_bound=args.lower_bound,
                                    chunk_rows=args.chunk_rows, progress=not args.no_progress)
        target = next(t.name for t in config.targets if t.shard == args.add_shard)
        print(f"shard map version {new.version} (shards {', '.join(new.shards)}) recorded at GTID {gtid}: each old "
              f"shard deletes the rows it gives away when its replicator reaches that GTID. Start the new shard: "
              f"dbmux replicate --target {target}")
        return 0

    return _run_async(main())

