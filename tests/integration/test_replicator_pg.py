"""Replicator to a PostgreSQL target: the same stream as the replicas, DDL mid-run included,
converges (checked by `dbmux verify`)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid

import asyncpg

from .conftest import run_dbmux, start_ingress, stop_ingress
from .test_replicator_mysql import _conn, _start_replicator


def _config(tmp, stack, ing, names_urls: dict[str, str], tables: str, replicator: str = ""):
    """``replicator``: more [replicator] lines."""
    cfg = tmp / "pg.toml"
    targets = "".join(f'[targets.{n}]\nurl = "{u}"\ntables = ["{tables}"]\n' for n, u in names_urls.items())
    cfg.write_text(f"""
[kafka]
bootstrap = "{stack.kafka}"
topic = "{ing.topic}"
[primary]
url = "{stack.primary.url()}"
[replicator]
batch_linger_ms = 5
{replicator}
{targets}""")
    return cfg


def _writer(via, db: str, stop: threading.Event, errors: list) -> None:
    try:
        c = _conn(via)
        i = 0
        with c.cursor() as cur:
            while not stop.is_set():
                i += 1
                c.begin()
                cur.execute(f"INSERT INTO {db}.items (name, qty, price, seen) VALUES (%s, %s, %s, NOW(6))",
                            (f"n{i}", i, i * 1.25))
                cur.execute(f"UPDATE {db}.items SET qty = qty + 1 WHERE id = %s", (max(1, i // 2),))
                if i % 7 == 0:
                    cur.execute(f"DELETE FROM {db}.items WHERE id = %s", (i // 3,))
                c.commit()
        c.close()
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)


def test_replicas_and_postgres_converge_with_ddl_mid_run(stack, tmp_path):
    ing = start_ingress(stack, tmp_path)
    db = f"conv_{uuid.uuid4().hex[:8]}"  # (PostgreSQL reserves schema names starting with pg_)
    suffix = uuid.uuid4().hex[:6]
    names = {f"r1_{suffix}": stack.replicas[0].url(), f"r2_{suffix}": stack.replicas[1].url(),
             f"pg_{suffix}": stack.shards[0].url()}
    cfg = _config(tmp_path, stack, ing, names, f"{db}.*")
    procs = []
    try:
        via = ing.dsn(stack.primary)
        c = _conn(via)
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL, "
                        "qty INT, price DECIMAL(10,2), seen DATETIME(6))")
        c.close()
        procs = [_start_replicator(cfg, n, tmp_path / f"{n}.log") for n in names]
        stop, errors = threading.Event(), []
        workers = [threading.Thread(target=_writer, args=(via, db, stop, errors)) for _ in range(2)]
        for w in workers:
            w.start()
        time.sleep(2)
        c = _conn(via)
        with c.cursor() as cur:  # DDL through the ingress while writes continue
            cur.execute(f"CREATE TABLE {db}.extra (k INT PRIMARY KEY, note TEXT)")
            cur.execute(f"ALTER TABLE {db}.items ADD COLUMN tag VARCHAR(10) DEFAULT 'x'")
            cur.execute(f"CREATE INDEX items_name ON {db}.items (name)")
            cur.execute(f"INSERT INTO {db}.extra VALUES (1, 'one'), (2, NULL)")
        c.close()
        time.sleep(2)
        stop.set()
        for w in workers:
            w.join()
        assert not errors, errors
        deadline = time.monotonic() + 90
        while True:
            out = run_dbmux("verify", "-c", str(cfg), check=False)
            if out.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert out.returncode == 0, out.stdout + out.stderr + "".join(
            (tmp_path / f"{n}.log").read_text()[-2000:] for n in names)
        assert f"{db}.items" in out.stdout and f"{db}.extra" in out.stdout
        for p in procs:
            assert p.poll() is None

        async def pg_check():
            d = stack.shards[0]
            conn = await asyncpg.connect(host=d.host, port=d.port, user=d.user, password=d.password,
                                         database=d.database)
            try:
                cols = [r[0] for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND "
                    "table_name = 'items' ORDER BY ordinal_position", db)]
                idx = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND "
                                          "indexname LIKE '%items_name%'", db)
                return cols, idx
            finally:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{db}" CASCADE')
                await conn.close()

        import asyncio

        cols, idx = asyncio.run(pg_check())
        assert cols[-1] == "tag" and idx == 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(20)
        stop_ingress(ing)


def test_timestamps_from_a_session_not_in_utc_come_from_the_row_form(stack, tmp_path):
    """A MySQL TIMESTAMP written from a session in +05:00: its statement carries wall-clock time, the
    PostgreSQL target holds UTC. The event is held (GTID gap reported, never skipped) until the binlog
    reader's row form arrives, then applied from it: values equal the primary's, `dbmux verify` agrees.
    A UTC session's statement is applied from the statement itself."""
    from .conftest import start_binlog_reader, stop_processes

    ing = start_ingress(stack, tmp_path)
    db = f"tz_{uuid.uuid4().hex[:8]}"
    target = f"pgtz_{uuid.uuid4().hex[:6]}"
    cfg = _config(tmp_path, stack, ing, {target: stack.shards[0].url()}, f"{db}.*", "gap_alert_ms = 200")
    via = ing.dsn(stack.primary)
    procs = []
    pg_dsn = stack.shards[0]

    async def pg_rows():
        conn = await asyncpg.connect(host=pg_dsn.host, port=pg_dsn.port, user=pg_dsn.user, password=pg_dsn.password,
                                     database=pg_dsn.database)
        try:
            rows = await conn.fetch(f"SELECT id, EXTRACT(EPOCH FROM paid_at)::float8 AS e FROM {db}.t ORDER BY id")
            state = await conn.fetchval("SELECT state FROM dbmux_meta.status WHERE target = $1", target)
            return [(r["id"], r["e"]) for r in rows], state
        except asyncpg.UndefinedTableError:
            return [], None
        finally:
            await conn.close()

    def wait_for(pred, what: str, timeout_s: float = 60.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = asyncio.run(pg_rows())
            if pred(*got):
                return got
            time.sleep(0.1)
        raise AssertionError(f"{what}: not within {timeout_s}s (last: {got})")

    try:
        c = _conn(via)
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, paid_at TIMESTAMP(6) NULL)")
            cur.execute("SET time_zone = '+00:00'")
            cur.execute(f"INSERT INTO {db}.t VALUES (1, '2024-01-01 10:00:00')")
        procs.append(_start_replicator(cfg, target, tmp_path / "rep.log"))
        wait_for(lambda rows, state: len(rows) == 1, "the UTC session's row")  # statement form, no binlog reader
        direct = _conn(stack.primary)
        with direct.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            (before,) = cur.fetchone()
        with c.cursor() as cur:
            cur.execute("SET time_zone = '+05:00'")
            cur.execute(f"INSERT INTO {db}.t VALUES (2, '2024-01-01 10:00:00')")  # = 05:00 UTC
            cur.execute("SET time_zone = '+00:00'")
            cur.execute(f"INSERT INTO {db}.t VALUES (3, '2024-01-01 10:00:00')")
        rows, _ = wait_for(lambda rows, state: state == "waiting for gap", "the held event reported")
        assert [r[0] for r in rows] == [1]  # 2 waits for its row form, 3 waits behind it (GTID order)
        procs.append(start_binlog_reader(cfg, tmp_path / "binlog.log", "--from-gtid", before))
        rows, _ = wait_for(lambda rows, state: len(rows) == 3, "all rows")
        with direct.cursor() as cur:
            cur.execute(f"SELECT id, UNIX_TIMESTAMP(paid_at) FROM {db}.t ORDER BY id")
            expected = [(i, float(e)) for i, e in cur.fetchall()]
        assert rows == expected and rows[1][1] == rows[0][1] - 5 * 3600
        direct.close()
        c.close()
        res = run_dbmux("verify", "-c", str(cfg), "--target", target, check=False, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        stop_processes(procs)
        stop_ingress(ing)
