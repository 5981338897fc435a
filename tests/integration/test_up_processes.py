"""``dbmux up`` runs each part as a supervised process of its own (issue 13 deliver #3): the ingress is
not the process that replicates, a part killed with SIGKILL is started again and goes on where it
stopped, and SIGTERM stops every part cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

from dbmux.cli.supervisor import REPLICATION_NICE

from .conftest import REPO, free_port, pipeline_config
from .test_replicator_mysql import _conn, _wait_equal


def _wait_for(log, pattern: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = re.search(pattern, log.read_text(errors="replace"))
        if m:
            return m
        assert proc.poll() is None, f"dbmux up exited {proc.returncode}:\n{log.read_text()[-4000:]}"
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in the log within {timeout_s}s:\n{log.read_text()[-4000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive (reaped by its parent soon)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _nice(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[16])  # field 19, counted after the command name


def test_up_supervises_each_part_as_its_own_process(stack, tmp_path):
    target = f"up{uuid.uuid4().hex[:8]}"
    db = f"up_{uuid.uuid4().hex[:8]}"
    topic = f"dbmux.up{uuid.uuid4().hex[:8]}.txn"
    port = free_port()
    cfg = pipeline_config(tmp_path / "up.toml", stack, topic, {target: stack.replicas[0]}, tables=f"{db}.*",
                          extra=f'[ingress]\nlisten = "127.0.0.1:{port}"\n')
    log = tmp_path / "up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBMUX_")}
    up = subprocess.Popen([sys.executable, "-m", "dbmux.cli", "-v", "up", "-c", str(cfg)], cwd=REPO, env=env,
                          stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        m = _wait_for(log, r"dbmux up: ingress on .*\((.*)\)", up)
        pids = {name: int(pid) for name, pid in re.findall(r"([\w:]+) pid (\d+)", m[1])}
        assert set(pids) == {"ingress", "binlog", f"replicate:{target}"}, pids
        assert len(set(pids.values()) | {up.pid}) == 4  # four processes: up itself and its three parts
        # replication runs at a lower CPU priority than the proxy (dbmux up --replication-nice, default 10)
        assert {name: _nice(pid) - _nice(up.pid) for name, pid in pids.items()} == {
            "ingress": 0, "binlog": REPLICATION_NICE, f"replicate:{target}": REPLICATION_NICE}
        via = stack.primary.__class__("mysql", "127.0.0.1", port, stack.primary.user, stack.primary.password)
        c = _conn(via)
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
            cur.execute(f"INSERT INTO {db}.t VALUES (1, 1), (2, 2)")
        _wait_equal(f"SELECT * FROM {db}.t ORDER BY id", stack.primary, stack.replicas[0])

        os.kill(pids[f"replicate:{target}"], signal.SIGKILL)
        _wait_for(log, rf"replicate:{target} \(pid {pids[f'replicate:{target}']}\) exited 137; starting it again", up)
        with c.cursor() as cur:  # the ingress goes on meanwhile; the restarted replicator applies this
            cur.execute(f"INSERT INTO {db}.t VALUES (3, 3)")
            cur.execute(f"UPDATE {db}.t SET v = v + 10")
        c.close()
        rows = _wait_equal(f"SELECT * FROM {db}.t ORDER BY id", stack.primary, stack.replicas[0])
        assert rows == ((1, 11), (2, 12), (3, 13))
        assert up.poll() is None

        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, log.read_text()[-4000:]
        assert not [n for n, pid in pids.items() if n != f"replicate:{target}" and _alive(pid)]
        assert "Traceback" not in log.read_text()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        with _conn(stack.replicas[0]).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
