"""``dbmux shardmap``: look up, show and plan the shard map of a config.

``locate`` and ``show`` are pure (config in, text out). ``plan --count`` is the only part with I/O: it
reads the primary (PyMySQL, read-only session) to count the rows that would move.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.cursors

from dbmux.cli.common import add_config_arg, load_command_config, run_async
from dbmux.core.config import Config
from dbmux.core.errors import DbmuxError
from dbmux.core.mysql_connect import connect_pymysql
from dbmux.replicator.shard_target import current_map
from dbmux.shardmap import ShardMap
from dbmux.shardmap.errors import ShardMapError
from dbmux.shardmap.hashing import canonical_key, jump_hash, shard_hash
from dbmux.shardmap.model import split_table_name
from dbmux.shardmap.plan import ReshardPlan, plan_add_shard

_SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys", "dbmux_meta")


log = logging.getLogger(__name__)


def register(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "shardmap", help="the shard map: which shard owns a key, the map, resharding plans")
    sub = p.add_subparsers(dest="shardmap_command", required=True)

    def config_arg(sp: argparse.ArgumentParser) -> None:
        add_config_arg(sp)
        sp.add_argument("--offline", action="store_true",
                        help="use the config's [shardmap] only; by default the newest version recorded on the "
                             "primary by 'dbmux reshard' is used when there is one")

    loc = sub.add_parser("locate", help="print the shard owning a key of a table")
    config_arg(loc)
    loc.add_argument("table", metavar="TABLE", help="db.table")
    loc.add_argument("key", metavar="KEY", nargs="+",
                     help="shard-key values as text, one per key column, in key-column order")
    loc.add_argument("--explain", action="store_true",
                     help="also print version, rule, canonical key and hash on stderr (as does -v)")
    loc.set_defaults(func=cmd_locate)

    show = sub.add_parser("show", help="print the map: version, placement, shards, rules")
    config_arg(show)
    show.set_defaults(func=cmd_show)

    plan = sub.add_parser("plan", help="the next version with one more shard, and what moves")
    config_arg(plan)
    plan.add_argument("--add-shard", required=True, metavar="NAME", help="name of the shard to add")
    plan.add_argument("--lower-bound", type=int, metavar="N",
                      help="placement 'range': the new shard's inclusive lower bound (a split)")
    plan.add_argument("--count", action="store_true",
                      help="also count the rows that would move, reading every sharded table of the primary")
    plan.set_defaults(func=cmd_plan)
    return p


def _map(args: argparse.Namespace) -> tuple[Config, ShardMap]:
    config = load_command_config(args)
    if getattr(args, "offline", False):
        return config, ShardMap.from_config(config.shardmap)
    try:
        return config, run_async(current_map(config))
    except Exception as exc:  # noqa: BLE001 - the primary is optional here
        log.warning("primary %s unreachable (%s): using the config's shard map (version %d)",
                    config.primary.dsn.redacted(), exc, config.shardmap.version)
        return config, ShardMap.from_config(config.shardmap)


def cmd_locate(args: argparse.Namespace) -> int:
    db, table = split_table_name(args.table)
    _, smap = _map(args)
    key = tuple(args.key)
    shard = smap.locate(db, table, key)
    print(shard)
    if args.explain or getattr(args, "verbose", 0):
        explicit = dict(smap.tables).get(f"{db}.{table}".lower())
        if explicit:
            rule = f"sharded by ({', '.join(explicit)})"
        elif smap.default_rule == "primary_key":
            rule = "sharded by its primary key (assumed: the map does not read the schema)"
        else:
            rule = f"single on {shard} (default_rule = none)"
        h = shard_hash(key)
        lines = [f"table {db}.{table}: {rule}",
                 f"map version {smap.version}, placement {smap.placement}, shards {', '.join(smap.shards)}",
                 f"key {key!r}: canonical {canonical_key(key).hex()}",
                 f"hash 0x{h:016x} ({h})"]
        if smap.placement == "jump":
            lines.append(f"jump bucket {jump_hash(h, len(smap.shards))} of {len(smap.shards)}")
        print("\n".join(lines), file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _, smap = _map(args)
    print("\n".join(smap.describe()))
    return 0


def _toml_list(values: tuple[Any, ...]) -> str:
    return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values) + "]"


def cmd_plan(args: argparse.Namespace) -> int:
    config, smap = _map(args)
    plan = plan_add_shard(smap, args.add_shard, args.lower_bound)
    new = plan.new
    print(f"version: {smap.version} -> {new.version}")
    print(f"shards: {', '.join(new.shards)}")
    print(f"config of the new version: [shardmap] version = {new.version}, shards = {_toml_list(new.shards)}"
          + (f", ranges = {_toml_list(new.ranges)}" if new.placement == "range" else ""))
    try:
        fractions = plan.expected_fractions()
    except ShardMapError as exc:
        print(f"expected share of keys moving: unknown ({exc})")
    else:
        print(f"expected share of each sharded table's keys moving (placement {new.placement}):")
        for (src, dst), share in fractions.items():
            print(f"  {src} -> {dst}: {share:.2%}")
        print(f"  total: {sum(fractions.values()):.2%}")
    if args.count:
        return _count_moves(config, plan)
    return 0


# -- plan --count: the only I/O ------------------------------------------------------------------------
def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _connect(config: Config) -> pymysql.connections.Connection[Any]:
    dsn = config.primary.dsn
    try:
        conn = connect_pymysql(dsn, host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                               charset="utf8mb4", connect_timeout=10, autocommit=True)
    except (pymysql.err.MySQLError, OSError) as exc:
        raise DbmuxError(f"cannot connect to the primary {dsn.redacted()}: {exc}") from None
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION READ ONLY")
    return conn


def _tables(conn: pymysql.connections.Connection[Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(db, table, primary-key columns lower-case) of every base table outside the system schemas."""
    marks = ", ".join(["%s"] * len(_SYSTEM_SCHEMAS))
    with conn.cursor() as cur:
        cur.execute(f"SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                    f"WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({marks}) "
                    f"ORDER BY TABLE_SCHEMA, TABLE_NAME", _SYSTEM_SCHEMAS)
        tables = [(str(db), str(t)) for db, t in cur.fetchall()]
        cur.execute(f"SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                    f"WHERE CONSTRAINT_NAME = 'PRIMARY' AND TABLE_SCHEMA NOT IN ({marks}) "
                    f"ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION", _SYSTEM_SCHEMAS)
        pks: dict[tuple[str, str], list[str]] = {}
        for db, t, col in cur.fetchall():
            pks.setdefault((str(db), str(t)), []).append(str(col).lower())
    return [(db, t, tuple(pks.get((db, t), ()))) for db, t in tables]


