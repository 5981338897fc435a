"""Table readers for ``dbmux verify``: the primary and MySQL targets (aiomysql), PostgreSQL targets (asyncpg).

One connection per server (a pool of one: verify reads one chunk per server at a time, which keeps it
gentle on a small machine). Each reader runs inside one read-only snapshot transaction opened by
:meth:`begin` (``START TRANSACTION WITH CONSISTENT SNAPSHOT`` on MySQL, ``REPEATABLE READ READ ONLY``
on PostgreSQL), so every table of a run is read from one point in time per server. MySQL sessions use
``time_zone = '+00:00'`` so TIMESTAMP values compare with PostgreSQL ``timestamptz`` read as UTC.

Replication state: :meth:`MySQLReader.gtid_position` reads the primary's GTID position (on MariaDB,
inside a consistent snapshot, exactly the position that snapshot reflects), :meth:`_Reader.replication_meta`
a target's ``dbmux_meta`` rows (last applied GTID per domain, Kafka offsets, the replicator's status
row); ``dbmux status`` and ``dbmux verify`` judge them (:func:`dbmux.replicator.status.judge`).

Key comparisons: on the primary, keyset pagination ``(pk) > (last) ORDER BY pk LIMIT n`` is written as
the expanded ``a > ? OR (a = ? AND b > ?)`` form that MariaDB turns into an index range; PostgreSQL
gets row values ``(a, b) > ($1, $2)``. Both servers accept either.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiomysql
import asyncpg

from dbmux.core.dsn import Dsn
from dbmux.core.gtid import Gtid, parse_gtid_list
from dbmux.core.mysql_connect import connect_aiomysql
from dbmux.replicator.positions import META_SCHEMA

log = logging.getLogger(__name__)

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys", "dbmux_meta")
CONNECT_TIMEOUT_S = 10.0
# MySQL key types whose order is the same in MySQL and PostgreSQL (text/binary/enum keys are not:
# collations differ), so a PostgreSQL target can be read by key range.
_ORDER_SAFE = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal",
                         "numeric", "float", "double", "real", "date", "datetime", "timestamp", "time",
                         "year", "bit"})

Row = tuple[Any, ...]
"""A row as a driver returns it (columns in the primary's order), or a primary key's values."""


@dataclass(frozen=True, slots=True)
class TableShape:
    """A replicated table as the primary defines it: columns in order, their types, the primary key."""

    db: str
    table: str
    columns: tuple[str, ...]
    types: tuple[str, ...]  # MySQL DATA_TYPE per column
    pk: tuple[int, ...]  # indexes into columns, in key order; empty: no primary key
    json_columns: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return f"{self.db}.{self.table}"

    @property
    def pk_names(self) -> tuple[str, ...]:
        return tuple(self.columns[i] for i in self.pk)

    def key_of(self, row: Sequence[Any]) -> Row:
        return tuple(row[i] for i in self.pk)

    @property
    def pk_order_safe(self) -> bool:
        return all(self.types[i] in _ORDER_SAFE for i in self.pk)


@dataclass(frozen=True, slots=True)
class TargetTable:
    """Where a target holds a table: its names there and its column types, in the primary's column order."""

    schema: str
    table: str
    columns: tuple[str, ...]  # target column names; "" where the target lacks the primary's column
    types: tuple[str, ...]  # target data types (same order)

    @property
    def missing(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.columns) if not c)


@dataclass(frozen=True, slots=True)
class AppliedGtid:
    """A target's last applied transaction in one GTID domain (``dbmux_meta.gtids``)."""

    seq: int
    gtid: str
    ts_ms: int  # its commit time on the primary


@dataclass(frozen=True, slots=True)
class ReplicationMeta:
    """What a target stores about its replication for one topic (``dbmux_meta``), all written by its
    replicator: the last applied GTID per domain and the next Kafka offset per partition (both in the
    same transaction as the changes), and the replicator's status row ``(state, detail)``."""

    applied: dict[str, AppliedGtid]
    offsets: dict[int, int]
    status: tuple[str, str] | None


