"""The change event: one committed source transaction, the contract between every producer and consumer.

Frozen dataclasses that check their own invariants: a :class:`ChangeEvent` carries the ingress form (its
:class:`Statement` list and the :class:`SessionContext` they ran in) and/or the binlog row form (its
:class:`RowChange` list, and the :class:`TableSchema` of each table its rows change: column names and
:class:`ColumnType` as the binlog table map described them at that GTID). The wire format is
:mod:`dbmux.core.codec`; the Kafka topic and message key are :mod:`dbmux.core.topics`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from dbmux.core.charsets import bytes_fields, is_utf8_charset, sql_text, statement_fields
from dbmux.core.errors import DbmuxError
from dbmux.core.gtid import Gtid

__all__ = [
    "EnvelopeError",
    "SessionContext",
    "Statement",
    "RowChange",
    "ColumnType",
    "TableSchema",
    "ChangeEvent",
    "SnapshotPart",
    "STATEMENT_KINDS",
    "SOURCES",
    "ROW_OPS",
]

STATEMENT_KINDS = frozenset({"dml", "ddl", "other"})
SOURCES = frozenset({"ingress", "binlog", "snapshot"})
SNAPSHOT_PARTS = ("begin", "rows", "end")
ROW_OPS = frozenset({"insert", "update", "delete"})


class EnvelopeError(DbmuxError, ValueError):
    """A change event could not be encoded or decoded; the message says which field and why."""


# --------------------------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class SessionContext:
    """The client session a statement ran in (ingress events; for a binlog event of one standalone
    statement, DDL and the like, the sql_mode and time zone it ran in)."""

    user: str | None = None
    client_addr: str | None = None
    connection_id: int | None = None
    db: str | None = None
    sql_mode: str | None = None
    time_zone: str | None = None
    charset: str | None = None
    # the primary's clock for the statement, microseconds since the epoch (binlog events of standalone
    # statements: an ALTER TABLE adding a CURRENT_TIMESTAMP column fills existing rows with it)
    timestamp_us: int | None = None


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


_INTEGER_KINDS = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
_BINARY_KINDS = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry"})
_TEMPORAL_KINDS = frozenset({"time", "datetime", "timestamp"})
_TYPE_TEXT = re.compile(r"([a-z][a-z0-9_]*)(?:\((.*)\))?( unsigned)?(?: charset ([A-Za-z0-9_]+))?", re.DOTALL)
_QUOTED = re.compile(r"'((?:[^']|'')*)'")
_DIGITS = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True, slots=True)
class ColumnType:
    """A column's MySQL type as a row event carries it (from the binlog table map, at that GTID).

    ``kind``: the MySQL type name, lowercase: ``tinyint smallint mediumint int bigint float double
    decimal year date time datetime timestamp bit enum set json geometry char varchar binary varbinary
    tinytext text mediumtext longtext tinyblob blob mediumblob longblob`` (the table map tells CHAR from
    BINARY, TEXT from BLOB by the column's character set; MariaDB's JSON is ``longtext``); an unknown
    type is ``type<code>``. ``charset``: the character set of text columns (None when not text or not
    known); ``width``: BIT(n)'s n; ``precision``/``scale``: DECIMAL's; ``fsp``: the fractional seconds
    of TIME, DATETIME and TIMESTAMP; ``values``: an ENUM's or SET's. String lengths are not carried
    (the table map has bytes, not characters; values are typed without them).

    :attr:`text` is the compact form the envelope carries (:meth:`parse` reads it back):
    ``kind[(args)][ unsigned][ charset NAME]``, e.g. ``int unsigned``, ``decimal(10,2)``,
    ``datetime(6)``, ``bit(8)``, ``enum('a','it''s')``, ``varchar charset utf8mb4``, ``longblob``.
    """

    kind: str
    unsigned: bool = False
    charset: str | None = None
    width: int | None = None
    precision: int | None = None
    scale: int | None = None
    fsp: int = 0
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.values, list):
            object.__setattr__(self, "values", tuple(self.values))
        if _parse_type(self.text) != self:  # (cached)
            raise EnvelopeError(f"column type {self!r} cannot be written as its text form")

    @property
    def text(self) -> str:
        """The compact text form (see the class docstring)."""
        args = ""
        if self.kind == "decimal" and self.precision is not None:
            args = f"({self.precision},{self.scale or 0})"
        elif self.kind == "bit" and self.width is not None:
            args = f"({self.width})"
        elif self.kind in _TEMPORAL_KINDS and self.fsp:
            args = f"({self.fsp})"
        elif self.kind in ("enum", "set"):
            args = "(" + ",".join("'" + v.replace("'", "''") + "'" for v in self.values) + ")"
        return (self.kind + args + (" unsigned" if self.unsigned else "")
                + (f" charset {self.charset}" if self.charset is not None else ""))

    @property
    def is_binary(self) -> bool:
        """Bytes, not text (BINARY, VARBINARY, the BLOBs, GEOMETRY)."""
        return self.kind in _BINARY_KINDS

    @property
    def is_integer(self) -> bool:
        return self.kind in _INTEGER_KINDS

    @staticmethod
    def parse(text: str) -> ColumnType:
        """The type whose :attr:`text` is ``text``; :class:`EnvelopeError` when it is none."""
        if type(text) is not str:
            raise EnvelopeError(f"column type must be a string, got {type(text).__name__}")
        return _parse_type(text)


def _numbers(args: str, n: int) -> list[int]:
    parts = args.split(",")
    if len(parts) != n or not all(_DIGITS.fullmatch(p) for p in parts):
        raise ValueError(f"expected {n} unsigned number{'s' if n > 1 else ''}")
    return [int(p) for p in parts]


@lru_cache(maxsize=4096)
def _parse_type(text: str) -> ColumnType:
    """ColumnType.parse (cached: every event of a table carries the same texts)."""
    m = _TYPE_TEXT.fullmatch(text)
    if m is None:
        raise EnvelopeError(f"column type {text!r}: expected 'kind[(args)][ unsigned][ charset NAME]'")
    kind, args, unsigned, charset = m[1], m[2], bool(m[3]), m[4]
    fields: dict[str, Any] = {}
    try:
        if args is None:
            pass
        elif kind == "decimal":
            p, s = _numbers(args, 2)
            fields.update(precision=p, scale=s)
        elif kind == "bit":
            (fields["width"],) = _numbers(args, 1)
        elif kind in _TEMPORAL_KINDS:
            (fields["fsp"],) = _numbers(args, 1)
        elif kind in ("enum", "set"):
            values = [v.replace("''", "'") for v in _QUOTED.findall(args)]
            if args != ",".join("'" + v.replace("'", "''") + "'" for v in values):
                raise ValueError("not a list of quoted values")
            fields["values"] = tuple(values)
        else:
            raise ValueError(f"{kind} takes no arguments")
    except ValueError as e:
        raise EnvelopeError(f"column type {text!r}: bad arguments ({e})") from None
    out = object.__new__(ColumnType)  # (its fields are checked here: skips __post_init__'s check)
    for name, value in (("kind", kind), ("unsigned", unsigned), ("charset", charset), ("width", None),
                        ("precision", None), ("scale", None), ("fsp", 0), ("values", ())):
        object.__setattr__(out, name, fields.get(name, value))
    if out.text != text:  # one text per type (e.g. no "time(0)", no "decimal(05,2)")
        raise EnvelopeError(f"column type {text!r}: not in its canonical form {out.text!r}")
    return out


@dataclass(frozen=True, slots=True)
class TableSchema:
    """A table as a row event carries it: its columns' names and types in table order, at that GTID.

    ``primary_key``: the primary key's columns (``()``: the table has none), or None when the producer
    could not tell (consumers then take the key from the source's schema).
    """

    db: str
    table: str
    columns: tuple[str, ...]
    types: tuple[ColumnType, ...]
    primary_key: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("columns", "types", "primary_key"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.columns) != len(self.types):
            raise EnvelopeError(f"table {self.db}.{self.table}: {len(self.columns)} columns but "
                                f"{len(self.types)} types")
        if not all(type(t) is ColumnType for t in self.types):
            raise EnvelopeError(f"table {self.db}.{self.table}: types must be ColumnType")
        if self.primary_key is not None and not set(self.primary_key) <= set(self.columns):
            raise EnvelopeError(f"table {self.db}.{self.table}: primary key {list(self.primary_key)} names a "
                                "column it does not have")

    def type_of(self, column: str) -> ColumnType | None:
        """The type of ``column`` (None: no such column)."""
        try:
            return self.types[self.columns.index(column)]
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class SnapshotPart:
    """What a ``snapshot`` event is: one message of ``dbmux snapshot``'s copy of one table.

    A table's snapshot is ``begin`` (its ``create_sql`` and ``primary_key``), ``rows`` messages (the
    event's rows, all ``insert``), and ``end`` (``rows_total``: how many rows the rows messages carry);
    ``chunk`` numbers them 0, 1, ... All of them share ``id`` (one table of one run) and ``position``:
    the GTID position (every domain, :func:`~dbmux.core.gtid.parse_gtid_list` text) the copy reflects
    exactly. A snapshot without its ``end`` is incomplete (the run was interrupted) and counts for nothing.
    """

    id: str
    table: str  # "db.table"
    part: str
    position: str
    chunk: int = 0
    create_sql: str | None = None
    primary_key: tuple[str, ...] = ()
    rows_total: int | None = None

    def __post_init__(self) -> None:
        if self.part not in SNAPSHOT_PARTS:
            raise EnvelopeError(f"snapshot part must be one of {list(SNAPSHOT_PARTS)}, got {self.part!r}")
        if "." not in self.table:
            raise EnvelopeError(f"snapshot table must be db.table, got {self.table!r}")
        if isinstance(self.primary_key, list):
            object.__setattr__(self, "primary_key", tuple(self.primary_key))
        if self.part == "begin" and self.create_sql is None:
            raise EnvelopeError(f"snapshot {self.id} of {self.table}: its begin carries the table's definition")
        if self.part == "end" and self.rows_total is None:
            raise EnvelopeError(f"snapshot {self.id} of {self.table}: its end carries the row count")


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One committed source transaction. ``tables``: the schema of the tables its rows change, one
    entry per table (binlog events; empty for statement-only events, and in events written before)."""

    gtid: Gtid
    source: str
    ts_ms: int
    db: str | None = None
    statements: tuple[Statement, ...] = ()
    rows: tuple[RowChange, ...] = ()
    session: SessionContext | None = None
    tables: tuple[TableSchema, ...] = ()
    # the primary ran (some of) its row changes with foreign_key_checks = 0 (the binlog rows events'
    # NO_FOREIGN_KEY_CHECKS flag: a dump loaded children first, an ORM emptying self-referencing tables)
    no_fk_checks: bool = False
    # source "snapshot" only: which part of which table's snapshot this is (``dbmux snapshot``)
    snapshot: SnapshotPart | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise EnvelopeError(f"event source must be one of {sorted(SOURCES)}, got {self.source!r}")
        if (self.source == "snapshot") != (self.snapshot is not None):
            raise EnvelopeError("a snapshot event (and only one) carries its snapshot part")
        if not isinstance(self.gtid, Gtid):
            raise EnvelopeError(f"event gtid must be a Gtid, got {type(self.gtid).__name__}")
        if isinstance(self.statements, list):
            object.__setattr__(self, "statements", tuple(self.statements))
        if isinstance(self.rows, list):
            object.__setattr__(self, "rows", tuple(self.rows))
        if isinstance(self.tables, list):
            object.__setattr__(self, "tables", tuple(self.tables))

    def table_schema(self, db: str, table: str) -> TableSchema | None:
        """The schema the event carries for ``db.table`` (None: it carries none)."""
        for ts in self.tables:
            if ts.table == table and ts.db == db:
                return ts
        return None

    @property
    def unsafe(self) -> bool:
        """True when any statement stayed non-deterministic (targets should apply the row form)."""
        return any(s.unsafe for s in self.statements)

    @property
    def has_ddl(self) -> bool:
        """True when any statement is DDL (it commits implicitly in MySQL, changes the schema)."""
        return any(s.kind == "ddl" for s in self.statements)
