"""What the translators and routers know about the *source* tables (pure): :class:`SchemaInfo` (the
translator's questions), :class:`TableInfo` (one table) and :class:`StaticSchema` (a dict of them, as
:func:`replicator.source_schema.load_source_schema` reads it from the primary). Re-exported by
:mod:`replicator.pg_sql`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["SchemaInfo", "TableInfo", "StaticSchema"]


class SchemaInfo(Protocol):
    """What the translator needs to know about source tables (``db``/``table`` lowercased).

    Each method returns ``None`` when the table is unknown.
    """

    def primary_key(self, db: str, table: str) -> tuple[str, ...] | None: ...

    def columns(self, db: str, table: str) -> tuple[str, ...] | None: ...

    def auto_increment_column(self, db: str, table: str) -> str | None: ...

    def time_default_columns(self, db: str, table: str) -> frozenset[str]: ...

    def on_update_columns(self, db: str, table: str) -> frozenset[str]: ...

    def retyped_columns(self, db: str, table: str) -> Mapping[str, tuple[str, tuple[str, ...]]]: ...

    def has_triggers(self, db: str, table: str) -> bool: ...

    def needs_rows(self, db: str, table: str) -> str | None: ...


@dataclass(frozen=True)
class TableInfo:
    primary_key: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    auto_increment: str | None = None
    time_defaults: frozenset[str] = frozenset()
    on_update: frozenset[str] = frozenset()
    utc_columns: frozenset[str] = frozenset()  # MySQL TIMESTAMP columns (stored in UTC, shown in the session's zone)
    # column -> (MySQL DATA_TYPE, ENUM/SET values) for the types PostgreSQL holds differently (pg_types.RETYPED)
    retyped: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict, hash=False)
    triggers: bool = False  # the source table has triggers
    bits: Mapping[str, int] = field(default_factory=dict, hash=False)  # BIT(n) column -> n
    uuids: frozenset[str] = frozenset()  # MariaDB UUID columns (a shard key of them hashes their text form)
    generated: frozenset[str] = frozenset()  # generated (VIRTUAL/STORED) columns: plain columns on PostgreSQL


@dataclass
class StaticSchema:
    """A dict-backed :class:`SchemaInfo`: ``{(db, table): TableInfo}``; ``system_time_zone``: the
    source's @@system_time_zone (what a session's ``SYSTEM`` time zone is)."""

    tables: Mapping[tuple[str, str], TableInfo] = field(default_factory=dict)
    system_time_zone: str = "UTC"
    # statements are judged against it (needs_rows says which take the row form); False: statements
    # already released in their statement form are translated as they are, whatever the schema says now
    judging: bool = True

    def _get(self, db: str, table: str) -> TableInfo | None:
        return self.tables.get((db, table))

    def primary_key(self, db: str, table: str) -> tuple[str, ...] | None:
        t = self._get(db, table)
        return t.primary_key or None if t else None

    def columns(self, db: str, table: str) -> tuple[str, ...] | None:
        t = self._get(db, table)
        return t.columns or None if t else None

    def auto_increment_column(self, db: str, table: str) -> str | None:
        t = self._get(db, table)
        return t.auto_increment if t else None

    def time_default_columns(self, db: str, table: str) -> frozenset[str]:
        t = self._get(db, table)
        return t.time_defaults if t else frozenset()

    def on_update_columns(self, db: str, table: str) -> frozenset[str]:
        t = self._get(db, table)
        return t.on_update if t else frozenset()

    def retyped_columns(self, db: str, table: str) -> Mapping[str, tuple[str, tuple[str, ...]]]:
        t = self._get(db, table)
        return t.retyped if t else {}

    def has_triggers(self, db: str, table: str) -> bool:
        t = self._get(db, table)
        return t.triggers if t else False

    def needs_rows(self, db: str, table: str) -> str | None:
        """Why a statement writing the table is applied to PostgreSQL from its row form (None: it need not,
        or the schema is not :attr:`judging`)."""
        if not self.judging:
            return None
        t = self._get(db, table)
        if t is None or not t.columns:
            return "is not in the source schema (dropped since: its types are in the row form)"
        if t.triggers:
            return "has triggers on the source (their changes are in the row form)"
        if t.generated:
            return f"has generated column {sorted(t.generated)[0]} (plain on PostgreSQL: its values are in the rows)"
        return None


GONE_MAX = 10_000


def remember_gone(gone: dict[tuple[str, str], TableInfo], before: Mapping[tuple[str, str], TableInfo],
                  after: Mapping[tuple[str, str], TableInfo], limit: int = GONE_MAX) -> None:
    """Keep in ``gone`` the tables ``before`` knew (a schema, and tables DDL consumed since creates) that a
    reloaded schema ``after`` lacks -- dropped on the primary meanwhile -- for statements judged while
    they existed and applied after the reload; the oldest first out beyond ``limit``. A table ``after``
    has is not gone."""
    for k, info in before.items():
        if k not in after:
            gone.pop(k, None)
            gone[k] = info
    for k in after:
        gone.pop(k, None)
    while len(gone) > limit:
        del gone[next(iter(gone))]

