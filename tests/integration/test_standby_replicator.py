"""Standby replicators (issue 17 deliver #5): a second ``dbmux replicate`` for the same target waits on
the target's lock instead of failing, and takes over when the active one dies under load -- each
transaction still applied exactly once. (Before, the second one exited at once: "another replicator
is already applying".)"""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid

from .test_replicator_mysql import (
    _workload,
    assert_ledger_exactly_once,
    create_ledger,
    pipeline,  # noqa: F401 - the fixture, used here too
)


def _wait_log(log, pattern: str, proc, timeout_s: float = 60.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if re.search(pattern, log.read_text(errors="replace")):
            return time.monotonic()
        assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not logged within {timeout_s}s:\n{log.read_text()[-3000:]}")


def test_standby_takes_over_when_the_active_replicator_dies(stack, pipeline, tmp_path):  # noqa: F811
    from .test_replicator_mysql import _start_replicator

    ing, target, cfg, start, log = pipeline
    db = f"sb_{uuid.uuid4().hex[:8]}"
    create_ledger(ing.dsn(stack.primary), db)
    active = start()
    _wait_log(log, "replicating", active)
    standby_log = tmp_path / "standby.log"
    standby = _start_replicator(cfg, target, standby_log)
    try:
        _wait_log(standby_log, "standing by to take over", standby)
        stop, errors = threading.Event(), []
        workers = [threading.Thread(target=_workload, args=(ing.dsn(stack.primary), db, stop, errors))
                   for _ in range(2)]
        for w in workers:
            w.start()
        try:
            time.sleep(1.5)
            assert "replicating" not in standby_log.read_text()  # it applied nothing while it stood by
            killed = time.monotonic()
            active.send_signal(signal.SIGKILL)
            active.wait()
            took_over = _wait_log(standby_log, r"took over the target's lock", standby, timeout_s=30)
            _wait_log(standby_log, "replicating", standby)
            time.sleep(1.0)
        finally:
            stop.set()
            for w in workers:
                w.join()
        assert not errors, errors
        print(f"standby takeover: {took_over - killed:.2f} s after the active replicator's SIGKILL")
        assert took_over - killed < 5.0, f"takeover took {took_over - killed:.1f}s"
        assert_ledger_exactly_once(stack, cfg, target, db, min_n=20)
        assert standby.poll() is None
    finally:
        if standby.poll() is None:
            standby.send_signal(signal.SIGTERM)
            standby.wait(30)
