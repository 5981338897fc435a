"""Where a bench runs: the repository, the local stack's addresses, the machine it runs on."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import socket
from pathlib import Path

from .errors import Prereq

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "bench"


def stack_dir() -> Path:
    """The local stack's directory: ``DBMUX_STACK_DIR``, else ``<repo>/.stack``."""
    return Path(os.environ.get("DBMUX_STACK_DIR") or REPO / ".stack")


def stack_env() -> dict[str, str]:
    """The stack's addresses, after checking that the primary and Kafka answer."""
    from dbmux.stack.layout import Layout
    from dbmux.stack.stack import Stack

    root = stack_dir()
    if not (root / "stack.json").exists():
        raise Prereq(f"no local stack in {root}; start it with:\n    cd {REPO} && .venv/bin/dbmux stack up")
    stack = Stack(Layout.load(root))
    down = [s.name for s in stack.status() if s.name in ("kafka", "mariadb-primary") and not s.up]
    if down:
        raise Prereq(f"stack service(s) down: {', '.join(down)}; start them with:\n"
                     f"    cd {REPO} && .venv/bin/dbmux stack up")
    env = stack.env_script()  # also (re)writes the pipeline config when absent
    out = {}
    for line in env.splitlines():
        k, _, v = line.removeprefix("export ").partition("=")
        out[k] = shlex.split(v)[0] if v else ""
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine_info() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines()
                          if ln.startswith("MemTotal")).split()[1])
        mem = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        mem = "?"
    return {"nproc": str(os.cpu_count()), "cpu": model, "mem": mem,
            "kernel": platform.release(), "python": platform.python_version()}


def run_meta() -> dict[str, str]:
    """The machine, the date and the load average at the start of a run (``load_end`` is added at the end)."""
    meta = machine_info()
    meta["date"] = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    meta["load_start"] = loadavg()
    return meta
