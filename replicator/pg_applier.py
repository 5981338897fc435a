"""Applying change events to a PostgreSQL target (asyncpg).

MySQL database ``X`` is PostgreSQL schema ``X``. Statement events are translated by
:mod:`replicator.pg_sql`; row events become idempotent parametrised statements, their values typed by
the schema the event carries (:attr:`~dbmux.core.events.ChangeEvent.tables`: the table as it was at
that GTID, which is how this target has it when the event is applied, DDL being applied in order),
by the source schema when it carries none. PostgreSQL DDL is transactional, so every batch -- DDL
included -- and its position commit atomically; after DDL, asyncpg's cached statements (prepared with
the parameter types tables had before) are dropped. Runs of row-change events of tables that allow it are
applied as their net effect per key (:mod:`replicator.pg_net`).

An ingress event whose statements cannot be applied faithfully takes its row form, decided as it is
consumed (:meth:`PostgresApplier.needs_row_form`); the translation made for that decision is the one
applied (a statement is translated once). What still cannot be translated when applied -- events
with no row form (DDL, the binlog reader's statements) -- is a permanent error, never a silent change.

Statements with no table meaning here (accounts, routines, triggers, events, server administration,
table maintenance: :func:`replicator.pg_types.not_applied`) are not applied, whichever producer's copy
carries them: counted in ``dbmux_replicator_statements_not_applied_total{target,kind}`` and logged
with the GTID, once per transaction.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Hashable, Mapping

import asyncpg
from prometheus_client import Counter

from dbmux.core.dsn import Dsn
from dbmux.core.events import ChangeEvent, RowChange, Statement
from dbmux.core.sqllex import ansi_names_backquoted, has_mode
from dbmux.core.transient import is_transient
from dbmux.replicator.errors import ApplyError, TargetLocked
from dbmux.replicator.filtering import statement_tables
from dbmux.replicator.pg_clock import at_primary_clock, is_utc
from dbmux.replicator.pg_codecs import install_mysql_codecs
from dbmux.replicator.pg_ddl import parseable_ddl
from dbmux.replicator.pg_net import MIXED, KeyChanged, NetUnknown, net_columns, net_kind, net_statements
from dbmux.replicator.pg_pending_ddl import PendingDdl, Tables, pending_ddl
from dbmux.replicator.pg_sequences import is_sequence_row, sequence_state
from dbmux.replicator.pg_sql import PgStatement, Untranslatable, insert_row, row_statement, translate_statement
from dbmux.replicator.pg_types import bit_strings, event_value_types, not_applied
from dbmux.replicator.pg_verify import PgRowComparer
from dbmux.replicator.positions import META_SCHEMA, PartitionKey, TargetPosition
from dbmux.replicator.schema_info import StaticSchema, TableInfo, remember_gone
from dbmux.replicator.shard_moves import HANDOFF_DDL, MOVE, ShardMoves, is_move, move_steps
from dbmux.replicator.source_schema import load_source_schema

log = logging.getLogger(__name__)

ROWS_COPIED = Counter("dbmux_replicator_rows_copied_total", "Row inserts applied by COPY (PostgreSQL targets)",
                      ["target"])
COPY_FALLBACKS = Counter("dbmux_replicator_copy_fallbacks_total",
                         "COPY runs undone because a row already existed, applied by INSERT ... ON CONFLICT",
                         ["target"])
NET_ROWS = Counter("dbmux_replicator_net_effect_rows_total",
                   "Row changes translated as part of a unit's net effect (PostgreSQL targets)", ["target"])
NOT_APPLIED = Counter("dbmux_replicator_statements_not_applied_total",
                      "Statements with no table meaning on a PostgreSQL target (accounts, routines, triggers, events, "
                      "server administration, table maintenance), not applied there", ["target", "kind"])
COPY_MIN_ROWS = 16  # a shorter run of row inserts goes through executemany
AHEAD_MAX, AHEAD_MAX_BYTES = 4096, 16 << 20  # translations kept from needs_row_form() for prepare(), at most
_Pending = tuple[str, tuple, ChangeEvent, int]  # (sql, args, event, offset)


class PostgresApplier(PgRowComparer):
    def __init__(self, dsn: Dsn, target: str, topic: str, source: Dsn, peers: Mapping[str, Dsn] | None = None) -> None:
        """``peers``: the other shard targets (a shard target), for rows moving between shards."""
        self.dsn, self.target, self.topic, self.source = dsn, target, topic, source
        self._moves = ShardMoves(target, dsn, peers or {})
        self._conn: asyncpg.Connection | None = None
        self._schema = StaticSchema({})
        self._applying_schema: StaticSchema | None = None
        self._applying_of: object = None  # the schema's tables _applying_schema was made from
        self._gone: dict[tuple[str, str], TableInfo] = {}  # tables the primary dropped since they were known
        self._copy_into: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # row-insert SQL -> (schema, table, columns)
        # _ahead_key(statement) -> (statement, db, translation, size): made when judged (needs_row_form),
        # kept and used when applied (_translate) until evicted by AHEAD_MAX / AHEAD_MAX_BYTES
        self._ahead: dict[Hashable, tuple[Statement, str | None, list[PgStatement], int]] = {}
        self._ahead_bytes = 0
        self._ddl_pending: dict[tuple[str, int], PendingDdl] = {}  # DDL consumed, not in the schema yet
        self._provisional: StaticSchema | None = None  # the schema with the tables pending DDL creates
        self._reflected: dict[str, int] = {}  # domain -> seq up to which DDL is in the schema
        self._noted: dict[str, int] = {}  # domain -> highest seq whose not-applied statements were counted
        self._net_ok: dict[tuple[str, str], int] = {}  # (db, table) as events name it -> pg_net.net_columns
        self._net_unknown: set[tuple[str, str]] = set()  # tables to look up (met by prepare())

    async def connect(self) -> None:
        self._conn = await asyncpg.connect(host=self.dsn.host, port=self.dsn.port, user=self.dsn.user,
                                           password=self.dsn.password, database=self.dsn.database or "postgres")
        await install_mysql_codecs(self._conn)
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
            {HANDOFF_DDL};
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
            raise TargetLocked(f"another replicator is already applying to target {self.target!r}")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        await self._moves.close()

    async def load_position(self) -> TargetPosition:
        assert self._conn is not None
        pos = TargetPosition()
        for r in await self._conn.fetch(f"SELECT topic, kafka_partition, next_offset FROM {META_SCHEMA}.positions "
                                        "WHERE target = $1", self.target):
            pos.offsets[PartitionKey(r["topic"], r["kafka_partition"])] = r["next_offset"]
        for r in await self._conn.fetch(f"SELECT domain_id, seq FROM {META_SCHEMA}.gtids WHERE target = $1 "
                                        "AND topic = $2", self.target, self.topic):
            pos.gtids[r["domain_id"]] = int(r["seq"])
        self._reflected = dict(pos.gtids)  # (the schema was loaded after they were applied)
        return pos

    async def set_status(self, state: str, detail: str) -> None:
        assert self._conn is not None
        await self._conn.execute(
            f"INSERT INTO {META_SCHEMA}.status (target, state, detail) VALUES ($1, $2, $3) "
            "ON CONFLICT (target) DO UPDATE SET state = EXCLUDED.state, detail = EXCLUDED.detail, updated_at = now()",
            self.target, state, detail[:2000])

    def needs_row_form(self, ev: ChangeEvent) -> bool:
        """Must ``ev`` be applied from its row form (the binlog reader's copy of the same GTID)? Asked
        once per event as it is consumed; only ingress events can say yes. Statements not applied here
        (:func:`~replicator.pg_types.not_applied`) never need it. Yes when a statement

        - is not UTF-8 text (:attr:`~dbmux.core.events.Statement.is_utf8`: bytes in another character
          set, a binary literal, text parameters in another character set);
        - cannot be translated faithfully (:class:`Untranslatable`: e.g. an expression written into a
          BLOB, BIT, JSON, ENUM, SET or YEAR column, a table with triggers on the source, a function the
          translator does not know, ``SAVEPOINT``, ``CALL``): the row form holds what MySQL stored;
        - writes a table with a MySQL TIMESTAMP column from a session whose time zone is not UTC (its
          values are that session's wall-clock time, this target holds UTC; a table not known yet may
          have such a column);
        - may be judged against a stale source schema: it names a table that DDL consumed before it,
          not applied yet, may give triggers, such columns, keys, auto-increment or clock defaults (or
          TIMESTAMP columns, for a session not in UTC). Other DDL (columns of other types, indexes)
          changes nothing here, and a table that DDL creates (CREATE TABLE) is judged as its
          definition says: writes right behind such DDL keep their statement form.

        The translations made here are the ones applied (kept for :meth:`prepare`, bounded): made
        against the schema as it was before the event, they stay right when the schema is reloaded
        after DDL that came later."""
        domain, seq = ev.gtid.domain, ev.gtid.seq
        if ev.has_ddl and seq > self._reflected.get(domain, -1):
            pending = pending_ddl(ev)
            if pending is not None:
                self._ddl_pending[(domain, seq)] = pending
                self._provisional = None
        if ev.source != "ingress":
            return False
        ctx = ev.session
        utc = ctx is None or is_utc(ctx.time_zone, self._schema.system_time_zone)
        doubt = self._doubtful_tables(ev, utc) if self._ddl_pending else frozenset()
        schema = self._judging_schema()
        db = ev.db or (ctx.db if ctx else None)
        default_db = (db or "").lower()
        added: list[Hashable] = []
        for st in ev.statements:
            if not_applied(st.sql) is not None:
                continue
            if not st.is_utf8:  # PostgreSQL reads text as UTF-8: only the bytes in their charset say it
                log.debug("target %s gtid %s: row form (character set %s)", self.target, ev.gtid, st.charset)
                return self._drop_ahead(added)
            if st.kind != "ddl" and (doubt is None or doubt or (not utc and st.kind == "dml")):
                tables = statement_tables(st.sql)
                named = None if tables is None else {((d or default_db).lower(), t.lower()) for d, t in tables}
                if doubt is None or named is None or named & doubt:
                    return self._drop_ahead(added)
                if not utc and st.kind == "dml" and any(
                        (info := schema.tables.get(k)) is None or info.utc_columns for k in named):
                    return self._drop_ahead(added)
            try:
                key = self._translate_ahead(st, default_db or None, schema, ctx.sql_mode if ctx else None)
                if key is not None:
                    added.append(key)
            except Untranslatable as exc:
                log.debug("target %s gtid %s: row form (%s)", self.target, ev.gtid, exc.construct)
                return self._drop_ahead(added)
        return False

    def _doubtful_tables(self, ev: ChangeEvent, utc: bool) -> Tables:
        """Tables whose schema DDL consumed before ``ev``, not yet reloaded, may change in a way that
        matters for ``ev`` (None: any table)."""
        doubt: set[tuple[str, str]] = set()
        for key, pending in self._ddl_pending.items():
            if key != (ev.gtid.domain, ev.gtid.seq) and (pending.decisive or (pending.timestamps and not utc)):
                if pending.tables is None:
                    return None
                doubt |= pending.tables
        return frozenset(doubt)

    def _judging_schema(self) -> StaticSchema:
        """The schema plus the tables that DDL consumed but not applied yet creates, where it does not
        know them yet (the schema itself when there are none)."""
        if self._provisional is None:
            created = {k: v for p in self._ddl_pending.values() for k, v in p.created.items()}
            self._provisional = StaticSchema({**created, **self._schema.tables}, self._schema.system_time_zone) \
                if created else self._schema
        return self._provisional

    def _translate_ahead(self, st: Statement, db: str | None, schema: StaticSchema,
                         sql_mode: str | None) -> Hashable | None:
        """Translate ``st`` and keep it; its key when this made the entry (None: it replaced one an earlier
        event's equal statement made, which a row-form verdict on this event must not take away)."""
        pg = translate_statement(as_the_session_meant(st, sql_mode), db, st.params, schema=schema,
                                 insert_id=st.insert_id)
        key = _ahead_key(st)
        existed = self._take_ahead(key) is not None
        size = len(st.sql) + sum(len(p.sql) for p in pg)
        self._ahead[key] = (st, db, pg, size)
        self._ahead_bytes += size
        while len(self._ahead) > AHEAD_MAX or self._ahead_bytes > AHEAD_MAX_BYTES:
            self._take_ahead(next(iter(self._ahead)))  # the oldest: translated again if it is still wanted
        return None if existed else key

    def _take_ahead(self, key: Hashable) -> tuple[Statement, str | None, list[PgStatement], int] | None:
        hit = self._ahead.pop(key, None)
        if hit is not None:
            self._ahead_bytes -= hit[3]
        return hit

    def _drop_ahead(self, keys: list[Hashable]) -> bool:
        for key in keys:
            self._take_ahead(key)
        return True

    def prepare(self, batch: list[tuple[ChangeEvent, int]], position: TargetPosition,
                last_gtids: dict[str, ChangeEvent]) -> list[_Pending] | None:
        """The batch translated ahead (while an earlier batch executes); None with DDL, which changes
        the schema later statements translate against, or when translating fails (:meth:`apply`
        then reports it)."""
        if any(ev.has_ddl for ev, _ in batch):
            return None
        try:
            return self._translate_batch(batch)
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
                    await self._learn_net()
                else:
                    pending: list[tuple[ChangeEvent, int]] = []
                    for ev, offset in batch:
                        if ev.has_ddl:
                            await self._run(await self._translated(pending))  # DDL changes the schema later
                            pending = []  # statements translate against
                            await self._run(self._translate(ev, offset))
                            if _changes_schema(ev):
                                # asyncpg's cached statements (and COPY's column types) hold the parameter
                                # types tables had: a table re-created with others would get values encoded so
                                await self._conn.reload_schema_state()
                                await self._reload_schema()
                        else:
                            pending.append((ev, offset))
                    await self._run(await self._translated(pending))
                await self._write_position(position, last_gtids)
        except ApplyError:
            raise
        except asyncpg.CharacterNotInRepertoireError as exc:
            if "0x00" not in str(exc):
                raise
            raise ApplyError(f"{type(exc).__name__}: {exc}: a text value holds a NUL character, which PostgreSQL text "
                             "cannot store (MySQL's can); on_error = \"dead-letter\" sets such transactions aside",
                             gtid=_span(batch), offset=batch[0][1] if batch else -1) from exc
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise ApplyError(f"{type(exc).__name__}: {exc}", gtid=_span(batch), offset=batch[0][1] if batch else -1,
                             retriable=True) from exc

    async def apply_parts(self, parts: AsyncIterator[ChangeEvent], offset: int, position: TargetPosition,
                          last_gtids: dict[str, ChangeEvent]) -> None:
        """Apply one transaction given part by part (:mod:`replicator.streamed`: no DDL) and store
        ``position``, in one transaction; each part translated and run as it comes."""
        assert self._conn is not None
        gtid = ",".join(str(ev.gtid) for ev in last_gtids.values())
        try:
            async with self._conn.transaction():
                async for ev in parts:
                    await self._run(self._translate(ev, offset))
                await self._write_position(position, last_gtids)
        except ApplyError:
            raise
        except asyncpg.CharacterNotInRepertoireError as exc:
            raise ApplyError(f"{type(exc).__name__}: {exc}", gtid=gtid, offset=offset) from exc
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise ApplyError(f"{type(exc).__name__}: {exc}", gtid=gtid, offset=offset, retriable=True) from exc

    def _applying(self) -> StaticSchema:
        """The schema statements are translated with when applied (a translation made when they were
        judged is used where kept): released in their statement form when consumed (needs_row_form judged
        them), they are not judged again; tables dropped on the primary since stay known (``_gone``)."""
        if self._applying_schema is None or self._applying_of is not self._schema.tables:
            tables = {**self._gone, **self._schema.tables} if self._gone else self._schema.tables
            self._applying_schema = dataclasses.replace(self._schema, tables=tables, judging=False)
            self._applying_of = self._schema.tables
        return self._applying_schema

    async def _reload_schema(self) -> None:
        """The source schema again (after DDL). Every DDL event consumed before the reload is in it:
        each was committed on the primary before it reached the topic; so are the copies of those
        consumed meanwhile (the other producer's)."""
        covered = list(self._ddl_pending)
        before = {k: v for key in covered for k, v in self._ddl_pending[key].created.items()}
        before.update(self._schema.tables)
        self._schema = await load_source_schema(self.source)
        self._net_ok.clear()
        self._moves.forget_schema()
        remember_gone(self._gone, before, self._schema.tables)
        for domain, seq in covered:
            self._reflected[domain] = max(seq, self._reflected.get(domain, -1))
        for domain, seq in list(self._ddl_pending):
            if seq <= self._reflected.get(domain, -1):
                del self._ddl_pending[(domain, seq)]
        self._provisional = None

    async def _translated(self, batch: list[tuple[ChangeEvent, int]]) -> list[_Pending]:
        """:meth:`_translate_batch`, the tables its row changes touch looked up first (:func:`net_columns`)."""
        self._net_unknown.update((row.db, row.table) for ev, _ in batch for row in ev.rows)
        await self._learn_net()
        return self._translate_batch(batch)

    async def _learn_net(self) -> None:
        """Look up the tables met without knowing whether their row changes may be applied as their net effect
        (the batch that met them was translated row by row)."""
        assert self._conn is not None
        for db, table in self._net_unknown - self._net_ok.keys():
            self._net_ok[(db, table)] = await net_columns(self._conn, db.lower(), table.lower())
        self._net_unknown.clear()

    def _translate_batch(self, batch: list[tuple[ChangeEvent, int]]) -> list[_Pending]:
        """The statements of ``batch``: runs of events of row changes applied as their net effect
        (:mod:`replicator.pg_net`), the rest event by event."""
        out: list[_Pending] = []
        run: list[tuple[ChangeEvent, int]] = []
        mixed = False
        for ev, offset in batch:
            try:
                kind = net_kind(ev, self._net_ok)
            except NetUnknown as unknown:  # row by row this time; apply() looks it up
                self._net_unknown.add(unknown.args)
                kind = 0
            if kind:
                run.append((ev, offset))
                mixed = mixed or kind == MIXED
                continue
            out += self._translate_net(run, mixed)
            run, mixed = [], False
            out += self._translate(ev, offset)
        return out + self._translate_net(run, mixed)

    def _translate_net(self, run: list[tuple[ChangeEvent, int]], mixed: bool) -> list[_Pending]:
        if not mixed or len(run) < 2:  # inserts only: their net effect is themselves
            return [st for ev, offset in run for st in self._translate(ev, offset)]
        try:
            out = net_statements(run, self._row_typing, self._copy_into)
            NET_ROWS.labels(self.target).inc(sum(len(ev.rows) for ev, _ in run))
            return out
        except KeyChanged:
            return [st for ev, offset in run for st in self._translate(ev, offset)]
        except Untranslatable as exc:
            raise ApplyError(f"cannot translate for PostgreSQL: {exc}", gtid=_span(run), offset=run[0][1]) from exc

    def _translate(self, ev: ChangeEvent, offset: int) -> list[_Pending]:
        db = ev.db or (ev.session.db if ev.session else None)
        dbl = db.lower() if db else None
        out: list[_Pending] = []
        skipped: list[tuple[str, str]] = []
        try:
            where: tuple[str, str] | None = None
            if ev.no_fk_checks and ev.rows:  # the checks at the end of its rows (module pg_ddl: DEFERRABLE)
                out.append(("SET CONSTRAINTS ALL DEFERRED", (), ev, offset))
            for row in ev.rows:
                if is_sequence_row(row.after):  # a MariaDB sequence's state (pg_sequences)
                    out.extend((st.sql, st.args, ev, offset) for st in
                               sequence_state(row.db.lower(), row.table.lower(), row.after or {}))
                    continue
                if (row.db, row.table) != where:  # rows come in runs per table
                    where = (row.db, row.table)
                    schema, table = row.db.lower(), row.table.lower()
                    pk, bits, pg_types = self._row_typing(ev, row, schema, table)
                if bits:  # BIT(n): the row image holds an int; BIT VARYING(n) takes n bits
                    row = RowChange(row.table, row.db, row.op, bit_strings(row.before, bits),
                                    bit_strings(row.after, bits))
                if row.op != "update" and is_move(row):  # between shards (shard_moves)
                    out.extend((sql, args, ev, offset) for sql, args in
                               move_steps(schema, table, row, pk, pg_types, str(ev.gtid)))
                    continue
                if row.op == "insert":
                    sql, args = insert_row(schema, table, row.after, pk, pg_types)
                    if sql not in self._copy_into:
                        self._copy_into[sql] = (schema, table, tuple(c.lower() for c in row.after or ()))
                    out.append((sql, args, ev, offset))
                    continue
                st = row_statement(schema, table, row.op, row.before, row.after, pk, pg_types)
                out.append((st.sql, st.args, ev, offset))
            if ev.no_fk_checks and ev.rows:
                out.append(("SET CONSTRAINTS ALL IMMEDIATE", (), ev, offset))
            for s in ev.statements:
                if (meaningless := not_applied(s.sql)) is not None:
                    skipped.append(meaningless)
                    continue
                # kept, not taken: an equal statement (a shard's copy routed again at release, the same
                # statement in a later event) is the same translation; the limits evict the oldest
                hit = self._ahead.get(_ahead_key(s)) if self._ahead else None
                if hit is not None and hit[0] == s and hit[1] == dbl:  # (see needs_row_form)
                    translated = hit[2]
                else:
                    translated = translate_statement(as_the_session_meant(s, ev.session.sql_mode if ev.session
                                                                          else None), dbl, s.params,
                                                     schema=self._applying(), insert_id=s.insert_id)
                if s.kind == "ddl":  # ADD COLUMN ... DEFAULT CURRENT_TIMESTAMP: existing rows at the primary's time
                    translated = at_primary_clock(translated, ev.session, self._schema.system_time_zone)
                for st in translated:
                    out.append((st.sql, tuple(st.args), ev, offset))
        except Untranslatable as exc:
            raise ApplyError(f"cannot translate for PostgreSQL: {exc}", gtid=str(ev.gtid), offset=offset) from exc
        if skipped and ev.gtid.seq > self._noted.get(ev.gtid.domain, -1):  # once per transaction
            self._noted[ev.gtid.domain] = ev.gtid.seq
            for what, _ in skipped:
                NOT_APPLIED.labels(self.target, what).inc()
            log.info("target %s gtid %s: not applied to PostgreSQL (no table meaning there): %s", self.target,
                     ev.gtid, ", ".join(verb for _, verb in skipped))
        return out

    def _row_typing(self, ev: ChangeEvent, row: RowChange, schema: str,
                    table: str) -> tuple[tuple[str, ...], Mapping[str, int] | None, Mapping[str, str] | None]:
        """(primary key, BIT widths, PostgreSQL types :func:`~replicator.pg_types.to_pg_value` needs) for
        ``row``'s table: by the schema the event carries (the table as it was at that GTID: the target,
        which applies DDL in order, has it so now), else by the source schema (events without one:
        statement copies, events written before events carried it)."""
        ts = ev.table_schema(row.db, row.table) if ev.tables else None
        if ts is None:
            info = self._schema.tables.get((schema, table))
            return (info.primary_key if info is not None else ()), (info.bits if info is not None else None), None
        bits, pg_types = event_value_types(ts)
        if ts.primary_key is not None:
            return ts.primary_key, bits, pg_types
        return self._schema.primary_key(schema, table) or (), bits, pg_types

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
            while sql != MOVE and j < len(statements) and statements[j][0] == sql and statements[j][1]:
                j += 1
            try:
                if sql == MOVE:
                    await self._moves.run(conn, statements[i][1][0])
                elif j - i >= COPY_MIN_ROWS and sql in self._copy_into and await self._copy(sql, statements[i:j]):
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


def _ahead_key(st: Statement) -> Hashable:
    """What identifies a statement's translation: its text, parameters and insert id (the object itself
    when its parameters do not hash)."""
    key = (st.sql, st.params, st.insert_id)
    try:
        hash(key)
    except TypeError:
        return id(st)
    return key


def as_the_session_meant(st: Statement, sql_mode: str | None) -> str:
    """A statement's text as the translator must read it to mean what it meant in the session that ran
    it: ANSI_QUOTES' double-quoted names backquoted; in DDL under REAL_AS_FLOAT, REAL as FLOAT."""
    sql = ansi_names_backquoted(st.sql, sql_mode)
    if st.kind == "ddl" and has_mode(sql_mode, "REAL_AS_FLOAT"):
        sql = parseable_ddl(sql, real_as_float=True)
    return sql


def _changes_schema(ev: ChangeEvent) -> bool:
    """Can ``ev``'s DDL change what the source schema says (not: accounts, routines, FLUSH, ...)?"""
    return any((na := not_applied(st.sql)) is None or na[0] == "trigger" for st in ev.statements)


def _span(batch: list[tuple[ChangeEvent, int]]) -> str:
    if not batch:
        return ""
    return str(batch[0][0].gtid) if len(batch) == 1 else f"{batch[0][0].gtid}..{batch[-1][0].gtid}"
