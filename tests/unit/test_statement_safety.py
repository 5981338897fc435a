"""ingress.statement_safety and ingress.schema_facts: which completed statements are unsafe (applied from
their row copy), given the session's temporary tables and the primary's schema facts; how the facts
follow DDL through the ingress. Pure: the facts are installed from in-memory snapshots."""

from __future__ import annotations

import asyncio

import pytest

from dbmux.ingress.protocol.generic_packets import ErrPacket
from dbmux.ingress.schema_facts import SchemaFacts, SchemaSnapshot, TableFacts, build_tables, implicit_default
from dbmux.ingress.statement_safety import UNSAFE_STATEMENTS, SessionSafety
from dbmux.ingress.statements import plan_query

CLOCK = TableFacts(insert_implicit=frozenset({"created"}), update_implicit=frozenset({"updated"}), unique_keys=1,
                   ordering_keys=(frozenset({"id"}),))
TABLES = {
    ("shop", "plain"): TableFacts(unique_keys=1, ordering_keys=(frozenset({"id"}),)),
    ("shop", "auto"): TableFacts(auto_increment=True, unique_keys=1, ordering_keys=(frozenset({"id"}),)),
    ("shop", "clock"): CLOCK,
    ("shop", "trig"): TableFacts(triggers=True, unique_keys=1, ordering_keys=(frozenset({"id"}),)),
    ("shop", "twokeys"): TableFacts(unique_keys=2, ordering_keys=(frozenset({"id"}), frozenset({"email"}))),
    ("shop", "v"): TableFacts(kind="view"),
    ("shop", "hist"): TableFacts(kind="versioned"),
    ("shop", "legacy"): TableFacts(null_implicit=frozenset({"ts"}), unique_keys=1, ordering_keys=(frozenset({"id"}),)),
    ("other", "Mixed"): TableFacts(unique_keys=1, ordering_keys=(frozenset({"id"}),)),
}


def facts_with(tables=None, lock_mode: int = 1, explicit_defaults: bool = True) -> SchemaFacts:
    snapshot = SchemaSnapshot(dict(TABLES if tables is None else tables), autoinc_lock_mode=lock_mode,
                              explicit_defaults=explicit_defaults)

    async def loader() -> SchemaSnapshot:
        return snapshot

    facts = SchemaFacts(None, 30000, loader=loader)
    assert asyncio.run(facts.reload_once())
    return facts


def run(session: SessionSafety, sql: str, db: str | None = "shop") -> bool:
    """Plan ``sql`` (one statement), dispatch it and judge it as having succeeded: is it unsafe?"""
    plan = plan_query(sql, time_zone="+00:00")
    session.on_dispatch(plan, db)
    return session.settle(0, plan.statements[0], object(), db).unsafe


def reason_of(session: SessionSafety, sql: str, db: str | None = "shop") -> str | None:
    """The reason category the session's rules give ``sql`` (None: they add nothing)."""
    before = {s.labels["reason"]: s.value for m in UNSAFE_STATEMENTS.collect() for s in m.samples
              if s.name.endswith("_total")}
    plan = plan_query(sql, time_zone="+00:00")
    session.on_dispatch(plan, db)
    session.settle(0, plan.statements[0], object(), db)
    after = {s.labels["reason"]: s.value for m in UNSAFE_STATEMENTS.collect() for s in m.samples
             if s.name.endswith("_total")}
    grown = [r for r, v in after.items() if v > before.get(r, 0)]
    assert len(grown) <= 1
    return grown[0] if grown else None


