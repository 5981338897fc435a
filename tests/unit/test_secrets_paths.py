"""Every path a statement's text takes besides the ingress's capture (tests/unit/test_secrets.py): the
binlog reader's events and logs, apply errors, the runner's halt (log, status, TargetHalted) and
dead-letter (header, payload), backfill errors, and ``dbmux events``. None may show a password."""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass

import orjson
import pymysql
import pytest
from aiokafka import TopicPartition

from dbmux.binlog.assembler import TransactionAssembler
from dbmux.binlog.reader import BinlogReader
from dbmux.cli import events as events_cli
from dbmux.core.codec import decode_event, encode_event
from dbmux.core.config import load_config, parse_config
from dbmux.core.events import ChangeEvent, Statement
from dbmux.core.gtid import Gtid
from dbmux.core.password_hash import native_password_hash
from dbmux.core.passwords import WITHHELD_MARK, redact_event, redact_payload
from dbmux.replicator.backfill.targets import MySQLTarget
from dbmux.replicator.errors import ApplyError, BackfillError, TargetHalted
from dbmux.replicator.pg_types import Untranslatable
from dbmux.replicator.runner import Replicator
from dbmux.replicator.verify_readers import TableShape

from .test_binlog_events import MariadbGtidEvent, QueryEvent, XidEvent

PW = "Sk9!hunter2 pw"
PW_SQL = "CREATE USER 'u1'@'%' IDENTIFIED BY 'Sk9!hunter2 pw'"
SERVER_SQL = "CREATE SERVER s1 FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD 'Sk9!hunter2 pw')"


# ----------------------------------------------------------------------------------- binlog reader


def _assemble(*queries: str, standalone: bool = True) -> ChangeEvent:
    asm = TransactionAssembler()
    feed = [MariadbGtidEvent("0-1-7", flags=1 if standalone else 0)]
    feed += [QueryEvent(q, schema=b"") for q in queries]
    if not standalone:
        feed.append(XidEvent())
    out = [ev for ev in map(asm.feed, feed) if ev is not None]
    assert len(out) == 1
    return out[0]


def test_binlog_account_statement_is_published_with_the_hash():
    ev = _assemble(PW_SQL)
    (st,) = ev.statements
    assert st.sql == f"CREATE USER 'u1'@'%' IDENTIFIED BY PASSWORD '{native_password_hash(PW)}'"
    assert not st.unsafe and st.kind == "ddl"
    assert PW.encode() not in encode_event(ev)


def test_binlog_statement_without_a_hash_form_is_withheld_flagged_and_still_decodes():
    ev = _assemble("BEGIN", SERVER_SQL, standalone=False)
    (st,) = ev.statements
    assert PW not in st.sql and WITHHELD_MARK in st.sql and st.unsafe and st.kind == "other"
    back = decode_event(encode_event(ev))
    assert back.statements[0].unsafe and back.statements[0].sql == st.sql


def test_binlog_reader_logs_no_password(tmp_path, caplog):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[kafka]\nbootstrap = "127.0.0.1:1"\ntopic = "t"\n[primary]\nurl = "mysql://u:p@127.0.0.1:3306"\n')
    reader = BinlogReader(load_config(str(cfg), env={}))
    with caplog.at_level(logging.WARNING):
        reader._on_retry(RuntimeError(f"cannot handle {PW_SQL!r}"), 1.0)
        reader._on_retry(ApplyError("x", sql=PW_SQL), 1.0)
    assert "reconnecting" in caplog.text and PW not in caplog.text


# ------------------------------------------------------------------------------------ replicator


def test_apply_error_quoting_a_statement_shows_no_password():
    exc = ApplyError(f"error 1064: You have an error in your SQL syntax near '{PW}' at line 1 in {PW_SQL[:45]!r}",
                     gtid="0-1-7", offset=3, sql=PW_SQL)
    assert PW not in str(exc) and "gtid 0-1-7 offset 3: error 1064" in str(exc)
    assert PW not in str(exc.args)


@pytest.mark.parametrize("exc", [BackfillError(f"cannot apply {PW_SQL}"), Untranslatable("CREATE SERVER", SERVER_SQL),
                                 TargetHalted(PW_SQL)])
def test_replicator_errors_show_no_password(exc):
    assert PW not in str(exc)


class _RawError(Exception):
    """What an older error class could carry: a message with the password (the runner redacts anyway)."""

    offset = 5


class _Applier:
    def __init__(self) -> None:
        self.status: list[tuple[str, str]] = []
        self.applied: list = []

    async def set_status(self, state: str, detail: str) -> None:
        self.status.append((state, detail))

    async def apply(self, batch, pos, last) -> None:
        self.applied.append(batch)


class _Dlq:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, list]] = []

    async def send_and_wait(self, topic, value, headers) -> None:
        self.sent.append((topic, value, headers))


def _replicator(policy: str) -> Replicator:
    cfg = parse_config({"kafka": {"topic": "dbmux.unit.txn"}, "primary": {"url": "mysql://u:p@127.0.0.1:1"},
                        "targets": {"r": {"url": "mysql://u:p@127.0.0.1:2", "on_error": policy}}}, {})
    return Replicator(cfg, "r")