def _stream_keys(conn: pymysql.connections.Connection[Any], db: str, table: str,
                 columns: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    cols = ", ".join(_quote(c) for c in columns)
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(f"SELECT {cols} FROM {_quote(db)}.{_quote(table)}")
        while True:
            rows = cur.fetchmany(10000)
            if not rows:
                return
            yield from rows


def _count_moves(config: Config, plan: ReshardPlan) -> int:
    conn = _connect(config)
    totals: Counter[tuple[str, str]] = Counter()
    total_rows = 0
    problems = 0
    print("rows that would move (counted on the primary):")
    try:
        for db, table, pk in _tables(conn):
            try:
                old_rule = plan.old.rule(db, table, pk)
                new_rule = plan.new.rule(db, table, pk)
            except ShardMapError as exc:
                print(f"  {db}.{table}: skipped: {exc}", file=sys.stderr)
                problems += 1
                continue
            if old_rule.kind != "sharded" or new_rule != old_rule:
                if new_rule.kind == "reference" and plan.added:
                    print(f"  {db}.{table}: reference table, copied whole to {', '.join(plan.added)}")
                continue
            moves: Counter[tuple[str, str]] = Counter()
            rows = 0
            try:
                for key in _stream_keys(conn, db, table, new_rule.key):
                    rows += 1
                    m = plan.move(db, table, tuple(key))
                    if m is not None:
                        moves[(m.from_shard, m.to_shard)] += 1
            except ShardMapError as exc:
                print(f"  {db}.{table}: skipped: {exc}", file=sys.stderr)
                problems += 1
                continue
            total_rows += rows
            totals.update(moves)
            detail = ", ".join(f"{a} -> {b}: {n}" for (a, b), n in sorted(moves.items())) or "none"
            print(f"  {db}.{table}: {rows} rows, moving {sum(moves.values())} ({detail})")
    except pymysql.err.MySQLError as exc:
        raise DbmuxError(f"reading the primary {config.primary.dsn.redacted()}: {exc}") from None
    finally:
        conn.close()
    moved = sum(totals.values())
    share = f" ({moved / total_rows:.2%})" if total_rows else ""
    print(f"total: {moved} of {total_rows} rows of sharded tables move{share}")
    for (a, b), n in sorted(totals.items()):
        print(f"  {a} -> {b}: {n}")
    return 1 if problems else 0
