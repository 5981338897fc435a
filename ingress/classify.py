"""Statement classification for the ingress: what a query does to the session, the transaction and data.

``classify(sql)`` answers, for one statement of a COM_QUERY (or a prepared statement's text):

* ``kind``: ``'read'``, ``'dml'``, ``'ddl'``, ``'tcl'``, ``'session'`` or ``'unknown'``;
* ``tcl``: for ``kind == 'tcl'`` one of ``begin``, ``commit``, ``rollback``, ``savepoint``,
  ``rollback_to_savepoint``, ``release_savepoint``, ``xa``, ``lock_tables``, ``unlock_tables``;
* ``implicit_commit``: the statement commits an open transaction before running, per MySQL's
  "Statements That Cause an Implicit Commit" (DDL except CREATE/DROP TEMPORARY TABLE, account
  management, BEGIN/START TRANSACTION, LOCK/UNLOCK TABLES, SET autocommit=1, administrative and
  replication-control statements);
* ``tables``: db-qualified where written (``shop.orders``), in order of appearance, for ``dml``,
  ``ddl`` and ``lock_tables``. Reads take the fast path and are not parsed, so their ``tables`` is ``()``;
* ``is_write``: the statement may change persistent data (``dml``, ``ddl`` except temporary tables,
  and, conservatively, every ``unknown`` statement);
* ``autocommit`` (``SET autocommit = 0|1|ON|OFF``) and ``use_db`` (``USE db``);
* ``primary_only``: a read that must still run on the primary (``FOR UPDATE``/``FOR SHARE``/``LOCK IN
  SHARE MODE`` locking reads, ``SELECT ... INTO``, lock/sleep functions). Such statements keep
  ``kind == 'read'`` because they change no replicated data;
* ``temporary``: CREATE/DROP TEMPORARY TABLE (session-scoped, no implicit commit);
* ``parsed``: sqlglot produced a full AST for it (``rewrite`` needs one to analyse nondeterminism);
* ``shape``: for INSERT/REPLACE/UPDATE/DELETE, what it writes (:mod:`ingress.write_shape`: tables,
  the columns it sets, ``ON DUPLICATE KEY``, ``ORDER BY ... LIMIT``); ``None`` for other statements
  and for forms the token walk does not recognise.

How it decides
--------------
MySQL's grammar is keyword-led, so the statement family comes from the leading keywords (after
comments and executable-comment markers), which is exact and cheap. sqlglot (dialect ``mysql``) is
used only for detail (tables of DML, ``SELECT ... INTO``/locking clauses are found from tokens). A
statement whose leading keywords are not in the table below -- GRANT, CALL, EXECUTE, FLUSH,
HANDLER, ``BEGIN NOT ATOMIC`` blocks, SET GLOBAL, ``SET autocommit = @v`` ... -- is ``'unknown'``:
deliberately not guessed, treated as a possible write, with ``implicit_commit`` set when MySQL
documents one.

Lexing
------
sqlglot's tokenizer does not follow MySQL everywhere (it reads ``1--1`` as ``1`` plus a comment; MySQL
needs whitespace after ``--``) and drops ``/*! ... */`` executable comments, which MySQL *executes*.
So this module has its own small MySQL lexer (:func:`scan`): strings with backslash escapes (pass
``backslash_escapes=False`` for NO_BACKSLASH_ESCAPES), backquoted identifiers, ``#``, ``-- ``, ``/* */``
comments, ``/*!NNNNN ... */`` and ``/*M!NNNNNN ... */`` executable comments (their content is lexed
as code, whatever the version number: dbmux assumes a modern server), ``@var``, ``@@sys.var``,
``?``. Token offsets index the original text; :func:`effective_sql` blanks executable-comment markers
with spaces (same length, so offsets still match) for sqlglot.

Results are cached in an LRU keyed by the SQL text (:func:`classify` is called for every query).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbmux.core.digests import DigestCache, digest
from dbmux.core.sqllex import LexError, Token, effective_sql, scan, scan_with_markers, split_statements
from dbmux.ingress.write_shape import WriteShape, write_shape

__all__ = [
    "Classification",
    "LexError",
    "Token",
    "classify",
    "effective_sql",
    "scan",
    "split_statements",
]

CACHE_SIZE = 8192


@dataclass(frozen=True, slots=True)
class Classification:
    """What one statement is. See the module docstring for each field's meaning."""

    kind: str
    verb: str = ""
    tcl: str | None = None
    implicit_commit: bool = False
    tables: tuple[str, ...] = ()
    is_write: bool = False
    autocommit: bool | None = None
    use_db: str | None = None
    primary_only: bool = False
    temporary: bool = False
    parsed: bool = False
    shape: WriteShape | None = None


