"""`dbmux snapshot` and `dbmux rebuild` (issue 18 deliver #1, #4; done-when 1): on a fresh topic, a table
created before dbmux started is published with `dbmux snapshot`; writes through the ingress and straight to
the primary, DDL, a table created inside the topic; a destructive DELETE and further changes; then
`dbmux rebuild --until-gtid <the GTID before the DELETE> --rename-db` builds tables equal, row by row, to the
primary's state recorded at that GTID -- into MariaDB (the primary itself, next to the live database) and
into PostgreSQL. Also: the refusals (tables already there, a table the topic does not cover, a GTID not in
the topic), `dbmux history` showing the snapshot's copy of a row, and replicators skipping snapshot events."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import uuid

import asyncpg
import orjson
import pytest

from .conftest import pipeline_config, read_topic, run_dbmux, start_binlog_reader, start_ingress, stop_pipeline
from .test_replicator_mysql import _conn


def _last_gtid(cur) -> str:
    cur.execute("SELECT @@last_gtid")
    return cur.fetchone()[0]


def _norm(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, decimal.Decimal):
        return str(v.normalize())
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return None if v is None else str(v)


def _rows(rows) -> list[tuple]:
    return [tuple(_norm(v) for v in r) for r in rows]


def _mysql_rows(dsn, db: str, table: str, cols: str) -> list[tuple]:
    c = _conn(dsn)
    try:
        with c.cursor() as cur:
            cur.execute(f"SELECT {cols} FROM `{db}`.`{table}` ORDER BY id")
            return _rows(cur.fetchall())
    finally:
        c.close()


def _pg_rows(dsn, db: str, table: str, cols: str) -> list[tuple]:
    async def go():
        conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                     database=dsn.database or "postgres")
        try:
            return [tuple(r) for r in await conn.fetch(f'SELECT {cols} FROM "{db.lower()}"."{table}" ORDER BY id')]
        finally:
            await conn.close()
    return _rows(asyncio.run(go()))


def _drop_pg_schema(dsn, schema: str) -> None:
    async def go():
        conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                     database=dsn.database or "postgres")
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema.lower()}" CASCADE')
        finally:
            await conn.close()
    asyncio.run(go())


ITEMS = "id, name, qty, price, made, note, tag"
LOGS = "id, what, at"


@pytest.mark.parametrize("dest", ["mariadb", "postgresql"])
def test_snapshot_then_rebuild_before_a_destructive_delete(stack, tmp_path, dest):
    db = f"rb_{uuid.uuid4().hex[:8]}"
    restored = f"{db}_restored"
    into = stack.primary if dest == "mariadb" else stack.shards[0]
    direct = _conn(stack.primary)
    with direct.cursor() as dcur:  # before dbmux starts: only a snapshot can bring these into the topic
        dcur.execute(f"CREATE DATABASE {db}")
        dcur.execute(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT, "
                     "price DECIMAL(10,2), made DATETIME(6), note TEXT)")
        dcur.execute(f"CREATE TABLE {db}.other (id INT PRIMARY KEY, v INT)")
        dcur.executemany(f"INSERT INTO {db}.items VALUES (%s, %s, %s, %s, %s, %s)",
                         [(i, f"item-{i}", i % 7, decimal.Decimal(i) / 4, dt.datetime(2026, 1, 1, 0, 0, i % 60, i),
                           None if i % 5 == 0 else f"note {i} ' \\ é") for i in range(1, 2501)])
        dcur.execute(f"INSERT INTO {db}.other VALUES (1, 1)")
    ing = start_ingress(stack, tmp_path)
    cfg = pipeline_config(tmp_path / "rb.toml", stack, ing.topic, {})
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    try:
        out = run_dbmux("snapshot", "-c", str(cfg), "--tables", f"{db}.items", "--chunk-rows", "700",
                        "--no-progress")
        assert f"{db}.items: 2500 rows" in out.stdout

        app = _conn(ing.dsn(stack.primary))
        with app.cursor() as cur, direct.cursor() as dcur:
            cur.execute(f"UPDATE {db}.items SET qty = qty + 100 WHERE id <= 50")  # through the ingress
            dcur.execute(f"UPDATE {db}.items SET note = 'direct' WHERE id BETWEEN 40 AND 60")  # around it
            cur.execute(f"DELETE FROM {db}.items WHERE id > 2400")
            cur.execute(f"ALTER TABLE {db}.items ADD COLUMN tag VARCHAR(10) NOT NULL DEFAULT 'new'")
            cur.execute(f"INSERT INTO {db}.items VALUES (3000, 'late', 1, 9.99, '2026-02-02 02:02:02.5', NULL, 't')")
            cur.execute(f"CREATE TABLE {db}.logs (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20), "
                        "at DATETIME)")  # created inside the topic
            cur.execute(f"INSERT INTO {db}.logs (what, at) VALUES ('a', '2026-03-03 03:03:03'), ('b', NULL)")
            dcur.execute(f"UPDATE {db}.other SET v = 2")  # a table no snapshot covers
            dcur.execute(f"UPDATE {db}.logs SET what = 'b2' WHERE what = 'b'")
            before = _last_gtid(dcur)
            want_items = _mysql_rows(stack.primary, db, "items", ITEMS)
            want_logs = _mysql_rows(stack.primary, db, "logs", LOGS)
            cur.execute(f"DELETE FROM {db}.items WHERE id % 2 = 0")  # the incident
            dcur.execute(f"UPDATE {db}.items SET name = 'after' WHERE id < 100")
            cur.execute(f"INSERT INTO {db}.logs (what) VALUES ('c')")
            last = _last_gtid(cur)
        app.close()

        async def published() -> None:
            while True:
                evs = await read_topic(stack.kafka, ing.topic, min_count=1)
                if any(e.source == "binlog" and str(e.gtid) == last for e in evs):
                    return
                await asyncio.sleep(0.2)
        asyncio.run(asyncio.wait_for(published(), 60))
        assert len(want_items) == 2401 and want_items != _mysql_rows(stack.primary, db, "items", ITEMS)

        url = into.url()
        out = run_dbmux("rebuild", "-c", str(cfg), "--into", url, "--until-gtid", before, "--tables", f"{db}.items,"
                        f"{db}.logs", "--rename-db", f"{db}={restored}", "--no-progress")
        read = _mysql_rows if dest == "mariadb" else _pg_rows
        assert read(into, restored, "items", ITEMS) == want_items
        assert read(into, restored, "logs", LOGS) == want_logs
        assert f"as of {before}" in out.stdout and "2500 snapshot rows" in out.stdout
        assert into.password not in out.stdout + out.stderr

        again = run_dbmux("rebuild", "-c", str(cfg), "--into", url, "--until-gtid", before, "--tables",
                          f"{db}.items", "--rename-db", f"{db}={restored}", check=False)
        assert again.returncode == 2 and f"{restored}.items already exist" in again.stderr
        uncovered = run_dbmux("rebuild", "-c", str(cfg), "--into", url, "--until-gtid", before, "--tables",
                              f"{db}.*", "--rename-db", f"{db}=x{db}", check=False)
        assert uncovered.returncode == 2 and f"history of {db}.other" in uncovered.stderr
        assert f"dbmux snapshot --tables {db}.other" in uncovered.stderr
        domain, server, seq = last.split("-")
        future = run_dbmux("rebuild", "-c", str(cfg), "--into", url, "--until-gtid",
                           f"{domain}-{server}-{int(seq) + 50}", "--rename-db", f"{db}=x{db}", check=False)
        assert future.returncode == 2 and "has no binlog copy" in future.stderr

        if dest == "mariadb":  # history: the snapshot's copy of row 2, then its changes (the incident last)
            hist = run_dbmux("history", "-c", str(cfg), "--index", str(tmp_path / "h.sqlite"), f"{db}.items", "2")
            ops = [orjson.loads(x)["op"] for x in hist.stdout.splitlines()]
            assert ops == ["snapshot", "update", "delete"]
    finally:
        direct.close()
        stop_pipeline(stack.primary, procs, ing, db, restored, f"x{db}")
        if dest == "postgresql":
            _drop_pg_schema(into, restored)


def test_an_interrupted_snapshot_run_continues_with_the_tables_it_had_not_published(stack, tmp_path):
    from aiokafka import AIOKafkaProducer

    from dbmux.core.config import KafkaConfig
    from dbmux.core.kafka_topics import ensure_topic
    from dbmux.replicator.audit.snapshot import RUN_KEY, SnapshotRun, runs_topic

    db = f"rs_{uuid.uuid4().hex[:8]}"
    topic = f"dbmux.test{uuid.uuid4().hex[:10]}.txn"
    cfg = pipeline_config(tmp_path / "rs.toml", stack, topic, {})
    with _conn(stack.primary).cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        for t in ("a", "b"):
            cur.execute(f"CREATE TABLE {db}.{t} (id INT PRIMARY KEY)")
            cur.execute(f"INSERT INTO {db}.{t} VALUES (1), (2), (3)")
    try:
        async def interrupted() -> None:  # what a run killed after publishing table a leaves behind
            kafka = KafkaConfig(bootstrap=stack.kafka, partitions=1)
            await ensure_topic(kafka, runs_topic(topic), extra_config={"cleanup.policy": "compact"})
            producer = AIOKafkaProducer(bootstrap_servers=stack.kafka)
            await producer.start()
            try:
                run = SnapshotRun("r1", [f"{db}.a", f"{db}.b"], {f"{db}.a": "0-1-1"})
                await producer.send_and_wait(runs_topic(topic), run.dumps(), key=RUN_KEY)
            finally:
                await producer.stop()
        asyncio.run(interrupted())

        out = run_dbmux("snapshot", "-c", str(cfg), "--tables", f"{db}.*", "--no-progress")
        assert f"{db}.a: published by the interrupted run before" in out.stdout
        assert f"{db}.b: 3 rows" in out.stdout and f"{db}.a: 3 rows" not in out.stdout
        evs = asyncio.run(read_topic(stack.kafka, topic, min_count=1))
        assert {e.snapshot.table for e in evs if e.snapshot is not None} == {f"{db}.b"}
        assert [e.snapshot.part for e in evs] == ["begin", "rows", "end"]

        again = run_dbmux("snapshot", "-c", str(cfg), "--tables", f"{db}.*", "--no-progress")  # run r1 finished
        assert f"{db}.a: 3 rows" in again.stdout and f"{db}.b: 3 rows" in again.stdout
    finally:
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
