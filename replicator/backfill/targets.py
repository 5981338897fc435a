"""Where ``dbmux backfill`` writes: MySQL/MariaDB and PostgreSQL targets.

Both wrap the replicator's applier for the target (same connection setup, ``dbmux_meta`` tables, the
one-replicator-per-target lock and position format), and add what a backfill needs: create a table
from the primary's definition, insert a chunk *and* the backfill record in one transaction, apply
catch-up row changes, and the hand-off (record ``done`` + the replicator's position, atomically).
A table's definition is created as the primary has it; an error creating it never shows a password
the definition holds.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import orjson
import pymysql

from dbmux.core.config import Config, TargetConfig
from dbmux.core.events import ChangeEvent, RowChange
from dbmux.core.passwords import redact_text
from dbmux.core.transient import is_transient
from dbmux.replicator.errors import ApplyError, BackfillError
from dbmux.replicator.mysql_applier import ROW_SESSION, MySQLApplier
from dbmux.replicator.mysql_sql import literal, quote_ident, row_sql
from dbmux.replicator.pg_applier import PostgresApplier
from dbmux.replicator.pg_sql import row_statement, translate_statement
from dbmux.replicator.pg_types import qualified
from dbmux.replicator.positions import META_SCHEMA, PartitionKey, TargetPosition
from dbmux.replicator.verify_readers import TableShape

_MAX_STATEMENT_BYTES = 4 * 1024 * 1024  # well under the default max_allowed_packet (16 MiB)


async def open_target(config: Config, target: TargetConfig):
    writer = (MySQLTarget if target.dsn.kind == "mysql" else PostgresTarget)(config, target)
    await writer.applier.connect()
    try:
        await writer.applier.lock_target()
    except ApplyError as exc:
        await writer.close()
        raise BackfillError(f"target {target.name} is in use by its replicator or another backfill ({exc}): "
                            "stop it first") from exc
    await writer.prepare()
    return writer


def _handoff_events(record) -> dict[str, ChangeEvent]:
    return {d: ChangeEvent(gtid=g, source="binlog", ts_ms=record.snapshot_ts_ms) for d, g in record.gtids().items()}


class MySQLTarget:
    def __init__(self, config: Config, target: TargetConfig) -> None:
        self.target = target
        self.topic = config.topic
        self.applier = MySQLApplier(target.dsn, target.name, config.topic)

    @property
    def conn(self):
        return self.applier.connection

    async def prepare(self) -> None:
        async with self.conn.cursor() as cur:
            # Same session as the snapshot reads (UTC), zero stays zero in AUTO_INCREMENT columns, and
            # tables can be filled in any order.
            await cur.execute("SET SESSION sql_mode = %s, time_zone = %s, foreign_key_checks = 0", ROW_SESSION)
        await self.conn.commit()

    async def close(self) -> None:
        await self.applier.close()

    async def load(self) -> tuple[str, str] | None:
        return await self.applier.load_backfill()

    def _save_sql(self, record, state: str) -> str:
        return (f"INSERT INTO {META_SCHEMA}.backfill (target, topic, state, doc) VALUES ({literal(self.target.name)}, "
                f"{literal(self.topic)}, {literal(state)}, {literal(record.dumps())}) ON DUPLICATE KEY UPDATE "
                "topic = VALUES(topic), state = VALUES(state), doc = VALUES(doc)")

    async def _commit(self, statements: list[str]) -> None:
        try:
            async with self.conn.cursor() as cur:
                for sql in statements:
                    await cur.execute(sql)
            await self.conn.commit()
        except Exception:
            await self.conn.rollback()
            raise

    async def save(self, record, state: str) -> None:
        await self._commit([self._save_sql(record, state)])

    async def ensure_table(self, shape: TableShape, create_sql: str) -> int:
        """Create the database and table when missing; return 1 if the table holds any row, else 0."""
        create = re.sub(r"^\s*CREATE\s+TABLE\s+", "CREATE TABLE IF NOT EXISTS ", create_sql, count=1, flags=re.I)
        async with self.conn.cursor() as cur:
            await cur.execute("SET SESSION sql_notes = 0")
            await cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(shape.db)}")
            await cur.execute(f"USE {quote_ident(shape.db)}")
            try:
                await cur.execute(create)
            except pymysql.err.MySQLError as exc:
                if is_transient(exc):
                    raise
                # the primary's definition may hold a password (a FEDERATED CONNECTION URL): not in the message
                raise BackfillError(redact_text(f"creating {shape.name} on target {self.target.name} failed: "
                                                f"{exc.args[-1]} (definition: {create[:300]!r})", create)) from None
            await cur.execute("SET SESSION sql_notes = 1")
            await cur.execute(f"SELECT 1 FROM {quote_ident(shape.db)}.{quote_ident(shape.table)} LIMIT 1")
            present = len(await cur.fetchall())
        await self.conn.commit()
        return present

    async def truncate(self, shape: TableShape) -> None:
        async with self.conn.cursor() as cur:
            await cur.execute(f"DELETE FROM {quote_ident(shape.db)}.{quote_ident(shape.table)}")
        await self.conn.commit()

    def _insert_sql(self, shape: TableShape, rows: list[tuple]) -> list[str]:
        return insert_statements(shape.db, shape.table, shape.columns, rows)

    async def insert_chunk(self, shape: TableShape, rows: list[tuple], record) -> None:
        await self._commit(self._insert_sql(shape, rows) + [self._save_sql(record, "copying")])

    async def copy_whole(self, shape: TableShape, chunks: AsyncIterator[list[tuple]], record, bar) -> None:
        """A table without a primary key: every chunk in one transaction, committed with the record."""
        try:
            async with self.conn.cursor() as cur:
                async for rows in chunks:
                    for sql in self._insert_sql(shape, rows):
                        await cur.execute(sql)
                    record.tables[shape.name].rows += len(rows)
                    bar.add(shape.name, len(rows))
                record.tables[shape.name].done = True
                await cur.execute(self._save_sql(record, "copying"))
            await self.conn.commit()
        except Exception:
            await self.conn.rollback()
            raise

    async def apply_rows(self, rows: list[RowChange], shapes: dict[str, TableShape], record) -> None:
        sql = [row_sql(r.db, r.table, r.op, r.before, r.after, shapes[f"{r.db}.{r.table}"].pk_names) for r in rows]
        await self._commit(sql + [self._save_sql(record, "copying")])

    async def finish(self, record, offsets: dict[tuple[str, int], int], shard_map=None) -> None:
        position = TargetPosition({PartitionKey(t, p): off for (t, p), off in offsets.items()},
                                  {d: g.seq for d, g in record.gtids().items()})
        name = literal(self.target.name)
        seeded = [] if shard_map is None else [
            f"INSERT INTO {META_SCHEMA}.shardmap (target, version, map) VALUES ({name}, {int(shard_map.version)}, "
            f"{literal(orjson.dumps(shard_map.to_dict()).decode())}) ON DUPLICATE KEY UPDATE version = "
            "VALUES(version), map = VALUES(map)"]
        await self._commit([f"DELETE FROM {META_SCHEMA}.positions WHERE target = {name}",
                            f"DELETE FROM {META_SCHEMA}.gtids WHERE target = {name} AND topic = {literal(self.topic)}",
                            *self.applier._position_sql(position, _handoff_events(record)),  # noqa: SLF001
                            *seeded, self._save_sql(record, "done")])


class PostgresTarget:
    def __init__(self, config: Config, target: TargetConfig) -> None:
        self.target = target
        self.topic = config.topic
        self.applier = PostgresApplier(target.dsn, target.name, config.topic, config.primary.dsn)
        self._types: dict[str, dict[str, str]] = {}

    @property
    def conn(self):
        return self.applier.connection

    async def prepare(self) -> None:
        await self.conn.execute("SET TIME ZONE 'UTC'")

    async def close(self) -> None:
        await self.applier.close()

    async def load(self) -> tuple[str, str] | None:
        return await self.applier.load_backfill()

    async def _save(self, record, state: str) -> None:
        await self.conn.execute(
            f"INSERT INTO {META_SCHEMA}.backfill (target, topic, state, doc) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (target) DO UPDATE SET topic = EXCLUDED.topic, state = EXCLUDED.state, doc = EXCLUDED.doc, "
            "updated_at = now()", self.target.name, self.topic, state, record.dumps())

    async def save(self, record, state: str) -> None:
        await self._save(record, state)

    @staticmethod
    def _name(shape: TableShape) -> str:
        return qualified(shape.db.lower(), shape.table.lower())

    async def ensure_table(self, shape: TableShape, create_sql: str) -> int:
        exists = await self.conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
            shape.db.lower(), shape.table.lower())
        if not exists:
            async with self.conn.transaction():
                for st in translate_statement(f"CREATE DATABASE IF NOT EXISTS `{shape.db}`", None):
                    await self.conn.execute(st.sql, *st.args)
                for st in translate_statement(create_sql, shape.db.lower()):
                    await self.conn.execute(st.sql, *st.args)
        self._types[shape.name] = await pg_column_types(self.conn, shape.db.lower(), shape.table.lower())
        return 1 if await self.conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {self._name(shape)})") else 0

    async def truncate(self, shape: TableShape) -> None:
        await self.conn.execute(f"DELETE FROM {self._name(shape)}")

    def _statements(self, rows: list[RowChange], shapes: dict[str, TableShape]) -> list[tuple[str, tuple]]:
        return pg_row_statements(rows, lambda r: shapes[f"{r.db}.{r.table}"].pk_names,
                                 lambda r: self._types.get(f"{r.db}.{r.table}"))

    async def _run(self, statements: list[tuple[str, tuple]]) -> None:
        await run_grouped(self.conn, statements)

    def _inserts(self, shape: TableShape, rows: list[tuple]) -> list[RowChange]:
        return [RowChange(shape.table, shape.db, "insert", after=dict(zip(shape.columns, row, strict=True)))
                for row in rows]

    async def insert_chunk(self, shape: TableShape, rows: list[tuple], record) -> None:
        async with self.conn.transaction():
            await self._run(self._statements(self._inserts(shape, rows), {shape.name: shape}))
            await self._save(record, "copying")

    async def copy_whole(self, shape: TableShape, chunks: AsyncIterator[list[tuple]], record, bar) -> None:
        async with self.conn.transaction():
            async for rows in chunks:
                await self._run(self._statements(self._inserts(shape, rows), {shape.name: shape}))
                record.tables[shape.name].rows += len(rows)
                bar.add(shape.name, len(rows))
            record.tables[shape.name].done = True
            await self._save(record, "copying")

    async def apply_rows(self, rows: list[RowChange], shapes: dict[str, TableShape], record) -> None:
        for name in {f"{r.db}.{r.table}" for r in rows} - set(self._types):
            await self.ensure_table(shapes[name], "")  # copied from, so it exists: loads its column types
        async with self.conn.transaction():
            await self._run(self._statements(rows, shapes))
            await self._save(record, "copying")

    async def finish(self, record, offsets: dict[tuple[str, int], int], shard_map=None) -> None:
        async with self.conn.transaction():
            if shard_map is not None:
                await self.conn.execute(
                    f"INSERT INTO {META_SCHEMA}.shardmap (target, version, map) VALUES ($1, $2, $3) ON CONFLICT "
                    "(target) DO UPDATE SET version = EXCLUDED.version, map = EXCLUDED.map", self.target.name,
                    shard_map.version, orjson.dumps(shard_map.to_dict()).decode())
            await self.conn.execute(f"DELETE FROM {META_SCHEMA}.positions WHERE target = $1", self.target.name)
            await self.conn.execute(f"DELETE FROM {META_SCHEMA}.gtids WHERE target = $1 AND topic = $2",
                                    self.target.name, self.topic)
            position = TargetPosition({PartitionKey(t, p): off for (t, p), off in offsets.items()}, {})
            await self.applier._write_position(position, _handoff_events(record))  # noqa: SLF001
            await self._save(record, "done")


def insert_statements(db: str, table: str, columns: tuple[str, ...], rows: list[tuple]) -> list[str]:
    """Multi-row INSERTs of ``rows`` into a MySQL ``db.table``, each under ~4 MiB."""
    head = (f"INSERT INTO {quote_ident(db)}.{quote_ident(table)} "
            f"({', '.join(quote_ident(c) for c in columns)}) VALUES ")
    out: list[str] = []
    values: list[str] = []
    size = 0
    for row in rows:
        v = "(" + ", ".join(literal(x) for x in row) + ")"
        if values and size + len(v) > _MAX_STATEMENT_BYTES:
            out.append(head + ", ".join(values))
            values, size = [], 0
        values.append(v)
        size += len(v) + 2
    if values:
        out.append(head + ", ".join(values))
    return out


def pg_row_statements(rows: list[RowChange], pk_of: Callable[[RowChange], tuple[str, ...]],
                      types_of: Callable[[RowChange], dict[str, str] | None]) -> list[tuple[str, tuple]]:
    """Row changes as PostgreSQL statements (schema = the row's db, names lower-cased), with arguments."""
    out = []
    for r in rows:
        before = {k.lower(): v for k, v in r.before.items()} if r.before is not None else None
        after = {k.lower(): v for k, v in r.after.items()} if r.after is not None else None
        st = row_statement(r.db.lower(), r.table.lower(), r.op, before, after,
                           tuple(c.lower() for c in pk_of(r)), types_of(r))
        out.append((st.sql, tuple(st.args)))
    return out


async def run_grouped(conn, statements: list[tuple[str, tuple]]) -> None:
    """Execute ``statements`` in order on an asyncpg connection, runs of one text as one executemany."""
    i = 0
    while i < len(statements):
        j = i + 1
        while j < len(statements) and statements[j][0] == statements[i][0]:
            j += 1
        if j - i > 1:
            await conn.executemany(statements[i][0], [a for _, a in statements[i:j]])
        else:
            await conn.execute(statements[i][0], *statements[i][1])
        i = j


async def pg_column_types(conn, schema: str, table: str) -> dict[str, str]:
    rows = await conn.fetch("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 "
                            "AND table_name = $2", schema, table)
    return {r["column_name"]: r["data_type"].upper() for r in rows}
