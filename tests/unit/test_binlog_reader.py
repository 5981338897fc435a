"""binlog.reader without servers: the thread's hand-over and reconnect position, the
acknowledged position kept in place."""

from __future__ import annotations

import asyncio

import pymysql

from dbmux.binlog.position import BinlogPosition
from dbmux.binlog.reader import BinlogReader, _BinlogThread
from dbmux.core.dsn import Dsn
from dbmux.core.gtid import Gtid

DSN = Dsn.parse("mysql://u:p@127.0.0.1:3306")


def _thread(start: str = "0-1-5") -> tuple[_BinlogThread, asyncio.AbstractEventLoop, asyncio.Queue]:
    loop = asyncio.new_event_loop()
    queue: asyncio.Queue = asyncio.Queue()
    return _BinlogThread(DSN, 4242, True, BinlogPosition.parse(start), loop, queue), loop, queue


def test_every_connect_resumes_after_the_last_handed_over_gtid(monkeypatch):
    """The library reconnects by itself (lost connection) with its ``auto_position``: the thread sets
    it in the connect hook, from the GTIDs it has handed over, instead of once per transaction."""
    thread, loop, _ = _thread("0-1-5,1-2-3")
    try:
        monkeypatch.setattr(pymysql, "connect", lambda **kw: ("conn", kw))
        # first connect: no stream yet; the DSN has no tls parameter, so TLS is disabled explicitly
        assert thread._connect(host="h") == ("conn", {"host": "h", "ssl_disabled": True})

        class Stream:
            auto_position = "0-1-5,1-2-3"

        thread._stream = Stream()
        thread._gtids["0"] = Gtid.parse("0-1-9")
        thread._connect(host="h")
        assert thread._stream.auto_position == "0-1-9,1-2-3"
    finally:
        loop.close()


def test_hand_over_moves_everything_pending_as_one_list_per_wake_up():
    thread, loop, queue = _thread()
    try:
        for i in range(5):
            assert thread._put(("event", i))
        assert thread._deliver_scheduled and queue.empty()  # one wake-up pending, nothing delivered yet
        loop.run_until_complete(asyncio.sleep(0))  # the loop runs _deliver
        assert queue.get_nowait() == [("event", i) for i in range(5)] and queue.empty()
        assert not thread._deliver_scheduled
        thread._put(("event", 5))
        loop.run_until_complete(asyncio.sleep(0))
        assert queue.get_nowait() == [("event", 5)]
        # slots: 6 handed over, none taken yet
        assert thread._slots._value == 1000 - 6
        thread.taken(6)
        assert thread._slots._value == 1000
    finally:
        loop.close()


def test_acknowledged_position_is_kept_in_place_and_read_as_a_position(tmp_path):
    from dbmux.core.config import load_config

    cfg = tmp_path / "c.toml"
    cfg.write_text('[kafka]\nbootstrap = "127.0.0.1:1"\ntopic = "t"\n[primary]\nurl = "mysql://u:p@127.0.0.1:3306"\n')
    reader = BinlogReader(load_config(str(cfg), env={}))
    assert reader._acked is None
    reader._acked = BinlogPosition.parse("0-1-5").with_offsets({0: 7})
    reader._acked_gtids["0"] = Gtid.parse("0-1-6")
    reader._acked_offsets[0] = 8
    pos = reader._acked
    assert pos.text() == "0-1-6" and pos.offsets == {0: 8}
    pos.gtids["0"] = Gtid.parse("0-1-99")  # a copy: the reader's maps are unaffected
    assert reader._acked.text() == "0-1-6"
