"""Results of ``dbmux verify`` (per table, per target, per run) and their text rendering.

Exit codes: 0 when every target is equal, 1 when any table differs (or is missing, or a table without
primary key has a different row count), 2 when a target or a table could not be read at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Sequence

MAX_RANGES_SHOWN = 20


class Status(str, Enum):
    EQUAL = "equal"
    DIFFERENT = "DIFFERENT"
    MISSING = "missing on target"
    NOT_VERIFIABLE = "not verifiable (no primary key)"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class KeyDiff:
    what: str  # "changed", "missing on target", "extra on target"
    key: tuple[str | None, ...]  # canonical texts of the key


@dataclass(slots=True)
class TableResult:
    table: str
    status: Status = Status.EQUAL
    rows_primary: int = 0
    rows_target: int = 0
    chunks: int = 0
    diff_rows: int = 0
    # differing key ranges (after, upto] as canonical key texts; None: unbounded
    ranges: list[tuple[tuple | None, tuple | None]] = field(default_factory=list)
    keys: list[KeyDiff] = field(default_factory=list)  # at most max_keys
    note: str = ""

    @property
    def failed(self) -> bool:
        if self.status is Status.NOT_VERIFIABLE:
            return bool(self.note)  # a note is set when the counts disagree
        return self.status is not Status.EQUAL


@dataclass(slots=True)
class TargetReport:
    name: str
    url: str  # redacted
    mode: str  # "full", "owned" (shard with predicate), "subset" (shard without)
    tables: list[TableResult] = field(default_factory=list)
    error: str = ""

    @property
    def errored(self) -> bool:
        return bool(self.error) or any(t.status is Status.ERROR for t in self.tables)

    @property
    def failed(self) -> bool:
        return self.errored or any(t.failed for t in self.tables)


@dataclass(slots=True)
class VerifyReport:
    targets: list[TargetReport]

    @property
    def exit_code(self) -> int:
        """0: every target equal; 1: some difference; 2: some target or table could not be verified."""
        if any(t.errored for t in self.targets):
            return 2
        return 1 if any(t.failed for t in self.targets) else 0



def _key(key: Sequence[Any]) -> str:
    return "(" + ", ".join("NULL" if v is None else str(v) for v in key) + ")"


def format_report(report: VerifyReport, *, details: bool = False) -> str:
    """One table per target, then a final line. Never contains passwords (URLs are redacted)."""
    out: list[str] = []
    for tr in report.targets:
        out.append(f"target {tr.name} ({tr.url})" + ("" if tr.mode == "full" else f" [shard, {tr.mode}]"))
        if tr.error:
            out.append(f"  ERROR: {tr.error}")
            out.append("")
            continue
        width = max([len("table")] + [len(t.table) for t in tr.tables])
        out.append(f"  {'table':<{width}}  {'rows primary':>12}  {'rows target':>11}  {'chunks':>6}  status")
        for t in tr.tables:
            status = t.status.value + (f" ({t.diff_rows} rows)" if t.diff_rows else "")
            if t.note:
                status += f" — {t.note}"
            rows_target = "-" if t.status is Status.MISSING else t.rows_target
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
                   + ("all equal" if not bad else f"{len(bad)} not equal"))
        out.append("")
    code = report.exit_code
    if code == 0:
        out.append(f"verify: all {len(report.targets)} targets equal")
    else:
        names = ", ".join(t.name for t in report.targets if t.failed)
        out.append(f"verify: {'ERRORS' if code == 2 else 'DIFFERENT'} on {names}")
    return "\n".join(out) + "\n"
