"""MariaDB sequences on PostgreSQL targets (pure: no I/O).

MariaDB keeps a sequence as a one-row table. ``CREATE/ALTER/DROP SEQUENCE`` are DDL; ``NEXTVAL`` hands out
values from a cache, and when the cache runs out (and on ``SETVAL``) the binlog holds an *insert* of the
sequence's whole state row (:data:`SEQUENCE_COLUMNS`). A PostgreSQL target keeps a sequence of the same
name in the database's schema:

- ``CREATE [OR REPLACE] SEQUENCE [IF NOT EXISTS] s ...`` → ``CREATE SEQUENCE`` with the same ``INCREMENT``,
  ``MINVALUE``, ``MAXVALUE``, ``START`` and ``CYCLE``; ``CACHE`` and table options are dropped (the target
  never hands out values ahead of the primary); ``OR REPLACE`` drops the old one first.
- ``ALTER SEQUENCE [IF EXISTS] s ...`` → ``ALTER SEQUENCE`` with the same options (``RESTART [WITH n]``).
- ``DROP SEQUENCE [IF EXISTS] a, b`` → ``DROP SEQUENCE ... CASCADE`` (a column default calling it goes
  with it; MariaDB keeps such a default, whose inserts then fail on the primary anyway).
- A state row (:func:`is_sequence_row`) → ``ALTER SEQUENCE`` to its increment, bounds, start and cycle, then
  ``setval(s, next_not_cached_value, false)``: the target's next value is the first the primary has not
  handed out yet, never one a row of the primary already holds. An exhausted sequence's next value lies
  outside its bounds: it is set to the bound, as used.
- ``DEFAULT NEXTVAL(s)`` / ``NEXT VALUE FOR s`` column defaults → ``DEFAULT nextval('schema.s')``
  (:mod:`replicator.pg_ddl`).

The values ``NEXTVAL`` handed out reach the target in the rows that hold them: the ingress marks
statements calling it (or omitting a column whose default does) unsafe, so they take the row form.
Shard targets: sequences and their state rows go to every shard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlglot.tokens import Token, TokenType

from dbmux.replicator.pg_ddl import read_qualified
from dbmux.replicator.pg_types import PgStatement, Untranslatable, qualified

__all__ = ["SEQUENCE_COLUMNS", "is_sequence_row", "sequence_state", "translate_sequence_ddl"]

SEQUENCE_COLUMNS = ("next_not_cached_value", "minimum_value", "maximum_value", "start_value", "increment",
                    "cache_size", "cycle_option", "cycle_count")
"""A MariaDB sequence's state row, in its column order (the binlog's row image of a sequence table)."""

_BIGINT_MIN, _BIGINT_MAX = -(2 ** 63), 2 ** 63 - 1


def is_sequence_row(after: Mapping[str, Any] | None) -> bool:
    """Whether a row image is a MariaDB sequence's state row (exactly the sequence table's columns)."""
    return after is not None and len(after) == len(SEQUENCE_COLUMNS) and tuple(after) == SEQUENCE_COLUMNS


def _int(image: Mapping[str, Any], col: str, where: str) -> int:
    v = image[col]
    if type(v) is not int:
        raise Untranslatable(f"sequence {where}: {col} is {v!r}, not an integer")
    return max(_BIGINT_MIN, min(_BIGINT_MAX, v))  # BIGINT UNSIGNED sequences: PostgreSQL's bigint range


def sequence_state(schema: str, name: str, after: Mapping[str, Any]) -> list[PgStatement]:
    """The statements giving sequence ``schema.name`` the state of a MariaDB state row."""
    where = f"{schema}.{name}"
    nxt, lo, hi, start, inc = (_int(after, c, where) for c in SEQUENCE_COLUMNS[:5])
    if inc == 0:  # MariaDB: INCREMENT 0 follows auto_increment_increment (1 unless the server sets it)
        inc = 1
    cycle = "CYCLE" if after["cycle_option"] else "NO CYCLE"
    q = qualified(schema, name)
    called = "false"
    if nxt > hi or nxt < lo:  # exhausted (or about to cycle): the bound, as handed out
        nxt, called = (hi if inc > 0 else lo), "true"
    return [PgStatement(f"ALTER SEQUENCE {q} INCREMENT BY {inc} MINVALUE {lo} MAXVALUE {hi} START WITH "
                        f"{min(max(start, lo), hi)} {cycle}"),
            PgStatement(f"SELECT setval('{q.replace(chr(39), chr(39) * 2)}', {nxt}, {called})")]


# ------------------------------------------------------------------------------------------ DDL

_DROPPED = frozenset({"CACHE", "NOCACHE", "ENGINE", "COMMENT", "AS"})  # (each with its value, if any)


_KEYWORDS = frozenset({"INCREMENT", "START", "MINVALUE", "MAXVALUE", "RESTART", "NO", "NOMINVALUE", "NOMAXVALUE",
                       "CYCLE", "NOCYCLE", *_DROPPED})


def _number(w: list[str], i: int, sql: str) -> tuple[str, int]:
    sign = ""
    if i < len(w) and w[i] in ("-", "+"):
        sign, i = ("-" if w[i] == "-" else ""), i + 1
    if i >= len(w) or not w[i].isdigit():
        raise Untranslatable("sequence option value", sql)
    return sign + w[i], i + 1


def _options(toks: list[Token], sql: str, *, alter: bool) -> list[str]:
    """MariaDB sequence options (``toks``) → PostgreSQL's spelling."""
    w = [word for t in toks for word in (t.text.upper().split() if t.token_type != TokenType.STRING else ["'"])]
    out: list[str] = []
    i = 0
    while i < len(w):
        nxt = w[i + 1] if i + 1 < len(w) else ""
        if w[i] == ",":
            i += 1
        elif w[i] in ("INCREMENT", "START", "MINVALUE", "MAXVALUE", "RESTART"):
            word, i = w[i], i + 1
            if i < len(w) and w[i] in ("BY", "WITH", "="):
                i += 1
            if word == "RESTART" and (i >= len(w) or not (w[i].isdigit() or w[i] in ("-", "+"))):
                out.append("RESTART")
                continue
            n, i = _number(w, i, sql)
            out.append({"INCREMENT": f"INCREMENT BY {n}", "START": f"START WITH {n}",
                        "RESTART": f"RESTART WITH {n}"}.get(word, f"{word} {n}"))
        elif w[i] in ("NOMINVALUE", "NOMAXVALUE") or (w[i] == "NO" and nxt in ("MINVALUE", "MAXVALUE")):
            out.append(f"NO {nxt if w[i] == 'NO' else w[i][2:]}")
            i += 2 if w[i] == "NO" else 1
        elif w[i] in ("CYCLE", "NOCYCLE") or (w[i] == "NO" and nxt == "CYCLE"):
            out.append("CYCLE" if w[i] == "CYCLE" else "NO CYCLE")
            i += 2 if w[i] == "NO" else 1
        elif w[i] in _DROPPED or (w[i] == "DEFAULT" and nxt in ("CHARSET", "CHARACTER")):
            i += 1
            while i < len(w) and w[i] != "," and w[i] not in _KEYWORDS:
                i += 1
        else:
            raise Untranslatable(f"{'ALTER' if alter else 'CREATE'} SEQUENCE option {w[i]}", sql)
    return out


