"""Which statement events a PostgreSQL target takes from their row form (pure: the decision only): those
writing MySQL TIMESTAMP columns from a session not in UTC, those it cannot translate faithfully (an
expression into a BLOB column, a table with triggers, ...), and those it might judge against a stale
source schema. The translation made for the decision is the one applied (translated once)."""

from __future__ import annotations

import pytest
from asyncpg import BitString

from dbmux.core.dsn import Dsn
from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement
from dbmux.core.gtid import Gtid
from dbmux.replicator import pg_applier
from dbmux.replicator.pg_applier import PostgresApplier
from dbmux.replicator.pg_clock import is_utc
from dbmux.replicator.schema_info import StaticSchema, TableInfo
from dbmux.replicator.streamed import as_unsafe


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


def _applier(schema: StaticSchema = SCHEMA) -> PostgresApplier:
    a = PostgresApplier(Dsn.parse("postgresql://u:p@127.0.0.1:1/db"), "pgt", "topic", Dsn.parse("mysql://u:p@127.0.0.1:1"))
    a._schema = schema  # what connect() loads from the primary
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
    # unknown table in any session: dropped on the source since (the schema is today's); the row form
    # carries its column types (a BIT column written as 1 halted a PostgreSQL shard)
    ("INSERT INTO gone (id, b) VALUES (1, 1)", "+00:00", True),
    ("UPDATE gone SET b = 0 WHERE id = 1", "+00:00", True),
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


# ------------------------------------------------------------------------------------------ faithful translation

TYPED = StaticSchema({
    ("p3", "big"): TableInfo(("id",), ("id", "b", "note"), retyped={"b": ("longblob", ())}),
    ("p3", "tagged"): TableInfo(("id",), ("id", "e"), retyped={"e": ("enum", ("on", "off"))}),
    ("p3", "audited"): TableInfo(("id",), ("id", "a"), triggers=True),
    ("p3", "plain"): TableInfo(("id",), ("id", "a")),
}, system_time_zone="UTC")


def _ingress(seq: int, *sqls: str, kind: str = "dml", params: tuple | None = None) -> ChangeEvent:
    return ChangeEvent(Gtid("0", "1", seq), "ingress", 1, db="p3", session=SessionContext(db="p3", time_zone="SYSTEM"),
                       statements=tuple(Statement(s, params=params, kind=kind) for s in sqls))


@pytest.mark.parametrize("sql,params,row_form", [
    ("INSERT INTO p3.big VALUES (2, REPEAT('z', 1), 'n')", None, True),  # bytea but expression of type text
    ("INSERT INTO p3.big VALUES (2, 'z', 'n')", None, False),
    ("INSERT INTO big (id, b) VALUES (?, ?)", (3, b"\x00"), False),
    ("UPDATE big SET note = CONCAT(note, '!') WHERE id = 1", None, False),
    ("UPDATE big SET b = CONCAT(b, '!') WHERE id = 1", None, True),
    ("UPDATE tagged SET e = 1 WHERE id = 1", None, True),  # MySQL: ENUM index 1 = 'on'
    ("UPDATE tagged SET e = 'off' WHERE id = 1", None, False),
    ("INSERT INTO audited (id, a) VALUES (1, 2)", None, True),  # the trigger's changes are in the row form
    ("INSERT INTO plain (id, a) VALUES (1, 2)", None, False),
    ("UPDATE plain SET a = 1 ORDER BY id LIMIT 1", None, True),  # untranslatable
    ("DELETE p, a FROM plain p JOIN audited a ON p.id = a.id", None, True),
    ("INSERT INTO plain (id, a) VALUES (1, my_func(2))", None, True),
    ("SAVEPOINT s1", None, True),
    ("CALL refill()", None, True),
    ("SET @x = 1", None, True),
    ("SET sql_mode = ''", None, False),
])
def test_statements_that_cannot_be_translated_faithfully_take_the_row_form(sql, params, row_form):
    assert _applier(TYPED).needs_row_form(_ingress(5, sql, params=params)) is row_form


def test_one_unfaithful_statement_sends_the_whole_event():
    a = _applier(TYPED)
    assert a.needs_row_form(_ingress(5, "INSERT INTO plain (id, a) VALUES (1, 2)",
                                     "INSERT INTO big VALUES (2, REPEAT('z', 1), 'n')"))
    assert not a._ahead  # the first statement's translation is not kept for nothing


