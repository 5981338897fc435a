"""Implicit commits and RETURNING through the command relay, against a scripted primary: the ingress's own
COMMIT before a statement that commits implicitly (a round trip of its own, or injected into a batch with
its answer kept from the client), and writes answered with a result set captured at its end.

See tests/unit/test_ingress_capture.py for the attribution rules themselves.
"""

from __future__ import annotations

import asyncio

import pytest

from dbmux.core.sqllex import split_statements
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.statements import COMMIT_SQL, plan_query, returns_rows, with_commits

from .protocol.builders import column_def, eof, err, ok, packet, text_row, u8
from .test_ingress_relay import AC, Harness, gtid_ok, query

IN = c.SERVER_STATUS_IN_TRANS  # autocommit off, in a transaction
MORE = c.SERVER_MORE_RESULTS_EXISTS


# ---- planning: where a batch gets a COMMIT of the ingress's own ---------------------------------------
BATCHES = {
    "write then DDL": ("INSERT INTO t VALUES (1); DROP TABLE x", False, [1]),
    "DDL first, open writes: the round trip covers it": ("DROP TABLE x; INSERT INTO t VALUES (1)", True, []),
    "read then DDL, open writes": ("SELECT 1; CREATE TABLE x (a INT)", True, [1]),
    "read then DDL, nothing open": ("SELECT 1; CREATE TABLE x (a INT)", False, []),
    "COMMIT between": ("INSERT INTO t VALUES (1); COMMIT; DROP TABLE x", False, []),
    "BEGIN between": ("INSERT INTO t VALUES (1); BEGIN; DROP TABLE x", False, []),
    "two DDL after a write": ("UPDATE t SET a = 1; CREATE USER u; GRANT SELECT ON *.* TO u", False, [1]),
    "write, DDL, write, DDL": ("INSERT INTO t VALUES (1); DROP TABLE x; INSERT INTO t VALUES (2); DROP TABLE y",
                               False, [1, 4]),
    "after CALL: results may not line up": ("INSERT INTO t VALUES (1); CALL p(); DROP TABLE x", False, []),
    "temporary table: no implicit commit": ("INSERT INTO t VALUES (1); CREATE TEMPORARY TABLE tt (a INT)",
                                            False, []),
    "LOCK TABLES writes nothing itself": ("INSERT INTO t VALUES (1); LOCK TABLES t WRITE", False, []),
}


@pytest.mark.parametrize("sql,open_writes,internal", BATCHES.values(), ids=BATCHES.keys())
def test_with_commits_puts_a_commit_before_each_implicit_commit_after_writes(sql, open_writes, internal):
    original = plan_query(sql, time_zone="+00:00")
    plan = with_commits(original, open_writes)
    assert sorted(plan.internal) == internal
    assert [p.sql for p in plan.statements if not p.internal] == [p.sql for p in original.statements]
    assert all(plan.statements[i].sql == COMMIT_SQL for i in internal)
    if internal:  # the text forwarded splits into exactly the planned statements
        assert plan.rewritten is not None
        assert split_statements(plan.rewritten) == [p.sql for p in plan.statements]
    else:
        assert plan is original


def test_a_batch_ending_a_piece_with_a_line_comment_keeps_its_semicolons():
    plan = with_commits(plan_query("INSERT INTO t VALUES (1) -- one\n; DROP TABLE x # two", time_zone=None), False)
    assert plan.rewritten is not None
    assert split_statements(plan.rewritten) == ["INSERT INTO t VALUES (1) -- one", COMMIT_SQL, "DROP TABLE x # two"]


@pytest.mark.parametrize("sql,expected", [
    ("DELETE FROM t WHERE a = 1 RETURNING a", True),
    ("insert into t (a) values (1) returning id, a", True),
    ("REPLACE INTO t VALUES (1) RETURNING *", True),
    ("INSERT INTO t (returning) VALUES (1)", True),  # (a bare column of that name: row form, harmless)
    ("INSERT INTO t (`returning`) VALUES ('returning')", False),
    ("SELECT 1 RETURNING", False),  # (not a write)
])
def test_returns_rows(sql, expected):
    from dbmux.ingress.classify import classify

    kind = classify(sql).kind
    assert returns_rows(sql, kind) is expected


