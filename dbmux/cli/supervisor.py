"""``dbmux up``: the pipeline's parts as separate supervised processes.

The ingress, the binlog reader and one replicator per target each run as their own ``dbmux``
process (the same commands a user would start by hand), so the proxy's latency never depends on
replication work in the same interpreter (issue 13: point selects through a one-process ``up`` ran at
a twelfth of the ingress's own rate while replicators caught up a backlog). They share this
process's stdout/stderr: one combined log, each line naming its logger.

Supervision: a part that exits on its own is started again after a back-off (1 s, doubling to 30 s;
a part that ran for a minute starts afresh at 1 s), except for exits that another start would only
repeat: 2 (configuration or usage error) and 3 (a target halted on a permanent error: its status
row says why; ``dbmux replicate`` for it again once fixed). When the ingress stops for good, the
whole pipeline stops. SIGINT/SIGTERM stops every part with SIGTERM (each stops cleanly), SIGKILL
after ``STOP_TIMEOUT_S``. The exit code is the highest of the parts' last exit codes.

Priority: the binlog reader and the replicators run at a lower CPU priority than the ingress (nice
``REPLICATION_NICE`` above it; ``dbmux up --replication-nice N``, 0 for equal): on a machine where they
share cores, a backlog being caught up takes the CPU the proxy leaves, not the other way round --
replication lags more during a burst of client traffic, the application's queries do not slow down
for replication (bench/up_backlog.py).

Metrics: the ingress serves ``ingress.metrics_port``; the replicators ``replicator.metrics_port``
plus their index in the config's target list (0, 1, ...), when set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dbmux.core.config import Config

log = logging.getLogger("dbmux.up")

PERMANENT_EXITS = frozenset({2, 3})
STOP_TIMEOUT_S = 30.0
BACKOFF_START_S, BACKOFF_MAX_S, FRESH_AFTER_S = 1.0, 30.0, 60.0
REPLICATION_NICE = 10


@dataclass
class Part:
    """One supervised process: its name, ``dbmux`` arguments and extra environment."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    nice: int = 0  # how much lower than up's own its CPU priority is
    pid: int | None = None
    starts: int = 0
    code: int = 0


def parts_for(config: Config, config_path: str, verbose: int, nice: int = REPLICATION_NICE) -> list[Part]:
    """The pipeline of ``config``: the ingress, the binlog reader, a replicator per target (these two
    ``nice`` lower in CPU priority than the ingress)."""
    base = ["-v"] * verbose
    out = [Part("ingress", [*base, "ingress", "-c", config_path]),
           Part("binlog", [*base, "binlog", "-c", config_path], nice=nice)]
    port = config.replicator.metrics_port
    for i, target in enumerate(config.targets):
        env = {"DBMUX_REPLICATOR_METRICS_PORT": str(port + i)} if port else {}
        out.append(Part(f"replicate:{target.name}", [*base, "replicate", "-c", config_path, "--target", target.name],
                        env, nice=nice))
    return out


async def _run_part(part: Part, stop: asyncio.Event, ingress_gone: asyncio.Event) -> int:
    delay = BACKOFF_START_S
    while not stop.is_set():
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "dbmux.cli", *part.args,
                                                    env={**os.environ, **part.env})
        part.pid, part.starts = proc.pid, part.starts + 1
        if part.nice:
            _lower_priority(part, proc.pid)
        started = time.monotonic()
        waiter = asyncio.ensure_future(proc.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():  # stopping: SIGTERM, then SIGKILL
            proc.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(waiter), STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("%s (pid %d) did not stop within %.0fs: killing it", part.name, proc.pid, STOP_TIMEOUT_S)
                proc.kill()
                await waiter
            part.code = _code(proc.returncode)
            return part.code
        stopper.cancel()
        part.code = _code(proc.returncode)
        if stop.is_set():
            return part.code
        if part.code in PERMANENT_EXITS:
            log.error("%s (pid %d) exited %d: not restarting it (a new start would fail the same way; see its "
                      "log lines above)", part.name, proc.pid, part.code)
            if part.name == "ingress":
                ingress_gone.set()
            return part.code
        if time.monotonic() - started >= FRESH_AFTER_S:
            delay = BACKOFF_START_S
        log.error("%s (pid %d) exited %d; starting it again in %.0fs", part.name, proc.pid, part.code, delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, BACKOFF_MAX_S)
    return part.code


def _lower_priority(part: Part, pid: int) -> None:
    try:
        own = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, pid, min(19, own + part.nice))
    except OSError as exc:  # (it runs at up's priority then)
        log.warning("%s (pid %d): could not lower its CPU priority: %s", part.name, pid, exc)


def _code(returncode: int | None) -> int:
    if returncode is None:
        return 1
    return 128 - returncode if returncode < 0 else returncode  # killed by a signal: 128 + its number


async def _listening(host: str, port: int, timeout_s: float, parts: Sequence[asyncio.Future[int]]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not any(p.done() for p in parts):
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            await asyncio.sleep(0.1)
    return False


async def run_pipeline(config: Config, config_path: str, verbose: int, stop: asyncio.Event,
                       nice: int = REPLICATION_NICE) -> int:
    """Start every part, supervise them until ``stop`` (or the ingress stops for good); the exit code."""
    parts = parts_for(config, config_path, verbose, nice)
    ingress_gone = asyncio.Event()
    tasks = [asyncio.ensure_future(_run_part(p, stop, ingress_gone)) for p in parts]
    host, _, port = config.ingress.listen.rpartition(":")
    if await _listening(host or "127.0.0.1", int(port), 60.0, tasks[:1]):
        targets = ", ".join(t.name for t in config.targets) or "nothing"
        print(f"dbmux up: ingress on {config.ingress.listen}, binlog reader on, replicating to {targets} "
              f"({', '.join(f'{p.name} pid {p.pid}' for p in parts)}; replication at nice +{nice})", flush=True)
    else:
        log.error("the ingress is not listening on %s (see its log lines above)", config.ingress.listen)
    gone = asyncio.ensure_future(ingress_gone.wait())
    halt = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({gone, halt}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        codes = await asyncio.gather(*tasks)
        gone.cancel()
        halt.cancel()
    return max(codes, default=0)
