"""Per-session transaction capture: which statements form the transaction the primary committed.

The primary is the authority: a transaction was committed exactly when the primary reports a new
GTID for the session (MariaDB tracks ``last_gtid``, MySQL 8 ``SESSION_TRACK_GTIDS``) in the OK
packet of a statement. Statements are buffered while they run; a new GTID turns the buffer into one
:class:`Commit`; ROLLBACK (and ROLLBACK TO SAVEPOINT) discards what it undoes; a statement that
changes nothing produces no GTID and so nothing is published. Failed statements are never buffered.

This module is pure (no I/O): the session feeds it statement outcomes and publishes what it returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dbmux.core.events import Statement
from dbmux.core.passwords import redact_secrets
from dbmux.ingress.protocol.constants import SERVER_STATUS_IN_TRANS

_SAVEPOINT_NAME = re.compile(r"(?is)^\s*(?:rollback\s+(?:work\s+)?to\s+(?:savepoint\s+)?|savepoint\s+|"
                             r"release\s+savepoint\s+)`?([^`\s;]+)`?")


_TXN_ROLLBACK_ERRORS = frozenset({1213})  # ER_LOCK_DEADLOCK: the whole transaction was rolled back


def savepoint_name(sql: str) -> str | None:
    m = _SAVEPOINT_NAME.match(sql)
    return m.group(1).lower() if m else None


@dataclass(frozen=True, slots=True)
class StatementOutcome:
    """What one successful statement did, as the session saw it."""

    sql: str
    kind: str  # classification kind: read, dml, ddl, tcl, session, unknown
    tcl: str | None  # begin, commit, rollback, savepoint, rollback_to_savepoint, release_savepoint, ...
    unsafe: bool
    status_flags: int
    last_insert_id: int  # from the OK packet
    gtid: str | None  # the session's last GTID as reported with this OK (None: not reported)
    params: tuple | None = None
    db: str | None = None


@dataclass(frozen=True, slots=True)
class Commit:
    gtid: str
    statements: tuple[Statement, ...]
    db: str | None


@dataclass
class TransactionCapture:
    last_gtid: str | None = None
    session_last_insert_id: int = 0
    pending: list[Statement] = field(default_factory=list)
    _savepoints: list[tuple[str, int]] = field(default_factory=list)
    _txn_db: str | None = None

    def on_success(self, out: StatementOutcome) -> Commit | None:
        """Record a successful statement; return the transaction it committed, if any."""
        if out.tcl == "rollback":
            self._reset()
        elif out.tcl == "savepoint":
            name = savepoint_name(out.sql)
            if name:
                self._savepoints = [(n, i) for n, i in self._savepoints if n != name]
                self._savepoints.append((name, len(self.pending)))
        elif out.tcl == "rollback_to_savepoint":
            name = savepoint_name(out.sql)
            for idx, (n, size) in enumerate(self._savepoints):
                if n == name:
                    del self.pending[size:]
                    del self._savepoints[idx + 1:]
                    break
        elif out.tcl == "release_savepoint":
            name = savepoint_name(out.sql)
            self._savepoints = [(n, i) for n, i in self._savepoints if n != name]
        elif out.kind in ("dml", "ddl", "unknown"):
            if not self.pending:
                self._txn_db = out.db
            red = redact_secrets(out.sql)  # the event never carries a clear-text password
            self.pending.append(Statement(
                sql=red.sql, params=out.params,
                insert_id=out.last_insert_id if out.kind == "dml" else 0,
                last_insert_id=self.session_last_insert_id,
                unsafe=out.unsafe or red.unsafe or out.kind == "unknown",
                kind="ddl" if out.kind == "ddl" else ("dml" if out.kind == "dml" else "other"),
            ))
        if out.last_insert_id:
            self.session_last_insert_id = out.last_insert_id

        if out.gtid is not None and out.gtid != self.last_gtid:
            self.last_gtid = out.gtid
            commit = Commit(out.gtid, tuple(self.pending), self._txn_db)
            self._reset()
            return commit
        if not out.status_flags & SERVER_STATUS_IN_TRANS and out.tcl != "begin":
            # Outside a transaction and no new GTID: the statement wrote nothing to the binlog.
            self._reset()
        return None

    def on_error(self, errno: int) -> None:
        """A statement failed: only its own effects are undone, except where the server rolls back
        the whole transaction (deadlock), which discards what was buffered."""
        if errno in _TXN_ROLLBACK_ERRORS:
            self._reset()

    def _reset(self) -> None:
        self.pending.clear()
        self._savepoints.clear()
        self._txn_db = None
