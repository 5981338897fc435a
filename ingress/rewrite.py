"""Determinism rewriting: make a write compute the same values on the primary and every target.

:func:`rewrite_deterministic` replaces calls of time, UUID and random functions in a DML statement with
literals *at their token positions in the original text* (found with :func:`ingress.classify.scan`,
which knows MySQL strings, comments and executable comments), so the rest of the statement keeps its
exact text. Reads, DDL, TCL and session statements are never rewritten.

Literal formats (chosen so MySQL stores exactly the value the function would have returned and so
sqlglot can transpile them, e.g. ``DATETIME(6)`` -> PostgreSQL ``TIMESTAMP(6)``):

=================================================  ===============================================
function                                           literal
=================================================  ===============================================
NOW, CURRENT_TIMESTAMP, LOCALTIME, LOCALTIMESTAMP,  ``CAST('2024-01-02 03:04:05' AS DATETIME)``;
SYSDATE (session time zone); UTC_TIMESTAMP (UTC)   with fsp p: ``CAST('...05.123' AS DATETIME(3))``
CURDATE, CURRENT_DATE; UTC_DATE                    ``CAST('2024-01-02' AS DATE)``
CURTIME, CURRENT_TIME; UTC_TIME                    ``CAST('03:04:05' AS TIME)`` / ``TIME(p)``
UNIX_TIMESTAMP() (no argument)                     ``1704164645`` (integer seconds)
UUID()                                             ``'6ccd780c-baba-1026-9564-5b8c656024db'``
                                                   (version-1 layout, like MySQL's)
UUID_SHORT()                                       unsigned integer literal
RAND() (no seed)                                   ``1.2345678901234567e-01`` (exponent form: MySQL
                                                   reads it as DOUBLE, like RAND(); a plain
                                                   ``0.123`` would be DECIMAL)
=================================================  ===============================================

Fractional seconds are truncated to the requested precision (``NOW()`` has none, ``NOW(6)`` six
digits). Every time function of one statement uses the single ``now`` passed in, as MySQL does
within a statement (SYSDATE too, deliberately). Each ``UUID()``/``UUID_SHORT()``/``RAND()`` occurrence
gets its own value.

Per-row functions (``RAND``, ``UUID``, ``UUID_SHORT``) are only rewritten where MySQL evaluates them
once per occurrence: inside an INSERT/REPLACE ``VALUES`` list or ``INSERT ... SET``. Elsewhere
(``UPDATE t SET c = UUID()``, WHERE, INSERT ... SELECT) a literal would give every row the same value,
so they stay and the statement is unsafe.

Local-time functions need the session time zone: an offset (``'+02:00'``) or a zone name resolved
with :mod:`zoneinfo`. ``'SYSTEM'`` (pass the server's resolved zone instead), ``None`` or an unknown
name leave the functions in place and mark the statement unsafe; an ambiguous local time (DST
fall-back) is rewritten but marked unsafe.

The statement is ``unsafe`` (targets should apply the row form) when, after rewriting, it has:
LIMIT without ORDER BY (UPDATE/DELETE/SELECT parts of a write); user (``@x``) or system (``@@x``)
variables; a function that cannot be made deterministic (FOUND_ROWS, ROW_COUNT, CONNECTION_ID, USER
..., VERSION, SLEEP, GET_LOCK, LOAD_FILE, NEXTVAL ...); or a function not on the deterministic
allow-list (stored functions included). Functions are found from sqlglot's AST (``exp.Anonymous``
names) when it parses the statement, otherwise from tokens (a word followed by ``(``).

Also unsafe, the rest of MySQL's "unsafe for statement-based replication" list that the text alone
shows (:func:`unsafe_forms`): ``INSERT IGNORE ... SELECT``, ``INSERT ... SELECT ... ON DUPLICATE KEY
UPDATE``, ``REPLACE ... SELECT``, ``CREATE TABLE ... IGNORE|REPLACE SELECT`` and ``UPDATE IGNORE``
(which rows win depends on the order rows are visited); a LIMIT inside a subquery or an INSERT's
SELECT, even with ORDER BY (ties); ``LOAD DATA`` (reads a file on the primary's host);
``information_schema``/``performance_schema``/``sys`` read by a write (each server's own state);
``MATCH ... AGAINST`` (full-text relevance depends on each server's index). What needs the schema
(triggers, implicit column values, several unique keys, ORDER BY on a non-unique key) is judged
when the statement completes, by :mod:`ingress.statement_safety`.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbmux.core.digests import DigestCache, digest
from dbmux.ingress.classify import Classification, LexError, Token, classify, effective_sql, lexed, scan

__all__ = ["RewriteResult", "rewrite_deterministic", "unsafe_forms", "DETERMINISTIC_FUNCTIONS", "UNSAFE_FUNCTIONS"]


class _Rng(Protocol):
    def random(self) -> float: ...

    def getrandbits(self, k: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class RewriteResult:
    sql: str
    changed: bool
    unsafe: bool
    reasons: tuple[str, ...] = ()


# name -> (value kind, zone: 'local'|'utc'|None, bare keyword form allowed, takes fsp)
_TIME_FUNCS: dict[str, tuple[str, str, bool, bool]] = {
    "NOW": ("datetime", "local", False, True),
    "CURRENT_TIMESTAMP": ("datetime", "local", True, True),
    "LOCALTIME": ("datetime", "local", True, True),
    "LOCALTIMESTAMP": ("datetime", "local", True, True),
    "SYSDATE": ("datetime", "local", False, True),
    "UTC_TIMESTAMP": ("datetime", "utc", True, True),
    "CURDATE": ("date", "local", False, False),
    "CURRENT_DATE": ("date", "local", True, False),
    "UTC_DATE": ("date", "utc", True, False),
    "CURTIME": ("time", "local", False, True),
    "CURRENT_TIME": ("time", "local", True, True),
    "UTC_TIME": ("time", "utc", True, True),
    "UNIX_TIMESTAMP": ("unix", "utc", False, False),
}
_PER_ROW_FUNCS = {"UUID", "UUID_SHORT", "RAND"}

UNSAFE_FUNCTIONS: dict[str, str] = {
    name: "cannot be made deterministic"
    for name in (
        "FOUND_ROWS", "ROW_COUNT", "CONNECTION_ID", "USER", "CURRENT_USER", "SESSION_USER", "SYSTEM_USER",
        "CURRENT_ROLE", "VERSION", "SLEEP", "BENCHMARK", "GET_LOCK", "RELEASE_LOCK", "RELEASE_ALL_LOCKS",
        "IS_FREE_LOCK", "IS_USED_LOCK", "LOAD_FILE", "NEXTVAL", "LASTVAL", "SETVAL", "MASTER_POS_WAIT",
        "SOURCE_POS_WAIT", "MASTER_GTID_WAIT", "WAIT_FOR_EXECUTED_GTID_SET", "RANDOM_BYTES", "UUID",
        "UUID_SHORT", "RAND", "SYS_GUID", "ICU_VERSION", "PS_CURRENT_THREAD_ID", "PS_THREAD_ID",
        "STATEMENT_DIGEST", "STATEMENT_DIGEST_TEXT", "SEQUENCE_NEXTVAL",
    )
} | {name: "not rewritten (time zone unresolved or unsupported argument)" for name in _TIME_FUNCS}

DETERMINISTIC_FUNCTIONS = frozenset(
    """
    ABS ACOS ADDDATE ADDTIME AES_DECRYPT AES_ENCRYPT ANY_VALUE ASCII ASIN ATAN ATAN2 AVG BIN BIN_TO_UUID
    BIT_AND BIT_COUNT BIT_LENGTH BIT_OR BIT_XOR CAST CEIL CEILING CHAR CHAR_LENGTH CHARACTER_LENGTH CHARSET
    COALESCE COERCIBILITY COLLATION COMPRESS CONCAT CONCAT_WS CONV CONVERT CONVERT_TZ COS COT COUNT CRC32
    DATABASE DATE DATE_ADD DATE_FORMAT DATE_SUB DATEDIFF DAY DAYNAME DAYOFMONTH DAYOFWEEK DAYOFYEAR DEGREES
    ELT EXP EXPORT_SET EXTRACT EXTRACTVALUE FIELD FIND_IN_SET FLOOR FORMAT FORMAT_BYTES FORMAT_PICO_TIME
    FROM_BASE64 FROM_DAYS FROM_UNIXTIME GET_FORMAT GREATEST GROUP_CONCAT GTID_SUBSET GTID_SUBTRACT HEX HOUR
    IF IFNULL INET_ATON INET_NTOA INET6_ATON INET6_NTOA INSERT INSTR INTERVAL IS_IPV4 IS_IPV4_COMPAT
    IS_IPV4_MAPPED IS_IPV6 IS_UUID ISNULL JSON_ARRAY JSON_ARRAY_APPEND JSON_ARRAY_INSERT JSON_ARRAYAGG
    JSON_CONTAINS JSON_CONTAINS_PATH JSON_DEPTH JSON_EXTRACT JSON_INSERT JSON_KEYS JSON_LENGTH JSON_MERGE
    JSON_MERGE_PATCH JSON_MERGE_PRESERVE JSON_OBJECT JSON_OBJECTAGG JSON_OVERLAPS JSON_PRETTY JSON_QUOTE
    JSON_REMOVE JSON_REPLACE JSON_SCHEMA_VALID JSON_SEARCH JSON_SET JSON_STORAGE_FREE JSON_STORAGE_SIZE
    JSON_TABLE JSON_TYPE JSON_UNQUOTE JSON_VALID JSON_VALUE LAST_DAY LAST_INSERT_ID LCASE LEAST LEFT LENGTH
    LN LOCATE LOG LOG10 LOG2 LOWER LPAD LTRIM MAKE_SET MAKEDATE MAKETIME MAX MD5 MEMBER MICROSECOND MID MIN
    MINUTE MOD MONTH MONTHNAME NAME_CONST NULLIF OCT OCTET_LENGTH ORD PERIOD_ADD PERIOD_DIFF PI POSITION POW
    POWER QUARTER QUOTE RADIANS REGEXP_INSTR REGEXP_LIKE REGEXP_REPLACE REGEXP_SUBSTR RELEASE REPEAT
    REPLACE REVERSE RIGHT ROUND RPAD RTRIM SCHEMA SEC_TO_TIME SECOND SHA SHA1 SHA2 SIGN SIN SOUNDEX SPACE
    SQRT STD STDDEV STDDEV_POP STDDEV_SAMP STR_TO_DATE STRCMP SUBDATE SUBSTR SUBSTRING SUBSTRING_INDEX
    SUBTIME SUM TAN TIME TIME_FORMAT TIME_TO_SEC TIMEDIFF TIMESTAMP TIMESTAMPADD TIMESTAMPDIFF TO_BASE64
    TO_DAYS TO_SECONDS TRIM TRUNCATE UCASE UNCOMPRESS UNCOMPRESSED_LENGTH UNHEX UNIX_TIMESTAMP UPPER
    UUID_TO_BIN VALIDATE_PASSWORD_STRENGTH VALUES VAR_POP VAR_SAMP VARIANCE WEEK WEEKDAY WEEKOFYEAR
    WEIGHT_STRING YEAR YEARWEEK ST_ASTEXT ST_GEOMFROMTEXT ST_DISTANCE POINT ROW NVL NVL2 DECODE ENCODE
    JSON_OBJECT_FILTER_KEYS CHR NATURAL_SORT_KEY SFORMAT KDF
    """.split()
)
# Words that are followed by "(" without being function calls (token fallback only).
_NOT_FUNCTIONS = frozenset(
    """
    VALUES VALUE IN AS ON USING EXISTS AND OR NOT XOR INTO TABLE FROM JOIN UPDATE INSERT REPLACE IGNORE
    WHERE SET SELECT PARTITION KEY INDEX PRIMARY UNIQUE FOREIGN REFERENCES CHECK DEFAULT ALL ANY SOME
    WHEN THEN ELSE CASE LIMIT BY OVER WINDOW WITH RECURSIVE LATERAL DELAYED LOW_PRIORITY HIGH_PRIORITY
    QUICK DELETE LIKE REGEXP RLIKE BETWEEN IS DISTINCT UNION EXCEPT INTERSECT DUPLICATE AGAINST MATCH
    DECIMAL DEC NUMERIC FLOAT DOUBLE REAL INT INTEGER SIGNED UNSIGNED CHAR NCHAR VARCHAR BINARY VARBINARY
    DATETIME DATE TIME TIMESTAMP YEAR JSON BIT BOOL BOOLEAN TEXT BLOB ENUM
    """.split()
)
_DENIED_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, n)
    for n in ("CurrentTimestamp", "CurrentDate", "CurrentTime", "CurrentDatetime", "CurrentTimestampLTZ",
              "UtcTimestamp", "UtcDate", "UtcTime", "Uuid", "CurrentUser", "Randn")
    if hasattr(exp, n)
)
_OFFSET_RE = re.compile(r"([+-])(\d{1,2}):(\d{2})")
_UUID_EPOCH = _dt.datetime(1582, 10, 15, tzinfo=_dt.UTC)


# --------------------------------------------------------------------------------------------- values


def _resolve_zone(name: str | None) -> tuple[_dt.tzinfo | None, str | None]:
    """(tzinfo, problem). ``SYSTEM`` and unknown names are problems, never guesses."""
    if name is None:
        return None, "session time zone unknown"
    text = name.strip()
    m = _OFFSET_RE.fullmatch(text)
    if m:
        hours, minutes = int(m[2]), int(m[3])
        delta = _dt.timedelta(hours=hours, minutes=minutes)
        if minutes > 59 or delta > _dt.timedelta(hours=14):
            return None, f"time zone offset {name!r} out of range"
        return _dt.timezone(-delta if m[1] == "-" else delta), None
    if text.upper() == "SYSTEM":
        return None, "session time zone is SYSTEM (server zone not resolved)"
    try:
        return ZoneInfo(text), None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None, f"unknown time zone {name!r}"


def _frac(value: _dt.datetime | _dt.time, fsp: int) -> str:
    if fsp == 0:
        return ""
    return "." + f"{value.microsecond:06d}"[:fsp]


def _time_literal(kind: str, moment: _dt.datetime, fsp: int) -> str:
    if kind == "datetime":
        text = moment.strftime("%Y-%m-%d %H:%M:%S") + _frac(moment, fsp)
        return f"CAST('{text}' AS DATETIME{f'({fsp})' if fsp else ''})"
    if kind == "date":
        return f"CAST('{moment.strftime('%Y-%m-%d')}' AS DATE)"
    if kind == "time":
        text = moment.strftime("%H:%M:%S") + _frac(moment, fsp)
        return f"CAST('{text}' AS TIME{f'({fsp})' if fsp else ''})"
    raise AssertionError(kind)  # pragma: no cover


def _uuid1(now_utc: _dt.datetime, offset: int, rng: _Rng) -> str:
    delta = now_utc - _UUID_EPOCH
    ticks = (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10 + offset
    time_low = ticks & 0xFFFFFFFF
    time_mid = (ticks >> 32) & 0xFFFF
    time_hi = ((ticks >> 48) & 0x0FFF) | 0x1000
    clock_seq = (rng.getrandbits(14) & 0x3FFF) | 0x8000  # RFC 4122 variant
    node = rng.getrandbits(48) | (1 << 40)  # random node: multicast bit set, per RFC 4122 4.5
    return f"{time_low:08x}-{time_mid:04x}-{time_hi:04x}-{clock_seq:04x}-{node:012x}"


# --------------------------------------------------------------------------------------------- tokens


def _call_span(tokens: list[Token], i: int) -> tuple[int, list[Token]] | None:
    """For a function name at tokens[i] followed by '(', return (index of ')', argument tokens)."""
    if i + 1 >= len(tokens) or tokens[i + 1].text != "(":
        return None
    depth = 0
    for j in range(i + 1, len(tokens)):
        if tokens[j].text == "(":
            depth += 1
        elif tokens[j].text == ")":
            depth -= 1
            if depth == 0:
                return j, tokens[i + 2 : j]
    return None


def _single_eval_ranges(tokens: list[Token], verb: str) -> list[tuple[int, int]]:
    """Token index ranges of an INSERT/REPLACE where expressions are evaluated once per occurrence."""
    if verb not in ("INSERT", "REPLACE"):
        return []
    depth = 0
    start = None
    for j, t in enumerate(tokens):
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif depth == 0 and t.type == "word":
            u = t.upper
            if start is None and u in ("VALUES", "VALUE", "SET"):
                start = j
            elif start is not None and u in ("ON", "AS", "SELECT", "TABLE", "WITH"):
                return [(start, j)] if u in ("ON", "AS") else []
    return [(start, len(tokens))] if start is not None else []


def _limit_without_order(tokens: list[Token]) -> bool:
    """LIMIT with no ORDER BY earlier in the same parenthesised query level."""
    seen_order = [False]
    for j, t in enumerate(tokens):
        if t.text == "(":
            seen_order.append(False)
        elif t.text == ")":
            if len(seen_order) > 1:
                seen_order.pop()
        elif t.type == "word":
            u = t.upper
            if u == "ORDER" and j + 1 < len(tokens) and tokens[j + 1].upper == "BY":
                seen_order[-1] = True
            elif u in ("UNION", "EXCEPT", "INTERSECT"):
                seen_order[-1] = False
            elif u == "LIMIT" and not seen_order[-1]:
                return True
    return False


def _ast_functions(sql: str, verb: str, first: Token) -> tuple[list[str], bool]:
    """(reasons, parsed) from sqlglot: unknown Anonymous functions and denied typed functions."""
    text = effective_sql(sql)
    if verb == "REPLACE":
        text = text[: first.start] + "INSERT " + text[first.end :]
    try:
        trees = [t for t in sqlglot.parse(text, read="mysql") if t is not None]
    except (SqlglotError, RecursionError):
        return [], False
    if len(trees) != 1 or isinstance(trees[0], exp.Command):
        return [], False
    reasons = []
    for node in trees[0].walk():
        if isinstance(node, exp.Anonymous):
            name = node.name.upper()
            if name == "UNIX_TIMESTAMP" and node.expressions:
                continue  # UNIX_TIMESTAMP(expr) is deterministic (given the replayed session time zone)
            if name in UNSAFE_FUNCTIONS:
                reasons.append(f"{name}() {UNSAFE_FUNCTIONS[name]}")
            elif name not in DETERMINISTIC_FUNCTIONS:
                reasons.append(f"unknown function {name}() (not on the deterministic allow-list)")
        elif isinstance(node, _DENIED_NODES):
            reasons.append(f"{node.sql('mysql')} cannot be made deterministic")
        elif isinstance(node, exp.Rand) and node.this is None:
            pass  # already reported from tokens when not rewritten
    return reasons, True


_FUNCTIONS: DigestCache[tuple[list[str], bool]] = DigestCache("write_functions")


def _clean(answer: tuple[list[str], bool]) -> bool:
    return answer[1] and not answer[0]


def _token_functions(tokens: list[Token]) -> list[str]:
    reasons = []
    for j, t in enumerate(tokens):
        if t.type != "word" or j + 1 >= len(tokens) or tokens[j + 1].text != "(":
            continue
        if j > 0 and (tokens[j - 1].text == "." or tokens[j - 1].upper in (
            "INTO", "TABLE", "JOIN", "FROM", "UPDATE", "INSERT", "REPLACE", "IGNORE", "EXISTS"
        )):
            continue
        name = t.upper
        if name == "UNIX_TIMESTAMP" and j + 2 < len(tokens) and tokens[j + 2].text != ")":
            continue
        if name in UNSAFE_FUNCTIONS:
            reasons.append(f"{name}() {UNSAFE_FUNCTIONS[name]}")
        elif name not in DETERMINISTIC_FUNCTIONS and name not in _NOT_FUNCTIONS:
            reasons.append(f"unknown function {name}() (not on the deterministic allow-list)")
    return reasons


_SERVER_STATE_SCHEMAS = frozenset({"information_schema", "performance_schema", "sys"})


def unsafe_forms(cls: Classification, tokens: list[Token]) -> list[str]:
    """Reasons from MySQL's "unsafe for statement-based replication" list that the text shows (see the
    module docstring); ``tokens``: the statement's."""
    reasons = []
    if cls.kind == "ddl":
        words = [t.upper for t in tokens if t.type == "word"]
        replaces = any(w == "REPLACE" and words[i - 1] != "OR" for i, w in enumerate(words) if i)
        if cls.verb == "CREATE TABLE" and "SELECT" in words and ("IGNORE" in words or replaces):
            reasons.append("CREATE TABLE ... IGNORE|REPLACE SELECT: which rows are kept depends on the SELECT's "
                           "row order")
        return reasons
    if cls.verb.startswith("LOAD"):
        reasons.append("LOAD DATA reads a file no target has (LOCAL: on the client's host, else on the primary's)")
    shape = cls.shape
    if shape is not None:
        if shape.source == "select" and (shape.ignore or shape.on_duplicate or shape.verb == "REPLACE"):
            form = "REPLACE" if shape.verb == "REPLACE" else ("INSERT IGNORE" if shape.ignore else "INSERT")
            tail = " ... ON DUPLICATE KEY UPDATE" if shape.on_duplicate else ""
            reasons.append(f"{form} ... SELECT{tail}: which rows are kept depends on the SELECT's row order")
        if shape.verb == "UPDATE" and shape.ignore:
            reasons.append("UPDATE IGNORE: which rows are skipped depends on the order rows are updated in")
        if shape.nested_limit:
            reasons.append("LIMIT in a subquery or an INSERT ... SELECT: which rows it picks depends on an order "
                           "not known to be unique")
    for j, t in enumerate(tokens):
        if t.type in ("word", "ident") and t.name.lower() in _SERVER_STATE_SCHEMAS and j + 1 < len(tokens) \
                and tokens[j + 1].text == ".":
            reasons.append(f"reads {t.name.lower()} (each server's own state)")
            break
    if any(t.type == "word" and t.upper == "AGAINST" for t in tokens) and any(
            t.type == "word" and t.upper == "MATCH" for t in tokens):
        reasons.append("MATCH ... AGAINST: full-text relevance depends on each server's index")
    return reasons


