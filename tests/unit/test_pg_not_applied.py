"""Statements with no table meaning on a PostgreSQL target (accounts, routines, triggers, events, server
administration, table maintenance) are classified in one place (replicator.pg_types.not_applied), not
applied by the PostgreSQL applier, counted per kind and never a halt."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from dbmux.core.dsn import Dsn
from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement
from dbmux.core.gtid import Gtid
from dbmux.replicator.pg_applier import PostgresApplier
from dbmux.replicator.pg_types import not_applied
from dbmux.replicator.schema_info import StaticSchema, TableInfo

CLASSIFIED = [
    # accounts
    ("CREATE USER u@localhost IDENTIFIED BY PASSWORD '*ABC'", "account", "CREATE USER"),
    ("CREATE OR REPLACE USER 'u'@'%'", "account", "CREATE USER"),
    ("create user x", "account", "CREATE USER"),
    ("ALTER USER u ACCOUNT LOCK", "account", "ALTER USER"),
    ("DROP USER IF EXISTS u", "account", "DROP USER"),
    ("RENAME USER a TO b", "account", "RENAME USER"),
    ("CREATE ROLE r", "account", "CREATE ROLE"),
    ("DROP ROLE IF EXISTS r", "account", "DROP ROLE"),
    ("GRANT SELECT ON d.* TO u", "account", "GRANT"),
    ("  /* app */ grant all on *.* to u", "account", "GRANT"),
    ("REVOKE ALL ON *.* FROM u", "account", "REVOKE"),
    ("SET PASSWORD FOR u = PASSWORD('x')", "account", "SET PASSWORD"),
    ("SET ROLE r", "account", "SET ROLE"),
    ("SET DEFAULT ROLE r FOR u", "account", "SET DEFAULT ROLE"),
    # routines, triggers, events (as written by clients, by MariaDB's binlog and by mysqldump)
    ("CREATE PROCEDURE p() BEGIN SELECT 1; END", "routine", "CREATE PROCEDURE"),
    ("DROP PROCEDURE IF EXISTS p", "routine", "DROP PROCEDURE"),
    ("/*!50003 DROP PROCEDURE IF EXISTS `p` */", "routine", "DROP PROCEDURE"),
    ("CREATE DEFINER=`root`@`localhost` PROCEDURE p() SELECT 1", "routine", "CREATE PROCEDURE"),
    ("CREATE DEFINER='u'@'%' PROCEDURE p() SELECT 1", "routine", "CREATE PROCEDURE"),
    ("CREATE DEFINER=CURRENT_USER() FUNCTION f() RETURNS INT RETURN 1", "routine", "CREATE FUNCTION"),
    ("CREATE FUNCTION f() RETURNS INT RETURN 1", "routine", "CREATE FUNCTION"),
    ("CREATE AGGREGATE FUNCTION f RETURNS STRING SONAME 'x.so'", "routine", "CREATE FUNCTION"),
    ("ALTER PROCEDURE p COMMENT 'x'", "routine", "ALTER PROCEDURE"),
    ("CREATE PACKAGE p AS END", "routine", "CREATE PACKAGE"),
    ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1", "trigger", "CREATE TRIGGER"),
    ("CREATE DEFINER = CURRENT_USER TRIGGER tr AFTER DELETE ON t FOR EACH ROW DELETE FROM u", "trigger",
     "CREATE TRIGGER"),
    ("/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER tr BEFORE INSERT ON t FOR EACH ROW "
     "SET NEW.a = 1 */", "trigger", "CREATE TRIGGER"),
    ("CREATE OR REPLACE DEFINER=`u`@`%` TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW SET NEW.a = 1", "trigger",
     "CREATE TRIGGER"),
    ("DROP TRIGGER IF EXISTS d.tr", "trigger", "DROP TRIGGER"),
    ("CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM t", "event", "CREATE EVENT"),
    ("CREATE DEFINER='u'@'%' EVENT e ON SCHEDULE AT '2030-01-01' DO SELECT 1", "event", "CREATE EVENT"),
    ("ALTER EVENT e DISABLE", "event", "ALTER EVENT"),
    ("DROP EVENT IF EXISTS e", "event", "DROP EVENT"),
    # server administration
    ("FLUSH PRIVILEGES", "server", "FLUSH PRIVILEGES"),
    ("-- rotate\nFLUSH LOGS", "server", "FLUSH LOGS"),
    ("INSTALL SONAME 'ha_x'", "server", "INSTALL SONAME"),
    ("UNINSTALL PLUGIN x", "server", "UNINSTALL PLUGIN"),
    ("CHANGE MASTER TO MASTER_HOST='h'", "server", "CHANGE MASTER"),
    ("START SLAVE", "server", "START SLAVE"),
    ("STOP ALL SLAVES", "server", "STOP ALL"),
    ("RESET MASTER", "server", "RESET MASTER"),
    ("PURGE BINARY LOGS TO 'x'", "server", "PURGE BINARY"),
    ("KILL 5", "server", "KILL"),
    ("KILL QUERY 5", "server", "KILL QUERY"),
    ("CACHE INDEX t IN c", "server", "CACHE INDEX"),
    ("LOAD INDEX INTO CACHE t", "server", "LOAD INDEX"),
    ("CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (HOST 'h')", "server", "CREATE SERVER"),
    ("SHUTDOWN", "server", "SHUTDOWN"),
    ("SET GLOBAL max_connections = 10", "server", "SET GLOBAL"),
    ("SET GLOBAL a = 1, b = 2", "server", "SET GLOBAL"),  # a modifier holds for what follows
    ("SET GLOBAL x = (SELECT 1), y = 2", "server", "SET GLOBAL"),
    ("SET PERSIST a = 1", "server", "SET GLOBAL"),
    # table maintenance
    ("ANALYZE TABLE t", "maintenance", "ANALYZE TABLE"),
    ("ANALYZE NO_WRITE_TO_BINLOG TABLE t", "maintenance", "ANALYZE TABLE"),
    ("OPTIMIZE TABLE t, u", "maintenance", "OPTIMIZE TABLE"),
    ("CHECK TABLE t", "maintenance", "CHECK TABLE"),
    ("REPAIR LOCAL TABLE t", "maintenance", "REPAIR TABLE"),
    ("CHECKSUM TABLE t", "maintenance", "CHECKSUM TABLE"),
    ("ALTER DATABASE d CHARACTER SET utf8mb4", "database", "ALTER DATABASE"),
    # with table meaning (or session/transaction statements): None -> translated, or untranslatable
    ("CREATE VIEW v AS SELECT 1", None, None),  # views are relations clients query
    ("/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */ "
     "/*!50001 VIEW `v` AS select 1 */", None, None),
    ("CREATE OR REPLACE ALGORITHM=MERGE DEFINER=u@h SQL SECURITY INVOKER VIEW v AS SELECT 1", None, None),
    ("DROP VIEW v", None, None),
    ("ANALYZE SELECT 1", None, None),
    ("ANALYZE UPDATE t SET a = 1", None, None),  # MariaDB runs the UPDATE
    ("SET @@global.x = 1, @@session.y = 2", None, None),
    ("SET SESSION a = 1, GLOBAL b = 2", None, None),
    ("SET @x = 1", None, None),
    ("SET sql_mode = ''", None, None),
    ("SET NAMES utf8mb4", None, None),
    ("SET", None, None),
    ("LOAD DATA INFILE 'x' INTO TABLE t", None, None),
    ("START TRANSACTION", None, None),
    ("CREATE DATABASE d", None, None),
    ("CREATE TABLE t (a INT)", None, None),
    ("CREATE OR REPLACE TABLE t (a INT)", None, None),
    ("CREATE TEMPORARY TABLE t (a INT)", None, None),
    ("ALTER ONLINE TABLE t ADD c INT", None, None),
    ("RENAME TABLE a TO b", None, None),
    ("CREATE SEQUENCE s", None, None),
    ("INSERT INTO user VALUES (1)", None, None),
    ("UPDATE grants SET a = 1", None, None),
    ("CALL p()", None, None),
    ("SAVEPOINT s", None, None),
    ("SET 'unterminated", None, None),
    ("", None, None),
]


@pytest.mark.parametrize(("sql", "kind", "verb"), CLASSIFIED, ids=[c[0][:50] for c in CLASSIFIED])
def test_classification(sql, kind, verb):
    assert not_applied(sql) == ((kind, verb) if kind else None)


def test_leading_keywords_of_long_statements():
    body = "INSERT INTO t VALUES ('x;');" * 200
    assert not_applied(f"CREATE DEFINER=`root`@`localhost` PROCEDURE p() BEGIN {body} END") == (
        "routine", "CREATE PROCEDURE")
    assert not_applied("/* " + "c" * 2000 + " */ GRANT ALL ON *.* TO u") == ("account", "GRANT")
    # the first 1024 characters end inside a string: lexed whole
    assert not_applied("CREATE PROCEDURE p() SELECT '" + "x" * 2000 + "'") == ("routine", "CREATE PROCEDURE")
    assert not_applied("INSERT INTO t VALUES ('" + "x" * 5000 + "')") is None


# ------------------------------------------------------------------------------------------ the applier


def _applier(target: str) -> PostgresApplier:
    a = PostgresApplier(Dsn.parse("postgresql://u:p@127.0.0.1:1/db"), target, "topic", Dsn.parse("mysql://u:p@127.0.0.1:1"))
    a._schema = StaticSchema({("d", "t"): TableInfo(("id",), ("id", "a"))}, system_time_zone="UTC")
    return a


def _count(target: str, kind: str) -> float:
    return REGISTRY.get_sample_value("dbmux_replicator_statements_not_applied_total",
                                     {"target": target, "kind": kind}) or 0.0


def _ev(seq: int, *sqls: str, source: str = "binlog", kind: str = "ddl") -> ChangeEvent:
    ctx = SessionContext(db="d", time_zone="+00:00", sql_mode="") if source == "ingress" else None
    return ChangeEvent(Gtid("0", "1", seq), source, 1, db="d", statements=tuple(Statement(s, kind=kind) for s in sqls),
                       session=ctx)


def test_not_applied_statements_are_skipped_and_counted_once_per_transaction(caplog):
    a = _applier("pg_na_1")
    ev = _ev(7, "CREATE USER 'u'@'%' IDENTIFIED BY PASSWORD '*ABC'", "GRANT SELECT ON d.* TO 'u'@'%'")
    with caplog.at_level("INFO", logger="dbmux.replicator.pg_applier"):
        assert a._translate(ev, 3) == []  # nothing to run: the position still advances
    assert _count("pg_na_1", "account") == 2
    assert "0-1-7" in caplog.text and "CREATE USER, GRANT" in caplog.text and "*ABC" not in caplog.text
    a._translate(ev, 3)  # translated again (prepare() failed, a retry): not counted twice
    assert _count("pg_na_1", "account") == 2
    ev = _ev(8, "FLUSH PRIVILEGES", "DROP PROCEDURE IF EXISTS p", "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH "
             "ROW SET NEW.a = 1", "ANALYZE TABLE t")
    assert a._translate(ev, 4) == []
    assert [_count("pg_na_1", k) for k in ("server", "routine", "trigger", "maintenance")] == [1, 1, 1, 1]


def test_mixed_with_table_writes():
    a = _applier("pg_na_2")
    ev = _ev(9, "INSERT INTO t (id, a) VALUES (1, 2)", "KILL 12", "UPDATE t SET a = 3 WHERE id = 1",
             source="ingress", kind="dml")
    assert [sql for sql, *_ in a._translate(ev, 5)] == ['INSERT INTO "d"."t" ("id", "a") VALUES (1, 2)',
                                                         'UPDATE "d"."t" SET "a" = 3 WHERE "id" = 1']
    assert _count("pg_na_2", "server") == 1


@pytest.mark.parametrize("sql", [
    "CREATE USER u", "DROP PROCEDURE IF EXISTS p", "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO DELETE FROM t",
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1"])
def test_never_waits_for_a_row_form(sql):
    assert _applier("pg_na_3").needs_row_form(_ev(10, sql, source="ingress")) is False


def test_row_events_are_untouched():
    a = _applier("pg_na_4")
    ev = ChangeEvent(Gtid("0", "1", 11), "binlog", 1, rows=(RowChange("t", "d", "insert", None, {"id": 1, "a": 2}),))
    assert len(a._translate(ev, 6)) == 1
