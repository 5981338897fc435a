"""GtidOrderer: strict sequence per domain, duplicates skipped, gaps held (never skipped)."""

from __future__ import annotations

import pytest

from dbmux.core.events import ChangeEvent, RowChange, Statement
from dbmux.core.gtid import Gtid
from dbmux.replicator.ordering import GtidOrderer
from dbmux.replicator.positions import PartitionKey
from dbmux.replicator.runner import chunks_for_commit


def ev(gtid: str, *, source: str = "ingress", unsafe: bool = False) -> ChangeEvent:
    if source == "binlog":
        return ChangeEvent(Gtid.parse(gtid), "binlog", 0, rows=(RowChange("t", "d", "insert", after={"a": 1}),))
    return ChangeEvent(Gtid.parse(gtid), source, 0, statements=(Statement("UPDATE t SET a=1", unsafe=unsafe),))


@pytest.mark.parametrize("applied, arrivals, released, held_after", [
    # in order
    ({"0": 4}, ["0-1-5", "0-1-6"], ["0-1-5", "0-1-6"], 0),
    # duplicate of applied and of just-released
    ({"0": 4}, ["0-1-3", "0-1-5", "0-1-5", "0-1-4"], ["0-1-5"], 0),
    # gap: 7 waits for 6
    ({"0": 4}, ["0-1-5", "0-1-7"], ["0-1-5"], 1),
    ({"0": 4}, ["0-1-5", "0-1-7", "0-1-6"], ["0-1-5", "0-1-6", "0-1-7"], 0),
    # domains independent
    ({"0": 4, "1": 10}, ["1-1-12", "0-1-5", "1-1-11"], ["0-1-5", "1-1-11", "1-1-12"], 0),
    # a new target: the first event of a domain starts the sequence
    ({}, ["0-1-100", "0-1-101"], ["0-1-100", "0-1-101"], 0),
    # an unsafe ingress event waits for its row form, and blocks what follows
    ({"0": 4}, ["0-1-5u", "0-1-6"], [], 2),
    ({"0": 4}, ["0-1-5u", "0-1-6", "0-1-5b"], ["0-1-5", "0-1-6"], 0),
    # binlog and ingress copies of one GTID: applied once
    ({"0": 4}, ["0-1-5b", "0-1-5"], ["0-1-5"], 0),
])
def test_release_order(applied, arrivals, released, held_after):
    o = GtidOrderer(applied)
    out = []
    for i, a in enumerate(arrivals):
        kind = a[-1] if a[-1] in "ub" else ""
        g = a.rstrip("ub")
        e = ev(g, source="binlog" if kind == "b" else "ingress", unsafe=kind == "u")
        out += [str(r.gtid) for r, _ in o.offer(e, i)]
    assert out == released
    assert sum(g.held for g in o.gaps()) == held_after


def test_lowest_needed_offset_points_at_the_first_held_event():
    o = GtidOrderer({"0": 1})
    assert o.offer(ev("0-1-3"), 10) == []
    assert o.offer(ev("0-1-4"), 11) == []
    assert o.lowest_needed_offset() == 10
    assert [str(e.gtid) for e, _ in o.offer(ev("0-1-2"), 12)] == ["0-1-2", "0-1-3", "0-1-4"]
    assert o.lowest_needed_offset() is None
    assert o.gaps() == []


def test_commit_chunks_respect_count_bytes_and_ddl():
    key = PartitionKey("t", 0)
    evs = [ev(f"0-1-{i}") for i in range(1, 8)]
    ddl = ChangeEvent(Gtid.parse("0-1-8"), "ingress", 0, statements=(Statement("CREATE TABLE x (a INT)", kind="ddl"),))
    items = [(e, key, i) for i, e in enumerate(evs)] + [(ddl, key, 7), (ev("0-1-9"), key, 8)]
    sizes = {(k, off): 100 for _, k, off in items}
    by_count = chunks_for_commit(items, 3)
    assert [[str(e.gtid) for e, _, _ in c] for c in by_count] == [
        ["0-1-1", "0-1-2", "0-1-3"], ["0-1-4", "0-1-5", "0-1-6"], ["0-1-7"], ["0-1-8"], ["0-1-9"]]
    by_bytes = chunks_for_commit(items, 100, max_bytes=250, sizes=sizes)
    assert [len(c) for c in by_bytes] == [2, 2, 2, 1, 1, 1]
    huge = chunks_for_commit(items[:1], 100, max_bytes=10, sizes=sizes)
    assert [len(c) for c in huge] == [1]  # an event larger than the bound still goes, alone
