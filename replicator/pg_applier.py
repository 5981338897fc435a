"""Applying change events to a PostgreSQL target (asyncpg).

MySQL database ``X`` is PostgreSQL schema ``X``. Statement events are translated by
:mod:`replicator.pg_sql` (anything it cannot translate faithfully is a permanent error, never a
silent change); row events become idempotent parametrised statements. PostgreSQL DDL is
transactional, so every batch -- DDL included -- and its position commit atomically.
"""

from __future__ import annotations

import logging
import re

import asyncpg
from prometheus_client import Counter

from dbmux.core.dsn import Dsn
from dbmux.core.events import ChangeEvent
from dbmux.core.transient import is_transient
from dbmux.replicator.errors import ApplyError
from dbmux.replicator.filtering import statement_tables
from dbmux.replicator.pg_sql import StaticSchema, Untranslatable, row_statement, translate_statement
from dbmux.replicator.positions import META_SCHEMA, PartitionKey, TargetPosition
from dbmux.replicator.source_schema import load_source_schema

log = logging.getLogger(__name__)

ROWS_COPIED = Counter("dbmux_replicator_rows_copied_total", "Row inserts applied by COPY (PostgreSQL targets)",
                      ["target"])
COPY_FALLBACKS = Counter("dbmux_replicator_copy_fallbacks_total",
                         "COPY runs undone because a row already existed, applied by INSERT ... ON CONFLICT",
                         ["target"])
COPY_MIN_ROWS = 16  # a shorter run of row inserts goes through executemany
_Pending = tuple[str, tuple, ChangeEvent, int]  # (sql, args, event, offset)


