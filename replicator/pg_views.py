"""MySQL views on PostgreSQL targets (pure: no I/O).

``CREATE [OR REPLACE] [ALGORITHM = ...] [DEFINER = ...] [SQL SECURITY ...] VIEW v [(columns)] AS SELECT ...
[WITH [CASCADED | LOCAL] CHECK OPTION]`` becomes ``CREATE [OR REPLACE] VIEW "db"."v" [(columns)] AS`` the
SELECT in PostgreSQL's spelling (tables qualified with the statement's database, names lowercased, as
for DML); ``ALTER VIEW`` becomes ``CREATE OR REPLACE VIEW`` (PostgreSQL keeps the view's columns: a
changed column list halts, naming the error); ``DROP VIEW [IF EXISTS] a, b`` drops ``IF EXISTS`` (a
``DROP TABLE``, with ``CASCADE`` here, takes its views along; MySQL keeps them, invalid) with ``CASCADE``.
ALGORITHM, DEFINER and SQL SECURITY are dropped (the target's view runs with its owner's rights). A
SELECT the translator cannot render faithfully (a function it does not know, variables, ...) is
Untranslatable: the target halts naming it, and the view is created by hand in PostgreSQL's syntax. On a
shard target a view over a sharded table shows that shard's rows, as the table does.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.tokens import Token, TokenType

from dbmux.replicator.pg_ddl import pg_expr, read_qualified
from dbmux.replicator.pg_types import PgStatement, Untranslatable, quote_ident

__all__ = ["translate_view_ddl"]


def translate_view_ddl(sql: str, toks: list[Token], default_db: str | None,
                       prepare: Callable[[exp.Expression, str | None, str], None]) -> list[PgStatement]:
    """``CREATE``/``ALTER``/``DROP VIEW`` (see the module docstring); ``prepare`` qualifies and lowercases
    the SELECT's names as for DML (:func:`replicator.pg_sql._prepare_dml`)."""
    w = [" ".join(t.text.upper().split()) for t in toks]
    if w[0] == "DROP":
        i = 4 if w[2:4] == ["IF", "EXISTS"] else 2
        names = []
        while i < len(toks) and w[i] not in ("RESTRICT", "CASCADE"):
            q, i = read_qualified(toks, i, default_db, sql)
            names.append(q)
            if i < len(toks) and toks[i].token_type == TokenType.COMMA:
                i += 1
        # IF EXISTS always: a DROP TABLE (CASCADE here) may have taken the view along; MySQL keeps it, invalid
        return [PgStatement(f"DROP VIEW IF EXISTS {', '.join(names)} CASCADE")]
    at = w.index("VIEW")
    replace = w[0] == "ALTER" or w[1:3] == ["OR", "REPLACE"]
    q, i = read_qualified(toks, at + 1, default_db, sql)
    columns = ""
    if i < len(toks) and toks[i].token_type == TokenType.L_PAREN:
        close = next((j for j in range(i, len(toks)) if toks[j].token_type == TokenType.R_PAREN), None)
        if close is None:
            raise Untranslatable("view column list", sql)
        columns = " (" + ", ".join(quote_ident(t.text.lower()) for t in toks[i + 1:close]
                                   if t.token_type != TokenType.COMMA) + ")"
        i = close + 1
    if i >= len(toks) or w[i] != "AS":
        raise Untranslatable("CREATE VIEW form", sql)
    end, check = len(toks), ""
    if len(toks) - i > 3 and w[-2:] == ["CHECK", "OPTION"]:
        end = len(toks) - (4 if w[-3] in ("CASCADED", "LOCAL") else 3)
        check = " WITH " + (f"{w[-3]} " if w[-3] in ("CASCADED", "LOCAL") else "") + "CHECK OPTION"
    body = sql[toks[i + 1].start:toks[end - 1].end + 1] if end > i + 1 else ""
    try:
        node = sqlglot.parse_one(body, read="mysql", error_level=ErrorLevel.RAISE)
    except SqlglotError as e:
        raise Untranslatable(f"view query sqlglot cannot parse ({str(e).splitlines()[0]})", sql) from None
    if not isinstance(node, exp.Query):
        raise Untranslatable("view body that is not a query", sql)
    prepare(node, default_db, sql)
    return [PgStatement(f"CREATE {'OR REPLACE ' if replace else ''}VIEW {q}{columns} AS {pg_expr(node, sql)}{check}")]
