"""TransactionCapture (pure): which statements form the transaction behind each GTID the primary reports --
one event per GTID, exactly that GTID's statements, or nothing (the binlog reader's copy then stands).

Each case is a session script: statements as the primary answered them (status flags, the GTID its OK
reported, or an error), fed to one capture; the expected commits are (gtid, statements) for those
published and (gtid, None) for those the capture refuses to attribute. Kinds come from the real classifier.
``CASES`` assume a server that may report a GTID late (MySQL, ``late_reports``), ``MARIADB_CASES`` one that
never does.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dbmux.ingress.capture import StatementOutcome, TransactionCapture, names_one_transaction
from dbmux.ingress.classify import classify
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.statements import COMMIT_SQL, returns_rows

AC = c.SERVER_STATUS_AUTOCOMMIT
IN = c.SERVER_STATUS_IN_TRANS  # in a transaction, autocommit off
IN_AC = IN | AC  # in an explicit transaction (BEGIN), autocommit on
OFF = 0  # no transaction open, autocommit off
CHANGED = c.SERVER_SESSION_STATE_CHANGED  # (in an EOF: the session state changed, a commit say; not reported)


@dataclass(frozen=True)
class Ok:
    sql: str
    flags: int
    gtid: str | None = None
    insert_id: int = 0


@dataclass(frozen=True)
class Eof:
    """A result set's end: an EOF packet (no session state, no insert id)."""
    sql: str
    flags: int


@dataclass(frozen=True)
class OkEnd:
    """A result set's end under CLIENT_DEPRECATE_EOF: an OK packet with session state, no insert id."""
    sql: str
    flags: int
    gtid: str | None = None


@dataclass(frozen=True)
class Err:
    sql: str
    errno: int = 1062


def _outcome(step, *, rows: bool, reports_state: bool, gtid: str | None, insert_id: int = 0) -> StatementOutcome:
    cls = classify(step.sql)
    return StatementOutcome(sql=step.sql, kind=cls.kind, tcl=cls.tcl, unsafe=returns_rows(step.sql, cls.kind),
                            status_flags=step.flags, last_insert_id=insert_id, gtid=gtid, db="shop",
                            implicit_commit=cls.implicit_commit, rows=rows, reports_state=reports_state)


def run(script, capture: TransactionCapture | None = None):
    cap = capture or TransactionCapture(last_gtid="0-1-1")
    commits = []
    for step in script:
        if isinstance(step, Err):
            cap.on_error(step.errno, may_write=classify(step.sql).kind != "read")
            continue
        if isinstance(step, Ok):
            out = _outcome(step, rows=False, reports_state=True, gtid=step.gtid, insert_id=step.insert_id)
        elif isinstance(step, OkEnd):
            out = _outcome(step, rows=True, reports_state=True, gtid=step.gtid)
        else:
            out = _outcome(step, rows=True, reports_state=False, gtid=None)
        commit = cap.on_success(out)
        if commit is not None:
            if commit.unattributed is None:
                commits.append((commit.gtid, [s.sql for s in commit.statements]))
            else:
                assert commit.statements == ()
                commits.append((commit.gtid, None))
    return commits, cap


INS = "INSERT INTO t (a) VALUES (1)"
INS2 = "INSERT INTO t (a) VALUES (2)"
DROP = "DROP TABLE other"

