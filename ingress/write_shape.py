"""What a DML statement writes, read from its tokens: tables, the columns it sets, how rows are chosen.

:func:`write_shape` answers, for ``INSERT``, ``REPLACE``, ``UPDATE`` and ``DELETE`` (every form MySQL
and MariaDB accept at the top level: ``INSERT ... VALUES|SET|SELECT|TABLE``, ``ON DUPLICATE KEY
UPDATE``, row aliases, multi-table ``UPDATE`` and both multi-table ``DELETE`` syntaxes, ``ORDER BY``
and ``LIMIT``, ``RETURNING``), what :mod:`ingress.statement_safety` needs to decide whether the
statement computes the same rows on a target as on the primary, given the written tables' schema
facts (:mod:`ingress.schema_facts`):

* ``tables``: the tables it may write -- for a multi-table statement, every table of its table
  references (a superset: aliases cannot hide a table), never those only read in subqueries;
* ``columns``: the columns it gives a value, lower-case (``None``: every column -- ``INSERT`` without
  a column list); ``uses_default``: ``DEFAULT`` or ``DEFAULT(col)`` appears as a value (the column's
  default is evaluated: a clock default is then *not* set by the statement);
* ``source`` (``values``, ``set``, ``select``; ``""`` for UPDATE/DELETE), ``rows`` (VALUES rows),
  ``ignore``, ``on_duplicate`` and ``dup_columns`` (ON DUPLICATE KEY UPDATE assignments);
* ``limit`` (a top-level LIMIT of UPDATE/DELETE), ``order_by`` (its top-level ORDER BY columns when
  each is a plain column, else ``None``), ``nested_limit`` (a LIMIT anywhere else: a subquery, an
  INSERT's SELECT).

It is a token walk (:func:`dbmux.core.sqllex.scan` tokens), not sqlglot: sqlglot's MySQL dialect
refuses ``INSERT ... SET``, ``UPDATE IGNORE``, ``DELETE ... ORDER BY ... LIMIT`` and ``DEFAULT(col)``,
all common. Anything it does not recognise gives ``None``: the caller must then treat the statement
as not provably safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbmux.core.sqllex import Token

__all__ = ["WriteShape", "write_shape"]


@dataclass(frozen=True, slots=True)
class WriteShape:
    """What one DML statement writes; see the module docstring."""

    verb: str
    tables: tuple[str, ...]
    columns: frozenset[str] | None = None
    uses_default: bool = False
    source: str = ""
    rows: int = 0
    ignore: bool = False
    on_duplicate: bool = False
    dup_columns: frozenset[str] = frozenset()
    limit: bool = False
    order_by: tuple[str, ...] | None = None
    nested_limit: bool = False
    multi_table: bool = False


_INSERT_MODIFIERS = {"LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE"}
_DELETE_MODIFIERS = {"LOW_PRIORITY", "QUICK", "IGNORE"}
_QUERY_STARTS = {"SELECT", "WITH", "TABLE", "VALUES"}
_JOINS = {"JOIN", "STRAIGHT_JOIN"}
# Words that can never name a table where a table reference is expected.
_NOT_TABLES = {"SELECT", "WITH", "SET", "WHERE", "ON", "USING", "JOIN", "VALUES", "VALUE", "FROM", "ORDER", "LIMIT",
               "GROUP", "HAVING", "UNION", "RETURNING"}


class _Unknown(Exception):
    """The statement has a form this walk does not know."""


def write_shape(tokens: list[Token]) -> WriteShape | None:
    """The shape of the DML statement ``tokens`` (trailing ``;`` removed), or None when its form is
    not recognised (see the module docstring)."""
    if not tokens or tokens[0].type != "word":
        return None
    verb = tokens[0].upper
    try:
        if verb in ("INSERT", "REPLACE"):
            return _insert(tokens, verb)
        if verb == "UPDATE":
            return _update(tokens)
        if verb == "DELETE":
            return _delete(tokens)
    except (_Unknown, IndexError):
        return None
    return None


# ------------------------------------------------------------------------------------------ helpers


def _close(tokens: list[Token], i: int) -> int:
    """Index of the ``)`` matching the ``(`` at tokens[i]."""
    depth = 0
    for j in range(i, len(tokens)):
        text = tokens[j].text
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth == 0:
                return j
    raise _Unknown("unbalanced parentheses")


def _name(tokens: list[Token], i: int) -> tuple[str, int]:
    """``name`` or ``db.name`` at tokens[i] (backquotes removed); (text, next index)."""
    t = tokens[i]
    if t.type not in ("word", "ident") or (t.type == "word" and t.upper in _NOT_TABLES):
        raise _Unknown(f"expected a name at {t.text!r}")
    if i + 2 < len(tokens) and tokens[i + 1].text == "." and tokens[i + 2].type in ("word", "ident"):
        return f"{t.name}.{tokens[i + 2].name}", i + 3
    return t.name, i + 1


def _top_level(tokens: list[Token], start: int, words: set[str]) -> int:
    """Index of the first depth-0 word of ``words`` at or after ``start`` (len(tokens): none)."""
    depth = 0
    for j in range(start, len(tokens)):
        t = tokens[j]
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif depth == 0 and t.type == "word" and t.upper in words:
            return j
    return len(tokens)


def _is_on_duplicate(tokens: list[Token], j: int) -> bool:
    return tokens[j].upper == "ON" and j + 1 < len(tokens) and tokens[j + 1].upper == "DUPLICATE"


def _assignments(tokens: list[Token], start: int, end: int) -> frozenset[str]:
    """Column names assigned by ``col = expr, t.col = expr, ...`` in tokens[start:end] (lower-case)."""
    cols: set[str] = set()
    expect = True
    depth = 0
    for j in range(start, end):
        t = tokens[j]
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif depth == 0 and t.text == ",":
            expect = True
            continue
        if expect and depth == 0:
            name, nxt = _name(tokens, j)
            if nxt < len(tokens) and tokens[nxt].text == "." and nxt + 1 < end:  # db.t.col
                name, nxt = tokens[nxt + 1].name, nxt + 2
            if nxt >= end or tokens[nxt].text not in ("=", ":="):
                raise _Unknown("expected an assignment")
            cols.add(name.rsplit(".", 1)[-1].lower())
            expect = False
    return frozenset(cols)


def _order_by(tokens: list[Token], start: int, end: int) -> tuple[str, ...] | None:
    """Plain column names of ``ORDER BY a, t.b DESC`` in tokens[start:end]; None for any expression."""
    cols: list[str] = []
    j = start
    while j < end:
        t = tokens[j]
        if t.type not in ("word", "ident"):
            return None
        name, j = _name(tokens, j)
        if j < end and tokens[j].text == "." and j + 1 < end:
            name, j = tokens[j + 1].name, j + 2
        cols.append(name.rsplit(".", 1)[-1].lower())
        if j < end and tokens[j].upper in ("ASC", "DESC"):
            j += 1
        if j < end:
            if tokens[j].text != ",":
                return None
            j += 1
    return tuple(cols)


def _table_refs(tokens: list[Token], start: int, end: int) -> list[str]:
    """Every table named by the table references in tokens[start:end] (joins, nested parentheses,
    comma lists), skipping derived tables (subqueries are only read)."""
    names: list[str] = []
    expect = True
    j = start
    while j < end:
        t = tokens[j]
        if expect:
            if t.text == "(":
                if j + 1 < end and tokens[j + 1].upper in _QUERY_STARTS | {"("}:
                    j = _close(tokens, j) + 1  # a derived table: read only
                    expect = False
                else:
                    j += 1  # parenthesised joins: a table comes next
                continue
            if t.type == "word" and t.upper == "LATERAL":
                j += 1
                continue
            name, j = _name(tokens, j)
            names.append(name)
            expect = False
            continue
        if t.text == ",":
            expect = True
        elif t.type == "word" and t.upper in _JOINS:
            expect = True
        elif t.text == "(":
            j = _close(tokens, j)  # index hints, PARTITION (...), ON/USING parts
        j += 1
    if not names:
        raise _Unknown("no table")
    return names


def _limits(tokens: list[Token], start: int, end: int) -> tuple[bool, bool]:
    """(a depth-0 LIMIT, a LIMIT inside parentheses) in tokens[start:end]."""
    top = nested = False
    depth = 0
    for j in range(start, end):
        t = tokens[j]
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif t.type == "word" and t.upper == "LIMIT":
            if depth == 0:
                top = True
            else:
                nested = True
    return top, nested


def _uses_default(tokens: list[Token], start: int) -> bool:
    return any(t.type == "word" and t.upper == "DEFAULT" for t in tokens[start:])


# ------------------------------------------------------------------------------------------ statements


def _insert(tokens: list[Token], verb: str) -> WriteShape:
    n = len(tokens)
    i = 1
    ignore = False
    while tokens[i].type == "word" and tokens[i].upper in _INSERT_MODIFIERS:
        ignore = ignore or tokens[i].upper == "IGNORE"
        i += 1
    if tokens[i].upper == "INTO":
        i += 1
    table, i = _name(tokens, i)
    if i < n and tokens[i].upper == "PARTITION":
        i = _close(tokens, i + 1) + 1
    columns: frozenset[str] | None = None
    if i < n and tokens[i].text == "(" and not (i + 1 < n and tokens[i + 1].upper in _QUERY_STARTS | {"("}):
        close = _close(tokens, i)
        items: list[str] = []  # (t.col or db.t.col: the last name of each item)
        expect = True
        for t in tokens[i + 1 : close]:
            if t.text == ",":
                expect = True
            elif t.text == "." and items and not expect:
                items.pop()
                expect = True
            elif expect and t.type in ("word", "ident"):
                items.append(t.name.lower())
                expect = False
            else:
                raise _Unknown("column list")
        columns = frozenset(items)
        i = close + 1
    first = tokens[i] if i < n else None
    if first is None:
        raise _Unknown("no source")
    rows = 0
    dup_at = n
    if first.upper in ("VALUES", "VALUE") and i + 1 < n and (tokens[i + 1].text == "(" or tokens[i + 1].upper == "ROW"):
        source = "values"
        j = i + 1
        empty_row = False
        while j < n:
            if tokens[j].upper == "ROW":
                j += 1
            if tokens[j].text != "(":
                raise _Unknown("VALUES row")
            close = _close(tokens, j)
            empty_row = empty_row or close == j + 1
            rows += 1
            j = close + 1
            if j < n and tokens[j].text == ",":
                j += 1
                continue
            break
        if empty_row and columns is None:
            columns = frozenset()  # INSERT INTO t VALUES (): every column takes its default
        dup_at = _top_level(tokens, j, {"ON", "RETURNING"})
    elif first.upper == "SET":
        source = "set"
        end = _top_level(tokens, i + 1, {"ON", "RETURNING"})
        assigned = _assignments(tokens, i + 1, end)
        columns = assigned if columns is None else columns | assigned
        dup_at = end
    elif first.upper in _QUERY_STARTS or first.text == "(":
        source = "select"
        dup_at = i
        while True:
            dup_at = _top_level(tokens, dup_at, {"ON", "RETURNING"})
            if dup_at >= n or tokens[dup_at].upper == "RETURNING" or _is_on_duplicate(tokens, dup_at):
                break
            dup_at += 1  # the ON of a join
    else:
        raise _Unknown("INSERT source")
    while dup_at < n and tokens[dup_at].upper == "ON" and not _is_on_duplicate(tokens, dup_at):
        dup_at = _top_level(tokens, dup_at + 1, {"ON", "RETURNING"})
    on_duplicate = dup_at < n and _is_on_duplicate(tokens, dup_at)
    dup_columns: frozenset[str] = frozenset()
    if on_duplicate:
        j = dup_at + 2
        if tokens[j].upper != "KEY" or tokens[j + 1].upper != "UPDATE":
            raise _Unknown("ON DUPLICATE KEY UPDATE")
        end = _top_level(tokens, j + 2, {"RETURNING"})
        dup_columns = _assignments(tokens, j + 2, end)
    top, nested = _limits(tokens, i, n)
    return WriteShape(verb, (table,), columns=columns, uses_default=_uses_default(tokens, i), source=source,
                      rows=rows, ignore=ignore, on_duplicate=on_duplicate, dup_columns=dup_columns,
                      nested_limit=nested or (source == "select" and top))


def _update(tokens: list[Token]) -> WriteShape:
    n = len(tokens)
    i = 1
    ignore = False
    while tokens[i].type == "word" and tokens[i].upper in ("LOW_PRIORITY", "IGNORE"):
        ignore = ignore or tokens[i].upper == "IGNORE"
        i += 1
    set_at = _top_level(tokens, i, {"SET"})
    if set_at >= n:
        raise _Unknown("UPDATE without SET")
    tables = _table_refs(tokens, i, set_at)
    multi = len(tables) > 1 or any(t.text == "," or t.upper in _JOINS for t in tokens[i:set_at])
    end = _top_level(tokens, set_at + 1, {"WHERE", "ORDER", "LIMIT"})
    columns = _assignments(tokens, set_at + 1, end)
    limit, order_by, nested = _tail(tokens, end)
    _, nested_set = _limits(tokens, set_at + 1, end)
    return WriteShape("UPDATE", tuple(dict.fromkeys(tables)), columns=columns,
                      uses_default=_uses_default(tokens, set_at), ignore=ignore, limit=limit, order_by=order_by,
                      nested_limit=nested or nested_set, multi_table=multi)


def _delete(tokens: list[Token]) -> WriteShape:
    n = len(tokens)
    i = 1
    ignore = False
    while tokens[i].type == "word" and tokens[i].upper in _DELETE_MODIFIERS:
        ignore = ignore or tokens[i].upper == "IGNORE"
        i += 1
    clause_words = {"WHERE", "ORDER", "LIMIT", "RETURNING"}
    if tokens[i].upper == "FROM":
        using = _top_level(tokens, i + 1, {"USING"})
        if using < n:  # DELETE FROM t1, t2 USING <references>
            end = _top_level(tokens, using + 1, clause_words)
            tables = _table_refs(tokens, using + 1, end) + _table_refs(tokens, i + 1, using)
            multi = True
        else:
            end = _top_level(tokens, i + 1, clause_words)
            tables = _table_refs(tokens, i + 1, end)
            multi = len(tables) > 1
    else:  # DELETE t1, t2 FROM <references>
        from_at = _top_level(tokens, i, {"FROM"})
        if from_at >= n:
            raise _Unknown("DELETE without FROM")
        end = _top_level(tokens, from_at + 1, clause_words)
        tables = _table_refs(tokens, from_at + 1, end)
        multi = True
    limit, order_by, nested = _tail(tokens, end)
    return WriteShape("DELETE", tuple(dict.fromkeys(tables)), ignore=ignore, limit=limit, order_by=order_by,
                      nested_limit=nested, multi_table=multi)


def _tail(tokens: list[Token], start: int) -> tuple[bool, tuple[str, ...] | None, bool]:
    """(top-level LIMIT, its ORDER BY columns, a LIMIT nested in WHERE) from ``start`` (the WHERE,
    ORDER BY, LIMIT or RETURNING clauses of UPDATE/DELETE)."""
    n = len(tokens)
    order_at = _top_level(tokens, start, {"ORDER"})
    limit_at = _top_level(tokens, start, {"LIMIT"})
    returning = _top_level(tokens, start, {"RETURNING"})
    order_by = None
    if order_at < n and order_at + 1 < n and tokens[order_at + 1].upper == "BY":
        order_by = _order_by(tokens, order_at + 2, min(limit_at, returning))
    _, nested = _limits(tokens, start, n)
    return limit_at < n, order_by, nested
