"""Where ``dbmux rebuild`` writes: a MySQL/MariaDB or PostgreSQL server, with the SQL the backfill and the
replicator's appliers use (row changes as statements, DDL translated for PostgreSQL). No ``dbmux_meta``
tables: a rebuilt copy is not a target (it may be the primary itself, next to the live database)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pymysql

from dbmux.core.dsn import Dsn
from dbmux.core.events import RowChange, SessionContext
from dbmux.core.mysql_connect import connect_aiomysql
from dbmux.core.passwords import redact_text
from dbmux.replicator.backfill.targets import insert_statements, pg_column_types, pg_row_statements, run_grouped
from dbmux.replicator.errors import BackfillError
from dbmux.replicator.mysql_applier import APPLIER_CHARSET, ROW_SESSION
from dbmux.replicator.mysql_sql import literal, quote_ident, row_sql
from dbmux.replicator.pg_codecs import install_mysql_codecs
from dbmux.replicator.pg_sql import translate_statement

__all__ = ["open_destination", "MySQLDestination", "PostgresDestination"]


async def open_destination(dsn: Dsn):
    dest = MySQLDestination(dsn) if dsn.kind == "mysql" else PostgresDestination(dsn)
    await dest.connect()
    return dest


class MySQLDestination:
    def __init__(self, dsn: Dsn) -> None:
        self.dsn = dsn
        self._conn: Any = None
        self._pk: dict[tuple[str, str], tuple[str, ...]] = {}

    async def connect(self) -> None:
        self._conn = await connect_aiomysql(self.dsn, autocommit=False, charset=APPLIER_CHARSET)
        await self._row_session()

    async def _row_session(self) -> None:
        # the values row images carry (UTC, zero stays zero), and tables filled in any order
        await self._exec(["SET SESSION sql_mode = %s, time_zone = %s, foreign_key_checks = 0"], ROW_SESSION)

    async def _exec(self, statements: list[str], args: tuple | None = None) -> list[tuple]:
        async with self._conn.cursor() as cur:
            for sql in statements:
                await cur.execute(sql, args)
            return list(await cur.fetchall() or ())

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    async def exists(self, db: str, table: str) -> bool:
        return bool(await self._exec(["SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                                      "TABLE_NAME = %s"], (db, table)))

    async def primary_key(self, db: str, table: str) -> tuple[str, ...]:
        key = (db, table)
        if key not in self._pk:
            rows = await self._exec(["SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA "
                                     "= %s AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY "
                                     "ORDINAL_POSITION"], (db, table))
            self._pk[key] = tuple(r[0] for r in rows)
        return self._pk[key]

    async def ensure_db(self, db: str) -> None:
        await self._exec([f"CREATE DATABASE IF NOT EXISTS {quote_ident(db)}"])

    async def create(self, db: str, create_sql: str) -> None:
        """``create_sql`` (SHOW CREATE TABLE's unqualified text) in database ``db``."""
        await self.ddl(create_sql, db, None)

    async def ddl(self, sql: str, db: str | None, session: SessionContext | None) -> None:
        self._pk.clear()
        try:
            pre = []
            if db is not None:
                pre += [f"CREATE DATABASE IF NOT EXISTS {quote_ident(db)}", f"USE {quote_ident(db)}"]
            if session is not None and session.sql_mode is not None:
                pre.append(f"SET SESSION sql_mode = {literal(session.sql_mode)}")
            if session is not None and session.timestamp_us is not None:
                pre.append(f"SET TIMESTAMP = {session.timestamp_us / 1e6:.6f}")
            await self._exec(pre + [sql])
        except pymysql.err.MySQLError as exc:
            raise BackfillError(redact_text(f"{sql[:300]!r} failed on the destination: {exc.args[-1]}", sql)) from None
        finally:
            await self._exec(["SET TIMESTAMP = DEFAULT"])
            await self._row_session()

    async def apply_rows(self, rows: list[RowChange]) -> None:
        statements: list[str] = []
        i = 0
        while i < len(rows):
            r = rows[i]
            if r.op == "insert":  # a run of inserts with the same columns: multi-row INSERTs
                assert r.after is not None
                cols = tuple(r.after)
                j = i + 1
                while (j < len(rows) and rows[j].op == "insert" and rows[j].table == r.table and rows[j].db == r.db
                       and tuple(rows[j].after or ()) == cols):
                    j += 1
                statements += insert_statements(r.db, r.table, cols, [tuple((x.after or {}).values())
                                                                        for x in rows[i:j]])
                i = j
                continue
            statements.append(row_sql(r.db, r.table, r.op, r.before, r.after, await self.primary_key(r.db, r.table)))
            i += 1
        await self._exec(statements)

    async def commit(self) -> None:
        await self._conn.commit()


class PostgresDestination:
    def __init__(self, dsn: Dsn) -> None:
        self.dsn = dsn
        self._conn: Any = None
        self._tx: Any = None
        self._pk: dict[tuple[str, str], tuple[str, ...]] = {}
        self._types: dict[tuple[str, str], dict[str, str]] = {}

    async def connect(self) -> None:
        self._conn = await asyncpg.connect(host=self.dsn.host, port=self.dsn.port, user=self.dsn.user,
                                           password=self.dsn.password, database=self.dsn.database or "postgres")
        await install_mysql_codecs(self._conn)
        await self._conn.execute("SET TIME ZONE 'UTC'")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def _in_tx(self) -> None:
        if self._tx is None:
            self._tx = self._conn.transaction()
            await self._tx.start()

    async def exists(self, db: str, table: str) -> bool:
        return bool(await self._conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
            db.lower(), table.lower()))

    async def primary_key(self, db: str, table: str) -> tuple[str, ...]:
        key = (db.lower(), table.lower())
        if key not in self._pk:
            rows = await self._conn.fetch(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = "
                "ANY(i.indkey) WHERE i.indrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass AND "
                "i.indisprimary ORDER BY array_position(i.indkey, a.attnum)", *key)
            self._pk[key] = tuple(r[0] for r in rows)
        return self._pk[key]

    async def create(self, db: str, create_sql: str) -> None:
        await self.ddl(create_sql, db, None)

    async def ensure_db(self, db: str) -> None:
        await self._in_tx()
        for st in translate_statement(f"CREATE DATABASE IF NOT EXISTS `{db}`", None):
            await self._conn.execute(st.sql, *st.args)

    async def ddl(self, sql: str, db: str | None, session: SessionContext | None) -> None:
        self._pk.clear()
        self._types.clear()
        try:
            if db is not None:
                await self.ensure_db(db)
            await self._in_tx()
            for st in translate_statement(sql, db.lower() if db is not None else None):
                await self._conn.execute(st.sql, *st.args)
        except (asyncpg.PostgresError, ValueError) as exc:
            raise BackfillError(redact_text(f"{sql[:300]!r} failed on the destination: {exc}", sql)) from None

    async def _types_of(self, r: RowChange) -> dict[str, str]:
        key = (r.db.lower(), r.table.lower())
        if key not in self._types:
            self._types[key] = await pg_column_types(self._conn, *key)
        return self._types[key]

    async def apply_rows(self, rows: list[RowChange]) -> None:
        await self._in_tx()
        pks = {(r.db, r.table): await self.primary_key(r.db, r.table) for r in rows}
        types = {(r.db, r.table): await self._types_of(r) for r in rows}
        await run_grouped(self._conn, pg_row_statements(rows, lambda r: pks[(r.db, r.table)],
                                                        lambda r: types[(r.db, r.table)]))

    async def commit(self) -> None:
        if self._tx is not None:
            tx, self._tx = self._tx, None
            await tx.commit()