_READ_VERBS = {"SELECT", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "HELP", "DO", "TABLE", "VALUES", "WITH", "("}
_DML_VERBS = {"INSERT", "REPLACE", "UPDATE", "DELETE", "LOAD"}
_DDL_VERBS = {"CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE"}
_ACCOUNT_OBJECTS = {"USER", "ROLE"}
# Leading keywords of statements MySQL documents as committing implicitly but dbmux classifies 'unknown'.
_IMPLICIT_COMMIT_UNKNOWN = {
    "GRANT", "REVOKE", "FLUSH", "ANALYZE", "CHECK", "OPTIMIZE", "REPAIR", "CACHE", "RESET", "INSTALL",
    "UNINSTALL", "CHANGE",
}
_REPLICATION_CONTROL = {"SLAVE", "REPLICA", "GROUP_REPLICATION", "ALL"}
_PRIMARY_ONLY_FUNCS = {
    "GET_LOCK", "RELEASE_LOCK", "RELEASE_ALL_LOCKS", "IS_FREE_LOCK", "IS_USED_LOCK", "SLEEP",
    "MASTER_POS_WAIT", "SOURCE_POS_WAIT", "WAIT_FOR_EXECUTED_GTID_SET", "MASTER_GTID_WAIT", "LOAD_FILE",
}
_SEQUENCE_FUNCS = {"NEXTVAL", "SETVAL", "LASTVAL"}
_AUTOCOMMIT_VALUES = {"0": False, "1": True, "ON": True, "OFF": False, "TRUE": True, "FALSE": False}


def _unknown(verb: str, implicit_commit: bool = False, is_write: bool = True) -> Classification:
    return Classification("unknown", verb=verb, implicit_commit=implicit_commit, is_write=is_write)


def _words(tokens: list[Token], i: int, n: int) -> list[str]:
    return [t.upper if t.type == "word" else t.text for t in tokens[i : i + n]]


def _qualified_name(tokens: list[Token], i: int) -> tuple[str | None, int]:
    """Read ``name`` or ``db.name`` at tokens[i]; returns (text, next index)."""
    if i >= len(tokens) or tokens[i].type not in ("word", "ident"):
        return None, i
    name = tokens[i].name
    if i + 2 < len(tokens) and tokens[i + 1].text == "." and tokens[i + 2].type in ("word", "ident"):
        return f"{name}.{tokens[i + 2].name}", i + 3
    return name, i + 1


def _skip_if_exists(tokens: list[Token], i: int) -> int:
    w = _words(tokens, i, 3)
    if w[:2] == ["IF", "EXISTS"]:
        return i + 2
    if w[:3] == ["IF", "NOT", "EXISTS"]:
        return i + 3
    return i


def _name_list(tokens: list[Token], i: int, separators: tuple[str, ...] = (",",)) -> list[str]:
    """Names separated by ``,`` (or TO for RENAME), each the first name of its item."""
    names: list[str] = []
    expect = True
    depth = 0
    for j in range(i, len(tokens)):
        t = tokens[j]
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif depth == 0 and (t.text in separators or t.upper in separators):
            expect = True
            continue
        if expect and depth == 0:
            name, _ = _qualified_name(tokens, j)
            if name is not None:
                names.append(name)
            expect = False
    return names


