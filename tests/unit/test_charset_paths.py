"""A statement's character set on every path (pure): captured byte-exact by the ingress, applied as the
same bytes in the same character set by MySQL targets, taken from the row form by PostgreSQL and
shard targets, redacted in its bytes."""

from __future__ import annotations

import pytest

from dbmux.core.dsn import Dsn
from dbmux.core.events import ChangeEvent, SessionContext, Statement
from dbmux.core.gtid import Gtid
from dbmux.core.passwords import redact_event
from dbmux.ingress.capture import StatementOutcome, TransactionCapture
from dbmux.replicator.mysql_applier import MySQLApplier
from dbmux.replicator.mysql_statements import statement_steps
from dbmux.replicator.pg_applier import PostgresApplier
from dbmux.replicator.positions import PartitionKey, TargetPosition
from dbmux.replicator.schema_info import StaticSchema, TableInfo

ISSUE_BYTES = b"INSERT INTO t (v) VALUES ('caf\xc3\xa9')"  # issue 20 #4: valid UTF-8, sent after SET NAMES latin1
BINARY_LITERAL = b"INSERT INTO t (b) VALUES (_binary'\xff\x00\x80', X'FF00')"  # issue 12 #6

# (statement bytes as the client sent them, session character_set_client, travels as text?)
CAPTURED = [
    (ISSUE_BYTES, "latin1", False),
    (ISSUE_BYTES, "utf8mb4", True),
    (ISSUE_BYTES, "cp1251", False),
    (ISSUE_BYTES, "binary", False),
    (b"INSERT INTO t (v) VALUES ('caf\xe9')", "latin1", False),
    (BINARY_LITERAL, "utf8mb4", False),
    (b"INSERT INTO t (v) VALUES (X'FF00'), ('plain')", "latin1", True),
]


@pytest.mark.parametrize("data,charset,as_text", CAPTURED, ids=[f"{c}-{d[-14:]!r}" for d, c, _ in CAPTURED])
def test_capture_keeps_the_bytes_and_their_charset(data, charset, as_text):
    cap = TransactionCapture(last_gtid="0-1-1")
    commit = cap.on_success(StatementOutcome(
        sql=data.decode("utf-8", "surrogateescape"),  # how the relay holds a COM_QUERY's text
        kind="dml", tcl=None, unsafe=False, status_flags=0x0002, last_insert_id=0, gtid="0-1-2", charset=charset))
    assert commit is not None
    (stmt,) = commit.statements
    assert stmt.data == data and stmt.charset == charset
    assert (stmt.raw is None) is as_text


def _latin1_event(seq: int = 1) -> ChangeEvent:
    return ChangeEvent(Gtid("0", "1", seq), "ingress", 1000, "d",
                       statements=(Statement.from_bytes(ISSUE_BYTES, "latin1"),),
                       session=SessionContext(db="d", sql_mode="", time_zone="+00:00", charset="latin1"))


def _sent(sql: str) -> bytes:
    """What the driver puts on the wire for ``sql`` (aiomysql: UTF-8 with surrogateescape)."""
    return sql.encode("utf-8", "surrogateescape")


def test_mysql_target_runs_the_same_bytes_in_the_same_charset():
    before, sql, after = statement_steps(_latin1_event().statements[0], _latin1_event().session)
    assert before == ["SET character_set_client = 'latin1', character_set_connection = 'latin1'"]
    assert _sent(sql) == ISSUE_BYTES
    assert after == ["SET character_set_client = 'utf8mb4', character_set_connection = 'utf8mb4'"]
    binary = Statement.from_bytes(BINARY_LITERAL, "utf8mb4")
    assert statement_steps(binary, None) == ([], binary.raw.decode("utf-8", "surrogateescape"), [])
    assert _sent(statement_steps(binary, None)[1]) == BINARY_LITERAL
    v1 = Statement("INSERT INTO t VALUES ('café')")  # charset unknown (envelope v1): the applier's own
    assert statement_steps(v1, SessionContext(charset="latin1")) == ([], v1.sql, [])


