"""Under a write workload through the ingress: the replica server restarts, then the Kafka broker
restarts; afterwards every transaction is on the replica exactly once and `dbmux verify` passes."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid

from dbmux.stack import process
from dbmux.stack.layout import Layout
from dbmux.stack.stack import Stack

from .conftest import run_dbmux, start_ingress, stop_ingress
from .test_replicator_mysql import (
    _start_replicator,
    _workload,
    _write_config,
    assert_ledger_exactly_once,
    create_ledger,
)


def test_replica_and_broker_restarts_lose_and_duplicate_nothing(stack, tmp_path):
    # Kafka may be away for seconds: the ingress waits longer for acks than the default here, so a
    # commit acknowledged to the client is on the topic once the broker is back.
    ing = start_ingress(stack, tmp_path, DBMUX_INGRESS_PUBLISH_TIMEOUT_MS="60000")
    target = f"rs{uuid.uuid4().hex[:8]}"
    cfg = _write_config(tmp_path, stack, ing, target, stack.replicas[0])
    log = tmp_path / "replicator.log"
    db = f"rs_{uuid.uuid4().hex[:8]}"
    via = ing.dsn(stack.primary)
    create_ledger(via, db)
    proc = _start_replicator(cfg, target, log)
    stop, errors = threading.Event(), []
    workers = [threading.Thread(target=_workload, args=(via, db, stop, errors)) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        time.sleep(2)
        # the replica goes away for a few seconds: the replicator's reconnects are refused meanwhile
        local = Stack(Layout.load(stack.config.parent))
        process.stop(local.service("mariadb-replica1").pidfile)
        time.sleep(3)
        asyncio.run(local.up())
        time.sleep(2)
        run_dbmux("stack", "restart", "kafka", "--dir", str(stack.config.parent))
        time.sleep(3)
    finally:
        stop.set()
        for w in workers:
            w.join()
    try:
        assert not errors, errors
        assert_ledger_exactly_once(stack, cfg, target, db, min_n=50)
        assert proc.poll() is None, log.read_text()[-3000:]
        text = log.read_text()
        assert "transient failure" in text  # it did notice the replica going away, and recovered
        assert "Can't connect" in text  # ... including while the replica was down
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        stop_ingress(ing)
