"""Results of ``dbmux verify`` (per table, per target, per run) (rendered as text by the CLI).

Exit codes: 0 when every target is equal, 1 when any table differs (or is missing, or a table without
primary key has a different row count), 2 when a target or a table could not be read at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

MAX_RANGES_SHOWN = 20


class Status(StrEnum):
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
    ranges: list[tuple[tuple[str | None, ...] | None, tuple[str | None, ...] | None]] = field(default_factory=list)
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
