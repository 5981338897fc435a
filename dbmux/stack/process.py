"""Processes the stack starts: pid files, liveness and stopping exactly what we started.

A pid file records the pid and a *marker* (the service's data directory). Before signalling a pid,
its ``/proc/<pid>/cmdline`` must still contain the marker, so a recycled pid never gets a signal.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PidFile:
    path: Path
    marker: str

    def read(self) -> int | None:
        try:
            pid_text, _, marker = self.path.read_text().partition("\n")
            pid = int(pid_text)
        except (FileNotFoundError, ValueError):
            return None
        if marker.strip() != self.marker:
            return None
        return pid if is_ours(pid, self.marker) else None

    def recorded_pid_alive(self) -> bool:
        """The recorded process still exists (no command-line check: right after spawn the new
        process may not have finished exec yet)."""
        try:
            pid = int(self.path.read_text().partition("\n")[0])
        except (FileNotFoundError, ValueError):
            return False
        return _alive(pid)

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n{self.marker}\n")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def is_ours(pid: int, marker: str) -> bool:
    """True when ``pid`` is alive (not a zombie) and its command line contains ``marker``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and marker in cmdline


def spawn(argv: list[str], log_path: Path, pidfile: PidFile, *, user: str | None = None,
          env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start a daemon in its own session (it outlives the CLI, ignores the terminal's Ctrl-C)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, user=user, group=group_of(user), env=env, cwd=cwd,
        )
    pidfile.write(proc.pid)
    log.debug("started %s pid=%s", argv[0], proc.pid)
    return proc.pid


def group_of(user: str | None) -> str | None:
    if user is None:
        return None
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def stop(pidfile: PidFile, *, timeout_s: float = 60.0) -> bool:
    """SIGTERM the recorded process if it is ours, SIGKILL after ``timeout_s``. True if it ran."""
    return stop_together([pidfile], timeout_s=timeout_s)[0]


def stop_together(pidfiles: list[PidFile], *, timeout_s: float = 60.0) -> list[bool]:
    """:func:`stop` for processes that must go down at the same time (the nodes of a KRaft quorum: one
    stopped after the others' majority is gone waits for a controller that never answers). SIGTERM
    every one that is ours, then wait for all; SIGKILL what is left after ``timeout_s``."""
    pids = [pf.read() for pf in pidfiles]
    # Ownership is checked once, before signalling. Afterwards wait for the pid itself to be gone:
    # an exiting process's cmdline reads empty while it still holds its sockets.
    running = [pid for pid in pids if pid is not None]
    for pid in running:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = [pid for pid in running if _alive(pid)]
        if not running:
            break
        for pid in running:
            _reap(pid)
        time.sleep(0.1)
    else:
        for pid in running:
            log.warning("pid %s did not stop within %.0fs; sending SIGKILL", pid, timeout_s)
            _signal(pid, signal.SIGKILL)
        while running := [pid for pid in running if _alive(pid)]:
            for pid in running:
                _reap(pid)
            time.sleep(0.05)
    for pf in pidfiles:
        pf.remove()
    return [pid is not None for pid in pids]


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
