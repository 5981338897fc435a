#!/usr/bin/env python3
"""Big packets: a multi-MiB INSERT and SELECT of a literal through the ingress vs straight to the primary.

Usage (from the repository root, with the local stack up: ``dbmux stack up``; ``DBMUX_STACK_DIR``
selects another stack directory)::

    .venv/bin/python bench/big_packets.py [--sizes 2,16,64] [--rounds 3] [--no-results] [--keep-topic]

What it does, in one run:

1. reads the stack addresses (``dbmux.stack``); fails clearly when the stack is down;
2. raises the primary's global ``max_allowed_packet`` (1 GiB; restored at the end) so a 64 MiB
   statement is accepted, and starts the dbmux ingress (publishing on, ``durability`` as configured,
   to a topic of its own, ``ingress.max_packet_bytes`` above the largest statement) on a free port;
3. recreates database ``bigpkt_bench`` with one table ``blobs (id, b LONGBLOB)``;
4. for each size (MiB of literal) and round, for each target (direct, ingress; the order alternates
   per round): times ``INSERT INTO blobs (b) VALUES ('<literal>')`` and ``SELECT '<literal>'`` (the
   whole result read back) with PyMySQL on one connection per target (connecting is not timed),
   checks the stored length and the value read back. Meanwhile a probe connection to the same target
   runs ``SELECT 1`` in a loop: its slowest answer during the big statements shows whether other
   sessions were served meanwhile;
5. prints a table (median seconds per statement, ingress/direct ratio; target: within 2x of direct,
   PASS/MISS, never a non-zero exit for a MISS) and appends it to ``bench/RESULTS.md``.

Exit codes: 0 done (even with MISSes), 2 stack down, 1 the bench itself failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

from harness.environment import REPO, free_port, loadavg, run_meta, stack_env  # noqa: E402
from harness.errors import BenchError, Prereq  # noqa: E402
from harness.logs import ingress_log_section, ingress_problems  # noqa: E402
from harness.pipeline import ingress_env, start_ingress  # noqa: E402
from harness.processes import Proc, sigterm_as_interrupt, stop_all, wait_mysql_greeting  # noqa: E402
from harness.results import RESULTS, command_line, publish_report, report_head  # noqa: E402
from harness.sql import mysql_version  # noqa: E402
from harness.topics import delete_topic, whole_events  # noqa: E402

DB = "bigpkt_bench"
TARGETS = ("direct", "ingress")
STATEMENTS = ("INSERT", "SELECT")
GOAL = 2.0  # ingress time <= 2x direct
MIB = 1 << 20
PRIMARY_MAX_PACKET = 1 << 30

SECTION = """
## bench/big_packets.py — big statements through the ingress

`.venv/bin/python bench/big_packets.py [--sizes 2,16,64] [--rounds 3]` (needs the local stack).

