"""A running replicator with its Kafka broker gone (issue 17 deliver #6): no busy loop, no log storm,
it resumes when the broker is back, and it stops in bounded time.

The broker is the stack's own: SIGKILLed, then started again by ``dbmux stack up`` (idempotent), so
the tests after this one find it running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .conftest import REPO, pipeline_config, run_dbmux, start_ingress, stop_ingress
from .test_replicator_mysql import _conn, _wait_equal


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_replicator_rides_out_a_dead_broker(stack, tmp_path):
    stack_dir = Path(stack.config).parent
    ing = start_ingress(stack, tmp_path)
    db = f"kd_{uuid.uuid4().hex[:8]}"
    cfg = pipeline_config(tmp_path / "kd.toml", stack, ing.topic, {"kd": stack.replicas[1]}, tables=f"{db}.*")
    log = tmp_path / "replicator.log"
    rep = subprocess.Popen([sys.executable, "-m", "dbmux.cli", "-v", "replicate", "-c", str(cfg), "--target", "kd"],
                           cwd=REPO, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    broker_down = False
    try:
        c = _conn(ing.dsn(stack.primary))
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY)")
            cur.execute(f"INSERT INTO {db}.t VALUES (1)")
        _wait_equal(f"SELECT * FROM {db}.t", stack.primary, stack.replicas[1])

        kafka_pid = int((stack_dir / "run" / "kafka.pid").read_text().split()[0])
        lines_before = len(log.read_text().splitlines())
        os.kill(kafka_pid, signal.SIGKILL)
        broker_down = True
        cpu0, t0 = _cpu_s(rep.pid), time.monotonic()
        time.sleep(12)
        cpu, wall = _cpu_s(rep.pid) - cpu0, time.monotonic() - t0
        assert rep.poll() is None, log.read_text()[-3000:]
        assert cpu < 0.25 * wall, f"replicator used {cpu:.1f}s of CPU in {wall:.0f}s with the broker gone"
        storm = log.read_text().splitlines()[lines_before:]
        assert len(storm) < 60, f"{len(storm)} log lines in {wall:.0f}s with the broker gone:\n" + "\n".join(storm[:20])

        run_dbmux("stack", "up", "--dir", str(stack_dir), timeout=180)  # the broker again
        broker_down = False
        with c.cursor() as cur:  # the ingress reconnects too (its publish may have timed out meanwhile)
            cur.execute(f"INSERT INTO {db}.t VALUES (2)")
        c.close()
        _wait_equal(f"SELECT * FROM {db}.t ORDER BY id", stack.primary, stack.replicas[1], timeout_s=120)

        stopping = time.monotonic()
        rep.send_signal(signal.SIGTERM)
        assert rep.wait(30) == 0 and time.monotonic() - stopping < 30
    finally:
        if broker_down:
            run_dbmux("stack", "up", "--dir", str(stack_dir), timeout=180, check=False)
        if rep.poll() is None:
            rep.kill()
            rep.wait()
        stop_ingress(ing)
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
