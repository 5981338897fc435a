"""bench/RESULTS.md: the report's common head, and appending a report to the file."""

from __future__ import annotations

import shlex
import sys

from .environment import BENCH_DIR, REPO

RESULTS = BENCH_DIR / "RESULTS.md"


def command_line(script: str) -> str:
    """How this run was started, for the report: ``.venv/bin/python bench/<script>`` and its arguments."""
    return f".venv/bin/python bench/{script}" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")


def report_head(title: str, meta: dict, command: str) -> list[str]:
    """The first lines of every report: heading, command, machine, load average."""
    return [
        f"### {meta['date']} — {title}",
        "",
        f"- command: `{command}`",
        f"- machine: nproc={meta['nproc']}, cpu: {meta['cpu']}, mem {meta['mem']}, kernel {meta['kernel']}, "
        f"python {meta['python']}",
        f"- load average (1/5/15 min) at start: {meta.get('load_start', '?')}, at end: {meta.get('load_end', '?')} "
        "(other work on the machine skews absolute numbers and ratios)",
    ]


# The file's head when a bench creates it (or finds it empty); it describes the first bench,
# bench/ingress_sysbench.py, whose report therefore needs no section of its own.
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


def run_and_publish(run, args) -> int:
    """The end of a bench whose ``run(args)`` returns its report: exit 2 when a prerequisite is missing
    (:class:`Prereq`, said on stderr), 1 when the bench itself failed (:class:`BenchError`), else the
    report is published (``args.no_results``) and 0 returned."""
    from .errors import BenchError, Prereq

    try:
        report = run(args)
    except Prereq as exc:
        print(exc, file=sys.stderr)
        return 2
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    return publish_report(report, no_results=args.no_results)


def bench_main(ap, run, argv: list[str] | None) -> int:
    """A bench's ``main``: its options (``ap``) plus ``--no-results``, a clean stop on SIGTERM, then
    :func:`run_and_publish`."""
    from .processes import sigterm_as_interrupt

    ap.add_argument("--no-results", action="store_true", help="print the report; do not append it to RESULTS.md")
    args = ap.parse_args(argv)
    sigterm_as_interrupt()
    return run_and_publish(run, args)
