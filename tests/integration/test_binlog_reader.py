"""Binlog reader against the real primary and Kafka: one row-form event per transaction, in GTID order;
SIGKILL under load loses nothing; the real replicator applies the stream to a replica."""

from __future__ import annotations

import asyncio
import decimal
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path


from dbmux.dsn import Dsn
from dbmux.envelope import ChangeEvent, encode_event, partition_key

from .conftest import REPO, read_topic
from .test_replicator_mysql import _conn, _start_replicator, _wait_equal


def _write_config(tmp: Path, stack, topic: str, target: str = "", replica: Dsn | None = None) -> Path:
    cfg = tmp / f"binlog-{topic}.toml"
    body = f"""
[kafka]
bootstrap = "{stack.kafka}"
topic = "{topic}"
[primary]
url = "{stack.primary.url()}"
binlog_url = "{stack.binlog.url()}"
[replicator]
batch_linger_ms = 5
gap_alert_ms = 2000
"""
    if target:
        body += f'[targets.{target}]\nurl = "{replica.url()}"\n'
    cfg.write_text(body)
    return cfg


def _start_reader(cfg: Path, log: Path) -> subprocess.Popen:
    offset = log.stat().st_size if log.exists() else 0
    proc = subprocess.Popen([sys.executable, "-m", "dbmux.cli", "-v", "binlog", "-c", str(cfg)], cwd=REPO,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "streaming from primary" not in log.read_bytes()[offset:].decode(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"binlog reader did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc


def _last_gtid(cur) -> str:
    cur.execute("SELECT @@last_gtid")
    return cur.fetchone()[0]


def _events_until(stack, topic: str, gtids: set[str], timeout_s: float = 60) -> list[ChangeEvent]:
    deadline = time.monotonic() + timeout_s
    while True:
        events = asyncio.run(read_topic(stack.kafka, topic))
        missing = gtids - {str(e.gtid) for e in events}
        if not missing:
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"missing on {topic}: {sorted(missing)[:20]} ({len(missing)} GTIDs)")
        time.sleep(0.5)


def _ledger_writer(primary: Dsn, db: str, stop: threading.Event, gtids: list[str], errors: list) -> None:
    try:
        c = _conn(primary)
        with c.cursor() as cur:
            while not stop.is_set():
                c.begin()
                cur.execute(f"INSERT INTO {db}.ledger (id, payload) VALUES (%s, %s)",
                            (uuid.uuid4().hex, "p" * 20))
                cur.execute(f"UPDATE {db}.counter SET n = n + 1 WHERE id = 1")
                c.commit()
                gtids.append(_last_gtid(cur))
        c.close()
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


async def _publish(bootstrap: str, topic: str, events: list[ChangeEvent]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for ev in events:
            await producer.send(topic, encode_event(ev), key=partition_key(ev))
        await producer.flush()
    finally:
        await producer.stop()


def test_binlog_reader_publishes_transactions_survives_sigkill_and_replicates(stack, tmp_path):
    topic = f"dbmux.bl{uuid.uuid4().hex[:10]}.txn"
    cfg = _write_config(tmp_path, stack, topic)
    log = tmp_path / "binlog.log"
    reader = _start_reader(cfg, log)
    db = f"bl_{uuid.uuid4().hex[:8]}"
    mine: dict[str, str] = {}  # gtid -> what it was
    try:
        c = _conn(stack.primary)
        with c.cursor() as cur:
            def step(name: str, *sqls: str, txn: bool = False) -> None:
                if txn:
                    c.begin()
                for sql in sqls:
                    cur.execute(sql)
                if txn:
                    c.commit()
                mine[_last_gtid(cur)] = name

            step("create_db", f"CREATE DATABASE {db}")
            step("create_table", f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(40), n DECIMAL(8,2), "
                                 "s SET('red','green','blue'), j JSON, b VARBINARY(8), at DATETIME(6))")
            step("insert", f"INSERT INTO {db}.t VALUES (1, 'a', 1.50, 'blue,red', '{{\"k\": [1, 2]}}', "
                           "x'00ff', '2024-01-02 03:04:05.123456'), (2, 'b', NULL, '', NULL, NULL, NULL)")
            step("multi", f"INSERT INTO {db}.t (id, v) VALUES (3, 'c')", f"UPDATE {db}.t SET n = 7 WHERE id = 2",
                 f"DELETE FROM {db}.t WHERE id = 3", txn=True)
            step("update", f"UPDATE {db}.t SET v = 'A' WHERE id = 1")
            step("delete", f"DELETE FROM {db}.t WHERE id = 2")
            step("alter", f"ALTER TABLE {db}.t ADD COLUMN extra INT DEFAULT 5")
            step("create_ledger", f"CREATE TABLE {db}.ledger (id CHAR(32) PRIMARY KEY, payload VARCHAR(64))")
            step("create_counter", f"CREATE TABLE {db}.counter (id INT PRIMARY KEY, n BIGINT NOT NULL)")
            step("counter_row", f"INSERT INTO {db}.counter VALUES (1, 0)")
        c.close()

        events = _events_until(stack, topic, set(mine))
        seqs = [e.gtid.seq for e in events]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), "not one event per GTID in GTID order"
        by_name = {mine[str(e.gtid)]: e for e in events if str(e.gtid) in mine}
        assert all(e.source == "binlog" for e in by_name.values())
        assert [s.kind for s in by_name["create_db"].statements] == ["ddl"]
        assert "ADD COLUMN extra" in by_name["alter"].statements[0].sql and not by_name["alter"].rows
        ins = by_name["insert"].rows
        assert [(r.op, r.db, r.table) for r in ins] == [("insert", db, "t")] * 2
        assert ins[0].after["v"] == "a" and ins[0].after["n"] == decimal.Decimal("1.50")
        assert ins[0].after["s"] == "red,blue" and ins[1].after["s"] == ""
        assert "k" in ins[0].after["j"] and ins[0].after["b"] == b"\x00\xff"
        assert ins[0].after["at"].isoformat() == "2024-01-02T03:04:05.123456"
        multi = by_name["multi"].rows
        assert [r.op for r in multi] == ["insert", "update", "delete"]
        assert multi[1].before["n"] is None and multi[1].after["n"] == decimal.Decimal("7.00")
        assert multi[2].before == {**multi[0].after}
        assert by_name["update"].rows[0].before["v"] == "a" and by_name["update"].rows[0].after["v"] == "A"
        assert by_name["delete"].rows[0].op == "delete" and by_name["delete"].rows[0].before["id"] == 2

        # SIGKILL mid-stream while a writer keeps writing; restart; nothing may be missing.
        stop, written, errors = threading.Event(), [], []
        writer = threading.Thread(target=_ledger_writer, args=(stack.primary, db, stop, written, errors))
        writer.start()
        try:
            for _ in range(2):
                time.sleep(1.5)
                assert reader.poll() is None, log.read_text()[-3000:]
                reader.send_signal(signal.SIGKILL)
                reader.wait()
                time.sleep(0.5)
                reader = _start_reader(cfg, log)
            time.sleep(1.5)
        finally:
            stop.set()
            writer.join()
        assert not errors, errors
        assert len(written) > 20
        events = _events_until(stack, topic, set(written) | set(mine))
        counts = Counter(str(e.gtid) for e in events if e.source == "binlog")
        dups = {g: n for g, n in counts.items() if n > 1}
        assert len(dups) <= 2 and all(n == 2 for n in dups.values()), f"duplicates beyond in-flight: {dups}"
        assert "resuming after" in log.read_text()

        reader.send_signal(signal.SIGTERM)
        assert reader.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if reader.poll() is None:
            reader.kill()

    # The real replicator applies what the binlog reader published. Other tests write to the same
    # primary concurrently, so their transactions (on tables the replica lacks) are blanked into
    # empty events — same GTIDs, so the replicator still sees a gap-free sequence.
    ours = [e if (e.db == db or any(db in s.sql for s in e.statements))
            else ChangeEvent(e.gtid, "binlog", e.ts_ms) for e in events]
    applied_topic = f"{topic}.apply"
    asyncio.run(_publish(stack.kafka, applied_topic, ours))
    target = f"bl{uuid.uuid4().hex[:8]}"
    rcfg = _write_config(tmp_path, stack, applied_topic, target, stack.replicas[1])
    rlog = tmp_path / "replicator.log"
    rep = _start_replicator(rcfg, target, rlog)
    try:
        rows = _wait_equal(f"SELECT * FROM {db}.t ORDER BY id", stack.primary, stack.replicas[1])
        assert [r[:2] for r in rows] == [(1, "A")] and rows[0][-1] == 5
        n = _wait_equal(f"SELECT n FROM {db}.counter", stack.primary, stack.replicas[1])[0][0]
        assert n == len(written)
        _wait_equal(f"CHECKSUM TABLE {db}.t, {db}.ledger, {db}.counter EXTENDED", stack.primary, stack.replicas[1])
        assert rep.poll() is None, rlog.read_text()[-3000:]
    finally:
        rep.send_signal(signal.SIGTERM)
        try:
            rep.wait(20)
        except subprocess.TimeoutExpired:
            rep.kill()
        for dsn in (stack.primary, stack.replicas[1]):
            with _conn(dsn).cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {db}")


def test_binlog_reader_reconnects_after_the_primary_restarts(stack, tmp_path):
    """The primary is stopped and started under a running reader: transactions before and after the
    restart all reach the topic, each once, and the reader keeps running."""
    from .conftest import run_dbmux

    topic = f"dbmux.pr{uuid.uuid4().hex[:8]}.txn"
    cfg = _write_config(tmp_path, stack, topic)
    log = tmp_path / "binlog.log"
    reader = _start_reader(cfg, log)
    db = f"pr_{uuid.uuid4().hex[:8]}"
    gtids: list[str] = []
    try:
        c = _conn(stack.primary)
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
            for i in range(20):
                cur.execute(f"INSERT INTO {db}.t VALUES (%s, 'before')", (i,))
                gtids.append(_last_gtid(cur))
        c.close()
        _events_until(stack, topic, set(gtids))
        restart = run_dbmux("stack", "restart", "mariadb-primary", "--dir", str(stack.config.parent))
        assert restart.returncode == 0, restart.stderr
        c = _conn(stack.primary)
        with c.cursor() as cur:
            for i in range(20, 40):
                cur.execute(f"INSERT INTO {db}.t VALUES (%s, 'after')", (i,))
                gtids.append(_last_gtid(cur))
        c.close()
        events = _events_until(stack, topic, set(gtids), timeout_s=120)
        ours = [e for e in events if e.source == "binlog" and str(e.gtid) in set(gtids)]
        assert sorted(Counter(str(e.gtid) for e in ours).values()) == [1] * len(gtids)  # each exactly once
        assert [e.gtid.seq for e in ours] == sorted(e.gtid.seq for e in ours)  # in commit order
        assert {r.after["v"] for e in ours for r in e.rows} == {"before", "after"}
        assert reader.poll() is None, log.read_text()[-3000:]
        assert "reconnecting from" in log.read_text()  # the restart did cut the reader's connection
    finally:
        reader.send_signal(signal.SIGTERM)
        reader.wait(30)
