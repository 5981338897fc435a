"""A shard target's replicator state: which map version it applies, routing, and map switches.

Map versions. Version 1 is the ``[shardmap]`` config section. Later versions are recorded by
``dbmux reshard`` as rows of ``dbmux_shardmap.versions`` **on the primary**, so a switch is a
transaction in the stream with its own GTID, seen by every replicator at the same point of the
commit order. ``dbmux_shardmap.*`` is a reference table: every shard keeps a copy of the history in
the same transactions as its data, so on restart a shard target resumes with exactly the version its
data reflects: the highest of (its copy of the history, the version a backfill seeded it with in
``dbmux_meta.shardmap``, the config's).

Routing happens twice. When an event is consumed, the router decides whether it needs the row form
(the ordering layer then holds the GTID for the binlog reader's copy). When events are *released* in
GTID order they are routed with the map in force at that point; a released switch event changes the
map for every later event. The switch itself is applied alone, and before it the shard reads which
keys it holds that the new version gives to another shard: deleting them is part of the same target
transaction as the switch (exactly once, like everything else).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from dbmux.core.config import Config, TargetConfig
from dbmux.core.events import ChangeEvent, RowChange
from dbmux.core.mysql_connect import connect_aiomysql
from dbmux.replicator.errors import ApplyError
from dbmux.replicator.schema_info import TableInfo
from dbmux.replicator.shard_routing import ShardRouter
from dbmux.replicator.shard_statements import typed_key_values
from dbmux.replicator.source_schema import load_source_schema
from dbmux.shardmap import ShardMap
from dbmux.shardmap.errors import ShardMapError
from dbmux.shardmap.model import VERSIONS_DB

log = logging.getLogger(__name__)

VERSIONS_TABLE = "versions"


def switch_map(ev: ChangeEvent) -> ShardMap | None:
    """The map version an event records (a row inserted into ``dbmux_shardmap.versions``), if any."""
    found = None
    for r in ev.rows:
        if r.db.lower() == VERSIONS_DB and r.table.lower() == VERSIONS_TABLE and r.op == "insert" and r.after:
            doc: Any = {k.lower(): v for k, v in r.after.items()}.get("map")  # (a row image value)
            if isinstance(doc, (bytes, bytearray)):
                doc = doc.decode()
            m = ShardMap.from_dict(orjson.loads(doc))
            if found is None or m.version > found.version:
                found = m
    return found


async def recorded_maps_on_primary(config: Config) -> list[ShardMap]:
    """Every version recorded on the primary, oldest first (empty when none was ever recorded)."""
    conn = await connect_aiomysql(config.primary.dsn, charset="utf8mb4", autocommit=True)
    try:
        async with conn.cursor() as cur:
            try:
                await cur.execute(f"SELECT map FROM {VERSIONS_DB}.{VERSIONS_TABLE} ORDER BY version")
            except Exception:  # noqa: BLE001 - no history table yet: only the config's version exists
                return []
            return [ShardMap.from_dict(orjson.loads(m)) for (m,) in await cur.fetchall()]
    finally:
        conn.close()


async def current_map(config: Config) -> ShardMap:
    """The newest map: the primary's latest recorded version, else the config's."""
    base = ShardMap.from_config(config.shardmap)
    recorded = await recorded_maps_on_primary(config)
    return max([base, *recorded], key=lambda m: m.version)


async def _target_rows(applier, sql_mysql: str, sql_pg: str) -> list[tuple]:
    conn = applier.connection
    if hasattr(conn, "fetch"):  # asyncpg
        try:
            return [tuple(r) for r in await conn.fetch(sql_pg)]
        except Exception:  # noqa: BLE001 - table not there (yet)
            return []
    async with conn.cursor() as cur:
        try:
            await cur.execute(sql_mysql)
            rows = list(await cur.fetchall())
        except Exception:  # noqa: BLE001
            rows = []
    await conn.commit()
    return rows


def _q_my(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _q_pg(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def map_in_target(applier, config: Config) -> ShardMap:
    """The version this shard target's data reflects (see the module docstring)."""
    candidates = [ShardMap.from_config(config.shardmap)]
    for (doc,) in await _target_rows(
            applier, f"SELECT map FROM {_q_my(VERSIONS_DB)}.{_q_my(VERSIONS_TABLE)}",
            f"SELECT map FROM {_q_pg(VERSIONS_DB)}.{_q_pg(VERSIONS_TABLE)}"):
        candidates.append(ShardMap.from_dict(orjson.loads(doc)))
    target = applier.target
    for (doc,) in await _target_rows(
            applier, f"SELECT map FROM dbmux_meta.shardmap WHERE target = '{target.replace(chr(39), '')}'",
            f"SELECT map FROM dbmux_meta.shardmap WHERE target = '{target.replace(chr(39), '')}'"):
        candidates.append(ShardMap.from_dict(orjson.loads(doc)))
    return max(candidates, key=lambda m: m.version)


