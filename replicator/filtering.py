"""A target's ``tables`` patterns applied to change events (pure).

Patterns are ``db.table`` fnmatch patterns (case-sensitive); ``*`` selects everything and costs
nothing. A row change is kept when its table is selected. A statement is kept when any table it
names is selected; a statement whose tables cannot be determined (unparsable, or naming none, e.g.
``CREATE DATABASE``) is kept when its database is selected by some pattern, so filtering never drops
what it cannot see. An ``unsafe`` statement is always kept: its transaction is applied from the row
copy (filtered by table), and dropping it would turn the event into an empty one that "applies" the
GTID and makes the row copy a skipped duplicate. The filtered event keeps its GTID: an event left
empty still advances the target's position (the transaction is accounted for, deliberately not applied).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Sequence

import sqlglot
from sqlglot import exp

from dbmux.core.digests import DigestCache, digest
from dbmux.core.events import ChangeEvent
from dbmux.core.sqllex import LexError, scan


def table_selected(patterns: Sequence[str], db: str, table: str) -> bool:
    """Does a target's ``tables`` list select ``db.table``? fnmatch patterns, case-sensitive; ``*`` = all.
    A tuple of patterns (a target's config) has its answers kept per table: every row change asks."""
    if type(patterns) is not tuple:
        return _matches(patterns, db, table)
    key = (patterns, db, table)
    hit = _SELECTED.get(key)
    if hit is None:
        if len(_SELECTED) >= _SELECTED_MAX:
            _SELECTED.clear()
        hit = _SELECTED[key] = _matches(patterns, db, table)
    return hit


def _matches(patterns: Sequence[str], db: str, table: str) -> bool:
    name = f"{db}.{table}"
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


_SELECTED: dict[tuple[tuple[str, ...], str, str], bool] = {}  # (patterns, db, table) -> selected; emptied when full
_SELECTED_MAX = 4096


def _db_selected(patterns: Sequence[str], db: str | None) -> bool:
    if db is None:
        return True
    return any(p == "*" or fnmatch.fnmatchcase(db, p.split(".", 1)[0]) for p in patterns)


def statement_tables(sql: str) -> tuple[tuple[str | None, str], ...] | None:
    """(db or None, table) pairs a statement names; None when it cannot be parsed. Per statement shape
    (:mod:`dbmux.core.digests`): sqlglot parses each shape once, not every statement; a text seen
    recently (a prepared statement's, executed again) is not even scanned again."""
    found = _BY_TEXT.get(sql, _UNSEEN)
    if found is not _UNSEEN:
        return found  # type: ignore[return-value]  # (what this function returned for the same text)
    try:
        found = _TABLES.get(digest(scan(sql)), lambda: _parsed_tables(sql), _parsed)
    except LexError:
        found = _parsed_tables(sql)
    if len(sql) <= _TEXT_MAX:
        if len(_BY_TEXT) >= _TEXTS:
            _BY_TEXT.clear()
        _BY_TEXT[sql] = found
    return found


_TABLES: DigestCache[tuple[tuple[str | None, str], ...] | None] = DigestCache("filter_tables", 4096)
_UNSEEN = object()
_BY_TEXT: dict[str, object] = {}  # statement text -> statement_tables(text); emptied when full
_TEXTS, _TEXT_MAX = 4096, 2048


def _parsed(tables: tuple[tuple[str | None, str], ...] | None) -> bool:
    return tables is not None


def _parsed_tables(sql: str) -> tuple[tuple[str | None, str], ...] | None:
    try:
        tree = sqlglot.parse_one(sql, read="mysql")
    except sqlglot.errors.SqlglotError:
        return None
    if tree is None or isinstance(tree, exp.Command):
        return None
    if isinstance(tree, (exp.Create, exp.Drop)) and tree.args.get("kind") in ("DATABASE", "SCHEMA"):
        return ()  # names a database, not a table: see _target_db
    return tuple((t.db or None, t.name) for t in tree.find_all(exp.Table) if t.name)


def filter_event(ev: ChangeEvent, patterns: Sequence[str]) -> ChangeEvent:
    if "*" in patterns:
        return ev
    rows = tuple(r for r in ev.rows if table_selected(patterns, r.db, r.table)) if ev.rows else ()
    default_db = ev.db or (ev.session.db if ev.session else None)
    statements = []
    for st in ev.statements:
        if st.unsafe:
            # applied from the row copy, whose rows are filtered by table above: dropping it here would leave
            # an empty "applied" event and make the row copy a duplicate, skipped -- a lost transaction
            statements.append(st)
            continue
        tables = statement_tables(st.sql)
        if not tables:
            keep = _db_selected(patterns, default_db if tables is None else _target_db(st.sql, default_db))
        else:
            keep = any(table_selected(patterns, db or default_db or "", t) for db, t in tables)
        if keep:
            statements.append(st)
    if len(rows) == len(ev.rows) and len(statements) == len(ev.statements):
        return ev
    return dataclasses.replace(ev, rows=rows, statements=tuple(statements))


def _target_db(sql: str, default_db: str | None) -> str | None:
    """The database a table-less statement acts on (``CREATE DATABASE x``, ``DROP SCHEMA x``)."""
    try:
        tree = sqlglot.parse_one(sql, read="mysql")
    except sqlglot.errors.SqlglotError:
        return default_db
    if isinstance(tree, (exp.Create, exp.Drop)) and tree.args.get("kind") in ("DATABASE", "SCHEMA"):
        name = tree.this
        return name.name if isinstance(name, exp.Expression) else default_db
    return default_db
