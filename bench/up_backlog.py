#!/usr/bin/env python3
"""point_select through ``dbmux up`` while its replicators catch up a backlog, vs HAProxy (issue 13).

Usage (from the repository root, local stack up; ``DBMUX_STACK_DIR`` selects another stack)::

    .venv/bin/python bench/up_backlog.py [--backlog-txns 30000] [--rounds 3] [--round-s 5]
        [--threads 8] [--ps-mode auto|disable] [--warmup 2] [--tables 2] [--table-size 10000]
        [--backlog-threads 8] [--backlog-durability async|sync] [--catchup-timeout 1800]
        [--no-results] [--keep-topic] [--keep-workdir]

What it does, in one run:

1. **Backlog.** ``sbtest_up`` is recreated on the primary and both MariaDB replicas
   (``DBMUX_REPLICA_URLS``), ``sysbench oltp_write_only prepare`` (``--tables`` x ``--table-size``)
   runs on the primary and its tables are copied to the replicas (so the topic holds only the run:
   the prepare's bulk INSERTs would otherwise dominate the replicators' work). Then ``dbmux ingress``
   alone (no binlog reader, no replicator), on a fresh topic (``dbmux.upbench<random>.txn``), takes
   ``oltp_write_only run --events=<--backlog-txns>`` and stops. The primary's GTID position before and
   after is the backlog in transactions.
2. **Rounds.** ``dbmux -v up`` from a generated config: that topic, the ingress on a free port,
   targets = both replicas with ``tables = ["sbtest_up.*"]`` (new target names: they apply the topic
   from its beginning); HAProxy (``start_haproxy`` of ``bench/ingress_sysbench.py``) to the primary.
   Once both replicators have applied a first transaction: a discarded ``--warmup`` per path, then
   ``--rounds`` pairs of ``sysbench oltp_point_select`` (``--round-s`` each, the primary's
   ``sbtest_up`` tables), always up's ingress, HAProxy, up's ingress, HAProxy, ... Per round: QPS,
   p95, the transactions each replica still had to apply at its start and end (the backlog's last
   GTID vs the replica's ``dbmux_meta.gtids`` row of its target), and the CPU of the round's proxy
   and of up's replicator processes (pids from up's start line).
3. **Catch-up.** After the rounds it waits (``--catchup-timeout``; gives up after 120 s without
   progress) until both replicas have the whole backlog (sampled every 0.5 s from up's start), then
   compares ``CHECKSUM TABLE`` of the ``sbtest_up`` tables on the primary and each replica.
4. **Report**: the rounds; up/HAProxy = median over the pairs of (up round QPS / next HAProxy round
   QPS) and the verdict against the target (>= 0.5x); the catch-up time. A round that ended after the
   replicas had caught up makes the measurement NOT VALID (said so, with a bigger ``--backlog-txns``
   to try). Appended to ``bench/RESULTS.md`` unless ``--no-results``.

``sbtest_up`` stays (dropped at the next run's start); the topic, its ``.binlog-position`` topic and
the targets' ``dbmux_meta`` rows are removed. Exit codes: 0 done (also on a MISS or a not valid
measurement), 1 the bench could not run, 2 prerequisites missing or stack down, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

from harness.cpu import cpu_per_wall, stat_cpu_seconds  # noqa: E402
from harness.environment import REPO, free_port, loadavg, run_meta, stack_env  # noqa: E402
from harness.errors import BenchError, Prereq  # noqa: E402
from harness.logs import ingress_problems  # noqa: E402
from harness.pipeline import dbmux_argv, env_without_dbmux  # noqa: E402
from harness.processes import Proc, sigterm_as_interrupt, stop_all, wait_mysql_greeting  # noqa: E402
from harness.results import RESULTS, command_line, publish_report, report_head  # noqa: E402
from harness.sql import mysql_version  # noqa: E402
from harness.topics import delete_topic, end_offset  # noqa: E402
from ingress_sysbench import start_haproxy  # noqa: E402
from sysbench_runner import Result, check_tools, parse_sysbench, redact, run_sysbench, sysbench_argv  # noqa: E402

from dbmux.core.dsn import Dsn  # noqa: E402

DB = "sbtest_up"
GOAL = 0.5  # point_select through `dbmux up` while catching up >= 0.5x HAProxy
PATHS = ("up", "haproxy")
POLL_S = 0.5
STALL_S = 120.0  # the replicas applied nothing for this long after the rounds: stop waiting (a gap?)


# --------------------------------------------------------------------------------------------------
# SQL, GTIDs, sysbench command lines

def _sql(dsn: Dsn, *sqls: str, args: tuple = ()) -> list[tuple]:
    import pymysql

    conn = pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password, autocommit=True)
    try:
        rows: list[tuple] = []
        with conn.cursor() as cur:
            for s in sqls:
                cur.execute(s, args or None)
                rows = list(cur.fetchall())
        return rows
    finally:
        conn.close()


def _gtid_pos(primary: Dsn) -> dict[str, int]:
    """The primary's ``@@gtid_binlog_pos`` as domain -> seq (``0-1-100,1-2-7`` -> {"0": 100, "1": 7})."""
    parts = [p.strip().split("-") for p in (_sql(primary, "SELECT @@gtid_binlog_pos")[0][0] or "").split(",")]
    return {p[0]: int(p[2]) for p in parts if len(p) == 3}