class ShardTarget:
    """Routing state of one shard target inside :class:`replicator.runner.Replicator`."""

    def __init__(self, config: Config, target: TargetConfig) -> None:
        self.config = config
        self.shard = target.shard
        self.router: ShardRouter | None = None
        self._switches: dict[tuple[str, int], tuple[ShardMap, ShardMap]] = {}  # (domain, seq) -> (old, new)

    async def start(self, applier) -> None:
        shard_map = await map_in_target(applier, self.config)
        schema = await load_source_schema(self.config.primary.dsn)
        if self.shard not in shard_map.shards:
            raise ApplyError(f"shard {self.shard!r} is not in shard map version {shard_map.version} (shards "
                             f"{', '.join(shard_map.shards)}): add it with 'dbmux reshard --add-shard {self.shard}'")
        self.router = ShardRouter(shard_map, schema, self.shard)
        log.info("shard %s: shard map version %d (%s placement, shards %s)", self.shard, shard_map.version,
                 shard_map.placement, ", ".join(shard_map.shards))

    @property
    def map(self) -> ShardMap:
        assert self.router is not None
        return self.router.shard_map

    async def _route(self, ev: ChangeEvent) -> ChangeEvent:
        assert self.router is not None
        try:
            return self.router.route(ev)
        except ApplyError as exc:
            if not exc.retriable:
                raise
        # a table the schema does not know: created since it was loaded
        self.router.schema = await load_source_schema(self.config.primary.dsn)
        self.router.gone.clear()
        try:
            return self.router.route(ev)
        except ApplyError as exc:
            if not exc.retriable:
                raise
            # still unknown: the table is gone from the primary (dropped later). It is placed by the key its
            # row events carry; without one like a table without a primary key (the default shard, or every shard).
            for r in ev.rows:
                if (r.db.lower(), r.table.lower()) not in self.router.schema.tables:
                    self.router.gone[(r.db.lower(), r.table.lower())] = TableInfo()
            log.warning("shard %s gtid %s: rows of a table the primary no longer has; placed by the key their "
                        "events carry, or as unsharded", self.shard, ev.gtid)
            return self.router.route(ev)

    async def probe(self, ev: ChangeEvent) -> ChangeEvent:
        """At consume time: the event as routed now (statements marked unsafe if it needs the row form)."""
        return await self._route(ev)

    async def release(self, ev: ChangeEvent) -> ChangeEvent:
        """At release time (GTID order): route again with the map in force here (the probe may have used
        an older version: only adding shards is supported, so routing the probed part again with the
        newer version gives exactly this shard's part); a switch changes the map for later events."""
        routed = await self._route(ev)
        new = switch_map(routed)
        if new is not None and new.version > self.map.version:
            old = self.map
            if tuple(new.shards[:len(old.shards)]) != tuple(old.shards) or self.shard not in new.shards:
                raise ApplyError(f"shard map version {new.version} (shards {', '.join(new.shards)}) does not only add "
                                 f"shards to version {old.version} ({', '.join(old.shards)}): not supported",
                                 gtid=str(ev.gtid))
            assert self.router is not None  # (self.map has checked it)
            self.router.shard_map = new
            self._switches[(ev.gtid.domain, ev.gtid.seq)] = (old, new)
            log.warning("shard %s: switching from shard map version %d to %d at GTID %s", self.shard, old.version,
                        new.version, ev.gtid)
        return routed

    async def route_part(self, ev: ChangeEvent, shard_map: ShardMap) -> ChangeEvent:
        """A part of a transaction applied part by part (:mod:`replicator.streamed`), routed with the map
        that was in force when the transaction was released (later events may have switched it since)."""
        assert self.router is not None
        current, self.router.shard_map = self.router.shard_map, shard_map
        try:
            routed = await self._route(ev)
        finally:
            self.router.shard_map = current
        if switch_map(routed) is not None:
            raise ApplyError("a shard map switch inside a transaction cut into parts is not supported",
                             gtid=str(ev.gtid))
        return routed

    def is_switch(self, ev: ChangeEvent) -> bool:
        return (ev.gtid.domain, ev.gtid.seq) in self._switches

    @staticmethod
    def changes_map(ev: ChangeEvent) -> bool:
        """Does ``ev`` record a map version (a switch: rows move between shards without row images)?"""
        return any(r.db.lower() == VERSIONS_DB and r.table.lower() == VERSIONS_TABLE for r in ev.rows)

    async def with_moved_rows_deleted(self, ev: ChangeEvent, applier) -> ChangeEvent:
        """The switch event plus a delete for every row this shard holds that the new version places
        elsewhere (read now: every earlier event is applied)."""
        old, new = self._switches.pop((ev.gtid.domain, ev.gtid.seq))
        assert self.router is not None  # (a switch is recorded by release(), after start())
        schema = self.router.schema
        deletes: list[RowChange] = []
        for (db, table), info in sorted(schema.tables.items()):
            try:
                rule = new.rule(db, table, tuple(info.primary_key))
            except ShardMapError:
                continue
            if rule.kind != "sharded" or not info.primary_key:
                continue
            pk = tuple(c.lower() for c in info.primary_key)
            cols = list(dict.fromkeys([*pk, *rule.key]))
            rows = await _target_rows(
                applier, f"SELECT {', '.join(map(_q_my, cols))} FROM {_q_my(db)}.{_q_my(table)}",
                f"SELECT {', '.join(map(_q_pg, cols))} FROM {_q_pg(db)}.{_q_pg(table)}")
            moved = 0
            for row in rows:
                values: dict[str, Any] = dict(zip(cols, row, strict=True))  # (SELECT cols)
                key = typed_key_values(rule.key, [values[c] for c in rule.key], info.uuids)
                if new.locate(db, table, key) != self.shard:
                    deletes.append(RowChange(table, db, "delete", before={c: values[c] for c in pk}))
                    moved += 1
            if moved:
                log.warning("shard %s: %s.%s: %d rows now belong to other shards (version %d -> %d): deleting",
                            self.shard, db, table, moved, old.version, new.version)
        return ChangeEvent(ev.gtid, ev.source, ev.ts_ms, ev.db, ev.statements, ev.rows + tuple(deletes), ev.session)