def _replaced(sql: str, replacements: list[tuple[int, int, str]]) -> str:
    """``sql`` with each (start, end, text) of ``replacements`` (in order, not overlapping) done: one
    copy of the text, however many replacements (not one per replacement)."""
    if not replacements:
        return sql
    out: list[str] = []
    last = 0
    for start, end, literal in replacements:
        out.append(sql[last:start])
        out.append(literal)
        last = end
    out.append(sql[last:])
    return "".join(out)


# --------------------------------------------------------------------------------------------- main


def rewrite_deterministic(
    sql: str,
    now: _dt.datetime,
    session_time_zone: str | None,
    rng: _Rng,
) -> RewriteResult:
    """Replace nondeterministic functions of a DML statement with literals; see the module docstring.

    ``now`` is the statement's UTC time (aware or naive-as-UTC, microsecond precision); ``rng`` is a
    ``random.Random``-like source for UUID/RAND values.
    """
    cls = classify(sql)
    if cls.kind in ("read", "tcl", "session"):
        return RewriteResult(sql, False, False, ())
    if cls.kind == "unknown":
        return RewriteResult(sql, False, True, (f"statement kind unknown ({cls.verb or 'unlexable'}); not analysed",))
    try:
        lexed_tokens, _, shape = lexed(sql)
    except LexError:  # pragma: no cover - classify already returned unknown
        return RewriteResult(sql, False, True, ("statement could not be lexed",))
    tokens = list(lexed_tokens)
    if cls.kind == "ddl":
        # DDL is never rewritten: CURRENT_TIMESTAMP in a column DEFAULT must stay a function.
        if any(t.upper == "SELECT" for t in tokens) and _token_functions(tokens) + [
            t.upper for t in tokens if t.type == "word" and t.upper in _TIME_FUNCS
        ]:
            return RewriteResult(sql, False, True, ("CREATE ... SELECT with nondeterministic functions",))
        forms = tuple(unsafe_forms(cls, tokens))
        return RewriteResult(sql, False, bool(forms), forms)

    now_utc = now.replace(tzinfo=_dt.UTC) if now.tzinfo is None else now.astimezone(_dt.UTC)
    zone, zone_problem = _resolve_zone(session_time_zone)
    local = now_utc.astimezone(zone).replace(tzinfo=None) if zone is not None else None
    reasons: list[str] = []
    if zone is not None and not isinstance(zone, _dt.timezone):
        wall = now_utc.astimezone(zone).replace(tzinfo=None)
        if zone.utcoffset(wall.replace(fold=0)) != zone.utcoffset(wall.replace(fold=1)):
            reasons.append(f"local time {wall} is ambiguous in {session_time_zone} (DST change)")
    if shape in _UNCHANGED:  # a shape seen before: nothing to replace, nothing unsafe
        _UNCHANGED.move_to_end(shape)
        return RewriteResult(sql, False, bool(reasons), tuple(reasons))
    moment_reasons = len(reasons)
    single_eval = _single_eval_ranges(tokens, cls.verb)
    replacements: list[tuple[int, int, str]] = []
    counter = 0
    i = 0
    while i < len(tokens):
        t = tokens[i]
        name = t.upper
        if t.type != "word" or (i > 0 and tokens[i - 1].text == ".") or (
            name not in _TIME_FUNCS and name not in _PER_ROW_FUNCS
        ):
            i += 1
            continue
        span = _call_span(tokens, i)
        if name in _TIME_FUNCS:
            kind, zone_kind, bare_ok, takes_fsp = _TIME_FUNCS[name]
            if span is None and not bare_ok:
                i += 1  # a column or alias named like the function
                continue
            end_idx, args = span if span is not None else (i, [])
            fsp = 0
            if args:
                if (takes_fsp and len(args) == 1 and args[0].type == "number" and args[0].text.isdigit()
                        and int(args[0].text) <= 6):
                    fsp = int(args[0].text)
                else:
                    if name != "UNIX_TIMESTAMP":  # UNIX_TIMESTAMP(expr) is deterministic
                        reasons.append(f"{name}() with argument {' '.join(a.text for a in args)!r} not rewritten")
                    i = end_idx + 1
                    continue
            if zone_kind == "local" and local is None:
                reasons.append(f"{name} not rewritten: {zone_problem}")
                i = end_idx + 1
                continue
            moment = local if zone_kind == "local" else now_utc.replace(tzinfo=None)
            if kind == "unix":
                literal = str(int(now_utc.timestamp()))
            else:
                assert moment is not None  # (a local time that is None was refused above)
                literal = _time_literal(kind, moment, fsp)
            replacements.append((t.start, tokens[end_idx].end, literal))
            i = end_idx + 1
            continue
        # Per-row functions: UUID(), UUID_SHORT(), RAND() without a seed.
        if span is None:
            i += 1
            continue
        end_idx, args = span
        if args:
            if name == "RAND":
                i = end_idx + 1  # RAND(seed) is deterministic
                continue
            reasons.append(f"{name}() with arguments not rewritten")
            i = end_idx + 1
            continue
        if not any(lo <= i < hi for lo, hi in single_eval):
            reasons.append(f"{name}() is evaluated per row here; a literal would change the result")
            i = end_idx + 1
            continue
        if name == "UUID":
            literal = f"'{_uuid1(now_utc, counter, rng)}'"
        elif name == "UUID_SHORT":
            literal = str(((int(now_utc.timestamp()) & 0xFFFFFFFF) << 24 | rng.getrandbits(24)) + counter)
        else:
            literal = f"{rng.random():.16e}"
        counter += 1
        replacements.append((t.start, tokens[end_idx].end, literal))
        i = end_idx + 1

    out = _replaced(sql, replacements)
    new_tokens = scan(out) if replacements else tokens

    if _limit_without_order(new_tokens):
        reasons.append("LIMIT without ORDER BY picks rows nondeterministically")
    for tok in new_tokens:
        if tok.type == "var":
            reasons.append(f"user variable {tok.text} in a write")
        elif tok.type == "sysvar":
            reasons.append(f"system variable {tok.text} in a write")
    # per statement shape: only a clean answer is kept (a reason may quote a literal; a parse failure may
    # come from one literal's content)
    func_reasons, parsed = _FUNCTIONS.get(digest(new_tokens), lambda: _ast_functions(out, cls.verb, new_tokens[0]),
                                          _clean)
    if not parsed:
        func_reasons = _token_functions(new_tokens)
    reasons.extend(r for r in func_reasons if not any(r.split("(")[0] in x for x in reasons))
    reasons.extend(unsafe_forms(cls, new_tokens))
    unique = tuple(dict.fromkeys(reasons))
    if not replacements and len(reasons) == moment_reasons:  # what the shape alone decides: nothing
        _UNCHANGED[shape] = None
        if len(_UNCHANGED) > 8192:
            _UNCHANGED.popitem(last=False)
    return RewriteResult(out, bool(replacements), bool(unique), unique)


# Shapes (digests) of DML statements with nothing to replace and nothing unsafe in their text: whether a
# statement has either is decided by its tokens' names and structure (a function name, a variable, a
# LIMIT...), never by a literal's value, so a statement of such a shape is answered without the analysis
_UNCHANGED: OrderedDict[str, None] = OrderedDict()
