"""SQL text for MySQL/MariaDB targets: bound parameters as escaped literals, row images as statements."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import sqlglot
from pymysql.converters import (  # type: ignore[attr-defined]  # _escape_table: private, not in types-PyMySQL
    _escape_table,
    escape_item,
)
from sqlglot import exp

from dbmux.core.events import RowChange
from dbmux.core.sqllex import scan


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# the characters pymysql's _escape_table changes; most strings hold none of them and are quoted as they are
_NEEDS_ESCAPE = re.compile("[\x00\n\r\x1a\"'\\\\]").search
assert {chr(i) for i, c in enumerate(_escape_table) if c != chr(i)} == {"\x00", "\n", "\r", "\x1a", '"', "'", "\\"}
_TEXT_CHARSETS = frozenset({"utf8mb4", "utf8mb3", "utf8"})  # the applier's connection speaks utf8mb4
_CHARSET_NAME = re.compile(r"[a-z0-9_]{1,32}").fullmatch


def literal(value: Any, charset: str | None = None, *, backslash_escapes: bool = True) -> str:
    """``value`` as a MySQL literal for a session whose sql_mode has (``backslash_escapes=False``) or
    lacks NO_BACKSLASH_ESCAPES: strings escaped as pymysql's ``escape_item`` does, or, without backslash
    escapes, with quotes doubled and everything else as it is.

    ``charset``: the character set ``bytes`` values are text in (a statement parameter's session
    ``character_set_client``: MySQL clients bind strings as bytes, and the primary compared them as
    text in that character set, so the target must too, not as a binary string); None: bytes are
    binary data, ``_binary X'...'`` (no escaping, so the same in every mode). Other types as
    pymysql's ``escape_item`` writes them (none of those holds a backslash or a quote)."""
    t = type(value)
    if t is str:
        text: str = value
        if _NEEDS_ESCAPE(text) is None:
            return "'" + text + "'"
        if not backslash_escapes:
            return "'" + text.replace("'", "''") + "'"
        return "'" + text.translate(_escape_table) + "'"
    if t is int:
        return str(value)
    if value is None:
        return "NULL"
    if t is bytes or t is bytearray or t is memoryview:
        data = bytes(value)
        cs = charset.lower() if charset else "binary"
        if not _CHARSET_NAME(cs):
            cs = "binary"
        if cs in _TEXT_CHARSETS:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:  # not text after all (a BLOB bound as a string): binary, as it is
                return f"_binary X'{data.hex()}'"
            return literal(text, backslash_escapes=backslash_escapes)
        return f"_{cs} X'{data.hex()}'"
    return escape_item(value, "utf8mb4")


def interpolate(sql: str, params: tuple[Any, ...], *, backslash_escapes: bool = True,
                charset: str | None = None) -> str:
    """Replace each ``?`` placeholder token (not inside strings or comments; ``backslash_escapes``: how the
    statement's own string literals are written) by a literal (``charset``: see :func:`literal`)."""
    pieces = _pieces(sql, backslash_escapes) if len(sql) <= _CACHED_TEXT else _split(sql, backslash_escapes)
    if len(pieces) - 1 != len(params):
        raise ValueError(f"{len(params)} parameters for {len(pieces) - 1} placeholders in {sql[:200]!r}")
    out = [pieces[0]]
    for piece, value in zip(pieces[1:], params, strict=True):
        out.append(literal(value, charset, backslash_escapes=backslash_escapes))
        out.append(piece)
    return "".join(out)


def _split(sql: str, backslash_escapes: bool) -> tuple[str, ...]:
    """``sql`` cut at its ``?`` placeholder tokens: the text before, between and after them."""
    out, last = [], 0
    for tok in scan(sql, backslash_escapes):
        if tok.type == "param":
            out.append(sql[last:tok.start])
            last = tok.end
    out.append(sql[last:])
    return tuple(out)


# a prepared statement's text is interpolated once per execution: it is lexed once (texts up to this long)
_CACHED_TEXT = 8192
_pieces = lru_cache(maxsize=4096)(_split)


def _match(image: dict[str, Any], key: tuple[str, ...]) -> str:
    cols = key or tuple(image)
    return " AND ".join(f"{quote_ident(c)} <=> {literal(image[c])}" for c in cols)


def row_sql(db: str, table: str, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
            pk: tuple[str, ...]) -> str:
    """One row change as a statement. Without a primary key, rows are matched on every column
    (``LIMIT 1``: identical duplicate rows are interchangeable)."""
    name = f"{quote_ident(db)}.{quote_ident(table)}"
    if op == "insert":
        assert after is not None
        cols = ", ".join(quote_ident(c) for c in after)
        vals = ", ".join(literal(v) for v in after.values())
        return f"INSERT INTO {name} ({cols}) VALUES ({vals})"
    limit = "" if pk else " LIMIT 1"
    if op == "update":
        assert before is not None and after is not None
        sets = ", ".join(f"{quote_ident(c)} = {literal(v)}" for c, v in after.items())
        return f"UPDATE {name} SET {sets} WHERE {_match(before, pk)}{limit}"
    if op == "delete":
        assert before is not None
        return f"DELETE FROM {name} WHERE {_match(before, pk)}{limit}"
    raise ValueError(f"unknown row op {op!r}")


def upsert_sql(db: str, table: str, cols: tuple[str, ...], images: list[dict[str, Any]]) -> str:
    """``images`` written over what the table holds: each row is inserted, or its existing row (by a
    unique key) set to it. Affected rows (without CLIENT_FOUND_ROWS): 0 for a row already equal."""
    names = ", ".join(quote_ident(c) for c in cols)
    values = ", ".join("(" + ", ".join(literal(image[c]) for c in cols) + ")" for image in images)
    sets = ", ".join(f"{quote_ident(c)} = VALUES({quote_ident(c)})" for c in cols)
    return (f"INSERT INTO {quote_ident(db)}.{quote_ident(table)} ({names}) VALUES {values} "
            f"ON DUPLICATE KEY UPDATE {sets}")


def count_keys_sql(db: str, table: str, pk: tuple[str, ...], keys: list[tuple[Any, ...]]) -> str:
    """How many of ``keys`` the table has a row for."""
    wanted = " OR ".join("(" + " AND ".join(f"{quote_ident(c)} = {literal(v)}" for c, v in zip(pk, key, strict=True))
                         + ")" for key in keys)
    return f"SELECT COUNT(*) FROM {quote_ident(db)}.{quote_ident(table)} WHERE {wanted}"


def verify_sql(first: tuple, items: list[tuple]) -> str:
    """The statement checking ``items`` (all of ``first``'s table and image columns): see differing_rows."""
    db, table, pk, _, image = first
    if image is None:
        return count_keys_sql(db, table, pk, [it[3] for it in items])
    return upsert_sql(db, table, tuple(image), [it[4] for it in items])


def without_columns(row: RowChange, columns: frozenset[str]) -> RowChange:
    """``row`` without ``columns`` (generated ones) in its images; the key stays in the before image."""
    after = {c: v for c, v in row.after.items() if c not in columns} if row.after is not None else None
    return RowChange(row.table, row.db, row.op, row.before, after)


def table_of(sql: str, default_db: str | None) -> str:
    """The first table a statement names (for error messages; best effort)."""
    try:
        tree = sqlglot.parse_one(sql, read="mysql")
    except sqlglot.errors.SqlglotError:
        return ""
    table = tree.find(exp.Table) if tree is not None else None
    if table is None or not table.name:
        return ""
    db = table.db or default_db
    return f"{db}.{table.name}" if db else table.name
