#!/usr/bin/env python3
"""sysbench through the dbmux ingress vs HAProxy vs the primary directly, in one run.

Usage (from the repository root, with the local stack up: ``dbmux stack up``)::

    .venv/bin/python bench/ingress_sysbench.py [--time 20] [--threads 8] [--table-size 10000]
        [--tables 4] [--warmup 5] [--ps-mode auto|disable|both] [--no-results] [--keep-topic]

What it does, in one run:

1. reads the stack addresses (``dbmux.stack``); fails clearly when the stack is down;
2. starts HAProxy (TCP mode, ``bench/haproxy.cfg.template``) and the dbmux ingress (publishing on,
   to a topic of its own, ``dbmux.bench<random>.txn``) on free loopback ports;
3. drops/recreates database ``sbtest_bench`` on the primary and runs ``sysbench oltp_read_write
   prepare`` directly against the primary;
4. runs ``oltp_point_select`` then ``oltp_read_write``, each against direct → haproxy → ingress
   (always this order), each preceded by a short warm-up run whose numbers are discarded;
5. prints QPS/TPS per target, the ratios, the issue's targets (ingress >= 0.8x HAProxy on
   point_select QPS, >= 0.9x on read_write TPS; PASS/MISS, never a non-zero exit for a MISS) and the
   number of events the ingress published during the measured read_write run vs sysbench's count;
6. appends the same report to ``bench/RESULTS.md``.

Nothing is installed: when sysbench or haproxy is missing it prints the apt-get command and exits 2.
Exit codes: 0 done (even with MISSes), 2 prerequisites missing / stack down, 1 the bench itself
failed (a server did not start), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
RESULTS = BENCH_DIR / "RESULTS.md"
HAPROXY_TEMPLATE = BENCH_DIR / "haproxy.cfg.template"
DB_NAME = "sbtest_bench"
TARGETS = ("direct", "haproxy", "ingress")
TESTS = ("oltp_point_select", "oltp_read_write")
# The acceptance targets: ingress vs HAProxy, on the metric that matters for each test.
GOALS = {"oltp_point_select": ("qps", 0.8), "oltp_read_write": ("tps", 0.9)}

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class BenchError(Exception):
    """The bench could not run (exit 1)."""


class Prereq(Exception):
    """A prerequisite is missing (exit 2)."""


# --------------------------------------------------------------------------------------------------
# results

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


# --------------------------------------------------------------------------------------------------
# environment

def check_tools() -> dict[str, str]:
    missing = [t for t in ("sysbench", "haproxy") if shutil.which(t) is None]
    if missing:
        raise Prereq(f"missing {', '.join(missing)}; install with:\n"
                     f"    sudo apt-get install -y {' '.join(missing)}")
    sb = subprocess.run(["sysbench", "--version"], capture_output=True, text=True).stdout.strip()
    hp = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.splitlines()
    return {"sysbench": sb, "haproxy": hp[0].strip() if hp else "?"}


def stack_env() -> dict[str, str]:
    """The stack's addresses, after checking that the primary and Kafka answer."""
    from dbmux.stack.layout import Layout
    from dbmux.stack.stack import Stack

    root = Path(os.environ.get("DBMUX_STACK_DIR") or REPO / ".stack")
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


def _loadavg() -> str:
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


# --------------------------------------------------------------------------------------------------
# processes