# sql, reason category the schema rules give (None: safe as far as they are concerned)
SCHEMA_CASES = [
    ("INSERT INTO plain (id, a) VALUES (1, 2)", None),
    ("INSERT INTO shop.plain VALUES (1, 2)", None),
    ("UPDATE plain SET a = 1 WHERE id = 2", None),
    ("DELETE FROM plain WHERE id = 2", None),
    ("INSERT INTO other.Mixed (id) VALUES (1)", None),
    ("INSERT INTO other.mixed (id) VALUES (1)", None),  # (lower_case_table_names: found case-insensitively)
    # triggers
    ("INSERT INTO trig (id) VALUES (1)", "trigger"),
    ("UPDATE trig SET a = 1", "trigger"),
    ("DELETE FROM shop.trig", "trigger"),
    ("UPDATE plain JOIN trig ON plain.id = trig.id SET plain.a = 1", "trigger"),  # (superset of the written)
    ("INSERT INTO plain SELECT * FROM trig", None),  # (trig only read)
    # implicit values
    ("INSERT INTO clock (id) VALUES (1)", "implicit_value"),
    ("INSERT INTO clock (id, created) VALUES (1, '2024-01-01')", None),
    ("INSERT INTO clock VALUES (1, '2024-01-01', '2024-01-01')", None),
    ("INSERT INTO clock VALUES ()", "implicit_value"),
    ("INSERT INTO clock (id, created) VALUES (1, DEFAULT)", "implicit_value"),
    ("INSERT INTO clock SET id = 1, created = NOW()", None),  # (NOW() is rewritten into a literal)
    ("INSERT INTO clock (id, created) VALUES (1, '2024-01-01') ON DUPLICATE KEY UPDATE id = 2", "implicit_value"),
    ("INSERT INTO clock (id, created) VALUES (1, '2024-01-01') ON DUPLICATE KEY UPDATE updated = '2024-01-02'",
     None),
    ("REPLACE INTO clock (id) VALUES (1)", "implicit_value"),
    ("UPDATE clock SET a = 1 WHERE id = 1", "implicit_value"),
    ("UPDATE clock SET a = 1, updated = '2024-01-01' WHERE id = 1", None),
    ("UPDATE clock SET updated = DEFAULT WHERE id = 1", "implicit_value"),
    ("UPDATE clock JOIN plain ON clock.id = plain.id SET plain.a = 1, clock.updated = '2024-01-01'",
     "implicit_value"),
    ("DELETE FROM clock WHERE id = 1", None),
    ("INSERT INTO legacy (id, ts) VALUES (1, ?)", "implicit_value"),
    ("UPDATE legacy SET ts = ? WHERE id = 1", "implicit_value"),
    ("UPDATE legacy SET a = 1 WHERE id = 1", None),
    # not a plain table, or not known
    ("INSERT INTO v (id) VALUES (1)", "not_a_table"),
    ("UPDATE hist SET a = 1", "not_a_table"),
    ("INSERT INTO nosuch (id) VALUES (1)", "schema_unknown"),
    ("INSERT INTO plain (id) VALUES (1)", None),
    ("INSERT INTO t (a + 1) VALUES (1)", "not_analysed"),
    # keys, order, auto-increment
    ("INSERT INTO plain (id) VALUES (1) ON DUPLICATE KEY UPDATE a = 2", None),
    ("INSERT INTO twokeys (id) VALUES (1) ON DUPLICATE KEY UPDATE a = 2", "unique_keys"),
    ("UPDATE plain SET a = 1 ORDER BY id LIMIT 3", None),
    ("UPDATE plain SET a = 1 ORDER BY a, id LIMIT 3", None),
    ("UPDATE plain SET a = 1 ORDER BY a LIMIT 3", "limit"),
    ("DELETE FROM twokeys ORDER BY email LIMIT 3", None),
    ("DELETE FROM plain ORDER BY a + 1 LIMIT 3", "limit"),
    ("INSERT INTO auto (a) VALUES (1), (2)", None),
    ("INSERT INTO auto (a) SELECT a FROM plain ORDER BY id", "auto_increment"),
    ("INSERT INTO plain (a) SELECT a FROM auto", None),
]


@pytest.mark.parametrize(("sql", "reason"), SCHEMA_CASES, ids=[c[0][:80] for c in SCHEMA_CASES])
def test_schema_rules(sql, reason):
    assert reason_of(SessionSafety(facts_with()), sql) == reason


def test_multi_row_inserts_into_auto_increment_tables_with_interleaved_lock_mode():
    session = SessionSafety(facts_with(lock_mode=2))
    assert reason_of(session, "INSERT INTO auto (a) VALUES (1), (2)") == "auto_increment"
    assert reason_of(session, "INSERT INTO auto (a) VALUES (1)") is None


