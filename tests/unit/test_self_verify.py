"""Self-verification's bookkeeping (pure: the target's comparison is a dict here; the real one,
MySQLApplier.differing_rows, is exercised by tests/integration/test_statement_safety.py)."""

from __future__ import annotations

import asyncio

import pytest

from dbmux.core.events import ChangeEvent, RowChange, Statement
from dbmux.core.gtid import Gtid
from dbmux.replicator.self_verify import SelfVerifier


class FakeTarget:
    """Rows by (table, id); compares the way the server does: equal images or not."""

    def __init__(self, rows: dict[tuple[str, int], dict] | None = None,
                 parents: dict[str, set[str]] | None = None) -> None:
        self.rows = dict(rows or {})
        self.asked: list[tuple] = []
        self.parents = parents or {}  # table -> tables whose changes cascade into it

    async def cascading_parents(self, db: str, table: str) -> frozenset[tuple[str, str]]:
        return frozenset((db, t) for t in self.parents.get(table, ()))

    async def primary_key(self, db: str, table: str) -> tuple[str, ...]:
        return () if table == "nopk" else ("id",)

    async def differing_rows(self, items, events=None):
        self.asked += items
        out = {}
        for i, (_, table, _, key, image) in enumerate(items):
            have = self.rows.get((table, key[0]))
            if have != image:
                out[i] = "differs"
        return out


def statement(seq: int, *, unsafe: bool = False) -> ChangeEvent:
    return ChangeEvent(Gtid.parse(f"0-1-{seq}"), "ingress", 0, statements=(
        Statement("UPDATE t SET v = v + 1", kind="dml", unsafe=unsafe),))


def rows(seq: int, *changes: tuple[str, int, int | None, str]) -> ChangeEvent:
    """Binlog copy: (table, id, v or None for a delete, op)."""
    out = []
    for table, id_, v, op in changes:
        before = {"id": id_, "v": 0} if op in ("update", "delete") else None
        after = {"id": id_, "v": v} if op != "delete" else None
        out.append(RowChange(table, "d", op, before=before, after=after))
    return ChangeEvent(Gtid.parse(f"0-1-{seq}"), "binlog", 0, rows=tuple(out))


ALL = {"0": 10**9}  # (a planned position past every GTID of these tests)
LATER = 10**12  # (a monotonic time past every check's delay)


def run(v: SelfVerifier, target: FakeTarget, applied: int) -> list[str]:
    return asyncio.run(v.run(target, {"0": applied}))


def test_a_statement_applied_transaction_equal_to_its_row_copy_is_verified():
    v, t = SelfVerifier("r", "halt"), FakeTarget({("t", 1): {"id": 1, "v": 5}})
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 5, "update")))
    assert v.due(ALL, LATER)
    assert run(v, t, 5) == []
    assert (v.verified, v.mismatches, v.due(ALL, LATER)) == (1, 0, False)
    assert [it[3] for it in t.asked] == [(1,)]


def test_a_difference_is_confirmed_when_nothing_later_touched_the_key():
    v, t = SelfVerifier("r", "halt"), FakeTarget({("t", 1): {"id": 1, "v": 4}})
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 5, "update")))
    (problem,) = run(v, t, 5)
    assert "gtid 0-1-5 table d.t key (id=1): differs" == problem
    assert v.mismatches == 1


@pytest.mark.parametrize("later, confirmed", [
    ([rows(6, ("t", 1, 7, "update"))], False),  # a later transaction set the key: superseded
    ([rows(6, ("t", 2, 7, "update"))], True),  # a later transaction, another key
    ([rows(6, ("u", 1, 7, "update"))], True),  # the same id in another table
    ([rows(6, ("t", 1, None, "delete"))], False),
])
def test_a_difference_waits_for_the_row_copies_up_to_the_targets_position(later, confirmed):
    """The target applied 5 (from its statements) and 6 before 5's row copy was checked: the key may
    differ from 5's image because 6 changed it, which only 6's row copy tells."""
    v, t = SelfVerifier("r", "halt"), FakeTarget({("t", 1): {"id": 1, "v": 7}})
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 5, "update")))
    assert run(v, t, 6) == []  # pending: 6's row copy not seen yet
    assert not v.due(ALL, LATER)
    for e in later:
        v.observed(e)
    problems = run(v, t, 6)
    assert bool(problems) == confirmed, problems


def test_a_later_row_copy_seen_before_the_check_runs_supersedes_at_once():
    v, t = SelfVerifier("r", "log"), FakeTarget({("t", 1): {"id": 1, "v": 7}})
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 5, "update")))
    v.observed(rows(6, ("t", 1, 7, "update")))  # applied from rows (not released from statements)
    assert run(v, t, 6) == []
    assert v.verified == 1 and not v.due(ALL, LATER)


