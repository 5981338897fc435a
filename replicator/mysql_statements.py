"""An ingress statement as a MySQL/MariaDB target runs it (pure): its exact bytes, read in the character
set they were sent in, with its bound parameters as literals and the session values it depends on."""

from __future__ import annotations

import re

from dbmux.core.events import SessionContext, Statement
from dbmux.replicator.mysql_sql import interpolate, literal

__all__ = ["APPLIER_CHARSET", "statement_sql", "statement_steps", "statement_text", "charset_sql"]

_LAST_INSERT_ID = re.compile(r"(?i)\bLAST_INSERT_ID\s*\(\s*\)")


def statement_sql(st: Statement, ctx: SessionContext | None) -> list[str]:
    """:func:`statement_steps` as one list, for a multi-statement request."""
    before, sql, after = statement_steps(st, ctx)
    return [*before, sql, *after]


def statement_steps(st: Statement, ctx: SessionContext | None) -> tuple[list[str], str, list[str]]:
    """An ingress statement as the target runs it: (the session values it depends on, the statement
    with its bound parameters as literals, what restores the applier's session after it).

    The statement goes as the exact bytes the primary ran (:func:`_statement_text`), read in the
    character set they were sent in (the statement's ``charset``: ``character_set_client`` and
    ``character_set_connection``, as ``SET NAMES`` sets them; utf8mb4 again afterwards). String
    parameters are text in that character set, as the primary took them; the statement's own literals
    are read with the session's NO_BACKSLASH_ESCAPES setting."""
    before = []
    if st.insert_id:
        before.append(f"SET insert_id = {int(st.insert_id)}")
    if st.last_insert_id and _LAST_INSERT_ID.search(st.sql):
        before.append(f"DO LAST_INSERT_ID({int(st.last_insert_id)})")
    text = statement_text(st)
    if st.params is not None:
        charset = st.charset if st.charset is not None else (ctx.charset if ctx else None)  # (v1 events: none)
        text = interpolate(text, st.params, charset=charset,
                           backslash_escapes="NO_BACKSLASH_ESCAPES" not in ((ctx.sql_mode or "") if ctx else ""))
    if st.charset is None or st.charset.lower() == APPLIER_CHARSET:
        return before, text, []
    return [*before, charset_sql(st.charset)], text, [charset_sql(APPLIER_CHARSET)]


APPLIER_CHARSET = "utf8mb4"  # what the applier's connection speaks (connect())


def statement_text(st: Statement) -> str:
    """The statement's exact bytes as a str the driver sends unchanged: the connection encodes queries
    as UTF-8 with ``surrogateescape``, which turns the bytes' ``surrogateescape`` decoding back into them."""
    return st.sql if st.raw is None else st.raw.decode("utf-8", "surrogateescape")


def charset_sql(charset: str) -> str:
    """Read what follows in ``charset`` (results stay utf8mb4, as the driver decodes them)."""
    return f"SET character_set_client = {literal(charset)}, character_set_connection = {literal(charset)}"