def test_the_text_rules_keep_their_flag_and_reads_are_never_judged():
    session = SessionSafety(facts_with())
    assert run(session, "UPDATE plain SET a = RAND()")  # (rewrite's rule)
    assert not run(session, "SELECT * FROM trig")
    assert not run(session, "INSERT INTO plain (id) VALUES (1)")


def test_facts_not_loaded_or_stale_make_every_write_unsafe():
    async def never() -> SchemaSnapshot:
        raise OSError("primary away")

    now = [100.0]
    facts = SchemaFacts(None, 1000, loader=never, clock=lambda: now[0])
    assert reason_of(SessionSafety(facts), "INSERT INTO plain (id) VALUES (1)") == "schema_unknown"
    facts.install(SchemaSnapshot(dict(TABLES)))
    assert reason_of(SessionSafety(facts), "INSERT INTO plain (id) VALUES (1)") is None
    now[0] += 3.5  # three refresh intervals without a successful reload
    assert reason_of(SessionSafety(facts), "INSERT INTO plain (id) VALUES (1)") == "schema_unknown"


def test_rules_off_by_the_switch_change_nothing():
    session = SessionSafety(facts_with(), enabled=False)
    assert not run(session, "CREATE TEMPORARY TABLE tmp (a INT)")
    assert not run(session, "INSERT INTO trig (id) SELECT a FROM tmp")
    assert not run(session, "INSERT INTO clock (id) VALUES (1)")


# ------------------------------------------------------------------------------------ temporary tables


def test_a_session_with_temporary_tables_writes_only_unsafe_statements():
    session = SessionSafety(facts_with())
    assert reason_of(session, "CREATE TEMPORARY TABLE tmp (a INT)") == "temporary_table"
    assert reason_of(session, "INSERT INTO tmp VALUES (1)") == "temporary_table"
    assert reason_of(session, "INSERT INTO plain (id) SELECT a FROM tmp") == "temporary_table"
    assert reason_of(session, "UPDATE plain SET a = 1 WHERE id = 1") == "temporary_table"  # (could read tmp)
    assert not run(session, "SELECT * FROM tmp")  # (reads are never published)
    assert reason_of(session, "DROP TEMPORARY TABLE tmp") == "temporary_table"
    assert reason_of(session, "INSERT INTO plain (id) VALUES (2)") is None  # none left


def test_a_temporary_table_shadowing_a_real_one_and_dropped_by_drop_table():
    session = SessionSafety(facts_with())
    run(session, "CREATE TEMPORARY TABLE plain (id INT)")  # shadows shop.plain
    assert reason_of(session, "INSERT INTO other.Mixed (id) SELECT id FROM shop.plain") == "temporary_table"
    assert reason_of(session, "DROP TABLE plain") == "temporary_table"  # drops the temporary one
    assert reason_of(session, "INSERT INTO plain (id) VALUES (1)") is None
    run(session, "CREATE TEMPORARY TABLE a (id INT)")
    run(session, "CREATE TEMPORARY TABLE b (id INT)")
    run(session, "DROP TEMPORARY TABLE a")
    assert reason_of(session, "INSERT INTO plain (id) VALUES (1)") == "temporary_table"  # b is left
    run(session, "RENAME TABLE b TO c")
    run(session, "DROP TABLE b")
    assert reason_of(session, "INSERT INTO plain (id) VALUES (1)") == "temporary_table"  # c (renamed) is left


def test_statements_that_may_create_temporary_tables_unseen_taint_the_session_until_reset():
    facts = facts_with()
    session = SessionSafety(facts)
    assert run(session, "CALL make_temporary_tables()")  # (unknown: unsafe anyway)
    assert asyncio.run(facts.reload_once())  # (a CALL may also run DDL: the facts are stale until reloaded)
    assert reason_of(session, "INSERT INTO plain (id) VALUES (1)") == "temporary_table"
    session.reset()  # COM_RESET_CONNECTION: the primary dropped them
    assert reason_of(session, "INSERT INTO plain (id) VALUES (1)") is None
    assert run(session, "GRANT SELECT ON shop.* TO someone")  # (cannot create one)
    assert reason_of(session, "INSERT INTO plain (id) VALUES (1)") is None