class Proc:
    """A background server we started; stopped by its own pid (its own session/process group)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.name, self.argv, self.log_path = name, argv, log_path
        self.stop_signal = signal.SIGTERM
        self._log = open(log_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  cwd=REPO, env=env, start_new_session=True)

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
        try:
            fields = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


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


def start_haproxy(workdir: Path, port: int, host: str, primary_port: int, maxconn: int) -> Proc:
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(string.Template(HAPROXY_TEMPLATE.read_text()).substitute(
        listen_port=port, primary_host=host, primary_port=primary_port, maxconn=maxconn))
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    if check.returncode != 0:
        raise BenchError(f"haproxy rejected {cfg}:\n{check.stdout}{check.stderr}")
    return Proc("haproxy", ["haproxy", "-db", "-f", str(cfg)], workdir / "haproxy.log")


def ingress_env(port: int, topic: str, durability: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DBMUX_INGRESS_LISTEN": f"127.0.0.1:{port}", "DBMUX_KAFKA_TOPIC": topic,
                "PYTHONUNBUFFERED": "1"})
    if durability != "config":
        env["DBMUX_INGRESS_DURABILITY"] = durability
    return env


def start_ingress(workdir: Path, port: int, topic: str, config: str, durability: str) -> Proc:
    env = ingress_env(port, topic, durability)
    py = REPO / ".venv" / "bin" / "python"
    argv = [str(py if py.exists() else sys.executable), "-m", "dbmux.cli", "-v", "ingress", "-c", config]
    return Proc("ingress", argv, workdir / "ingress.log", env=env)


_INGRESS_BAD = re.compile(r"Traceback|\bERROR\b|\bWARNING\b|Exception|exception", re.I)


def ingress_problems(log_path: Path, limit_lines: int = 120) -> str:
    """Excerpt of the ingress log around warnings/errors/tracebacks ('' when clean)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    keep: set[int] = set()
    for i, ln in enumerate(lines):
        if _INGRESS_BAD.search(ln):
            keep.update(range(max(0, i - 2), min(len(lines), i + 25 if "Traceback" in ln or "failed" in ln
                                                  else i + 2)))
    if not keep:
        return ""
    out, prev = [], -2
    for i in sorted(keep):
        if i != prev + 1:
            out.append("...")
        out.append(lines[i])
        prev = i
        if len(out) >= limit_lines:
            out.append(f"... (truncated; {sum(1 for ln in lines if _INGRESS_BAD.search(ln))} matching lines "
                       f"in total, full log {log_path})")
            break
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# kafka

async def _end_offset(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=15000)
    await c.start()
    try:
        await c.topics()  # refreshes metadata for all topics
        parts = c.partitions_for_topic(topic) or set()
        if not parts:
            return 0
        offs = await c.end_offsets([TopicPartition(topic, p) for p in sorted(parts)])
        return sum(offs.values())
    finally:
        await c.stop()


def end_offset(bootstrap: str, topic: str) -> int | None:
    try:
        return asyncio.run(_end_offset(bootstrap, topic))
    except Exception as exc:  # noqa: BLE001 - a sanity check, never fatal
        print(f"  (could not read the end offset of {topic}: {exc})")
        return None


def delete_topic(bootstrap: str, topic: str) -> None:
    async def go() -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()

    try:
        asyncio.run(go())
    except Exception as exc:  # noqa: BLE001
        print(f"  (could not delete topic {topic}: {exc})")


# --------------------------------------------------------------------------------------------------
# sysbench

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


# --------------------------------------------------------------------------------------------------
# report