def test_translated_once(monkeypatch):
    a = _applier(TYPED)
    calls: list[str] = []
    real = pg_applier.translate_statement

    def counting(sql, *args, **kw):
        calls.append(sql)
        return real(sql, *args, **kw)

    monkeypatch.setattr(pg_applier, "translate_statement", counting)
    ev = _ingress(5, "INSERT INTO plain (id, a) VALUES (1, 2)", "UPDATE big SET note = 'x' WHERE id = 1")
    assert not a.needs_row_form(ev)
    prepared = a.prepare([(ev, 40)], None, {})  # type: ignore[arg-type]  # (positions are not read)
    assert [p[0] for p in prepared or []] == ['INSERT INTO "p3"."plain" ("id", "a") VALUES (1, 2)',
                                              'UPDATE "p3"."big" SET "note" = \'x\' WHERE "id" = 1']
    assert len(calls) == 2 and len(a._ahead) == 2
    a.prepare([(ev, 40)], None, {})  # type: ignore[arg-type]  # again (a retry): the kept translations
    import dataclasses

    copy = dataclasses.replace(ev, statements=tuple(dataclasses.replace(st) for st in ev.statements))
    a.prepare([(copy, 40)], None, {})  # type: ignore[arg-type]  # a shard's copy, routed again at release
    assert len(calls) == 2


def test_translations_kept_are_bounded(monkeypatch):
    monkeypatch.setattr(pg_applier, "AHEAD_MAX", 3)
    a = _applier(TYPED)
    for seq in range(1, 10):
        assert not a.needs_row_form(_ingress(seq, f"INSERT INTO plain (id, a) VALUES ({seq}, 2)"))
    assert len(a._ahead) == 3 and a._ahead_bytes == sum(len(v[0].sql) + len(v[2][0].sql) for v in a._ahead.values())


async def test_ddl_consumed_but_not_applied_yet(monkeypatch):
    """DML right behind DDL on its table is judged against the schema before the DDL: row form, until
    the DDL is applied and the schema reloaded. Other tables are unaffected."""
    a = _applier(TYPED)
    assert not a.needs_row_form(_ingress(5, "ALTER TABLE plain MODIFY a LONGBLOB", kind="ddl"))
    assert a.needs_row_form(_ingress(6, "INSERT INTO plain (id, a) VALUES (2, REPEAT('z', 1))"))
    assert not a.needs_row_form(_ingress(7, "INSERT INTO big VALUES (2, 'z', 'n')"))
    assert not a.needs_row_form(ChangeEvent(Gtid("0", "1", 8), "binlog", 1, statements=(
        Statement("CREATE TRIGGER tr BEFORE INSERT ON p3.big FOR EACH ROW SET NEW.note = 'x'", kind="ddl"),)))
    assert a.needs_row_form(_ingress(9, "INSERT INTO big VALUES (3, 'z', 'n')"))  # (DROP TRIGGER names no table)

    async def reload(dsn):
        # the binlog reader's copy of the ALTER, consumed while the schema loads
        assert not a.needs_row_form(ChangeEvent(Gtid("0", "1", 5), "binlog", 1, statements=(
            Statement("ALTER TABLE p3.plain MODIFY a LONGBLOB", kind="ddl"),)))
        return StaticSchema({**TYPED.tables, ("p3", "plain"): TableInfo(("id",), ("id", "a"),
                                                                       retyped={"a": ("longblob", ())})})

    monkeypatch.setattr(pg_applier, "load_source_schema", reload)
    await a._reload_schema()  # after applying the DDL
    assert not a._ddl_pending  # (nothing left waiting for a reload that would never come)
    assert a.needs_row_form(_ingress(10, "INSERT INTO plain (id, a) VALUES (2, REPEAT('z', 1))"))  # (now: BLOB)
    assert not a.needs_row_form(_ingress(11, "INSERT INTO plain (id, a) VALUES (2, 'z')"))
    # the binlog reader's copy of the DDL, consumed after it was applied: nothing to wait for
    assert not a.needs_row_form(ChangeEvent(Gtid("0", "1", 5), "binlog", 1, statements=(
        Statement("ALTER TABLE p3.plain MODIFY a LONGBLOB", kind="ddl"),)))
    assert not a.needs_row_form(_ingress(12, "INSERT INTO plain (id, a) VALUES (3, 'z')"))


