"""Binlog events → change events, one per committed transaction (pure; no I/O, no threads).

:class:`TransactionAssembler` is fed the events python-mysql-replication yields, in binlog order, and
returns one :class:`~dbmux.core.events.ChangeEvent` (``source="binlog"``) per committed transaction:

====================  =======================================  ===================================
state                 event                                    effect
====================  =======================================  ===================================
idle                  MariaDB GTID without FL_STANDALONE       open a transaction, *in BEGIN* (on
                                                               MariaDB the GTID event is the BEGIN)
idle                  MariaDB GTID with FL_STANDALONE, MySQL   open a transaction (one statement
                      GTID                                     follows, or MySQL's ``BEGIN``)
idle                  anything else                            ignored (stream resumed mid-txn)
open                  QueryEvent ``BEGIN``                     explicit transaction: wait for end
open (not in BEGIN)   any other QueryEvent                     a standalone statement (DDL, GRANT,
                                                               ...): kept as ``kind="ddl"``; *done*
open (in BEGIN)       Write/Update/DeleteRowsEvent             one RowChange per row; the table's
                                                               schema, once per table
open (in BEGIN)       XidEvent / QueryEvent ``COMMIT``         *done*
open (in BEGIN)       QueryEvent ``ROLLBACK``                  *done* (non-transactional changes
                                                               that stayed; the GTID is consumed)
open (in BEGIN)       ``SAVEPOINT s``                          remember where the rows stood
open (in BEGIN)       ``ROLLBACK TO s``                        drop the rows logged since ``s``
                                                               (the server rolled them back; a
                                                               non-transactional change is logged
                                                               as a GTID of its own)
open (in BEGIN)       ``RELEASE SAVEPOINT s``                  forget ``s``
open (in BEGIN)       other QueryEvent                         kept as ``kind="other"``
open                  GTID                                     the partial one is dropped (the
                                                               server resent it after a reconnect)

Every committed GTID produces an event, even when nothing of it is replicated: changes to system
schemas (:data:`SYSTEM_SCHEMAS`) are left out, so such a transaction is an *empty* event that only
advances the GTID (targets need every GTID to close gaps).

Events are dispatched on their class name (``MariadbGtidEvent``, ``QueryEvent``, ...), so tests feed
small stand-in objects with the same attributes as the library's events. The row images of rows
events are decoded by :mod:`binlog.row_decoder`; each event carries the schema of the tables its rows
change, as their table maps described them (:mod:`binlog.table_schema`), so consumers type the values
by the table as it was at that GTID, not as the primary has it later.

Passwords: MariaDB's binlog keeps ``CREATE USER u IDENTIFIED BY 'pw'`` (and ``ALTER USER``, ``GRANT ...
IDENTIFIED BY``, ``USING PASSWORD('pw')``) as the client wrote it. Every kept statement goes through
:func:`dbmux.core.passwords.redact_secrets`: the password becomes its hash (replicas get the same
account), or is withheld and the statement flagged ``unsafe`` where no hash form exists.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from dbmux.binlog.row_decoder import ROW_EVENT_OPS, row_changes
from dbmux.binlog.table_schema import table_schema
from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement, TableSchema
from dbmux.core.gtid import Gtid
from dbmux.core.passwords import redact_secrets

log = logging.getLogger(__name__)

__all__ = ["SYSTEM_SCHEMAS", "TransactionAssembler"]

SYSTEM_SCHEMAS = frozenset({"mysql", "dbmux_meta", "information_schema", "performance_schema", "sys"})

_GTID_EVENTS = frozenset({"MariadbGtidEvent", "GtidEvent"})
_ACCOUNT_STMT = re.compile(r"\s*(CREATE|ALTER|DROP|RENAME)\s+(USER|ROLE)\b|\s*(GRANT|REVOKE|SET\s+PASSWORD)\b",
                           re.IGNORECASE)
_SYSTEM_REF = re.compile(r"(?<![\w$])`?(mysql|dbmux_meta|performance_schema|sys)`?\s*\.", re.IGNORECASE)
_NAME = r"(`(?:[^`]|``)+`|[\w$]+)"
_SAVEPOINT = re.compile(r"\s*SAVEPOINT\s+" + _NAME, re.IGNORECASE)
_ROLLBACK_TO = re.compile(r"\s*ROLLBACK\s+(?:WORK\s+)?TO\s+(?:SAVEPOINT\s+)?" + _NAME, re.IGNORECASE)
_RELEASE = re.compile(r"\s*RELEASE\s+SAVEPOINT\s+" + _NAME, re.IGNORECASE)
_FL_STANDALONE = 1  # MariaDB GTID event flag: a single statement follows, with no COMMIT/XID


def _savepoint_name(quoted: str) -> str:
    if quoted.startswith("`"):
        quoted = quoted[1:-1].replace("``", "`")
    return quoted.lower()  # savepoint names compare case-insensitively


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return value or ""


def _keep_statement(sql: str, schema: str) -> bool:
    """False for statements that only concern system schemas (they are not replicated)."""
    if _ACCOUNT_STMT.match(sql):
        return True
    if schema.lower() in SYSTEM_SCHEMAS and not re.search(r"\.", sql):
        return False
    return not _SYSTEM_REF.search(sql)


def _statement(sql: str, kind: str) -> Statement:
    """A binlog statement as published: no clear-text password (see the module docstring)."""
    red = redact_secrets(sql)
    return Statement(sql=red.sql, kind=kind, unsafe=red.unsafe)


@dataclass
class _Open:
    gtid: Gtid
    ts_ms: int
    in_begin: bool = False
    db: str | None = None
    rows: list[RowChange] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    skipped_rows: int = 0
    # (db, table) -> its schema, in the order first seen (the event carries one per table)
    tables: dict[tuple[str, str], TableSchema] = field(default_factory=dict)
    # savepoint name -> (len(rows), len(statements), len(tables)) when it was set
    savepoints: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    session: SessionContext | None = None  # a standalone statement's sql_mode and time zone
    no_fk_checks: bool = False  # a rows event of it had the NO_FOREIGN_KEY_CHECKS flag


_NO_FOREIGN_KEY_CHECKS = 0x0002  # a rows event's flag: the session had foreign_key_checks = 0


# sql_mode's bits as the binlog carries them (Q_SQL_MODE_CODE), MariaDB's names; MySQL 8 differs in
# bit 32 and has retired bits 4 and 8-17 and 28 (never set by it)
_SQL_MODE_BITS = (
    "REAL_AS_FLOAT", "PIPES_AS_CONCAT", "ANSI_QUOTES", "IGNORE_SPACE", "IGNORE_BAD_TABLE_OPTIONS",
    "ONLY_FULL_GROUP_BY", "NO_UNSIGNED_SUBTRACTION", "NO_DIR_IN_CREATE", "POSTGRESQL", "ORACLE", "MSSQL", "DB2",
    "MAXDB", "NO_KEY_OPTIONS", "NO_TABLE_OPTIONS", "NO_FIELD_OPTIONS", "MYSQL323", "MYSQL40", "ANSI",
    "NO_AUTO_VALUE_ON_ZERO", "NO_BACKSLASH_ESCAPES", "STRICT_TRANS_TABLES", "STRICT_ALL_TABLES", "NO_ZERO_IN_DATE",
    "NO_ZERO_DATE", "ALLOW_INVALID_DATES", "ERROR_FOR_DIVISION_BY_ZERO", "TRADITIONAL", "NO_AUTO_CREATE_USER",
    "HIGH_NOT_PRECEDENCE", "NO_ENGINE_SUBSTITUTION", "PAD_CHAR_TO_FULL_LENGTH", "EMPTY_STRING_IS_NULL",
    "SIMULTANEOUS_ASSIGNMENT", "TIME_ROUND_FRACTIONAL",
)
_MYSQL_SQL_MODE_BITS = {32: "TIME_TRUNCATE_FRACTIONAL"}


def sql_mode_names(bits: int, mariadb: bool = True) -> str:
    """A binlog query event's sql_mode bits as ``SET sql_mode`` takes them (unknown bits left out)."""
    names = []
    for i, name in enumerate(_SQL_MODE_BITS):
        if bits >> i & 1:
            if not mariadb and (i in (4, 28) or 8 <= i <= 17 or i > 32):
                continue
            names.append(name if mariadb else _MYSQL_SQL_MODE_BITS.get(i, name))
    return ",".join(names)


