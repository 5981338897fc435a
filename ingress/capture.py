"""Per-session transaction capture: which statements form the transaction the primary committed.

Contract: **one event per GTID, and an event holds exactly that GTID's statements** -- never two
primary transactions merged, never a statement of another. Where the ingress cannot be sure, it
publishes nothing for that GTID: the binlog reader publishes every GTID (row form), so a missing
ingress copy costs latency, never data, while a wrong one would be applied (twice, or instead).

How a commit is seen. The primary reports the session's last GTID (MariaDB tracks ``last_gtid``,
MySQL 8 ``SESSION_TRACK_GTIDS``) with the session state of the next OK packet it sends -- the
*last* GTID only, and only in an OK: an ERR carries no session state, nor does the EOF packet that
ends a result set for a client without CLIENT_DEPRECATE_EOF (it only flags SERVER_SESSION_STATE_CHANGED).
MariaDB then never reports that GTID (checked: the next OK does not carry it); MySQL may report it
with a later OK, as if that statement's (``late_reports``).
Statements are buffered while they run; a newly reported GTID turns the buffer into one
:class:`Commit`; ROLLBACK (and ROLLBACK TO SAVEPOINT) discards what it undoes; a statement that
changes nothing produces no GTID and so nothing is published. Failed statements are never buffered.

Implicit commits. A statement that commits the open transaction implicitly and is then written to the
binlog as a transaction of its own (DDL, account statements, GRANT, OPTIMIZE, ...: see
``PlannedStatement.commits_first_as_own_transaction``) makes two GTIDs, and its OK reports only the
second. ``GTID - 1`` is not the first (other sessions commit in between). So the relay commits first:
before forwarding such a statement while writes are buffered
(:meth:`TransactionCapture.needs_commit_before`) it sends ``COMMIT AND NO CHAIN NO RELEASE`` itself --
a round trip of its own before the command, or, inside a multi-statement batch, a COMMIT injected
before the statement, whose answer the client never sees (``statements.with_commits``). That OK
reports the open transaction's GTID; the statement then runs with nothing open and its OK reports its
own. It is what the server does anyway (the statement commits first; if that commit fails, the
statement fails with the commit's error, which the client then gets). One difference remains: a
statement the server rejects *before* its implicit commit (a syntax error, ``read_only``) now leaves
the transaction committed instead of open.
Statements that commit implicitly but write nothing themselves (BEGIN, START TRANSACTION, LOCK TABLES,
UNLOCK TABLES, SET autocommit = 1) need no help: their OK reports the implicit commit's GTID.

Attribution, checked for every newly reported GTID G (:meth:`TransactionCapture.on_success`):

* COMMIT (the client's or the ingress's), BEGIN, LOCK/UNLOCK TABLES, SET autocommit = 1: G is the open
  transaction's -- ``Commit(G, buffered)``;
* a statement that committing implicitly is a transaction of its own, with nothing buffered before it:
  ``Commit(G, [it])``;
* any other statement that ran with no transaction open and left none open (autocommit):
  ``Commit(G, [it])``.

Everything else is *unattributed* (``Commit.unattributed`` says why; the session does not publish it):
G reported in the middle of a transaction (a non-transactional table's change is binlogged at once),
a transaction ended by a statement not known to end it, writes buffered before a statement that
committed them implicitly without the ingress committing first, a ROLLBACK reporting a GTID, with
``late_reports`` the first G reported after a statement ended without reporting its session state (an
ERR of a statement that may write, an EOF flagging a change: G may be that earlier commit), GTID sets
naming several
transactions, and commits with no captured statement (a read calling a writing function). A
transaction in whose middle an unattributed GTID was reported stays unattributed until it ends.

Writes answered with a result set (``INSERT/DELETE/REPLACE ... RETURNING``) are captured when the
result set ends (EOF, or the OK terminator under CLIENT_DEPRECATE_EOF); they are flagged unsafe by the
planner (the terminator carries no insert id), and the session's LAST_INSERT_ID() is unknown after one
(statements that read it are flagged unsafe until an OK reports an id again).

This module is pure (no I/O): the session feeds it statement outcomes and publishes what it returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dbmux.core.events import Statement
from dbmux.core.passwords import redact_secrets
from dbmux.ingress.protocol.constants import SERVER_SESSION_STATE_CHANGED, SERVER_STATUS_IN_TRANS

_SAVEPOINT_NAME = re.compile(r"(?is)^\s*(?:rollback\s+(?:work\s+)?to\s+(?:savepoint\s+)?|savepoint\s+|"
                             r"release\s+savepoint\s+)`?([^`\s;]+)`?")
_LAST_INSERT_ID = re.compile(r"(?i)\blast_insert_id\b")

_TXN_ROLLBACK_ERRORS = frozenset({1213})  # ER_LOCK_DEADLOCK: the whole transaction was rolled back
_CAPTURED_KINDS = frozenset({"dml", "ddl", "unknown"})
_OWN_TRANSACTION_KINDS = frozenset({"ddl", "unknown"})
# Statements that end the open transaction without writing anything themselves (with implicit_commit
# also SET autocommit = 1, kind 'session'); COMMIT is 'commit'.
_CLOSING_TCL = frozenset({"commit", "begin", "lock_tables", "unlock_tables"})


def savepoint_name(sql: str) -> str | None:
    m = _SAVEPOINT_NAME.match(sql)
    return m.group(1).lower() if m else None


def names_one_transaction(gtid: str) -> bool:
    """``gtid`` as reported names exactly one transaction (MySQL's ``uuid:7``, MariaDB's ``0-1-7``),
    not a set (``uuid:5-7``, ``uuid:5,uuid2:1``)."""
    if "," in gtid:
        return False
    _, colon, tail = gtid.rpartition(":")
    return not colon or tail.isdigit()


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
    charset: str | None = None  # the session's character_set_client it was sent in (sql: its bytes as
    # UTF-8 with surrogateescape, as the ingress holds them; dbmux.core.charsets)
    implicit_commit: bool = False  # it commits an open transaction first (classification)
    reports_state: bool = True  # it ended with an OK packet (False: an EOF packet, which carries no session state)
    rows: bool = False  # it was answered with a result set (whose end carries no insert id)


@dataclass(frozen=True, slots=True)
class Commit:
    """A transaction the primary committed, as GTID ``gtid``. ``unattributed`` (None when the statements
    are exactly that transaction's) says why the ingress cannot vouch for its content: such a commit is
    not published (its ``statements`` are empty)."""

    gtid: str
    statements: tuple[Statement, ...]
    db: str | None
    unattributed: str | None = None


@dataclass
class TransactionCapture:
    last_gtid: str | None = None
    late_reports: bool = True  # a change not reported with its statement may come with a later OK (MySQL)
    session_last_insert_id: int | None = 0  # None: unknown (after a RETURNING insert)
    pending: list[Statement] = field(default_factory=list)
    _savepoints: list[tuple[str, int]] = field(default_factory=list)
    _txn_db: str | None = None
    _in_trans: bool = False  # the last answer's SERVER_STATUS_IN_TRANS
    _unreported: bool = False  # a writing statement ended without session state: a commit may be unreported
    _tainted: str | None = None  # why the open transaction cannot be attributed

    def needs_commit_before(self, kind: str, implicit_commit: bool) -> bool:
        """Whether the session must commit (itself) before forwarding a statement of ``kind`` that
        commits implicitly: it is a transaction of its own and writes are buffered (module docstring)."""
        return implicit_commit and kind in _OWN_TRANSACTION_KINDS and bool(self.pending)

    def on_success(self, out: StatementOutcome) -> Commit | None:
        """Record a successful statement; return the transaction it committed, if any."""
        was_open = self._in_trans or bool(self.pending)
        unreported = self._unreported
        if out.reports_state:
            self._unreported = False  # (an OK reports what changed since the last one)
        closing = out.tcl in _CLOSING_TCL or (out.kind == "session" and out.implicit_commit)
        own = out.implicit_commit and out.kind in _OWN_TRANSACTION_KINDS
        reason: str | None = None
        if own and self.pending:
            reason = "writes were buffered before a statement that committed them implicitly"
            self._reset()
        if out.tcl == "rollback":
            self._reset()
        elif out.tcl in ("savepoint", "rollback_to_savepoint", "release_savepoint"):
            self._savepoint(out)
        elif out.kind in _CAPTURED_KINDS:
            self._buffer(out)
        if out.rows and out.kind == "dml":
            self.session_last_insert_id = None  # ids it generated are not reported with a result set
        elif out.last_insert_id:
            self.session_last_insert_id = out.last_insert_id
        in_trans = bool(out.status_flags & SERVER_STATUS_IN_TRANS)
        if (self.late_reports and not out.reports_state and out.status_flags & SERVER_SESSION_STATE_CHANGED
                and not (in_trans and out.kind in _CAPTURED_KINDS and self.pending[-1].unsafe)):
            # An EOF saying the session state changed (a commit, say) without the change: the GTID may
            # come with a later OK, as if that statement's. (Not
            # needed for an unsafe write buffered in the open transaction: its event is applied from the
            # row copy, whatever it holds.)
            self._unreported = True
        self._in_trans = in_trans

        gtid = out.gtid
        if gtid is None or gtid == self.last_gtid:
            if closing or own or not (in_trans or out.tcl == "begin"):
                self._reset()  # ended; with no new GTID it wrote nothing to the binlog
            return None
        self.last_gtid = gtid
        if reason is None:
            reason = self._unattributed(out, gtid, was_open, in_trans, closing, own, unreported)
        if reason is not None:
            commit = Commit(gtid, (), self._txn_db, reason)
            if in_trans and not closing and not own:
                self._tainted = self._tainted or reason  # the open transaction goes on: uncertain
            else:
                self._reset()
            return commit
        commit = Commit(gtid, tuple(self.pending), self._txn_db)
        self._reset()
        return commit

    def on_error(self, errno: int, may_write: bool = True) -> None:
        """A statement failed: only its own effects are undone, except where the server rolls back
        the whole transaction (deadlock), which discards what was buffered. A writing statement that
        failed may still have committed (a non-transactional table, a DDL dropping some of its tables),
        and an ERR reports no GTID: the next GTID reported cannot be attributed."""
        if may_write and self.late_reports:
            self._unreported = True
        if errno in _TXN_ROLLBACK_ERRORS:
            self._reset()
            self._in_trans = False

    # ---- helpers -------------------------------------------------------------------------------------
    def _unattributed(self, out: StatementOutcome, gtid: str, was_open: bool, in_trans: bool, closing: bool,
                      own: bool, unreported: bool) -> str | None:
        """Why the newly reported ``gtid`` cannot be attributed to what is buffered (None: it can)."""
        if not names_one_transaction(gtid):
            return "the reported GTIDs name several transactions"
        if unreported:
            return "an earlier statement ended without reporting session state (it may have committed)"
        if self._tainted is not None:
            return self._tainted
        if out.tcl == "rollback":
            return "reported by a ROLLBACK"
        if not (closing or own) and (was_open or in_trans):
            return "reported inside a transaction by a statement that does not end it"
        if not self.pending:
            return "no captured statement"
        return None

    def _buffer(self, out: StatementOutcome) -> None:
        if not self.pending:
            self._txn_db = out.db
        red = redact_secrets(out.sql)  # the event never carries a clear-text password
        last_id = self.session_last_insert_id
        unknown_last_id = last_id is None and bool(_LAST_INSERT_ID.search(out.sql))
        self.pending.append(Statement.from_escaped(  # byte-exact, in its character set
            red.sql, out.charset, params=out.params,
            insert_id=out.last_insert_id if out.kind == "dml" else 0,
            last_insert_id=last_id or 0,
            unsafe=out.unsafe or red.unsafe or out.kind == "unknown" or unknown_last_id,
            kind="ddl" if out.kind == "ddl" else ("dml" if out.kind == "dml" else "other"),
        ))

    def _savepoint(self, out: StatementOutcome) -> None:
        name = savepoint_name(out.sql)
        if out.tcl == "savepoint":
            if name:
                self._savepoints = [(n, i) for n, i in self._savepoints if n != name]
                self._savepoints.append((name, len(self.pending)))
        elif out.tcl == "rollback_to_savepoint":
            for idx, (n, size) in enumerate(self._savepoints):
                if n == name:
                    del self.pending[size:]
                    del self._savepoints[idx + 1:]
                    break
        else:
            self._savepoints = [(n, i) for n, i in self._savepoints if n != name]

    def _reset(self) -> None:
        self.pending.clear()
        self._savepoints.clear()
        self._txn_db = None
        self._tainted = None