def _sb(test: str, port: int, dsn: Dsn, args, ps_mode: str, seconds: int, threads: int,
        command: str = "run", events: int = 0) -> list[str]:
    """sysbench_argv on database ``sbtest_up`` (``events`` > 0: that many transactions, no time limit)."""
    argv = sysbench_argv(test, "127.0.0.1", port, dsn.user, dsn.password, args, ps_mode, seconds, threads, command)
    argv = [f"--mysql-db={DB}" if a.startswith("--mysql-db=") else a for a in argv]
    return [f"--events={events}" if events and a.startswith("--events=") else a for a in argv]


def _write_config(path: Path, *, env: dict[str, str], cluster: str, topic: str, port: int, durability: str,
                  targets: dict[str, Dsn]) -> None:
    lines = ["[cluster]", f'name = "{cluster}"', "", "[kafka]", f'bootstrap = "{env["DBMUX_KAFKA"]}"',
             f'topic = "{topic}"', "", "[primary]", f'url = "{env["DBMUX_PRIMARY_URL"]}"',
             f'binlog_url = "{env["DBMUX_PRIMARY_BINLOG_URL"]}"', 'tls = "disabled"', "", "[ingress]",
             f'listen = "127.0.0.1:{port}"', f'durability = "{durability}"', "", "[replicator]",
             'on_error = "halt"', ""]
    for name, dsn in targets.items():
        lines += [f"[targets.{name}]", f'url = "{dsn.url()}"', f'tables = ["{DB}.*"]', ""]
    path.write_text("\n".join(lines))


# --------------------------------------------------------------------------------------------------
# how far behind the replicas are