CASES = {
    "autocommit write": ([Ok(INS, AC, "0-1-10")], [("0-1-10", [INS])]),
    "autocommit off, COMMIT": ([Ok(INS, IN), Ok(INS2, IN), Ok("COMMIT", OFF, "0-1-10")],
                               [("0-1-10", [INS, INS2])]),
    # the fix: the ingress's own COMMIT before the DDL reports the transaction's GTID, the DDL its own
    "ingress commits before DDL": ([Ok(INS, IN), Ok(COMMIT_SQL, OFF, "0-1-10"), Ok(DROP, OFF, "0-1-11")],
                                   [("0-1-10", [INS]), ("0-1-11", [DROP])]),
    "ingress commits before CREATE USER": (
        [Ok(INS, IN), Ok(COMMIT_SQL, OFF, "0-1-10"), Ok("CREATE USER u@'%'", OFF, "0-1-11")],
        [("0-1-10", [INS]), ("0-1-11", ["CREATE USER u@'%'"])]),
    # the bug: the DDL's OK reports only its own GTID; the INSERT's (0-1-10) is never seen
    "DDL after writes, no commit first": ([Ok(INS, IN), Ok(DROP, OFF, "0-1-11")], [("0-1-11", None)]),
    "GRANT after writes, no commit first": ([Ok(INS, IN), Ok("GRANT SELECT ON *.* TO u", OFF, "0-1-11")],
                                            [("0-1-11", None)]),
    "DDL with nothing buffered": ([Ok("SELECT 1", IN), Ok(DROP, OFF, "0-1-11")], [("0-1-11", [DROP])]),
    "DDL that writes nothing": ([Ok(INS, IN), Ok(COMMIT_SQL, OFF, "0-1-10"), Ok("ANALYZE TABLE t", OFF),
                                 Ok(INS2, AC, "0-1-11")],
                                [("0-1-10", [INS]), ("0-1-11", [INS2])]),
    # statements that commit implicitly but write nothing: their OK reports the implicit commit's GTID
    "BEGIN inside a transaction": ([Ok("BEGIN", IN_AC), Ok(INS, IN_AC), Ok("BEGIN", IN_AC, "0-1-10"),
                                    Ok(INS2, IN_AC), Ok("COMMIT", AC, "0-1-11")],
                                   [("0-1-10", [INS]), ("0-1-11", [INS2])]),
    "SET autocommit = 1": ([Ok(INS, IN), Ok("SET autocommit = 1", AC, "0-1-10")], [("0-1-10", [INS])]),
    "LOCK TABLES": ([Ok(INS, IN), Ok("LOCK TABLES t WRITE", OFF, "0-1-10"), Ok(INS2, IN),
                     Ok("UNLOCK TABLES", OFF, "0-1-11")],
                    [("0-1-10", [INS]), ("0-1-11", [INS2])]),
    "BEGIN closing a transaction that wrote nothing": (
        [Ok("UPDATE t SET a = 1 WHERE 0", IN), Ok("BEGIN", IN_AC), Ok(INS, IN_AC), Ok("COMMIT", AC, "0-1-10")],
        [("0-1-10", [INS])]),
    # a GTID in the middle of a transaction (a non-transactional table is binlogged at once): neither it nor
    # the rest of that transaction can be attributed; the next transaction can
    "GTID mid-transaction": ([Ok(INS, IN), Ok("INSERT INTO myisam_t VALUES (1)", IN, "0-1-10"), Ok(INS2, IN),
                              Ok("COMMIT", OFF, "0-1-11"), Ok(INS, AC, "0-1-12")],
                             [("0-1-10", None), ("0-1-11", None), ("0-1-12", [INS])]),
    "transaction ended by a statement not known to end it": (
        [Ok(INS, IN), Ok("CALL p()", OFF, "0-1-10"), Ok(INS2, AC, "0-1-11")],
        [("0-1-10", None), ("0-1-11", [INS2])]),
    "ROLLBACK reporting a GTID": ([Ok(INS, IN), Ok("ROLLBACK", OFF, "0-1-10")], [("0-1-10", None)]),
    "a read reporting a GTID (a writing function)": ([Ok("SELECT f()", AC, "0-1-10")], [("0-1-10", None)]),
    "GTID set of several transactions": ([Ok(INS, AC, "3e11fa47-71ca-11e1-9e33-c80aa9429562:5-6")],
                                         [("3e11fa47-71ca-11e1-9e33-c80aa9429562:5-6", None)]),
    "one MySQL GTID": ([Ok(INS, AC, "3e11fa47-71ca-11e1-9e33-c80aa9429562:5")],
                       [("3e11fa47-71ca-11e1-9e33-c80aa9429562:5", [INS])]),
    # RETURNING: answered with a result set
    "RETURNING in a transaction (EOF)": ([Ok("BEGIN", IN_AC),
                                          Eof("DELETE FROM t WHERE a = 1 RETURNING a", IN_AC | CHANGED),
                                          Ok("COMMIT", AC, "0-1-10")],
                                         [("0-1-10", ["DELETE FROM t WHERE a = 1 RETURNING a"])]),
    "RETURNING autocommit (OK terminator with the GTID)": (
        [OkEnd("DELETE FROM t WHERE a = 1 RETURNING a", AC, "0-1-10")],
        [("0-1-10", ["DELETE FROM t WHERE a = 1 RETURNING a"])]),
    # autocommit, EOF: its commit is reported with the next OK, as if that statement's -- not believed
    "RETURNING autocommit (EOF), a no-op write after it": (
        [Eof("DELETE FROM t WHERE a = 1 RETURNING a", AC | CHANGED), Ok("UPDATE t SET a = 1 WHERE 0", AC, "0-1-10"),
         Ok(INS, AC, "0-1-11")],
        [("0-1-10", None), ("0-1-11", [INS])]),
    "RETURNING autocommit (EOF), then a SELECT (EOF) and SET": (
        [Eof("DELETE FROM t WHERE a = 1 RETURNING a", AC | CHANGED), Eof("SELECT 1", AC),
         Ok("SET @x = 1", AC, "0-1-10")],
        [("0-1-10", None)]),
    "RETURNING autocommit (EOF) that changed nothing is no doubt": (
        [Eof("DELETE FROM t WHERE a = 0 RETURNING a", AC), Ok(INS, AC, "0-1-10")], [("0-1-10", [INS])]),
    "a plain SELECT's EOF is no doubt": ([Eof("SELECT a FROM t", AC), Ok(INS, AC, "0-1-10")], [("0-1-10", [INS])]),
    "a SELECT whose EOF flags a change (a writing function)": (
        [Eof("SELECT f()", AC | CHANGED), Ok("UPDATE t SET a = 1 WHERE 0", AC, "0-1-10")], [("0-1-10", None)]),
    "a failed write may have committed (MyISAM, DROP of two tables)": (
        [Err("DROP TABLE a, missing", 1051), Ok("UPDATE t SET a = 1 WHERE 0", AC, "0-1-10"),
         Ok(INS, AC, "0-1-11")],
        [("0-1-10", None), ("0-1-11", [INS])]),
    "a failed read is no doubt": ([Err("SELECT nope", 1054), Ok(INS, AC, "0-1-10")], [("0-1-10", [INS])]),
    "a write error that reports nothing new is forgotten at the next OK": (
        [Ok(INS, IN), Err(INS2), Ok("COMMIT", OFF, "0-1-10")], [("0-1-10", None)]),
    "savepoints": ([Ok(INS, IN), Ok("SAVEPOINT s1", IN), Ok(INS2, IN), Ok("ROLLBACK TO SAVEPOINT s1", IN),
                    Ok("COMMIT", OFF, "0-1-10")],
                   [("0-1-10", [INS])]),
    "deadlock rolls the transaction back": ([Ok(INS, IN), Err("UPDATE t SET a = 2", 1213), Ok(INS2, IN),
                                             Ok("COMMIT", OFF, "0-1-10")],
                                            [("0-1-10", [INS2])]),
    "a repeated GTID is no commit": ([Ok(INS, AC, "0-1-10"), Ok("SET @x = 1", AC, "0-1-10")],
                                     [("0-1-10", [INS])]),
}