def _old_event() -> ChangeEvent:
    """An event published before the producers redacted: the password in clear text."""
    return ChangeEvent(gtid=Gtid("0", "1", 7), source="binlog", ts_ms=1, statements=(Statement(PW_SQL, kind="ddl"),))


def test_halt_message_log_and_status_show_no_password(caplog):
    rep, applier = _replicator("halt"), _Applier()
    with caplog.at_level(logging.ERROR), pytest.raises(TargetHalted) as ei:
        asyncio.run(rep._permanent(applier, None, _RawError(f"error 1396 in {PW_SQL!r}"), _old_event()))
    assert "HALTED" in caplog.text and PW not in caplog.text
    assert applier.status and applier.status[0][0] == "halted" and PW not in applier.status[0][1]
    assert PW not in str(ei.value) and "error 1396" in str(ei.value)


def test_dead_letter_header_payload_and_log_show_no_password(caplog):
    rep, applier, dlq = _replicator("dead-letter"), _Applier(), _Dlq()
    with caplog.at_level(logging.ERROR):
        asyncio.run(rep._permanent(applier, dlq, _RawError(f"error 1396 in {PW_SQL!r}"), _old_event()))
        asyncio.run(rep._permanent(applier, dlq, _RawError("undecodable event"), encode_event(_old_event())[:-1]))
    assert "dead-lettered" in caplog.text and PW not in caplog.text
    (topic, value, headers), (_, raw_value, _) = dlq.sent
    assert topic == "dbmux.unit.txn.dlq"
    assert PW.encode() not in value and PW.encode() not in raw_value
    assert all(PW.encode() not in v for _, v in headers)
    ev = decode_event(value)  # the payload still decodes, with the stored form a replica can apply
    assert native_password_hash(PW) in ev.statements[0].sql


def test_redact_event_and_payload():
    ev = _old_event()
    red = redact_event(ev)
    assert PW not in red.statements[0].sql and red.gtid == ev.gtid
    assert redact_event(red) is red
    data = b"\xff\xfe not utf-8 " + PW_SQL.encode()
    assert PW.encode() not in redact_payload(data) and redact_payload(data).startswith(b"\xff\xfe")


# -------------------------------------------------------------------------------------- dbmux events


@dataclass
class _Record:
    offset: int
    value: bytes


class _Consumer:
    """Stands in for AIOKafkaConsumer: one partition holding ``RECORDS``."""

    RECORDS: list[bytes] = []

    def __init__(self, **kwargs) -> None:
        self.tp = TopicPartition("dbmux.unit.txn", 0)
        self.pos = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def partitions_for_topic(self, topic):
        return {0}

    def assign(self, tps) -> None:
        pass

    async def end_offsets(self, tps):
        return {self.tp: len(self.RECORDS)}

    async def beginning_offsets(self, tps):
        return {self.tp: 0}

    def seek(self, tp, offset) -> None:
        self.pos = offset

    async def getmany(self, *tps, timeout_ms):
        out = [_Record(i, v) for i, v in enumerate(self.RECORDS) if i >= self.pos]
        self.pos = len(self.RECORDS)
        return {self.tp: out}

    async def position(self, tp):
        return self.pos


def test_dbmux_events_shows_no_password(monkeypatch):
    _Consumer.RECORDS = [encode_event(_old_event())]
    monkeypatch.setattr(events_cli, "AIOKafkaConsumer", _Consumer)
    cfg = parse_config({"kafka": {"topic": "dbmux.unit.txn"}, "primary": {"url": "mysql://u:p@127.0.0.1:1"}}, {})
    out = io.StringIO()
    assert asyncio.run(events_cli.print_events(cfg, last=10, follow=False, out=out)) == 0
    (line,) = out.getvalue().splitlines()
    assert PW not in line and native_password_hash(PW) in orjson.loads(line)["statements"][0]["sql"]


# ------------------------------------------------------------------------------------------- backfill


class _Cursor:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        pass

    async def execute(self, sql: str) -> None:
        if sql.startswith("CREATE TABLE"):
            raise pymysql.err.ProgrammingError(1064, f"You have an error in your SQL syntax near '{PW}@h/x/y''")


class _Conn:
    def cursor(self) -> _Cursor:
        return _Cursor()


def test_backfill_error_creating_a_table_shows_no_password():
    target = MySQLTarget.__new__(MySQLTarget)
    target.target = parse_config({"kafka": {"topic": "t"}, "primary": {"url": "mysql://u:p@127.0.0.1:1"},
                                  "targets": {"r": {"url": "mysql://u:p@127.0.0.1:2"}}}, {}).target("r")
    target.applier = type("A", (), {"connection": _Conn()})()
    shape = TableShape.__new__(TableShape)
    object.__setattr__(shape, "db", "d")
    object.__setattr__(shape, "table", "fed")
    create = f"CREATE TABLE `fed` (`id` int) ENGINE=FEDERATED CONNECTION='mysql://fu:{PW}@h/x/y'"
    with pytest.raises(BackfillError) as ei:
        asyncio.run(target.ensure_table(shape, create))
    assert "creating d.fed on target r failed" in str(ei.value) and PW not in str(ei.value)
    assert PW not in str(ei.value.args) and ei.value.__cause__ is None
