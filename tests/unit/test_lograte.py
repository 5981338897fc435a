"""dbmux.core.lograte: a client library's repeated log line is let through once per window, with a count."""

from __future__ import annotations

import logging

from dbmux.core.lograte import RepeatFilter


def _record(name: str, msg: str, level: int = logging.ERROR, args=()) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeats_are_held_back_and_counted():
    now = [0.0]
    flt = RepeatFilter(10.0, clock=lambda: now[0])
    passed = []
    for i in range(300):  # 100 a second for 3 s, as aiokafka does with the broker gone
        now[0] = i / 100
        rec = _record("aiokafka", "Unable connect to node with id %s: %s", args=(1, "refused"))
        if flt.filter(rec):
            passed.append(rec)
    assert len(passed) == 1
    now[0] = 10.5
    rec = _record("aiokafka", "Unable connect to node with id %s: %s", args=(1, "refused"))
    assert flt.filter(rec) and "(299 more like this in the last 10s)" in rec.getMessage()


def test_other_templates_levels_and_dbmux_loggers_pass():
    flt = RepeatFilter(10.0, clock=lambda: 0.0)
    assert flt.filter(_record("aiokafka", "a"))
    assert flt.filter(_record("aiokafka", "b"))  # another template
    assert flt.filter(_record("aiokafka", "a", logging.WARNING))  # another level
    assert flt.filter(_record("aiokafka.consumer", "a"))  # another logger: a key of its own
    assert not flt.filter(_record("aiokafka.consumer", "a"))  # ...then held back like the others
    for _ in range(5):  # dbmux's own lines are never held back
        assert flt.filter(_record("dbmux.replicator.runner", "target x: GTID gap open"))