@pytest.mark.parametrize("script,expected", CASES.values(), ids=CASES.keys())
def test_one_event_per_gtid(script, expected):
    commits, _ = run(script)
    assert commits == expected


# MariaDB drops a session-state change it could not report (an ERR, an EOF): the next OK never carries
# it, so the next GTID reported is that statement's own -- no doubt needed.
MARIADB_CASES = {
    "a duplicate-key error, then an autocommit write": ([Err(INS), Ok(INS2, AC, "0-1-10")], [("0-1-10", [INS2])]),
    "a write error inside a transaction": ([Ok(INS, IN), Err(INS2), Ok("COMMIT", OFF, "0-1-10")],
                                           [("0-1-10", [INS])]),
    "RETURNING autocommit (EOF), then a write": (
        [Eof("DELETE FROM t WHERE a = 1 RETURNING a", AC | CHANGED), Ok(INS, AC, "0-1-11")], [("0-1-11", [INS])]),
    "still: DDL after writes without the ingress's commit": ([Ok(INS, IN), Ok(DROP, OFF, "0-1-11")],
                                                             [("0-1-11", None)]),
}


@pytest.mark.parametrize("script,expected", MARIADB_CASES.values(), ids=MARIADB_CASES.keys())
def test_one_event_per_gtid_mariadb(script, expected):
    commits, _ = run(script, TransactionCapture(last_gtid="0-1-1", late_reports=False))
    assert commits == expected


