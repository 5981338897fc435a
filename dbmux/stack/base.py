"""The shape every stack service has: one-time preparation, a daemon command, a readiness probe."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path

from dbmux.core.errors import MissingDependency, StackError
from dbmux.stack.layout import Layout
from dbmux.stack.process import PidFile, group_of


class Service(ABC):
    """One server of the local stack. ``marker`` (its data dir) identifies its process."""

    name: str
    port: int

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    @property
    def dir(self) -> Path:
        return self.layout.service_dir(self.name)

    @property
    def marker(self) -> str:
        return str(self.dir)

    @property
    def pidfile(self) -> PidFile:
        return PidFile(self.layout.run_dir / f"{self.name}.pid", self.marker)

    @property
    def log_path(self) -> Path:
        return self.layout.log_dir / f"{self.name}.log"

    @property
    def user(self) -> str | None:
        """The OS user the daemon runs as (None: the current user)."""
        return None

    @abstractmethod
    def check_installed(self) -> None:
        """Raise MissingDependency naming the package when a binary is missing."""

    @abstractmethod
    def prepare(self) -> None:
        """Create and initialise the data directory on first start (idempotent)."""

    @abstractmethod
    def argv(self) -> list[str]:
        """The daemon's command line; must contain ``marker``."""

    @abstractmethod
    async def probe(self) -> None:
        """Return when the service answers a real request; raise otherwise."""

    def purge(self) -> None:
        """Delete this service's data (it must be stopped)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if not self.pidfile.recorded_pid_alive():
                raise StackError(f"{self.name} exited during start-up; see {self.log_path}:\n"
                                 + tail(self.log_path))
            try:
                await asyncio.wait_for(self.probe(), timeout=max(1.0, deadline - time.monotonic()))
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last = exc
            await asyncio.sleep(0.25)
        raise StackError(f"{self.name} did not answer within {timeout_s:.0f}s (last error: {last}); "
                         f"see {self.log_path}:\n" + tail(self.log_path))


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def cache_root() -> Path:
    """Where the stack keeps what it fetched once (Kafka's jars, Toxiproxy): ``$XDG_CACHE_HOME/dbmux``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dbmux"


def require_binary(name: str, install: str, extra_dirs: tuple[str, ...] = ()) -> str:
    for d in extra_dirs:
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin:/sbin")
    if not found:
        raise MissingDependency(f"'{name}'", install)
    return found


def run_checked(argv: list[str], what: str, *, user: str | None = None, log_path: Path | None = None,
                cwd: Path | None = None) -> None:
    """Run a one-shot preparation command; on failure raise with its output."""
    proc = subprocess.run(argv, capture_output=True, text=True, user=user, cwd=cwd,
                          group=group_of(user))
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as fh:
            fh.write(f"$ {' '.join(argv)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        raise StackError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")