def test_a_returning_statement_is_planned_unsafe():
    (st,) = plan_query("DELETE FROM t WHERE a < 5 RETURNING a", time_zone=None).statements
    assert st.kind == "dml" and st.unsafe


# ---- the relay ------------------------------------------------------------------------------------------
async def _open_transaction(h: Harness) -> None:
    """autocommit off, one INSERT buffered."""
    h.send(query(b"INSERT INTO t (a) VALUES (1)"))
    h.answer(ok(1, 0, IN))
    h.to_client(), h.to_primary()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_ddl_after_writes_gets_the_ingress_s_commit_first_and_each_its_gtid():
    h = await Harness().start()
    await _open_transaction(h)
    h.send(query(b"DROP TABLE x"))
    await _settle()
    assert h.to_primary() == query(COMMIT_SQL.encode())  # the ingress's own, first
    h.answer(gtid_ok(b"0-1-10", 0))
    await _settle()
    assert h.to_client() == b""  # the client never sees the COMMIT's answer
    (first,) = h.publisher.events
    assert str(first.gtid) == "0-1-10" and [s.sql for s in first.statements] == ["INSERT INTO t (a) VALUES (1)"]
    assert h.to_primary() == b""  # sync durability: the statement waits for the commit's ack
    h.publisher.answers[0].set_result(True)
    await _settle()
    assert h.to_primary() == query(b"DROP TABLE x")
    h.answer(gtid_ok(b"0-1-11", 0))
    second = h.publisher.events[1]
    assert str(second.gtid) == "0-1-11" and [s.sql for s in second.statements] == ["DROP TABLE x"]
    h.publisher.answers[1].set_result(True)
    await _settle()
    assert h.to_client() == packet(ok(0, 0, 0), 1)
    assert not h.relay.busy
    h.send(query(b"SELECT 1"))  # push mode again
    assert h.to_primary() == query(b"SELECT 1")


async def test_a_failing_commit_first_answers_the_statement_with_its_error():
    h = await Harness(durability="async").start()
    await _open_transaction(h)
    h.send(query(b"CREATE USER u"))
    await _settle()
    assert h.to_primary() == query(COMMIT_SQL.encode())
    failure = err(1180, b"HY000", b"Got error 1 during COMMIT")
    h.answer(failure)
    await _settle()
    assert h.to_client() == packet(failure, 1)
    assert h.to_primary() == b"" and h.publisher.events == [] and not h.relay.busy  # CREATE USER never went
    h.send(query(b"SELECT 1"))
    assert h.to_primary() == query(b"SELECT 1")


async def test_no_commit_first_without_buffered_writes_or_for_statements_that_write_nothing():
    h = await Harness(durability="async").start()
    h.send(query(b"DROP TABLE x"))  # nothing buffered
    assert h.to_primary() == query(b"DROP TABLE x")
    h.answer(gtid_ok(b"0-1-10", AC))
    await _open_transaction(h)
    h.send(query(b"BEGIN"))  # commits implicitly; its OK reports that commit's GTID
    assert h.to_primary() == query(b"BEGIN")
    h.answer(gtid_ok(b"0-1-11", IN))
    assert [(str(e.gtid), [s.sql for s in e.statements]) for e in h.publisher.events] == [
        ("0-1-10", ["DROP TABLE x"]), ("0-1-11", ["INSERT INTO t (a) VALUES (1)"])]


async def test_a_batch_gets_a_commit_whose_answer_the_client_never_sees():
    h = await Harness(durability="async").start()
    h.send(query(b"INSERT INTO t (a) VALUES (1); DROP TABLE x; SELECT 7"))
    sent = h.to_primary()
    assert sent == query(b"INSERT INTO t (a) VALUES (1)\n;\n" + COMMIT_SQL.encode() + b"\n;\nDROP TABLE x\n;\nSELECT 7")
    h.answer(ok(1, 0, IN | MORE), gtid_ok(b"0-1-10", MORE), gtid_ok(b"0-1-11", MORE),
             u8(1), column_def(b"7"), eof(0, 0), text_row(b"7"), eof(0, 0))
    expected = (packet(ok(1, 0, IN | MORE), 1) + packet(ok(0, 0, MORE), 2)  # seq 2: the DROP's, moved up
                + b"".join(packet(p, i) for i, p in enumerate(
                    [u8(1), column_def(b"7"), eof(0, 0), text_row(b"7"), eof(0, 0)], 3)))
    assert h.to_client() == expected
    assert [(str(e.gtid), [s.sql for s in e.statements]) for e in h.publisher.events] == [
        ("0-1-10", ["INSERT INTO t (a) VALUES (1)"]), ("0-1-11", ["DROP TABLE x"])]
    assert not h.relay.busy