class TransactionAssembler:
    """Feed binlog events in order; :meth:`feed` returns a ChangeEvent when a transaction completes."""

    def __init__(self, system_schemas: frozenset[str] = SYSTEM_SCHEMAS, *, mariadb: bool = True) -> None:
        self._system = system_schemas
        self._mariadb = mariadb
        self._open: _Open | None = None
        self.dropped_partial = 0

    @property
    def in_transaction(self) -> bool:
        return self._open is not None

    def feed(self, event: Any) -> ChangeEvent | None:
        kind = type(event).__name__
        if kind in _GTID_EVENTS:
            self._on_gtid(event)
            return None
        txn = self._open
        if txn is None:
            return None  # rotate/format/table-map, or the tail of a txn we did not see start
        if kind == "QueryEvent":
            return self._on_query(txn, event)
        if kind in ROW_EVENT_OPS:
            changes = row_changes(event)
            if changes and changes[0].db.lower() in self._system:  # (one rows event: one table)
                txn.skipped_rows += len(changes)
                return None
            if changes:
                txn.rows += changes
                if getattr(event, "flags", 0) & _NO_FOREIGN_KEY_CHECKS:
                    txn.no_fk_checks = True
                if txn.db is None:
                    txn.db = changes[0].db
                where = (changes[0].db, changes[0].table)
                if where not in txn.tables:
                    schema = table_schema(event)
                    if schema is not None:
                        txn.tables[where] = schema
            return None
        if kind == "XidEvent":
            return self._finish()
        return None

    def _on_gtid(self, event: Any) -> None:
        if self._open is not None:
            log.warning("binlog: GTID %s started before %s ended; dropping the partial transaction "
                        "(the server resends it)", event.gtid, self._open.gtid)
            self.dropped_partial += 1
        flags = getattr(event, "flags", None)
        in_begin = type(event).__name__ == "MariadbGtidEvent" and flags is not None and not flags & _FL_STANDALONE
        self._open = _Open(gtid=Gtid.parse(str(event.gtid)), ts_ms=int(event.timestamp) * 1000, in_begin=in_begin)
        return None

    def _on_query(self, txn: _Open, event: Any) -> ChangeEvent | None:
        sql = _text(event.query)
        verb = sql.strip().rstrip(";").strip().upper()
        schema = _text(getattr(event, "schema", b""))
        if verb == "BEGIN" or verb.startswith("XA START"):
            txn.in_begin = True
            return None
        if txn.in_begin:
            if verb in ("COMMIT", "ROLLBACK") or verb.startswith(("XA END", "XA COMMIT", "XA PREPARE")):
                return self._finish()
            if self._on_savepoint(txn, sql):
                return None
            if _keep_statement(sql, schema):
                txn.statements.append(_statement(sql, "other"))
                txn.db = txn.db or schema or None
            return None
        # A standalone statement (DDL, account management, ...) is a transaction of its own, applied in
        # the sql_mode and time zone it ran in (ANSI_QUOTES: MariaDB logs `DROP TABLE "t"` so)
        if _keep_statement(sql, schema):
            txn.statements.append(_statement(sql, "ddl"))
            txn.db = schema or None
            bits = getattr(event, "sql_mode", None)
            # its clock, as the primary's own replicas take it: the query's start (with its microseconds
            # when the statement used them: Q_HRNOW), for CURRENT_TIMESTAMP columns an ALTER TABLE fills
            ts = getattr(event, "timestamp", None)
            clock = int(ts) * 1_000_000 + (getattr(event, "hrnow", None) or 0) if isinstance(ts, int) else None
            if isinstance(bits, int):
                zone = getattr(event, "time_zone", None)
                txn.session = SessionContext(sql_mode=sql_mode_names(bits, self._mariadb),
                                             time_zone=_text(zone) if zone else "SYSTEM", timestamp_us=clock)
        return self._finish()

    @staticmethod
    def _on_savepoint(txn: _Open, sql: str) -> bool:
        """SAVEPOINT / ROLLBACK TO / RELEASE SAVEPOINT: act on the rows; True when ``sql`` was one."""
        m = _SAVEPOINT.match(sql)
        if m:
            txn.savepoints[_savepoint_name(m[1])] = (len(txn.rows), len(txn.statements), len(txn.tables))
            return True
        m = _ROLLBACK_TO.match(sql)
        if m:
            mark = txn.savepoints.get(_savepoint_name(m[1]))
            if mark is None:
                log.warning("binlog: GTID %s rolls back to savepoint %s that it never set; its rows are kept",
                            txn.gtid, m[1])
            else:
                del txn.rows[mark[0]:]
                del txn.statements[mark[1]:]
                for key in list(txn.tables)[mark[2]:]:
                    del txn.tables[key]
            return True
        m = _RELEASE.match(sql)
        if m:
            txn.savepoints.pop(_savepoint_name(m[1]), None)
            return True
        return False

    def _finish(self) -> ChangeEvent:
        txn = self._open
        assert txn is not None
        self._open = None
        return ChangeEvent(gtid=txn.gtid, source="binlog", ts_ms=txn.ts_ms, db=txn.db,
                           rows=tuple(txn.rows), statements=tuple(txn.statements), tables=tuple(txn.tables.values()),
                           session=txn.session, no_fk_checks=txn.no_fk_checks)
