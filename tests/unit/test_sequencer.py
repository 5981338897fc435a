"""GtidSequencer: hands events on in GTID order per domain; a gap waits at most the window."""

from __future__ import annotations

import asyncio

import pytest

from dbmux.core.events import ChangeEvent, Statement
from dbmux.core.gtid import Gtid
from dbmux.ingress.sequencer import GtidSequencer


def _ev(text: str) -> ChangeEvent:
    return ChangeEvent(gtid=Gtid.parse(text), source="ingress", ts_ms=0, statements=(Statement("DO 1"),))


class _Recorder:
    """Records send order; each ack resolves at once (or fails for one GTID)."""

    def __init__(self, fail: str | None = None) -> None:
        self.sent: list[str] = []
        self.fail = fail

    async def __call__(self, event: ChangeEvent):
        self.sent.append(str(event.gtid))
        fut = asyncio.get_running_loop().create_future()
        if str(event.gtid) == self.fail:
            fut.set_exception(RuntimeError("broker said no"))
        else:
            fut.set_result(None)
        return fut


@pytest.mark.parametrize("arrivals, expected", [
    (["0-1-1", "0-1-2", "0-1-3"], ["0-1-1", "0-1-2", "0-1-3"]),
    (["0-1-1", "0-1-3", "0-1-2"], ["0-1-1", "0-1-2", "0-1-3"]),
    (["0-1-5", "0-1-7", "0-1-6", "0-1-8"], ["0-1-5", "0-1-6", "0-1-7", "0-1-8"]),
    # domains are independent
    (["0-1-1", "1-1-9", "0-1-3", "1-1-10", "0-1-2"], ["0-1-1", "1-1-9", "1-1-10", "0-1-2", "0-1-3"]),
])
async def test_out_of_order_arrivals_within_the_window_leave_in_order(arrivals, expected):
    rec = _Recorder()
    seq = GtidSequencer(rec, window_s=5.0)
    seq.start()
    futs = [seq.submit(_ev(g)) for g in arrivals]
    await asyncio.wait_for(asyncio.gather(*futs), 2)  # far below the window: no gap waited it out
    await seq.stop()
    assert rec.sent == expected


async def test_a_gap_is_waited_for_at_most_the_window_then_order_is_kept():
    rec = _Recorder()
    seq = GtidSequencer(rec, window_s=0.05)
    seq.start()
    first = seq.submit(_ev("0-1-10"))
    await first
    held = [seq.submit(_ev("0-1-13")), seq.submit(_ev("0-1-12"))]  # 11 never comes (direct write)
    await asyncio.sleep(0)
    assert rec.sent == ["0-1-10"]
    await asyncio.wait_for(asyncio.gather(*held), 2)
    assert rec.sent == ["0-1-10", "0-1-12", "0-1-13"]
    late = seq.submit(_ev("0-1-11"))  # arrives after the window: still published, never dropped
    await late
    await seq.stop()
    assert rec.sent[-1] == "0-1-11"


async def test_a_failed_send_fails_only_that_event():
    rec = _Recorder(fail="0-1-2")
    seq = GtidSequencer(rec, window_s=1.0)
    seq.start()
    futs = [seq.submit(_ev(g)) for g in ("0-1-1", "0-1-2", "0-1-3")]
    results = await asyncio.gather(*futs, return_exceptions=True)
    await seq.stop()
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], RuntimeError)


class _GatedSender(_Recorder):
    """The first send suspends (as aiokafka's does while it fetches the topic's metadata) until
    ``gate`` is set; later sends return at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started: list[str] = []

    async def __call__(self, event: ChangeEvent):
        self.started.append(str(event.gtid))
        if len(self.started) == 1:
            await self.gate.wait()
        return await super().__call__(event)


async def test_stop_waits_for_a_suspended_send_and_what_queued_behind_it():
    rec = _GatedSender()
    seq = GtidSequencer(rec, window_s=5.0)
    seq.start()
    futs = [seq.submit(_ev(g)) for g in ("0-1-1", "0-1-2")]
    stopping = asyncio.ensure_future(seq.stop())
    await asyncio.sleep(0)
    assert not stopping.done()
    rec.gate.set()
    await asyncio.wait_for(stopping, 2)
    assert rec.sent == ["0-1-1", "0-1-2"] and all(f.done() for f in futs)
