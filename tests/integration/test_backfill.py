"""`dbmux backfill`: a target added after 100,000 rows were written is seeded from a consistent
snapshot while writes continue (through the ingress and straight to the primary), the backfill is
SIGKILLed halfway and run again, then the replicator takes over at the snapshot GTID: the MariaDB
and the PostgreSQL target both end equal to the primary (`dbmux verify`), every transaction once."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import pymysql
import pytest

from dbmux.core.dsn import Dsn

from .conftest import REPO, pipeline_config, run_dbmux, start_binlog_reader, start_ingress, stop_ingress, stop_processes
from .test_replicator_mysql import _conn, _start_replicator

ROWS = 100_000


def _config(tmp: Path, stack, topic: str, targets: dict[str, Dsn], db: str) -> Path:
    return pipeline_config(tmp / f"backfill-{'-'.join(targets)}.toml", stack, topic, targets, tables=f"{db}.*")


def _load(primary: Dsn, db: str) -> None:
    c = _conn(primary, database=None)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute("CREATE TABLE big (id BIGINT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL, c VARCHAR(60), "
                    "amount DECIMAL(12,2), at DATETIME(3), blob_col VARBINARY(32))")
        for lo in range(1, ROWS + 1, 20_000):
            cur.execute("INSERT INTO big (id, k, c, amount, at, blob_col) SELECT seq, seq % 1000, "
                        "CONCAT('row-', seq), seq / 7, '2026-01-01' + INTERVAL seq SECOND, UNHEX(MD5(seq)) "
                        f"FROM seq_{lo}_to_{lo + 19_999}")
        cur.execute("CREATE TABLE ledger (id CHAR(32) PRIMARY KEY, payload VARCHAR(64))")
        cur.execute("CREATE TABLE counter (id INT PRIMARY KEY, n BIGINT NOT NULL)")
        cur.execute("INSERT INTO counter VALUES (1, 0)")
        cur.execute("CREATE TABLE tags (name VARCHAR(20), hits INT)")  # no primary key: copied whole
        cur.execute("INSERT INTO tags VALUES ('a', 1), ('a', 1), ('b', NULL)")
    c.close()


def _ingress_writer(via: Dsn, db: str, stop: threading.Event, errors: list) -> None:
    """Ledger transactions that also bump a random row of `big` (statement form: applied twice it
    would show as a different k)."""
    try:
        c = _conn(via)
        with c.cursor() as cur:
            while not stop.is_set():
                c.begin()
                cur.execute(f"INSERT INTO {db}.ledger (id, payload) VALUES (%s, 'ingress')", (uuid.uuid4().hex,))
                cur.execute(f"UPDATE {db}.counter SET n = n + 1 WHERE id = 1")
                cur.execute(f"UPDATE {db}.big SET k = k + 1 WHERE id = %s", (random.randint(1, ROWS),))
                c.commit()
        c.close()
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def _direct_writer(primary: Dsn, db: str, stop: threading.Event, errors: list) -> None:
    """A batch job on the primary itself (only the binlog reader sees it): inserts, updates, deletes,
    and keys moving from the copied range into the uncopied one and back."""
    try:
        c = _conn(primary)
        i, moved = 0, 0
        with c.cursor() as cur:
            while not stop.is_set():
                i += 1
                rid = random.randint(1, ROWS)
                c.begin()
                cur.execute(f"UPDATE {db}.big SET k = k + 100, c = %s WHERE id = %s", (f"direct-{i}", rid))
                cur.execute(f"INSERT INTO {db}.big (k, c, amount, at) VALUES (%s, 'new', 1.25, NOW(3))", (i,))
                if i % 3 == 0:
                    cur.execute(f"DELETE FROM {db}.big WHERE id = %s", (random.randint(1, ROWS),))
                if i % 4 == 0:  # move a low key far up (out of the copied range) ...
                    moved = random.randint(1, ROWS // 4)
                    cur.execute(f"UPDATE IGNORE {db}.big SET id = id + 1000000 WHERE id = %s", (moved,))
                elif i % 4 == 2:  # ... and back down (into it)
                    cur.execute(f"UPDATE IGNORE {db}.big SET id = %s WHERE id = %s", (moved, moved + 1_000_000))
                cur.execute(f"UPDATE {db}.tags SET hits = hits + 1 WHERE name = 'a' LIMIT 1")
                c.commit()
                time.sleep(0.005)
        c.close()
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)


def _mysql_record(dsn: Dsn, target: str):
    c = _conn(dsn)
    try:
        with c.cursor() as cur:
            cur.execute("SELECT state, doc FROM dbmux_meta.backfill WHERE target = %s", (target,))
            row = cur.fetchone()
    except pymysql.err.MySQLError:
        return None
    finally:
        c.close()
    return (row[0], json.loads(row[1])) if row else None


def _pg_record(dsn: Dsn, target: str):
    async def go():
        conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                     database=dsn.database)
        try:
            row = await conn.fetchrow("SELECT state, doc FROM dbmux_meta.backfill WHERE target = $1", target)
        except asyncpg.PostgresError:
            return None
        finally:
            await conn.close()
        return (row["state"], json.loads(row["doc"])) if row else None

    return asyncio.run(go())


def _backfill(cfg: Path, target: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dbmux.cli", "-v", "backfill", "-c", str(cfg), "--target", target,
                             "--chunk-rows", "2000"], cwd=REPO, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _kill_halfway_then_finish(cfg: Path, target: str, record, tmp: Path) -> None:
    log = tmp / f"backfill-{target}.log"
    proc = _backfill(cfg, target, log)
    deadline = time.monotonic() + 180
    while True:  # SIGKILL once a third of `big` is copied (its record commits with every chunk)
        rec = record(target)
        copied = rec[1]["tables"].get(next(k for k in rec[1]["tables"] if k.endswith(".big")), {}) if rec else {}
        if copied.get("rows", 0) >= ROWS // 3:
            break
        assert proc.poll() is None, f"backfill ended before it could be interrupted:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state, doc = record(target)
    assert state == "copying" and not all(t["done"] for t in doc["tables"].values()), doc
    early = run_dbmux("replicate", "-c", str(cfg), "--target", target, timeout=60, check=False)
    assert early.returncode == 3 and "unfinished backfill" in early.stderr, early.stderr[-2000:]
    time.sleep(1.0)  # writes go on between the two runs
    out = run_dbmux("-v", "backfill", "-c", str(cfg), "--target", target, "--chunk-rows", "2000", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming" in out.stderr, out.stderr[-3000:]
    state, doc = record(target)
    assert state == "done" and all(t["done"] for t in doc["tables"].values()), doc


def _wait_caught_up(primary: Dsn, applied, timeout_s: float = 180.0) -> None:
    c = _conn(primary)
    with c.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        pos = {g.split("-")[0]: int(g.split("-")[2]) for g in cur.fetchone()[0].split(",") if g}
    c.close()
    deadline = time.monotonic() + timeout_s
    while True:
        have = applied()
        if all(have.get(d, 0) >= s for d, s in pos.items()):
            return
        assert time.monotonic() < deadline, f"target at {have}, primary at {pos}"
        time.sleep(0.3)


def test_backfill_under_writes_interrupted_and_resumed_then_replicated(stack, tmp_path):
    ing = start_ingress(stack, tmp_path)
    db = f"bf_{uuid.uuid4().hex[:8]}"
    mysql_target, pg_target = f"bfm{uuid.uuid4().hex[:6]}", f"bfp{uuid.uuid4().hex[:6]}"
    mysql_dsn, pg_dsn = stack.replicas[1], stack.shards[0]
    cfg = _config(tmp_path, stack, ing.topic, {mysql_target: mysql_dsn, pg_target: pg_dsn}, db)
    _load(stack.primary, db)  # the 100,000 rows exist before the target (and this topic) do

    procs: list[subprocess.Popen] = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    stop, errors = threading.Event(), []
    threads = [threading.Thread(target=_ingress_writer, args=(ing.dsn(stack.primary), db, stop, errors)),
               threading.Thread(target=_direct_writer, args=(stack.primary, db, stop, errors))]
    try:
        for t in threads:
            t.start()
        _kill_halfway_then_finish(cfg, mysql_target, lambda t: _mysql_record(mysql_dsn, t), tmp_path)
        _kill_halfway_then_finish(cfg, pg_target, lambda t: _pg_record(pg_dsn, t), tmp_path)
        for target in (mysql_target, pg_target):
            procs.append(_start_replicator(cfg, target, tmp_path / f"replicator-{target}.log"))
        time.sleep(2.0)  # the replicators take over while the writes go on
    finally:
        stop.set()
        for t in threads:
            t.join()
    try:
        assert not errors, errors
        _wait_caught_up(stack.primary, lambda: _applied_mysql(mysql_dsn, mysql_target))
        _wait_caught_up(stack.primary, lambda: _applied_pg(pg_dsn, pg_target))
        rows = [_all(dsn, f"SELECT name, hits FROM {db}.tags ORDER BY name, hits")
                for dsn in (stack.primary, mysql_dsn)]  # no primary key: compared as a multiset
        assert rows[0] == rows[1] and rows[0][1][1] > 1, rows
        for target in (mysql_target, pg_target):
            out = run_dbmux("verify", "-c", str(cfg), "--target", target, check=False)
            assert out.returncode == 0, out.stdout + out.stderr
            assert f"{db}.big" in out.stdout and f"{db}.ledger" in out.stdout
        c = _conn(stack.primary)
        with c.cursor() as cur:
            cur.execute(f"SELECT (SELECT n FROM {db}.counter), (SELECT COUNT(*) FROM {db}.ledger), "
                        f"(SELECT COUNT(*) FROM {db}.big), (SELECT MAX(id) FROM {db}.big)")
            n, ledger, big, max_id = cur.fetchone()
        c.close()
        assert n == ledger > 20 and big > ROWS // 2 and max_id > ROWS, (n, ledger, big, max_id)
        for p in procs:
            assert p.poll() is None, p.args
    finally:
        stop_processes(procs)
        stop_ingress(ing)


def _all(dsn: Dsn, sql: str) -> list[tuple]:
    c = _conn(dsn)
    with c.cursor() as cur:
        cur.execute(sql)
        out = list(cur.fetchall())
    c.close()
    return out


def _applied_mysql(dsn: Dsn, target: str) -> dict[str, int]:
    c = _conn(dsn)
    with c.cursor() as cur:
        cur.execute("SELECT domain_id, seq FROM dbmux_meta.gtids WHERE target = %s", (target,))
        out = {d: int(s) for d, s in cur.fetchall()}
    c.close()
    return out


def _applied_pg(dsn: Dsn, target: str) -> dict[str, int]:
    async def go():
        conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                     database=dsn.database)
        try:
            return {r["domain_id"]: int(r["seq"]) for r in
                    await conn.fetch("SELECT domain_id, seq FROM dbmux_meta.gtids WHERE target = $1", target)}
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.mark.parametrize("kind", ["mysql", "pg"])
def test_backfill_refuses_a_target_in_use_and_non_empty_tables(stack, tmp_path, kind):
    db = f"bfr_{uuid.uuid4().hex[:8]}"
    target = f"bfr{uuid.uuid4().hex[:6]}"
    dsn = stack.replicas[1] if kind == "mysql" else stack.shards[1]
    cfg = _config(tmp_path, stack, f"dbmux.bfr{uuid.uuid4().hex[:6]}.txn", {target: dsn}, db)
    c = _conn(stack.primary)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute(f"INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b')")
    c.close()
    first = run_dbmux("backfill", "-c", str(cfg), "--target", target, "--no-progress")
    assert "2 rows copied" in first.stdout
    again = run_dbmux("backfill", "-c", str(cfg), "--target", target, check=False)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    other = f"{target}x"  # a second target on the same server: the table is there and not empty
    cfg2 = _config(tmp_path, stack, f"dbmux.bfr{uuid.uuid4().hex[:6]}.txn", {other: dsn}, db)
    refused = run_dbmux("backfill", "-c", str(cfg2), "--target", other, check=False)
    assert refused.returncode == 2 and "already holds" in refused.stderr and "--restart" in refused.stderr
    bad = run_dbmux("backfill", "-c", str(cfg), "--target", target, "--tables", f"{db}.nope", "--restart",
                    check=False)
    assert bad.returncode == 2 and "selects no table" in bad.stderr
    log = tmp_path / "replicator.log"
    rep = _start_replicator(cfg, target, log)  # it holds the target's lock while it runs
    try:
        deadline = time.monotonic() + 60
        while "replicating" not in log.read_text():
            assert rep.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        busy = run_dbmux("backfill", "-c", str(cfg), "--target", target, "--restart", check=False)
        assert busy.returncode == 2 and "in use" in busy.stderr and "stop it first" in busy.stderr
    finally:
        stop_processes([rep])