One `INSERT INTO blobs (b) VALUES ('<literal>')` and one `SELECT '<literal>'` (result read back)
per size and round, with PyMySQL, straight to the primary and through the ingress in the same run
(order alternating per round); median seconds per statement and the ratio ingress/direct (target:
within 2x). The statement's payload spans several 16 MiB frames from 16 MiB on. "probe max ms" is
the slowest `SELECT 1` another connection to the same target got while the big statements ran
(other sessions must keep being served; the probe runs in a thread of the bench process, so the
client's own work on the big statement shows in both columns). The primary's global
max_allowed_packet is raised to 1 GiB for the run and restored afterwards; the bench ingress gets
`ingress.max_packet_bytes` above the largest statement (the default, 64 MiB, refuses a 64 MiB literal).
"""
SECTION_MARKER = "## bench/big_packets.py"


@dataclass
class Timing:
    size_mib: int
    target: str
    statement: str
    seconds: list[float] = field(default_factory=list)
    probe_max_ms: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


def _connect(host: str, port: int, user: str, password: str, db: str | None = None):
    import pymysql

    return pymysql.connect(host=host, port=port, user=user, password=password, database=db, autocommit=True,
                           max_allowed_packet=PRIMARY_MAX_PACKET, read_timeout=600, write_timeout=600)


def literal(size_mib: int) -> str:
    """``size_mib`` MiB of ASCII that needs no escaping."""
    unit = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"  # 64 characters
    return unit * (size_mib * MIB // len(unit))


class Probe:
    """Another session on the same target: ``SELECT 1`` in a loop; the slowest answer while ``watch`` is on."""

    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        self.conn = _connect(host, port, user, password)
        self.watching = False
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        cur = self.conn.cursor()
        while not self._stop.is_set():
            t0 = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchall()
            took = time.perf_counter() - t0
            if self.watching:
                self.worst = max(self.worst, took)
            time.sleep(0.002)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.conn.close()


def run_one(host: str, port: int, user: str, password: str, size_mib: int, text: str,
            timings: dict[tuple[int, str, str], Timing], target: str) -> None:
    conn = _connect(host, port, user, password, DB)
    probe = Probe(host, port, user, password)
    try:
        cur = conn.cursor()
        insert = f"INSERT INTO blobs (b) VALUES ('{text}')"
        select = f"SELECT '{text}'"
        for statement, sql in (("INSERT", insert), ("SELECT", select)):
            t = timings.setdefault((size_mib, target, statement), Timing(size_mib, target, statement))
            probe.watching, probe.worst = True, 0.0
            t0 = time.perf_counter()
            cur.execute(sql)
            rows = cur.fetchall()
            took = time.perf_counter() - t0
            probe.watching = False
            t.seconds.append(took)
            t.probe_max_ms = max(t.probe_max_ms, probe.worst * 1000)
            if statement == "INSERT":
                cur.execute("SELECT LENGTH(b) FROM blobs WHERE id = LAST_INSERT_ID()")
                (length,), = cur.fetchall()
                if length != len(text):
                    raise BenchError(f"{target}: stored {length} bytes, sent {len(text)}")
                cur.execute("TRUNCATE TABLE blobs")
            elif rows[0][0] != text:
                raise BenchError(f"{target}: SELECT returned {len(rows[0][0])} characters, expected {len(text)}")
            print(f"  {size_mib:>3} MiB {statement:<6} {target:<8} {took:7.3f} s  probe max "
                  f"{probe.worst * 1000:7.1f} ms", flush=True)
    finally:
        probe.close()
        conn.close()


def build_report(meta: dict, timings: dict[tuple[int, str, str], Timing], sizes: list[int], rounds: int,
                 events: tuple[int, int] | None, problems: str, command: str) -> str:
    lines = report_head("big packets through the ingress vs direct", meta, command)
    add = lines.append
    add(f"- software: primary MariaDB {meta['primary_version']}, PyMySQL client; ingress durability "
        f"{meta['durability']} (topic {meta['topic']}), ingress.max_packet_bytes {meta['max_packet']}; "
        f"{rounds} round(s) per size, median reported; the whole local stack runs on the same machine")
    add("")
    add("| size | statement | direct s | ingress s | ingress/direct | probe max ms direct | probe max ms ingress "
        "| target | verdict |")
    add("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for size in sizes:
        for statement in STATEMENTS:
            d = timings.get((size, "direct", statement))
            i = timings.get((size, "ingress", statement))
            if d is None or i is None:
                continue
            ratio = i.median / d.median if d.median else float("inf")
            verdict = "PASS" if ratio <= GOAL else "MISS"
            add(f"| {size} MiB | {statement} | {d.median:.3f} | {i.median:.3f} | {ratio:.2f}x | "
                f"{d.probe_max_ms:.1f} | {i.probe_max_ms:.1f} | <= {GOAL:.0f}x | {verdict} |")
    add("")
    if events is not None:
        committed = 2 * rounds * len(sizes)
        add(f"- events on the bench topic: {events[0]} of the {committed} transactions committed through the ingress "
            f"(each INSERT and the TRUNCATE after it), in {events[1]} Kafka messages (an event over "
            "kafka.fragment_bytes travels as fragments, put together here as a replicator does)")
    add("")
    lines += ingress_log_section(problems)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2,16,64", help="literal sizes in MiB, comma-separated (default 2,16,64)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per size; the median is reported (default 3)")
    ap.add_argument("--no-results", action="store_true", help=f"do not append to {RESULTS.relative_to(REPO)}")
    ap.add_argument("--keep-topic", action="store_true", help="keep the bench Kafka topic afterwards")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    command = command_line("big_packets.py")
    sigterm_as_interrupt()
    try:
        env = stack_env()
    except Prereq as exc:
        print(f"big_packets: {exc}", file=sys.stderr)
        return 2

    from dbmux.core.config import load_config
    from dbmux.core.dsn import Dsn

    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    host, port, user, password = primary.host, primary.port, primary.user, primary.password
    bootstrap, config_path = env["DBMUX_KAFKA"], env["DBMUX_CONFIG"]
    topic = f"dbmux.bigpkt{secrets.token_hex(4)}.txn"
    max_packet = max(sizes) * MIB * 2 + MIB
    meta = run_meta()
    meta.update(topic=topic, max_packet=f"{max_packet // MIB} MiB")
    in_port = free_port()
    ing_env = ingress_env(in_port, topic)
    ing_env["DBMUX_INGRESS_MAX_PACKET_BYTES"] = str(max_packet)
    meta["durability"] = load_config(config_path, env=ing_env).ingress.durability

    workdir = Path(tempfile.mkdtemp(prefix="dbmux-bigpkt-"))
    ingress_log = workdir / "ingress.log"
    procs: list[Proc] = []
    timings: dict[tuple[int, str, str], Timing] = {}
    events: int | None = None
    interrupted, keep_workdir = False, False
    admin = _connect(host, port, user, password)
    acur = admin.cursor()
    acur.execute("SELECT @@global.max_allowed_packet")
    (old_max,), = acur.fetchall()
    try:
        meta["primary_version"] = mysql_version(primary)
        acur.execute(f"SET GLOBAL max_allowed_packet = {PRIMARY_MAX_PACKET}")  # new sessions only
        acur.execute(f"DROP DATABASE IF EXISTS {DB}")
        acur.execute(f"CREATE DATABASE {DB}")
        acur.execute(f"CREATE TABLE {DB}.blobs (id INT AUTO_INCREMENT PRIMARY KEY, b LONGBLOB)")
        print(f"workdir {workdir}\nstarting ingress on 127.0.0.1:{in_port} (topic {topic})", flush=True)
        ing = start_ingress(workdir, config_path, ing_env)
        procs.append(ing)
        wait_mysql_greeting(in_port, ing, timeout=60)
        ports = {"direct": port, "ingress": in_port}
        for size in sizes:
            text = literal(size)
            for rnd in range(args.rounds):
                order = TARGETS if rnd % 2 == 0 else TARGETS[::-1]
                for target in order:
                    if not ing.alive():
                        raise BenchError(f"the ingress died (exit {ing.p.returncode}); log tail:\n{ing.tail()}")
                    run_one("127.0.0.1", ports[target], user, password, size, text, timings, target)
            del text
        time.sleep(1.0)  # late acknowledgements
        events = whole_events(bootstrap, topic)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping the ingress", file=sys.stderr)
    except BenchError as exc:
        print(f"big_packets: {exc}", file=sys.stderr)
        keep_workdir = True
        return 1
    finally:
        stop_all(procs)
        try:
            acur.execute(f"SET GLOBAL max_allowed_packet = {old_max}")
            acur.execute(f"DROP DATABASE IF EXISTS {DB}")
        finally:
            admin.close()
        problems = ingress_problems(ingress_log)
        if not args.keep_topic:
            delete_topic(bootstrap, topic)
        if keep_workdir or problems:
            print(f"kept {workdir} (ingress.log)", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if interrupted:
        return 130
    meta["load_end"] = loadavg()
    report = build_report(meta, timings, sizes, args.rounds, events, problems, command)
    return publish_report(report, no_results=args.no_results, section=SECTION, marker=SECTION_MARKER)


if __name__ == "__main__":
    sys.exit(main())