@pytest.mark.parametrize("ddl,tz,dml,insert_id,row_form", [
    ("CREATE TABLE plain2 (id INT PRIMARY KEY, v VARCHAR(10) CHARACTER SET utf8mb4)", "+00:00",
     "INSERT INTO plain2 (id, v) VALUES (6, 'x')", 0, False),
    ("ALTER TABLE plain2 ADD COLUMN note TEXT, ADD INDEX i (a)", "+00:00", "INSERT INTO plain2 (id) VALUES (6)", 0,
     False),
    # a table created right before: judged as its definition says
    ("CREATE TABLE plain2 (id INT AUTO_INCREMENT PRIMARY KEY, v VARBINARY(10))", "+00:00",
     "INSERT INTO plain2 (v) VALUES ('x')", 7, False),
    ("CREATE TABLE plain2 (id INT PRIMARY KEY, v VARBINARY(10))", "+00:00",
     "INSERT INTO plain2 (id, v) VALUES (6, REPEAT('x', 2))", 0, True),
    ("CREATE TABLE plain2 (id INT PRIMARY KEY, ts TIMESTAMP NULL)", "+05:00", "INSERT INTO plain2 (id) VALUES (6)", 0,
     True),
    ("CREATE TABLE plain2 (id INT PRIMARY KEY, ts TIMESTAMP NULL)", "+00:00", "INSERT INTO plain2 (id) VALUES (6)", 0,
     False),
    # other DDL giving such columns: the next write to its table waits for the row form
    ("ALTER TABLE plain2 ADD COLUMN e ENUM('x', 'y')", "+00:00", "INSERT INTO plain2 (id) VALUES (6)", 0, True),
    ("ALTER TABLE plain2 ADD COLUMN ts TIMESTAMP NULL", "+00:00", "INSERT INTO plain2 (id) VALUES (6)", 0, False),
    ("ALTER TABLE plain2 ADD COLUMN ts TIMESTAMP NULL", "+05:00", "INSERT INTO plain2 (id) VALUES (6)", 0, True),
])
def test_ddl_consumed_right_before(ddl, tz, dml, insert_id, row_form):
    """Most DDL (CREATE TABLE with plain types, indexes) changes nothing for these decisions, and a table
    created right before is judged by its definition: the write right behind keeps its statement form
    (no wait for a row copy: pipelines without the binlog reader keep working). Other tables are never
    in doubt."""
    known = {("p3", "plain2"): TableInfo(("id",), ("id", "a"))} if ddl.startswith("ALTER") else {}
    a = _applier(StaticSchema({**TYPED.tables, **known}))  # (a CREATE TABLE's table is new to the schema)
    ctx = SessionContext(db="p3", time_zone=tz)
    assert not a.needs_row_form(ChangeEvent(Gtid("0", "1", 5), "ingress", 1, db="p3", session=ctx,
                                            statements=(Statement(ddl, kind="ddl"),)))
    ev = ChangeEvent(Gtid("0", "1", 6), "ingress", 1, db="p3", session=ctx,
                     statements=(Statement(dml, insert_id=insert_id),))
    assert a.needs_row_form(ev) is row_form
    ev = ChangeEvent(Gtid("0", "1", 7), "ingress", 1, db="p3", session=ctx,
                     statements=(Statement("INSERT INTO plain (id) VALUES (7)"),))
    assert not a.needs_row_form(ev)


async def test_a_decision_holds_when_later_ddl_reaches_the_schema_first(monkeypatch):
    """CREATE TABLE, a seed INSERT, CREATE TRIGGER in quick succession: the INSERT came before the trigger,
    so its statement form is right; the schema reloaded after the CREATE TABLE already shows the trigger.
    The INSERT is applied as translated when it was consumed, not translated again (which would refuse
    it and halt the target)."""
    a = _applier(TYPED)
    ddl = _ingress(5, "CREATE TABLE seeded (id INT PRIMARY KEY, v VARCHAR(5))", kind="ddl")
    seed = _ingress(6, "INSERT INTO seeded (id, v) VALUES (1, 'a')")
    trigger = _ingress(7, "CREATE TRIGGER tr BEFORE INSERT ON seeded FOR EACH ROW SET NEW.v = 'b'", kind="ddl")
    assert [a.needs_row_form(ev) for ev in (ddl, seed, trigger)] == [False, False, False]

    async def reload(dsn):
        return StaticSchema({**TYPED.tables, ("p3", "seeded"): TableInfo(("id",), ("id", "v"), triggers=True)})

    monkeypatch.setattr(pg_applier, "load_source_schema", reload)
    await a._reload_schema()  # (apply() does this after the CREATE TABLE)
    assert a.prepare([(seed, 41)], None, {}) == [  # type: ignore[arg-type]  # (positions are not read)
        ('INSERT INTO "p3"."seeded" ("id", "v") VALUES (1, \'a\')', (), seed, 41)]
    # consumed now, it is judged against the schema that shows the trigger
    assert a.needs_row_form(_ingress(8, "INSERT INTO seeded (id, v) VALUES (2, 'a')"))


