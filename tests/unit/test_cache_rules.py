"""What the result cache keeps and what each write invalidates (issue 16), table-driven, with schema facts
as the ingress would have loaded them, and the topic feed's reading of events."""

from __future__ import annotations

import pytest

from dbmux.core.config import IngressConfig
from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement
from dbmux.core.gtid import Gtid
from dbmux.ingress.cache_feed import event_slots
from dbmux.ingress.cache_session import CacheGate
from dbmux.ingress.classify import classify
from dbmux.ingress.result_cache import read_slots, write_slots
from dbmux.ingress.schema_facts import SchemaFacts, SchemaSnapshot, TableFacts
from dbmux.ingress.statements import plan_query

# orders -> items (ON DELETE CASCADE) -> notes (SET NULL); other.t has no integer key
FACTS = {("shop", "orders"): TableFacts(int_pk="id", unique_keys=1, children=frozenset({"shop.items"})),
         ("shop", "items"): TableFacts(int_pk="id", unique_keys=2, children=frozenset({"shop.notes"})),
         ("shop", "notes"): TableFacts(int_pk="id", unique_keys=1),
         ("shop", "audited"): TableFacts(triggers=True), ("shop", "v_orders"): TableFacts(kind="view"),
         ("other", "t"): TableFacts()}


def _table(t: str) -> tuple:
    return read_slots(t, None)


def _keys(t: str, *keys: int) -> tuple:
    return read_slots(t, frozenset(keys))


def _gate(**config) -> CacheGate:
    facts = SchemaFacts(None, 30000, loader=lambda: None)  # type: ignore[arg-type,return-value]
    facts.install(SchemaSnapshot(dict(FACTS)))
    return CacheGate(IngressConfig(cache_bytes=1 << 24, **config), facts)


