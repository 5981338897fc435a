"""dbmux.core.supervise: the one restart-with-back-off loop (runner and binlog reader), without sleeping:
the waits are recorded by an injected ``wait``, durations come from an injected clock."""

from __future__ import annotations

import asyncio
import logging

import pymysql
import pytest

from dbmux.binlog.errors import BinlogReaderError
from dbmux.binlog.reader import BinlogReader
from dbmux.core.config import load_config, parse_config
from dbmux.core.supervise import Backoff, supervise, wait_for_stop
from dbmux.replicator import runner
from dbmux.replicator.errors import ApplyError, TargetHalted

TRANSIENT = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
PERMANENT = pymysql.err.OperationalError(1045, "Access denied for user 'u'")


# --------------------------------------------------------------------------------------------- Backoff


@pytest.mark.parametrize("backoff, delays", [
    (Backoff(), [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),  # the runner's and the reader's timings
    (Backoff(initial_s=1, max_s=5, factor=3), [1, 3, 5, 5]),
    (Backoff(initial_s=2, max_s=2), [2, 2, 2]),
    (Backoff(initial_s=0.25, max_s=10, factor=1), [0.25, 0.25, 0.25]),
])
def test_backoff_delays(backoff, delays):
    assert [backoff.next_delay() for _ in delays] == delays


def test_backoff_reset_starts_from_the_initial_delay():
    b = Backoff()
    for _ in range(4):
        b.next_delay()
    b.reset()
    assert [b.next_delay(), b.next_delay()] == [0.5, 1.0]


@pytest.mark.parametrize("kwargs", [{"initial_s": 0}, {"initial_s": 5, "max_s": 1}, {"factor": 0.5}])
def test_backoff_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_wait_for_stop_returns_early_when_stopped():
    async def main():
        stop = asyncio.Event()
        assert await wait_for_stop(stop, 0) is False  # timed out (no delay), not stopped
        stop.set()
        return await asyncio.wait_for(wait_for_stop(stop, 3600), 5)  # would hang for an hour otherwise

    assert asyncio.run(main()) is True


# --------------------------------------------------------------------------------------------- supervise


class Harness:
    """A step failing with the given outcomes in turn (an exception, or a value to return); a clock
    each attempt advances by ``durations``; a wait that records the delays instead of sleeping."""

    def __init__(self, outcomes: list, durations: list[float] | None = None) -> None:
        self.outcomes = list(outcomes)
        self.durations = list(durations or [])
        self.now = 1000.0
        self.attempts = 0
        self.progress = 0
        self.retried: list[tuple[Exception, float]] = []
        self.waited: list[float] = []
        self.stop = asyncio.Event()
        self.stop_after_waits: int | None = None

    async def step(self):
        self.attempts += 1
        if self.durations:
            self.now += self.durations.pop(0)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome == "progress then fail":
            self.progress += 1
            raise TRANSIENT
        return outcome

    def clock(self) -> float:
        return self.now

    def on_retry(self, exc: Exception, delay: float) -> None:
        self.retried.append((exc, delay))

    async def wait(self, stop: asyncio.Event, delay: float) -> bool:
        self.waited.append(delay)
        if self.stop_after_waits is not None and len(self.waited) >= self.stop_after_waits:
            stop.set()
        return stop.is_set()

    def run(self, **kwargs):
        return asyncio.run(supervise(self.step, stop=self.stop, on_retry=self.on_retry, clock=self.clock,
                                     wait=self.wait, **kwargs))


def test_transient_failures_are_retried_with_growing_delays_until_the_step_returns():
    h = Harness([TRANSIENT, ConnectionResetError(), TRANSIENT, TRANSIENT, "done"])
    assert h.run() == "done"
    assert h.attempts == 5
    assert h.waited == [0.5, 1.0, 2.0, 4.0]
    assert [d for _, d in h.retried] == h.waited  # on_retry is told the delay before the wait
    assert h.retried[1][0].__class__ is ConnectionResetError


@pytest.mark.parametrize("error", [PERMANENT, ValueError("bug"), BinlogReaderError("gone", retriable=False)])
def test_a_permanent_error_propagates_at_once(error):
    h = Harness([TRANSIENT, error, "never"])
    with pytest.raises(type(error)) as info:
        h.run()
    assert info.value is error
    assert h.attempts == 2 and h.waited == [0.5]


def test_retry_if_replaces_the_classification():
    h = Harness([ValueError("retry me"), "done"])
    assert h.run(retry_if=lambda exc: isinstance(exc, ValueError)) == "done"
    assert h.waited == [0.5]


def test_an_attempt_that_ran_long_enough_starts_the_backoff_afresh():
    # attempts run 1 s, 1 s, 61 s (> fresh_after_s), 1 s, then succeed
    h = Harness([TRANSIENT, TRANSIENT, TRANSIENT, TRANSIENT, "done"], durations=[1, 1, 61, 1, 0])
    assert h.run(fresh_after_s=60) == "done"
    assert h.waited == [0.5, 1.0, 0.5, 1.0]


def test_an_attempt_that_made_progress_starts_the_backoff_afresh():
    h = Harness([TRANSIENT, TRANSIENT, "progress then fail", TRANSIENT, "done"])
    assert h.run(progress=lambda: h.progress) == "done"
    assert h.waited == [0.5, 1.0, 0.5, 1.0]


def test_stop_during_the_wait_ends_without_another_attempt():
    h = Harness([TRANSIENT, TRANSIENT, "never"])
    h.stop_after_waits = 2
    assert h.run() is None
    assert h.attempts == 2 and h.waited == [0.5, 1.0]


def test_stop_already_set_runs_nothing():
    h = Harness(["never"])
    h.stop.set()
    assert h.run() is None and h.attempts == 0


def test_a_shared_backoff_keeps_its_state():
    b = Backoff()
    h = Harness([TRANSIENT, "done"])
    h.run(backoff=b)
    assert b.next_delay() == 1.0  # the supervise call used 0.5


# --------------------------------------------------------------------------------------------- the reader on it


def _reader(tmp_path) -> BinlogReader:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[kafka]\nbootstrap = "127.0.0.1:1"\ntopic = "t"\n[primary]\nurl = "mysql://u:p@127.0.0.1:3306"\n')
    return BinlogReader(load_config(str(cfg), env={}))


@pytest.mark.parametrize("error", [PERMANENT, pymysql.err.OperationalError(1236, "binlog purged"),
                                   BinlogReaderError("binlog_format is STATEMENT", retriable=False)])
def test_reader_stops_with_2_on_a_permanent_error(tmp_path, caplog, error):
    reader = _reader(tmp_path)
    attempts = []

    async def run_once(stop):
        attempts.append(1)
        raise error

    reader._run_once = run_once
    with caplog.at_level(logging.ERROR, logger="dbmux.binlog.reader"):
        assert asyncio.run(reader.run(asyncio.Event())) == 2
    assert len(attempts) == 1
    assert "binlog reader:" in caplog.text and "reconnecting" not in caplog.text


def test_reader_reconnects_after_a_transient_error(tmp_path, caplog):
    reader = _reader(tmp_path)
    attempts = []

    async def run_once(stop):
        attempts.append(1)
        stop.set()  # the back-off wait then ends at once, and no attempt follows
        raise TRANSIENT

    reader._run_once = run_once
    with caplog.at_level(logging.WARNING, logger="dbmux.binlog.reader"):
        assert asyncio.run(reader.run(asyncio.Event())) == 0
    assert len(attempts) == 1
    assert "error 2013" in caplog.text and "reconnecting from the stored position in 0.5s" in caplog.text


# --------------------------------------------------------------------------------------------- the runner on it


def _replicator(monkeypatch, run_once):
    async def no_topic(*args, **kwargs):
        return None

    monkeypatch.setattr(runner, "ensure_topic", no_topic)
    cfg = parse_config({"kafka": {"topic": "dbmux.unit.txn"}, "primary": {"url": "mysql://u:p@127.0.0.1:1"},
                        "targets": {"r": {"url": "mysql://u:p@127.0.0.1:2", "tables": ["*"]}}}, {})
    rep = runner.Replicator(cfg, "r")
    rep._run_once = run_once
    return rep


@pytest.mark.parametrize("error", [TargetHalted("halted"), ApplyError("duplicate key", gtid="0-1-5"),
                                   PERMANENT, RuntimeError("bug")])
def test_runner_exits_3_on_a_permanent_error(monkeypatch, error):
    attempts = []

    async def run_once(stop):
        attempts.append(1)
        raise error

    rep = _replicator(monkeypatch, run_once)
    assert asyncio.run(rep.run(asyncio.Event())) == 3
    assert len(attempts) == 1


@pytest.mark.parametrize("error", [ApplyError("deadlock", retriable=True), TRANSIENT, ConnectionResetError()])
def test_runner_restarts_after_a_transient_error(monkeypatch, caplog, error):
    attempts = []

    async def run_once(stop):
        attempts.append(1)
        stop.set()  # the back-off wait then ends at once, and no attempt follows
        raise error

    rep = _replicator(monkeypatch, run_once)
    with caplog.at_level(logging.WARNING, logger="dbmux.replicator.runner"):
        assert asyncio.run(rep.run(asyncio.Event())) == 0
    assert len(attempts) == 1
    assert "target r: transient failure" in caplog.text and "stored position in 0.5s" in caplog.text
