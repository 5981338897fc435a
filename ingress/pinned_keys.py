"""Which primary keys a statement's text pins: the rows a read reads or a write writes. Pure.

The result cache (:mod:`ingress.cache_session`) invalidates per key where both sides pin keys of a table
whose primary key is one integer column: a write to row 7 then leaves the cached answer about row 5.

* :func:`read_keys`: ``SELECT ... FROM t [[AS] a] WHERE ...`` -- one table, no join, no subquery anywhere
  (its answer would depend on other rows), no set operation -- whose ``WHERE`` condition is, at its top
  level, a conjunction (``AND``) with a conjunct ``pk = <integer>``, ``<integer> = pk`` or
  ``pk IN (<integers>)``: it reads only those keys' rows, whatever else the condition says.
* :func:`write_keys`: ``UPDATE t ... SET`` (not of the key) and single-table ``DELETE`` with such a
  ``WHERE``; ``INSERT``/``REPLACE ... VALUES`` whose column list names the key and whose every row gives
  it an integer literal other than 0 (which an ``AUTO_INCREMENT`` key turns into the next value). (Which
  statements may use these -- triggers, other unique keys, cascades -- is the caller's:
  :meth:`CacheGate.write_slots`.)

A prepared statement's ``?`` counts as the integer it is bound to (an integer value, not a string).
Anything else pins nothing (``None``): the statement then counts for its whole table. The walk is on
:func:`dbmux.core.sqllex.scan` tokens at parenthesis depth 0. A conjunct is only trusted between two
``AND``\\ s of the top level, so words that bind looser than ``AND`` or hold an ``AND`` of their own without
parentheses (``OR``, ``XOR``, ``||``, ``&&``, ``:=``, ``BETWEEN``, ``CASE``) make the condition
unpinned, as do executable comments (a server may skip them) and texts that lex differently with and
without backslash escapes (the session's ``NO_BACKSLASH_ESCAPES`` is not asked).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dbmux.core.sqllex import LexError, Token, scan_with_markers
from dbmux.ingress.classify import lexed
from dbmux.ingress.write_shape import WriteShape

__all__ = ["read_keys", "write_keys"]

Keys = frozenset[int]

_LOOSE = frozenset({"OR", "XOR", "BETWEEN", "CASE", "WHEN", "THEN", "ELSE", "END"})
_LOOSE_OPS = frozenset({"||", "&&", ":="})
_SELECT_ENDS = frozenset({"GROUP", "HAVING", "WINDOW", "ORDER", "LIMIT", "FOR", "LOCK", "INTO", "PROCEDURE"})
_WRITE_ENDS = frozenset({"ORDER", "LIMIT", "RETURNING"})
_NOT_SINGLE = frozenset({"UNION", "INTERSECT", "EXCEPT", "JOIN", "STRAIGHT_JOIN", "NATURAL", "USING", "ON"})


def _lex(sql: str, params: Sequence[Any] | None = None) -> list[Token] | None:
    """``sql``'s tokens; a ``?`` bound to an integer (``params``: a prepared statement's values, in order)
    becomes a token of type ``int``."""
    try:
        lexed_tokens, markers, _ = lexed(sql)  # (the texts just classified: lexed once for all of them)
        if markers or ("\\" in sql and tuple(scan_with_markers(sql, False)[0]) != lexed_tokens):
            return None
    except LexError:
        return None
    if params:
        bound = iter(params)
        return [Token("int", str(v), t.start, t.end) if t.type == "param" and type(v := next(bound, None)) is int
                else t for t in lexed_tokens]
    return list(lexed_tokens)


def _integer(tokens: list[Token], i: int, j: int) -> int | None:
    """The integer literal tokens[i:j] spell (``5``, ``-5``), else None."""
    if j - i == 2 and tokens[i].text == "-":
        i += 1
        sign = -1
    else:
        sign = 1
    if j - i == 1 and tokens[i].type == "number" and tokens[i].text.isascii() and tokens[i].text.isdigit():
        return sign * int(tokens[i].text)
    if j - i == 1 and tokens[i].type == "int":  # (a bound parameter: see _lex)
        return sign * int(tokens[i].text)
    return None


def _is_column(tokens: list[Token], i: int, j: int, pk: str) -> bool:
    """Do tokens[i:j] name column ``pk`` (``pk``, ``a.pk``, ``db.t.pk``, backquoted or not)?"""
    n = j - i
    if n not in (1, 3, 5) or any(tokens[k].text != "." for k in range(i + 1, j, 2)):
        return False
    return all(tokens[k].type in ("word", "ident") for k in range(i, j, 2)) and tokens[j - 1].name.lower() == pk


def _conjunct_keys(tokens: list[Token], i: int, j: int, pk: str) -> Keys | None:
    """Keys if tokens[i:j] are exactly ``pk = n``, ``n = pk`` or ``pk IN (n, ...)``."""
    for k in range(i + 1, j - 1):
        if tokens[k].text in ("=", "<=>"):
            if _is_column(tokens, i, k, pk):
                n = _integer(tokens, k + 1, j)
            elif _is_column(tokens, k + 1, j, pk):
                n = _integer(tokens, i, k)
            else:
                return None
            return None if n is None else frozenset((n,))
        if tokens[k].type == "word" and tokens[k].upper == "IN":
            if not _is_column(tokens, i, k, pk) or tokens[k + 1].text != "(" or tokens[j - 1].text != ")":
                return None
            keys: set[int] = set()
            start = k + 2
            for m in range(k + 2, j):
                if tokens[m].text in (",", ")"):
                    n = _integer(tokens, start, m)
                    if n is None:
                        return None
                    keys.add(n)
                    start = m + 1
            return frozenset(keys)
    return None


def _where_keys(tokens: list[Token], i: int, j: int, pk: str) -> Keys | None:
    """Keys pinned by the condition tokens[i:j] (module docstring)."""
    depth, start, found = 0, i, None
    for k in range(i, j + 1):
        t = tokens[k] if k < j else None
        if t is not None and t.text == "(":
            depth += 1
        elif t is not None and t.text == ")":
            depth -= 1
        elif depth == 0 and (t is None or (t.type == "word" and t.upper == "AND")):
            if found is None:
                found = _conjunct_keys(tokens, start, k, pk)
            start = k + 1
        elif depth == 0 and t is not None and ((t.type == "word" and t.upper in _LOOSE) or t.text in _LOOSE_OPS):
            return None
    return found


def _clause(tokens: list[Token], start: int, ends: frozenset[str]) -> tuple[int, int] | None:
    """The span of the top-level WHERE condition at or after ``start`` (None: no WHERE)."""
    depth, where = 0, None
    for k in range(start, len(tokens)):
        t = tokens[k]
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif depth == 0 and t.text == ";":
            return None if where is None else (where, k)
        elif depth == 0 and t.type == "word":
            if where is None and t.upper == "WHERE":
                where = k + 1
            elif where is not None and t.upper in ends:
                return where, k
    return None if where is None else (where, len(tokens))


def read_keys(sql: str, pk: str, params: Sequence[Any] | None = None) -> Keys | None:
    """The keys (values of the integer primary key column ``pk``, lower case) a SELECT reads, or None
    (``params``: a prepared statement's bound values)."""
    tokens = _lex(sql, params)
    if not tokens or tokens[0].type != "word" or tokens[0].upper != "SELECT":
        return None
    depth, frm = 0, None
    for k in range(1, len(tokens)):
        t = tokens[k]
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif t.type == "word" and (t.upper == "SELECT" or (depth == 0 and t.upper in _NOT_SINGLE)):
            return None
        elif depth == 0 and t.type == "word" and t.upper == "FROM" and frm is None:
            frm = k
    span = None if frm is None else _clause(tokens, frm + 1, _SELECT_ENDS)
    if span is None or not _plain_table(tokens, frm + 1, span[0] - 1):  # type: ignore[operator]
        return None
    return _where_keys(tokens, span[0], span[1], pk)


def _plain_table(tokens: list[Token], i: int, j: int) -> bool:
    """Are tokens[i:j] one table reference: ``[db.]t [[AS] alias]``?"""
    names = [t for t in tokens[i:j] if t.text != "." and t.upper != "AS"]
    return 1 <= len(names) <= 3 and all(t.type in ("word", "ident") for t in names) and \
        not any(t.text in (",", "(") for t in tokens[i:j])


def write_keys(sql: str, shape: WriteShape, pk: str, params: Sequence[Any] | None = None) -> Keys | None:
    """The keys (of integer primary key column ``pk``, lower case) a single-table write writes, or None
    (``params``: a prepared statement's bound values)."""
    if shape.multi_table or len(shape.tables) != 1:
        return None
    tokens = _lex(sql, params)
    if not tokens:
        return None
    if shape.verb in ("UPDATE", "DELETE"):
        if shape.verb == "UPDATE" and (shape.columns is None or pk in shape.columns):
            return None  # (a key that changes moves the row to another key)
        span = _clause(tokens, 1, _WRITE_ENDS)
        return None if span is None else _where_keys(tokens, span[0], span[1], pk)
    if shape.source != "values" or shape.columns is None or pk not in shape.columns or pk in shape.dup_columns:
        return None
    return _values_keys(tokens, pk)


def _values_keys(tokens: list[Token], pk: str) -> Keys | None:
    """INSERT/REPLACE ``t (cols) VALUES (row), ...``: the key each row gives."""
    k = next((n for n, t in enumerate(tokens) if t.text == "("), None)
    if k is None:
        return None
    columns, k = _group(tokens, k)
    names = [tokens[a].name.lower() if b - a == 1 and tokens[a].type in ("word", "ident") else "" for a, b in columns]
    if k >= len(tokens) or tokens[k].upper not in ("VALUES", "VALUE") or names.count(pk) != 1:
        return None
    at, keys = names.index(pk), set()
    k += 1
    while k < len(tokens) and tokens[k].text == "(":
        values, k = _group(tokens, k)
        if len(values) != len(names):
            return None
        n = _integer(tokens, *values[at])
        if not n:  # (0 into an AUTO_INCREMENT key takes the next value, unless NO_AUTO_VALUE_ON_ZERO)
            return None
        keys.add(n)
        if k < len(tokens) and tokens[k].text == ",":
            k += 1
    return frozenset(keys) if keys else None


def _group(tokens: list[Token], k: int) -> tuple[list[tuple[int, int]], int]:
    """The comma-separated spans inside the parentheses opening at ``k``, and the index after them."""
    depth, start, spans = 0, k + 1, []
    for m in range(k, len(tokens)):
        text = tokens[m].text
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth == 0:
                spans.append((start, m))
                return spans, m + 1
        elif text == "," and depth == 1:
            spans.append((start, m))
            start = m + 1
    return [], len(tokens)