class Lag:
    """Transactions each replica still has to apply: the backlog's last GTID per domain minus the
    replica's ``dbmux_meta.gtids`` row for its target and the topic. A thread samples it every
    ``POLL_S`` from ``begin()`` on and notes when every replica had applied everything."""

    def __init__(self, replicas: list[tuple[str, Dsn]], topic: str, start: dict[str, int], end: dict[str, int]):
        self.replicas, self.topic, self.start, self.end = replicas, topic, start, end
        self.total = self._left({})
        self.lock = threading.Lock()
        self.conns: list = [None] * len(replicas)
        self.t0 = 0.0
        self._last_sum = -1
        self.first_apply_at: float | None = None  # every replica applied at least one transaction
        self.caught_up_at: float | None = None
        self.progress_at = 0.0  # when the sum left to apply last changed
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lag", daemon=True)

    def _left(self, applied: dict[str, int]) -> int:
        return sum(max(0, seq - max(applied.get(d, 0), self.start.get(d, 0))) for d, seq in self.end.items())

    def _applied(self, i: int) -> dict[str, int]:
        import pymysql

        name, dsn = self.replicas[i]
        if self.conns[i] is None:
            self.conns[i] = pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                            autocommit=True)
        try:
            with self.conns[i].cursor() as cur:
                cur.execute("SELECT domain_id, seq FROM dbmux_meta.gtids WHERE target = %s AND topic = %s",
                            (name, self.topic))
                return {str(d): int(s) for d, s in cur.fetchall()}
        except pymysql.err.ProgrammingError:  # dbmux_meta.gtids not created yet
            return {}
        except pymysql.err.MySQLError:
            self.conns[i] = None  # reconnect on the next sample
            raise

    def sample(self) -> list[int]:
        with self.lock:
            return [self._left(self._applied(i)) for i in range(len(self.replicas))]

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                left = self.sample()
            except Exception as exc:  # noqa: BLE001 - reported, the bench goes on
                self.error = str(exc)
                left = None
            if left is not None:
                t = time.monotonic() - self.t0
                if sum(left) != self._last_sum:
                    self.progress_at, self._last_sum = t, sum(left)
                if self.first_apply_at is None and all(n < self.total for n in left):
                    self.first_apply_at = t
                if self.caught_up_at is None and not any(left):
                    self.caught_up_at = t
            self._stop.wait(POLL_S)

    def begin(self) -> None:
        self.t0 = time.monotonic()
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for c in filter(None, self.conns):
            c.close()


# --------------------------------------------------------------------------------------------------
# the rounds

@dataclass
class Round:
    n: int
    path: str
    res: Result
    t_start: float = 0.0  # seconds since `dbmux up` started
    t_end: float = 0.0
    left_start: list[int] = field(default_factory=list)
    left_end: list[int] = field(default_factory=list)
    proxy_cpu: float | None = None
    replicators_cpu: float | None = None

    during_catchup = property(lambda self: any(self.left_end))