def test_bit_columns_of_row_images_go_as_bit_strings():
    """The binlog reader gives BIT(n) values as ints; PostgreSQL's BIT VARYING(n) takes n bits."""
    schema = StaticSchema({("p3", "f"): TableInfo(("id",), ("id", "b"), retyped={"b": ("bit", ())}, bits={"b": 3})})
    rows = (RowChange("f", "p3", "insert", None, {"id": 1, "B": 5}),
            RowChange("f", "p3", "update", {"id": 1, "B": 5}, {"id": 1, "B": None}))
    out = _applier(schema)._translate(ChangeEvent(Gtid("0", "1", 9), "binlog", 1, rows=rows), 3)
    assert [args for _, args, _, _ in out] == [(1, BitString("101")), (1, None, 1)]


def test_a_statement_released_in_its_statement_form_is_applied_though_its_table_is_gone_since():
    """Judged when consumed (the table known then); applied later, after a reload of the schema that no
    longer has the table (dropped on the primary meanwhile), from a shard's own copy of the statement (not
    the one translated ahead). SQLAlchemy's suite halted both shards so: 'writing sqla_ingress.a, which is
    not in the source schema'."""
    import dataclasses

    a = _applier(StaticSchema({("shop", "items"): TableInfo(("id",), ("id", "made"))}, system_time_zone="UTC"))
    ev = _ev("INSERT INTO items (id, made) VALUES (1, '2024-01-01')", "+00:00")
    assert a.needs_row_form(ev) is False
    a._schema, a._provisional = StaticSchema({}, system_time_zone="UTC"), None  # (what _reload_schema does)
    routed = dataclasses.replace(ev, statements=tuple(dataclasses.replace(s) for s in ev.statements))
    assert [sql for sql, *_ in a._translate(routed, 3)] == [
        'INSERT INTO "shop"."items" ("id", "made") VALUES (1, \'2024-01-01\')']
    assert a.needs_row_form(_ev("INSERT INTO items (id, made) VALUES (2, '2024-01-01')", "+00:00"))  # judged: rows


def test_a_statement_judged_for_an_earlier_event_keeps_its_translation():
    """SQLAlchemy's suite inserts the same fixture rows in test after test. An event judged in statement
    form kept its translation; a later event with the same statement, judged row form, took it away; the
    earlier one, applied after the primary (and the reloaded schema) had lost its table, was translated
    again: 'INSERT generating auto-increment ids without a known AUTO_INCREMENT column', a halted shard.
    Its translation stays; and a table dropped since is still known to the apply-time schema."""
    ai = StaticSchema({("shop", "items"): TableInfo(("id",), ("id", "made"), auto_increment="id")},
                      system_time_zone="UTC")
    a = _applier(ai)
    insert = Statement("INSERT INTO items (id, made) VALUES (2, '2024-01-01'), (3, '2024-01-02')", kind="dml",
                       insert_id=3)
    ctx = SessionContext(db="shop", time_zone="+00:00", sql_mode="")
    first = ChangeEvent(Gtid("0", "1", 5), "ingress", 1, statements=(insert,), session=ctx)
    later = ChangeEvent(Gtid("0", "1", 9), "ingress", 1, session=ctx,
                        statements=(insert, Statement("SAVEPOINT s", kind="other")))
    assert a.needs_row_form(first) is False and a.needs_row_form(later) is True
    a._schema = StaticSchema({}, system_time_zone="UTC")  # reloaded after the primary dropped items
    a._applying_schema = None
    [(sql, args, _, _)] = a._translate(first, 7)
    assert sql.startswith('INSERT INTO "shop"."items"') and args == ()
    a._ahead.clear()  # not kept (evicted): the apply-time schema still knows the table it had
    a._schema = ai
    a._applying_schema = None
    a._gone.clear()
    pg_applier.remember_gone(a._gone, ai.tables, {})
    a._schema = StaticSchema({}, system_time_zone="UTC")
    assert a._translate(first, 7)[0][0].startswith('INSERT INTO "shop"."items"')
