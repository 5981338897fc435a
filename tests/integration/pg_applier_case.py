"""A PostgreSQL applier on the stack's first shard server, with its tables made on both sides, for tests that
drive ``PostgresApplier`` directly: the same tables on the primary (the applier reads primary keys from the
source's schema) and on the target; everything removed again afterwards (schema, database, positions)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pymysql

from dbmux.replicator.pg_applier import PostgresApplier


@dataclass
class PgCase:
    db: str  # the MySQL database = the PostgreSQL schema
    target: str
    topic: str
    applier: PostgresApplier  # connected
    pg: asyncpg.Connection  # a connection of the test's own to the target


@asynccontextmanager
async def pg_applier_case(stack, prefix: str, *tables: str) -> AsyncIterator[PgCase]:
    """``tables``: ``name (columns)`` definitions, created as ``<db>.<name>`` on the primary and the target."""
    db = f"{prefix}_{uuid.uuid4().hex[:8]}"
    target, topic = f"{prefix}_{uuid.uuid4().hex[:6]}", f"dbmux.{prefix}{uuid.uuid4().hex[:6]}.txn"
    p, pg_dsn = stack.primary, stack.shards[0]
    my = pymysql.connect(host=p.host, port=p.port, user=p.user, password=p.password, autocommit=True)
    pg = await asyncpg.connect(host=pg_dsn.host, port=pg_dsn.port, user=pg_dsn.user, password=pg_dsn.password,
                               database=pg_dsn.database)
    applier = PostgresApplier(pg_dsn, target, topic, p)
    try:
        with my.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            for t in tables:
                cur.execute(f"CREATE TABLE {db}.{t}")
        await pg.execute(f"CREATE SCHEMA {db}; " + "; ".join(f"CREATE TABLE {db}.{t}" for t in tables))
        await applier.connect()
        yield PgCase(db, target, topic, applier, pg)
    finally:
        await applier.close()
        await pg.execute(f"DROP SCHEMA IF EXISTS {db} CASCADE")
        await pg.execute("DELETE FROM dbmux_meta.positions WHERE target = $1", target)
        await pg.execute("DELETE FROM dbmux_meta.gtids WHERE target = $1", target)
        await pg.close()
        with my.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        my.close()
