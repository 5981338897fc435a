"""Table-driven tests for ingress.classify."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dbmux.ingress.classify as classify_module
from dbmux.ingress.classify import LexError, classify, effective_sql, scan, split_statements
from dbmux.ingress.classify import _classify_lexed as classify_lexed

# sql, kind, tcl, implicit_commit, is_write, extra expectations
CASES = [
    # reads
    ("SELECT 1", "read", None, False, False, {}),
    ("select * from t", "read", None, False, False, {"primary_only": False}),
    ("  \n\tSELECT 1", "read", None, False, False, {}),
    ("/* leading */ SELECT 1", "read", None, False, False, {}),
    ("-- c\nSELECT 1", "read", None, False, False, {}),
    ("# c\nSELECT 1", "read", None, False, False, {}),
    ("SELECT 1--1", "read", None, False, False, {}),
    ("SELECT * FROM t FOR UPDATE", "read", None, False, False, {"primary_only": True}),
    ("SELECT * FROM t LOCK IN SHARE MODE", "read", None, False, False, {"primary_only": True}),
    ("SELECT * FROM t FOR SHARE", "read", None, False, False, {"primary_only": True}),
    ("SELECT a INTO @x FROM t", "read", None, False, False, {"primary_only": True}),
    ("SELECT * INTO OUTFILE '/tmp/x' FROM t", "read", None, False, False, {"primary_only": True}),
    ("SELECT 'FOR UPDATE', `into` FROM t", "read", None, False, False, {"primary_only": False}),
    ("SELECT GET_LOCK('a', 10)", "read", None, False, False, {"primary_only": True}),
    ("SELECT @a := 1", "read", None, False, False, {"primary_only": True}),
    ("SHOW TABLES", "read", None, False, False, {}),
    ("show create table t", "read", None, False, False, {}),
    ("DESCRIBE t", "read", None, False, False, {}),
    ("DESC t", "read", None, False, False, {}),
    ("EXPLAIN SELECT 1", "read", None, False, False, {}),
    ("DO 1", "read", None, False, False, {}),
    ("(SELECT 1) UNION (SELECT 2)", "read", None, False, False, {"verb": "SELECT"}),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "read", None, False, False, {}),
    ("TABLE t", "read", None, False, False, {}),
    ("SELECT NEXTVAL(s)", "dml", None, False, True, {}),
    ("SELECT NEXT VALUE FOR s", "dml", None, False, True, {}),
    ("EXPLAIN ANALYZE SELECT 1", "unknown", None, False, True, {}),
    # dml
    ("INSERT INTO t VALUES (1)", "dml", None, False, True, {"tables": ("t",), "parsed": True}),
    ("insert into `shop`.`orders` (a) values (1)", "dml", None, False, True, {"tables": ("shop.orders",)}),
    ("INSERT INTO db.t SELECT * FROM u", "dml", None, False, True, {"tables": ("db.t", "u")}),
    ("INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = 1", "dml", None, False, True, {"tables": ("t",)}),
    ("REPLACE INTO t VALUES (1)", "dml", None, False, True, {"tables": ("t",), "verb": "REPLACE"}),
    ("UPDATE t SET a=1 WHERE b=2", "dml", None, False, True, {"tables": ("t",)}),
    ("UPDATE t1, t2 SET t1.a = t2.a", "dml", None, False, True, {"parsed": False}),
    ("DELETE FROM t WHERE a=1", "dml", None, False, True, {"tables": ("t",)}),
    ("DELETE t1 FROM t1 JOIN d.t2 ON t1.a = t2.a", "dml", None, False, True, {"tables": ("t1", "d.t2")}),
    ("LOAD DATA INFILE 'x' INTO TABLE d.t", "dml", None, False, True, {"tables": ("d.t",)}),
    ("WITH x AS (SELECT 1 AS a) UPDATE t SET t.a = 1 WHERE t.id IN (SELECT a FROM x)", "dml", None, False, True,
     {"tables": ("t",)}),
    ("/*!40000 INSERT INTO t VALUES (1) */", "dml", None, False, True, {"tables": ("t",)}),
    ("insert into t values ('; DROP TABLE x; --')", "dml", None, False, True, {"tables": ("t",)}),
    # ddl
    ("CREATE TABLE t (a INT)", "ddl", None, True, True, {"tables": ("t",), "verb": "CREATE TABLE"}),
    ("create table if not exists d.t (a int)", "ddl", None, True, True, {"tables": ("d.t",)}),
    ("CREATE TEMPORARY TABLE t (a INT)", "ddl", None, False, False, {"temporary": True, "tables": ("t",)}),
    ("DROP TEMPORARY TABLE IF EXISTS t", "ddl", None, False, False, {"temporary": True}),
    ("DROP TABLE t", "ddl", None, True, True, {"tables": ("t",)}),
    ("DROP TABLE IF EXISTS a, `b`.`c`", "ddl", None, True, True, {"tables": ("a", "b.c")}),
    ("ALTER TABLE t ADD c INT", "ddl", None, True, True, {"tables": ("t",)}),
    ("ALTER ONLINE TABLE t ADD c INT", "ddl", None, True, True, {"tables": ("t",)}),
    ("RENAME TABLE a TO b, c TO d.e", "ddl", None, True, True, {"tables": ("a", "b", "c", "d.e")}),
    ("TRUNCATE TABLE t", "ddl", None, True, True, {"tables": ("t",)}),
    ("TRUNCATE t", "ddl", None, True, True, {"tables": ("t",)}),
    ("CREATE INDEX i ON t (a)", "ddl", None, True, True, {"tables": ("t",)}),
    ("CREATE UNIQUE INDEX i ON d.t (a)", "ddl", None, True, True, {"tables": ("d.t",)}),
    ("DROP INDEX i ON t", "ddl", None, True, True, {"tables": ("t",)}),
    ("CREATE OR REPLACE VIEW v AS SELECT * FROM w", "ddl", None, True, True, {"tables": ("v", "w")}),
    ("CREATE DATABASE d", "ddl", None, True, True, {"tables": ()}),
    ("DROP DATABASE IF EXISTS d", "ddl", None, True, True, {}),
    ("CREATE TABLE t2 AS SELECT * FROM t1", "ddl", None, True, True, {"tables": ("t2", "t1")}),
    ("CREATE DEFINER=`root`@`%` PROCEDURE p() BEGIN SELECT 1; SELECT 2; END", "ddl", None, True, True,
     {"verb": "CREATE PROCEDURE"}),
    ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1", "ddl", None, True, True, {"tables": ("t",)}),
    # account management and admin: unknown, but implicit commits per the MySQL manual
    ("CREATE USER u IDENTIFIED BY 'x'", "unknown", None, True, True, {}),
    ("DROP USER u", "unknown", None, True, True, {}),
    ("GRANT SELECT ON *.* TO u", "unknown", None, True, True, {}),
    ("SET PASSWORD = 'x'", "unknown", None, True, True, {}),
    ("FLUSH PRIVILEGES", "unknown", None, True, True, {}),
    ("ANALYZE TABLE t", "unknown", None, True, False, {}),
    ("OPTIMIZE TABLE t", "unknown", None, True, True, {}),
    ("START SLAVE", "unknown", None, True, False, {}),
    ("CALL p()", "unknown", None, False, True, {}),
    ("EXECUTE s", "unknown", None, False, True, {}),
    ("HANDLER t OPEN", "unknown", None, False, True, {}),
    ("BEGIN NOT ATOMIC SELECT 1; END", "unknown", None, False, True, {}),
    ("", "unknown", None, False, False, {}),
    ("/* only a comment */", "unknown", None, False, False, {}),
    ("SELECT 'unterminated", "unknown", None, False, True, {}),
    # tcl
    ("BEGIN", "tcl", "begin", True, False, {}),
    ("begin work", "tcl", "begin", True, False, {}),
    ("START TRANSACTION", "tcl", "begin", True, False, {}),
    ("START TRANSACTION READ ONLY", "tcl", "begin", True, False, {}),
    ("START TRANSACTION WITH CONSISTENT SNAPSHOT", "tcl", "begin", True, False, {}),
    ("COMMIT", "tcl", "commit", False, False, {}),
    ("COMMIT WORK", "tcl", "commit", False, False, {}),
    ("commit and no chain", "tcl", "commit", False, False, {}),
    ("ROLLBACK", "tcl", "rollback", False, False, {}),
    ("ROLLBACK WORK", "tcl", "rollback", False, False, {}),
    ("SAVEPOINT s1", "tcl", "savepoint", False, False, {}),
    ("ROLLBACK TO SAVEPOINT s1", "tcl", "rollback_to_savepoint", False, False, {}),
    ("ROLLBACK WORK TO s1", "tcl", "rollback_to_savepoint", False, False, {}),
    ("RELEASE SAVEPOINT s1", "tcl", "release_savepoint", False, False, {}),
    ("XA START 'x'", "tcl", "xa", False, False, {"verb": "XA START"}),
    ("XA COMMIT 'x'", "tcl", "xa", False, False, {}),
    ("XA RECOVER", "tcl", "xa", False, False, {}),
    ("LOCK TABLES t READ, d.u AS x WRITE", "tcl", "lock_tables", True, False, {"tables": ("t", "d.u")}),
    ("UNLOCK TABLES", "tcl", "unlock_tables", True, False, {}),
    # session
    ("SET autocommit=0", "session", None, False, False, {"autocommit": False}),
    ("SET autocommit = 1", "session", None, True, False, {"autocommit": True}),
    ("set session autocommit = ON", "session", None, True, False, {"autocommit": True}),
    ("SET LOCAL autocommit=off", "session", None, False, False, {"autocommit": False}),
    ("SET @@session.autocommit = 0", "session", None, False, False, {"autocommit": False}),
    ("SET @@autocommit := 1, sql_mode = ''", "session", None, True, False, {"autocommit": True}),
    ("SET autocommit = @v", "unknown", None, False, False, {}),
    ("SET SESSION sql_mode='STRICT_ALL_TABLES'", "session", None, False, False, {"autocommit": None}),
    ("SET NAMES utf8mb4 COLLATE utf8mb4_bin", "session", None, False, False, {}),
    ("/*!40101 SET NAMES utf8 */", "session", None, False, False, {}),
    ("/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE */;", "session", None, False, False, {}),
    ("SET @x = 1", "session", None, False, False, {}),
    ("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "session", None, False, False, {}),
    ("SET GLOBAL max_connections = 10", "unknown", None, False, False, {}),
    ("SET @@global.x = 1", "unknown", None, False, False, {}),
    ("SET STATEMENT max_statement_time=1 FOR UPDATE t SET a = 1", "dml", None, False, True, {"tables": ("t",)}),
    ("USE shop", "session", None, False, False, {"use_db": "shop"}),
    ("use `my db`", "session", None, False, False, {"use_db": "my db"}),
    ("PREPARE s FROM 'SELECT 1'", "session", None, False, False, {}),
    ("DEALLOCATE PREPARE s", "session", None, False, False, {}),
    ("SELECT 1; SELECT 2", "unknown", None, False, True, {"verb": "MULTI"}),
]


@pytest.mark.parametrize("sql,kind,tcl,implicit,is_write,extra", CASES, ids=[c[0][:50] for c in CASES])
def test_classify(sql, kind, tcl, implicit, is_write, extra):
    c = classify(sql)
    assert c.kind == kind
    assert c.tcl == tcl
    assert c.implicit_commit is implicit
    assert c.is_write is is_write
    for field, value in extra.items():
        assert getattr(c, field) == value, field


def test_classify_is_cached():
    classify.cache_clear()
    sql = "UPDATE cached SET a = 1"
    first = classify(sql)
    assert classify(sql) is first
    assert classify.cache_info().hits == 1


def test_reads_take_the_fast_path_without_sqlglot(monkeypatch):
    mod = classify_module

    def boom(*a, **k):
        raise AssertionError("sqlglot must not be called for obvious reads")

    monkeypatch.setattr(mod.sqlglot, "parse", boom)
    for sql in ("SELECT * FROM big JOIN other USING (id) WHERE x = 1 -- fast", "SHOW PROCESSLIST"):
        assert mod._classify_tokens(sql, mod.scan(sql)).kind == "read"


SPLITS = [
    ("SELECT 1", ["SELECT 1"]),
    ("SELECT 1;", ["SELECT 1"]),
    ("SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"]),
    ("SELECT ';'; SELECT \";\"", ["SELECT ';'", 'SELECT ";"']),
    ("SELECT 'a\\';b'; SELECT 2", ["SELECT 'a\\';b'", "SELECT 2"]),
    ("SELECT 'it''s;'; SELECT 2", ["SELECT 'it''s;'", "SELECT 2"]),
    ("SELECT `a;b` FROM t; SELECT 2", ["SELECT `a;b` FROM t", "SELECT 2"]),
    ("SELECT 1 /* ; */; SELECT 2", ["SELECT 1 /* ; */", "SELECT 2"]),
    ("SELECT 1 -- ;\n; SELECT 2", ["SELECT 1 -- ;", "SELECT 2"]),
    ("SELECT 1 # ;\n; SELECT 2", ["SELECT 1 # ;", "SELECT 2"]),
    ("SELECT 1--1; SELECT 2", ["SELECT 1--1", "SELECT 2"]),
    (" ; ;SELECT 1;;", ["SELECT 1"]),
    ("", []),
    ("/* nothing */", []),
    ("CREATE PROCEDURE p() BEGIN SELECT 1; IF a THEN SELECT 2; END IF; END; SELECT 3",
     ["CREATE PROCEDURE p() BEGIN SELECT 1; IF a THEN SELECT 2; END IF; END", "SELECT 3"]),
    ("CREATE FUNCTION f() RETURNS INT RETURN 1; SELECT f()",
     ["CREATE FUNCTION f() RETURNS INT RETURN 1", "SELECT f()"]),
    ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = CASE WHEN 1 THEN 2 END; END; DO 1",
     ["CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = CASE WHEN 1 THEN 2 END; END", "DO 1"]),
    ("CREATE PROCEDURE p() BEGIN l: LOOP LEAVE l; END LOOP l; WHILE 1 DO SELECT 1; END WHILE; END; DO 2",
     ["CREATE PROCEDURE p() BEGIN l: LOOP LEAVE l; END LOOP l; WHILE 1 DO SELECT 1; END WHILE; END", "DO 2"]),
    ("SELECT 'unterminated; SELECT 2", ["SELECT 'unterminated; SELECT 2"]),
]


@pytest.mark.parametrize("sql,expected", SPLITS)
def test_split_statements(sql, expected):
    assert split_statements(sql) == expected


def test_split_no_backslash_escapes():
    assert split_statements("SELECT 'a\\'; SELECT 2", backslash_escapes=False) == ["SELECT 'a\\'", "SELECT 2"]


def test_scan_offsets_and_executable_comments():
    sql = "/*!50001 SELECT */ `a``b`, @x, @@session.y, ?, 'x' -- c"
    toks = scan(sql)
    assert [(t.type, t.text) for t in toks] == [
        ("word", "SELECT"), ("ident", "`a``b`"), ("op", ","), ("var", "@x"), ("op", ","),
        ("sysvar", "@@session.y"), ("op", ","), ("param", "?"), ("op", ","), ("string", "'x'"),
    ]
    for t in toks:
        assert sql[t.start : t.end] == t.text
    assert toks[1].name == "a`b"
    eff = effective_sql(sql)
    assert len(eff) == len(sql) and eff.startswith("         SELECT    ")


@pytest.mark.parametrize("bad", ["SELECT 'x", 'SELECT "x', "SELECT `x", "SELECT /* x", "/*!5000 SELECT 1"])
def test_scan_rejects_unterminated(bad):
    with pytest.raises(LexError):
        scan(bad)


_PLAIN_ALPHABET = "abcdeFIORSTUVN_0123456789 \t\n,.()=<>!*+-/%"
_WORDS = ["SELECT", "FROM", "t", "INTO", "FOR", "UPDATE", "SHARE", "IN", "VALUE", "NEXTVAL", "setval", "lastval",
          "SLEEP", "get_lock", "LOAD_FILE", "FORMAT", "1e5", "0x1F", "--", "/*", "*/", "-- x", "é", "\u212a", "ſ",
          "FOR UPDATE", "for share", "LOCK IN SHARE MODE", "NEXT VALUE FOR s", "nextval(s)", "INTO OUTFILE",
          "ſhare", "in ſhare mode"]


@settings(max_examples=int(os.environ.get("DBMUX_FUZZ_EXAMPLES", "300")), deadline=None)
@given(head=st.sampled_from(["SELECT ", "select\t", "  SELECT\n", "SELECT", "(SELECT ", "SELECTX "]),
       parts=st.lists(st.one_of(st.text(_PLAIN_ALPHABET, max_size=12), st.sampled_from(_WORDS)), max_size=12))
def test_plain_select_shortcut_classifies_exactly_like_lexing(head, parts):
    """classify() answers plain SELECTs without lexing: the answer must be the lexer's, always."""
    sql = head + " ".join(parts)
    assert classify(sql) == classify_lexed(sql), sql


@pytest.mark.parametrize("sql", [
    "SELECT a FROM t FOR UPDATE", "select a from t lock in share mode", "SELECT NEXT VALUE FOR s",
    "SELECT nextval(s)", "SELECT a FROM t INTO OUTFILE x", "SELECT SLEEP(1)", "SELECT a FROM t for ſhare",
])
def test_special_reads_are_lexed(sql):
    assert classify(sql) == classify_lexed(sql) and classify(sql) != classify("SELECT a FROM t")


@pytest.mark.parametrize("sql", [
    "SELECT c FROM sbtest1 WHERE id=42",
    "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 1 AND 100 ORDER BY c",
    "select sum(k) from sbtest1 where id between 1 and 100",
])
def test_plain_selects_are_not_lexed(monkeypatch, sql):
    expected = classify_lexed(sql)
    assert expected.kind == "read" and not expected.primary_only
    monkeypatch.setattr(classify_module, "scan_with_markers", lambda *a, **k: pytest.fail("lexed"))
    classify.cache_clear()
    assert classify(sql) == expected