def translate_sequence_ddl(sql: str, toks: list[Token], default_db: str | None) -> list[PgStatement]:
    """``CREATE [OR REPLACE] SEQUENCE``, ``ALTER SEQUENCE``, ``DROP SEQUENCE`` (see the module docstring)."""
    w = [t.text.upper() for t in toks]
    if w[0] == "DROP":
        i, exists = (4, True) if w[2:4] == ["IF", "EXISTS"] else (2, False)
        names = []
        while i < len(toks):
            q, i = read_qualified(toks, i, default_db, sql)
            names.append(q)
            if i < len(toks) and toks[i].token_type == TokenType.COMMA:
                i += 1
            elif i < len(toks) and not (w[i] in ("RESTRICT", "CASCADE") and i == len(toks) - 1):
                raise Untranslatable(f"DROP SEQUENCE option {toks[i].text}", sql)
            elif i < len(toks):
                break
        return [PgStatement(f"DROP SEQUENCE {'IF EXISTS ' if exists else ''}{', '.join(names)} CASCADE")]
    if w[0] == "ALTER":
        i, exists = (4, True) if w[2:4] == ["IF", "EXISTS"] else (2, False)
        q, i = read_qualified(toks, i, default_db, sql)
        opts = _options(toks[i:], sql, alter=True)
        return [PgStatement(f"ALTER SEQUENCE {'IF EXISTS ' if exists else ''}{q} {' '.join(opts)}")] if opts else []
    replace = w[1:3] == ["OR", "REPLACE"]
    i = 4 if replace else 2
    if w[i - 1] != "SEQUENCE":
        raise Untranslatable("CREATE TEMPORARY SEQUENCE" if "TEMPORARY" in w[:4] else "CREATE SEQUENCE form", sql)
    exists = w[i:i + 3] == ["IF", "NOT", "EXISTS"]
    q, i = read_qualified(toks, i + 3 if exists else i, default_db, sql)
    opts = _options(toks[i:], sql, alter=False)
    create = PgStatement(f"CREATE SEQUENCE {'IF NOT EXISTS ' if exists else ''}{q} {' '.join(opts)}".rstrip())
    return [PgStatement(f"DROP SEQUENCE IF EXISTS {q} CASCADE"), create] if replace else [create]