class _Sql:
    """Builds one statement's parameter list with the dialect's placeholder style."""

    def __init__(self, dollar: bool) -> None:
        self.dollar = dollar
        self.params: list[Any] = []

    def p(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}" if self.dollar else "%s"


class _Reader:
    kind = ""
    _dollar = False

    def __init__(self, label: str, dsn: Dsn) -> None:
        self.label = label
        self.dsn = dsn

    # dialect -----------------------------------------------------------------------------------
    def q(self, name: str) -> str:
        raise NotImplementedError

    async def rows(self, sql: str, params: list[Any]) -> list[Row]:
        raise NotImplementedError

    def _adapt(self, tt: TargetTable | None, shape: TableShape, key: Sequence[Any]) -> Row:
        return tuple(key)

    def _lex(self, s: _Sql, cols: Sequence[str], key: Sequence[Any], op: str) -> str:
        """``(cols) op (key)`` for op in ``>``, ``<=``."""
        if self._dollar:
            left = ", ".join(self.q(c) for c in cols)
            right = ", ".join(s.p(v) for v in key)
            return f"({left}) {op} ({right})"
        strict = op[0]
        parts = []
        for i, col in enumerate(cols):
            terms = [f"{self.q(cols[j])} = {s.p(key[j])}" for j in range(i)]
            last_op = op if i == len(cols) - 1 else strict
            terms.append(f"{self.q(col)} {last_op} {s.p(key[i])}")
            parts.append("(" + " AND ".join(terms) + ")")
        return "(" + " OR ".join(parts) + ")"

    # replication state -------------------------------------------------------------------------
    async def replication_meta(self, target: str, topic: str) -> ReplicationMeta | None:
        """``target``'s stored position for ``topic`` and its status row; None when it has neither (no
        replicator ever ran under that name)."""
        s = _Sql(self._dollar)
        tables = {str(r[0]).lower() for r in await self.rows(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = {s.p(META_SCHEMA)}", s.params)}
        meta = f"{self.q(META_SCHEMA)}."
        applied: dict[str, AppliedGtid] = {}
        offsets: dict[int, int] = {}
        status = None
        if "gtids" in tables:
            s = _Sql(self._dollar)
            for domain, seq, gtid, ts_ms in await self.rows(
                    f"SELECT domain_id, seq, last_gtid, ts_ms FROM {meta}{self.q('gtids')} "
                    f"WHERE target = {s.p(target)} AND topic = {s.p(topic)}", s.params):
                applied[str(domain)] = AppliedGtid(int(seq), str(gtid), int(ts_ms))
        if "positions" in tables:
            s = _Sql(self._dollar)
            offsets = {int(p): int(o) for p, o in await self.rows(
                f"SELECT kafka_partition, next_offset FROM {meta}{self.q('positions')} "
                f"WHERE target = {s.p(target)} AND topic = {s.p(topic)}", s.params)}
        if "status" in tables:
            s = _Sql(self._dollar)
            rows = await self.rows(f"SELECT state, detail FROM {meta}{self.q('status')} WHERE target = {s.p(target)}",
                                   s.params)
            status = (str(rows[0][0]), str(rows[0][1])) if rows else None
        if not applied and not offsets and status is None:
            return None
        return ReplicationMeta(applied, offsets, status)

    # reading -----------------------------------------------------------------------------------
    def _from(self, shape: TableShape, tt: TargetTable | None) -> tuple[str, list[str], list[str]]:
        schema, table = (tt.schema, tt.table) if tt else (shape.db, shape.table)
        cols = list(tt.columns) if tt else list(shape.columns)
        pk = [cols[i] for i in shape.pk]
        return f"{self.q(schema)}.{self.q(table)}", cols, pk

    async def fetch_range(self, shape: TableShape, tt: TargetTable | None, lower: Sequence[Any] | None,
                          upper: Sequence[Any] | None, *, limit: int = 0, order: bool = False) -> list[Row]:
        """Rows with ``lower < pk <= upper`` (``None``: unbounded), columns in the primary's order."""
        name, cols, pk = self._from(shape, tt)
        s = _Sql(self._dollar)
        where = []
        if lower is not None:
            where.append(self._lex(s, pk, self._adapt(tt, shape, lower), ">"))
        if upper is not None:
            where.append(self._lex(s, pk, self._adapt(tt, shape, upper), "<="))
        sql = f"SELECT {', '.join(self.q(c) for c in cols)} FROM {name}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if order:
            sql += " ORDER BY " + ", ".join(self.q(c) for c in pk)
        if limit:
            sql += f" LIMIT {int(limit)}"
        return await self.rows(sql, s.params)

    async def fetch_keys(self, shape: TableShape, tt: TargetTable | None, keys: Sequence[Sequence[Any]]
                         ) -> list[Row]:
        """Rows whose primary key is one of ``keys`` (for text keys, whose order differs by collation)."""
        if not keys:
            return []
        name, cols, pk = self._from(shape, tt)
        s = _Sql(self._dollar)
        tuples = ", ".join("(" + ", ".join(s.p(v) for v in self._adapt(tt, shape, k)) + ")" for k in keys)
        sql = (f"SELECT {', '.join(self.q(c) for c in cols)} FROM {name} "
               f"WHERE ({', '.join(self.q(c) for c in pk)}) IN ({tuples})")
        return await self.rows(sql, s.params)

    async def count(self, shape: TableShape, tt: TargetTable | None, after: Sequence[Any] | None = None) -> int:
        """Rows in the table, or only those with ``pk > after``."""
        name, _cols, pk = self._from(shape, tt)
        s = _Sql(self._dollar)
        sql = f"SELECT count(*) FROM {name}"
        if after is not None:
            sql += " WHERE " + self._lex(s, pk, self._adapt(tt, shape, after), ">")
        rows = await self.rows(sql, s.params)
        return int(rows[0][0])


def _mysql_ident(name: str) -> str:
    # '%' doubled: statements go through PyMySQL's %-formatting (always with a parameter tuple).
    return "`" + name.replace("`", "``").replace("%", "%%") + "`"


class MySQLReader(_Reader):
    """The primary, or a MySQL/MariaDB target (same database and table names as the primary)."""

    kind = "mysql"

    def __init__(self, label: str, dsn: Dsn, conn: Any) -> None:
        super().__init__(label, dsn)
        self._conn = conn

    @classmethod
    async def connect(cls, label: str, dsn: Dsn) -> MySQLReader:
        conn = await connect_aiomysql(dsn, charset="utf8mb4", autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        return cls(label, dsn, conn)

    async def begin(self) -> None:
        for stmt in ("SET time_zone = '+00:00'", "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                     "START TRANSACTION WITH CONSISTENT SNAPSHOT"):
            await self.rows(stmt, [])

    async def close(self) -> None:
        try:
            await self.rows("ROLLBACK", [])
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        self._conn.close()

    async def recover(self) -> None:
        """A failed statement does not end a MySQL transaction: nothing to do."""

    def q(self, name: str) -> str:
        return _mysql_ident(name)

    async def rows(self, sql: str, params: list[Any]) -> list[Row]:
        async with self._conn.cursor() as cur:
            await cur.execute(sql, tuple(params))
            return list(await cur.fetchall() or ())

    async def stream(self, sql: str, chunk_rows: int) -> AsyncIterator[list[Row]]:
        """Rows of ``sql`` in chunks, read unbuffered on this reader's connection (inside its snapshot)."""
        async with self._conn.cursor(aiomysql.SSCursor) as cur:
            await cur.execute(sql)
            while True:
                rows = await cur.fetchmany(chunk_rows)
                if not rows:
                    return
                yield list(rows)

    async def list_tables(self) -> list[TableShape]:
        """Every base table outside the system schemas and ``dbmux_meta``, with columns and primary key."""
        excl = ", ".join(["%s"] * len(SYSTEM_SCHEMAS))
        tables = await self.rows(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
            f"WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({excl}) ORDER BY 1, 2",
            list(SYSTEM_SCHEMAS))
        cols = await self.rows(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA NOT IN ({excl}) ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
            list(SYSTEM_SCHEMAS))
        pks = await self.rows(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
            f"WHERE CONSTRAINT_NAME = 'PRIMARY' AND TABLE_SCHEMA NOT IN ({excl}) "
            "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION", list(SYSTEM_SCHEMAS))
        json_cols: set[tuple[str, str, str]] = set()
        try:  # MariaDB: JSON is LONGTEXT CHECK (json_valid(`col`))
            checks = await self.rows(
                "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                "WHERE CHECK_CLAUSE LIKE 'json_valid(%%'", [])
            for db, table, clause in checks:
                inner = clause[len("json_valid("):].rstrip(")").strip()
                json_cols.add((db, table, inner.strip("`").replace("``", "`")))
        except Exception as exc:  # noqa: BLE001 - servers without CHECK_CONSTRAINTS
            log.debug("no CHECK_CONSTRAINTS on the primary: %s", exc)
        by_table: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for db, table, col, typ in cols:
            by_table.setdefault((db, table), []).append((col, typ.lower()))
        pk_by_table: dict[tuple[str, str], list[str]] = {}
        for db, table, col in pks:
            pk_by_table.setdefault((db, table), []).append(col)
        out = []
        for db, table in tables:
            columns = by_table.get((db, table), [])
            names = tuple(c for c, _ in columns)
            out.append(TableShape(
                db=db, table=table, columns=names, types=tuple(t for _, t in columns),
                pk=tuple(names.index(c) for c in pk_by_table.get((db, table), ()) if c in names),
                json_columns=frozenset(c for c in names if (db, table, c) in json_cols)))
        return out

    async def gtid_position(self, *, snapshot: bool = False) -> tuple[dict[str, Gtid], float]:
        """The primary's GTID position (domain -> last GTID) and its clock (Unix seconds).

        MariaDB: ``@@gtid_binlog_pos``; with ``snapshot`` (after :meth:`begin`) the position the snapshot
        reflects exactly (``BINLOG_GTID_POS`` of ``Binlog_snapshot_file/position``). MySQL:
        ``@@gtid_executed`` (the highest GTID per source; read just after the snapshot began)."""
        ((version, now),) = await self.rows("SELECT @@version, UNIX_TIMESTAMP(NOW(6))", [])
        text: str | None = None
        if "mariadb" in str(version).lower():
            if snapshot:
                try:
                    status = {str(k).lower(): v for k, v in await self.rows(
                        "SHOW SESSION STATUS LIKE 'binlog_snapshot_%%'", [])}
                    ((text,),) = await self.rows("SELECT BINLOG_GTID_POS(%s, %s)", [
                        status["binlog_snapshot_file"], int(status["binlog_snapshot_position"])])
                except Exception as exc:  # noqa: BLE001 - older servers, missing privileges: the global one
                    log.debug("no snapshot GTID position on the primary: %s", exc)
                    text = None
            if text is None:
                ((text,),) = await self.rows("SELECT @@GLOBAL.gtid_binlog_pos", [])
        else:
            ((text,),) = await self.rows("SELECT @@GLOBAL.gtid_executed", [])
        if isinstance(text, (bytes, bytearray)):
            text = text.decode()
        return parse_gtid_list(str(text or "")), float(now)

    async def fetch_after(self, shape: TableShape, after: Sequence[Any] | None, limit: int) -> list[Row]:
        """The next chunk of the primary in key order (keyset pagination)."""
        return await self.fetch_range(shape, None, after, None, limit=limit, order=True)

    async def locate(self, shape: TableShape) -> TargetTable | None:
        rows = await self.rows(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", [shape.db, shape.table])
        if not rows:
            return None
        types = {c: t.lower() for c, t in rows}
        return TargetTable(shape.db, shape.table,
                           tuple(c if c in types else "" for c in shape.columns),
                           tuple(types.get(c, "") for c in shape.columns))

    def range_safe(self, shape: TableShape) -> bool:
        return True  # the replicator creates the same table (same collation) on MySQL targets


_PG_INTS = ("smallint", "integer", "bigint")
_PG_TEXT = ("text", "character varying", "character", "USER-DEFINED")


def pg_param(value: Any, pg_type: str) -> Any:
    """A key value read from the primary (aiomysql types) as asyncpg expects it for ``pg_type``."""
    if value is None:
        return None
    if pg_type == "boolean":
        return bool(value)
    if pg_type in _PG_INTS:
        if isinstance(value, (bytes, bytearray)):
            return int.from_bytes(value, "big")
        return int(value)
    if pg_type == "numeric":
        return value if isinstance(value, Decimal) else Decimal(str(value))
    if pg_type in ("real", "double precision"):
        return float(value)
    if pg_type == "timestamp with time zone" and isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    if pg_type == "time without time zone" and isinstance(value, dt.timedelta):
        return (dt.datetime.min + value).time()
    if pg_type in _PG_TEXT and not isinstance(value, str):
        return bytes(value).decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)
    if pg_type == "bytea" and isinstance(value, str):
        return value.encode("utf-8")
    if pg_type == "uuid" and not isinstance(value, uuid.UUID):
        return uuid.UUID(value.decode() if isinstance(value, bytes) else str(value))
    if pg_type == "inet" and isinstance(value, (str, bytes)):  # MariaDB INET4/INET6 text; PostgreSQL: an address
        return ipaddress.ip_address(value.decode() if isinstance(value, bytes) else value)
    return value


class PostgresReader(_Reader):
    """A PostgreSQL target: MySQL database ``X`` is schema ``X``; names are matched case-insensitively
    (the replicator creates them unquoted, hence lowercase) and always quoted in queries."""

    kind = "postgresql"
    _dollar = True

    def __init__(self, label: str, dsn: Dsn, conn: Any) -> None:
        super().__init__(label, dsn)
        self._conn = conn
        self._tx: Any = None

    @classmethod
    async def connect(cls, label: str, dsn: Dsn) -> PostgresReader:
        conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                     database=dsn.database or "postgres", timeout=CONNECT_TIMEOUT_S)
        return cls(label, dsn, conn)

    async def begin(self) -> None:
        await self._conn.execute("SET TIME ZONE 'UTC'")
        self._tx = self._conn.transaction(isolation="repeatable_read", readonly=True)
        await self._tx.start()

    async def recover(self) -> None:
        """After a failed statement PostgreSQL aborts the transaction: start a new snapshot."""
        if self._conn.is_in_transaction():
            try:
                await self._tx.rollback()
            except Exception:  # noqa: BLE001
                pass
        await self.begin()

    async def close(self) -> None:
        try:
            if self._tx is not None:
                await self._tx.rollback()
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        await self._conn.close()

    def q(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    async def rows(self, sql: str, params: list[Any]) -> list[Row]:
        return [tuple(r) for r in await self._conn.fetch(sql, *params)]

    def _adapt(self, tt: TargetTable | None, shape: TableShape, key: Sequence[Any]) -> Row:
        assert tt is not None
        return tuple(pg_param(v, tt.types[i]) for v, i in zip(key, shape.pk, strict=True))

    async def locate(self, shape: TableShape) -> TargetTable | None:
        rows = await self.rows(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE lower(table_schema) = lower($1) AND lower(table_name) = lower($2)",
            [shape.db, shape.table])
        if not rows:
            return None
        # prefer the exact spelling, then the lowercase one the replicator creates
        places = sorted({(r[0], r[1]) for r in rows},
                        key=lambda p: (p != (shape.db, shape.table), p != (shape.db.lower(), shape.table.lower())))
        schema, table = places[0]
        types = {r[2]: r[3] for r in rows if (r[0], r[1]) == (schema, table)}
        lower = {c.lower(): c for c in types}
        names = tuple(c if c in types else lower.get(c.lower(), "") for c in shape.columns)
        return TargetTable(schema, table, names, tuple(types.get(n, "") for n in names))

    def range_safe(self, shape: TableShape) -> bool:
        return shape.pk_order_safe


async def connect_reader(label: str, dsn: Dsn) -> MySQLReader | PostgresReader:
    if dsn.kind == "postgresql":
        return await PostgresReader.connect(label, dsn)
    return await MySQLReader.connect(label, dsn)
