"""GtidOrderer: strict sequence per domain, duplicates skipped, gaps held (never skipped)."""

from __future__ import annotations

import pytest

from dbmux.core.events import ChangeEvent, RowChange, Statement
from dbmux.core.gtid import Gtid
from dbmux.replicator.ordering import GtidOrderer
from dbmux.replicator.positions import PartitionKey
from dbmux.replicator.units import chunks_for_commit


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
        out += [str(r.gtid) for r, _ in o.offer(e, i, "p")]
    assert out == released
    assert sum(g.held for g in o.gaps()) == held_after


def test_lowest_needed_offset_points_at_the_first_held_event():
    o = GtidOrderer({"0": 1})
    assert o.offer(ev("0-1-3"), 10, "p") == []
    assert o.offer(ev("0-1-4"), 11, "p") == []
    assert o.lowest_needed_offset("p") == 10
    assert [str(e.gtid) for e, _ in o.offer(ev("0-1-2"), 12, "p")] == ["0-1-2", "0-1-3", "0-1-4"]
    assert o.lowest_needed_offset("p") is None
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


# ------------------------------------------------------------------ the memory bound (issue 19)


def _replay(log: list[ChangeEvent], applied: dict[str, int], max_held_bytes: int, size: int = 100,
            max_reads: int = 100_000) -> tuple[list[str], GtidOrderer, int]:
    """A consumer of one partition ``log``: offers each record, seeks back when the orderer says so."""
    o = GtidOrderer(applied, max_held_bytes=max_held_bytes)
    out: list[str] = []
    pos, reads, rewinds = 0, 0, 0
    while pos < len(log):
        reads += 1
        assert reads < max_reads, "no progress"
        out += [str(e.gtid) for e, _ in o.offer(log[pos], pos, "p", size=size)]
        pos += 1
        for part, offset in o.take_rewind().items():
            assert part == "p" and offset < pos
            pos, rewinds = offset, rewinds + 1
    return out, o, rewinds


def test_held_events_beyond_the_bound_are_spilled_and_read_again_once_the_gap_closes():
    # 0-1-5 arrives only at the end (the binlog reader's copy of a write around the ingress)
    log = [ev(f"0-1-{s}") for s in range(6, 26)] + [ev("0-1-5", source="binlog")]
    out, o, rewinds = _replay(log, {"0": 4}, max_held_bytes=350)
    assert out == [f"0-1-{s}" for s in range(5, 26)]  # every GTID once, in order
    assert o.held_bytes_peak <= 350 + 100 and o.spilled_events > 0 and rewinds == 1
    assert o.held_events == 0 and o.held_bytes == 0 and o.gaps() == [] and o.needed_offsets() == {}


def test_without_a_bound_everything_is_held():
    log = [ev(f"0-1-{s}") for s in range(6, 26)] + [ev("0-1-5", source="binlog")]
    out, o, rewinds = _replay(log, {"0": 4}, max_held_bytes=0)
    assert out == [f"0-1-{s}" for s in range(5, 26)] and rewinds == 0 and o.held_bytes_peak == 21 * 100


def test_spilled_offsets_stay_needed_until_read_again():
    o = GtidOrderer({"0": 1}, max_held_bytes=200)
    for off, s in enumerate((3, 4, 5, 6)):
        assert o.offer(ev(f"0-1-{s}"), 10 + off, "p", size=100) == []
    assert o.held_events == 2 and o.spilled_events == 2
    assert o.lowest_needed_offset("p") == 10 and o.needed_offsets() == {"p": 10}
    assert [g.spilled for g in o.gaps()] == [True]
    assert [str(e.gtid) for e, _ in o.offer(ev("0-1-2"), 20, "p", size=100)] == ["0-1-2", "0-1-3", "0-1-4"]
    assert o.needed_offsets() == {"p": 12}  # 5 and 6 are to be read again from offset 12
    assert o.take_rewind() == {"p": 12} and o.take_rewind() == {}


def test_an_unsafe_event_is_spilled_like_any_other():
    o = GtidOrderer({"0": 1}, max_held_bytes=100)
    assert o.offer(ev("0-1-3"), 0, "p", size=100) == []
    assert o.offer(ev("0-1-2", unsafe=True), 1, "p", size=100) == []  # over the bound: spilled
    assert o.unsafe_waiting == 0 and o.lowest_needed_offset("p") == 0 and o.held_events == 1


@pytest.mark.parametrize("seed", range(25))
def test_replay_with_duplicates_and_late_copies_applies_each_gtid_once_in_order(seed):
    import random

    rnd = random.Random(seed)
    n = 60
    late = set(rnd.sample(range(1, n + 1), 6))  # written around the ingress: only the binlog copy, late
    log: list[ChangeEvent] = []
    for s in range(1, n + 1):
        if s not in late:
            log.append(ev(f"0-1-{s}", unsafe=rnd.random() < 0.1))
        if rnd.random() < 0.3:  # some binlog copies arrive early
            log.append(ev(f"0-1-{s}", source="binlog"))
    log += [ev(f"0-1-{s}", source="binlog") for s in range(1, n + 1)]  # the binlog reader catches up
    bound = rnd.choice([150, 400, 1000, 0])
    out, o, _ = _replay(log, {"0": 0}, max_held_bytes=bound)
    assert out == [f"0-1-{s}" for s in range(1, n + 1)]
    if bound:
        assert o.held_bytes_peak <= bound + 100
    assert o.held_events == 0 and o.needed_offsets() == {}


def test_lowest_needed_offset_is_the_minimum_of_what_is_held_per_partition():
    import random

    rnd = random.Random(7)
    o = GtidOrderer({"0": 0, "1": 0})
    for i in range(400):
        domain = rnd.choice("01")
        seq = rnd.randint(2, 60)
        o.offer(ev(f"{domain}-1-{seq}"), i, domain, size=1)
        for part in "01":
            brute = [h.offset for d in o._held.values() for h in d.values() if h.partition == part]
            assert o.lowest_needed_offset(part) == (min(brute) if brute else None)


def test_offsets_of_spilled_events_do_not_accumulate():
    """Held at a gap, every later event is spilled at the bound: the held-offset index must stay the size
    of what is held, not grow by one entry per spilled event (a slow leak over a long gap)."""
    from dbmux.replicator.ordering import _Offsets

    offsets = _Offsets()
    offsets.add(5)  # the event held at the gap's start: the lowest, so removed entries never reach the top
    for off in range(10, 100_010):
        offsets.add(off)
        offsets.remove(off)
    assert offsets.lowest() == 5
    assert len(offsets._heap) <= 2 * 1 + 64


@pytest.mark.parametrize("arrivals, source", [
    (["0-1-6", "0-1-6b", "0-1-5"], "binlog"),  # both copies held behind a gap: the row copy is applied
    (["0-1-6b", "0-1-6", "0-1-5"], "binlog"),
    (["0-1-5", "0-1-6", "0-1-6b"], "ingress"),  # released before its row copy arrived
])
def test_the_row_copy_wins_when_both_copies_are_held(arrivals, source):
    o = GtidOrderer({"0": 4})
    out = []
    for i, a in enumerate(arrivals):
        e = ev(a.rstrip("b"), source="binlog" if a.endswith("b") else "ingress")
        out += [(str(r.gtid), r.source) for r, _ in o.offer(e, i, "p")]
    assert out == [("0-1-5", "ingress"), ("0-1-6", source)]
    assert o.held_events == 0
    assert o.needed_offsets() == {}