def test_parameters_are_text_in_the_statements_charset():
    st_ = Statement("UPDATE t SET v = ? WHERE id = ?", (b"caf\xe9", 1), charset="cp1251")
    _, sql, _ = statement_steps(st_, SessionContext(charset="utf8mb4"))  # the statement's, not the commit's
    assert sql == "UPDATE t SET v = _cp1251 X'636166e9' WHERE id = 1"


def test_group_commit_request_switches_charset_around_the_statement_only():
    applier = MySQLApplier.__new__(MySQLApplier)
    applier.target, applier.topic, applier._pk_cache = "t1", "topic", {}
    utf8 = ChangeEvent(Gtid("0", "1", 2), "ingress", 1000, "d", statements=(Statement("UPDATE t SET v = 'é'"),),
                       session=SessionContext(db="d", sql_mode="", time_zone="+00:00", charset="utf8mb4"))
    events = [_latin1_event(1), utf8]
    sql = applier.prepare([(ev, i) for i, ev in enumerate(events)],
                          TargetPosition({PartitionKey("topic", 0): 2}, {"0": 2}), {"0": events[-1]})
    assert sql is not None
    parts = _sent(sql).split(b";\n")
    i = parts.index(ISSUE_BYTES)
    assert parts[i - 1] == b"SET character_set_client = 'latin1', character_set_connection = 'latin1'"
    assert parts[i + 1] == b"SET character_set_client = 'utf8mb4', character_set_connection = 'utf8mb4'"
    assert parts.index("UPDATE t SET v = 'é'".encode()) > i + 1  # and everything after it in utf8mb4
    assert sum(p.startswith(b"SET character_set_client") for p in parts) == 2


SCHEMA = StaticSchema({("d", "t"): TableInfo(("id",), ("id", "v", "b"))}, system_time_zone="UTC")


@pytest.mark.parametrize("stmt,row_form", [
    (Statement.from_bytes(ISSUE_BYTES, "latin1"), True),
    (Statement.from_bytes(BINARY_LITERAL, "utf8mb4"), True),
    (Statement("INSERT INTO t (id, v) VALUES (1, ?)", (b"caf\xe9",), charset="latin1"), True),
    (Statement.from_bytes(ISSUE_BYTES, "utf8mb4"), False),
    (Statement("INSERT INTO t (id, v) VALUES (1, 'plain')", charset="latin1"), False),  # ASCII reads the same
])
def test_postgresql_takes_the_row_form_of_what_is_not_utf8(stmt, row_form):
    pg = PostgresApplier(Dsn.parse("postgresql://u:p@127.0.0.1:1/db"), "pgt", "topic",
                         Dsn.parse("mysql://u:p@127.0.0.1:1"))
    pg._schema = SCHEMA
    ev = ChangeEvent(Gtid("0", "1", 5), "ingress", 1, "d", statements=(stmt,),
                     session=SessionContext(db="d", time_zone="+00:00", sql_mode="", charset=stmt.charset))
    assert pg.needs_row_form(ev) is row_form


def test_shard_targets_take_the_row_form_of_what_is_not_utf8():
    from .test_shard_routing import ROUTERS, ingress

    assert ROUTERS["a"].route(ingress(Statement.from_bytes(b"UPDATE t SET c = 'caf\xe9' WHERE id = 5",
                                                           "latin1"))).unsafe
    assert not ROUTERS["a"].route(ingress(Statement("UPDATE t SET c = 'x' WHERE id = 5", charset="latin1"))).unsafe


def test_a_password_in_the_bytes_is_redacted_in_the_bytes():
    stmt = Statement.from_bytes(b"CREATE USER u IDENTIFIED BY 'p\xe9ss' -- caf\xe9", "latin1", kind="other")
    red = redact_event(ChangeEvent(Gtid("0", "1", 1), "ingress", 1, statements=(stmt,))).statements[0]
    assert b"p\xe9ss" not in red.data and b"IDENTIFIED BY PASSWORD '*" in red.data
    assert red.data.endswith(b"-- caf\xe9") and red.charset == "latin1"