async def test_a_batch_commit_s_error_ends_the_batch_for_the_client():
    h = await Harness(durability="async").start()
    h.send(query(b"INSERT INTO t (a) VALUES (1); DROP TABLE x"))
    h.to_primary()
    failure = err(1180, b"HY000", b"Got error 1 during COMMIT")
    h.answer(ok(1, 0, IN | MORE), failure)
    assert h.to_client() == packet(ok(1, 0, IN | MORE), 1) + packet(failure, 2)
    assert h.publisher.events == [] and not h.relay.busy


async def test_returning_in_a_transaction_is_captured_at_the_end_of_its_result_set():
    h = await Harness(durability="async").start()
    h.send(query(b"BEGIN"))
    h.answer(ok(0, 0, IN | AC))
    h.send(query(b"DELETE FROM t WHERE a = 1 RETURNING a"))
    rows = [u8(1), column_def(b"a"), eof(0, IN | AC), text_row(b"1"), eof(0, IN | AC)]
    h.answer(*rows)
    h.send(query(b"COMMIT"))
    h.answer(gtid_ok(b"0-1-10"))
    (event,) = h.publisher.events
    (st,) = event.statements
    assert st.sql == "DELETE FROM t WHERE a = 1 RETURNING a" and st.unsafe


async def test_returning_with_autocommit_and_eof_is_never_published_under_a_later_gtid():
    h = await Harness(durability="async").start()
    h.relay.capture.late_reports = True  # (MySQL: a GTID an EOF did not report may come with a later OK)
    h.send(query(b"DELETE FROM t WHERE a = 1 RETURNING a"))
    h.answer(u8(1), column_def(b"a"), eof(0, AC), text_row(b"1"), eof(0, AC | c.SERVER_SESSION_STATE_CHANGED))
    h.send(query(b"UPDATE t SET a = 2 WHERE 0"))  # changes nothing; its OK reports the DELETE's GTID
    h.answer(gtid_ok(b"0-1-10"))
    assert h.publisher.events == []  # not the UPDATE's: the binlog reader's copy of 0-1-10 stands
    h.send(query(b"INSERT INTO t (a) VALUES (3)"))
    h.answer(gtid_ok(b"0-1-11"))
    assert [str(e.gtid) for e in h.publisher.events] == ["0-1-11"]


async def test_a_prepared_ddl_after_writes_gets_the_commit_first_too():
    h = await Harness(durability="async").start()
    h.send(packet(b"\x16ALTER TABLE t ADD COLUMN b INT", 0))  # COM_STMT_PREPARE: id 7, no params or columns
    h.answer(b"\x00" + (7).to_bytes(4, "little") + b"\x00\x00\x00\x00\x00\x00\x00")
    await _open_transaction(h)
    execute = packet(b"\x17" + (7).to_bytes(4, "little") + b"\x00" + (1).to_bytes(4, "little"), 0)
    h.send(execute)
    await _settle()
    assert h.to_primary() == query(COMMIT_SQL.encode())
    h.answer(gtid_ok(b"0-1-10", 0))
    await _settle()
    assert h.to_primary() == execute
    h.answer(gtid_ok(b"0-1-11", 0))
    assert h.to_client() == packet(ok(0, 0, 0), 1)
    assert [(str(e.gtid), [s.sql for s in e.statements]) for e in h.publisher.events] == [
        ("0-1-10", ["INSERT INTO t (a) VALUES (1)"]), ("0-1-11", ["ALTER TABLE t ADD COLUMN b INT"])]