def test_a_failed_create_temporary_table_creates_nothing():
    session = SessionSafety(facts_with())
    plan = plan_query("CREATE TEMPORARY TABLE tmp (a INT)", time_zone="+00:00")
    session.on_dispatch(plan, "shop")
    session.settle(0, plan.statements[0], ErrPacket(1050, "42S01", "exists"), "shop")
    assert reason_of(session, "INSERT INTO plain (id) VALUES (1)") is None


# ------------------------------------------------------------------------------------ facts follow DDL


# DDL through the ingress, then a write: the reason category the write gets right after the DDL's OK
DDL_CASES = [
    ("CREATE TABLE fresh (id INT AUTO_INCREMENT PRIMARY KEY, a INT DEFAULT 5)", "INSERT INTO fresh (a) VALUES (1)",
     None),
    ("CREATE TABLE fresh (id INT PRIMARY KEY, at DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6))",
     "INSERT INTO fresh (id) VALUES (1)", "schema_unknown"),
    ("CREATE TABLE fresh (id INT PRIMARY KEY, ts TIMESTAMP NULL)", "INSERT INTO fresh (id) VALUES (1)", None),
    ("CREATE TABLE fresh (id INT PRIMARY KEY, u CHAR(36) DEFAULT (UUID()))", "INSERT INTO fresh (id) VALUES (1)",
     "schema_unknown"),
    ("CREATE TABLE fresh LIKE clock", "INSERT INTO fresh (id) VALUES (1)", "schema_unknown"),
    ("CREATE TABLE IF NOT EXISTS fresh (id INT)", "INSERT INTO fresh (id) VALUES (1)", "schema_unknown"),
    ("CREATE TABLE IF NOT EXISTS trig (id INT)", "INSERT INTO trig (id) VALUES (1)", "trigger"),  # (a no-op)
    ("CREATE TABLE fresh (id INT PRIMARY KEY)", "INSERT INTO fresh (id) VALUES (1) ON DUPLICATE KEY UPDATE id = 2",
     "unique_keys"),  # (keys known only after the reload)
    ("CREATE TRIGGER tr AFTER INSERT ON plain FOR EACH ROW SET @x = 1", "INSERT INTO plain (id) VALUES (1)",
     "trigger"),
    ("CREATE DEFINER=`root`@`%` TRIGGER tr BEFORE UPDATE ON shop.plain FOR EACH ROW SET NEW.a = 1",
     "UPDATE plain SET a = 2", "trigger"),
    ("DROP TRIGGER tr", "INSERT INTO trig (id) VALUES (1)", "trigger"),  # (until the reload says otherwise)
    ("ALTER TABLE plain ADD COLUMN b INT DEFAULT 7", "INSERT INTO plain (id) VALUES (1)", None),
    ("ALTER TABLE plain ADD COLUMN at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)", "INSERT INTO plain (id) VALUES (1)",
     "schema_unknown"),
    ("ALTER TABLE plain ADD COLUMN at DATETIME ON UPDATE NOW()", "UPDATE plain SET a = 1", "schema_unknown"),
    ("ALTER TABLE plain ALTER COLUMN a SET DEFAULT (RAND())", "INSERT INTO plain (id) VALUES (1)", "schema_unknown"),
    ("ALTER TABLE plain ADD UNIQUE KEY (a)", "INSERT INTO plain (id) VALUES (1) ON DUPLICATE KEY UPDATE a = 2",
     "unique_keys"),
    ("CREATE INDEX i ON plain (a)", "UPDATE plain SET a = 1 ORDER BY id LIMIT 1", "limit"),
    ("RENAME TABLE trig TO trig2", "INSERT INTO trig2 (id) VALUES (1)", "trigger"),
    ("RENAME TABLE plain TO p2", "INSERT INTO plain (id) VALUES (1)", "schema_unknown"),
    ("DROP TABLE plain", "INSERT INTO plain (id) VALUES (1)", "schema_unknown"),
    ("CREATE OR REPLACE VIEW plain AS SELECT 1 AS id", "INSERT INTO plain (id) VALUES (1)", "not_a_table"),
    ("DROP DATABASE shop", "INSERT INTO plain (id) VALUES (1)", "schema_unknown"),
    ("DROP DATABASE other", "INSERT INTO plain (id) VALUES (1)", None),
    ("TRUNCATE TABLE clock", "INSERT INTO plain (id) VALUES (1)", None),
    ("CREATE PROCEDURE p() BEGIN SELECT 1; END", "INSERT INTO plain (id) VALUES (1)", None),
    ("GRANT SELECT ON shop.* TO u", "INSERT INTO plain (id) VALUES (1)", None),
]


