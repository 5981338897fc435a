#!/usr/bin/env python3
"""Issue 13's one benchmark command: the ingress on the paths users take, back to back on one machine.

Usage (from the repository root, local stack up; nothing else running)::

    .venv/bin/python bench/ingress_all.py [--time 20] [--backlog-txns 30000] [--no-results]

1. ``bench/ingress_sysbench.py --ps-mode both``: direct / HAProxy / ingress (publishing on) for
   ``oltp_point_select`` and ``oltp_read_write``, prepared statements and text protocol;
2. ``bench/up_backlog.py``: ``oltp_point_select`` through ``dbmux up`` while its replicators catch up a
   backlog, alternating rounds with HAProxy.

Each appends its own report to ``bench/RESULTS.md`` (unless ``--no-results``); this command then
prints, and appends, one summary of every verdict row with the issue's targets (ingress / HAProxy >=
0.8x on all four sysbench rows; ``dbmux up`` while catching up >= 0.5x HAProxy).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

from harness.environment import BENCH_DIR, loadavg, run_meta  # noqa: E402
from harness.results import command_line, publish_report, report_head  # noqa: E402


def _run(script: str, args: list[str]) -> tuple[int, str]:
    print(f"$ {script} {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, str(BENCH_DIR / script), *args], capture_output=True, text=True)
    sys.stdout.write(proc.stdout[-4000:])
    sys.stderr.write(proc.stderr[-4000:])
    return proc.returncode, proc.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time", type=int, default=20, help="seconds per measured sysbench run (default 20)")
    ap.add_argument("--backlog-txns", type=int, default=30000, help="up_backlog's backlog (default 30000)")
    ap.add_argument("--with-pure", action="store_true",
                    help="ingress_sysbench.py --with-pure: a pure-Python ingress too (what the compiled build gains)")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args(argv)
    meta = run_meta()
    keep = ["--no-results"] if args.no_results else []
    pure = ["--with-pure"] if args.with_pure else []
    runs = [("ingress_sysbench.py", ["--ps-mode", "both", "--time", str(args.time), *pure, *keep]),
            ("up_backlog.py", ["--backlog-txns", str(args.backlog_txns), *keep])]
    table = ["", "| bench | verdict rows (from its report, above in this file) |", "| --- | --- |"]
    worst = 0
    for script, script_args in runs:
        rc, out = _run(script, script_args)
        worst = max(worst, rc)
        mode = ""
        rows = []
        for line in out.splitlines():
            if line.startswith("#### --db-ps-mode="):
                mode = line.split("=", 1)[1].split(" ")[0]
            elif line.startswith("|") and ("PASS" in line or "MISS" in line or "NOT VALID" in line):
                cells = [c.strip() for c in line.strip("|").split("|")]
                rows.append(f"{mode + ': ' if mode else ''}{' / '.join(c for c in cells if c)}")
        table.append(f"| {script} (exit {rc}) | {'<br>'.join(rows) or 'no verdict rows: see its output'} |")
    meta["load_end"] = loadavg()
    lines = report_head("issue 13 summary: ingress on the paths users take (one command)", meta,
                        command_line("ingress_all.py")) + table
    publish_report("\n".join(lines) + "\n", no_results=args.no_results)
    return worst


if __name__ == "__main__":
    sys.exit(main())
