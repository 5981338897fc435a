"""Foreign keys on shard targets: kept only where parent and child rows provably live on the same shard.

A shard holds only its part of a sharded table, so a foreign key to a sharded (or another shard's)
table fails on the shard whose child row has its parent elsewhere (``Key (a_id)=(1) is not
present``). The primary enforced the constraint already; what reaches a shard is its result. So a
``CREATE TABLE`` or ``ALTER TABLE ... ADD FOREIGN KEY`` reaches a shard without the ``FOREIGN KEY``
clauses whose parent is not provably there: it is kept when the parent is a reference table (every
shard has all its rows) or when parent and child are both ``single`` tables on the same shard.
Consequence (documented): ``ON DELETE/UPDATE CASCADE`` across tables does not run on shards for a
dropped constraint; the primary's cascaded changes are not in MySQL's binlog as rows either, so such
schemas need the cascade written out by the application (or the child as a reference table).

Pure text surgery on the lexer's tokens (:mod:`dbmux.core.sqllex`): everything else of the statement
stays byte for byte as the primary ran it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from dbmux.core.sqllex import LexError, Token, scan
from dbmux.replicator.shard_shapes import TableName

__all__ = ["ForeignKey", "foreign_keys", "without_foreign_keys", "drop_foreign_key_if_exists"]


def _word(t: Token) -> str:
    return t.upper if t.type == "word" else ""


def _name(tokens: list[Token], i: int) -> TableName | None:
    if i >= len(tokens) or tokens[i].type not in ("word", "ident"):
        return None
    if i + 2 < len(tokens) and tokens[i + 1].text == "." and tokens[i + 2].type in ("word", "ident"):
        return tokens[i].name.lower(), tokens[i + 2].name.lower()
    return None, tokens[i].name.lower()


class ForeignKey(NamedTuple):
    """One FOREIGN KEY clause: the parent table (None: unreadable), its own columns, the parent's."""

    parent: TableName | None
    columns: tuple[str, ...] = ()
    references: tuple[str, ...] = ()


def _clauses(sql: str) -> tuple[list[Token], int, list[tuple[int, int, ForeignKey]]] | None:
    """The statement's tokens, the depth FOREIGN KEY clauses sit at, and each clause as (first token,
    token after it, the key). None: not a CREATE TABLE / ALTER TABLE with a FOREIGN KEY."""
    if "FOREIGN" not in sql.upper():
        return None
    try:
        toks = scan(sql)
    except LexError:
        return None
    w = [_word(t) for t in toks]
    if w[:1] == ["CREATE"] and "TABLE" in w[1:4]:
        level = 1
    elif w[:2] == ["ALTER", "TABLE"] or w[:3] == ["ALTER", "ONLINE", "TABLE"] or w[:3] == ["ALTER", "IGNORE", "TABLE"]:
        level = 0
    else:
        return None
    out = []
    depth = 0
    i = 0
    while i < len(toks):
        text = toks[i].text
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif w[i] == "FOREIGN" and w[i + 1:i + 2] == ["KEY"] and depth == level:
            start = i
            if start >= 2 and w[start - 2] == "CONSTRAINT":
                start -= 2
            elif start >= 1 and w[start - 1] == "CONSTRAINT":
                start -= 1
            if level == 0:  # ALTER TABLE: only ADD [CONSTRAINT [name]] FOREIGN KEY (not DROP FOREIGN KEY name)
                if start < 1 or w[start - 1] != "ADD":
                    i += 1
                    continue
                start -= 1
            j, d, parent = i, depth, None
            lists: list[list[str]] = []  # the clause's column lists: its own, then the referenced ones
            while j < len(toks):
                if toks[j].text == "(":
                    d += 1
                    if d == depth + 1:
                        lists.append([])
                elif toks[j].text == ")":
                    if d == depth:
                        break
                    d -= 1
                elif toks[j].text == "," and d == depth:
                    break
                elif w[j] == "REFERENCES" and parent is None:
                    parent = _name(toks, j + 1)
                elif d == depth + 1 and lists and toks[j].type in ("word", "ident"):
                    lists[-1].append(toks[j].name.lower())
                j += 1
            fk = ForeignKey(parent, tuple(lists[0]) if lists else (), tuple(lists[1]) if len(lists) > 1 else ())
            out.append((start, j, fk))
            i = j
            continue
        i += 1
    return toks, level, out


def foreign_keys(sql: str) -> list[TableName | None]:
    """The parent tables of the FOREIGN KEY clauses of a CREATE/ALTER TABLE (None: unreadable parent)."""
    found = _clauses(sql)
    return [fk.parent for _, _, fk in found[2]] if found else []


def without_foreign_keys(sql: str, keep: Callable[[ForeignKey], bool]) -> str | None:
    """``sql`` without the FOREIGN KEY clauses ``keep`` rejects (one with an unreadable parent is dropped
    too). None when an ALTER TABLE has nothing left to do; ``sql`` itself when nothing changes."""
    found = _clauses(sql)
    if not found:
        return sql
    toks, level, clauses = found
    drop = [(s, e) for s, e, fk in clauses if fk.parent is None or not keep(fk)]
    if not drop:
        return sql
    cuts: list[tuple[int, int]] = []  # character ranges to remove
    for s, e in drop:
        if s > 0 and toks[s - 1].text == ",":  # ", FOREIGN KEY ..." : from the comma before it
            cuts.append((toks[s - 1].start, toks[e - 1].end))
        elif e < len(toks) and toks[e].text == ",":  # the first element: through the comma after it
            cuts.append((toks[s].start, toks[e + 1].start if e + 1 < len(toks) else toks[e].end))
        else:  # the only element or spec
            cuts.append((toks[s].start, toks[e - 1].end))
    text = sql
    for a, b in sorted(cuts, reverse=True):
        text = text[:a] + text[b:]
    if level == 0:  # ALTER TABLE: anything left after the table name?
        rest = scan(text)
        w = [_word(t) for t in rest]
        name_at = 2 if w[1] == "TABLE" else 3
        after = name_at + (3 if len(rest) > name_at + 2 and rest[name_at + 1].text == "." else 1)
        if after >= len(rest):
            return None
    return text


def drop_foreign_key_if_exists(sql: str) -> str:
    """``ALTER TABLE ... DROP FOREIGN KEY name`` with ``IF EXISTS`` (MariaDB syntax): a shard may never
    have had the constraint (:func:`without_foreign_keys`); the primary dropped it, so must the shard."""
    if "FOREIGN" not in sql.upper():
        return sql
    try:
        toks = scan(sql)
    except LexError:
        return sql
    w = [_word(t) for t in toks]
    if w[:1] != ["ALTER"]:
        return sql
    out, last = [], 0
    for i in range(len(toks) - 2):
        if w[i] == "DROP" and w[i + 1] == "FOREIGN" and w[i + 2] == "KEY" and w[i + 3:i + 5] != ["IF", "EXISTS"]:
            out.append(sql[last:toks[i + 2].end] + " IF EXISTS")
            last = toks[i + 2].end
    return "".join(out) + sql[last:] if out else sql
