"""What the translator must know about the *source* tables (primary keys, columns, auto-increment,
clock defaults, the columns PostgreSQL holds differently, triggers), read from the primary's
information_schema. Reloaded after every DDL event; a replay of old events therefore sees today's
schema: row events type their values by the schema they carry (:class:`~dbmux.core.events.TableSchema`,
the table as it was at that GTID) and use this one only for what they do not carry (a primary key with
prefix parts) or when they carry none (events written before); statement events are judged against it.
Triggers are those information_schema shows the ``primary.url`` user (its TRIGGER privilege)."""

from __future__ import annotations

import re
from collections import defaultdict

from dbmux.core.dsn import Dsn
from dbmux.core.mysql_connect import connect_aiomysql
from dbmux.replicator.pg_types import RETYPED, value_list
from dbmux.replicator.schema_info import StaticSchema, TableInfo

_SYSTEM = "('mysql', 'information_schema', 'performance_schema', 'sys', 'dbmux_meta')"
_BIT_WIDTH = re.compile(r"bit\((\d+)\)", re.IGNORECASE)
_JSON_VALID = re.compile(r"\s*json_valid\(`((?:[^`]|``)+)`\)\s*", re.IGNORECASE)


async def load_source_schema(dsn: Dsn) -> StaticSchema:
    conn = await connect_aiomysql(dsn)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_KEY, EXTRA, COLUMN_DEFAULT, DATA_TYPE, "
                f"COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA NOT IN {_SYSTEM} "
                "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION")
            rows = await cur.fetchall()
            await cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                f"WHERE CONSTRAINT_NAME = 'PRIMARY' AND TABLE_SCHEMA NOT IN {_SYSTEM} "
                "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION")
            pk_rows = await cur.fetchall()
            await cur.execute("SELECT DISTINCT EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE FROM "
                              f"information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA NOT IN {_SYSTEM}")
            triggered = {(db.lower(), table.lower()) for db, table in await cur.fetchall()}
            json_checks = await _json_checks(cur)
            await cur.execute("SELECT @@system_time_zone")
            (system_time_zone,) = await cur.fetchone()
    finally:
        conn.close()
    cols: dict[tuple[str, str], list[str]] = defaultdict(list)
    auto: dict[tuple[str, str], str] = {}
    clock: dict[tuple[str, str], set[str]] = defaultdict(set)
    on_update: dict[tuple[str, str], set[str]] = defaultdict(set)
    utc: dict[tuple[str, str], set[str]] = defaultdict(set)
    retyped: dict[tuple[str, str], dict[str, tuple[str, tuple[str, ...]]]] = defaultdict(dict)
    bits: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    uuids: dict[tuple[str, str], set[str]] = defaultdict(set)
    generated: dict[tuple[str, str], set[str]] = defaultdict(set)
    for db, table, col, _key, extra, default, data_type, column_type in rows:
        k = (db.lower(), table.lower())
        c = col.lower()
        cols[k].append(c)
        extra = (extra or "").lower()
        if any(g in extra for g in ("virtual generated", "stored generated", "persistent generated")):
            generated[k].add(c)
        if "auto_increment" in extra:
            auto[k] = c
        if default and str(default).lower().startswith(("current_timestamp", "now(")):
            clock[k].add(c)
        if "on update current_timestamp" in extra:
            on_update[k].add(c)
        data_type = str(data_type).lower()
        if data_type == "timestamp":
            utc[k].add(c)
        if (*k, c) in json_checks:  # MariaDB: JSON is LONGTEXT CHECK (json_valid(c))
            data_type = "json"
        if data_type in RETYPED:
            retyped[k][c] = (data_type, value_list(str(column_type)) if data_type in ("enum", "set") else ())
        if data_type == "uuid":
            uuids[k].add(c)
        if data_type == "bit":
            m = _BIT_WIDTH.search(str(column_type))
            bits[k][c] = int(m[1]) if m else 1
    pks: dict[tuple[str, str], list[str]] = defaultdict(list)
    for db, table, col in pk_rows:
        pks[(db.lower(), table.lower())].append(col.lower())
    return StaticSchema({k: TableInfo(primary_key=tuple(pks.get(k, ())), columns=tuple(v), auto_increment=auto.get(k),
                                      time_defaults=frozenset(clock[k]), on_update=frozenset(on_update[k]),
                                      utc_columns=frozenset(utc[k]), retyped=retyped.get(k, {}),
                                      triggers=k in triggered, bits=bits.get(k, {}),
                                      uuids=frozenset(uuids.get(k, ())), generated=frozenset(generated.get(k, ())))
                         for k, v in cols.items()}, system_time_zone=str(system_time_zone or ""))


async def _json_checks(cur) -> set[tuple[str, str, str]]:
    """(db, table, column) of MariaDB's JSON columns (LONGTEXT with a json_valid CHECK); MySQL reports
    JSON as its DATA_TYPE and has no TABLE_NAME in CHECK_CONSTRAINTS: empty there."""
    try:
        await cur.execute("SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
                          f" WHERE CHECK_CLAUSE LIKE 'json_valid(%' AND CONSTRAINT_SCHEMA NOT IN {_SYSTEM}")
    except Exception:  # noqa: BLE001 - MySQL: no TABLE_NAME column
        return set()
    found = set()
    for db, table, clause in await cur.fetchall():
        m = _JSON_VALID.fullmatch(str(clause))
        if m:
            found.add((db.lower(), table.lower(), m[1].replace("``", "`").lower()))
    return found
