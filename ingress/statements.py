"""From a client's SQL to what the ingress forwards and captures: split, classify, rewrite.

``plan_query`` handles COM_QUERY text (one statement or a multi-statement batch);
``PreparedStatements`` tracks server-side prepared statements of one session (their SQL, parameter
count, long data) so COM_STMT_EXECUTE can be captured with its bound values.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import random
import re
from dataclasses import dataclass, field

from dbmux.ingress.classify import Classification, LexError, classify, scan, split_statements
from dbmux.ingress.literals import MIN_STATEMENT_CHARS, Elided, elide_literals
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.commands import ComStmtExecute, ComStmtSendLongData
from dbmux.ingress.protocol.framing import frame
from dbmux.ingress.rewrite import rewrite_deterministic

_rng = random.SystemRandom()

# The statement kinds a transaction capture records (see TransactionCapture.on_success); only their
# bound parameters are ever published, so only their COM_STMT_EXECUTE packets need decoding.
CAPTURED_KINDS = frozenset({"dml", "ddl", "unknown"})


@dataclass(frozen=True, slots=True)
class PlannedStatement:
    sql: str  # after rewriting
    kind: str
    tcl: str | None
    unsafe: bool
    implicit_commit: bool = False  # commits an open transaction before it runs (classify's answer)
    internal: bool = False  # the ingress's own (an injected COMMIT): its answer never reaches the client
    # what classify said (for ingress.statement_safety's judgement once it has run; of the skeleton, for a
    # statement planned with its long literals set aside)
    cls: Classification | None = field(default=None, compare=False, repr=False)

    @property
    def commits_first_as_own_transaction(self) -> bool:
        """It commits the open transaction implicitly *and* may be written to the binlog as a transaction
        of its own (DDL, account statements, GRANT, ...): its OK then reports only its own GTID, never the
        implicit commit's. (BEGIN, LOCK/UNLOCK TABLES and SET autocommit = 1 write nothing themselves:
        their OK reports the implicit commit's GTID.)"""
        return self.implicit_commit and self.kind in ("ddl", "unknown")


@dataclass(frozen=True, slots=True)
class QueryPlan:
    statements: tuple[PlannedStatement, ...]
    rewritten: str | None = None  # the text to forward, when it differs from the client's
    refusal: str | None = None  # an error message instead of forwarding
    internal: frozenset[int] = frozenset()  # indexes of the ingress's own statements (see with_commits)

    @property
    def has_writes(self) -> bool:
        """Some statement may write (its result-set terminators matter to capture, not only its OKs)."""
        return any(p.kind != "read" for p in self.statements)

    def statement(self, index: int) -> PlannedStatement:
        if index < len(self.statements):
            return self.statements[index]
        # The server reported more results than we split: capture the whole text as unknown (unsafe),
        # so appliers use the row form from the binlog.
        text = ";".join(s.sql for s in self.statements if not s.internal)
        return PlannedStatement(text, "unknown", None, True)


# The ingress's own commit before a statement that commits implicitly (see ``ingress.capture``). The
# explicit options override ``completion_type`` (an implicit commit never chains or disconnects).
COMMIT_SQL = "COMMIT AND NO CHAIN NO RELEASE"
COMMIT_FIRST = PlannedStatement(COMMIT_SQL, "tcl", "commit", False, internal=True)

_CLOSING = frozenset({"commit", "rollback", "begin", "lock_tables"})  # (UNLOCK TABLES and SET autocommit=1
# close it only in some states: counted as not closing, a later COMMIT is at worst one too many)
_RETURNING = re.compile(r"(?i)\breturning\b")


def returns_rows(sql: str, kind: str) -> bool:
    """A write answered with a result set (``INSERT/REPLACE/DELETE ... RETURNING``): its answer ends with
    an EOF (or an OK terminator) carrying no insert id, so the ids it generated are unknown to capture
    and the statement is applied from its row copy (flagged unsafe)."""
    if kind != "dml" or not _RETURNING.search(sql):
        return False
    try:
        return any(t.type == "word" and t.upper == "RETURNING" for t in scan(sql))
    except LexError:
        return True  # (the primary will refuse it anyway)


