"""The change event: one committed source transaction, the contract between every producer and consumer.

Frozen dataclasses that check their own invariants: a :class:`ChangeEvent` carries the ingress form (its
:class:`Statement` list and the :class:`SessionContext` they ran in) and/or the binlog row form (its
:class:`RowChange` list). The wire format is :mod:`dbmux.core.codec`; the Kafka topic and message key
are :mod:`dbmux.core.topics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dbmux.core.errors import DbmuxError
from dbmux.core.gtid import Gtid

__all__ = [
    "EnvelopeError",
    "SessionContext",
    "Statement",
    "RowChange",
    "ChangeEvent",
    "STATEMENT_KINDS",
    "SOURCES",
    "ROW_OPS",
]

STATEMENT_KINDS = frozenset({"dml", "ddl", "other"})
SOURCES = frozenset({"ingress", "binlog"})
ROW_OPS = frozenset({"insert", "update", "delete"})


class EnvelopeError(DbmuxError, ValueError):
    """A change event could not be encoded or decoded; the message says which field and why."""


# --------------------------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class SessionContext:
    """The client session a statement ran in (ingress events only)."""

    user: str | None = None
    client_addr: str | None = None
    connection_id: int | None = None
    db: str | None = None
    sql_mode: str | None = None
    time_zone: str | None = None
    charset: str | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of an ingress transaction, after deterministic rewriting.

    ``params`` are the bound values of a prepared statement (``None`` for text queries). ``insert_id``
    is the first auto-increment id the statement generated (the OK packet's last_insert_id), so an
    applier can ``SET INSERT_ID=...`` first; ``last_insert_id`` is the session's LAST_INSERT_ID() before
    the statement ran, for statements that call it.
    """

    sql: str
    params: tuple[Any, ...] | None = None
    insert_id: int = 0
    last_insert_id: int = 0
    unsafe: bool = False
    kind: str = "dml"

    def __post_init__(self) -> None:
        if self.kind not in STATEMENT_KINDS:
            raise EnvelopeError(f"statement kind must be one of {sorted(STATEMENT_KINDS)}, got {self.kind!r}")
        if isinstance(self.params, list):
            object.__setattr__(self, "params", tuple(self.params))


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row image change from the binlog. ``before``/``after`` are keyed by column name."""

    table: str
    db: str
    op: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.op not in ROW_OPS:
            raise EnvelopeError(f"row op must be one of {sorted(ROW_OPS)}, got {self.op!r}")
        if self.op in ("update", "delete") and self.before is None:
            raise EnvelopeError(f"{self.op} row change on {self.db}.{self.table} needs a before image")
        if self.op in ("insert", "update") and self.after is None:
            raise EnvelopeError(f"{self.op} row change on {self.db}.{self.table} needs an after image")


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One committed source transaction."""

    gtid: Gtid
    source: str
    ts_ms: int
    db: str | None = None
    statements: tuple[Statement, ...] = ()
    rows: tuple[RowChange, ...] = ()
    session: SessionContext | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise EnvelopeError(f"event source must be one of {sorted(SOURCES)}, got {self.source!r}")
        if not isinstance(self.gtid, Gtid):
            raise EnvelopeError(f"event gtid must be a Gtid, got {type(self.gtid).__name__}")
        if isinstance(self.statements, list):
            object.__setattr__(self, "statements", tuple(self.statements))
        if isinstance(self.rows, list):
            object.__setattr__(self, "rows", tuple(self.rows))

    @property
    def unsafe(self) -> bool:
        """True when any statement stayed non-deterministic (targets should apply the row form)."""
        return any(s.unsafe for s in self.statements)

    @property
    def has_ddl(self) -> bool:
        """True when any statement is DDL (it commits implicitly in MySQL, changes the schema)."""
        return any(s.kind == "ddl" for s in self.statements)