@pytest.mark.parametrize(("ddl", "write", "reason"), DDL_CASES, ids=[c[0][:70] for c in DDL_CASES])
def test_facts_follow_ddl_through_the_ingress(ddl, write, reason):
    facts = facts_with()
    run(SessionSafety(facts), ddl)
    assert reason_of(SessionSafety(facts), write) == reason


def test_timestamp_columns_are_decisive_only_without_explicit_defaults_for_timestamp():
    facts = facts_with(explicit_defaults=False)
    run(SessionSafety(facts), "CREATE TABLE fresh (id INT PRIMARY KEY, ts TIMESTAMP)")  # (gets a clock default)
    assert reason_of(SessionSafety(facts), "INSERT INTO fresh (id) VALUES (1)") == "schema_unknown"
    run(SessionSafety(facts), "ALTER TABLE plain ADD COLUMN ts TIMESTAMP")
    assert reason_of(SessionSafety(facts), "INSERT INTO plain (id) VALUES (1)") == "schema_unknown"


def test_an_alter_without_decisive_parts_in_flight_puts_only_the_keys_in_flux():
    facts = facts_with()
    alter, writer = SessionSafety(facts), SessionSafety(facts)
    plan = plan_query("ALTER TABLE plain ADD COLUMN note VARCHAR(10) DEFAULT 'x', ADD UNIQUE KEY (a)",
                      time_zone="+00:00")
    alter.on_dispatch(plan, "shop")
    assert reason_of(writer, "INSERT INTO plain (id) VALUES (1)") is None  # (a long ALTER: writes go on)
    assert reason_of(writer, "UPDATE plain SET a = 1 WHERE id = 1") is None
    assert reason_of(writer, "INSERT INTO plain (id) VALUES (1) ON DUPLICATE KEY UPDATE a = 2") == "unique_keys"
    assert reason_of(writer, "DELETE FROM plain ORDER BY id LIMIT 1") == "limit"
    alter.settle(0, plan.statements[0], object(), "shop")
    assert reason_of(writer, "INSERT INTO plain (id) VALUES (1) ON DUPLICATE KEY UPDATE a = 2") == "unique_keys"
    assert asyncio.run(facts.reload_once())  # (what the primary says now: here, the old snapshot)
    assert reason_of(writer, "INSERT INTO plain (id) VALUES (1) ON DUPLICATE KEY UPDATE a = 2") is None
    decisive = plan_query("ALTER TABLE plain ADD COLUMN at DATETIME DEFAULT NOW()", time_zone="+00:00")
    alter.on_dispatch(decisive, "shop")
    assert reason_of(writer, "INSERT INTO plain (id) VALUES (1)") == "schema_unknown"


def test_a_ddl_in_flight_makes_writes_of_every_session_to_its_tables_unsafe_until_answered():
    facts = facts_with()
    ddl_session, writer = SessionSafety(facts), SessionSafety(facts)
    plan = plan_query("CREATE TRIGGER tr AFTER INSERT ON plain FOR EACH ROW SET @x = 1", time_zone="+00:00")
    ddl_session.on_dispatch(plan, "shop")
    assert reason_of(writer, "INSERT INTO plain (id) VALUES (1)") == "schema_unknown"  # (may run after the DDL)
    assert reason_of(writer, "INSERT INTO clock (id, created) VALUES (1, '2024-01-01')") is None  # another table
    ddl_session.settle(0, plan.statements[0], ErrPacket(1064, "42000", "syntax"), "shop")
    assert reason_of(writer, "INSERT INTO plain (id) VALUES (1)") is None  # failed: nothing changed
    ddl_session.on_dispatch(plan, "shop")
    ddl_session.close()  # the session ended before the answer
    assert reason_of(writer, "INSERT INTO plain (id) VALUES (1)") is None


