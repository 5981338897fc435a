"""Read routing (issue 15) on real servers: reads through an ingress with ``reads = "replicas"`` come from
the stack's two MariaDB replicas, kept by dbmux's own replicators, and never miss what they must see --
with each replicator frozen (SIGSTOP) in turn while writers keep writing."""

from __future__ import annotations

import signal
import time
import urllib.request
import uuid
from contextlib import contextmanager

import pymysql
import pytest

from .conftest import free_port, start_binlog_reader, start_ingress, stop_ingress, stop_processes
from .read_checker import Checker, connect, create_table
from .test_replicator_mysql import _start_replicator

TARGETS = ("rr1", "rr2")


def _config(tmp_path, stack, topic: str, extra_targets: str = "") -> object:
    cfg = tmp_path / "reads.toml"
    body = "".join(f'[targets.{name}]\nurl = "{dsn.url()}"\n' for name, dsn in zip(TARGETS, stack.replicas,
                                                                                      strict=True))
    cfg.write_text(f"""
[kafka]
bootstrap = "{stack.kafka}"
topic = "{topic}"
[primary]
url = "{stack.primary.url()}"
binlog_url = "{stack.binlog.url()}"
[replicator]
batch_linger_ms = 5
{body}{extra_targets}""")
    return cfg


@contextmanager
def _pipeline(stack, tmp_path, **ingress_env: str):
    """Binlog reader, a replicator per replica and an ingress routing reads, on a topic of their own."""
    topic = f"dbmux.rr{uuid.uuid4().hex[:10]}.txn"
    cfg = _config(tmp_path, stack, topic)
    metrics = free_port()
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    reps = {name: _start_replicator(cfg, name, tmp_path / f"{name}.log") for name in TARGETS}
    procs += list(reps.values())
    ing = None
    try:
        ing = start_ingress(stack, tmp_path, config=cfg, DBMUX_KAFKA_TOPIC=topic, DBMUX_INGRESS_READS="replicas",
                            DBMUX_INGRESS_METRICS_PORT=str(metrics), **ingress_env)
        yield ing, reps, metrics
    finally:
        for p in reps.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
        if ing is not None:
            stop_ingress(ing)
        stop_processes(procs)


def _metric(port: int, name: str, label: str = "") -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and (not label or label in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _selects(dsn) -> int:
    conn = connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Com_select'")
        n = int(cur.fetchone()[1])
    conn.close()
    return n


def _wait_replicated(stack, db: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    for dsn in stack.replicas:
        while True:
            try:
                conn = connect(dsn)
                with conn.cursor() as cur:
                    cur.execute(f"SELECT COUNT(*) FROM {db}.k")
                    if cur.fetchone()[0]:
                        break
            except pymysql.err.MySQLError:
                pass
            assert time.monotonic() < deadline, f"{db}.k did not reach {dsn.port}"
            time.sleep(0.2)


def _run_with_freezes(checker: Checker, reps: dict, settle_s: float = 2.0, frozen_s: float = 3.0):
    """Run ``checker``; freeze each replicator for ``frozen_s`` in turn."""
    checker.start()
    try:
        time.sleep(settle_s)
        for proc in reps.values():
            proc.send_signal(signal.SIGSTOP)
            time.sleep(frozen_s)
            proc.send_signal(signal.SIGCONT)
            time.sleep(settle_s)
    finally:
        report = checker.stop()
    return report


def test_causal_reads_from_replicas_never_stale_with_replicators_frozen(stack, tmp_path):
    with _pipeline(stack, tmp_path, DBMUX_INGRESS_READ_CONSISTENCY="causal") as (ing, reps, metrics):
        via = ing.dsn(stack.primary)
        db = f"rr_{uuid.uuid4().hex[:8]}"
        create_table(via, db, 8)
        _wait_replicated(stack, db)
        before = [_selects(d) for d in stack.replicas]
        report = _run_with_freezes(Checker(via, via, db), reps)
        served = [_selects(d) - b for d, b in zip(stack.replicas, before, strict=True)]
        print(report.summary(), served, {r: _metric(metrics, "dbmux_ingress_read_fallbacks_total", f'reason="{r}"')
                                         for r in ("lagging", "no_replica", "replica_error", "auth_method")},
              _metric(metrics, "dbmux_ingress_reads_total", 'backend="primary"'))
        assert not report.errors and not report.stale, report.summary()
        assert report.reads > 200 and report.writes > 200, report.summary()
        # both replicas served reads (their own Com_select counters), and the ingress says so too
        assert min(served) > 20, served
        assert _metric(metrics, "dbmux_ingress_reads_total", 'backend="rr1"') > 20
        assert _metric(metrics, "dbmux_ingress_reads_total", 'backend="rr2"') > 20


def test_checker_finds_stale_reads_on_a_replica_read_directly(stack, tmp_path):
    """The checker can fail: readers on a replica whose replicator is frozen see old values."""
    with _pipeline(stack, tmp_path) as (ing, reps, _metrics):
        via = ing.dsn(stack.primary)
        db = f"rr_{uuid.uuid4().hex[:8]}"
        create_table(via, db, 8)
        _wait_replicated(stack, db)
        checker = Checker(via, stack.replicas[0], db)
        checker.start()
        try:
            time.sleep(1)
            reps["rr1"].send_signal(signal.SIGSTOP)
            time.sleep(2)
        finally:
            reps["rr1"].send_signal(signal.SIGCONT)
            report = checker.stop()
        assert report.stale, report.summary()


@pytest.mark.parametrize("consistency", ["session"])
def test_session_reads_your_writes_with_replicators_frozen(stack, tmp_path, consistency):
    with _pipeline(stack, tmp_path, DBMUX_INGRESS_READ_CONSISTENCY=consistency) as (ing, reps, metrics):
        via = ing.dsn(stack.primary)
        db = f"rr_{uuid.uuid4().hex[:8]}"
        create_table(via, db, 8)
        _wait_replicated(stack, db)
        report = _run_with_freezes(Checker(via, via, db, read_own=True, readers=2), reps)
        assert not report.errors and not report.ryw, report.summary()
        assert report.writes > 200, report.summary()
        assert _metric(metrics, "dbmux_ingress_reads_total", 'backend="rr') > 100