def _plan_one(sql: str, cls: Classification, now: _dt.datetime | None, time_zone: str | None) -> PlannedStatement:
    if cls.kind in CAPTURED_KINDS and cls.is_write:
        assert now is not None  # plan_query takes the instant before the first captured write
        rw = rewrite_deterministic(sql, now, time_zone, _rng)
        unsafe = rw.unsafe or returns_rows(sql, cls.kind)
        return PlannedStatement(rw.sql, cls.kind, cls.tcl, unsafe, cls.implicit_commit, cls=cls)
    return PlannedStatement(sql, cls.kind, cls.tcl, False, cls.implicit_commit, cls=cls)


def with_commits(plan: QueryPlan, open_writes: bool) -> QueryPlan:
    """``plan`` (a multi-statement batch) with the ingress's own COMMIT before each statement after the
    first that commits implicitly as a transaction of its own while writes may be open (``open_writes``:
    the session's transaction holds captured writes before the batch). The first statement is not
    covered: the relay commits before the command in a round trip of its own. Semantically the same
    (the statement commits the open transaction anyway), but the commit's OK reports its own GTID.

    Only where every statement before the insertion point answers with exactly one result, so the
    server's results still line up with the plan (CALL and EXECUTE, unknown, may answer with several).
    """
    statements = plan.statements
    if len(statements) < 2 or plan.refusal:
        return plan
    out: list[PlannedStatement] = []
    internal: list[int] = []
    writes = open_writes
    for i, p in enumerate(statements):
        if i and statements[i - 1].kind == "unknown":  # (may answer with several results: stop here)
            out.extend(statements[i:])
            break
        if i and writes and p.commits_first_as_own_transaction:
            internal.append(len(out))
            out.append(COMMIT_FIRST)
        if p.tcl in _CLOSING or p.commits_first_as_own_transaction:
            writes = False  # the transaction is closed (a DDL is a transaction of its own)
        elif p.kind in CAPTURED_KINDS:
            writes = True
        out.append(p)
    if not internal:
        return plan
    return QueryPlan(tuple(out), _batch_text(out), None, frozenset(internal))


def _batch_text(statements: list[PlannedStatement]) -> str:
    """The statements as one batch; each ``;`` on a line of its own (a piece may end in a ``--`` comment)."""
    return "\n;\n".join(p.sql for p in statements)


def plan_query(sql: str, *, time_zone: str | None, backslash_escapes: bool = True,
               now: _dt.datetime | None = None) -> QueryPlan:
    """How to forward and capture the text of one COM_QUERY (``now``: the instant its clock functions are
    pinned to, default the current time when a write needs it). A big statement's long literals are set
    aside while it is planned (:mod:`ingress.literals`): planning then costs what its code costs."""
    if len(sql) >= MIN_STATEMENT_CHARS:
        elided = elide_literals(sql, backslash_escapes)
        if elided is not None:
            return _restored(_plan_text(elided.skeleton, time_zone, backslash_escapes, now), elided)
    return _plan_text(sql, time_zone, backslash_escapes, now)


def _restored(plan: QueryPlan, elided: Elided) -> QueryPlan:
    """A skeleton's plan with the elided literals put back."""

    def restore(text: str) -> str:
        return elided.sql if text is elided.skeleton else elided.restore(text)

    statements = tuple(dataclasses.replace(p, sql=restore(p.sql)) for p in plan.statements)
    rewritten = None if plan.rewritten is None else restore(plan.rewritten)
    return QueryPlan(statements, rewritten, plan.refusal)


