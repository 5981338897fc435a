"""Applying change events to a MySQL/MariaDB target (aiomysql).

One target transaction applies a batch of source transactions *and* writes the position
(``dbmux_meta.positions`` / ``dbmux_meta.gtids``), so the target never holds changes without the
position that produced them, nor the reverse (invariant 2).

DDL commits implicitly in MySQL, so an event with DDL is applied alone: its statements, then the
position in a transaction of its own. A crash between the two replays the DDL on restart; the
"already exists / already gone" errors of an exactly replayed DDL are then recognised and treated
as applied (logged), which keeps DDL effectively exactly-once.

Triggers: a target runs none. ``CREATE TRIGGER`` / ``DROP TRIGGER`` (either producer's copy) are not
applied -- counted in ``dbmux_replicator_trigger_statements_skipped_total{target}`` and logged -- because
a write to a table with triggers always reaches a target as its row copy, which already holds every
row the trigger changed on the primary (the ingress flags such statements unsafe:
:mod:`ingress.statement_safety`); a trigger on the target would change those rows a second time. As
with MySQL's own row-based replication, where replicas do not fire triggers for row events. A target
that has triggers of its own is warned about when the replicator connects.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiomysql
import pymysql
from prometheus_client import Counter
from pymysql.constants import CLIENT

from dbmux.core.dsn import Dsn
from dbmux.core.events import ChangeEvent, Statement
from dbmux.core.mysql_connect import connect_aiomysql
from dbmux.core.transient import is_transient, mysql_errno
from dbmux.replicator.errors import ApplyError, TargetLocked
from dbmux.replicator.mysql_rowcheck import ROW_SESSION, RowChecks
from dbmux.replicator.mysql_sql import literal, quote_ident, row_sql, table_of, without_columns
from dbmux.replicator.mysql_statements import (
    APPLIER_CHARSET,
    charset_sql,
    statement_sql,
    statement_steps,
    statement_text,
)
from dbmux.replicator.net_effect import net_applicable, net_run_sql
from dbmux.replicator.packet_limit import fits, request_bytes, too_big
from dbmux.replicator.pg_types import not_applied
from dbmux.replicator.positions import META_SCHEMA, PartitionKey, TargetPosition
from dbmux.replicator.self_verify import ancestors

log = logging.getLogger(__name__)

TRIGGERS_SKIPPED = Counter("dbmux_replicator_trigger_statements_skipped_total",
                           "CREATE/DROP TRIGGER statements not applied to a MySQL target (it runs no triggers: the row "
                           "copies it applies hold their changes)", ["target"])

# Errors an already-applied DDL gives when replayed after a crash between DDL and position write.
_DDL_REPLAY_ERRNOS = frozenset({1007, 1008, 1050, 1051, 1060, 1061, 1091, 1146, 1826})


class MySQLApplier(RowChecks):
    def __init__(self, dsn: Dsn, target: str, topic: str) -> None:
        self.dsn = dsn
        self.target = target
        self.topic = topic  # one topic per source cluster: GTID positions are per (target, topic)
        self._conn: aiomysql.Connection | None = None
        self._session: tuple = ()
        self._db: str | None = None
        self._pk_cache: dict[tuple[str, str], tuple[str, ...]] = {}
        # generated columns per table, looked up with the key: row images carry their values (MariaDB and
        # MySQL log them), which the target computes itself and refuses to be given (error 1906)
        self._generated: dict[tuple[str, str], frozenset[str]] = {}
        # tables whose row changes a unit may apply as their net effect (replicator/net_effect.py)
        self._netable: dict[tuple[str, str], bool] = {}
        self._max_packet = 1 << 30  # the target's max_allowed_packet, read at connect()

    async def connect(self) -> None:
        self._conn = await connect_aiomysql(self.dsn, autocommit=False, charset=APPLIER_CHARSET,
                                            client_flag=CLIENT.MULTI_STATEMENTS)
        self._session, self._db = (), None
        async with self._conn.cursor() as cur:
            await cur.execute("SET SESSION sql_notes = 0")  # no "already exists" warnings for IF NOT EXISTS
            await cur.execute(f"CREATE DATABASE IF NOT EXISTS {META_SCHEMA}")
            await cur.execute(
                f"CREATE TABLE IF NOT EXISTS {META_SCHEMA}.positions (target VARCHAR(64) NOT NULL, "
                "topic VARCHAR(249) NOT NULL, kafka_partition INT NOT NULL, next_offset BIGINT NOT NULL, "
                "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), "
                "PRIMARY KEY (target, topic, kafka_partition)) ENGINE=InnoDB")
            await cur.execute(
                f"CREATE TABLE IF NOT EXISTS {META_SCHEMA}.gtids (target VARCHAR(64) NOT NULL, "
                "topic VARCHAR(249) NOT NULL, domain_id VARCHAR(80) NOT NULL, seq BIGINT UNSIGNED NOT NULL, "
                "last_gtid VARCHAR(128) NOT NULL, ts_ms BIGINT NOT NULL, "
                "PRIMARY KEY (target, topic, domain_id)) ENGINE=InnoDB")
            await cur.execute(
                f"CREATE TABLE IF NOT EXISTS {META_SCHEMA}.status (target VARCHAR(64) NOT NULL PRIMARY KEY, "
                "state VARCHAR(32) NOT NULL, detail TEXT NOT NULL, "
                "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)) "
                "ENGINE=InnoDB")
            await cur.execute(
                f"CREATE TABLE IF NOT EXISTS {META_SCHEMA}.backfill (target VARCHAR(64) NOT NULL PRIMARY KEY, "
                "topic VARCHAR(249) NOT NULL, state VARCHAR(16) NOT NULL, doc LONGTEXT NOT NULL, "
                "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)) "
                "ENGINE=InnoDB")
            await cur.execute(
                f"CREATE TABLE IF NOT EXISTS {META_SCHEMA}.shardmap (target VARCHAR(64) NOT NULL PRIMARY KEY, "
                "version INT NOT NULL, map LONGTEXT NOT NULL) ENGINE=InnoDB")
            await cur.execute("SET SESSION sql_notes = 1")
            await cur.execute("SELECT COUNT(*), MIN(CONCAT(TRIGGER_SCHEMA, '.', TRIGGER_NAME)) FROM "
                              "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA NOT IN "
                              "('mysql', 'sys', 'information_schema', 'performance_schema')")
            triggers, example = await cur.fetchone()
            await cur.execute("SELECT @@max_allowed_packet")
            (self._max_packet,) = await cur.fetchone()
        await self._conn.commit()
        if triggers:
            log.warning("target %s has %d trigger(s) of its own (e.g. %s): dbmux applies the primary's row "
                        "copies, which already hold what the primary's triggers changed; a trigger here changes "
                        "those rows again (drop them)", self.target, triggers, example)

    async def lock_target(self) -> None:
        """One replicator per target: a named lock held for the connection's life."""
        assert self._conn is not None
        async with self._conn.cursor() as cur:
            await cur.execute("SELECT GET_LOCK(%s, 0)", (f"dbmux.replicator.{self.target}",))
            (got,) = await cur.fetchone()
        if got != 1:
            raise TargetLocked(f"another replicator is already applying to target {self.target!r}")

    @property
    def connection(self) -> aiomysql.Connection:
        assert self._conn is not None, "connect() first"
        return self._conn

    async def load_backfill(self) -> tuple[str, str] | None:
        """``(state, doc)`` of this target's backfill (see :mod:`replicator.backfill`), None if never run."""
        async with self.connection.cursor() as cur:
            await cur.execute(f"SELECT state, doc FROM {META_SCHEMA}.backfill WHERE target = %s", (self.target,))
            row = await cur.fetchone()
        await self.connection.commit()
        return (row[0], row[1]) if row else None

    async def set_status(self, state: str, detail: str) -> None:
        """Record the replicator's state for `dbmux status` (outside the apply transactions)."""
        assert self._conn is not None
        async with self._conn.cursor() as cur:
            await cur.execute(
                f"INSERT INTO {META_SCHEMA}.status (target, state, detail) VALUES (%s, %s, %s) "
                "ON DUPLICATE KEY UPDATE state = VALUES(state), detail = VALUES(detail)",
                (self.target, state, detail[:2000]))
        await self._conn.commit()

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def load_position(self) -> TargetPosition:
        assert self._conn is not None
        pos = TargetPosition()
        async with self._conn.cursor() as cur:
            await cur.execute(f"SELECT topic, kafka_partition, next_offset FROM {META_SCHEMA}.positions "
                              "WHERE target = %s", (self.target,))
            for topic, partition, offset in await cur.fetchall():
                pos.offsets[PartitionKey(topic, int(partition))] = int(offset)
            await cur.execute(f"SELECT domain_id, seq FROM {META_SCHEMA}.gtids WHERE target = %s AND topic = %s",
                              (self.target, self.topic))
            for domain, seq in await cur.fetchall():
                pos.gtids[domain] = int(seq)
        await self._conn.commit()
        return pos

    def prepare(self, batch: list[tuple[ChangeEvent, int]], position: TargetPosition,
                last_gtids: dict[str, ChangeEvent]) -> str | None:
        """The one-round-trip request for ``batch`` (see :meth:`_apply_in_one_round_trip`), built ahead
        while an earlier batch executes; None when it cannot be built without the connection (a table's
        primary key not known yet, DDL, a single event) -- :meth:`apply` then builds it itself. Valid
        whatever the session state is when it runs: it sets everything it depends on."""
        if len(batch) < 2 or any(ev.has_ddl for ev, _ in batch):
            return None
        try:
            return self._round_trip_sql(batch, position, last_gtids)
        except Exception:  # noqa: BLE001 - a key to look up, or a bad event: apply() builds it and reports
            return None

    async def apply(self, batch: list[tuple[ChangeEvent, int]], position: TargetPosition,
                    last_gtids: dict[str, ChangeEvent], prepared: str | None = None) -> None:
        """Apply ``batch`` and store ``position`` atomically (DDL: see the module docstring).
        ``prepared``: what :meth:`prepare` returned for exactly these arguments."""
        assert self._conn is not None
        conn = self._conn
        has_ddl = any(ev.has_ddl for ev, _ in batch)
        if len(batch) > 1 and not has_ddl and await self._apply_in_one_round_trip(batch, position, last_gtids,
                                                                                    prepared):
            return
        try:
            async with conn.cursor() as cur:
                if not has_ddl:
                    await cur.execute("START TRANSACTION")
                for ev, offset in batch:
                    await self._apply_event(cur, ev, offset, ddl=has_ddl)
                if has_ddl:
                    self._pk_cache.clear()  # a DDL may have changed a primary key
                    self._generated.clear()
                    self._netable.clear()
                    await cur.execute("START TRANSACTION")
                await self._write_position(cur, position, last_gtids)
            await conn.commit()
        except ApplyError:
            await self._rollback()
            raise
        except Exception as exc:
            await self._rollback()
            gtid = str(batch[0][0].gtid) if len(batch) == 1 else f"{batch[0][0].gtid}..{batch[-1][0].gtid}"
            raise ApplyError(f"{type(exc).__name__}: {exc}", gtid=gtid, offset=batch[0][1] if batch else -1,
                             errno=mysql_errno(exc), retriable=is_transient(exc)) from exc

    async def _apply_in_one_round_trip(self, batch: list[tuple[ChangeEvent, int]], position: TargetPosition,
                                       last_gtids: dict[str, ChangeEvent], prepared: str | None) -> bool:
        """Group commit without DDL: the whole target transaction is one multi-statement request
        (consecutive row inserts into one table with the same columns become one multi-row INSERT,
        across events too). Any error rolls back and is reported for the span; the runner then
        applies the events one by one to find the culprit, on the careful statement-by-statement path.
        False (nothing sent) when the request would be over the target's ``max_allowed_packet``."""
        assert self._conn is not None
        sql = prepared
        span = f"{batch[0][0].gtid}..{batch[-1][0].gtid}"
        while sql is None:
            try:
                sql = self._round_trip_sql(batch, position, last_gtids)
            except _KeyUnknown as missing:
                async with self._conn.cursor() as cur:
                    await self._primary_key(cur, *missing.args)
            except Exception as exc:  # noqa: BLE001 - e.g. parameters not matching placeholders
                raise ApplyError(f"{type(exc).__name__}: {exc}", gtid=span, offset=batch[0][1]) from exc
        if not fits(sql, self._max_packet):
            return False  # statement by statement instead (each one measured)
        self._session, self._db = (), None  # the request sets what it needs; afterwards: unknown
        try:
            async with self._conn.cursor() as cur:
                await cur.execute(sql)
                while await cur.nextset():
                    pass
        except Exception as exc:
            await self._rollback()
            raise ApplyError(f"{type(exc).__name__}: {exc}", gtid=span, offset=batch[0][1], errno=mysql_errno(exc),
                             retriable=is_transient(exc)) from exc
        return True

    def _round_trip_sql(self, batch: list[tuple[ChangeEvent, int]], position: TargetPosition,
                        last_gtids: dict[str, ChangeEvent]) -> str:
        """The request text; raises :class:`_KeyUnknown` for a table whose primary key is not cached."""
        return ";\n".join(["START TRANSACTION", *self._batch_sql(batch), *self._position_sql(position, last_gtids),
                            "COMMIT"])

    def _batch_sql(self, batch: list[tuple[ChangeEvent, int]]) -> list[str]:
        """The statements applying ``batch``; raises :class:`_KeyUnknown` for a table whose primary key
        is not cached.

        It assumes nothing of the session: sql_mode/time_zone, the default database and the
        timestamp are set before the first event that depends on them, then again only when they
        change. Row inserts carry every column's value, so a run of them is one INSERT even across
        events (the events' timestamps are equal there: a change of timestamp ends the run)."""
        parts: list[str] = []
        session: tuple = ()
        db: str | None = None
        ts: int | None = None
        run_key: tuple | None = None  # (db, table, columns) of the INSERT being gathered
        values: list[str] = []
        pk_cache = self._pk_cache
        lit = literal

        def flush() -> None:
            """End the INSERT being gathered (if any): anything but the next row of it comes next."""
            nonlocal run_key
            if values:
                d, t, cols = run_key  # type: ignore[misc]  # set whenever values are gathered
                parts.append(f"INSERT INTO {quote_ident(d)}.{quote_ident(t)} ({', '.join(map(quote_ident, cols))}) "
                             f"VALUES {', '.join(values)}")
                values.clear()
            run_key = None

        net_run: list[ChangeEvent] = []

        def flush_net() -> None:
            """Apply the gathered row-only events as their net effect (one session, no clock needed)."""
            nonlocal session
            if not net_run:
                return
            flush()
            if session != ROW_SESSION:
                parts.append(f"SET SESSION sql_mode = {lit(ROW_SESSION[0])}, time_zone = {lit(ROW_SESSION[1])}")
                session = ROW_SESSION
            parts.extend(net_run_sql(net_run, self._pk_cache, self._generated))
            net_run.clear()

        for ev, _ in batch:
            if self._net_eligible(ev):
                net_run.append(ev)
                continue
            flush_net()
            ctx = ev.session
            wanted = _wanted_session(ev)
            if wanted and wanted != session:
                flush()
                parts.append(f"SET SESSION sql_mode = {lit(wanted[0])}, time_zone = {lit(wanted[1])}")
                session = wanted
            if (clock := _clock(ev)) != ts:
                flush()
                parts.append(_set_timestamp(clock))
                ts = clock
            ev_db = ev.db or (ctx.db if ctx else None)
            if ev_db and ev_db != db:
                flush()
                parts.append(f"USE {quote_ident(ev_db)}")
                db = ev_db
            if not ev.rows:
                flush()
                for st in ev.statements:
                    parts.extend(statement_sql(st, ctx))
                    if st.kind == "ddl":
                        db = None  # (DROP DATABASE of the current one unselects it)
                continue
            if ev.no_fk_checks:
                flush()
                parts.append(_FK_OFF)
            for row in ev.rows:
                after = row.after
                generated = self._generated.get((row.db, row.table))
                if generated is None:
                    raise _KeyUnknown(row.db, row.table)
                if generated:
                    row = without_columns(row, generated)
                    after = row.after
                if row.op == "insert" and after is not None:
                    key = (row.db, row.table, tuple(after))
                    if key != run_key:
                        flush()
                        run_key = key
                    values.append("(" + ", ".join([lit(v) for v in after.values()]) + ")")
                    continue
                flush()
                pk = pk_cache.get((row.db, row.table))
                if pk is None:
                    raise _KeyUnknown(row.db, row.table)
                parts.append(row_sql(row.db, row.table, row.op, row.before, after, pk))
            if ev.no_fk_checks:
                flush()
                parts.append(_FK_RESTORE)
        flush_net()
        flush()
        return parts

    async def apply_parts(self, parts: AsyncIterator[ChangeEvent], offset: int, position: TargetPosition,
                          last_gtids: dict[str, ChangeEvent]) -> None:
        """Apply one transaction given part by part (:mod:`replicator.streamed`) and store ``position``, in
        one target transaction; each part in one request where it fits, else statement by statement."""
        assert self._conn is not None
        gtid = ",".join(str(ev.gtid) for ev in last_gtids.values())
        try:
            async with self._conn.cursor() as cur:
                await cur.execute("START TRANSACTION")
                async for ev in parts:
                    sql = None
                    while sql is None:
                        try:
                            sql = ";\n".join(self._batch_sql([(ev, offset)]))
                        except _KeyUnknown as missing:
                            await self._primary_key(cur, *missing.args)
                    if not fits(sql, self._max_packet):
                        await self._apply_event(cur, ev, offset, ddl=False)
                        continue
                    self._session, self._db = (), None  # the request sets what it needs; afterwards: unknown
                    await cur.execute(sql)
                    while await cur.nextset():
                        pass
                await self._write_position(cur, position, last_gtids)
            await self._conn.commit()
        except ApplyError:
            await self._rollback()
            raise
        except Exception as exc:
            await self._rollback()
            raise ApplyError(f"{type(exc).__name__}: {exc}", gtid=gtid, offset=offset, errno=mysql_errno(exc),
                             retriable=is_transient(exc)) from exc

    def _net_eligible(self, ev: ChangeEvent) -> bool:
        """May ``ev`` be applied as part of a net effect (row changes only, of tables that allow it)?
        Raises :class:`_KeyUnknown` for a table not looked up yet."""
        if ev.statements or not ev.rows or ev.no_fk_checks:
            return False
        for row in ev.rows:
            ok = self._netable.get((row.db, row.table))
            if ok is None:
                raise _KeyUnknown(row.db, row.table)
            if not ok:
                return False
        return True

    def _position_sql(self, position: TargetPosition, last: dict[str, ChangeEvent]) -> list[str]:
        out = []
        for pk, offset in position.offsets.items():
            out.append(f"INSERT INTO {META_SCHEMA}.positions (target, topic, kafka_partition, next_offset) VALUES "
                       f"({literal(self.target)}, {literal(pk.topic)}, {int(pk.partition)}, {int(offset)}) "
                       "ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset)")
        for domain, ev in last.items():
            out.append(f"INSERT INTO {META_SCHEMA}.gtids (target, topic, domain_id, seq, last_gtid, ts_ms) VALUES "
                       f"({literal(self.target)}, {literal(self.topic)}, {literal(domain)}, {int(ev.gtid.seq)}, "
                       f"{literal(str(ev.gtid))}, {int(ev.ts_ms)}) ON DUPLICATE KEY UPDATE seq = VALUES(seq), "
                       "last_gtid = VALUES(last_gtid), ts_ms = VALUES(ts_ms)")
        return out

    async def _rollback(self) -> None:
        try:
            if self._conn is not None:
                await self._conn.rollback()
                async with self._conn.cursor() as cur:  # a statement may have failed in its own character set
                    await cur.execute(charset_sql(APPLIER_CHARSET))
        except Exception:  # noqa: BLE001 - the connection may be gone; reconnect follows
            pass

    async def _apply_event(self, cur, ev: ChangeEvent, offset: int, *, ddl: bool) -> None:
        await self._set_session(cur, ev)
        if ev.rows:
            if ev.no_fk_checks:
                await cur.execute(_FK_OFF)
            for row in ev.rows:
                pk = await self._primary_key(cur, row.db, row.table)
                if generated := self._generated[(row.db, row.table)]:
                    row = without_columns(row, generated)
                await self._execute(cur, row_sql(row.db, row.table, row.op, row.before, row.after, pk),
                                    ev, offset, table=f"{row.db}.{row.table}")
            if ev.no_fk_checks:
                await cur.execute(_FK_RESTORE)
            for st in ev.statements:  # binlog events carry DDL as statements
                if not self._skipped_trigger(st, ev):
                    await self._execute(cur, statement_text(st), ev, offset, ddl=st.kind == "ddl")
            return
        for st in ev.statements:
            if self._skipped_trigger(st, ev):
                continue
            preamble, sql, after = statement_steps(st, ev.session)
            for pre in preamble:
                await cur.execute(pre)
            await self._execute(cur, sql, ev, offset, ddl=st.kind == "ddl")
            for post in after:
                await cur.execute(post)

    def _skipped_trigger(self, st: Statement, ev: ChangeEvent) -> bool:
        """Is ``st`` a CREATE/DROP TRIGGER, not applied here (see the module docstring)? Logs and counts it."""
        if st.kind == "dml":
            return False
        kind = not_applied(st.sql)
        if kind is None or kind[0] != "trigger":
            return False
        TRIGGERS_SKIPPED.labels(self.target).inc()
        log.info("target %s gtid %s: %s not applied (targets run no triggers; the row copies hold their changes)",
                 self.target, ev.gtid, kind[1])
        return True

    async def _execute(self, cur, sql: str, ev: ChangeEvent, offset: int, *, ddl: bool = False,
                       table: str = "") -> None:
        if (size := request_bytes(sql, self._max_packet)) > self._max_packet:
            raise too_big(size, self._max_packet, target=self.target, gtid=str(ev.gtid), offset=offset,
                          table=table or table_of(sql, self._db))
        if ddl:  # (DROP DATABASE of the current one unselects it: the next event says USE again)
            self._db = None
        try:
            await cur.execute(sql)
            if cur.description:
                await cur.fetchall()
        except pymysql.err.MySQLError as exc:
            errno = mysql_errno(exc)
            if ddl and errno in _DDL_REPLAY_ERRNOS:
                log.warning("target %s gtid %s: DDL already applied (%s); treating as applied",
                            self.target, ev.gtid, exc.args[1] if len(exc.args) > 1 else exc)
                return
            raise ApplyError(f"error {errno}: {exc.args[1] if len(exc.args) > 1 else exc} in "
                             f"{sql[:300]!r}", gtid=str(ev.gtid), offset=offset,
                             table=table or table_of(sql, self._db), errno=errno,
                             retriable=is_transient(exc), sql=sql) from exc

    async def _set_session(self, cur, ev: ChangeEvent) -> None:
        ctx = ev.session
        wanted = _wanted_session(ev)
        if wanted and wanted != self._session:
            await cur.execute("SET SESSION sql_mode = %s, time_zone = %s", wanted)
            self._session = wanted
        await cur.execute(_set_timestamp(_clock(ev)))
        db = ev.db or (ctx.db if ctx else None)
        if db and db != self._db:
            try:
                await cur.execute(f"USE {quote_ident(db)}")
                self._db = db
            except pymysql.err.MySQLError:
                self._db = None  # created by this very event (CREATE DATABASE); statements qualify it

    async def _primary_key(self, cur, db: str, table: str) -> tuple[str, ...]:
        key = (db, table)
        if key not in self._pk_cache:
            await cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION", (db, table))
            pk = tuple(r[0] for r in await cur.fetchall())
            await cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                "AND (EXTRA LIKE '%%VIRTUAL GENERATED%%' OR EXTRA LIKE '%%STORED GENERATED%%' "
                "OR EXTRA LIKE '%%PERSISTENT GENERATED%%')", (db, table))
            self._generated[key] = frozenset(r[0] for r in await cur.fetchall())
            self._netable[key] = await net_applicable(cur, db, table, pk)
            self._pk_cache[key] = pk
        return self._pk_cache[key]

    async def primary_key(self, db: str, table: str) -> tuple[str, ...]:
        pk = self._pk_cache.get((db, table))
        if pk is None:
            async with self.connection.cursor() as cur:
                pk = await self._primary_key(cur, db, table)
        return pk

    async def cascading_parents(self, db: str, table: str) -> frozenset[tuple[str, str]]:
        """Self-verification: the tables (db, table, lowercase) whose updates or deletes may change rows
        of ``db.table`` through foreign keys with a CASCADE / SET NULL / SET DEFAULT rule, transitively."""
        async with self.connection.cursor() as cur:
            await cur.execute("SELECT CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME "
                              "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE DELETE_RULE NOT IN "
                              "('RESTRICT', 'NO ACTION') OR UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION')")
            return ancestors(await cur.fetchall(), db, table)

    async def _write_position(self, cur, position: TargetPosition, last: dict[str, ChangeEvent]) -> None:
        for sql in self._position_sql(position, last):
            await cur.execute(sql)