def _dedupe(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _ast_tables(sql: str) -> tuple[tuple[str, ...], bool]:
    """Tables referenced by a statement per sqlglot (CTE names excluded); (names, parsed)."""
    try:
        parsed = sqlglot.parse(sql, read="mysql")
    except (SqlglotError, RecursionError):
        return (), False
    trees = [t for t in parsed if t is not None]
    if len(trees) != 1 or isinstance(trees[0], exp.Command):
        return (), False
    tree = trees[0]
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    names = []
    for t in tree.find_all(exp.Table):
        if not t.name or (not t.db and t.name.lower() in ctes):
            continue
        names.append(f"{t.db}.{t.name}" if t.db else t.name)
    return _dedupe(names), True


def _classify_read(tokens: list[Token], verb: str) -> Classification:
    primary_only = False
    is_write = False
    uppers = [t.upper for t in tokens if t.type == "word"]
    upset = set(uppers)
    if "INTO" in upset or _PRIMARY_ONLY_FUNCS & upset:
        primary_only = True
    for a, b in zip(uppers, uppers[1:], strict=False):  # adjacent pairs: one shorter
        if (a, b) in (("FOR", "UPDATE"), ("FOR", "SHARE"), ("IN", "SHARE")):
            primary_only = True
        if (a, b) == ("VALUE", "FOR"):  # NEXT VALUE FOR seq (MariaDB) advances a sequence
            is_write = True
    if _SEQUENCE_FUNCS & upset or any(t.text == ":=" for t in tokens):
        primary_only = True
    if {"NEXTVAL", "SETVAL"} & upset:
        is_write = True
    if is_write:  # MariaDB logs sequence advances: treat as DML so the transaction is captured
        return Classification("dml", verb=verb, is_write=True, primary_only=True)
    return Classification("read", verb=verb, primary_only=primary_only)


def _classify_with(tokens: list[Token], sql: str) -> Classification:
    depth = 0
    for t in tokens[1:]:
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif depth == 0 and t.type == "word" and t.upper in (
            "SELECT", "TABLE", "VALUES", "UPDATE", "DELETE", "INSERT", "REPLACE"
        ):
            if t.upper in ("UPDATE", "DELETE", "INSERT", "REPLACE"):
                tables, parsed = _ast_tables(sql)
                return Classification("dml", verb=t.upper, tables=tables, is_write=True, parsed=parsed)
            return _classify_read(tokens, "WITH")
    return _unknown("WITH")


def _classify_tcl(tokens: list[Token], w: list[str]) -> Classification | None:
    verb = w[0]
    if verb == "BEGIN":
        if len(w) == 1 or (w[1] == "WORK" and len(w) == 2):
            return Classification("tcl", verb="BEGIN", tcl="begin", implicit_commit=True)
        return None  # BEGIN NOT ATOMIC block or garbage
    if verb == "START":
        if w[1:2] == ["TRANSACTION"]:
            return Classification("tcl", verb="START TRANSACTION", tcl="begin", implicit_commit=True)
        if w[1:2] and w[1] in _REPLICATION_CONTROL:
            return _unknown("START " + w[1], implicit_commit=True, is_write=False)
        return None
    if verb == "COMMIT":
        return Classification("tcl", verb="COMMIT", tcl="commit")
    if verb == "ROLLBACK":
        if "TO" in w:
            return Classification("tcl", verb="ROLLBACK TO SAVEPOINT", tcl="rollback_to_savepoint")
        return Classification("tcl", verb="ROLLBACK", tcl="rollback")
    if verb == "SAVEPOINT":
        return Classification("tcl", verb="SAVEPOINT", tcl="savepoint")
    if verb == "RELEASE" and w[1:2] == ["SAVEPOINT"]:
        return Classification("tcl", verb="RELEASE SAVEPOINT", tcl="release_savepoint")
    if verb == "XA":
        sub = w[1] if len(w) > 1 else ""
        return Classification("tcl", verb=f"XA {sub}".strip(), tcl="xa")
    if verb == "LOCK" and w[1:2] and w[1] in ("TABLES", "TABLE"):
        return Classification(
            "tcl", verb="LOCK TABLES", tcl="lock_tables", implicit_commit=True,
            tables=_dedupe(_name_list(tokens, 2)),
        )
    if verb == "UNLOCK" and w[1:2] and w[1] in ("TABLES", "TABLE"):
        return Classification("tcl", verb="UNLOCK TABLES", tcl="unlock_tables", implicit_commit=True)
    return None


def _classify_set(tokens: list[Token], sql: str) -> Classification:
    w = _words(tokens, 0, 3)
    second = w[1] if len(w) > 1 else ""
    if second == "STATEMENT":  # MariaDB SET STATEMENT var=... FOR <statement>
        depth = 0
        for t in tokens[2:]:
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                depth -= 1
            elif depth == 0 and t.upper == "FOR":
                return classify(sql[t.end :])
        return _unknown("SET STATEMENT")
    if second in ("PASSWORD", "DEFAULT"):  # account management: SET PASSWORD, SET DEFAULT ROLE
        return _unknown(f"SET {second}", implicit_commit=True)
    if second in ("GLOBAL", "PERSIST", "PERSIST_ONLY"):
        return _unknown(f"SET {second}", is_write=False)
    if second in ("NAMES", "CHARACTER", "CHARSET", "TRANSACTION", "ROLE"):
        return Classification("session", verb=f"SET {second}")
    # Walk top-level assignments: [SESSION|LOCAL] name = value, ...
    autocommit: bool | None = None
    i, n = 1, len(tokens)
    while i < n:
        t = tokens[i]
        if t.upper in ("SESSION", "LOCAL") and t.type == "word":
            i += 1
            continue
        target = t.text.lower()
        if t.type == "sysvar":
            if target.startswith(("@@global.", "@@persist")):
                return _unknown("SET GLOBAL", is_write=False)
            target = target.split(".")[-1].lstrip("@")
        elif t.type == "ident":
            target = t.name.lower()
        # value: tokens until the next top-level comma
        j = i + 1
        if j < n and tokens[j].text in ("=", ":="):
            j += 1
        value_start, depth = j, 0
        while j < n and not (depth == 0 and tokens[j].text == ","):
            if tokens[j].text == "(":
                depth += 1
            elif tokens[j].text == ")":
                depth -= 1
            j += 1
        if target == "autocommit" and t.type in ("word", "sysvar", "ident"):
            value = tokens[value_start:j]
            literal = None
            if len(value) == 1:
                text = value[0].text.strip("'\"").upper() if value[0].type == "string" else value[0].upper
                literal = _AUTOCOMMIT_VALUES.get(text)
            if literal is None:
                return _unknown("SET autocommit", is_write=False)  # value known only to the server
            autocommit = literal
        i = j + 1
    return Classification("session", verb="SET", autocommit=autocommit, implicit_commit=autocommit is True)


def _classify_ddl(tokens: list[Token], w: list[str], sql: str) -> Classification:
    verb = w[0]
    i = 1
    # Skip CREATE modifiers up to the object keyword.
    modifiers = {"OR", "REPLACE", "ALGORITHM", "DEFINER", "SQL", "SECURITY", "ONLINE", "OFFLINE", "IGNORE",
                 "UNIQUE", "FULLTEXT", "SPATIAL", "AGGREGATE", "DEFINITION", "TEMPORARY", "=", "@", ".",
                 "MERGE", "TEMPTABLE", "UNDEFINED", "INVOKER", "CURRENT_USER", "(", ")", "INVISIBLE"}
    temporary = False
    obj = ""
    while i < len(tokens) and i < 16:
        t = tokens[i]
        u = t.upper if t.type == "word" else t.text
        if u == "TEMPORARY":
            temporary = True
        if t.type == "word" and u not in modifiers and not (i > 1 and tokens[i - 1].text in ("=", "@")):
            obj = u
            break
        i += 1
    if verb == "TRUNCATE" and obj != "TABLE":  # TRUNCATE t
        return Classification("ddl", verb="TRUNCATE TABLE", implicit_commit=True, is_write=True,
                              tables=_dedupe(_name_list(tokens, 1)))
    if obj in _ACCOUNT_OBJECTS:
        return _unknown(f"{verb} {obj}", implicit_commit=True)
    if verb == "DROP" and obj == "PREPARE":
        return Classification("session", verb="DEALLOCATE PREPARE")
    full_verb = f"{verb} {obj}".strip()
    names: list[str] = []
    after = _skip_if_exists(tokens, i + 1)
    if obj in ("TABLE", "TABLES", "VIEW", "SEQUENCE"):
        if verb in ("DROP", "RENAME"):
            names = _name_list(tokens, after, (",", "TO"))
        else:
            name, _ = _qualified_name(tokens, after)
            names = [name] if name else []
    elif obj in ("INDEX", "KEY", "TRIGGER"):
        for j in range(after, len(tokens)):
            if tokens[j].upper == "ON" and tokens[j].type == "word":
                name, _ = _qualified_name(tokens, j + 1)
                names = [name] if name else []
                break
    parsed = False
    if obj in ("TABLE", "VIEW") and verb == "CREATE" and any(t.upper == "SELECT" for t in tokens):
        extra, parsed = _ast_tables(sql)
        names += list(extra)
    implicit = not (temporary and verb in ("CREATE", "DROP") and obj == "TABLE")
    return Classification(
        "ddl", verb=full_verb, implicit_commit=implicit, tables=_dedupe(names), is_write=not temporary,
        temporary=temporary, parsed=parsed,
    )


def _classify_dml(tokens: list[Token], w: list[str], sql: str) -> Classification:
    verb = w[0]
    if verb == "LOAD":
        if w[1:2] and w[1] in ("DATA", "XML"):
            names: list[str] = []
            for j, t in enumerate(tokens):
                if t.upper == "TABLE" and j > 0 and tokens[j - 1].upper == "INTO":
                    name, _ = _qualified_name(tokens, j + 1)
                    names = [name] if name else []
                    break
            return Classification("dml", verb=f"LOAD {w[1]}", tables=tuple(names), is_write=True)
        if w[1:2] == ["INDEX"]:
            return _unknown("LOAD INDEX", implicit_commit=True, is_write=False)
        return _unknown("LOAD")
    text = sql
    if verb == "REPLACE":  # sqlglot falls back to Command for REPLACE; same grammar as INSERT
        first = tokens[0]
        text = sql[: first.start] + "INSERT " + sql[first.end :]
    tables, parsed = _ast_tables(text)
    return Classification("dml", verb=verb, tables=tables, is_write=True, parsed=parsed, shape=write_shape(tokens))


# A DML statement's classification depends on its shape only (tables, write shape): per digest, when
# sqlglot parsed it (a failure may come from one literal's content)
_DML_CLASSES: DigestCache[Classification] = DigestCache("dml_classification", CACHE_SIZE)


def _parsed(cls: Classification) -> bool:
    return cls.parsed


def _classify_tokens(sql: str, tokens: list[Token], shape: str = "") -> Classification:
    if not tokens:
        return Classification("unknown", verb="", is_write=False)
    first = tokens[0]
    w = _words(tokens, 0, 4)
    verb = w[0]
    if first.type != "word" and first.text != "(":
        return _unknown(first.text)
    if verb in _READ_VERBS:
        if verb == "WITH":
            return _classify_with(tokens, sql)
        if verb in ("DESCRIBE", "DESC", "EXPLAIN") and any(t.upper == "ANALYZE" for t in tokens[1:3]):
            return _unknown(verb)  # EXPLAIN ANALYZE executes the statement
        return _classify_read(tokens, "SELECT" if verb == "(" else verb)
    tcl = _classify_tcl(tokens, w)
    if tcl is not None:
        return tcl
    if verb in _DML_VERBS:
        if shape:
            return _DML_CLASSES.get(shape, lambda: _classify_dml(tokens, w, sql), _parsed)
        return _classify_dml(tokens, w, sql)
    if verb in _DDL_VERBS:
        return _classify_ddl(tokens, w, sql)
    if verb == "USE" and len(tokens) == 2 and tokens[1].type in ("word", "ident"):
        return Classification("session", verb="USE", use_db=tokens[1].name)
    if verb == "SET":
        return _classify_set(tokens, sql)
    if verb in ("PREPARE", "DEALLOCATE"):
        return Classification("session", verb=verb)
    if verb in _IMPLICIT_COMMIT_UNKNOWN:
        return _unknown(verb, implicit_commit=True, is_write=verb not in ("CHECK", "ANALYZE", "CACHE"))
    if verb == "STOP" and w[1:2] and w[1] in _REPLICATION_CONTROL:
        return _unknown("STOP " + w[1], implicit_commit=True, is_write=False)
    return _unknown(verb)


# A plain SELECT -- ASCII letters, digits, blanks and operators only: no quote, comment, variable,
# placeholder, ``:=`` or ``;`` -- lexes into words, numbers and operators only, so when none of the words
# that make a read special (see _classify_read) occurs anywhere in its text, it is a plain read. This
# answers such statements (text-protocol point selects, ranges, sums) without lexing them: exactly what
# lexing gives (a test checks both agree), for a fraction of the cost.
_PLAIN_SELECT = re.compile(r"[ \t\r\n]*SELECT[ \t\r\n][A-Z0-9_ \t\r\n,.()=<>!*+\-/%]*\Z", re.IGNORECASE | re.ASCII)
_SPECIAL_READ_WORDS = ("INTO", "FOR", "SHARE", "VALUE", *sorted(_PRIMARY_ONLY_FUNCS | _SEQUENCE_FUNCS))
_PLAIN_READ = Classification("read", verb="SELECT")


def _plain_select(sql: str) -> bool:
    if _PLAIN_SELECT.match(sql) is None or "--" in sql or "/*" in sql:
        return False
    upper = sql.upper()
    return not any(word in upper for word in _SPECIAL_READ_WORDS)


@lru_cache(maxsize=CACHE_SIZE)
def classify(sql: str) -> Classification:
    """Classify one statement (not a multi-statement text: split it first). Never raises for text."""
    if _plain_select(sql):
        return _PLAIN_READ
    return _classify_lexed(sql)


@lru_cache(maxsize=64)
def lexed(sql: str) -> tuple[tuple[Token, ...], tuple[tuple[int, int], ...], str]:
    """``sql``'s tokens, executable-comment markers and digest (:mod:`ingress.digests`), lexed once for
    classification and rewriting both (raises :class:`LexError`)."""
    tokens, markers = scan_with_markers(sql)
    return tuple(tokens), tuple(markers), digest(tokens)


def _classify_lexed(sql: str) -> Classification:
    try:
        lexed_tokens, lexed_markers, shape = lexed(sql)
    except LexError:
        return _unknown("")
    tokens, markers = list(lexed_tokens), list(lexed_markers)
    # A trailing ';' is legal for a single statement.
    while tokens and tokens[-1].text == ";":
        tokens.pop()
    if any(t.text == ";" and t.type == "op" for t in tokens) and len(split_statements(sql)) > 1:
        return _unknown("MULTI")
    return _classify_tokens(effective_sql(sql, markers), tokens, shape)
