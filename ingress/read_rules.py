"""Which statements may run on a replica (read routing, ``ingress.reads = "replicas"``). Pure.

:func:`judge_read` answers for one statement's text: may a replica answer it exactly as the primary
would, given a replica that has applied everything the read must see and a session carried over
(database, ``sql_mode``, ``time_zone``, character sets: ``ingress.replica_link``)? The session-level
rules (open transaction, autocommit off, temporary tables, ``LOCK TABLES``, session variables the
ingress does not carry) are the router's (``ingress.read_session``); these are the statement's own:

=====================  ==============================================================================
``not_a_read``         anything but a read (writes, DDL, SET, CALL, unknown statements ...)
``locking_read``       ``FOR UPDATE``, ``FOR SHARE``, ``LOCK IN SHARE MODE``, ``SELECT ... INTO``, lock
                       and sleep functions, sequences (``classify``'s ``primary_only``)
``not_select``         a read that is not a SELECT: SHOW, DESCRIBE, EXPLAIN, DO, TABLE, VALUES, HELP
                       (they describe the server they run on)
``variables``          reads or assigns user variables (``@x``) or system variables (``@@x``): their
                       values live in the primary's session
``found_rows``         ``SQL_CALC_FOUND_ROWS`` (a later ``FOUND_ROWS()`` on the primary must see it)
``function``           a function with session state or side effects (``LAST_INSERT_ID()``,
                       ``FOUND_ROWS()``, ``ROW_COUNT()``, ``CONNECTION_ID()``, ``VERSION()`` ...) or one
                       dbmux does not know (a stored function may write)
``system_schema``      ``mysql``, ``information_schema``, ``performance_schema``, ``sys``: they
                       describe the server they run on
``no_tables``          reads no table (``SELECT 1``, ``SELECT NOW()``): nothing to take off the primary
``unparsed``           sqlglot cannot parse it
=====================  ==============================================================================

A SELECT (or a set operation of SELECTs, with CTEs) that breaks none of these is a replica read; its
``tables`` (db-qualified where written) let the router pick a replica whose ``tables`` filter holds
them all. Verdicts depend on a statement's shape only (never on a literal), so they are cached per
digest (:mod:`dbmux.core.digests`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbmux.core.digests import DigestCache
from dbmux.ingress.classify import LexError, classify, effective_sql, lexed

NOT_A_READ = "not_a_read"
LOCKING_READ = "locking_read"
NOT_SELECT = "not_select"
VARIABLES = "variables"
FOUND_ROWS = "found_rows"
FUNCTION = "function"
SYSTEM_SCHEMA = "system_schema"
NO_TABLES = "no_tables"
UNPARSED = "unparsed"

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
# Functions sqlglot knows that answer from the session or the server, or act on it.
_SESSION_FUNCTIONS = frozenset({
    "LAST_INSERT_ID", "FOUND_ROWS", "ROW_COUNT", "CONNECTION_ID", "VERSION", "GET_LOCK", "RELEASE_LOCK",
    "RELEASE_ALL_LOCKS", "IS_FREE_LOCK", "IS_USED_LOCK", "SLEEP", "BENCHMARK", "LOAD_FILE", "MASTER_POS_WAIT",
    "MASTER_GTID_WAIT", "SOURCE_POS_WAIT", "NEXTVAL", "LASTVAL", "SETVAL", "UUID_SHORT", "SESSION_USER",
    "SYSTEM_USER", "USER",
})
# Built-in functions sqlglot parses as anonymous that answer the same on any server of the same version
# and session settings (anything else anonymous may be a stored function, which may write).
_SAFE_ANONYMOUS = frozenset({
    "NOW", "CURDATE", "CURTIME", "UTC_TIMESTAMP", "UTC_DATE", "UTC_TIME", "LOCALTIME", "LOCALTIMESTAMP",
    "FIELD", "ELT", "FIND_IN_SET", "INET_ATON", "INET_NTOA", "INET6_ATON", "INET6_NTOA", "FORMAT", "SPACE",
    "CHAR", "ORD", "BIN", "OCT", "CRC32", "MD5", "SHA1", "SHA2", "TO_DAYS", "FROM_DAYS", "WEEKDAY",
    "DAYNAME", "MONTHNAME", "MAKEDATE", "MAKETIME", "PERIOD_ADD", "PERIOD_DIFF", "SEC_TO_TIME", "TIME_TO_SEC",
    "TIMESTAMPADD", "TIMESTAMPDIFF", "GREATEST", "LEAST", "IFNULL", "NULLIF", "COALESCE", "JSON_EXTRACT",
    "JSON_UNQUOTE", "JSON_CONTAINS", "JSON_LENGTH", "JSON_OBJECT", "JSON_ARRAY", "JSON_VALUE", "REGEXP_REPLACE",
    "REGEXP_SUBSTR", "REGEXP_INSTR", "SUBSTRING_INDEX", "LOCATE", "INSTR", "LCASE", "UCASE", "MID", "STRCMP",
})
_SELECTS = (exp.Select, exp.Union, exp.Intersect, exp.Except)


@dataclass(frozen=True, slots=True)
class ReadRoute:
    """A statement's verdict: ``replica`` (it may run on a replica) or the ``reason`` it stays on the primary;
    ``tables`` a replica read reads (db-qualified where written)."""

    replica: bool
    reason: str = ""
    tables: tuple[str, ...] = ()


_VERDICTS: DigestCache[ReadRoute] = DigestCache("read_route", 8192)


def _primary(reason: str) -> ReadRoute:
    return ReadRoute(False, reason)


@lru_cache(maxsize=4096)
def judge_read(sql: str) -> ReadRoute:
    """May ``sql`` (one statement) run on a replica? See the module docstring."""
    cls = classify(sql)
    if cls.kind != "read":
        return _primary(NOT_A_READ)
    if cls.primary_only:
        return _primary(LOCKING_READ)
    try:
        tokens, markers, shape = lexed(sql)
    except LexError:
        return _primary(UNPARSED)
    words = {t.upper for t in tokens if t.type == "word"}
    if any(t.type in ("var", "sysvar") for t in tokens):
        return _primary(VARIABLES)
    if "SQL_CALC_FOUND_ROWS" in words:
        return _primary(FOUND_ROWS)
    return _VERDICTS.get(shape, lambda: _judge_tree(effective_sql(sql, list(markers))),
                         lambda r: r.reason != UNPARSED)


def _judge_tree(sql: str) -> ReadRoute:
    try:
        trees = [t for t in sqlglot.parse(sql, read="mysql") if t is not None]
    except (SqlglotError, RecursionError):
        return _primary(UNPARSED)
    if len(trees) != 1:
        return _primary(UNPARSED)
    tree = trees[0]
    if not isinstance(tree, _SELECTS):
        return _primary(NOT_SELECT)
    for node in tree.walk():
        if isinstance(node, exp.Lock | exp.Into):
            return _primary(LOCKING_READ)
        if isinstance(node, exp.Parameter | exp.SessionParameter):
            return _primary(VARIABLES)
        if isinstance(node, exp.Anonymous):
            if str(node.name).upper() not in _SAFE_ANONYMOUS:
                return _primary(FUNCTION)
        elif isinstance(node, exp.Func) and node.sql_name().upper() in _SESSION_FUNCTIONS:
            return _primary(FUNCTION)
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    tables: list[str] = []
    for t in tree.find_all(exp.Table):
        name = t.name
        if not name or (not t.db and (name.lower() in ctes or name.lower() == "dual")):
            continue
        if t.db and t.db.lower() in SYSTEM_SCHEMAS:
            return _primary(SYSTEM_SCHEMA)
        tables.append(f"{t.db}.{name}" if t.db else name)
    if not tables:
        return _primary(NO_TABLES)
    return ReadRoute(True, "", tuple(dict.fromkeys(tables)))
