"""Pure helpers of ``dbmux rebuild``: database renaming in MySQL statements, and what a DDL statement
does to the tables a rebuild follows."""

from __future__ import annotations

import re
from collections.abc import Mapping

from dbmux.core.sqllex import Token, scan
from dbmux.replicator.errors import BackfillError
from dbmux.replicator.mysql_sql import quote_ident

__all__ = ["parse_renames", "renamed_sql", "creates_table"]

_CREATE_TABLE = re.compile(r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?TABLE\b", re.I)


def parse_renames(specs: list[str]) -> dict[str, str]:
    """``["OLD=NEW", ...]`` -> ``{OLD: NEW}``; a malformed or repeated spec is an error naming it."""
    out: dict[str, str] = {}
    for spec in specs:
        old, sep, new = spec.partition("=")
        if not sep or not old.strip() or not new.strip() or "." in old or "." in new:
            raise BackfillError(f"--rename-db {spec!r}: expected OLD=NEW (database names, e.g. shop=shop_restored)")
        old, new = old.strip(), new.strip()
        if old in out:
            raise BackfillError(f"--rename-db names database {old!r} twice")
        out[old] = new
    return out


def renamed_sql(sql: str, renames: Mapping[str, str], backslash_escapes: bool = True) -> str:
    """``sql`` with every database qualifier ``OLD.`` (``OLD``.``t``, ``OLD.t``) that ``renames`` names
    spelled ``NEW``. Names in strings and comments are untouched; unqualified names follow the session's
    database (the caller switches it)."""
    if not renames:
        return sql
    tokens = scan(sql, backslash_escapes)
    out: list[str] = []
    pos = 0
    for i, t in enumerate(tokens):
        if _is_qualifier(tokens, i) and t.name in renames:
            out.append(sql[pos:t.start])
            out.append(quote_ident(renames[t.name]))
            pos = t.end
    out.append(sql[pos:])
    return "".join(out)


def _is_qualifier(tokens: list[Token], i: int) -> bool:
    t = tokens[i]
    if t.type not in ("word", "ident"):
        return False
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    prev = tokens[i - 1] if i > 0 else None
    # `db`.`t` -- not `t`.`col`'s table (after a dot), and the dot right after the name (no space: 1 .5)
    return (nxt is not None and nxt.type == "op" and nxt.text == "." and nxt.start == t.end
            and not (prev is not None and prev.type == "op" and prev.text == "." and prev.end == t.start))


def creates_table(sql: str) -> bool:
    """Is ``sql`` a CREATE TABLE (not a temporary one)?"""
    m = _CREATE_TABLE.match(sql)
    return m is not None and "TEMPORARY" not in m.group(0).upper()
