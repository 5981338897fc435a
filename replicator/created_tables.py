"""What the source schema will say about a table a plain ``CREATE TABLE`` creates, before it is reloaded
(pure): the PostgreSQL applier judges statements right behind such DDL by it
(:meth:`replicator.pg_applier.PostgresApplier.needs_row_form`)."""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from dbmux.replicator.pg_ddl import _generated, _name, _table_ref, parseable_ddl
from dbmux.replicator.pg_types import Untranslatable

__all__ = ["created_table"]

_T = exp.DataType.Type
_RETYPED_NAMES = {_T.BLOB: "blob", _T.TINYBLOB: "tinyblob", _T.MEDIUMBLOB: "mediumblob", _T.LONGBLOB: "longblob",
                  _T.BINARY: "binary", _T.VARBINARY: "varbinary", _T.BIT: "bit", _T.JSON: "json", _T.ENUM: "enum",
                  _T.SET: "set", _T.YEAR: "year", _T.GEOMETRY: "geometry",
                  _T.TIME: "time"}  # as information_schema's DATA_TYPE
_CREATE_TABLE = re.compile(r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\b", re.IGNORECASE)


def created_table(sql: str, default_db: str | None) -> tuple[tuple[str, str], dict] | None:
    """``((db, table), fields)`` of the table a plain CREATE TABLE statement creates: what the source schema
    will say about it once reloaded (``fields``: :class:`replicator.pg_sql.TableInfo`'s keyword arguments);
    None for anything else (LIKE, ... SELECT, unparseable)."""
    if not _CREATE_TABLE.match(sql):
        return None
    try:
        node = sqlglot.parse_one(parseable_ddl(sql), read="mysql", error_level=ErrorLevel.RAISE)
        if not (isinstance(node, exp.Create) and (node.args.get("kind") or "").upper() == "TABLE"
                and isinstance(node.this, exp.Schema) and node.args.get("expression") is None):
            return None
        name = _table_ref(node.this.this, default_db, sql)
    except (SqlglotError, Untranslatable):
        return None
    columns: list[str] = []
    pk: list[str] = []
    fields: dict = {"auto_increment": None, "time_defaults": set(), "on_update": set(), "utc_columns": set(),
                    "retyped": {}, "bits": {}, "uuids": set(), "generated": set()}
    for el in node.this.expressions:
        if isinstance(el, exp.Constraint) and len(el.expressions) == 1:
            el = el.expressions[0]
        if isinstance(el, exp.PrimaryKey):
            pk = [_name(c.this if isinstance(c, exp.Ordered) else c) for c in el.expressions]
        if not isinstance(el, exp.ColumnDef):
            continue
        col = _name(el.this)
        columns.append(col)
        kind = el.args.get("kind")
        t = kind.this if isinstance(kind, exp.DataType) else None
        if t in (_T.TIMESTAMP, _T.TIMESTAMPTZ):
            fields["utc_columns"].add(col)
        if t == _T.UUID:
            fields["uuids"].add(col)
        if isinstance(kind, exp.DataType) and t in _RETYPED_NAMES:
            values = [v.this for v in kind.expressions if isinstance(v, exp.Literal)] if t in (_T.ENUM, _T.SET) else []
            fields["retyped"][col] = (_RETYPED_NAMES[t], tuple(values))
            if t == _T.BIT:
                fields["bits"][col] = int(kind.expressions[0].name) if kind.expressions else 1
        for cc in el.args.get("constraints") or []:
            k = cc.args.get("kind")
            clock = isinstance(getattr(k, "this", None), exp.CurrentTimestamp) or (
                isinstance(getattr(k, "this", None), exp.Anonymous) and k.this.name.upper() == "NOW")
            if isinstance(k, exp.AutoIncrementColumnConstraint):
                fields["auto_increment"] = col
            elif isinstance(k, exp.PrimaryKeyColumnConstraint):
                pk.append(col)
            elif isinstance(k, exp.DefaultColumnConstraint) and clock:
                fields["time_defaults"].add(col)
            elif isinstance(k, exp.OnUpdateColumnConstraint):
                fields["on_update"].add(col)
            elif _generated(k):
                fields["generated"].add(col)
    fields.update(primary_key=tuple(pk), columns=tuple(columns),
                  **{k: frozenset(fields[k])
                     for k in ("time_defaults", "on_update", "utc_columns", "uuids", "generated")})
    return name, fields
