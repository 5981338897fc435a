"""Replicator errors: transient ones are retried (``retriable``), permanent ones follow the policy.

Every error the replicator package raises on purpose derives from :class:`ReplicatorError`."""

from __future__ import annotations

from dbmux.core.errors import DbmuxError


class ReplicatorError(DbmuxError):
    """Root of the replicator's errors (apply, backfill, verify, reshard, translation)."""


class ApplyError(ReplicatorError):
    """Applying an event failed. Carries what an operator needs to find it."""

    def __init__(self, message: str, *, gtid: str = "", offset: int = -1, table: str = "",
                 errno: int | None = None, retriable: bool = False) -> None:
        self.gtid, self.offset, self.table, self.errno = gtid, offset, table, errno
        self.retriable = retriable
        where = f"gtid {gtid}" + (f" offset {offset}" if offset >= 0 else "") + (f" table {table}" if table else "")
        super().__init__(f"{where}: {message}" if gtid else message)


class TargetHalted(ReplicatorError):
    """The target stopped on a permanent error (policy ``halt``)."""


class BackfillError(ReplicatorError):
    """A backfill cannot run or continue as asked; the message says what to do."""