@pytest.mark.parametrize("released", [
    [],  # applied from its own row copy (it came first, or the statements were unsafe)
    [(statement(5, unsafe=True), 0)],
])
def test_only_statement_applied_transactions_are_checked(released):
    v, t = SelfVerifier("r", "halt"), FakeTarget()
    v.released(released)
    v.observed(rows(5, ("t", 1, 5, "insert")))
    assert not v.due(ALL, LATER)
    assert run(v, t, 5) == [] and t.asked == []


def test_the_net_effect_per_key_is_checked():
    """Insert then update then delete in one transaction: the key must hold no row; a key inserted and
    updated holds the last image."""
    v, t = SelfVerifier("r", "halt"), FakeTarget({("t", 2): {"id": 2, "v": 9}})
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 1, "insert"), ("t", 1, 2, "update"), ("t", 1, None, "delete"),
                    ("t", 2, 3, "insert"), ("t", 2, 9, "update")))
    assert run(v, t, 5) == []
    assert sorted((it[3], it[4]) for it in t.asked) == [((1,), None), ((2,), {"id": 2, "v": 9})]


def test_tables_without_a_primary_key_are_skipped_not_compared():
    v, t = SelfVerifier("r", "halt"), FakeTarget()
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("nopk", 1, 5, "insert")))
    assert run(v, t, 5) == [] and t.asked == []


def test_a_later_statement_in_the_binlog_supersedes_a_difference():
    """DDL after the checked transaction (TRUNCATE, DROP, ALTER) may explain any difference."""
    v, t = SelfVerifier("r", "halt"), FakeTarget()
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 5, "insert")))
    assert run(v, t, 6) == []
    v.observed(ChangeEvent(Gtid.parse("0-1-6"), "binlog", 0, statements=(Statement("TRUNCATE TABLE t", kind="ddl"),)))
    assert run(v, t, 6) == [] and v.mismatches == 0


def test_a_row_copy_consumed_while_the_target_compares_is_kept():
    """The consume loop goes on while the apply task awaits the target's comparison: a later change of
    the key seen meanwhile must still supersede the difference (a real-traffic false halt: an INSERT
    checked while its DELETE's row copy arrived)."""
    v = SelfVerifier("r", "halt")

    class Slow(FakeTarget):
        async def differing_rows(self, items, events=None):
            v.observed(rows(6, ("t", 1, None, "delete")))  # arrives during the comparison
            return await super().differing_rows(items)

    t = Slow()  # the key is gone: the target applied 6 (from its statements) before 5's check ran
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 5, "insert")))
    assert run(v, t, 6) == [] and v.mismatches == 0


def test_a_transaction_not_applied_yet_is_not_checked_until_it_is():
    """Its row copy can arrive (and be queued) while its statements are still cut or queued behind the
    check: checked then, it looked like a difference (a false halt running SQLAlchemy's suite)."""
    v, t = SelfVerifier("r", "halt"), FakeTarget({("t", 1): {"id": 1, "v": 5}})
    v.released([(statement(5), 0), (statement(6), 1)])
    v.observed(rows(5, ("t", 1, 5, "insert")))
    v.observed(rows(6, ("t", 1, None, "delete")))
    assert not v.due({"0": 4}, LATER) and v.due({"0": 5}, LATER)
    # key 1 is 6's to hold (6 changes it again): not compared for 5, where the target still has 5's row
    assert run(v, t, 5) == [] and v.verified == 1 and t.asked == []
    assert not v.due({"0": 5}, LATER) and v.due({"0": 6}, LATER)
    t.rows.clear()  # the target applied 6
    assert run(v, t, 6) == [] and v.verified == 2 and v.mismatches == 0 and [it[3] for it in t.asked] == [(1,)]


def test_checks_wait_for_a_batch_or_a_delay():
    """One comparison round trip per batch, not per applied unit (the check's cost: bench/RESULTS.md)."""
    v = SelfVerifier("r", "halt")
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 5, "insert")))
    import time as _time
    now = _time.monotonic()
    assert not v.due(ALL, now) and v.due(ALL, now + 1.0)


@pytest.mark.parametrize("parents, own, later, confirmed", [
    # SQLAlchemy's suite: a later DELETE of the parent row cascaded to the child (ON DELETE CASCADE); the
    # binlog logs the parent's delete only -- the child's missing row is not a difference
    ({"child": {"parent"}}, (), [rows(6, ("parent", 9, None, "delete"))], False),
    ({"child": {"parent"}}, (), [rows(6, ("parent", 9, 3, "update"))], False),  # ON UPDATE CASCADE / SET NULL
    ({"child": {"parent"}}, (), [rows(6, ("parent", 9, 3, "insert"))], True),  # an insert cascades nothing
    ({}, (), [rows(6, ("parent", 9, None, "delete"))], True),  # no cascading key: a real difference
    ({"child": {"parent"}}, (("parent", 9, None, "delete"),), [], False),  # in the checked transaction itself
])
def test_changes_cascading_from_a_parent_table_supersede_a_difference(parents, own, later, confirmed):
    v, t = SelfVerifier("r", "halt"), FakeTarget({}, parents)  # the target has no child row 1
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("child", 1, 5, "insert"), *own))
    assert run(v, t, 6 if later else 5) == []
    for ev in later:
        v.observed(ev)
    found = run(v, t, 6 if later else 5)
    assert (found == ["gtid 0-1-5 table d.child key (id=1): differs"]) is confirmed
    assert v.mismatches == (1 if confirmed else 0)


