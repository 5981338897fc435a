"""Binlog reader against the real primary and Kafka: one row-form event per transaction, in GTID order;
SIGKILL under load loses nothing; the real replicator applies the stream to a replica."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from dbmux.core.codec import encode_event
from dbmux.core.dsn import Dsn
from dbmux.core.events import ChangeEvent
from dbmux.core.topics import partition_key

from .conftest import pipeline_config, read_topic, start_binlog_reader, stop_processes
from .test_replicator_mysql import _conn, _start_replicator, _wait_equal


def _write_config(tmp: Path, stack, topic: str, target: str = "", replica: Dsn | None = None) -> Path:
    return pipeline_config(tmp / f"binlog-{topic}.toml", stack, topic, {target: replica} if target else {},
                           extra="gap_alert_ms = 2000")


_start_reader = start_binlog_reader


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

    # The real replicator applies what the binlog reader published.
    with replica_fed_with(stack, tmp_path, topic, events, db) as (rep, rlog):
        rows = _wait_equal(f"SELECT * FROM {db}.t ORDER BY id", stack.primary, stack.replicas[1])
        assert [r[:2] for r in rows] == [(1, "A")] and rows[0][-1] == 5
        n = _wait_equal(f"SELECT n FROM {db}.counter", stack.primary, stack.replicas[1])[0][0]
        assert n == len(written)
        _wait_equal(f"CHECKSUM TABLE {db}.t, {db}.ledger, {db}.counter EXTENDED", stack.primary, stack.replicas[1])
        assert rep.poll() is None, rlog.read_text()[-3000:]


@contextlib.contextmanager
def replica_fed_with(stack, tmp_path: Path, topic: str, events: list[ChangeEvent], db: str
                     ) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A real replicator applying ``events`` to replica 2 (from ``<topic>.apply``); ``db`` is dropped on
    the primary and the replica afterwards. Other tests write to the same primary concurrently, so
    their transactions (on tables the replica lacks) are blanked into empty events -- same GTIDs, so
    the replicator still sees a gap-free sequence."""
    ours = [e if (e.db == db or any(db in s.sql for s in e.statements))
            else ChangeEvent(e.gtid, "binlog", e.ts_ms) for e in events]
    applied_topic = f"{topic}.apply"
    asyncio.run(_publish(stack.kafka, applied_topic, ours))
    target = f"bl{uuid.uuid4().hex[:8]}"
    rlog = tmp_path / "replicator.log"
    rep = _start_replicator(_write_config(tmp_path, stack, applied_topic, target, stack.replicas[1]), target, rlog)
    try:
        yield rep, rlog
    finally:
        stop_processes([rep])
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
        stop_processes([reader])


