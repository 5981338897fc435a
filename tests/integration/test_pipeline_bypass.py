"""The two producers together: writes through the ingress and straight to the primary, the ingress
killed with SIGKILL mid-run; every committed transaction reaches the target exactly once."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import pymysql

from .conftest import REPO, start_ingress, stop_ingress
from .test_replicator_mysql import _conn, _start_replicator, _write_config, assert_ledger_exactly_once, create_ledger


def _resilient_workload(via, db: str, stop: threading.Event, errors: list) -> None:
    """Ledger transactions through the ingress; reconnects when the ingress dies (a transaction cut
    off mid-commit may or may not have committed on the primary -- either way it is atomic)."""
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = _conn(via, connect_timeout=2)
            with conn.cursor() as cur:
                conn.begin()
                cur.execute(f"INSERT INTO {db}.ledger (id, payload) VALUES (%s, 'ingress')", (uuid.uuid4().hex,))
                cur.execute(f"UPDATE {db}.counter SET n = n + 1 WHERE id = 1")
                conn.commit()
        except pymysql.err.MySQLError:
            conn = None
            time.sleep(0.05)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
            return


def _direct_writer(primary, db: str, stop: threading.Event, errors: list) -> None:
    """A batch job on the primary itself: inserts, updates, deletes, one DDL."""
    try:
        c = _conn(primary)
        i = 0
        with c.cursor() as cur:
            while not stop.is_set():
                i += 1
                c.begin()
                cur.execute(f"INSERT INTO {db}.ledger (id, payload) VALUES (%s, 'direct')", (uuid.uuid4().hex,))
                cur.execute(f"UPDATE {db}.counter SET n = n + 1 WHERE id = 1")
                c.commit()
                if i % 5 == 0:
                    cur.execute(f"DELETE FROM {db}.ledger WHERE payload = 'direct' ORDER BY id LIMIT 1")
                    cur.execute(f"UPDATE {db}.counter SET n = n - 1 WHERE id = 1")
                if i == 20:
                    cur.execute(f"ALTER TABLE {db}.ledger ADD COLUMN note VARCHAR(20) DEFAULT 'n'")
                time.sleep(0.01)
        c.close()
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)


def test_bypassing_writes_and_an_ingress_sigkill_lose_nothing(stack, tmp_path):
    ing = start_ingress(stack, tmp_path)
    target = f"bp{uuid.uuid4().hex[:8]}"
    db = f"bp_{uuid.uuid4().hex[:8]}"
    cfg = _write_config(tmp_path, stack, ing, target, stack.replicas[0])
    blog = tmp_path / "binlog.log"
    reader = subprocess.Popen([sys.executable, "-m", "dbmux.cli", "-v", "binlog", "-c", str(cfg)], cwd=REPO,
                              stdout=open(blog, "ab"), stderr=subprocess.STDOUT)
    rep = None
    stop, errors = threading.Event(), []
    threads = []
    try:
        deadline = time.monotonic() + 60
        while "streaming from primary" not in blog.read_text():
            assert reader.poll() is None and time.monotonic() < deadline, blog.read_text()[-3000:]
            time.sleep(0.1)
        via = ing.dsn(stack.primary)
        create_ledger(via, db)
        rep = _start_replicator(cfg, target, tmp_path / "replicator.log")
        threads = [threading.Thread(target=_resilient_workload, args=(via, db, stop, errors)) for _ in range(2)]
        threads.append(threading.Thread(target=_direct_writer, args=(stack.primary, db, stop, errors)))
        for t in threads:
            t.start()
        time.sleep(random.uniform(1.5, 3.0))
        ing.proc.send_signal(signal.SIGKILL)  # between the primary's commit and Kafka's ack, somewhere
        ing.proc.wait()
        time.sleep(1.0)
        ing = start_ingress(stack, tmp_path, DBMUX_INGRESS_LISTEN=f"127.0.0.1:{ing.port}",
                            DBMUX_KAFKA_TOPIC=ing.topic)
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    try:
        assert not errors, errors
        assert_ledger_exactly_once(stack, cfg, target, db, min_n=20)
        assert rep.poll() is None and reader.poll() is None
    finally:
        for p in (rep, reader):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
        stop_ingress(ing)
