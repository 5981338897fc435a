"""Results of ``dbmux verify`` (per table, per target, per run) (rendered as text by the CLI).

Exit codes: 0 when every target is caught up and equal; 1 when any target is not caught up with the
primary (halted, waiting for a GTID gap, or behind the primary's GTID position at the check), or any
table differs (or is missing where the target should hold it, or a table without primary key has the
wrong row count); 2 when a target or a table could not be read at all.
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
    NOT_ON_SHARD = "not on this shard"  # the shard map places the table (or all its rows) on other shards
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
        if self.status in (Status.NOT_VERIFIABLE, Status.NOT_ON_SHARD):
            return bool(self.note)  # a note is set when the counts disagree
        return self.status is not Status.EQUAL


@dataclass(slots=True)
class Replication:
    """Where the target's replication stood when it was compared (``dbmux_meta`` read inside the
    target's snapshot, against the primary's GTID position of the primary's snapshot)."""

    state: str  # a replicator.status state: running (caught up), behind, waiting for gap, halted, not started
    detail: str = ""
    applied: str = ""  # the target's last applied GTIDs
    primary: str = ""  # the primary's GTID position
    behind: int | None = 0  # transactions behind the primary; None: unknown

    @property
    def caught_up(self) -> bool:
        """Nothing the primary committed before the check is missing (a target that was never replicated
        -- no position stored -- is compared by content only)."""
        return self.state == "not started" or (self.state == "running" and self.behind == 0)


@dataclass(slots=True)
class TargetReport:
    name: str
    url: str  # redacted
    mode: str  # "full", "owned" (shard with predicate), "subset" (shard without)
    tables: list[TableResult] = field(default_factory=list)
    error: str = ""
    replication: Replication | None = None  # None: not checked (the target could not be read)

    @property
    def errored(self) -> bool:
        return bool(self.error) or any(t.status is Status.ERROR for t in self.tables)

    @property
    def lagging(self) -> bool:
        """Halted, waiting for a gap or behind the primary when verified: equal tables prove nothing."""
        return self.replication is not None and not self.replication.caught_up

    @property
    def different(self) -> bool:
        return any(t.failed for t in self.tables)

    @property
    def failed(self) -> bool:
        return self.errored or self.lagging or self.different


@dataclass(slots=True)
class VerifyReport:
    targets: list[TargetReport]

    @property
    def exit_code(self) -> int:
        """0: every target caught up and equal; 1: some target not caught up, or some difference; 2: some
        target or table could not be verified."""
        if any(t.errored for t in self.targets):
            return 2
        return 1 if any(t.failed for t in self.targets) else 0
