"""Statement shapes for shard routing (pure data): what one statement's text says, independent of values,
the shard map and the schema. :mod:`replicator.shard_analysis` makes them, :mod:`replicator.shard_statements`
routes them. Values in a shape (VALUES items, WHERE pins) are *specs*: :class:`Slot` (a value of the
statement's :mod:`~replicator.shard_skeleton`), :class:`Const`, :data:`DEFAULT` or :data:`EXPR`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT", "EXPR", "Const", "Ddl", "Dml", "NeedRows", "Opaque", "SessionStatement", "Shape", "Skip",
           "Slot", "TableName"]

TableName = tuple[str | None, str]  # (db or None, table), lower case


@dataclass(frozen=True, slots=True)
class NeedRows:
    """The statement needs the row form (``reason``: why)."""

    reason: str


@dataclass(frozen=True, slots=True)
class SessionStatement:
    """A session statement (SET, USE); ``use_db``: the database a USE selects."""

    use_db: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """A statement no shard applies (BEGIN/COMMIT: the applier owns transactions)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Ddl:
    """DDL on the tables named (``every_shard``: on a database)."""

    tables: tuple[TableName, ...] = ()
    every_shard: bool = False
    create_pk: tuple[str, ...] | None = None  # CREATE TABLE: the primary key it declares
    pk_from: tuple[TableName | None, ...] = ()  # per table: whose primary key a new name takes (LIKE, RENAME)
    items: tuple[tuple[int, int, tuple[int, ...]], ...] = ()  # DROP/RENAME lists: (start, end, table indexes)
    drop: bool = False  # DROP TABLE: every shard that has the tables, IF EXISTS


@dataclass(frozen=True, slots=True)
class Slot:
    """The value in skeleton slot ``index`` (``negate``: its negation)."""

    index: int
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Const:
    """A literal value the parser kept in the text."""

    value: Any


class Opaque:
    """A value that is not a literal (expression, DEFAULT)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


EXPR = Opaque("expression")
DEFAULT = Opaque("DEFAULT")


@dataclass(frozen=True, slots=True)
class Dml:
    """INSERT/REPLACE, UPDATE or DELETE on one target ``table``; values are specs."""

    verb: str  # insert | update | delete
    table: TableName
    alias: str
    written: tuple[TableName, ...]
    read: tuple[TableName, ...]
    compound: str  # why the statement reads more than its own rows ("" if it does not)
    columns: tuple[str, ...] | None = None
    rows: tuple[tuple[Any, ...], ...] = ()
    assigned: frozenset[str] = frozenset()  # UPDATE SET / ON DUPLICATE KEY UPDATE columns
    odku: bool = False
    pins: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # WHERE conjuncts column = value(s)
    order_limit: bool = False
    assigns_variables: bool = False  # @v := ... evaluated row by row


Shape = NeedRows | SessionStatement | Skip | Ddl | Dml