def test_binlog_reader_row_images_follow_alter_table(stack, tmp_path):
    """The reader caches a table's definition by table_id (freeze_schema): ALTER TABLE under a running
    reader (add a column in the middle, drop one, change types, rename a column, rename the table),
    each followed by inserts and updates: every published row image has the new column names and
    values, in GTID order, once each."""
    topic = f"dbmux.alt{uuid.uuid4().hex[:8]}.txn"
    cfg = _write_config(tmp_path, stack, topic)
    log = tmp_path / "binlog.log"
    reader = _start_reader(cfg, log)
    db = f"alt_{uuid.uuid4().hex[:8]}"
    D = decimal.Decimal
    dt = datetime.datetime
    mine: dict[str, str] = {}
    expected: dict[str, list[tuple[str, str, dict | None, dict | None]]] = {}  # name -> (table, op, before, after)
    try:
        c = _conn(stack.primary)
        with c.cursor() as cur:
            def step(name: str, sql: str, rows: list | None = None) -> None:
                cur.execute(sql)
                mine[_last_gtid(cur)] = name
                if rows is not None:
                    expected[name] = rows

            step("create_db", f"CREATE DATABASE {db}")
            step("create", f"CREATE TABLE {db}.t (id INT PRIMARY KEY, a VARCHAR(20) NOT NULL, b INT, "
                           "c DECIMAL(6,2))")
            r1 = {"id": 1, "a": "one", "b": 10, "c": D("1.25")}
            r2 = {"id": 2, "a": "two", "b": 20, "c": D("2.50")}
            step("ins0", f"INSERT INTO {db}.t VALUES (1, 'one', 10, 1.25), (2, 'two', 20, 2.50)",
                 [("t", "insert", None, r1), ("t", "insert", None, r2)])
            step("upd0", f"UPDATE {db}.t SET b = b + 1 WHERE id = 1", [("t", "update", r1, {**r1, "b": 11})])
            r1 = {**r1, "b": 11}
            # the reader has now cached the table's first definition
            _events_until(stack, topic, set(mine))

            step("add", f"ALTER TABLE {db}.t ADD COLUMN d DATETIME(6) NULL AFTER a")
            r1 = {"id": 1, "a": "one", "d": None, "b": 11, "c": D("1.25")}
            r2 = {"id": 2, "a": "two", "d": None, "b": 20, "c": D("2.50")}
            r3 = {"id": 3, "a": "three", "d": dt(2024, 5, 6, 7, 8, 9, 500000), "b": 30, "c": D("3.75")}
            step("ins1", f"INSERT INTO {db}.t VALUES (3, 'three', '2024-05-06 07:08:09.5', 30, 3.75)",
                 [("t", "insert", None, r3)])
            r2b = {**r2, "d": dt(2024, 1, 1), "b": 21}
            step("upd1", f"UPDATE {db}.t SET d = '2024-01-01 00:00:00', b = b + 1 WHERE id = 2",
                 [("t", "update", r2, r2b)])
            r2 = r2b

            step("drop", f"ALTER TABLE {db}.t DROP COLUMN b")
            r1, r2, r3 = ({k: v for k, v in r.items() if k != "b"} for r in (r1, r2, r3))
            r4 = {"id": 4, "a": "four", "d": None, "c": D("4.00")}
            step("ins2", f"INSERT INTO {db}.t VALUES (4, 'four', NULL, 4)", [("t", "insert", None, r4)])
            step("upd2", f"UPDATE {db}.t SET c = c + 1 WHERE id = 1", [("t", "update", r1, {**r1, "c": D("2.25")})])
            r1 = {**r1, "c": D("2.25")}

            step("modify", f"ALTER TABLE {db}.t MODIFY c VARCHAR(30), MODIFY id BIGINT UNSIGNED NOT NULL")
            r1, r2, r3, r4 = ({**r, "c": str(r["c"])} for r in (r1, r2, r3, r4))
            r5 = {"id": 2**63 + 5, "a": "five", "d": None, "c": "five-c"}
            step("ins3", f"INSERT INTO {db}.t VALUES ({2**63 + 5}, 'five', NULL, 'five-c')",
                 [("t", "insert", None, r5)])
            step("upd3", f"UPDATE {db}.t SET c = CONCAT(c, '!') WHERE id = 3",
                 [("t", "update", r3, {**r3, "c": "3.75!"})])
            r3 = {**r3, "c": "3.75!"}

            step("rename_col", f"ALTER TABLE {db}.t RENAME COLUMN a TO name")
            r1, r4 = ({("name" if k == "a" else k): v for k, v in r.items()} for r in (r1, r4))
            r6 = {"id": 6, "name": "six", "d": dt(2025, 2, 3, 4, 5, 6), "c": None}
            step("ins4", f"INSERT INTO {db}.t (id, name, d) VALUES (6, 'six', '2025-02-03 04:05:06')",
                 [("t", "insert", None, r6)])
            step("upd4", f"UPDATE {db}.t SET name = 'ONE' WHERE id = 1",
                 [("t", "update", r1, {**r1, "name": "ONE"})])
            step("del4", f"DELETE FROM {db}.t WHERE id = 4", [("t", "delete", r4, None)])

            step("rename_table", f"ALTER TABLE {db}.t RENAME TO {db}.t2")
            r7 = {"id": 7, "name": "seven", "d": None, "c": "x"}
            step("ins5", f"INSERT INTO {db}.t2 (id, name, c) VALUES (7, 'seven', 'x')", [("t2", "insert", None, r7)])
            step("recreate", f"CREATE TABLE {db}.t (id INT PRIMARY KEY, z VARBINARY(4))")
            step("ins6", f"INSERT INTO {db}.t VALUES (1, x'0102')",
                 [("t", "insert", None, {"id": 1, "z": b"\x01\x02"})])
        c.close()

        events = _events_until(stack, topic, set(mine))
        seqs = [e.gtid.seq for e in events]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), "not one event per GTID in GTID order"
        by_name = {mine[str(e.gtid)]: e for e in events if str(e.gtid) in mine}
        assert set(by_name) == set(mine.values())
        for name, rows in expected.items():
            got = [(r.table, r.op, r.before, r.after) for r in by_name[name].rows]
            assert all(r.db == db for r in by_name[name].rows)
            assert got == rows, f"{name}: {got} != {rows}"
        for name in ("add", "drop", "modify", "rename_col", "rename_table"):
            assert [s.kind for s in by_name[name].statements] == ["ddl"] and not by_name[name].rows
        assert reader.poll() is None, log.read_text()[-3000:]
    finally:
        stop_processes([reader])
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")


def _master_status(dsn: Dsn) -> tuple[str, int, str]:
    c = _conn(dsn)
    with c.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
        cur.execute("SELECT @@global.gtid_binlog_pos")
        gtid_pos = cur.fetchone()[0]
    c.close()
    return file, int(pos), gtid_pos