@pytest.mark.parametrize(("sql", "db", "slots"), [
    ("SELECT * FROM orders WHERE id = 1", "shop", _keys("shop.orders", 1)),
    ("SELECT * FROM orders WHERE id IN (1, 2)", "shop", _keys("shop.orders", 1, 2)),
    ("SELECT * FROM orders WHERE id > 1", "shop", _table("shop.orders")),
    ("SELECT * FROM other.t WHERE id = 1", "shop", _table("other.t")),  # (no integer primary key)
    ("SELECT o.id FROM shop.orders o JOIN shop.items i ON i.o = o.id WHERE o.id = 1", None,
     _table("shop.orders") + _table("shop.items")),
    ("SELECT * FROM Orders WHERE ID = 1", "SHOP", _keys("shop.orders", 1)),  # (names compare in lower case)
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
def test_what_is_cached(sql, db, slots):
    assert _gate().read_slots(sql, db) == slots


def test_cache_tables_patterns():
    gate = _gate(cache_tables=("shop.*",))
    assert gate.read_slots("SELECT * FROM t", "other") is None
    assert gate.read_slots("SELECT * FROM orders", "shop") == ("shop.orders",)


ALL = None


def _wide(*tables: str) -> set:
    return {s for t in tables for s in write_slots(t, None)}


def _wkeys(t: str, *keys: int) -> set:
    return set(write_slots(t, frozenset(keys)))


CASCADE = _wide("shop.items", "shop.notes")


@pytest.mark.parametrize(("sql", "db", "invalidates"), [
    ("INSERT INTO orders (id) VALUES (1)", "shop", _wkeys("shop.orders", 1)),
    ("INSERT INTO orders (n) VALUES (1)", "shop", _wide("shop.orders")),  # (the key: AUTO_INCREMENT)
    ("INSERT INTO shop.items SELECT * FROM other.t", None, _wide("shop.items")),
    ("INSERT INTO audited VALUES (1)", "shop", ALL),  # triggers write elsewhere
    ("INSERT INTO v_orders VALUES (1)", "shop", ALL),  # through a view
    ("INSERT INTO orders (id) VALUES (1) ON DUPLICATE KEY UPDATE n = n + 1", "shop",
     _wkeys("shop.orders", 1) | CASCADE),
    ("INSERT INTO items (id) VALUES (1) ON DUPLICATE KEY UPDATE n = n + 1", "shop",  # (another unique key)
     _wide("shop.items", "shop.notes")),
    ("UPDATE orders SET n = 1 WHERE id = 2", "shop", _wkeys("shop.orders", 2) | CASCADE),
    ("UPDATE orders SET n = 1 WHERE n = 2", "shop", _wide("shop.orders") | CASCADE),
    ("DELETE FROM orders WHERE id = 2", "shop", _wkeys("shop.orders", 2) | CASCADE),
    ("DELETE FROM notes WHERE id = 2", "shop", _wkeys("shop.notes", 2)),  # (no table references notes)
    ("UPDATE other.t SET n = 1", "shop", _wide("other.t")),
    ("REPLACE INTO orders (id) VALUES (1)", "shop", _wkeys("shop.orders", 1) | CASCADE),
    ("REPLACE INTO items (id) VALUES (1)", "shop", _wide("shop.items", "shop.notes")),
    ("ALTER TABLE orders ADD COLUMN x INT", "shop", ALL),
    ("CALL refresh()", "shop", ALL),
    ("SELECT my_function(id) FROM orders", "shop", ALL),  # a stored function may write
    ("CREATE TEMPORARY TABLE tmp (a INT)", "shop", set()),
    ("SELECT * FROM orders", "shop", set()),
    ("BEGIN", "shop", set()),
    ("SET NAMES utf8mb4", "shop", set()),
])
def test_what_a_write_invalidates(sql, db, invalidates):
    stmt = plan_query(sql, time_zone="+00:00").statements[0]
    got = _gate().write_slots(stmt, db)
    assert (got if got is None else set(got)) == invalidates


def test_cascades_not_known_after_a_foreign_key_change_until_the_reload():
    """A DDL naming foreign keys (or a RENAME) through the ingress, or any DDL seen in the binlog: which
    tables cascade from which is not known until facts loaded after it are installed."""
    stmt = plan_query("DELETE FROM orders WHERE id = 2", time_zone="+00:00").statements[0]
    insert = plan_query("INSERT INTO orders (id) VALUES (3)", time_zone="+00:00").statements[0]
    for change in ("ALTER TABLE notes ADD FOREIGN KEY (o) REFERENCES orders (id) ON DELETE CASCADE",
                   "RENAME TABLE notes TO notes2", None):
        gate, pending = _gate(), None
        if change is None:
            assert event_slots(gate, _event("binlog", statements=[Statement("ALTER TABLE x ADD y INT",
                                                                            kind="ddl")])) is ALL
        else:
            pending = gate.facts.begin_change(classify(change), change, "shop")
        assert gate.write_slots(stmt, "shop") is ALL
        assert gate.write_slots(insert, "shop") == write_slots("shop.orders", frozenset({3}))
        gate.facts.end_change(pending)
        assert gate.write_slots(stmt, "shop") is ALL
        gate.facts.install(SchemaSnapshot(dict(FACTS)))
        assert gate.write_slots(stmt, "shop") is not ALL


def _event(source: str, *, rows=(), statements=(), connection_id=None, db="shop") -> ChangeEvent:
    session = SessionContext(connection_id=connection_id) if connection_id is not None else None
    return ChangeEvent(Gtid.parse("0-1-5"), source, 0, db=db, rows=tuple(rows), statements=tuple(statements),
                       session=session)


@pytest.mark.parametrize(("event", "invalidates"), [
    (_event("binlog", rows=[RowChange("orders", "shop", "delete", before={"id": 1}),
                            RowChange("t", "other", "insert", after={"a": 1})]),
     _wkeys("shop.orders", 1) | CASCADE | _wide("other.t")),
    (_event("binlog", rows=[RowChange("notes", "shop", "update", before={"ID": 1, "n": 1}, after={"n": 2}),
                            RowChange("notes", "shop", "update", before={"id": 2}, after={"id": 3}),
                            RowChange("notes", "shop", "insert", after={"id": 4})]),
     _wkeys("shop.notes", 1, 2, 3, 4)),  # (an update's after image may leave out an unchanged key)
    (_event("binlog", rows=[RowChange("notes", "shop", "delete", before={"n": 1})]), _wide("shop.notes")),
    (_event("binlog", rows=[RowChange("gtids", "dbmux_meta", "update", before={"a": 1}, after={"a": 2})]), set()),
    (_event("binlog", rows=[RowChange("new_table", "shop", "update", before={"a": 1}, after={"a": 2})]), ALL),
    (_event("binlog", statements=[Statement("DROP TABLE orders", kind="ddl")]), ALL),
    (_event("ingress", statements=[Statement("INSERT INTO orders VALUES (1)")], connection_id=77),
     _wide("shop.orders")),
    (_event("ingress", statements=[Statement("DELETE FROM audited")], connection_id=77), ALL),
    (_event("ingress", statements=[Statement("DELETE FROM orders")], connection_id=5), set()),  # our own
])
def test_what_the_topic_invalidates(event, invalidates):
    gate = _gate()
    gate.own_connections.add(5)
    got = event_slots(gate, event)
    assert (got if got is None else set(got)) == invalidates


def test_bound_values_pin_keys_for_prepared_writes_and_reads():
    gate = _gate()
    stmt = plan_query("UPDATE orders SET n = ? WHERE id = ?", time_zone="+00:00").statements[0]
    assert set(gate.write_slots(stmt, "shop", (7, 2))) == _wkeys("shop.orders", 2) | CASCADE
    assert set(gate.write_slots(stmt, "shop", (7, "2"))) == _wide("shop.orders") | CASCADE  # (a string)
    assert set(gate.write_slots(stmt, "shop")) == _wide("shop.orders") | CASCADE
    assert gate.read_slots("SELECT * FROM orders WHERE id = ?", "shop", lambda: (3,)) == _keys("shop.orders", 3)
    asked = []
    assert gate.read_slots("SELECT * FROM orders WHERE id = 3", "shop", lambda: asked.append(1)) == \
        _keys("shop.orders", 3) and not asked  # (values decoded only for a statement with a ?)
    event = _event("ingress", statements=[Statement("INSERT INTO orders (id) VALUES (?)", params=(9,))],
                   connection_id=77)
    assert set(event_slots(gate, event)) == _wkeys("shop.orders", 9)
