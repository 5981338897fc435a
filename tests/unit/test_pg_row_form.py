"""PostgreSQL targets take statement events that write MySQL TIMESTAMP columns from a session not in
UTC from their row form (pure: the decision only)."""

from __future__ import annotations

import pytest

from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement
from dbmux.core.gtid import Gtid
from dbmux.replicator.pg_applier import PostgresApplier, is_utc
from dbmux.replicator.pg_sql import StaticSchema, TableInfo
from dbmux.replicator.runner import as_unsafe


@pytest.mark.parametrize("tz,system,utc", [
    ("+00:00", "CET", True), ("-00:00", "CET", True), ("+0:00", "CET", True), ("UTC", "CET", True),
    ("Etc/UTC", "CET", True), ("SYSTEM", "UTC", True), ("system", "Etc/UTC", True),
    ("+05:00", "UTC", False), ("+00:30", "UTC", False), ("SYSTEM", "CET", False), ("SYSTEM", "GMT", False),
    ("Europe/London", "UTC", False), ("GMT", "UTC", False), (None, "CET", False), ("", "UTC", False),
])
def test_is_utc(tz, system, utc):
    assert is_utc(tz, system) is utc


SCHEMA = StaticSchema({("shop", "orders"): TableInfo(("id",), ("id", "paid_at"), utc_columns=frozenset({"paid_at"})),
                       ("shop", "items"): TableInfo(("id",), ("id", "made"))}, system_time_zone="UTC")


def _applier() -> PostgresApplier:
    a = PostgresApplier.__new__(PostgresApplier)
    a._schema = SCHEMA
    return a


def _ev(sql: str, tz: str | None, source: str = "ingress", kind: str = "dml") -> ChangeEvent:
    ctx = SessionContext(db="shop", time_zone=tz, sql_mode="") if tz is not None else None
    return ChangeEvent(Gtid("0", "1", 5), source, 1, statements=(Statement(sql, kind=kind),), session=ctx)


@pytest.mark.parametrize("sql,tz,row_form", [
    ("INSERT INTO orders (id, paid_at) VALUES (1, '2024-01-01 10:00:00')", "+05:00", True),
    ("UPDATE shop.orders SET paid_at = NOW() WHERE id = 1", "+05:00", True),
    ("INSERT INTO orders (id, paid_at) VALUES (1, '2024-01-01 10:00:00')", "+00:00", False),  # UTC session
    ("INSERT INTO orders (id, paid_at) VALUES (1, '2024-01-01 10:00:00')", "SYSTEM", False),  # system is UTC
    ("INSERT INTO items (id, made) VALUES (1, '2024-01-01')", "+05:00", False),  # DATETIME only: wall time
    ("INSERT INTO newer (id) VALUES (1)", "+05:00", True),  # unknown table: it may have one
    ("DELETE FROM items WHERE id IN (SELECT id FROM orders)", "+05:00", True),
])
def test_which_statement_events_take_the_row_form(sql, tz, row_form):
    assert _applier().needs_row_form(_ev(sql, tz)) is row_form


def test_binlog_events_ddl_and_row_events_never_wait():
    a = _applier()
    assert not a.needs_row_form(_ev("INSERT INTO orders (id, paid_at) VALUES (1, NOW())", None, source="binlog"))
    assert not a.needs_row_form(_ev("ALTER TABLE orders ADD COLUMN x TIMESTAMP", "+05:00", kind="ddl"))
    rows = ChangeEvent(Gtid("0", "1", 6), "binlog", 1, rows=(RowChange("orders", "shop", "insert", None, {"id": 1}),))
    assert not a.needs_row_form(rows)


def test_as_unsafe_flags_every_statement():
    ev = ChangeEvent(Gtid("0", "1", 5), "ingress", 1, statements=(Statement("INSERT INTO t VALUES (1)", kind="dml"),
                                                                  Statement("UPDATE t SET a = 2", kind="dml")))
    assert not ev.unsafe and as_unsafe(ev).unsafe and all(s.unsafe for s in as_unsafe(ev).statements)
    assert as_unsafe(ev).gtid == ev.gtid and as_unsafe(ev).statements[1].sql == "UPDATE t SET a = 2"