async def shard_owners(config: Config, targets) -> dict[str, Any]:
    """``dbmux verify``'s ownership predicates for the shard targets among ``targets``: a row belongs to a
    shard when the newest map version places it there (reference tables: every shard)."""
    shard_targets = [t for t in targets if t.shard]
    if not shard_targets:
        return {}
    shard_map = await current_map(config)
    schema = await load_source_schema(config.primary.dsn)

    def make(shard: str):
        def owns(db: str, table: str, pk: tuple) -> bool:
            info = schema.tables.get((db.lower(), table.lower()))
            names = tuple(c.lower() for c in info.primary_key) if info else ()
            rule = shard_map.rule(db, table, names)
            if rule.kind == "reference":
                return True
            if rule.kind == "single":
                return rule.shard == shard
            values = dict(zip(names, pk, strict=False))  # (names: () for a table the schema lacks)
            missing = [c for c in rule.key if c not in values]
            if missing:
                raise ShardMapError(f"{db}.{table}: shard key column {missing[0]} is not part of the primary key, "
                                    "so verify cannot place rows by key")
            key = typed_key_values(rule.key, [values[c] for c in rule.key], info.uuids if info else frozenset())
            return shard_map.locate(db, table, key) == shard
        return owns

    return {t.name: make(t.shard) for t in shard_targets}