def _plan_text(sql: str, time_zone: str | None, backslash_escapes: bool,
               now: _dt.datetime | None = None) -> QueryPlan:
    # (now: the instant of the whole text, taken when a write needs it)
    parts = split_statements(sql, backslash_escapes) if ";" in sql else [sql]
    if not parts:
        parts = [sql]
    planned = []
    for part in parts:
        cls = classify(part)
        if cls.tcl == "xa":
            return QueryPlan((), refusal="dbmux: XA transactions are not supported through the ingress "
                                         "(their commit order cannot be published atomically)")
        if cls.kind == "read" and len(parts) == 1:  # (a plain read: nothing to rewrite or capture)
            return QueryPlan((PlannedStatement(part, "read", cls.tcl, False),))
        if now is None and cls.kind in CAPTURED_KINDS and cls.is_write:
            now = _dt.datetime.now(_dt.UTC)
        planned.append(_plan_one(part, cls, now, time_zone))
    rewritten = None
    if any(p.sql != orig for p, orig in zip(planned, parts, strict=True)):  # one planned per part
        rewritten = planned[0].sql if len(parts) == 1 else _batch_text(planned)
    return QueryPlan(tuple(planned), rewritten)


def _types_flag_at(num_params: int) -> int:
    """Where a COM_STMT_EXECUTE payload (without query attributes) has its new_params_bound_flag: after the
    command byte, statement id, flags, iteration count and NULL bitmap."""
    return 10 + (num_params + 7) // 8


def _with_types(payload: bytes, flag_at: int, types: bytes) -> bytes:
    """``payload`` (its new_params_bound_flag 0) binding ``types`` instead."""
    return payload[:flag_at] + b"\x01" + types + payload[flag_at + 1:]


def bound_types(payload: bytes, num_params: int) -> bytes | None:
    """The parameter types a COM_STMT_EXECUTE (without query attributes) binds, or None when it sends none
    (new_params_bound_flag 0: the previous ones stand)."""
    flag_at = _types_flag_at(num_params)
    if len(payload) > flag_at and payload[flag_at] == 1:
        return payload[flag_at + 1:flag_at + 1 + 2 * num_params]
    return None


def with_types_for_primary(raw: bytes, st: _Prepared) -> bytes:
    """A COM_STMT_EXECUTE (``raw``: one frame) as the primary must get it: with the statement's parameter types
    when the primary has not had them (an execute that bound them was answered by a replica or the cache)."""
    n = st.num_params
    if not n or len(raw) < 15:
        return raw
    flag_at = 4 + _types_flag_at(n)  # (in raw, past the frame header: no copy of the payload per execute)
    if len(raw) <= flag_at:
        return raw
    if raw[flag_at] == 1:
        st.primary_types = raw[flag_at + 1:flag_at + 1 + 2 * n]
        return raw
    if st.raw_types is None or st.primary_types == st.raw_types:
        return raw
    st.primary_types = st.raw_types
    return frame(_with_types(raw[4:], flag_at - 4, st.raw_types), 0)


def execute_values(payload: bytes, st: _Prepared, caps: int) -> tuple | None:
    """A COM_STMT_EXECUTE's parameter values, decoded (with the statement's last bound types when this one
    binds none; None when they are not known or do not decode)."""
    n = st.num_params
    flag_at = _types_flag_at(n)
    if not n or len(payload) <= flag_at:
        return None
    if payload[flag_at] != 1:
        if st.raw_types is None:
            return None
        payload = _with_types(payload, flag_at, st.raw_types)
    try:
        return ComStmtExecute.parse(payload, n, None, caps, {}).param_values
    except Exception:  # noqa: BLE001 - a malformed execute: the primary answers it; nothing is pinned
        return None


def bound_values(payload: bytes, num_params: int) -> bytes:
    """A COM_STMT_EXECUTE's NULL bitmap and parameter values (its types and flags left out)."""
    if not num_params:
        return b""
    flag_at = _types_flag_at(num_params)
    start = flag_at + 1 + (2 * num_params if len(payload) > flag_at and payload[flag_at] == 1 else 0)
    return payload[10:flag_at] + payload[start:]


