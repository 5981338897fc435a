"""sysbench writes through the ingress, a batch job writes straight to the primary, and the ingress is
SIGKILLed in the middle of the run: every transaction the primary committed reaches every target -- a
MariaDB replica and a PostgreSQL target -- exactly once (`dbmux verify`: sysbench's `k = k + 1` applied
twice or not at all would show as a different row)."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
import uuid

from .conftest import pipeline_config, run_dbmux, start_binlog_reader, start_ingress, stop_ingress, stop_processes
from .test_backfill import _applied_mysql, _applied_pg, _wait_caught_up
from .test_replicator_mysql import _conn, _start_replicator

TABLES, SIZE = 2, 1000


def _sysbench(dsn, db: str, *args: str, **kw) -> subprocess.Popen:
    cmd = ["sysbench", "oltp_write_only", f"--mysql-host={dsn.host}", f"--mysql-port={dsn.port}",
           f"--mysql-user={dsn.user}", f"--mysql-password={dsn.password}", f"--mysql-db={db}",
           f"--tables={TABLES}", f"--table-size={SIZE}", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def prepare_sysbench(via, db: str) -> None:
    """The database created through the ingress, then `sysbench prepare` through it."""
    c = _conn(via)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
    c.close()
    prep = _sysbench(via, db, "--threads=2", "prepare")
    assert prep.wait(300) == 0, prep.stdout.read()


def _direct_writer(primary, db: str, stop: threading.Event, errors: list) -> None:
    try:
        c = _conn(primary)
        with c.cursor() as cur:
            i = 0
            while not stop.is_set():
                i += 1
                cur.execute(f"UPDATE {db}.sbtest1 SET k = k + 1000 WHERE id = %s", (random.randint(1, SIZE),))
                if i % 10 == 0:
                    cur.execute(f"DELETE FROM {db}.sbtest2 WHERE id = %s", (random.randint(1, SIZE),))
                if i % 7 == 0:
                    cur.execute(f"INSERT INTO {db}.sbtest1 (k, c, pad) VALUES (%s, 'direct', 'direct')", (i,))
                if i == 30:  # a DDL among the direct writes (sysbench names its columns: it keeps working)
                    cur.execute(f"ALTER TABLE {db}.sbtest2 ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT 'n'")
                time.sleep(0.01)
        c.close()
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def _seq(primary) -> int:
    c = _conn(primary)
    with c.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        seq = int(cur.fetchone()[0].split(",")[0].split("-")[2])
    c.close()
    return seq


def test_sysbench_with_ingress_sigkill_reaches_every_target_exactly_once(stack, tmp_path):
    ing = start_ingress(stack, tmp_path)
    db = f"sbk_{uuid.uuid4().hex[:8]}"
    targets = {f"sbm{uuid.uuid4().hex[:6]}": stack.replicas[0], f"sbp{uuid.uuid4().hex[:6]}": stack.shards[0]}
    cfg = pipeline_config(tmp_path / "pipeline.toml", stack, ing.topic, targets, tables=f"{db}.*")
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    stop, errors = threading.Event(), []
    writer = threading.Thread(target=_direct_writer, args=(stack.primary, db, stop, errors))
    try:
        via = ing.dsn(stack.primary)
        prepare_sysbench(via, db)
        for name in targets:
            procs.append(_start_replicator(cfg, name, tmp_path / f"replicator-{name}.log"))
        before = _seq(stack.primary)
        run = _sysbench(via, db, "--threads=4", "--time=60", "--report-interval=0", "run")
        writer.start()
        time.sleep(random.uniform(3.0, 6.0))
        assert run.poll() is None, run.stdout.read()
        ing.proc.send_signal(signal.SIGKILL)  # mid-run: commits in flight between the primary and Kafka
        ing.proc.wait()
        out = run.communicate(timeout=120)[0]
        assert run.returncode != 0 and "FATAL" in out, out[-2000:]  # sysbench lost its connections
        assert _seq(stack.primary) - before > 200, "too few transactions committed to mean anything"
        ing = start_ingress(stack, tmp_path, DBMUX_INGRESS_LISTEN=f"127.0.0.1:{ing.port}",
                            DBMUX_KAFKA_TOPIC=ing.topic)
        time.sleep(1.0)
    finally:
        stop.set()
        if writer.is_alive():
            writer.join()
    try:
        assert not errors, errors
        m, p = targets.items()
        _wait_caught_up(stack.primary, lambda: _applied_mysql(m[1], m[0]))
        _wait_caught_up(stack.primary, lambda: _applied_pg(p[1], p[0]))
        for name in targets:
            res = run_dbmux("verify", "-c", str(cfg), "--target", name, check=False)
            assert res.returncode == 0, res.stdout + res.stderr
            assert f"{db}.sbtest1" in res.stdout and f"{db}.sbtest2" in res.stdout
        c = _conn(stack.primary)
        with c.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {db}.sbtest1 WHERE c = 'direct'")
            assert cur.fetchone()[0] > 0
            cur.execute(f"SHOW COLUMNS FROM {db}.sbtest2 LIKE 'note'")
            assert cur.fetchone() is not None  # the DDL ran (and verify compared the new column)
        c.close()
        for proc in procs:
            assert proc.poll() is None, proc.args
    finally:
        stop_processes(procs)
        stop_ingress(ing)