def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def build_report(results: list[Result], args, ps_modes: list[str], meta: dict[str, str],
                 problems: str, command: str) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"### {meta['date']} — ingress vs HAProxy vs direct (sysbench)")
    add("")
    add(f"- command: `{command}`")
    add(f"- machine: nproc={meta['nproc']}, cpu: {meta['cpu']}, mem {meta['mem']}, kernel {meta['kernel']}, "
        f"python {meta['python']}")
    add(f"- load average (1/5/15 min) at start: {meta.get('load_start', '?')}, at end: {meta.get('load_end', '?')} "
        f"(other work on the machine skews absolute numbers and ratios)")
    add(f"- software: {meta['sysbench']}; {meta['haproxy']}; primary: MariaDB {meta['primary_version']}")
    add(f"- setup: {args.tables} tables x {args.table_size} rows, --threads={args.threads}, "
        f"--time={args.time}s per measured run after a {args.warmup}s warm-up (discarded), --rand-type=uniform; "
        f"order per test: direct -> haproxy -> ingress; ingress durability={meta['durability']} "
        f"(topic {meta['topic']}), HAProxy nbthread 1 `mode tcp` `balance first`; "
        f"the whole local stack (Kafka, 3 MariaDB, 2 PostgreSQL) runs on the same machine")
    add("")
    for ps in ps_modes:
        rs = {(r.test, r.target): r for r in results if r.ps_mode == ps}
        add(f"#### --db-ps-mode={ps}" + (" (server-side prepared statements)" if ps == "auto" else
                                         " (text protocol, client-side interpolation)"))
        add("")
        add("| test | target | QPS | TPS | p95 ms | avg ms | errors | reconnects | proxy CPU | status |")
        add("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for test in TESTS:
            for target in TARGETS:
                r = rs.get((test, target))
                if r is None:
                    continue
                status = "ok" if r.ok else f"FAILED (exit {r.rc})"
                cpu = f"{r.proxy_cpu:.2f}" if r.proxy_cpu is not None else "-"
                add(f"| {test} | {target} | {r.qps:,.0f} | {r.tps:,.1f} | {r.p95_ms:.2f} | {r.avg_ms:.2f} | "
                    f"{r.errors} | {r.reconnects} | {cpu} | {status} |")
        add("")
        add("proxy CPU = CPU seconds the HAProxy / ingress process used per wall-clock second of the run "
            "(1.00 = one core saturated; the machine has " + meta["nproc"] + " cores shared with sysbench, "
            "MariaDB and Kafka).")
        add("")
        add("| test | metric | ingress/haproxy | ingress/direct | haproxy/direct | target (ingress/haproxy) | verdict |")
        add("| --- | --- | ---: | ---: | ---: | ---: | --- |")
        for test in TESTS:
            d, h, i = (rs.get((test, t)) for t in TARGETS)
            if not (d and h and i):
                continue
            metric, goal = GOALS[test]
            for m in ("qps", "tps"):
                iv, hv, dv = getattr(i, m), getattr(h, m), getattr(d, m)
                if m == metric:
                    verdict = ("PASS" if hv and iv / hv >= goal and i.ok else "MISS")
                    if not i.ok:
                        verdict += " (ingress run failed)"
                    tgt = f">= {goal:.1f}x"
                else:
                    verdict, tgt = "", ""
                add(f"| {test} | {m.upper()} | {ratio(iv, hv)} | {ratio(iv, dv)} | {ratio(hv, dv)} | {tgt} | {verdict} |")
        add("")
        rw = rs.get(("oltp_read_write", "ingress"))
        ps_i = rs.get(("oltp_point_select", "ingress"))
        if rw is not None:
            if rw.events is None:
                add("- Kafka sanity: end offset of the bench topic could not be read")
            else:
                match = "matches" if rw.events == rw.transactions else \
                    f"DIFFERS by {rw.events - rw.transactions:+d}"
                add(f"- Kafka sanity (read_write via ingress, measured run only): {rw.events} events published "
                    f"to the bench topic vs {rw.transactions} transactions reported by sysbench ({match})")
        if ps_i is not None and ps_i.events is not None:
            add(f"- Kafka sanity (point_select via ingress, read-only): {ps_i.events} events published (expected 0)")
        failed = [r for r in results if r.ps_mode == ps and (not r.ok or r.ignored_errors)]
        for r in failed:
            add(f"- {r.test} via {r.target}: exit {r.rc}, ignored errors {r.ignored_errors}"
                + (": " + " / ".join(f"`{f}`" for f in r.fatal[:5]) if r.fatal else ""))
        add("")
    if problems:
        add("Ingress log (warnings/errors/tracebacks, excerpt):")
        add("")
        add("```")
        add(problems)
        add("```")
    else:
        add("Ingress log: no warnings, errors or tracebacks.")
    add("")
    return "\n".join(lines)


RESULTS_HEADER = """# dbmux benchmarks

Results are appended by the bench scripts; newest at the bottom. Numbers from a shared 2-core
development machine are indicative only: compare ratios within one run, not absolute values across
runs.

## bench/ingress_sysbench.py — the ingress's proxy overhead

`.venv/bin/python bench/ingress_sysbench.py [--time 20] [--threads 8] [--table-size 10000]`
(needs the local stack: `dbmux stack up`; sysbench and haproxy from Debian packages).

Same sysbench workload against three targets, in one run, always in the order direct → HAProxy →
ingress, each measured run preceded by a discarded warm-up:

- **direct**: sysbench → MariaDB primary. The ceiling.
- **haproxy**: sysbench → HAProxy (`mode tcp`, one thread, `bench/haproxy.cfg.template`) → primary.
  The cost of a plain TCP proxy hop, the reference the ingress is judged against.
- **ingress**: sysbench → `dbmux ingress` (parses every packet, classifies statements, tracks
  transactions, publishes each committed transaction to Kafka; `durability = sync`, so a COMMIT's OK
  waits for Kafka's ack) → primary, publishing to a topic of its own (`dbmux.bench<random>.txn`,
  deleted afterwards unless `--keep-topic`).

Workloads (database `sbtest_bench`, recreated and prepared directly on the primary each run):

- **oltp_point_select**: one `SELECT c FROM sbtestN WHERE id=?` per transaction, autocommit. Measures
  the per-query round-trip overhead of the proxy (QPS = TPS). Nothing is published.
- **oltp_read_write**: BEGIN, 10 point selects, 4 range selects, 2 updates, 1 delete + 1 insert,
  COMMIT (18 queries + BEGIN/COMMIT per transaction). Measures the overhead on a mixed transactional
  load including the ingress's commit path (one Kafka event per transaction, acknowledged before the
  client's OK). TPS is the headline metric.

`--db-ps-mode=auto` (sysbench's default) uses server-side prepared statements (COM_STMT_PREPARE /
COM_STMT_EXECUTE, binary protocol); `disable` sends text queries (COM_QUERY). `--ps-mode both` runs
both. Targets from the issue: ingress >= 0.8x HAProxy QPS on point_select and >= 0.9x HAProxy TPS on
read_write (reported as PASS/MISS). The Kafka sanity line compares the events the ingress published
during the measured read_write run (end-offset delta of the bench topic) with sysbench's transaction
count: they should be equal. "proxy CPU" is the CPU time the HAProxy / ingress process used per
wall-clock second of the measured run (1.00 = one core busy). `--durability async` overrides the
ingress's `ingress.durability` to measure the commit path without waiting for Kafka's ack.

## Results
"""


def publish_report(report: str, *, no_results: bool, section: str = "", marker: str = "") -> int:
    """The end of every bench script: print ``report`` and, unless ``no_results``, append it to
    bench/RESULTS.md (after the file's header, and the script's own ``section`` the first time: its
    ``marker`` line is not in the file yet). Returns the exit code of a bench that ran: 0."""
    print()
    print(report)
    if not no_results:
        text = RESULTS.read_text() if RESULTS.exists() else ""
        with RESULTS.open("a") as f:
            if not text.strip():
                f.write(RESULTS_HEADER + "\n")
            if section and marker not in text:
                f.write(section)
            f.write("\n" + report)
        print(f"appended to {RESULTS.relative_to(REPO)}")
    return 0


# --------------------------------------------------------------------------------------------------
# main

def _sigterm(signum, frame):  # noqa: ARG001 - turn SIGTERM into the same clean-up path as Ctrl-C
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time", type=int, default=20, help="seconds per measured sysbench run (default 20)")
    ap.add_argument("--warmup", type=int, default=5, help="seconds of discarded warm-up before each run (default 5)")
    ap.add_argument("--threads", type=int, default=8, help="sysbench threads = client connections (default 8)")
    ap.add_argument("--table-size", type=int, default=10000, help="rows per table (default 10000)")
    ap.add_argument("--tables", type=int, default=4, help="sysbench tables (default 4)")
    ap.add_argument("--ps-mode", choices=("auto", "disable", "both"), default="auto",
                    help="sysbench --db-ps-mode: auto = server-side prepared statements (default), "
                         "disable = text protocol, both = run everything twice")
    ap.add_argument("--durability", choices=("config", "sync", "async"), default="config",
                    help="ingress.durability for the bench ingress: as in the stack config (default; the "
                         "stack config says sync), or override (DBMUX_INGRESS_DURABILITY)")
    ap.add_argument("--no-results", action="store_true", help=f"do not append to {RESULTS.relative_to(REPO)}")
    ap.add_argument("--keep-topic", action="store_true", help="keep the bench Kafka topic afterwards")
    ap.add_argument("--keep-workdir", action="store_true", help="keep the temp dir (configs, logs) afterwards")
    args = ap.parse_args(argv)
    command = ".venv/bin/python bench/ingress_sysbench.py" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    signal.signal(signal.SIGTERM, _sigterm)

    try:
        meta = check_tools()
        env = stack_env()
    except Prereq as exc:
        print(f"ingress_sysbench: {exc}", file=sys.stderr)
        return 2

    from dbmux.config import load_config
    from dbmux.dsn import Dsn

    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    host, port, user, password = primary.host, primary.port, primary.user, primary.password
    bootstrap = env["DBMUX_KAFKA"]
    config_path = env["DBMUX_CONFIG"]
    topic = f"dbmux.bench{secrets.token_hex(4)}.txn"
    ps_modes = ["auto", "disable"] if args.ps_mode == "both" else [args.ps_mode]
    meta.update(machine_info())
    meta["date"] = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    meta["load_start"] = _loadavg()
    meta["topic"] = topic
    meta["durability"] = load_config(config_path, env=ingress_env(16033, topic, args.durability)).ingress.durability

    workdir = Path(tempfile.mkdtemp(prefix="dbmux-bench-"))
    procs: list[Proc] = []
    results: list[Result] = []
    keep_workdir = args.keep_workdir
    interrupted = False
    ingress_log = workdir / "ingress.log"
    try:
        import pymysql

        c = pymysql.connect(host=host, port=port, user=user, password=password)
        meta["primary_version"] = c.get_server_info().removeprefix("5.5.5-")
        c.close()

        hp_port, in_port = free_port(), free_port()
        while in_port == hp_port:
            in_port = free_port()
        print(f"workdir {workdir}\nstarting haproxy on 127.0.0.1:{hp_port} -> {host}:{port}", flush=True)
        hp = start_haproxy(workdir, hp_port, host, port, maxconn=max(2000, 4 * args.threads))
        procs.append(hp)
        wait_mysql_greeting(hp_port, hp)
        print(f"starting ingress on 127.0.0.1:{in_port} (topic {topic})", flush=True)
        ing = start_ingress(workdir, in_port, topic, config_path, args.durability)
        procs.append(ing)
        version = wait_mysql_greeting(in_port, ing, timeout=60)
        print(f"ingress up (greeting server version {version!r})", flush=True)

        print(f"preparing {DB_NAME}: {args.tables} tables x {args.table_size} rows on the primary", flush=True)
        prepare_db(host, port, user, password, args)

        ports = {"direct": port, "haproxy": hp_port, "ingress": in_port}
        for ps in ps_modes:
            for test in TESTS:
                for target in TARGETS:
                    if args.warmup > 0:
                        wa = sysbench_argv(test, "127.0.0.1", ports[target], user, password, args, ps,
                                           args.warmup, args.threads)
                        run_sysbench(wa, timeout=args.warmup + 120)
                    for p in procs:
                        if not p.alive():
                            raise BenchError(f"{p.name} died (exit {p.p.returncode}); log tail:\n{p.tail()}")
                    before = end_offset(bootstrap, topic) if target == "ingress" else None
                    sa = sysbench_argv(test, "127.0.0.1", ports[target], user, password, args, ps,
                                       args.time, args.threads)
                    print(f"$ {redact(sa)}", flush=True)
                    proxy = {"haproxy": hp, "ingress": ing}.get(target)
                    cpu0, t0 = (proxy.cpu_seconds() if proxy else None), time.monotonic()
                    rc, out = run_sysbench(sa, timeout=args.time + 180)
                    cpu1, t1 = (proxy.cpu_seconds() if proxy else None), time.monotonic()
                    res = parse_sysbench(out, Result(test, target, ps, rc=rc))
                    if cpu0 is not None and cpu1 is not None:
                        res.proxy_cpu = (cpu1 - cpu0) / (t1 - t0)
                    if target == "ingress":
                        time.sleep(1.0)  # let any late (async) acknowledgements land
                        after = end_offset(bootstrap, topic)
                        res.events = after - before if after is not None and before is not None else None
                    results.append(res)
                    (workdir / f"sysbench-{ps}-{test}-{target}.out").write_text(out)
                    print(f"  {test:<18} {target:<8} qps={res.qps:>10,.1f} tps={res.tps:>9,.1f} "
                          f"p95={res.p95_ms:>7.2f}ms errors={res.errors} rc={rc}"
                          + (f" proxy_cpu={res.proxy_cpu:.2f}" if res.proxy_cpu is not None else "")
                          + (f" events={res.events}" if res.events is not None else ""), flush=True)
                    if not res.ok:
                        keep_workdir = True
                        print("    sysbench output tail:\n    " + "\n    ".join(out.strip().splitlines()[-15:]),
                              flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping haproxy and the ingress", file=sys.stderr)
    except BenchError as exc:
        print(f"ingress_sysbench: {exc}", file=sys.stderr)
        keep_workdir = True
        return 1
    finally:
        for p in reversed(procs):
            try:
                p.stop()
            except Exception as exc:  # noqa: BLE001
                print(f"  (stopping {p.name}: {exc})", file=sys.stderr)
        problems = ingress_problems(ingress_log)
        if problems:
            keep_workdir = True
        if not args.keep_topic:
            delete_topic(bootstrap, topic)
        if keep_workdir:
            print(f"kept {workdir} (haproxy.cfg, haproxy.log, ingress.log, sysbench outputs)", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    if interrupted:
        return 130
    meta["load_end"] = _loadavg()
    return publish_report(build_report(results, args, ps_modes, meta, problems, command), no_results=args.no_results)


if __name__ == "__main__":
    sys.exit(main())