def test_a_call_in_flight_puts_every_table_in_flux_and_stale_until_the_reload():
    facts = facts_with()
    caller, writer = SessionSafety(facts), SessionSafety(facts)
    plan = plan_query("CALL migrate()", time_zone="+00:00")
    caller.on_dispatch(plan, "shop")
    assert reason_of(writer, "INSERT INTO other.Mixed (id) VALUES (1)") == "schema_unknown"
    caller.settle(0, plan.statements[0], object(), "shop")
    assert reason_of(writer, "INSERT INTO other.Mixed (id) VALUES (1)") == "schema_unknown"  # (stale)
    assert asyncio.run(facts.reload_once())
    assert reason_of(writer, "INSERT INTO other.Mixed (id) VALUES (1)") is None


def test_a_reload_overlapping_a_schema_change_is_not_installed():
    old = SchemaSnapshot(dict(TABLES))
    session = SessionSafety(None)

    async def scenario() -> None:
        started, release = asyncio.Event(), asyncio.Event()

        async def slow_loader() -> SchemaSnapshot:
            started.set()
            await release.wait()
            return old  # read before the trigger existed

        facts = SchemaFacts(None, 30000, loader=slow_loader)
        facts.install(old)
        session.facts = facts
        load = asyncio.ensure_future(facts.reload_once())
        await started.wait()
        run(session, "CREATE TRIGGER tr AFTER INSERT ON plain FOR EACH ROW SET @x = 1")
        release.set()
        assert await load is False
        assert reason_of(session, "INSERT INTO plain (id) VALUES (1)") == "trigger"

    asyncio.run(scenario())


def test_the_background_refresh_installs_what_the_primary_says_after_a_change():
    calls = []

    async def scenario() -> None:
        snapshots = [SchemaSnapshot(dict(TABLES)),
                     SchemaSnapshot({**TABLES, ("shop", "plain"): TableFacts(triggers=True)})]

        async def loader() -> SchemaSnapshot:
            calls.append(1)
            return snapshots[min(len(calls), 2) - 1]

        facts = SchemaFacts(None, 60000, loader=loader)
        await facts.start(first_load_timeout_s=5)
        assert facts.table("plain", "shop") == TABLES[("shop", "plain")]
        session = SessionSafety(facts)
        run(session, "ALTER TABLE plain COMMENT 'x'")  # asks for a reload
        for _ in range(200):
            if facts.reloads >= 2:
                break
            await asyncio.sleep(0.01)
        assert facts.table("plain", "shop") == TableFacts(triggers=True)
        await facts.stop()

    asyncio.run(scenario())


# ------------------------------------------------------------------------------------ information_schema


@pytest.mark.parametrize(("default", "extra", "mariadb", "implicit"), [
    (None, "", True, False),
    ("NULL", "", True, False),
    ("'abc'", "", True, False),
    ("'current_timestamp()'", "", True, False),
    ("5", "", True, False),
    ("-1.5e3", "", True, False),
    ("current_timestamp()", "on update current_timestamp()", True, True),
    ("current_timestamp(6)", "", True, True),
    ("uuid()", "", True, True),
    ("(1 + 2)", "", True, False),
    ("concat('a',`b`)", "", True, False),
    ("unix_timestamp()", "", True, True),
    ("my_function()", "", True, True),
    ("CURRENT_TIMESTAMP", "DEFAULT_GENERATED", False, True),
    ("CURRENT_TIMESTAMP", "", False, False),  # (MySQL: an unquoted literal string)
    ("uuid()", "DEFAULT_GENERATED", False, True),
    ("(1 + 2)", "DEFAULT_GENERATED", False, False),
    ("abc", "", False, False),
])
def test_implicit_default(default, extra, mariadb, implicit):
    assert implicit_default(default, extra, mariadb) is implicit


