"""SQL text for MySQL/MariaDB targets: bound parameters as escaped literals, row images as statements."""

from __future__ import annotations

from typing import Any

from pymysql.converters import escape_item

from dbmux.sqllex import scan


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def literal(value: Any) -> str:
    return escape_item(value, "utf8mb4")


def interpolate(sql: str, params: tuple, *, backslash_escapes: bool = True) -> str:
    """Replace each ``?`` placeholder token (not inside strings or comments) by an escaped literal."""
    out, last, i = [], 0, 0
    for tok in scan(sql, backslash_escapes):
        if tok.type == "param":
            if i >= len(params):
                raise ValueError(f"{len(params)} parameters for more placeholders in {sql[:200]!r}")
            out.append(sql[last:tok.start])
            out.append(literal(params[i]))
            last, i = tok.end, i + 1
    if i != len(params):
        raise ValueError(f"{len(params)} parameters for {i} placeholders in {sql[:200]!r}")
    out.append(sql[last:])
    return "".join(out)


def _match(image: dict[str, Any], key: tuple[str, ...]) -> str:
    cols = key or tuple(image)
    return " AND ".join(f"{quote_ident(c)} <=> {literal(image[c])}" for c in cols)


def row_sql(db: str, table: str, op: str, before: dict | None, after: dict | None,
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
