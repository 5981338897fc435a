"""Background servers a bench starts (each in its own session, stopped by its own pid), and how the
bench itself reacts to SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .cpu import stat_cpu_seconds
from .environment import REPO
from .errors import BenchError

PY = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable


def rss(pid: int) -> int:
    """The resident set size of process ``pid`` in bytes (0 when it is gone)."""
    try:
        return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())[1]) * 1024
    except (OSError, TypeError):
        return 0


class Proc:
    """A background server we started; stopped by its own pid (its own session/process group)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path = REPO):
        self.name, self.argv, self.log_path = name, argv, log_path
        self.stop_signal = signal.SIGTERM
        self._log = open(log_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  cwd=cwd, env=env, start_new_session=True)

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.p.poll() is None:
            self.p.send_signal(self.stop_signal)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self._log.close()

    def cpu_seconds(self) -> float | None:
        """utime + stime of the process so far (from /proc), or None."""
        return stat_cpu_seconds(f"/proc/{self.p.pid}/stat")

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def stop_all(procs: list[Proc]) -> None:
    """Stop every process in ``procs``, the last started first; a failure is printed, never raised."""
    for p in reversed(procs):
        try:
            p.stop()
        except Exception as exc:  # noqa: BLE001
            print(f"  (stopping {p.name}: {exc})", file=sys.stderr)


def wait_mysql_greeting(port: int, proc: Proc, timeout: float = 30.0) -> str:
    """Wait until ``port`` accepts and sends a MySQL handshake (protocol 10); returns the version."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with {proc.p.returncode} before listening; log tail:\n"
                             f"{proc.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                data = b""
                while len(data) < 5:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if len(data) >= 5 and data[4] == 10:
                    return data[5:].split(b"\0", 1)[0].decode(errors="replace")
                last = f"unexpected greeting {data[:16]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise BenchError(f"{proc.name} on port {port} sent no MySQL greeting within {timeout:.0f}s ({last}); "
                     f"log tail:\n{proc.tail()}")


def _sigterm(signum, frame):  # noqa: ARG001 - turn SIGTERM into the same clean-up path as Ctrl-C
    raise KeyboardInterrupt


def sigterm_as_interrupt() -> None:
    """From now on SIGTERM raises KeyboardInterrupt: a terminated bench cleans up as on Ctrl-C."""
    signal.signal(signal.SIGTERM, _sigterm)