def test_build_tables_from_information_schema_rows():
    tables = [("d", "t", "BASE TABLE"), ("d", "v", "VIEW"), ("d", "h", "SYSTEM VERSIONED"), ("d", "s", "SEQUENCE")]
    columns = [
        ("d", "t", "id", None, "auto_increment", "int", "NO"),
        ("d", "t", "Created", "current_timestamp(6)", "", "timestamp", "NO"),
        ("d", "t", "updated", "current_timestamp()", "on update current_timestamp()", "timestamp", "NO"),
        ("d", "t", "n", "5", "", "int", "YES"),
        ("d", "gone", "x", "uuid()", "", "char", "YES"),  # (a table not listed: dropped in between)
    ]
    indexes = [("d", "t", "PRIMARY", 0, "id", ""), ("d", "t", "u", 0, "n", "YES"), ("d", "t", "u", 0, "id", "")]
    facts = build_tables(tables, columns, [("d", "t")], indexes, mariadb=True, explicit_defaults=True)
    assert facts[("d", "t")] == TableFacts(
        triggers=True, insert_implicit=frozenset({"created", "updated"}), update_implicit=frozenset({"updated"}),
        auto_increment=True, unique_keys=2, ordering_keys=(frozenset({"id"}),))
    assert [facts[("d", n)].kind for n in "vhs"] == ["view", "versioned", "sequence"]
    assert ("d", "gone") not in facts
    legacy = build_tables(tables, columns, [], [], mariadb=True, explicit_defaults=False)
    assert legacy[("d", "t")].null_implicit == frozenset({"created", "updated"})


def test_build_tables_integer_keys_and_cascading_foreign_keys():
    """The result cache's facts: a primary key of one integer column; the tables a foreign key changes when
    a parent row changes (CASCADE, SET NULL, SET DEFAULT -- not RESTRICT or NO ACTION)."""
    tables = [("d", n, "BASE TABLE") for n in ("p", "c1", "c2", "c3", "s", "m")]
    pks = [("d", "p", "ID", "bigint"), ("d", "s", "code", "varchar"), ("d", "m", "a", "int"), ("d", "m", "b", "int")]
    fks = [("d", "c1", "d", "p", "RESTRICT", "CASCADE"), ("d", "c2", "d", "p", "SET NULL", "NO ACTION"),
           ("d", "c3", "d", "p", "RESTRICT", "NO ACTION"), ("d", "p", "d", "p", "CASCADE", "CASCADE"),
           ("e", "x", "d", "gone", "CASCADE", "CASCADE")]
    facts = build_tables(tables, [], [], [], mariadb=True, explicit_defaults=True, primary_keys=pks, foreign_keys=fks)
    assert facts[("d", "p")].int_pk == "id"
    assert facts[("d", "s")].int_pk is None and facts[("d", "m")].int_pk is None  # (not integer; two columns)
    assert facts[("d", "p")].children == frozenset({"d.c1", "d.c2", "d.p"})
    assert facts[("d", "c1")].children == frozenset()


def test_writes_of_a_session_without_foreign_key_checks_are_unsafe():
    """The primary neither checked nor cascaded: a target applying the statement would (an ORM's
    teardown emptying a self-referencing table halted the replicas with 1451)."""
    checks = {"on": True}
    session = SessionSafety(facts_with(), foreign_key_checks=lambda: checks["on"])
    assert reason_of(session, "DELETE FROM plain WHERE id = 1") is None
    checks["on"] = False
    assert reason_of(session, "DELETE FROM plain WHERE id = 1") == "foreign_key_checks"
    assert not run(session, "SELECT * FROM plain")  # reads are never judged
    checks["on"] = True
    assert reason_of(session, "DELETE FROM plain WHERE id = 1") is None


@pytest.mark.parametrize(("sql", "expected"), [
    ("ALTER TABLE plain ADD COLUMN t TIMESTAMP DEFAULT CURRENT_TIMESTAMP", "clock_ddl"),
    ("alter table plain add column d datetime(6) not null default now(6)", "clock_ddl"),
    ("ALTER TABLE plain MODIFY c DATE DEFAULT (CURDATE())", "clock_ddl"),
    ("ALTER TABLE plain ADD COLUMN n INT DEFAULT 0", None),
    ("ALTER TABLE plain ADD COLUMN nowhere INT", None),
])
def test_an_alter_table_reading_the_clock_is_unsafe(sql, expected):
    """The rows it fills take the time it runs at: a target applying the ingress copy would use its own
    clock (each replica's own time in a new column of every existing row), the binlog copy carries the
    primary's."""
    assert reason_of(SessionSafety(facts_with()), sql) == expected
