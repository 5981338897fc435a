"""The gap alert (issue 14 #3): a gap met while catching up a backlog -- its missing copy a little further
along the topic -- is not alerted on, however long the catch-up takes on the wall clock; a real gap is,
once the topic has moved on past the threshold or everything has been read."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from dbmux.replicator.ordering import Gap, GapClock
from dbmux.replicator.positions import TargetPosition

from .test_runner_pipeline import TP, Applier, Source, _Rec, _replicator, _row_event

ALERT_MS = 100


class SlowSource(Source):
    """One record per call, 20 ms apart on the wall clock, each with the timestamp it was given."""

    def __init__(self, values: list[tuple[bytes, int]]) -> None:
        super().__init__([v for v, _ in values], per_call=1)
        self.records = [_Rec(i, v, ts) for i, (v, ts) in enumerate(values)]

    async def getmany(self, *tps, timeout_ms: int, max_records: int):
        if self.records:
            await asyncio.sleep(0.02)
        return await super().getmany(*tps, timeout_ms=timeout_ms, max_records=max_records)


def _run_until_drained(values: list[tuple[bytes, int]]) -> Applier:
    async def main() -> Applier:
        rep = _replicator(max_txns=10)
        rep.config = dataclasses.replace(rep.config, replicator=dataclasses.replace(rep.config.replicator,
                                                                                    gap_alert_ms=ALERT_MS))
        source, applier, stop = SlowSource(values), Applier(), asyncio.Event()
        task = asyncio.ensure_future(rep._loop(stop, source, applier, TargetPosition(), [TP], None))
        await asyncio.wait_for(source.drained.wait(), 10)
        await asyncio.sleep(0.4)  # at the end: a gap still open is alerted on now
        stop.set()
        await asyncio.wait_for(task, 5)
        return applier

    return asyncio.run(main())


def test_a_gap_closed_further_along_a_backlog_is_not_alerted_on():
    # 1, then 3..20 read over ~400 ms of wall clock but within 50 ms of topic time, then 2 (its late copy)
    values = [(_row_event(1), 1000)] + [(_row_event(i), 1000 + i) for i in range(3, 21)] + [(_row_event(2), 1049)]
    applier = _run_until_drained(values)
    assert ("status", "waiting for gap") not in applier.log
    assert sum(len(g) for g, _ in applier.applied) == 20


def test_a_gap_the_topic_has_moved_past_is_alerted_on_before_the_end():
    # the same, but topic time moves 10 ms per record: past the 100 ms threshold long before the copy
    values = [(_row_event(1), 1000)] + [(_row_event(i), 1000 + 10 * i) for i in range(3, 21)] + \
        [(_row_event(2), 1300)]
    applier = _run_until_drained(values)
    assert applier.log.index(("status", "waiting for gap")) < applier.log.index(("status", "running"))


def test_a_gap_still_open_at_the_end_of_the_topic_is_alerted_on():
    applier = _run_until_drained([(_row_event(1), 1000), (_row_event(3), 1001)])
    assert ("status", "waiting for gap") in applier.log


@pytest.mark.parametrize("reads, gaps, want", [
    ([100, 150], ["0"], 0),            # first seen at 150: nothing read since
    ([100], ["0"], 0),
])
def test_gap_clock_starts_when_a_gap_is_first_seen(reads, gaps, want):
    clock = GapClock()
    for r in reads:
        clock.read(r)
    assert clock.topic_ms([Gap(d, 5, 1, 0.0) for d in gaps]) == want


def test_gap_clock_measures_per_domain_and_forgets_closed_gaps():
    clock = GapClock()
    clock.read(100)
    assert clock.topic_ms([Gap("0", 5, 1, 0.0)]) == 0
    clock.read(180)
    assert clock.topic_ms([Gap("0", 5, 1, 0.0), Gap("1", 2, 1, 0.0)]) == 80  # domain 1 starts at 180
    clock.read(200)
    assert clock.topic_ms([Gap("1", 2, 1, 0.0)]) == 20  # domain 0 closed: forgotten
    assert clock.topic_ms([Gap("0", 5, 1, 0.0)]) == 0  # opened again: from now
    clock.read(90)  # an older timestamp (another partition) moves nothing back
    assert clock.latest_ms == 200
