"""sysbench as the ingress bench drives it: the tools' presence, the command lines, running it, and
reading its output into a Result."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

from harness.errors import BenchError, Prereq

DB_NAME = "sbtest_bench"


@dataclass
class Result:
    test: str
    target: str
    ps_mode: str
    rc: int = 0
    transactions: int = 0
    tps: float = 0.0
    queries: int = 0
    qps: float = 0.0
    ignored_errors: int = 0
    reconnects: int = 0
    p95_ms: float = 0.0
    avg_ms: float = 0.0
    total_time_s: float = 0.0
    fatal: list[str] = field(default_factory=list)
    events: int | None = None  # ingress only: Kafka events published during the measured run
    proxy_cpu: float | None = None  # haproxy/ingress: CPU seconds used per wall second (1.0 = one full core)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.fatal

    @property
    def errors(self) -> int:
        return self.ignored_errors + len(self.fatal)


_NUM = r"([0-9]+(?:\.[0-9]+)?)"


def parse_sysbench(out: str, res: Result) -> Result:
    def grab(pattern: str, cast=float, default=0):
        m = re.search(pattern, out)
        return cast(m.group(1)) if m else default

    m = re.search(r"transactions:\s+(\d+)\s+\(" + _NUM + r" per sec\.\)", out)
    if m:
        res.transactions, res.tps = int(m.group(1)), float(m.group(2))
    m = re.search(r"\n\s+queries:\s+(\d+)\s+\(" + _NUM + r" per sec\.\)", out)
    if m:
        res.queries, res.qps = int(m.group(1)), float(m.group(2))
    res.ignored_errors = grab(r"ignored errors:\s+(\d+)", int)
    res.reconnects = grab(r"reconnects:\s+(\d+)", int)
    res.p95_ms = grab(r"95th percentile:\s+" + _NUM)
    res.avg_ms = grab(r"\n\s+avg:\s+" + _NUM)
    res.total_time_s = grab(r"total time:\s+" + _NUM)
    res.fatal = [ln.strip() for ln in out.splitlines() if "FATAL" in ln or "ALERT" in ln][:20]
    return res


def check_tools() -> dict[str, str]:
    missing = [t for t in ("sysbench", "haproxy") if shutil.which(t) is None]
    if missing:
        raise Prereq(f"missing {', '.join(missing)}; install with:\n"
                     f"    sudo apt-get install -y {' '.join(missing)}")
    sb = subprocess.run(["sysbench", "--version"], capture_output=True, text=True).stdout.strip()
    hp = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.splitlines()
    return {"sysbench": sb, "haproxy": hp[0].strip() if hp else "?"}


def sysbench_options(ap, *, seconds: int = 20) -> None:
    """The options every sysbench-driven bench takes: run length, threads, tables and their size."""
    ap.add_argument("--time", type=int, default=seconds, help=f"seconds per measured sysbench run (default {seconds})")
    ap.add_argument("--threads", type=int, default=8, help="sysbench threads = client connections (default 8)")
    ap.add_argument("--tables", type=int, default=4, help="sysbench tables (default 4)")
    ap.add_argument("--table-size", type=int, default=10000, help="rows per table (default 10000)")


def sysbench_argv(test: str, host: str, port: int, user: str, password: str, args, ps_mode: str,
                  seconds: int, threads: int, command: str = "run") -> list[str]:
    argv = ["sysbench", test, f"--mysql-host={host}", f"--mysql-port={port}", f"--mysql-user={user}",
            f"--mysql-password={password}", f"--mysql-db={DB_NAME}", f"--tables={args.tables}",
            f"--table-size={args.table_size}", f"--threads={threads}", f"--db-ps-mode={ps_mode}"]
    if command == "run":
        argv += [f"--time={seconds}", "--events=0", "--rand-type=uniform", "--percentile=95"]
    return argv + [command]


def redact(argv: list[str]) -> str:
    return shlex.join(re.sub(r"^(--mysql-password=).*", r"\1***", a) for a in argv)


def run_sysbench(argv: list[str], timeout: float) -> tuple[int, str]:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 124, out + f"\nFATAL: sysbench did not finish within {timeout:.0f}s (killed)"


def prepare_db(host: str, port: int, user: str, password: str, args) -> None:
    import pymysql

    conn = pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
            cur.execute(f"CREATE DATABASE {DB_NAME}")
    finally:
        conn.close()
    argv = sysbench_argv("oltp_read_write", host, port, user, password, args, "auto", 0,
                         max(1, min(args.tables, 4)), command="prepare")
    print(f"$ {redact(argv)}", flush=True)
    rc, out = run_sysbench(argv, timeout=600)
    if rc != 0:
        raise BenchError(f"sysbench prepare failed (exit {rc}):\n{out[-3000:]}")
