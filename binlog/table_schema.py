"""The schema of a rows event's table, as the binlog table map describes it (pure; no I/O, no threads).

:func:`table_schema` turns the columns python-mysql-replication parsed from the table map that precedes
a Write/Update/DeleteRowsEvent (type codes, and with ``binlog_row_metadata=FULL`` names, signedness,
character sets, ENUM/SET values, the primary key) into the :class:`~dbmux.core.events.TableSchema` the
change event carries: the table as it was at that GTID, whatever the primary's schema is later.

Built once per table definition: cached on the library's ``Table`` (as the row decoder caches its plan),
so a producer hands the same object to every event of that table (the codec serialises it once).

=====================================  =========================================================
table map type (code)                  ColumnType kind
=====================================  =========================================================
TINY 1, SHORT 2, INT24 9, LONG 3,      tinyint, smallint, mediumint, int, bigint (+ unsigned)
LONGLONG 8
FLOAT 4, DOUBLE 5                      float, double
DECIMAL 0, NEWDECIMAL 246              decimal(precision,scale)
YEAR 13, DATE 10 / NEWDATE 14          year, date
TIME 11 / TIME2 19, DATETIME 12 /      time(fsp), datetime(fsp), timestamp(fsp)
DATETIME2 18, TIMESTAMP 7 / 17
BIT 16                                 bit(width)
ENUM 247, SET 248 (the table map       enum('a',...), set('a',...)
writes them as STRING 254)
JSON 245, GEOMETRY 255                 json, geometry
VARCHAR 15, VAR_STRING 253             varchar charset X; varbinary when the character set is binary
STRING 254                             char charset X; binary
BLOB 252 (1-4 length bytes)            tinytext .. longtext charset X; tinyblob .. longblob
anything else                          type<code>
=====================================  =========================================================
"""

from __future__ import annotations

from typing import Any

from dbmux.core.events import ColumnType, TableSchema

__all__ = ["table_schema", "column_type", "note_table_map"]

_SCHEMA_ATTR = "_dbmux_table_schema"  # on the library's Table; "_" keeps it out of Table.data / __eq__
_KEYLESS_ATTR = "_dbmux_keyless"  # on the library's Table: its table map names no primary key at all
_FIXED = {1: "tinyint", 2: "smallint", 9: "mediumint", 3: "int", 8: "bigint", 4: "float", 5: "double",
          13: "year", 10: "date", 14: "date", 245: "json", 255: "geometry"}
_NUMERIC = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint", "float", "double", "decimal"})
_TEMPORAL = {11: "time", 19: "time", 12: "datetime", 18: "datetime", 7: "timestamp", 17: "timestamp"}
_SIZED = ("tiny", "", "medium", "long")  # BLOB length bytes 1..4


def _charset(c: Any) -> str | None:
    """The column's character set name (its collation's prefix), "binary", or None when not known."""
    collation = getattr(c, "collation_name", None)
    if collation:
        return str(collation).split("_", 1)[0]
    name = getattr(c, "character_set_name", None)
    return str(name) if name else None


def column_type(c: Any) -> ColumnType:
    """The ColumnType of one library column (a ``pymysqlreplication.column.Column`` or a stand-in)."""
    code = c.type
    unsigned = bool(getattr(c, "unsigned", False))
    kind = _FIXED.get(code)
    if kind is not None:
        return ColumnType(kind, unsigned=unsigned and kind in _NUMERIC)
    if code in (0, 246):
        return ColumnType("decimal", unsigned=unsigned, precision=c.precision, scale=c.decimals)
    if code in _TEMPORAL:
        return ColumnType(_TEMPORAL[code], fsp=int(getattr(c, "fsp", 0) or 0))
    if code == 16:
        return ColumnType("bit", width=c.bits)
    if code == 247:  # the library puts "" (index 0, the invalid value) first
        values = list(getattr(c, "enum_values", None) or ())
        return ColumnType("enum", values=tuple(values[1:] if values[:1] == [""] else values))
    if code == 248:
        return ColumnType("set", values=tuple(getattr(c, "set_values", None) or ()))
    charset = _charset(c)
    binary = charset == "binary"
    if code in (15, 253):
        return ColumnType("varbinary") if binary else ColumnType("varchar", charset=charset)
    if code == 254:
        return ColumnType("binary") if binary else ColumnType("char", charset=charset)
    if code == 252 and getattr(c, "length_size", None) in (1, 2, 3, 4):
        size = _SIZED[c.length_size - 1]
        return ColumnType(size + "blob") if binary else ColumnType(size + "text", charset=charset)
    return ColumnType(f"type{int(code)}")


def note_table_map(event: Any) -> None:
    """On a TableMapEvent: record on its table whether the map says the table has no primary key. With
    ``binlog_row_metadata=FULL`` a table map names a primary key in SIMPLE_PRIMARY_KEY or, when a part
    has a prefix length, PRIMARY_KEY_WITH_PREFIX; neither: the table has none. (Consumers took an
    unnamed key for unknown and used the source's schema: a stale definition of a name re-created
    without a key routed its rows by a key the rows did not have.)"""
    meta, table = getattr(event, "optional_metadata", None), getattr(event, "table_obj", None)
    if meta is None or table is None:
        return
    table.__dict__[_KEYLESS_ATTR] = not (getattr(meta, "simple_primary_key_list", None)
                                         or getattr(meta, "primary_keys_with_prefix", None))


def _build(db: str, table: str, columns: list[Any], keyless: bool = False) -> TableSchema | None:
    names = [c.name for c in columns]
    if not names or not all(type(n) is str and n for n in names) or len(set(names)) != len(names):
        return None  # no names (binlog_row_metadata is not FULL): the event carries no schema
    key = tuple(c.name for c in columns if getattr(c, "is_primary", False))
    # The library marks only a primary key without prefix parts (SIMPLE_PRIMARY_KEY): none marked is a
    # key with a prefix (unknown: consumers take the source schema's), or none at all (note_table_map).
    return TableSchema(db, table, tuple(names), tuple(column_type(c) for c in columns),
                       key or (() if keyless else None))


def table_schema(event: Any) -> TableSchema | None:
    """The TableSchema of a rows event's table (None: the table map does not say enough)."""
    columns = getattr(event, "columns", None)
    if not columns:
        return None
    table_map, table_id = getattr(event, "table_map", None), getattr(event, "table_id", None)
    table = table_map.get(table_id) if isinstance(table_map, dict) else None
    cached = table.__dict__.get(_SCHEMA_ATTR) if table is not None else None
    if cached is not None and cached[0] is columns:
        return cached[1]
    try:
        schema = _build(event.schema, event.table, columns,
                        table.__dict__.get(_KEYLESS_ATTR, False) if table is not None else False)
    except Exception:  # noqa: BLE001 - metadata not as expected: the event carries no schema for it
        schema = None
    if table is not None:
        table.__dict__[_SCHEMA_ATTR] = (columns, schema)
    return schema