@dataclass
class _Prepared:
    sql: str
    num_params: int
    plan: QueryPlan
    types: tuple | None = None
    long_data: dict[int, bytearray] = field(default_factory=dict)  # COM_STMT_SEND_LONG_DATA since the last execute
    sent_long_data: bool = False  # some COM_STMT_SEND_LONG_DATA since the last execute (any statement)
    raw_types: bytes | None = None  # the parameter types its last execute that bound them sent (2 bytes each)
    primary_types: bytes | None = None  # the types the primary last got (an execute answered elsewhere -- by
    # a replica or the result cache -- may have carried newer ones: the next one to the primary carries them)

    captured: bool = field(init=False)  # whether executions can be captured (else parameters are never looked at)

    def __post_init__(self) -> None:
        self.captured = self.plan.statements[0].kind in CAPTURED_KINDS


class PreparedStatements:
    """Server-side prepared statements of one session, keyed by the primary's statement id."""

    def __init__(self) -> None:
        self._by_id: dict[int, _Prepared] = {}
        self._pending_sql: str | None = None

    def clear(self) -> None:
        self._by_id.clear()

    def get(self, stmt_id: int) -> _Prepared | None:
        return self._by_id.get(stmt_id)

    def sent_long_data(self, execute_payload: bytes) -> bool:
        """The statement an execute names got long data since its last execute."""
        st = self._by_id.get(ComStmtExecute.peek_stmt_id(execute_payload))
        return st is not None and st.sent_long_data

    def on_prepared(self, prepare_payload: bytes, reader) -> None:
        ok = reader.prepare_ok
        sql = prepare_payload[1:].decode("utf-8", "surrogateescape")
        elided = elide_literals(sql) if len(sql) >= MIN_STATEMENT_CHARS else None
        code = sql if elided is None else elided.skeleton  # what decides the flags below
        cls = classify(code)
        # Non-deterministic functions cannot be rewritten once per execution of a prepared
        # statement: such statements are flagged unsafe (appliers use the binlog row form).
        rw = rewrite_deterministic(code, _dt.datetime.now(_dt.UTC), None, _rng) if cls.is_write else None
        unsafe = bool(rw and (rw.changed or rw.unsafe)) or returns_rows(code, cls.kind)
        plan = QueryPlan((PlannedStatement(sql, cls.kind, cls.tcl, unsafe, cls.implicit_commit, cls=cls),))
        self._by_id[ok.statement_id] = _Prepared(sql, ok.num_params, plan)

    def on_reset(self, payload: bytes) -> None:
        """COM_STMT_RESET: the server forgets the statement's long data."""
        st = self._by_id.get(int.from_bytes(payload[1:5], "little"))
        if st is not None:
            st.long_data = {}
            st.sent_long_data = False

    def on_no_response_command(self, payload: bytes, caps: int) -> None:
        """COM_STMT_CLOSE, or COM_STMT_SEND_LONG_DATA: a chunk of a parameter's value (kept for the
        next execute of a captured statement, where that parameter's value is left out)."""
        if payload[0] == c.COM_STMT_CLOSE:
            self._by_id.pop(int.from_bytes(payload[1:5], "little"), None)
        elif payload[0] == c.COM_STMT_SEND_LONG_DATA:
            ld = ComStmtSendLongData.parse(payload, caps)
            st = self._by_id.get(ld.stmt_id)
            if st is not None:
                st.sent_long_data = True
            if st is not None and st.captured:
                st.long_data.setdefault(ld.param_id, bytearray()).extend(ld.data)

    def on_execute(self, payload: bytes, caps: int) -> tuple[str, tuple | None, QueryPlan | None]:
        """(sql, bound values, plan) of an execution; the values are decoded only for statements
        whose executions are captured (None for the others)."""
        stmt_id = ComStmtExecute.peek_stmt_id(payload)
        st = self._by_id.get(stmt_id)
        if st is None:  # unknown id: the primary will answer with an error
            return "", None, None
        st.sent_long_data = False
        if st.num_params:
            types = bound_types(payload, st.num_params)
            if types is not None:
                st.raw_types = types
        if not st.captured:
            return st.sql, None, st.plan
        long_data, st.long_data = st.long_data, {}  # the server forgets it with this execute, whatever its outcome
        ex = ComStmtExecute.parse(payload, st.num_params, st.types, caps, long_data)
        if ex.new_params_bound:
            st.types = ex.param_types
        return st.sql, ex.param_values, st.plan

