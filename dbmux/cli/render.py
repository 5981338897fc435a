"""Text renderings of what the library returns: the verify report, the status table, the backfill
progress line. Never contains passwords (URLs in reports are already redacted)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from dbmux.replicator.status import StatusReport
from dbmux.replicator.verify_report import MAX_RANGES_SHOWN, Replication, Status, TargetReport, VerifyReport


def _key(key: Sequence[Any]) -> str:
    return "(" + ", ".join("NULL" if v is None else str(v) for v in key) + ")"


def _replication_line(r: Replication) -> str:
    if r.state == "not started":
        return "replication: not started (no position stored: compared by content only)"
    if r.caught_up:
        return f"replication: caught up at {r.applied or '-'} (primary {r.primary or '-'})"
    state = r.state.upper() if r.state in ("behind", "halted") else r.state
    return f"replication: NOT CAUGHT UP, {state}" + (f": {r.detail}" if r.detail else "")


def _lag_reason(tr: TargetReport) -> str:
    r = tr.replication
    assert r is not None
    return r.state + (f" by {r.behind} transaction{'s' if r.behind != 1 else ''}" if r.state == "behind" else "")


def format_report(report: VerifyReport, *, details: bool = False) -> str:
    """One table per target, then a final line. Never contains passwords (URLs are redacted)."""
    out: list[str] = []
    for tr in report.targets:
        out.append(f"target {tr.name} ({tr.url})" + ("" if tr.mode == "full" else f" [shard, {tr.mode}]"))
        if tr.error:
            out.append(f"  ERROR: {tr.error}")
            out.append("")
            continue
        if tr.replication is not None:
            out.append("  " + _replication_line(tr.replication))
        width = max([len("table")] + [len(t.table) for t in tr.tables])
        out.append(f"  {'table':<{width}}  {'rows primary':>12}  {'rows target':>11}  {'chunks':>6}  status")
        for t in tr.tables:
            status = t.status.value + (f" ({t.diff_rows} rows)" if t.diff_rows else "")
            if t.note:
                status += f" — {t.note}"
            rows_target = "-" if t.status is Status.MISSING or t.status is Status.NOT_ON_SHARD and not t.note \
                else t.rows_target
            out.append(f"  {t.table:<{width}}  {t.rows_primary:>12}  {rows_target:>11}  {t.chunks:>6}  {status}")
            if details and (t.ranges or t.keys):
                for lo, hi in t.ranges[:MAX_RANGES_SHOWN]:
                    lower = f"{_key(lo)} < " if lo is not None else ""
                    upper = f" <= {_key(hi)}" if hi is not None else ""
                    out.append(f"      differing key range: {lower}key{upper}")
                for kd in t.keys:
                    out.append(f"      {kd.what}: key {_key(kd.key)}")
                if t.diff_rows > len(t.keys):
                    out.append(f"      … {t.diff_rows - len(t.keys)} more differing rows")
        bad = [t for t in tr.tables if t.failed]
        out.append(f"  {tr.name}: {len(tr.tables)} tables, "
                   + ("all equal" if not bad else f"{len(bad)} not equal")
                   + (f"; NOT CAUGHT UP ({_lag_reason(tr)})" if tr.lagging else ""))
        out.append("")
    code = report.exit_code
    if code == 0:
        fresh = [t.name for t in report.targets if t.replication is not None and t.replication.state == "not started"]
        if fresh:
            out.append(f"verify: all {len(report.targets)} targets equal; never replicated (compared by content "
                       f"only): {', '.join(fresh)}")
        else:
            out.append(f"verify: all {len(report.targets)} targets equal and caught up with the primary")
        return "\n".join(out) + "\n"
    verdicts = []
    errors = [t.name for t in report.targets if t.errored]
    lagging = [f"{t.name} ({_lag_reason(t)})" for t in report.targets if t.lagging and not t.errored]
    different = [t.name for t in report.targets if t.different and not t.errored]
    if errors:
        verdicts.append(f"ERRORS on {', '.join(errors)}")
    if lagging:
        verdicts.append(f"NOT CAUGHT UP on {', '.join(lagging)}")
    if different:
        verdicts.append(f"DIFFERENT on {', '.join(different)}")
    out.append("verify: " + "; ".join(verdicts))
    return "\n".join(out) + "\n"


def render_status(report: StatusReport) -> str:
    """The status table (``lag txns``: transactions behind the primary), then the primary's position."""
    reads = any(r.reads for r in report.targets)  # (a column only where the ingress routes reads)
    head = f"{'target':<16} {'applied gtid':<22} {'lag txns':>9} {'lag s':>8}  "
    lines = [head + (f"{'reads':<12} " if reads else "") + "state"]
    for r in report.targets:
        lag = "-" if r.lag_txns is None else str(r.lag_txns)
        lag_s = "-" if r.lag_s is None else f"{r.lag_s:.1f}"
        state = r.state + (f": {r.detail}" if r.detail else "")
        lines.append(f"{r.name:<16} {r.applied:<22} {lag:>9} {lag_s:>8}  " + (f"{r.reads:<12} " if reads else "")
                     + state)
    lines.append("")
    lines.append(f"primary at {report.primary or '-'}" if not report.primary_error else report.primary_error)
    if report.kafka_error:
        lines.append(report.kafka_error)
    return "\n".join(lines)


class ProgressLine:
    """One status line on stderr: rows copied of the estimate, rows/s, ETA (a line every few seconds
    when the stream is not a terminal). A :class:`dbmux.replicator.backfill.run.ProgressSink`."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = 1
        self.done = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0

    def start(self, total_rows: int) -> None:
        self.total = max(total_rows, 1)
        self.started = time.monotonic()

    def add(self, table: str, rows: int, *, force: bool = False) -> None:
        self.done += rows
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < (0.2 if self.tty else 5.0)):
            return
        self._last = now
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        frac = min(self.done / self.total, 1.0)
        eta = (self.total - self.done) / rate if rate > 0 and self.done < self.total else 0
        bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
        line = (f"{table:<32.32} [{bar}] {self.done:,}/~{self.total:,} rows  {rate:,.0f} rows/s  "
                f"ETA {int(eta) // 60}:{int(eta) % 60:02d}")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


_CACHE_SAMPLE = re.compile(
    r'^dbmux_ingress_cache_(lookups_total\{result="(\w+)"\}|bytes|entries|evictions_total) (\S+)$', re.MULTILINE)


def render_cache(metrics_text: str, cache_bytes: int) -> str:
    """One line on the ingress's result cache, from its Prometheus metrics (the cache lives in the ingress)."""
    found: dict[str, float] = {}
    for m in _CACHE_SAMPLE.finditer(metrics_text):
        found[m.group(2) or m.group(1)] = float(m.group(3))
    if not found:
        return "result cache: the ingress reports no cache (is ingress.cache_bytes set where it runs?)"
    hits, misses, waits = (found.get(k, 0.0) for k in ("hit", "miss", "wait"))
    lookups = hits + misses + waits
    ratio = f"{hits / lookups:.1%}" if lookups else "-"
    return (f"result cache: {found.get('entries', 0):,.0f} entries, {found.get('bytes', 0) / 2**20:,.1f} of "
            f"{cache_bytes / 2**20:,.0f} MiB, {hits:,.0f} hits of {lookups:,.0f} lookups ({ratio}), "
            f"{found.get('evictions_total', 0):,.0f} evictions")
