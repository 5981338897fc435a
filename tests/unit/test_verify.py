"""verify: value normalisation (aiomysql vs asyncpg types), table patterns, row/chunk digests, report."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import asyncpg
import pytest

from dbmux.cli.main import build_parser
from dbmux.cli.render import format_report
from dbmux.replicator.checksum import (
    BIT,
    CHAR,
    FLOAT32,
    JSON,
    PLAIN,
    canonical,
    chunk_digest,
    column_kind,
    encode_row,
    key_text,
    row_digest,
)
from dbmux.replicator.verify import KeyDiff, Status, TableResult, TargetReport, VerifyReport, table_selected
from dbmux.replicator.verify_readers import MySQLReader, TableShape, TargetTable, _Sql, pg_param

UTC = dt.UTC

# (MySQL DATA_TYPE, PostgreSQL type, value as aiomysql returns it, value as asyncpg returns it)
SAME = [
    ("int", "integer", 42, 42),
    ("bigint", "numeric", 18446744073709551615, Decimal("18446744073709551615")),
    ("tinyint", "boolean", 1, True),
    ("tinyint", "boolean", 0, False),
    ("decimal", "numeric", Decimal("1.50"), Decimal("1.50")),
    ("decimal", "numeric", Decimal("1.50"), Decimal("1.5")),
    ("decimal", "numeric", Decimal("-0.00"), Decimal("0")),
    ("decimal", "numeric", Decimal("100.00"), Decimal("100")),
    ("double", "double precision", 0.1 + 0.2, 0.30000000000000004),
    ("float", "real", 1.1, 1.100000023841858),
    ("datetime", "timestamp without time zone", dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
     dt.datetime(2024, 5, 6, 7, 8, 9, 123456)),
    ("datetime", "timestamp without time zone", dt.datetime(2024, 5, 6, 7, 8, 9), dt.datetime(2024, 5, 6, 7, 8, 9)),
    ("timestamp", "timestamp with time zone", dt.datetime(2024, 5, 6, 7, 8, 9),
     dt.datetime(2024, 5, 6, 9, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
    ("date", "date", dt.date(1999, 12, 31), dt.date(1999, 12, 31)),
    ("time", "time without time zone", dt.timedelta(hours=13, minutes=5, seconds=1, microseconds=5),
     dt.time(13, 5, 1, 5)),
    ("blob", "bytea", b"\x00\xffab", b"\x00\xffab"),
    ("varbinary", "bytea", b"", b""),
    ("binary", "bytea", b"ab\x00\x00", b"ab"),
    ("varchar", "character varying", "héllo ✓", "héllo ✓"),
    ("char", "character", "ab", "ab   "),
    ("json", "jsonb", '{"b": [1, 2.5], "a": "x"}', '{"a": "x", "b": [1, 2.5]}'),
    ("longtext", "jsonb", '{"z":1, "a":null}', '{"a": null, "z": 1}'),
    ("enum", "USER-DEFINED", "red", "red"),
    ("set", "ARRAY", "a,c", ["a", "c"]),
    ("bit", "bit", b"\x05", asyncpg.BitString("101")),
    ("bit", "boolean", b"\x01", True),
    ("int", "integer", None, None),
]

DIFFERENT = [
    ("int", "integer", 42, 43),
    ("int", "integer", 0, None),
    ("varchar", "text", "", None),
    ("varchar", "text", "abc", "abd"),
    ("varchar", "text", "abc", "abc "),  # only CHAR drops trailing spaces
    ("decimal", "numeric", Decimal("1.50"), Decimal("1.51")),
    ("double", "double precision", 0.1, 0.1000001),
    ("datetime", "timestamp without time zone", dt.datetime(2024, 5, 6, 7, 8, 9, 1), dt.datetime(2024, 5, 6, 7, 8, 9)),
    ("date", "date", dt.date(2024, 1, 1), dt.date(2024, 1, 2)),
    ("time", "time without time zone", dt.timedelta(hours=1), dt.time(1, 0, 1)),
    ("blob", "bytea", b"ab", b"ab\x00"),  # only BINARY(n) is padded
    ("tinyint", "boolean", 2, True),
    ("json", "jsonb", '{"a": 1}', '{"a": 2}'),
    ("json", "jsonb", '[1, 2]', '[2, 1]'),
]


def _kind(mysql_type: str, pg_type: str) -> str:
    return column_kind(mysql_type, target_type=pg_type)


@pytest.mark.parametrize("mysql_type, pg_type, mysql_value, pg_value", SAME)
def test_same_logical_value_normalises_equal(mysql_type, pg_type, mysql_value, pg_value):
    kind = _kind(mysql_type, pg_type)
    assert canonical(mysql_value, kind) == canonical(pg_value, kind)
    assert row_digest((mysql_value,), (kind,)) == row_digest((pg_value,), (kind,))


@pytest.mark.parametrize("mysql_type, pg_type, mysql_value, pg_value", DIFFERENT)
def test_different_values_normalise_different(mysql_type, pg_type, mysql_value, pg_value):
    kind = _kind(mysql_type, pg_type)
    assert canonical(mysql_value, kind) != canonical(pg_value, kind)
    assert row_digest((mysql_value,), (kind,)) != row_digest((pg_value,), (kind,))


@pytest.mark.parametrize("value, kind, text", [
    (None, PLAIN, None),
    (True, PLAIN, "1"),
    (Decimal("1.50"), PLAIN, "1.5"),
    (Decimal("1E+2"), PLAIN, "100"),
    (Decimal("NaN"), PLAIN, "NaN"),
    (dt.datetime(2024, 1, 2, 3, 4, 5), PLAIN, "2024-01-02 03:04:05.000000"),
    (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), PLAIN, "2024-01-02 03:04:05.000000"),
    (dt.timedelta(hours=-1, minutes=30), PLAIN, "-00:30:00.000000"),
    (dt.timedelta(hours=838, minutes=59, seconds=59), PLAIN, "838:59:59.000000"),
    (dt.date(1, 1, 1), PLAIN, "0001-01-01"),
    (b"\x01\xab", PLAIN, "\\x01ab"),
    (memoryview(b"\x01"), PLAIN, "\\x01"),
    ("a  ", CHAR, "a"),
    (1.5, FLOAT32, "1.5"),
    ("not json {", JSON, "not json {"),
    ({"b": 1, "a": 2}, JSON, '{"a":2,"b":1}'),
    ('"ü"', JSON, json.dumps("ü", ensure_ascii=False)),
    (b"\x01\x00", BIT, "256"),
])
def test_canonical_text(value, kind, text):
    assert canonical(value, kind) == text


@pytest.mark.parametrize("data_type, target_type, json_checked, kind", [
    ("int", "integer", False, PLAIN),
    ("json", "", False, JSON),
    ("longtext", "", True, JSON),
    ("longtext", "jsonb", False, JSON),
    ("float", "real", False, FLOAT32),
    ("double", "double precision", False, PLAIN),
    ("char", "character", False, CHAR),
    ("bit", "bit", False, BIT),
])
def test_column_kind(data_type, target_type, json_checked, kind):
    assert column_kind(data_type, target_type=target_type, json_checked=json_checked) == kind


def test_null_is_not_empty_string_and_values_do_not_run_together():
    kinds = (PLAIN, PLAIN)
    assert encode_row((None, "a"), kinds) != encode_row(("", "a"), kinds)
    assert encode_row(("ab", "c"), kinds) != encode_row(("a", "bc"), kinds)
    assert row_digest(("ab", "c"), kinds) != row_digest(("a", "bc"), kinds)


def test_chunk_digest_is_order_independent_and_content_sensitive():
    kinds = (PLAIN, PLAIN)
    rows = [(i, f"v{i}") for i in range(5)]
    digests = [row_digest(r, kinds) for r in rows]
    assert chunk_digest(digests) == chunk_digest(reversed(digests))
    assert chunk_digest(digests) != chunk_digest(digests[:-1])
    changed = digests[:-1] + [row_digest((4, "v4!"), kinds)]
    assert chunk_digest(digests) != chunk_digest(changed)
    assert chunk_digest([]) == chunk_digest([])


def test_key_text_matches_across_drivers():
    kinds = (PLAIN, PLAIN)
    assert key_text((1, dt.datetime(2024, 1, 1)), kinds) == key_text(
        (1, dt.datetime(2024, 1, 1, tzinfo=UTC)), kinds)


@pytest.mark.parametrize("patterns, name, selected", [
    (("*",), "shop.orders", True),
    (("shop.*",), "shop.orders", True),
    (("shop.*",), "shopx.orders", False),
    (("shop.ord*",), "shop.orders", True),
    (("shop.orders",), "shop.orders_old", False),
    (("other.*", "shop.orders"), "shop.orders", True),
    (("Shop.*",), "shop.orders", False),  # case-sensitive, as MySQL names on Linux
    (("*.audit",), "any.audit", True),
    (("shop.?",), "shop.ab", False),
])
def test_table_patterns(patterns, name, selected):
    db, table = name.split(".", 1)
    assert table_selected(patterns, db, table) is selected
    assert table_selected(patterns, db, table) is selected  # (kept per table: the same answer)
    assert table_selected(list(patterns), db, table) is selected


SHAPE = TableShape("db", "t", ("a", "b", "v"), ("int", "varchar", "int"), (0, 1))


def test_mysql_key_comparison_is_expanded_and_parameterised():
    reader = MySQLReader("x", None, None)  # type: ignore[arg-type]
    s = _Sql(dollar=False)
    sql = reader._lex(s, ["a", "b"], (1, "x"), "<=")
    assert sql == "((`a` < %s) OR (`a` = %s AND `b` <= %s))"
    assert s.params == [1, 1, "x"]
    assert reader.q("we%ird`") == "`we%%ird```"


@pytest.mark.parametrize("value, pg_type, expected", [
    (1, "boolean", True),
    (5, "numeric", Decimal(5)),
    (dt.datetime(2024, 1, 1), "timestamp with time zone", dt.datetime(2024, 1, 1, tzinfo=UTC)),
    (dt.timedelta(hours=1, seconds=2), "time without time zone", dt.time(1, 0, 2)),
    (b"ab", "text", "ab"),
    ("ab", "bytea", b"ab"),
    (b"\x01\x00", "integer", 256),
    (None, "integer", None),
])
def test_pg_param_adapts_primary_key_values(value, pg_type, expected):
    assert pg_param(value, pg_type) == expected


def test_target_table_missing_columns():
    assert TargetTable("db", "t", ("a", "", "v"), ("integer", "", "integer")).missing == (1,)
    assert SHAPE.pk_names == ("a", "b") and not SHAPE.pk_order_safe


def _report(*tables: TableResult, error: str = "") -> VerifyReport:
    return VerifyReport([TargetReport("r1", "mysql://u:***@h:1", "full", list(tables), error)])


def test_exit_codes_and_report_text():
    equal = TableResult("db.t", rows_primary=3, rows_target=3, chunks=1)
    assert _report(equal).exit_code == 0
    assert "all 1 targets equal" in format_report(_report(equal))
    diff = TableResult("db.u", Status.DIFFERENT, 3, 2, 1, diff_rows=1, ranges=[(None, ("3",))],
                       keys=[KeyDiff("missing on target", ("3",))])
    rep = _report(equal, diff)
    assert rep.exit_code == 1
    text = format_report(rep, details=True)
    assert "DIFFERENT (1 rows)" in text and "missing on target: key (3)" in text and "key <= (3)" in text
    assert "missing on target: key" not in format_report(rep)
    assert _report(TableResult("db.v", Status.MISSING)).exit_code == 1
    assert _report(TableResult("db.n", Status.NOT_VERIFIABLE, 2, 2)).exit_code == 0
    assert _report(TableResult("db.n", Status.NOT_VERIFIABLE, 2, 1, note="row counts differ")).exit_code == 1
    unreachable = _report(error="cannot read target 'r1' at mysql://u:***@h:1")
    assert unreachable.exit_code == 2 and "ERROR" in format_report(unreachable)


def test_parser_defaults():
    args = build_parser().parse_args(["verify", "-c", "x.toml", "--target", "replica1", "--details"])
    assert (args.config, args.target, args.details, args.chunk_rows) == ("x.toml", "replica1", True, 1000)
