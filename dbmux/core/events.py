"""The change event: one committed source transaction, the contract between every producer and consumer.

Frozen dataclasses that check their own invariants: a :class:`ChangeEvent` carries the ingress form (its
:class:`Statement` list and the :class:`SessionContext` they ran in) and/or the binlog row form (its
:class:`RowChange` list). The wire format is :mod:`dbmux.core.codec`; the Kafka topic and message key
are :mod:`dbmux.core.topics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dbmux.core.charsets import bytes_fields, is_utf8_charset, sql_text, statement_fields
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

    ``charset`` is the session's ``character_set_client`` the statement was sent in (None: unknown, as
    in envelope v1 events; appliers then use utf8mb4). The statement's exact bytes are :attr:`data`:
    ``raw`` when set, else ``sql.encode("utf-8")`` (:mod:`dbmux.core.charsets`). With ``raw`` set,
    ``sql`` is only the text those bytes stand for (:func:`~dbmux.core.charsets.sql_text`): build such
    a statement with :meth:`from_bytes`, and re-derive both when changing the text.
    """

    sql: str
    params: tuple[Any, ...] | None = None
    insert_id: int = 0
    last_insert_id: int = 0
    unsafe: bool = False
    kind: str = "dml"
    charset: str | None = None
    raw: bytes | None = None

    def __post_init__(self) -> None:
        if self.kind not in STATEMENT_KINDS:
            raise EnvelopeError(f"statement kind must be one of {sorted(STATEMENT_KINDS)}, got {self.kind!r}")
        if isinstance(self.params, list):
            object.__setattr__(self, "params", tuple(self.params))
        if self.raw is not None:
            if type(self.raw) is not bytes:
                object.__setattr__(self, "raw", bytes(self.raw))
            if self.sql != sql_text(self.raw, self.charset):
                raise EnvelopeError("a statement given as bytes has the text of its bytes as sql "
                                    "(build it with Statement.from_bytes)")
        elif not self.sql.isascii() and not is_utf8_charset(self.charset):  # (isascii: O(1), usually true)
            raise EnvelopeError(f"a statement in character set {self.charset} with non-ASCII text needs its "
                                "bytes (build it with Statement.from_bytes)")

    @classmethod
    def from_bytes(cls, data: bytes, charset: str | None, **fields: Any) -> Statement:
        """The statement whose exact bytes are ``data`` in ``charset`` (``fields``: the others)."""
        sql, raw = bytes_fields(data, charset)
        return cls(sql, charset=charset, **fields) if raw is None else cls.from_raw(raw, charset, **fields)

    @classmethod
    def from_escaped(cls, escaped: str, charset: str | None, **fields: Any) -> Statement:
        """:meth:`from_bytes` of ``escaped.encode("utf-8", "surrogateescape")`` (how the ingress holds
        what a client sent; :func:`~dbmux.core.charsets.statement_fields`)."""
        sql, raw = statement_fields(escaped, charset)
        return cls(sql, charset=charset, **fields) if raw is None else cls.from_raw(raw, charset, **fields)

    @classmethod
    def from_raw(cls, raw: bytes, charset: str | None, **fields: Any) -> Statement:
        """The statement given as ``raw`` bytes in ``charset``, its ``sql`` derived from them once (a
        big statement's text is not decoded a second time to be checked)."""
        st = cls("", charset=charset, **fields)  # (checks the other fields)
        data = bytes(raw)
        object.__setattr__(st, "raw", data)
        object.__setattr__(st, "sql", sql_text(data, charset))
        return st

    @property
    def data(self) -> bytes:
        """The statement's exact bytes, in :attr:`charset`."""
        return self.raw if self.raw is not None else self.sql.encode("utf-8")

    @property
    def is_utf8(self) -> bool:
        """Does the statement say what its UTF-8 text and parameters say? True when :attr:`sql` is its
        bytes (UTF-8 text, or ASCII) and no string parameter is text in another character set (bound
        bytes beyond ASCII with a :attr:`charset` that is not UTF-8). False: only its bytes, read in its
        character set, say what it writes -- MySQL targets apply them so; targets that read text as
        UTF-8 (PostgreSQL) or route by its values (shards) take the row form."""
        if self.raw is not None:
            return False
        if self.params is None or is_utf8_charset(self.charset):
            return True
        return not any(isinstance(p, (bytes, bytearray, memoryview)) and not bytes(p).isascii() for p in self.params)


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
