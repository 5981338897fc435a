"""Several ingress instances in front of one primary (issue 17 deliver #4): two ingresses publish into
one topic, clients spread over both, one of them SIGKILLed mid-run; every transaction reaches the
target exactly once and in GTID order (the binlog reader covers what the killed one never published)."""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid

import pymysql

from .conftest import start_binlog_reader, start_ingress, stop_ingress, stop_processes
from .test_replicator_mysql import _conn, _start_replicator, _write_config, assert_ledger_exactly_once, create_ledger


def _client(vias: list, db: str, stop: threading.Event, errors: list, done: list) -> None:
    """Ledger transactions through whichever ingress answers: a client of the killed one reconnects to the
    other (a transaction cut off mid-commit may or may not have committed: either way it is atomic)."""
    conn, i = None, random.randrange(len(vias))
    while not stop.is_set():
        try:
            if conn is None:
                conn = _conn(vias[i % len(vias)], connect_timeout=2)
            with conn.cursor() as cur:
                conn.begin()
                cur.execute(f"INSERT INTO {db}.ledger (id, payload) VALUES (%s, 'two')", (uuid.uuid4().hex,))
                cur.execute(f"UPDATE {db}.counter SET n = n + 1 WHERE id = 1")
                conn.commit()
                done.append(1)
        except pymysql.err.MySQLError:
            conn, i = None, i + 1
            time.sleep(0.05)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            return


def test_two_ingresses_one_killed_each_transaction_exactly_once(stack, tmp_path):
    first = start_ingress(stack, tmp_path)
    second = start_ingress(stack, tmp_path, DBMUX_KAFKA_TOPIC=first.topic)
    target = f"ti{uuid.uuid4().hex[:8]}"
    db = f"ti_{uuid.uuid4().hex[:8]}"
    cfg = _write_config(tmp_path, stack, first, target, stack.replicas[0])
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    stop, errors, done = threading.Event(), [], []
    threads = []
    try:
        vias = [first.dsn(stack.primary), second.dsn(stack.primary)]
        create_ledger(vias[0], db)
        procs.append(_start_replicator(cfg, target, tmp_path / "replicator.log"))
        threads = [threading.Thread(target=_client, args=(vias, db, stop, errors, done)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(1.5, 3.0))
        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait()
        before = len(done)
        time.sleep(2.0)
        assert len(done) > before, "clients did not go on through the remaining ingress"
    finally:
        stop.set()
        for t in threads:
            t.join()
    try:
        assert not errors, errors
        assert_ledger_exactly_once(stack, cfg, target, db, min_n=40)
        ingress_log = first.log()
        assert "Traceback" not in ingress_log, ingress_log[-3000:]
    finally:
        stop_processes(procs)
        stop_ingress(first)
        stop_ingress(second)