def _up_pids(log: Path, timeout: float = 15.0) -> dict[str, int]:
    """The parts' pids from up's start line ``dbmux up: ... (ingress pid 1, binlog pid 2, ...)``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"^dbmux up: .*\((.*)\)$", log.read_text(errors="replace"), re.M)
        if m:
            return {name: int(pid) for name, pid in re.findall(r"([\w:.-]+) pid (\d+)", m[1])}
        time.sleep(0.2)
    return {}


def _cpu(pids: list[int]) -> float | None:
    vals = [stat_cpu_seconds(f"/proc/{p}/stat") for p in pids]
    return None if not vals or any(v is None for v in vals) else sum(v for v in vals if v is not None)


def run_round(n: int, path: str, port: int, args, primary: Dsn, lag: Lag, proxy_pids: list[int],
              rep_pids: list[int], work: Path, seconds: int) -> Round:
    argv = _sb("oltp_point_select", port, primary, args, args.ps_mode, seconds, args.threads)
    print(f"$ {redact(argv)}", flush=True)
    left_start, t_start = lag.sample(), time.monotonic() - lag.t0
    p0, c0, w0 = _cpu(proxy_pids), _cpu(rep_pids), time.monotonic()
    rc, out = run_sysbench(argv, timeout=seconds + 120)
    p1, c1, wall = _cpu(proxy_pids), _cpu(rep_pids), time.monotonic() - w0
    r = Round(n, path, parse_sysbench(out, Result("oltp_point_select", path, args.ps_mode, rc=rc)), t_start,
              time.monotonic() - lag.t0, left_start, lag.sample())
    r.proxy_cpu, r.replicators_cpu = cpu_per_wall(p0, p1, wall), cpu_per_wall(c0, c1, wall)
    (work / f"sysbench-{n}-{path}.out").write_text(out)
    print(f"  round {n} {path:<8} qps={r.res.qps:>10,.1f} p95={r.res.p95_ms:.2f}ms errors={r.res.errors} rc={rc} "
          f"left {r.left_start} -> {r.left_end}", flush=True)
    if not r.res.ok:
        print("    sysbench output tail:\n    " + "\n    ".join(out.strip().splitlines()[-15:]), flush=True)
    return r


# --------------------------------------------------------------------------------------------------
# the run

@dataclass
class Run:
    topic: str = ""
    targets: list[str] = field(default_factory=list)
    backlog_txns: int = 0  # primary GTIDs during the backlog (all through the ingress)
    backlog_events: int | None = None  # end offset of the topic after the backlog
    sysbench_txns: int = 0
    backlog_tps: float = 0.0
    backlog_s: float = 0.0
    rounds: list[Round] = field(default_factory=list)
    first_apply_s: float | None = None
    caught_up_s: float | None = None
    rounds_end_s: float = 0.0
    checksums: dict[str, bool] = field(default_factory=dict)
    lag_error: str = ""
    stalled: str = ""
    up_restarts: list[str] = field(default_factory=list)
    log_problems: dict[str, str] = field(default_factory=dict)


def _copy_tables(primary: Dsn, replicas: list[Dsn], tables: list[str]) -> None:
    """The prepared tables, copied from the primary to the replicas (the topic then holds only the run)."""
    import pymysql

    conns = [pymysql.connect(host=d.host, port=d.port, user=d.user, password=d.password, database=DB)
             for d in (primary, *replicas)]
    try:
        src = conns[0].cursor()
        for t in tables:
            src.execute(f"SHOW CREATE TABLE {t}")
            ddl = src.fetchone()[1]
            src.execute(f"SELECT * FROM {t}")
            rows = src.fetchall()
            marks = ", ".join(["%s"] * len(src.description))
            for c in conns[1:]:
                with c.cursor() as cur:
                    cur.execute(ddl)
                    cur.executemany(f"INSERT INTO {t} VALUES ({marks})", rows)
                c.commit()
        print(f"backlog: copied {', '.join(tables)} to the replicas", flush=True)
    finally:
        for c in conns:
            c.close()


def build_backlog(args, env: dict[str, str], work: Path, run: Run, primary: Dsn, replicas: list[Dsn],
                  cluster: str) -> tuple[dict[str, int], dict[str, int]]:
    for dsn in (primary, *replicas):
        _sql(dsn, f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}")
    argv = _sb("oltp_write_only", primary.port, primary, args, "auto", 0, max(1, min(args.tables, 4)), "prepare")
    print(f"backlog: on the primary: $ {redact(argv)}", flush=True)
    rc, out = run_sysbench(argv, timeout=900)
    if rc != 0:
        raise BenchError(f"sysbench prepare on the primary failed (exit {rc}):\n{out[-3000:]}")
    _copy_tables(primary, replicas, [f"sbtest{i}" for i in range(1, args.tables + 1)])
    port = free_port()
    cfg = work / "backlog.toml"
    _write_config(cfg, env=env, cluster=cluster, topic=run.topic, port=port, durability=args.backlog_durability,
                  targets={})
    start = _gtid_pos(primary)
    ing = Proc("ingress", dbmux_argv("ingress", "-c", str(cfg)), work / "backlog-ingress.log",
               env=env_without_dbmux({"PYTHONUNBUFFERED": "1"}))
    try:
        wait_mysql_greeting(port, ing, timeout=60)
        argv = _sb("oltp_write_only", port, primary, args, "auto", 0, args.backlog_threads, events=args.backlog_txns)
        print(f"backlog: $ {redact(argv)}", flush=True)
        t0 = time.monotonic()
        rc, out = run_sysbench(argv, timeout=3600)
        run.backlog_s = time.monotonic() - t0
        (work / "sysbench-backlog.out").write_text(out)
        res = parse_sysbench(out, Result("oltp_write_only", "ingress", "auto", rc=rc))
        if not res.ok:
            raise BenchError(f"sysbench oltp_write_only through the ingress failed (exit {rc}):\n"
                             + "\n".join(out.strip().splitlines()[-15:]) + f"\ningress log tail:\n{ing.tail()}")
        run.sysbench_txns, run.backlog_tps = res.transactions, res.tps
    finally:
        ing.stop(30)
    run.log_problems["backlog ingress"] = ingress_problems(ing.log_path)
    end = _gtid_pos(primary)
    run.backlog_txns = sum(max(0, s - start.get(d, 0)) for d, s in end.items())
    run.backlog_events = end_offset(env["DBMUX_KAFKA"], run.topic)
    print(f"backlog: {run.backlog_txns:,} transactions on the primary ({run.sysbench_txns:,} from sysbench run at "
          f"{run.backlog_tps:,.0f} txn/s), {run.backlog_events} events on {run.topic}", flush=True)
    return start, end


def stop_up(up: Proc) -> None:
    """SIGTERM to the supervisor (it stops its parts, SIGKILL after 30 s); then SIGKILL to what is left of
    its process group (its own session: only processes this bench started)."""
    up.stop(45)
    try:
        os.killpg(up.p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def measure(args, env: dict[str, str], work: Path, run: Run, primary: Dsn, replicas: list[Dsn], cluster: str,
            start: dict[str, int], end: dict[str, int], procs: list[Proc]) -> None:
    names = run.targets
    up_port, hp_port = free_port(), free_port()
    while hp_port == up_port:
        hp_port = free_port()
    hp = start_haproxy(work, hp_port, primary.host, primary.port, maxconn=max(2000, 4 * args.threads))
    procs.append(hp)
    wait_mysql_greeting(hp_port, hp)
    cfg = work / "up.toml"
    _write_config(cfg, env=env, cluster=cluster, topic=run.topic, port=up_port, durability="sync",
                  targets=dict(zip(names, replicas, strict=True)))
    lag = Lag(list(zip(names, replicas, strict=True)), run.topic, start, end)
    print(f"starting dbmux up on 127.0.0.1:{up_port} (targets {', '.join(names)}), haproxy on {hp_port}", flush=True)
    up = Proc("dbmux up", dbmux_argv("up", "-c", str(cfg)), work / "up.log",
              env=env_without_dbmux({"PYTHONUNBUFFERED": "1"}))
    lag.begin()
    try:
        wait_mysql_greeting(up_port, up, timeout=90)
        pids = _up_pids(up.log_path)
        ing_pids = [p for n, p in pids.items() if n == "ingress"]
        rep_pids = [p for n, p in pids.items() if n.startswith("replicate:")]
        deadline = time.monotonic() + 180
        while lag.first_apply_at is None and time.monotonic() < deadline and up.alive():
            time.sleep(0.2)
        run.first_apply_s = lag.first_apply_at
        if lag.first_apply_at is None:
            raise BenchError(f"the replicators applied nothing within 180 s (lag sampler: {lag.error or 'ok'}); "
                             f"up's log tail:\n{up.tail(40)}")
        print(f"both replicators applying after {lag.first_apply_at:.1f} s; left {lag.sample()}", flush=True)
        ports = {"up": up_port, "haproxy": hp_port}
        proxy = {"up": ing_pids, "haproxy": [hp.p.pid]}
        for path in PATHS if args.warmup > 0 else ():  # round 0: warm-up, discarded
            run_round(0, path, ports[path], args, primary, lag, proxy[path], rep_pids, work, args.warmup)
        for n in range(1, args.rounds + 1):
            for path in PATHS:
                if not up.alive():
                    raise BenchError(f"dbmux up exited {up.p.returncode}; log tail:\n{up.tail(40)}")
                run.rounds.append(run_round(n, path, ports[path], args, primary, lag, proxy[path], rep_pids, work,
                                            args.round_s))
        run.rounds_end_s = time.monotonic() - lag.t0
        deadline = time.monotonic() + args.catchup_timeout
        while lag.caught_up_at is None and time.monotonic() < deadline and up.alive():
            if time.monotonic() - lag.t0 - lag.progress_at > STALL_S:
                run.stalled = f"no progress for {STALL_S:.0f} s (left {lag.sample()}): stopped waiting"
                break
            time.sleep(0.5)
        run.caught_up_s, run.lag_error = lag.caught_up_at, lag.error
        print(f"caught up: {f'{run.caught_up_s:.1f} s after up started' if run.caught_up_s else 'NOT'}", flush=True)
        if run.caught_up_s is not None:
            tables = ", ".join(f"{DB}.sbtest{i}" for i in range(1, args.tables + 1))
            want = _sql(primary, f"CHECKSUM TABLE {tables}")
            for name, dsn in zip(names, replicas, strict=True):
                run.checksums[name] = _sql(dsn, f"CHECKSUM TABLE {tables}") == want
    finally:
        lag.close()
        stop_up(up)
        text = up.log_path.read_text(errors="replace")
        run.up_restarts = re.findall(r"^.*(?:exited -?\d+; starting it again|not restarting it).*$", text, re.M)
        run.log_problems["dbmux up (all parts)"] = ingress_problems(up.log_path)


def cleanup(env: dict[str, str], run: Run, replicas: list[Dsn], keep_topic: bool) -> None:
    for name, dsn in zip(run.targets, replicas, strict=True):
        try:
            _sql(dsn, *(f"DELETE FROM dbmux_meta.{t} WHERE target = %s" for t in ("positions", "gtids", "status")),
                 args=(name,))
        except Exception as exc:  # noqa: BLE001
            print(f"  (could not delete dbmux_meta rows of {name}: {exc})", file=sys.stderr)
    if not keep_topic:
        for topic in (run.topic, f"{run.topic}.binlog-position"):
            delete_topic(env["DBMUX_KAFKA"], topic)


# --------------------------------------------------------------------------------------------------
# report

def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def build_report(args, meta: dict, run: Run, command: str) -> str:
    lines = report_head("bench/up_backlog.py: point_select through `dbmux up` while it catches up a backlog",
                        meta, command)
    add = lines.append
    add(f"- software: {meta['sysbench']}; {meta['haproxy']}; primary: MariaDB {meta['primary_version']}")
    add(f"- backlog: {run.backlog_txns:,} transactions on the primary through `dbmux ingress` alone (tables "
        f"prepared on the primary, {args.tables} x {args.table_size} rows, copied to the replicas; then "
        f"{run.sysbench_txns:,} sysbench oltp_write_only transactions at {run.backlog_tps:,.0f} txn/s, "
        f"{args.backlog_threads} threads, durability {args.backlog_durability}, {run.backlog_s:.0f} s); "
        f"{run.backlog_events if run.backlog_events is not None else '?'} events on topic {run.topic}")
    add(f"- `dbmux -v up`: ingress + binlog reader + replicators to MariaDB replica 1 and 2 "
        f"(targets {', '.join(run.targets)}, tables [\"{DB}.*\"], from the topic's beginning), each its own process")
    add(f"- rounds: sysbench oltp_point_select, --threads={args.threads}, --db-ps-mode={args.ps_mode}, "
        f"{args.round_s} s per round, on the primary's {DB} tables; order up, haproxy, up, haproxy, ...; "
        f"a {args.warmup} s warm-up per path before round 1 (discarded); HAProxy nbthread 1 `mode tcp`; "
        f"the whole local stack runs on the same machine")
    add("")
    add("| round | path | s after up's start | QPS | p95 ms | errors | left to apply at start (r1 / r2) "
        "| at end (r1 / r2) | proxy CPU | replicators CPU | during catch-up |")
    add("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in run.rounds:
        status = ("yes" if all(r.left_end) else "one replica done") if r.during_catchup else "NO (caught up)"
        if not r.res.ok:
            status += f"; sysbench FAILED (exit {r.res.rc})"
        add(f"| {r.n} | {r.path} | {r.t_start:.1f}-{r.t_end:.1f} | {r.res.qps:,.0f} | {r.res.p95_ms:.2f} | "
            f"{r.res.errors} | {' / '.join(f'{n:,}' for n in r.left_start)} | "
            f"{' / '.join(f'{n:,}' for n in r.left_end)} | "
            f"{_fmt(r.proxy_cpu)} | {_fmt(r.replicators_cpu)} | {status} |")
    add("")
    add("left to apply = transactions of the backlog not yet in the replica (the primary's GTID at the backlog's "
        "end minus the target's `dbmux_meta.gtids` seq); proxy CPU = CPU seconds of the round's proxy (up's "
        "ingress process or HAProxy) per wall second; replicators CPU = the same, summed over up's two "
        f"replicator processes (1.00 = one core; the machine has {meta['nproc']} cores).")
    add("")
    ups = {r.n: r for r in run.rounds if r.path == "up"}
    hps = {r.n: r for r in run.rounds if r.path == "haproxy"}
    pairs = [(ups[n].res.qps, hps[n].res.qps) for n in sorted(ups) if n in hps]
    ratios = [u / h for u, h in pairs if h]
    med = statistics.median(ratios) if ratios else None
    valid = bool(run.rounds) and all(r.during_catchup for r in run.rounds)
    ok = all(r.res.ok for r in run.rounds)
    rate = (run.backlog_txns / (run.caught_up_s - run.first_apply_s) if run.caught_up_s and run.first_apply_s
            and run.caught_up_s > run.first_apply_s else None)
    catch = (f"{run.caught_up_s:.1f} s after `dbmux up` started" if run.caught_up_s is not None
             else f"NOT within {args.catchup_timeout} s after the rounds")
    catch += f" ({rate:,.0f} txn/s per replica from the first applied transaction on)" if rate else ""
    verdict = ("NOT VALID (the replicas had caught up before the rounds ended)" if not valid else "n/a" if med is None
               else ("PASS" if med >= GOAL and ok else "MISS") + ("" if ok else " (a sysbench run failed)"))
    add("| metric | up | HAProxy | up/HAProxy | target | verdict |")
    add("| --- | ---: | ---: | ---: | ---: | --- |")
    add(f"| point_select QPS, median of {len(pairs)} round pair(s) | "
        f"{_fmt(statistics.median([u for u, _ in pairs]) if pairs else None, ',.0f')} | "
        f"{_fmt(statistics.median([h for _, h in pairs]) if pairs else None, ',.0f')} | "
        f"{_fmt(med)}x (pairs: {', '.join(f'{x:.2f}' for x in ratios) or '-'}) | >= {GOAL}x | {verdict} |")
    add("")
    add(f"- catch-up: both replicators applying {_fmt(run.first_apply_s, '.1f')} s after `dbmux up` started; "
        f"rounds ended at {run.rounds_end_s:.1f} s; both replicas caught up {catch}")
    if run.checksums:
        add("- CHECKSUM TABLE of the " + DB + " tables vs the primary: " + ", ".join(
            f"{n} {'equal' if eq else 'DIFFERENT'}" for n, eq in run.checksums.items()))
    if not valid:
        need = max(args.backlog_txns * 2, int((rate or 0) * (run.rounds_end_s - (run.first_apply_s or 0)) * 1.5))
        add(f"- **the measurement is not valid**: catch-up finished before the rounds ended, so later rounds did "
            f"not compete with replication work; rerun with a bigger backlog, e.g. --backlog-txns {need:,}")
    if run.backlog_events is not None and run.backlog_events < run.backlog_txns:
        add(f"- **the topic has fewer events ({run.backlog_events:,}) than the backlog has transactions**: the "
            "backlog ingress did not publish them all (its log below); the replicas cannot catch up past the gap")
    if run.stalled:
        add(f"- catch-up: {run.stalled}; see the replicator lines of up's log")
    if run.lag_error:
        add(f"- lag sampler error (last): {run.lag_error}")
    for line in run.up_restarts:
        add(f"- dbmux up restarted a part: `{line.strip()}`")
    add("")
    for what, text in run.log_problems.items():
        add(f"{what} log: " + ("no warnings, errors or tracebacks." if not text else "warnings/errors (excerpt):"))
        add("")
        if text:
            lines += ["```", text, "```", ""]
    return "\n".join(lines)


SECTION_MARKER = "## bench/up_backlog.py"
SECTION = f"""
{SECTION_MARKER} — point_select through `dbmux up` while it catches up a backlog