def _table_ids(dsn: Dsn, file: str, pos: int, db: str) -> dict[int, str]:
    """table_id -> table of ``db`` in the Table_map events of ``file`` from ``pos``."""
    c = _conn(dsn)
    out: dict[int, str] = {}
    with c.cursor() as cur:
        cur.execute(f"SHOW BINLOG EVENTS IN '{file}' FROM {pos}")
        for row in cur.fetchall():
            if row[2] == "Table_map" and f"({db}." in row[5]:
                tid = int(row[5].split("table_id: ", 1)[1].split()[0])
                out[tid] = row[5].rsplit(".", 1)[1].rstrip(")")
    c.close()
    return out


def test_binlog_reader_catching_up_across_primary_restarts_with_reused_table_ids(stack, tmp_path):
    """Table ids restart with the server. History: primary restarted, tables a0..a7 written, primary
    restarted, tables b0..b7 (another shape) written: the second run reuses table ids of the first
    for other tables. A reader started afterwards at the GTID before that history (catching up across
    both restarts) must decode every row with its own table's definition."""
    from .conftest import run_dbmux

    db = f"ti_{uuid.uuid4().hex[:8]}"
    n = 8

    def restart() -> None:
        proc = run_dbmux("stack", "restart", "mariadb-primary", "--dir", str(stack.config.parent))
        assert proc.returncode == 0, proc.stderr

    c = _conn(stack.primary)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        for i in range(n):
            cur.execute(f"CREATE TABLE {db}.a{i} (id INT PRIMARY KEY, x VARCHAR(10))")
            cur.execute(f"CREATE TABLE {db}.b{i} (k BIGINT PRIMARY KEY, y DECIMAL(10,2), z DATETIME(6), "
                        "w VARCHAR(30), u INT UNSIGNED)")
    c.close()
    _, _, start_gtid = _master_status(stack.primary)
    gtids: list[str] = []
    restart()
    file1, pos1, _ = _master_status(stack.primary)
    c = _conn(stack.primary)
    with c.cursor() as cur:
        for i in range(n):
            cur.execute(f"INSERT INTO {db}.a{i} VALUES ({i}, 'a{i}')")
            gtids.append(_last_gtid(cur))
    c.close()
    restart()
    file2, pos2, _ = _master_status(stack.primary)
    c = _conn(stack.primary)
    with c.cursor() as cur:
        for i in reversed(range(n)):
            cur.execute(f"INSERT INTO {db}.b{i} VALUES ({i}, {i}.5, '2024-03-0{1 + i % 9} 01:02:03.000004', "
                        f"'b{i}', {4000000000 + i})")
            gtids.append(_last_gtid(cur))
            cur.execute(f"UPDATE {db}.b{i} SET w = 'B{i}' WHERE k = {i}")
            gtids.append(_last_gtid(cur))
    c.close()
    ids1, ids2 = _table_ids(stack.primary, file1, pos1, db), _table_ids(stack.primary, file2, pos2, db)
    reused = {tid for tid in ids1 if tid in ids2 and ids1[tid] != ids2[tid]}
    assert file1 != file2 and reused, f"no table id reused across the restart: {ids1} / {ids2}"

    topic = f"dbmux.ti{uuid.uuid4().hex[:8]}.txn"
    cfg = _write_config(tmp_path, stack, topic)
    log = tmp_path / "binlog.log"
    reader = _start_reader(cfg, log, "--from-gtid", start_gtid)
    try:
        events = _events_until(stack, topic, set(gtids), timeout_s=120)
        ours = [e for e in events if str(e.gtid) in set(gtids)]
        assert [str(e.gtid) for e in ours] == gtids  # once each, in commit order
        rows = [r for e in ours for r in e.rows]
        assert [(r.table, r.op) for r in rows] == (
            [(f"a{i}", "insert") for i in range(n)]
            + [x for i in reversed(range(n)) for x in ((f"b{i}", "insert"), (f"b{i}", "update"))])
        for r in rows[:n]:
            i = int(r.table[1:])
            assert r.after == {"id": i, "x": f"a{i}"}
        for r in rows[n:]:
            i = int(r.table[1:])
            after = {"k": i, "y": decimal.Decimal(f"{i}.50"), "z": datetime.datetime(2024, 3, 1 + i % 9, 1, 2, 3, 4),
                     "w": f"b{i}", "u": 4000000000 + i}
            if r.op == "insert":
                assert r.before is None and r.after == after
            else:
                assert r.before == after and r.after == {**after, "w": f"B{i}"}
        assert reader.poll() is None, log.read_text()[-3000:]
    finally:
        stop_processes([reader])
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
