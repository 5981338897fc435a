"""What the translator must know about the *source* tables (primary keys, columns, auto-increment,
clock defaults), read from the primary's information_schema. Reloaded after every DDL event; a
replay of old events therefore sees today's schema (documented limitation)."""

from __future__ import annotations

from collections import defaultdict

from dbmux.core.dsn import Dsn
from dbmux.core.mysql_connect import connect_aiomysql
from dbmux.replicator.pg_sql import StaticSchema, TableInfo

_SYSTEM = "('mysql', 'information_schema', 'performance_schema', 'sys', 'dbmux_meta')"


async def load_source_schema(dsn: Dsn) -> StaticSchema:
    conn = await connect_aiomysql(dsn)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_KEY, EXTRA, COLUMN_DEFAULT, DATA_TYPE "
                f"FROM information_schema.COLUMNS WHERE TABLE_SCHEMA NOT IN {_SYSTEM} "
                "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION")
            rows = await cur.fetchall()
            await cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                f"WHERE CONSTRAINT_NAME = 'PRIMARY' AND TABLE_SCHEMA NOT IN {_SYSTEM} "
                "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION")
            pk_rows = await cur.fetchall()
            await cur.execute("SELECT @@system_time_zone")
            (system_time_zone,) = await cur.fetchone()
    finally:
        conn.close()
    cols: dict[tuple[str, str], list[str]] = defaultdict(list)
    auto: dict[tuple[str, str], str] = {}
    clock: dict[tuple[str, str], set[str]] = defaultdict(set)
    on_update: dict[tuple[str, str], set[str]] = defaultdict(set)
    utc: dict[tuple[str, str], set[str]] = defaultdict(set)
    for db, table, col, _key, extra, default, data_type in rows:
        k = (db.lower(), table.lower())
        c = col.lower()
        cols[k].append(c)
        extra = (extra or "").lower()
        if "auto_increment" in extra:
            auto[k] = c
        if default and str(default).lower().startswith(("current_timestamp", "now(")):
            clock[k].add(c)
        if "on update current_timestamp" in extra:
            on_update[k].add(c)
        if str(data_type).lower() == "timestamp":
            utc[k].add(c)
    pks: dict[tuple[str, str], list[str]] = defaultdict(list)
    for db, table, col in pk_rows:
        pks[(db.lower(), table.lower())].append(col.lower())
    return StaticSchema({k: TableInfo(primary_key=tuple(pks.get(k, ())), columns=tuple(v), auto_increment=auto.get(k),
                                      time_defaults=frozenset(clock[k]), on_update=frozenset(on_update[k]),
                                      utc_columns=frozenset(utc[k]))
                         for k, v in cols.items()}, system_time_zone=str(system_time_zone or ""))
