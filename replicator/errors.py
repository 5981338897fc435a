"""Replicator errors: transient ones are retried (``retriable``), permanent ones follow the policy.

Every error the replicator package raises on purpose derives from :class:`ReplicatorError`. Their
messages end up in logs, halt messages, ``dbmux status`` and the dead-letter topic's headers, and
often quote a statement: they never show a password (:func:`dbmux.core.passwords.redact_text`)."""

from __future__ import annotations

from dbmux.core.errors import DbmuxError
from dbmux.core.passwords import redact_text


class ReplicatorError(DbmuxError):
    """Root of the replicator's errors (apply, backfill, verify, reshard, translation)."""

    def __str__(self) -> str:
        return redact_text(super().__str__())


class ApplyError(ReplicatorError):
    """Applying an event failed. Carries what an operator needs to find it. ``sql``: the statement the
    message is about, when it quotes (part of) it or the server's echo of it; passwords found in it are
    removed from the message wherever they appear."""

    def __init__(self, message: str, *, gtid: str = "", offset: int = -1, table: str = "",
                 errno: int | None = None, retriable: bool = False, sql: str = "") -> None:
        self.gtid, self.offset, self.table, self.errno = gtid, offset, table, errno
        self.retriable = retriable
        where = f"gtid {gtid}" + (f" offset {offset}" if offset >= 0 else "") + (f" table {table}" if table else "")
        super().__init__(redact_text(f"{where}: {message}" if gtid else message, sql))


class TargetLocked(ApplyError):
    """Another replicator (or a backfill) holds the target's lock: a replicator stands by for it."""


class TargetHalted(ReplicatorError):
    """The target stopped on a permanent error (policy ``halt``)."""


class BackfillError(ReplicatorError):
    """A backfill cannot run or continue as asked; the message says what to do."""