def _clock(ev: ChangeEvent) -> int:
    """The time ``ev``'s statements ran at on the primary, in microseconds: the statement's own clock where
    the event carries it (binlog DDL), else its commit time."""
    ctx = ev.session
    return ctx.timestamp_us if ctx is not None and ctx.timestamp_us is not None else ev.ts_ms * 1000


def _set_timestamp(us: int) -> str:
    return f"SET timestamp = {us // 1_000_000}.{us % 1_000_000:06d}"


def _wanted_session(ev: ChangeEvent) -> tuple:
    """(sql_mode, time_zone) ``ev`` must be applied in; () when it sets nothing (binlog statements)."""
    ctx = ev.session
    if ctx is not None:
        return (ctx.sql_mode, ctx.time_zone)
    return ROW_SESSION if ev.rows else ()


# rows the primary changed with foreign_key_checks = 0 are applied so (children before parents, a
# self-referencing table emptied in one statement); the session's own setting comes back afterwards
_FK_OFF = "SET @dbmux_fkc = @@foreign_key_checks, foreign_key_checks = 0"
_FK_RESTORE = "SET foreign_key_checks = @dbmux_fkc"


class _KeyUnknown(Exception):
    """A table's primary key is needed and not cached yet: args are (db, table)."""


__all__ = ["MySQLApplier", "literal"]