def test_a_write_error_then_an_ok_without_gtid_clears_the_doubt():
    commits, _ = run([Err(INS), Ok("SET @x = 1", AC), Ok(INS2, AC, "0-1-10")])
    assert commits == [("0-1-10", [INS2])]


def test_the_implicit_commit_statement_is_never_merged_into_the_transaction_before_it():
    """Whatever the order of reports, no event ever holds both the INSERT and the DDL."""
    for script in ([Ok(INS, IN), Ok(DROP, OFF, "0-1-11")],
                   [Ok(INS, IN), Ok(COMMIT_SQL, OFF, "0-1-10"), Ok(DROP, OFF, "0-1-11")]):
        commits, _ = run(script)
        assert all(not (sqls and INS in sqls and DROP in sqls) for _, sqls in commits)


def test_returning_insert_makes_last_insert_id_unknown():
    ins = "INSERT INTO t (a) VALUES (1) RETURNING id"
    use = "INSERT INTO u (t_id) VALUES (LAST_INSERT_ID())"
    _, cap = run([Ok(INS, IN, insert_id=7), Eof(ins, IN), Ok(use, IN)])
    first, returning, user = cap.pending
    assert returning.unsafe and not first.unsafe  # (the planner flags RETURNING)
    assert user.unsafe and user.last_insert_id == 0  # LAST_INSERT_ID() unknown: row form
    _, cap = run([Ok(INS, IN, insert_id=7), Ok(use, IN)])
    assert not cap.pending[1].unsafe and cap.pending[1].last_insert_id == 7
    _, cap = run([Eof(ins, IN), Ok(INS, IN, insert_id=9), Ok(use, IN)])  # known again
    assert not cap.pending[2].unsafe and cap.pending[2].last_insert_id == 9


NEEDS_COMMIT = {
    "DROP TABLE t": True,
    "CREATE TABLE t2 (a INT)": True,
    "ALTER TABLE t ADD COLUMN b INT": True,
    "TRUNCATE TABLE t": True,
    "CREATE USER u": True,
    "GRANT SELECT ON *.* TO u": True,
    "CREATE TEMPORARY TABLE tt (a INT)": False,  # no implicit commit
    "BEGIN": False,  # commits, but writes nothing itself: its OK reports the commit's GTID
    "LOCK TABLES t WRITE": False,
    "SET autocommit = 1": False,
    "INSERT INTO t VALUES (3)": False,
    "COMMIT": False,
}


@pytest.mark.parametrize("sql,expected", NEEDS_COMMIT.items(), ids=NEEDS_COMMIT.keys())
def test_needs_commit_before(sql, expected):
    cls = classify(sql)
    _, cap = run([Ok(INS, IN)])
    assert cap.needs_commit_before(cls.kind, cls.implicit_commit) is expected
    _, idle = run([Ok(INS, AC, "0-1-10")])  # nothing buffered: never
    assert idle.needs_commit_before(cls.kind, cls.implicit_commit) is False


@pytest.mark.parametrize("gtid,one", [("0-1-5", True), ("uuid:5", True), ("uuid:5-6", False),
                                      ("a:1,b:2", False), ("uuid:1:5", True)])
def test_names_one_transaction(gtid, one):
    assert names_one_transaction(gtid) is one