class PostgresApplier:
    def __init__(self, dsn: Dsn, target: str, topic: str, source: Dsn) -> None:
        self.dsn, self.target, self.topic, self.source = dsn, target, topic, source
        self._conn: asyncpg.Connection | None = None
        self._schema = StaticSchema({})
        self._copy_into: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # row-insert SQL -> (schema, table, columns)

    async def connect(self) -> None:
        self._conn = await asyncpg.connect(host=self.dsn.host, port=self.dsn.port, user=self.dsn.user,
                                           password=self.dsn.password, database=self.dsn.database or "postgres")
        await accept_bytes_for_text(self._conn)
        await self._conn.execute(f"""
            CREATE SCHEMA IF NOT EXISTS {META_SCHEMA};
            CREATE TABLE IF NOT EXISTS {META_SCHEMA}.positions (target TEXT NOT NULL, topic TEXT NOT NULL,
                kafka_partition INT NOT NULL, next_offset BIGINT NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (target, topic, kafka_partition));
            CREATE TABLE IF NOT EXISTS {META_SCHEMA}.gtids (target TEXT NOT NULL, topic TEXT NOT NULL,
                domain_id TEXT NOT NULL, seq NUMERIC(20) NOT NULL, last_gtid TEXT NOT NULL, ts_ms BIGINT NOT NULL,
                PRIMARY KEY (target, topic, domain_id));
            CREATE TABLE IF NOT EXISTS {META_SCHEMA}.status (target TEXT PRIMARY KEY, state TEXT NOT NULL,
                detail TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now());
            CREATE TABLE IF NOT EXISTS {META_SCHEMA}.backfill (target TEXT PRIMARY KEY, topic TEXT NOT NULL,
                state TEXT NOT NULL, doc TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now());
            CREATE TABLE IF NOT EXISTS {META_SCHEMA}.shardmap (target TEXT PRIMARY KEY, version INT NOT NULL,
                map TEXT NOT NULL);
        """)
        self._schema = await load_source_schema(self.source)

    @property
    def connection(self) -> asyncpg.Connection:
        assert self._conn is not None, "connect() first"
        return self._conn

    @property
    def schema(self) -> StaticSchema:
        """The source schema the translator uses (reloaded after each DDL)."""
        return self._schema

    async def load_backfill(self) -> tuple[str, str] | None:
        """``(state, doc)`` of this target's backfill (see :mod:`replicator.backfill`), None if never run."""
        row = await self.connection.fetchrow(f"SELECT state, doc FROM {META_SCHEMA}.backfill WHERE target = $1",
                                             self.target)
        return (row["state"], row["doc"]) if row else None

    async def lock_target(self) -> None:
        assert self._conn is not None
        got = await self._conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", f"dbmux.replicator.{self.target}")
        if not got:
            raise ApplyError(f"another replicator is already applying to target {self.target!r}")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def load_position(self) -> TargetPosition:
        assert self._conn is not None
        pos = TargetPosition()
        for r in await self._conn.fetch(f"SELECT topic, kafka_partition, next_offset FROM {META_SCHEMA}.positions "
                                        "WHERE target = $1", self.target):
            pos.offsets[PartitionKey(r["topic"], r["kafka_partition"])] = r["next_offset"]
        for r in await self._conn.fetch(f"SELECT domain_id, seq FROM {META_SCHEMA}.gtids WHERE target = $1 "
                                        "AND topic = $2", self.target, self.topic):
            pos.gtids[r["domain_id"]] = int(r["seq"])
        return pos

    async def set_status(self, state: str, detail: str) -> None:
        assert self._conn is not None
        await self._conn.execute(
            f"INSERT INTO {META_SCHEMA}.status (target, state, detail) VALUES ($1, $2, $3) "
            "ON CONFLICT (target) DO UPDATE SET state = EXCLUDED.state, detail = EXCLUDED.detail, updated_at = now()",
            self.target, state, detail[:2000])

    def needs_row_form(self, ev: ChangeEvent) -> bool:
        """Must ``ev`` be applied from its row form (the binlog reader's copy of the same GTID)?

        Yes for an ingress event from a session whose time zone is not UTC that changes a table with a
        MySQL TIMESTAMP column: its statements carry such values as that session's wall-clock time,
        while this target holds them in UTC (as row images and backfill write them); translating the
        zone into every statement is not done, so the row form is used. Also for a table not known
        yet (created since the schema was read): it may have such a column."""
        ctx = ev.session
        if ev.source != "ingress" or ctx is None or is_utc(ctx.time_zone, self._schema.system_time_zone):
            return False
        default_db = (ev.db or ctx.db or "").lower()
        for st in ev.statements:
            if st.kind != "dml":
                continue
            tables = statement_tables(st.sql)
            if tables is None:
                return True
            for db, table in tables:
                info = self._schema.tables.get(((db or default_db).lower(), table.lower()))
                if info is None or info.utc_columns:
                    return True
        return False

    def prepare(self, batch: list[tuple[ChangeEvent, int]], position: TargetPosition,
                last_gtids: dict[str, ChangeEvent]) -> list[_Pending] | None:
        """The batch translated ahead (while an earlier batch executes); None with DDL, which changes
        the schema later statements translate against, or when translating fails (:meth:`apply`
        then reports it)."""
        if any(ev.has_ddl for ev, _ in batch):
            return None
        try:
            return [st for ev, offset in batch for st in self._translate(ev, offset)]
        except Exception:  # noqa: BLE001 - apply() translates again and reports it
            return None

    async def apply(self, batch: list[tuple[ChangeEvent, int]], position: TargetPosition,
                    last_gtids: dict[str, ChangeEvent], prepared: list[_Pending] | None = None) -> None:
        """Apply ``batch`` and store ``position`` in one transaction. ``prepared``: what :meth:`prepare`
        returned for exactly these arguments."""
        assert self._conn is not None
        try:
            async with self._conn.transaction():
                if prepared is not None:
                    await self._run(list(prepared))
                else:
                    pending: list[_Pending] = []
                    for ev, offset in batch:
                        if ev.has_ddl:
                            await self._run(pending)  # DDL changes the schema later statements translate against
                            await self._run(self._translate(ev, offset))
                            self._schema = await load_source_schema(self.source)
                        else:
                            pending.extend(self._translate(ev, offset))
                    await self._run(pending)
                await self._write_position(position, last_gtids)
        except ApplyError:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise ApplyError(f"{type(exc).__name__}: {exc}", gtid=_span(batch), offset=batch[0][1] if batch else -1,
                             retriable=True) from exc

    def _translate(self, ev: ChangeEvent, offset: int) -> list[_Pending]:
        db = ev.db or (ev.session.db if ev.session else None)
        out = []
        try:
            where: tuple[str, str] | None = None
            for row in ev.rows:
                if (row.db, row.table) != where:  # rows come in runs per table
                    where = (row.db, row.table)
                    schema, table = row.db.lower(), row.table.lower()
                    pk = self._schema.primary_key(schema, table) or ()
                st = row_statement(schema, table, row.op, row.before, row.after, pk)
                if row.op == "insert" and st.sql not in self._copy_into:
                    self._copy_into[st.sql] = (schema, table, tuple(row.after or ()))
                out.append((st.sql, st.args, ev, offset))
            for s in ev.statements:
                for st in translate_statement(s.sql, db.lower() if db else None, s.params, schema=self._schema,
                                              insert_id=s.insert_id):
                    out.append((st.sql, tuple(st.args), ev, offset))
        except Untranslatable as exc:
            raise ApplyError(f"cannot translate for PostgreSQL: {exc}", gtid=str(ev.gtid), offset=offset) from exc
        return out

    async def _run(self, statements: list[_Pending]) -> None:
        """Execute in order. A run of the same parametrised statement goes in one round trip: row inserts
        into one table by COPY (their ON CONFLICT clause only matters when a row already exists: then the
        COPY fails, is undone to its savepoint and the run goes through the statement itself), anything
        else by ``executemany``."""
        assert self._conn is not None
        conn = self._conn
        i = 0
        while i < len(statements):
            sql = statements[i][0]
            j = i + 1
            while j < len(statements) and statements[j][0] == sql and statements[j][1]:
                j += 1
            try:
                if j - i >= COPY_MIN_ROWS and sql in self._copy_into and await self._copy(sql, statements[i:j]):
                    pass  # copied
                elif j - i > 1:
                    await conn.executemany(sql, [args for _, args, _, _ in statements[i:j]])
                else:
                    await conn.execute(sql, *statements[i][1])
            except asyncpg.PostgresError as exc:
                if is_transient(exc):
                    raise
                ev, offset = statements[i][2], statements[i][3]
                gtid = str(ev.gtid) if j - i == 1 else f"{ev.gtid}..{statements[j - 1][2].gtid}"
                raise ApplyError(f"{type(exc).__name__}: {exc}", gtid=gtid, offset=offset,
                                 table=getattr(exc, "table_name", "") or "") from exc
            i = j
        statements.clear()

    async def _copy(self, sql: str, run: list[_Pending]) -> bool:
        """COPY a run of row inserts; False (and nothing changed) when a row already exists."""
        assert self._conn is not None
        schema, table, columns = self._copy_into[sql]
        try:
            async with self._conn.transaction():  # a savepoint: a failed COPY leaves the batch intact
                await self._conn.copy_records_to_table(table, schema_name=schema, columns=columns,
                                                       records=[args for _, args, _, _ in run])
        except asyncpg.UniqueViolationError as exc:
            COPY_FALLBACKS.labels(self.target).inc()
            log.info("target %s: COPY of %d rows into %s.%s met an existing row (%s); applying them by "
                     "INSERT ... ON CONFLICT", self.target, len(run), schema, table, exc.detail or exc)
            return False
        ROWS_COPIED.labels(self.target).inc(len(run))
        return True

    async def _write_position(self, position: TargetPosition, last: dict[str, ChangeEvent]) -> None:
        assert self._conn is not None
        for pk, offset in position.offsets.items():
            await self._conn.execute(
                f"INSERT INTO {META_SCHEMA}.positions (target, topic, kafka_partition, next_offset) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (target, topic, kafka_partition) "
                "DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                self.target, pk.topic, pk.partition, offset)
        for domain, ev in last.items():
            await self._conn.execute(
                f"INSERT INTO {META_SCHEMA}.gtids (target, topic, domain_id, seq, last_gtid, ts_ms) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (target, topic, domain_id) DO UPDATE SET "
                "seq = EXCLUDED.seq, last_gtid = EXCLUDED.last_gtid, ts_ms = EXCLUDED.ts_ms",
                self.target, self.topic, domain, ev.gtid.seq, str(ev.gtid), ev.ts_ms)


async def accept_bytes_for_text(conn: asyncpg.Connection) -> None:
    """MySQL clients bind string parameters as bytes (their character set is the connection's), and
    the ingress records them so; PostgreSQL text columns take them as UTF-8 text. Invalid UTF-8 still
    fails, loudly, as it must (the server checks text received in binary form too). Binary format, so
    COPY (which is binary in asyncpg) takes these columns as well."""
    def encode(value):
        if type(value) is str:
            return value.encode("utf-8")
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        raise TypeError(f"a text value must be str or bytes, got {type(value).__name__}")

    def decode(data: bytes) -> str:
        return data.decode("utf-8")

    for name in ("text", "varchar", "bpchar"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=encode, decoder=decode, format="binary")


_UTC_NAMES = frozenset({"utc", "etc/utc", "etc/universal", "universal", "zulu", "etc/zulu"})
_ZERO_OFFSET = re.compile(r"[+-]0?0:00")


def is_utc(time_zone: str | None, system_time_zone: str) -> bool:
    """Is a MySQL session time zone (``SYSTEM`` = the server's ``system_time_zone``) UTC all year?
    (``GMT`` is not taken for UTC: some systems report Europe/London so in winter.)"""
    tz = (time_zone or "").strip()
    if tz.upper() == "SYSTEM":
        tz = system_time_zone.strip()
    return tz.lower() in _UTC_NAMES or bool(_ZERO_OFFSET.fullmatch(tz))


def _span(batch: list[tuple[ChangeEvent, int]]) -> str:
    if not batch:
        return ""
    return str(batch[0][0].gtid) if len(batch) == 1 else f"{batch[0][0].gtid}..{batch[-1][0].gtid}"
