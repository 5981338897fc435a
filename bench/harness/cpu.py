"""CPU accounting from /proc: of a process, of a thread of this process, and of the stack's servers."""

from __future__ import annotations

import os
import time
from pathlib import Path


def stat_cpu_seconds(path: str) -> float | None:
    """utime + stime from a /proc/<pid>[/task/<tid>]/stat file, in seconds (None when unreadable)."""
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def thread_cpu_seconds(native_id: int | None) -> float | None:
    """CPU seconds of a thread of this process, by its native id."""
    return stat_cpu_seconds(f"/proc/self/task/{native_id}/stat") if native_id else None


def cpu_per_wall(cpu0: float | None, cpu1: float | None, wall: float) -> float | None:
    """CPU seconds used per wall-clock second between two samples (1.0 = one core busy), or None."""
    if cpu0 is None or cpu1 is None or not wall > 0:
        return None
    return (cpu1 - cpu0) / wall


def _pid_of(run_dir: Path, service: str) -> int | None:
    try:
        return int((run_dir / f"{service}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class CpuProbe:
    """CPU seconds of this process, the primary and Kafka between start() and stop()."""

    def __init__(self, run_dir: Path) -> None:
        self.pids = {"mariadb": _pid_of(run_dir, "mariadb-primary"), "kafka": _pid_of(run_dir, "kafka")}
        self.t0 = 0.0
        self.c0: dict[str, float | None] = {}
        self.result: dict[str, float | None] = {}

    def _sample(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {"self": time.process_time()}
        for name, pid in self.pids.items():
            out[name] = stat_cpu_seconds(f"/proc/{pid}/stat") if pid else None
        return out

    def start(self) -> None:
        self.t0, self.c0 = time.monotonic(), self._sample()

    def stop(self) -> None:
        wall = time.monotonic() - self.t0
        c1 = self._sample()
        self.result = {k: cpu_per_wall(self.c0.get(k), c1[k], wall) for k in c1}
