"""A target's table patterns: rows and statements outside them are not applied; the GTID stays."""

from __future__ import annotations

import pytest

from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement
from dbmux.core.gtid import Gtid
from dbmux.replicator.filtering import filter_event


def _ev(statements=(), rows=(), db=None):
    return ChangeEvent(Gtid.parse("0-1-9"), "ingress" if statements else "binlog", 0, db=db,
                       statements=tuple(Statement(s) for s in statements), rows=tuple(rows),
                       session=SessionContext(db=db))


@pytest.mark.parametrize("patterns, sql, db, kept", [
    (["shop.*"], "INSERT INTO shop.orders VALUES (1)", None, True),
    (["shop.*"], "INSERT INTO crm.users VALUES (1)", None, False),
    (["shop.*"], "INSERT INTO orders VALUES (1)", "shop", True),
    (["shop.*"], "INSERT INTO orders VALUES (1)", "crm", False),
    (["shop.orders"], "UPDATE orders o JOIN shop.items i ON o.id = i.id SET o.n = 1", "shop", True),
    (["shop.*"], "CREATE DATABASE shop", None, True),
    (["shop.*"], "CREATE DATABASE crm", None, False),
    (["shop.*"], "CALL do_things()", "shop", True),  # unparsable: kept when its database is selected
    (["shop.*"], "CALL do_things()", "crm", False),
    (["*"], "INSERT INTO anything.at_all VALUES (1)", None, True),
])
def test_statement_filtering(patterns, sql, db, kept):
    out = filter_event(_ev([sql], db=db), patterns)
    assert (len(out.statements) == 1) is kept
    assert out.gtid == Gtid.parse("0-1-9")  # the transaction is still accounted for


def test_row_filtering_keeps_only_selected_tables():
    rows = [RowChange("orders", "shop", "insert", after={"id": 1}),
            RowChange("users", "crm", "insert", after={"id": 2})]
    out = filter_event(_ev(rows=rows), ["shop.*"])
    assert [(r.db, r.table) for r in out.rows] == [("shop", "orders")]


@pytest.mark.parametrize("db", [None, "", "crm"])
def test_unsafe_statements_are_never_filtered_away(db):
    """The lost update the real-traffic suite found: an unsafe ``CALL`` in a session whose database the
    primary reported as "" was dropped by the filter; the empty event "applied" its GTID and the binlog
    copy holding the procedure's row changes was skipped as a duplicate."""
    ev = ChangeEvent(Gtid.parse("0-1-9"), "ingress", 0, db=db,
                     statements=(Statement("CALL shop.bump()", unsafe=True),), session=SessionContext(db=db))
    out = filter_event(ev, ["shop.*"])
    assert out.unsafe and out.statements == ev.statements
