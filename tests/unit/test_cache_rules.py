"""What the result cache keeps and what each write invalidates (issue 16), table-driven, with schema facts
as the ingress would have loaded them, and the topic feed's reading of events."""

from __future__ import annotations

import pytest

from dbmux.core.config import IngressConfig
from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement
from dbmux.core.gtid import Gtid
from dbmux.ingress.cache_feed import event_tables
from dbmux.ingress.cache_session import CacheGate
from dbmux.ingress.schema_facts import SchemaFacts, SchemaSnapshot, TableFacts
from dbmux.ingress.statements import plan_query

FACTS = {("shop", "orders"): TableFacts(), ("shop", "items"): TableFacts(),
         ("shop", "audited"): TableFacts(triggers=True), ("shop", "v_orders"): TableFacts(kind="view"),
         ("other", "t"): TableFacts()}


def _gate(**config) -> CacheGate:
    facts = SchemaFacts(None, 30000, loader=lambda: None)  # type: ignore[arg-type,return-value]
    facts.install(SchemaSnapshot(dict(FACTS)))
    return CacheGate(IngressConfig(cache_bytes=1 << 24, **config), facts)


@pytest.mark.parametrize(("sql", "db", "tables"), [
    ("SELECT * FROM orders WHERE id = 1", "shop", ("shop.orders",)),
    ("SELECT o.id FROM shop.orders o JOIN shop.items i ON i.o = o.id", None, ("shop.orders", "shop.items")),
    ("SELECT * FROM Orders WHERE id = 1", "SHOP", ("shop.orders",)),  # (names compare in lower case)
    ("SELECT * FROM orders WHERE at > NOW()", "shop", None),  # volatile functions
    ("SELECT RAND(), id FROM orders", "shop", None),
    ("SELECT CURRENT_USER(), id FROM orders", "shop", None),
    ("SELECT * FROM v_orders", "shop", None),  # a view: its tables are not known here
    ("SELECT * FROM missing", "shop", None),  # not in the facts
    ("SELECT * FROM orders", None, None),  # no default database: which orders?
    ("SELECT * FROM orders FOR UPDATE", "shop", None),
    ("SELECT @x, id FROM orders", "shop", None),
    ("SELECT 1", "shop", None),
    ("INSERT INTO orders VALUES (1)", "shop", None),
])
def test_what_is_cached(sql, db, tables):
    assert _gate().read_tables(sql, db) == tables


def test_cache_tables_patterns():
    gate = _gate(cache_tables=("shop.*",))
    assert gate.read_tables("SELECT * FROM t", "other") is None
    assert gate.read_tables("SELECT * FROM orders", "shop") == ("shop.orders",)


ALL = None


@pytest.mark.parametrize(("sql", "db", "invalidates"), [
    ("INSERT INTO orders (id) VALUES (1)", "shop", ("shop.orders",)),
    ("INSERT INTO shop.items SELECT * FROM other.t", None, ("shop.items",)),
    ("INSERT INTO audited VALUES (1)", "shop", ALL),  # triggers write elsewhere
    ("INSERT INTO v_orders VALUES (1)", "shop", ALL),  # through a view
    ("INSERT INTO orders VALUES (1) ON DUPLICATE KEY UPDATE n = n + 1", "shop", ALL),
    ("UPDATE orders SET n = 1 WHERE id = 2", "shop", ALL),  # may cascade to child tables
    ("DELETE FROM orders WHERE id = 2", "shop", ALL),
    ("REPLACE INTO orders VALUES (1)", "shop", ALL),
    ("ALTER TABLE orders ADD COLUMN x INT", "shop", ALL),
    ("CALL refresh()", "shop", ALL),
    ("SELECT my_function(id) FROM orders", "shop", ALL),  # a stored function may write
    ("CREATE TEMPORARY TABLE tmp (a INT)", "shop", ()),
    ("SELECT * FROM orders", "shop", ()),
    ("BEGIN", "shop", ()),
    ("SET NAMES utf8mb4", "shop", ()),
])
def test_what_a_write_invalidates(sql, db, invalidates):
    stmt = plan_query(sql, time_zone="+00:00").statements[0]
    assert _gate().write_tables(stmt, db) == invalidates


def _event(source: str, *, rows=(), statements=(), connection_id=None, db="shop") -> ChangeEvent:
    session = SessionContext(connection_id=connection_id) if connection_id is not None else None
    return ChangeEvent(Gtid.parse("0-1-5"), source, 0, db=db, rows=tuple(rows), statements=tuple(statements),
                       session=session)


@pytest.mark.parametrize(("event", "invalidates"), [
    (_event("binlog", rows=[RowChange("orders", "shop", "delete", before={"id": 1}),
                            RowChange("t", "other", "insert", after={"a": 1})]),
     {"shop.orders", "other.t"}),
    (_event("binlog", statements=[Statement("DROP TABLE orders", kind="ddl")]), ALL),
    (_event("ingress", statements=[Statement("INSERT INTO orders VALUES (1)")], connection_id=77),
     {"shop.orders"}),
    (_event("ingress", statements=[Statement("DELETE FROM orders")], connection_id=77), ALL),
    (_event("ingress", statements=[Statement("DELETE FROM orders")], connection_id=5), set()),  # our own
])
def test_what_the_topic_invalidates(event, invalidates):
    gate = _gate()
    gate.own_connections.add(5)
    got = event_tables(gate, event)
    assert (got if got is None else set(got)) == invalidates
