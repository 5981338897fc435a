"""Replicator to a PostgreSQL target: the same stream as the replicas, DDL mid-run included,
converges (checked by `dbmux verify`)."""

from __future__ import annotations

import signal
import threading
import time
import uuid

import asyncpg

from .conftest import run_dbmux, start_ingress, stop_ingress
from .test_replicator_mysql import _conn, _start_replicator


def _config(tmp, stack, ing, names_urls: dict[str, str], tables: str):
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