`.venv/bin/python bench/up_backlog.py [--backlog-txns 30000] [--rounds 3] [--round-s 5]` (needs the local
stack: `dbmux stack up`; sysbench and haproxy from Debian packages).

A backlog of oltp_write_only transactions goes through `dbmux ingress` alone to a fresh topic; then
`dbmux up` (ingress, binlog reader, a replicator per MariaDB replica, each its own process) starts on
it and, while its replicators apply the backlog, sysbench oltp_point_select runs through up's ingress
and through HAProxy (to the primary) in alternating rounds. Target (issue 13): up/HAProxy >= 0.5x,
median of the round pairs; not valid if a round ended after the replicas had caught up.
"""

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backlog-txns", type=int, default=30000, help="oltp_write_only transactions (default 30000)")
    ap.add_argument("--backlog-threads", type=int, default=8, help="sysbench threads writing the backlog (default 8)")
    ap.add_argument("--backlog-durability", choices=("async", "sync"), default="async",
                    help="ingress.durability while writing the backlog (default async: faster; the count is checked)")
    ap.add_argument("--tables", type=int, default=2, help="sysbench tables in sbtest_up (default 2)")
    ap.add_argument("--table-size", type=int, default=10000, help="rows per table (default 10000)")
    ap.add_argument("--rounds", type=int, default=3, help="round pairs (up, haproxy) (default 3)")
    ap.add_argument("--round-s", type=int, default=5, help="seconds per round (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="discarded seconds per path before round 1 (default 2)")
    ap.add_argument("--threads", type=int, default=8, help="point_select threads (default 8)")
    ap.add_argument("--ps-mode", choices=("auto", "disable"), default="auto",
                    help="point_select --db-ps-mode: auto = prepared statements (default), disable = text protocol")
    ap.add_argument("--catchup-timeout", type=int, default=1800, help="seconds to wait for catch-up after the rounds")
    ap.add_argument("--no-results", action="store_true", help=f"do not append to {RESULTS.relative_to(REPO)}")
    ap.add_argument("--keep-topic", action="store_true", help="keep the bench Kafka topics afterwards")
    ap.add_argument("--keep-workdir", action="store_true", help="keep the temp dir (configs, logs) afterwards")
    args = ap.parse_args(argv)
    command = command_line("up_backlog.py")
    sigterm_as_interrupt()
    try:
        meta = check_tools()
        env = stack_env()
    except Prereq as exc:
        print(f"up_backlog: {exc}", file=sys.stderr)
        return 2
    meta.update(run_meta())
    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    replicas = [Dsn.parse(u) for u in env["DBMUX_REPLICA_URLS"].split(",") if u][:2]
    if len(replicas) < 2:
        print("up_backlog: the stack has fewer than two MariaDB replicas (DBMUX_REPLICA_URLS)", file=sys.stderr)
        return 2
    cluster = f"upbench{secrets.token_hex(4)}"
    run = Run(topic=f"dbmux.{cluster}.txn", targets=[f"{cluster}_r1", f"{cluster}_r2"])
    work = Path(tempfile.mkdtemp(prefix="dbmux-upbench-"))
    print(f"workdir {work}, topic {run.topic}", flush=True)
    procs: list[Proc] = []
    keep = args.keep_workdir
    try:
        meta["primary_version"] = mysql_version(primary)
        start, end = build_backlog(args, env, work, run, primary, replicas, cluster)
        measure(args, env, work, run, primary, replicas, cluster, start, end, procs)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the bench's processes", file=sys.stderr)
        keep = True
        return 130
    except BenchError as exc:
        print(f"up_backlog: {exc}", file=sys.stderr)
        keep = True
        return 1
    finally:
        stop_all(procs)
        cleanup(env, run, replicas, args.keep_topic)
        if any(run.log_problems.values()) or any(not r.res.ok for r in run.rounds):
            keep = True
        if keep:
            print(f"kept {work} (configs, logs, sysbench outputs)", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    meta["load_end"] = loadavg()
    return publish_report(build_report(args, meta, run, command), no_results=args.no_results,
                          section=SECTION, marker=SECTION_MARKER)


if __name__ == "__main__":
    sys.exit(main())
