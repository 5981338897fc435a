"""Integration fixtures: the real local stack.

When the ``DBMUX_*`` variables (as printed by ``dbmux stack env``) are set, tests use those servers.
Otherwise a session fixture runs ``dbmux stack up`` in ``<repo>/.stack`` and, at the end, stops the
services it started itself (set ``DBMUX_KEEP_STACK=1`` to keep them). If the stack cannot start the
run fails: integration tests are never skipped.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbmux.dsn import Dsn

REPO = Path(__file__).resolve().parents[2]
_REQUIRED = ("DBMUX_KAFKA", "DBMUX_PRIMARY_URL", "DBMUX_REPLICA_URLS", "DBMUX_SHARD_URLS", "DBMUX_CONFIG")


@dataclass(frozen=True)
class StackEnv:
    kafka: str
    primary: Dsn
    binlog: Dsn
    replicas: tuple[Dsn, ...]
    shards: tuple[Dsn, ...]
    ingress_url: str
    config: Path


def _from_env(env: dict[str, str]) -> StackEnv:
    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    return StackEnv(
        kafka=env["DBMUX_KAFKA"],
        primary=primary,
        binlog=Dsn.parse(env.get("DBMUX_PRIMARY_BINLOG_URL") or env["DBMUX_PRIMARY_URL"]),
        replicas=tuple(Dsn.parse(u) for u in env["DBMUX_REPLICA_URLS"].split(",")),
        shards=tuple(Dsn.parse(u) for u in env["DBMUX_SHARD_URLS"].split(",")),
        ingress_url=env.get("DBMUX_INGRESS_URL", ""),
        config=Path(env["DBMUX_CONFIG"]),
    )


@pytest.fixture(scope="session")
def stack() -> StackEnv:
    if all(os.environ.get(k) for k in _REQUIRED):
        yield _from_env(dict(os.environ))
        return
    from dbmux.stack.layout import Layout
    from dbmux.stack.stack import Stack

    st = Stack(Layout.load(REPO / ".stack"))
    started = asyncio.run(st.up())
    env = st.env()
    os.environ.update(env)  # subprocesses (dbmux CLI) see the same stack
    try:
        yield _from_env(env)
    finally:
        if started and not os.environ.get("DBMUX_KEEP_STACK"):
            st.down()


def run_dbmux(*args: str, timeout: float = 300, check: bool = True, env: dict | None = None):
    """Run the real ``dbmux`` CLI in a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "dbmux.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"dbmux {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc
