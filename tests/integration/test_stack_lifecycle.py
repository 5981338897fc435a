"""`dbmux stack up` is idempotent and `dbmux stack down` leaves none of its processes running.

Runs a second, throw-away stack in a temporary directory on other ports, through the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

from dbmux.stack.process import is_ours

from .conftest import run_dbmux

PORTS = {"--kafka-port": 29092, "--kafka-controller-port": 29093, "--primary-port": 23306,
         "--replica1-port": 23307, "--replica2-port": 23308, "--shard-a-port": 25432,
         "--shard-b-port": 25433, "--ingress-port": 26033}


def _pids(run_dir: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for f in sorted(run_dir.glob("*.pid")):
        pid, marker = f.read_text().split("\n")[:2]
        out[f.stem] = (int(pid), marker)
    return out


def test_up_is_idempotent_and_down_stops_everything(tmp_path, stack):
    d = tmp_path / "stack"
    args = [x for kv in PORTS.items() for x in (kv[0], str(kv[1]))]
    try:
        _exercise(d, args)
    finally:
        pids = _pids(d / "run")
        down = run_dbmux("stack", "down", "--dir", str(d), "--purge")
    assert "stopped" in down.stdout
    assert not any(is_ours(pid, marker) for pid, marker in pids.values())
    assert not d.exists()  # --purge removed the data
    # the main stack of the test session was not touched
    main_status = run_dbmux("stack", "status", "--dir", str(stack.config.parent), check=False)
    assert main_status.returncode == 0, main_status.stdout


def _exercise(d: Path, args: list[str]) -> None:
    first = run_dbmux("stack", "up", "--dir", str(d), *args)
    assert "started kafka, mariadb-primary, mariadb-replica1, mariadb-replica2, pg-shard-a, pg-shard-b" \
        in first.stdout
    pids = _pids(d / "run")
    assert sorted(pids) == ["kafka", "mariadb-primary", "mariadb-replica1", "mariadb-replica2",
                            "pg-shard-a", "pg-shard-b"]
    assert all(is_ours(pid, marker) for pid, marker in pids.values())
    recorded = json.loads((d / "stack.json").read_text())["ports"]
    assert recorded["primary_port"] == 23306 and recorded["shard_b_port"] == 25433

    again = run_dbmux("stack", "up", "--dir", str(d))  # ports come from stack.json
    assert "already running" in again.stdout
    assert _pids(d / "run") == pids  # nothing restarted

    status = run_dbmux("stack", "status", "--dir", str(d))
    assert status.stdout.count(" up") == 6
    assert run_dbmux("stack", "down", "--dir", str(d)).stdout.startswith("stopped pg-shard-b")
    after = run_dbmux("stack", "status", "--dir", str(d), check=False)
    assert after.returncode == 3 and after.stdout.count(" down") == 6
    assert not any(is_ours(pid, marker) for pid, marker in pids.values())
    run_dbmux("stack", "up", "--dir", str(d))  # restarts on the existing data

    env = run_dbmux("stack", "env", "--dir", str(d)).stdout
    assert "export DBMUX_PRIMARY_URL=mysql://dbmux:" in env and "@127.0.0.1:23306" in env
    assert "export DBMUX_KAFKA=127.0.0.1:29092" in env
    assert f"export DBMUX_CONFIG={d.resolve() / 'dbmux.toml'}" in env
