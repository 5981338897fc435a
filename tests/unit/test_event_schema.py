"""Row events carry their own schema (issue 12 #8): column types in their compact text form, tables in the
envelope (round trip, wire shape, events written before still decoding, garbage refused), the binlog
reader's table maps turned into them, and the PostgreSQL applier typing row values by them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from asyncpg import BitString
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysqlreplication.column import Column as LibColumn

from dbmux.binlog.assembler import TransactionAssembler
from dbmux.binlog.table_schema import column_type, note_table_map, table_schema
from dbmux.core import codec
from dbmux.core.codec import decode_event, encode_event
from dbmux.core.dsn import Dsn
from dbmux.core.events import ChangeEvent, ColumnType, EnvelopeError, RowChange, Statement, TableSchema
from dbmux.core.gtid import Gtid
from dbmux.replicator.pg_applier import PostgresApplier
from dbmux.replicator.schema_info import StaticSchema, TableInfo

G = Gtid("0", "1", 7)
T = ColumnType.parse

# ------------------------------------------------------------------------- column types

TYPES = [
    (ColumnType("int"), "int"),
    (ColumnType("bigint", unsigned=True), "bigint unsigned"),
    (ColumnType("decimal", precision=10, scale=2), "decimal(10,2)"),
    (ColumnType("decimal", unsigned=True, precision=65, scale=30), "decimal(65,30) unsigned"),
    (ColumnType("datetime"), "datetime"),
    (ColumnType("datetime", fsp=6), "datetime(6)"),
    (ColumnType("time", fsp=3), "time(3)"),
    (ColumnType("timestamp", fsp=1), "timestamp(1)"),
    (ColumnType("bit", width=1), "bit(1)"),
    (ColumnType("bit", width=64), "bit(64)"),
    (ColumnType("enum", values=("a", "it's", "x,y", "(z)")), "enum('a','it''s','x,y','(z)')"),
    (ColumnType("set", values=()), "set()"),
    (ColumnType("set", values=("",)), "set('')"),
    (ColumnType("varchar", charset="utf8mb4"), "varchar charset utf8mb4"),
    (ColumnType("char", charset="latin1"), "char charset latin1"),
    (ColumnType("varchar"), "varchar"),  # character set not known
    (ColumnType("longtext", charset="utf8mb4"), "longtext charset utf8mb4"),
    (ColumnType("varbinary"), "varbinary"),
    (ColumnType("longblob"), "longblob"),
    (ColumnType("type42"), "type42"),  # a type this version does not know
]


@pytest.mark.parametrize("ct,text", TYPES, ids=[t for _, t in TYPES])
def test_column_type_text_round_trip(ct, text):
    assert ct.text == text
    assert ColumnType.parse(text) == ct


BAD_TYPES = ["", "Int", "int(3)", "int unsigned unsigned", "decimal(5)", "decimal(a,b)", "decimal(05,2)",
             "time(0)", "bit()", "enum(a)", "enum('a'", "enum('a''')x", "enum('a'''", "bit(-1)", "bit(1.5)",
             "decimal(5,-2)", "set('a',)", "varchar charset",
             "varchar charset utf8 x", " int", "int ", "datetime(6) charset", 42, None, ["int"]]


@pytest.mark.parametrize("text", BAD_TYPES, ids=repr)
def test_column_type_text_that_is_no_type_is_refused(text):
    with pytest.raises(EnvelopeError):
        ColumnType.parse(text)


@pytest.mark.parametrize("fields", [
    {"kind": "int", "precision": 3}, {"kind": "decimal", "scale": 2}, {"kind": "varchar", "charset": "utf8 mb4"},
    {"kind": "INT"}, {"kind": "time", "fsp": -1},
], ids=repr)
def test_column_type_that_has_no_text_form_is_refused(fields):
    with pytest.raises(EnvelopeError):
        ColumnType(**fields)


def test_column_type_classes():
    assert T("varbinary").is_binary and T("blob").is_binary and not T("text charset utf8mb4").is_binary
    assert T("mediumint unsigned").is_integer and not T("decimal(5,2)").is_integer


def test_table_schema_checks_itself():
    ts = TableSchema("d", "t", ["id", "v"], [T("int"), T("int")], ["id"])  # lists become tuples
    assert ts.columns == ("id", "v") and ts.primary_key == ("id",) and ts.type_of("v") == T("int")
    assert ts.type_of("nope") is None
    with pytest.raises(EnvelopeError, match="2 columns but 1 types"):
        TableSchema("d", "t", ("id", "v"), (T("int"),))
    with pytest.raises(EnvelopeError, match="primary key"):
        TableSchema("d", "t", ("id",), (T("int"),), ("k",))
    with pytest.raises(EnvelopeError, match="ColumnType"):
        TableSchema("d", "t", ("id",), ("int",))  # type: ignore[arg-type]


# ------------------------------------------------------------------------- envelope

OLD = TableSchema("shop", "t", ("id", "v", "b"), (T("int"), T("int"), T("bit(8)")), ("id",))
NEW = TableSchema("shop", "t", ("id", "v", "b"), (T("int"), T("varchar charset utf8mb4"), T("int")), ("id",))
NO_KEY = TableSchema("shop", "log", ("at", "what"), (T("datetime(6)"), T("longblob")), None)


def _rows_event(*tables: TableSchema, **kw: Any) -> ChangeEvent:
    rows = tuple(RowChange(ts.table, ts.db, "insert", None, {c: 1 for c in ts.columns}) for ts in tables)
    return ChangeEvent(G, "binlog", 5, "shop", rows=rows, tables=tables, **kw)


EVENTS = [
    ("one table", _rows_event(OLD)),
    ("two tables", _rows_event(NEW, NO_KEY)),
    ("no tables", _rows_event()),
    ("ddl and rows", _rows_event(OLD, statements=(Statement("CREATE TABLE x (i INT)", kind="other"),))),
    ("every kind", _rows_event(TableSchema("d", "all", tuple(f"c{i}" for i, _ in enumerate(TYPES)),
                                           tuple(ct for ct, _ in TYPES), ("c0", "c1")))),
    ("odd names", _rows_event(TableSchema("d\u00e9", "t \"x\"", ("\u00e9", "a b", "`q`"),
                                          (T("int"), T("int"), T("int")), ()))),
]


@pytest.mark.parametrize("name,ev", EVENTS, ids=[n for n, _ in EVENTS])
def test_events_with_tables_round_trip(name, ev):
    data = encode_event(ev)
    back = decode_event(data)
    assert back == ev and back.tables == ev.tables
    assert ("tables" in orjson.loads(data)) is bool(ev.tables)  # written only when there are some
    assert encode_event(back) == data  # (decoded tables are new objects: serialised afresh, same bytes)


def test_wire_shape_of_tables():
    doc = orjson.loads(encode_event(_rows_event(OLD, NO_KEY)))
    assert doc["v"] == 2
    assert doc["tables"] == [
        {"db": "shop", "table": "t", "columns": ["id", "v", "b"], "types": ["int", "int", "bit(8)"], "pk": ["id"]},
        {"db": "shop", "table": "log", "columns": ["at", "what"], "types": ["datetime(6)", "longblob"], "pk": None},
    ]


def test_table_schema_lookup():
    ev = _rows_event(NEW, NO_KEY)
    assert ev.table_schema("shop", "t") is NEW and ev.table_schema("shop", "log") is NO_KEY
    assert ev.table_schema("shop", "T") is None and _rows_event().table_schema("shop", "t") is None


_ROW = {"table": "t", "db": "shop", "op": "insert", "before": None, "after": {"id": 1, "v": 2}}
OLD_WIRE = [
    ("v1", {"v": 1, "gtid": "0-1-7", "source": "binlog", "ts_ms": 5, "db": "shop", "statements": [],
            "rows": [_ROW], "session": None}),
    ("v2 without tables", {"v": 2, "gtid": "0-1-7", "source": "binlog", "ts_ms": 5, "db": "shop",
                           "statements": [], "rows": [_ROW], "session": None}),
    ("v2 tables null", {"v": 2, "gtid": "0-1-7", "source": "binlog", "ts_ms": 5, "db": "shop",
                        "statements": [], "rows": [_ROW], "session": None, "tables": None}),
    ("v2 tables empty", {"v": 2, "gtid": "0-1-7", "source": "binlog", "ts_ms": 5, "db": "shop",
                         "statements": [], "rows": [_ROW], "session": None, "tables": []}),
]


@pytest.mark.parametrize("name,doc", OLD_WIRE, ids=[n for n, _ in OLD_WIRE])
def test_events_without_tables_still_decode(name, doc):
    ev = decode_event(orjson.dumps(doc))
    assert ev.tables == () and ev.table_schema("shop", "t") is None
    assert ev.rows == (RowChange("t", "shop", "insert", None, {"id": 1, "v": 2}),)


_T_OK = {"db": "shop", "table": "t", "columns": ["id"], "types": ["int"], "pk": ["id"]}
BAD_TABLES = [
    ({"x": 1}, "field 'tables' must be a list"),
    ([1], "tables[0]: must be an object"),
    ([{**_T_OK, "types": ["INT"]}], "tables[0]"),
    ([{**_T_OK, "types": ["int", "int"]}], "1 columns but 2 types"),
    ([{**_T_OK, "types": [1]}], "list of strings"),
    ([{**_T_OK, "columns": "id"}], "field 'columns' must be list"),
    ([{**_T_OK, "pk": ["nope"]}], "primary key"),
    ([{**_T_OK, "pk": "id"}], "field 'pk' must be list"),
    ([{k: v for k, v in _T_OK.items() if k != "db"}], "missing field 'db'"),
    ([_T_OK, {**_T_OK, "table": None}], "tables[1]"),
]


@pytest.mark.parametrize("tables,message", BAD_TABLES, ids=[m for _, m in BAD_TABLES])
def test_malformed_tables_are_refused_naming_the_field(tables, message):
    doc = {**dict(OLD_WIRE[1][1]), "tables": tables}
    with pytest.raises(EnvelopeError) as exc:
        decode_event(orjson.dumps(doc))
    assert message in str(exc.value)


def test_encode_refuses_what_is_no_table_schema():
    ev = ChangeEvent(G, "binlog", 5, tables=("t",))  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="TableSchema"):
        encode_event(ev)


def test_serialised_table_cache_gives_the_bytes_of_a_fresh_encoding():
    ev = _rows_event(OLD, NEW)
    first = encode_event(ev)
    copy = _rows_event(TableSchema(*[getattr(OLD, f) for f in OLD.__slots__]),
                       TableSchema(*[getattr(NEW, f) for f in NEW.__slots__]))
    codec._TABLE_WIRE.clear()
    assert encode_event(ev) == encode_event(copy) == first
    for i in range(codec._TABLE_WIRE_MAX + 5):  # bounded
        encode_event(_rows_event(TableSchema("d", f"t{i}", ("a",), (T("int"),))))
    assert len(codec._TABLE_WIRE) <= codec._TABLE_WIRE_MAX
    assert encode_event(ev) == first


names = st.text(min_size=1, max_size=8)
column_types = st.sampled_from([ct for ct, _ in TYPES]) | st.builds(
    ColumnType, st.just("enum"), values=st.lists(st.text(max_size=5), max_size=4).map(tuple))


@st.composite
def table_schemas(draw):
    cols = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    pk = draw(st.none() | st.lists(st.sampled_from(cols), unique=True).map(tuple))
    return TableSchema(draw(names), draw(names), tuple(cols), tuple(draw(column_types) for _ in cols), pk)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(table_schemas(), max_size=3))
def test_property_tables_round_trip(tables):
    ev = ChangeEvent(G, "binlog", 1, "d", tables=tuple(tables))
    assert decode_event(encode_event(ev)) == ev


@settings(max_examples=300)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
                        ["db", "table", "columns", "types", "pk", "x"]), c), max_leaves=20))
def test_property_arbitrary_tables_only_raise_envelope_error(obj):
    doc = {**dict(OLD_WIRE[1][1]), "tables": obj}
    for tables in (obj, [obj], [_T_OK, obj], [{**_T_OK, "types": obj}], [{**_T_OK, "columns": obj}]):
        doc["tables"] = tables
        try:
            data = orjson.dumps(doc)
        except orjson.JSONEncodeError:  # (an int JSON cannot hold)
            return
        try:
            decode_event(data)
        except EnvelopeError:
            pass


# ------------------------------------------------------------------------- the binlog reader


def _col(type_: int, name: str = "c", **kw: Any) -> Any:
    base = {"type": type_, "name": name, "unsigned": False, "is_primary": False, "charset_id": None,
            "character_set_name": None, "collation_name": None, "enum_values": None, "set_values": None,
            "visibility": False}
    return LibColumn(**{**base, **kw})


_UTF8 = {"character_set_name": "utf8", "collation_name": "utf8mb4_general_ci"}
_BIN = {"character_set_name": "binary", "collation_name": "binary"}
TABLE_MAP = [
    (_col(1), "tinyint"), (_col(2, unsigned=True), "smallint unsigned"), (_col(9), "mediumint"),
    (_col(3, unsigned=True), "int unsigned"), (_col(8), "bigint"), (_col(4, size=4), "float"),
    (_col(5, size=8), "double"), (_col(246, precision=10, decimals=2), "decimal(10,2)"),
    (_col(13), "year"), (_col(10), "date"), (_col(19, fsp=0), "time"), (_col(18, fsp=6), "datetime(6)"),
    (_col(17, fsp=3), "timestamp(3)"), (_col(16, bits=8, bytes=1), "bit(8)"),
    (_col(247, size=1, enum_values=["", "a", "b"]), "enum('a','b')"),
    (_col(248, size=1, set_values=["x", "y"]), "set('x','y')"), (_col(245, length_size=4), "json"),
    (_col(15, max_length=80, **_UTF8), "varchar charset utf8mb4"), (_col(15, max_length=8, **_BIN), "varbinary"),
    (_col(254, max_length=4, character_set_name="cp1252", collation_name="latin1_swedish_ci"), "char charset latin1"),
    (_col(254, max_length=4, **_BIN), "binary"), (_col(252, length_size=1, **_UTF8), "tinytext charset utf8mb4"),
    (_col(252, length_size=4, **_UTF8), "longtext charset utf8mb4"), (_col(252, length_size=2, **_BIN), "blob"),
    (_col(252, length_size=3, **_BIN), "mediumblob"), (_col(255, length_size=4), "geometry"),
    (_col(15, max_length=20), "varchar"), (_col(6), "type6"),
]


@pytest.mark.parametrize("column,text", TABLE_MAP, ids=[t for _, t in TABLE_MAP])
def test_table_map_columns_become_column_types(column, text):
    assert column_type(column).text == text


def _rows_event_like(columns: list[Any], schema: str = "shop", table: str = "t", table_id: int = 5) -> Any:
    lib_table = SimpleNamespace(columns=columns)
    return SimpleNamespace(schema=schema, table=table, columns=columns, table_id=table_id,
                           table_map={table_id: lib_table})


def test_table_schema_of_a_rows_event_is_built_once_per_table_map():
    cols = [_col(3, "id", is_primary=True), _col(15, "v", max_length=80, **_UTF8)]
    ev = _rows_event_like(cols)
    ts = table_schema(ev)
    assert ts == TableSchema("shop", "t", ("id", "v"), (T("int"), T("varchar charset utf8mb4")), ("id",))
    assert table_schema(ev) is ts  # cached on the library's table
    ev.columns = [_col(3, "id", is_primary=True)]  # another definition under the same table id
    ev.table_map[5].columns = ev.columns
    assert table_schema(ev) == TableSchema("shop", "t", ("id",), (T("int"),), ("id",))


@pytest.mark.parametrize("columns", [[], [_col(3, None)], [_col(3, "a"), _col(3, "a")]], ids=repr)
def test_no_schema_without_usable_column_names(columns):
    assert table_schema(_rows_event_like(columns)) is None


def test_a_table_without_a_named_key_has_an_unknown_key():
    assert table_schema(_rows_event_like([_col(3, "a"), _col(3, "b")])).primary_key is None


@pytest.mark.parametrize("simple, with_prefix, key", [
    ([], {}, ()),  # the table map names no primary key: the table has none
    ([], {1: 10}, None),  # a key with a prefix part: the library marks no column; unknown
    ([0], {}, ("a",)),
])
def test_the_table_map_says_when_a_table_has_no_primary_key(simple, with_prefix, key):
    cols = [_col(3, "a", is_primary=bool(simple)), _col(15, "b", max_length=20)]
    ev = _rows_event_like(cols)
    note_table_map(SimpleNamespace(table_obj=ev.table_map[5], optional_metadata=SimpleNamespace(
        simple_primary_key_list=simple, primary_keys_with_prefix=with_prefix)))
    assert table_schema(ev).primary_key == key


class MariadbGtidEvent(SimpleNamespace):
    pass


class QueryEvent(SimpleNamespace):
    pass


class XidEvent(SimpleNamespace):
    pass


class WriteRowsEvent(SimpleNamespace):
    pass


def _write(table: str, columns: list[Any], values: list[dict], schema: str = "shop", table_id: int = 1) -> Any:
    ev = WriteRowsEvent(**vars(_rows_event_like(columns, schema, table, table_id)))
    ev.rows = [{"values": v} for v in values]
    return ev


def test_assembled_events_carry_each_tables_schema_once():
    t_cols = [_col(3, "id", is_primary=True), _col(3, "v")]
    u_cols = [_col(3, "k", is_primary=True), _col(16, "b", bits=4, bytes=1)]
    sys_cols = [_col(3, "x")]
    asm = TransactionAssembler()
    feed = [MariadbGtidEvent(gtid="0-1-9", timestamp=1, flags=0),
            _write("t", t_cols, [{"id": 1, "v": 1}]), _write("t", t_cols, [{"id": 2, "v": 2}]),
            _write("u", u_cols, [{"k": 1, "b": 3}], table_id=2),
            _write("x", sys_cols, [{"x": 1}], schema="mysql", table_id=3),
            QueryEvent(query="SAVEPOINT s", schema=b"shop"),
            _write("w", [_col(3, "id", is_primary=True)], [{"id": 1}], table_id=4),
            QueryEvent(query="ROLLBACK TO SAVEPOINT s", schema=b"shop"),
            XidEvent()]
    (ev,) = [e for e in map(asm.feed, feed) if e is not None]
    assert [(r.table, r.after) for r in ev.rows] == [("t", {"id": 1, "v": 1}), ("t", {"id": 2, "v": 2}),
                                                   ("u", {"k": 1, "b": 3})]
    assert [(ts.table, [t.text for t in ts.types]) for ts in ev.tables] == [("t", ["int", "int"]),
                                                                          ("u", ["int", "bit(4)"])]
    assert decode_event(encode_event(ev)) == ev


# ------------------------------------------------------------------------- the PostgreSQL applier

TODAY = StaticSchema({("shop", "t"): TableInfo(("v",), ("id", "v", "b"), bits={"v": 8})})


def _applier(schema: StaticSchema = TODAY) -> PostgresApplier:
    a = PostgresApplier(Dsn.parse("postgresql://u:p@127.0.0.1:1/db"), "pgt", "topic", Dsn.parse("mysql://u:p@127.0.0.1:1"))
    a._schema = schema  # what connect() loads from the primary: today's, not the event's
    return a


def _insert_update(tables: tuple[TableSchema, ...], after: dict, new: dict) -> ChangeEvent:
    return ChangeEvent(G, "binlog", 1, "shop", rows=(RowChange("t", "shop", "insert", None, after),
                                                     RowChange("t", "shop", "update", after, new)), tables=tables)


TYPING = [
    ("old event: typed as it was (bits from the event, key from the event)",
     (TableSchema("shop", "t", ("id", "v", "b"), (T("int"), T("int"), T("bit(8)")), ("id",)),),
     {"id": 1, "v": 7, "b": 5}, {"id": 1, "v": 8, "b": 6},
     ['INSERT INTO "shop"."t" ("id", "v", "b") VALUES ($1, $2, $3) ON CONFLICT ("id") DO UPDATE SET '
      '"v" = EXCLUDED."v", "b" = EXCLUDED."b"',
      'UPDATE "shop"."t" SET "id" = $1, "v" = $2, "b" = $3 WHERE "id" = $4'],
     [(1, 7, BitString.from_int(5, 8)), (1, 8, BitString.from_int(6, 8), 1)]),
    ("new event: a string where the old table had BIT, an int where it had an int",
     (TableSchema("shop", "t", ("id", "v", "b"), (T("int"), T("varchar charset utf8mb4"), T("int")), ("id",)),),
     {"id": 1, "v": "a string", "b": 5}, {"id": 1, "v": "b", "b": 6},
     ['INSERT INTO "shop"."t" ("id", "v", "b") VALUES ($1, $2, $3) ON CONFLICT ("id") DO UPDATE SET '
      '"v" = EXCLUDED."v", "b" = EXCLUDED."b"',
      'UPDATE "shop"."t" SET "id" = $1, "v" = $2, "b" = $3 WHERE "id" = $4'],
     [(1, "a string", 5), (1, "b", 6, 1)]),
    ("binary columns: the empty binary string as bytes",
     (TableSchema("shop", "t", ("id", "v", "b"), (T("int"), T("varbinary"), T("longblob")), ("id",)),),
     {"id": 1, "v": "", "b": b"\x00"}, {"id": 1, "v": b"\xff", "b": ""},
     ['INSERT INTO "shop"."t" ("id", "v", "b") VALUES ($1, $2, $3) ON CONFLICT ("id") DO UPDATE SET '
      '"v" = EXCLUDED."v", "b" = EXCLUDED."b"',
      'UPDATE "shop"."t" SET "id" = $1, "v" = $2, "b" = $3 WHERE "id" = $4'],
     [(1, b"", b"\x00"), (1, b"\xff", b"", 1)]),
    ("key unknown to the event: the source schema's",
     (TableSchema("shop", "t", ("id", "v", "b"), (T("int"), T("int"), T("int")), None),),
     {"id": 1, "v": 7, "b": 5}, {"id": 1, "v": 8, "b": 6},
     ['INSERT INTO "shop"."t" ("id", "v", "b") VALUES ($1, $2, $3) ON CONFLICT ("v") DO UPDATE SET '
      '"id" = EXCLUDED."id", "b" = EXCLUDED."b"',
      'UPDATE "shop"."t" SET "id" = $1, "v" = $2, "b" = $3 WHERE "v" = $4'],
     [(1, 7, 5), (1, 8, 6, 7)]),
    ("no schema in the event (written before): today's schema, as before",
     (), {"id": 1, "v": 7, "b": 5}, {"id": 1, "v": 8, "b": 6},
     ['INSERT INTO "shop"."t" ("id", "v", "b") VALUES ($1, $2, $3) ON CONFLICT ("v") DO UPDATE SET '
      '"id" = EXCLUDED."id", "b" = EXCLUDED."b"',
      'UPDATE "shop"."t" SET "id" = $1, "v" = $2, "b" = $3 WHERE "v" = $4'],
     [(1, BitString.from_int(7, 8), 5), (1, BitString.from_int(8, 8), 6, BitString.from_int(7, 8))]),
]


@pytest.mark.parametrize("name,tables,after,new,sqls,args", TYPING, ids=[t[0] for t in TYPING])
def test_pg_row_values_are_typed_by_the_event(name, tables, after, new, sqls, args):
    out = _applier()._translate(_insert_update(tables, after, new), 3)
    assert [sql for sql, *_ in out] == sqls
    assert [a for _, a, *_ in out] == args


def test_pg_event_of_a_table_today_schema_does_not_know():
    ts = TableSchema("shop", "gone", ("id", "b"), (T("int"), T("bit(3)")), ("id",))
    ev = ChangeEvent(G, "binlog", 1, "shop", rows=(RowChange("gone", "shop", "delete", {"id": 4, "b": 1}, None),),
                     tables=(ts,))
    assert [(sql, a) for sql, a, *_ in _applier()._translate(ev, 3)] == [
        ('DELETE FROM "shop"."gone" WHERE "id" = $1', (4,))]


def test_decoded_values_of_every_kind_pass_through_untouched():
    types = ("int", "bigint unsigned", "decimal(5,2)", "datetime(6)", "date", "time", "double", "json")
    values = (1, 2**64 - 1, Decimal("1.50"), dt.datetime(2026, 1, 2, 3, 4, 5, 6), dt.date(2026, 1, 2),
              dt.timedelta(hours=1), 2.5, '{"a": 1}')
    cols = tuple(f"c{i}" for i in range(len(types)))
    ts = TableSchema("shop", "t", cols, tuple(map(T, types)), ("c0",))
    row = RowChange("t", "shop", "insert", None, dict(zip(cols, values, strict=True)))
    ev = ChangeEvent(G, "binlog", 1, "shop", rows=(row,), tables=(ts,))
    ((_, args, *_),) = _applier()._translate(decode_event(encode_event(ev)), 3)
    assert args == values  # (TIME: a timedelta, for PostgreSQL's INTERVAL)
