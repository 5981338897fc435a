"""Binlog events → change events (pure; no I/O, no threads).

:class:`TransactionAssembler` is fed the events python-mysql-replication yields, in binlog order, and
returns one :class:`~dbmux.envelope.ChangeEvent` (``source="binlog"``) per committed transaction:

====================  =======================================  ===================================
state                 event                                    effect
====================  =======================================  ===================================
idle                  GTID (MariaDB or MySQL)                  open a transaction
idle                  anything else                            ignored (stream resumed mid-txn)
open                  QueryEvent ``BEGIN``                     explicit transaction: wait for end
open (not in BEGIN)   any other QueryEvent                     a standalone statement (DDL, GRANT,
                                                               ...): kept as ``kind="ddl"``; *done*
open (in BEGIN)       Write/Update/DeleteRowsEvent             one RowChange per row
open (in BEGIN)       XidEvent / QueryEvent ``COMMIT``         *done*
open (in BEGIN)       QueryEvent ``ROLLBACK``                  *done* (non-transactional changes
                                                               that stayed; the GTID is consumed)
open (in BEGIN)       other QueryEvent (``SAVEPOINT`` ...)     savepoints dropped, others ``other``
open                  GTID                                     the partial one is dropped (the
                                                               server resent it after a reconnect)
====================  =======================================  ===================================

Every committed GTID produces an event, even when nothing of it is replicated: changes to system
schemas (:data:`SYSTEM_SCHEMAS`) are left out, so such a transaction is an *empty* event that only
advances the GTID (targets need every GTID to close gaps).

Events are dispatched on their class name (``MariadbGtidEvent``, ``QueryEvent``, ...), so tests feed
small stand-in objects with the same attributes as the library's events.

Values: row images are keyed by column name (the primary runs ``binlog_row_metadata=FULL``). The
library's Python values pass through unchanged except: ``set`` (SET columns) → comma-joined ``str``
in definition order; an empty SET (the library reports ``None`` with none-source ``"empty set"``)
→ ``""``; ``dict``/``list`` (MySQL JSON) → compact JSON text; BIT (the library gives a ``'0101'``
string) → ``int``.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from dbmux.envelope import ChangeEvent, RowChange, Statement
from dbmux.gtid import Gtid

log = logging.getLogger(__name__)

__all__ = ["SYSTEM_SCHEMAS", "TransactionAssembler", "convert_value", "row_changes"]

SYSTEM_SCHEMAS = frozenset({"mysql", "dbmux_meta", "information_schema", "performance_schema", "sys"})

_ROW_OPS = {"WriteRowsEvent": "insert", "UpdateRowsEvent": "update", "DeleteRowsEvent": "delete"}
_GTID_EVENTS = frozenset({"MariadbGtidEvent", "GtidEvent"})
_FIELD_BIT = 16  # pymysqlreplication.constants.FIELD_TYPE.BIT
_FIELD_SET = 248  # FIELD_TYPE.SET
_EMPTY_SET = "empty set"  # pymysqlreplication.constants.NONE_SOURCE.EMPTY_SET
_ACCOUNT_STMT = re.compile(r"\s*(CREATE|ALTER|DROP|RENAME)\s+(USER|ROLE)\b|\s*(GRANT|REVOKE|SET\s+PASSWORD)\b",
                           re.IGNORECASE)
_SYSTEM_REF = re.compile(r"(?<![\w$])`?(mysql|dbmux_meta|performance_schema|sys)`?\s*\.", re.IGNORECASE)
_SAVEPOINT = re.compile(r"\s*(SAVEPOINT|ROLLBACK\s+TO|RELEASE\s+SAVEPOINT)\b", re.IGNORECASE)


# --------------------------------------------------------------------------------------------- values


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    raise TypeError(f"unsupported JSON value {type(value).__name__}")


def _json_keys(value: Any) -> Any:
    """orjson needs str keys; the library's JSON decoder may give bytes."""
    if isinstance(value, dict):
        return {(k.decode("utf-8", "replace") if isinstance(k, (bytes, bytearray)) else str(k)): _json_keys(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_json_keys(v) for v in value]
    return value


def convert_value(value: Any, column: Any = None, none_source: str | None = None) -> Any:
    """One column value from the library → a value the envelope accepts (see the module docstring)."""
    col_type = getattr(column, "type", None)
    if value is None:
        return "" if none_source == _EMPTY_SET and col_type in (None, _FIELD_SET) else None
    if isinstance(value, (set, frozenset)):
        order = list(getattr(column, "set_values", None) or ())
        members = [v for v in order if v in value] + sorted(str(v) for v in value if v not in order)
        return ",".join(members)
    if isinstance(value, (dict, list)):
        return orjson.dumps(_json_keys(value), default=_json_default).decode()
    if col_type == _FIELD_BIT and isinstance(value, str):
        return int(value, 2) if value else 0
    return value


# Exact types convert_value returns unchanged whatever the column (str may be BIT, None an empty SET).
_PASS_THROUGH = frozenset({int, float, bool, bytes, decimal.Decimal, datetime.datetime, datetime.date,
                           datetime.time, datetime.timedelta})


def _image(values: dict[str, Any], columns: dict[str, Any], none_sources: dict[str, str]) -> dict[str, Any]:
    out = {}
    for name, v in values.items():
        out[name] = v if type(v) in _PASS_THROUGH else convert_value(v, columns.get(name), none_sources.get(name))
    return out


def row_changes(event: Any) -> list[RowChange]:
    """The RowChanges of one Write/Update/DeleteRowsEvent (library object or stand-in)."""
    op = _ROW_OPS[type(event).__name__]
    db, table = event.schema, event.table
    columns = {getattr(c, "name", None): c for c in (getattr(event, "columns", None) or ())}
    out = []
    for row in event.rows:
        if op == "update":
            before = _image(row["before_values"], columns, row.get("before_none_sources") or {})
            after = _image(row["after_values"], columns, row.get("after_none_sources") or {})
        else:
            image = _image(row["values"], columns, row.get("none_sources") or {})
            before, after = (None, image) if op == "insert" else (image, None)
        out.append(RowChange(table=table, db=db, op=op, before=before, after=after))
    return out


# --------------------------------------------------------------------------------------------- grouping


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


@dataclass
class _Open:
    gtid: Gtid
    ts_ms: int
    in_begin: bool = False
    db: str | None = None
    rows: list[RowChange] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    skipped_rows: int = 0


class TransactionAssembler:
    """Feed binlog events in order; :meth:`feed` returns a ChangeEvent when a transaction completes."""

    def __init__(self, system_schemas: frozenset[str] = SYSTEM_SCHEMAS) -> None:
        self._system = system_schemas
        self._open: _Open | None = None
        self.dropped_partial = 0

    @property
    def in_transaction(self) -> bool:
        return self._open is not None

    def feed(self, event: Any) -> ChangeEvent | None:
        kind = type(event).__name__
        if kind in _GTID_EVENTS:
            return self._on_gtid(event)
        txn = self._open
        if txn is None:
            return None  # rotate/format/table-map, or the tail of a txn we did not see start
        if kind == "QueryEvent":
            return self._on_query(txn, event)
        if kind in _ROW_OPS:
            for rc in row_changes(event):
                if rc.db.lower() in self._system:
                    txn.skipped_rows += 1
                    continue
                txn.rows.append(rc)
                if txn.db is None:
                    txn.db = rc.db
            return None
        if kind == "XidEvent":
            return self._finish()
        return None

    def _on_gtid(self, event: Any) -> None:
        if self._open is not None:
            log.warning("binlog: GTID %s started before %s ended; dropping the partial transaction "
                        "(the server resends it)", event.gtid, self._open.gtid)
            self.dropped_partial += 1
        self._open = _Open(gtid=Gtid.parse(str(event.gtid)), ts_ms=int(event.timestamp) * 1000)
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
            if _SAVEPOINT.match(sql):
                return None
            if _keep_statement(sql, schema):
                txn.statements.append(Statement(sql=sql, kind="other"))
                txn.db = txn.db or schema or None
            return None
        # A standalone statement (DDL, account management, ...) is a transaction of its own.
        if _keep_statement(sql, schema):
            txn.statements.append(Statement(sql=sql, kind="ddl"))
            txn.db = schema or None
        return self._finish()

    def _finish(self) -> ChangeEvent:
        txn = self._open
        assert txn is not None
        self._open = None
        return ChangeEvent(gtid=txn.gtid, source="binlog", ts_ms=txn.ts_ms, db=txn.db,
                           rows=tuple(txn.rows), statements=tuple(txn.statements))