@pytest.mark.parametrize("later, asked", [
    (rows(6, ("t", 1, 9, "update")), [(2,)]),  # key 1 changed again later: only key 2 compared
    (rows(6, ("t", 3, 9, "update")), [(1,), (2,)]),  # another key: both compared
    (ChangeEvent(Gtid.parse("0-1-6"), "binlog", 0, statements=(Statement("TRUNCATE t", kind="ddl"),)), []),
])
def test_keys_a_later_copy_changed_again_are_not_compared(later, asked):
    """The bench's hot rows (sysbench): most checked keys had been changed again by the time the target was
    compared; each such key looked different, then was found superseded -- after a second round trip
    comparing every row of its batch on its own (self-verification cost 0.82x of the apply without it)."""
    v, t = SelfVerifier("r", "halt"), FakeTarget({("t", 1): {"id": 1, "v": 5}, ("t", 2): {"id": 2, "v": 5}})
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 5, "update"), ("t", 2, 5, "update")))
    v.observed(later)
    run(v, t, 6)
    assert sorted(it[3] for it in t.asked) == asked and v.verified == 1 and v.mismatches == 0


def test_binlog_copies_arriving_while_the_check_looks_up_a_key_do_not_break_it():
    """SQLAlchemy's suite: the consume loop observed a copy while the check awaited a table's primary key
    (a new table: a query), and the check died on 'deque mutated during iteration' -- the replicators
    stopped."""

    class LookingUp(FakeTarget):
        hook = None

        async def primary_key(self, db: str, table: str) -> tuple[str, ...]:
            if table == "u" and self.hook is not None:
                hook, self.hook = self.hook, None
                hook()
            return await super().primary_key(db, table)

    v, t = SelfVerifier("r", "halt"), LookingUp({("t", 1): {"id": 1, "v": 5}})
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 5, "insert")))
    v.observed(rows(6, ("u", 1, 5, "insert")))  # later, another table (its key looked up in the scan)
    t.hook = lambda: v.observed(rows(7, ("u", 2, 5, "insert")))
    assert run(v, t, 7) == [] and v.verified == 1 and [it[3] for it in t.asked] == [(1,)]


@pytest.mark.parametrize("barrier, confirmed", [(True, False), (False, True)])
def test_a_shard_map_switch_after_the_checked_transaction_supersedes_a_difference(barrier, confirmed):
    """A shard target applied 5 from its statements, then the switch 6 that gave key 1 to a new shard
    (deleted here, no row image in the stream): 6's binlog copy is a barrier, like DDL. The same copy
    without the barrier flag (an ordinary row copy of another table) leaves the difference confirmed."""
    v, t = SelfVerifier("s", "halt"), FakeTarget()  # key 1 gone: moved to the new shard
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 5, "insert")))
    assert run(v, t, 6) == []  # pending: 6's copy not seen yet
    v.observed(rows(6, ("versions", 2, 1, "insert")), barrier=barrier)
    assert bool(run(v, t, 6)) == confirmed
    assert v.mismatches == int(confirmed)


def test_keys_checked_before_a_shard_map_switch_seen_first_are_not_compared():
    """The switch's binlog copy arrived before the check ran: no key of the checked copy is compared
    (the switch may have moved any of them), the transaction still counts as checked."""
    v, t = SelfVerifier("s", "halt"), FakeTarget()
    v.released([(statement(5), 0)])
    v.observed(rows(5, ("t", 1, 5, "insert")))
    v.observed(rows(6, ("versions", 2, 1, "insert")), barrier=True)
    assert run(v, t, 6) == [] and t.asked == [] and v.verified == 1
    v.released([(statement(7), 0)])  # after the switch: compared again
    v.observed(rows(7, ("t", 3, 5, "insert")))
    assert run(v, t, 7) and [it[3] for it in t.asked] == [(3,)]


def test_a_table_without_a_primary_key_is_logged_once_not_per_transaction(caplog):
    """SQLAlchemy's suite logged 816 such warnings per run, one per transaction: once per table now."""
    v, t = SelfVerifier("r", "halt"), FakeTarget()
    with caplog.at_level("WARNING", logger="dbmux.replicator.self_verify"):
        for seq in (5, 6):
            v.released([(statement(seq), 0)])
            v.observed(rows(seq, ("nopk", seq, 5, "insert")))
            assert run(v, t, seq) == []
    told = [r.getMessage() for r in caplog.records if "no primary key" in r.getMessage()]
    assert told == ["target r: d.nopk has no primary key: its rows are not self-verified (counted in "
                    "dbmux_replicator_self_verify_skipped_total{reason=\"no primary key\"})"]
