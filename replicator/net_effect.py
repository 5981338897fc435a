"""A group-commit unit of row changes reduced to its net effect per primary key (pure, but for
:func:`net_applicable`, the target lookup deciding which tables allow it).

A MySQL target applies a unit of binlog row copies in one transaction; what readers of the target see
is the state at the unit's end, so the unit may be applied as its net effect instead of row by row:
for each key the unit touches, the row's last image, or its absence. For a backlog of OLTP transactions
that is one multi-row ``DELETE``, one multi-row ``INSERT`` and one multi-row upsert per table, instead
of one statement per row change (the server parses and plans each statement: most of the time of a
row-by-row catch-up).

Only where the result is provably the same as applying the changes in order (the caller decides per
table; :func:`net_sql` assumes it): a primary key of integer columns (Python equality is the server's:
no collation folds two keys into one), no other unique key (the order of changes could matter to it),
no foreign key to or from the table (cascades, checks in between), full row images. Per key:

* first change an insert, last state present -> a plain ``INSERT`` (a row already there is a duplicate
  key error, as row by row: the unit is then applied row by row and the error reported there);
* first change an insert, last state absent -> nothing (the row came and went inside the unit);
* first change an update or delete, last state absent -> ``DELETE`` by key;
* first change an update or delete, last state present -> ``INSERT ... ON DUPLICATE KEY UPDATE``.
An update that changes the key is a delete of the old key and an insert of the new one.
"""

from __future__ import annotations

from typing import Any

from dbmux.core.events import ChangeEvent, RowChange
from dbmux.replicator.mysql_sql import literal, quote_ident, without_columns

__all__ = ["NetEffect", "net_applicable", "net_effect", "net_run_sql", "net_sql"]

_MAX_STATEMENT_BYTES = 4 * 1024 * 1024


class NetEffect:
    """The net effect of one table's row changes: per key, whether its first change was an insert, and
    its last image (None: absent). Keys in first-touched order."""

    __slots__ = ("pk", "first_insert", "last")

    def __init__(self, pk: tuple[str, ...]) -> None:
        self.pk = pk
        self.first_insert: dict[tuple, bool] = {}
        self.last: dict[tuple, dict[str, Any] | None] = {}

    def _key(self, image: dict[str, Any]) -> tuple:
        return tuple(image[c] for c in self.pk)

    def _set(self, key: tuple, image: dict[str, Any] | None, inserted: bool) -> None:
        if key not in self.first_insert:
            self.first_insert[key] = inserted
        self.last[key] = image

    def add(self, row: RowChange) -> None:
        if row.op == "insert":
            assert row.after is not None
            self._set(self._key(row.after), row.after, True)
        elif row.op == "delete":
            assert row.before is not None
            self._set(self._key(row.before), None, False)
        else:
            assert row.before is not None and row.after is not None
            old, new = self._key(row.before), self._key(row.after)
            if old != new:
                self._set(old, None, False)
                self._set(new, row.after, True)  # (a key taken over: first seen as an insert of it)
            else:
                self._set(new, row.after, False)


def net_effect(rows: list[RowChange], pk: tuple[str, ...]) -> NetEffect:
    net = NetEffect(pk)
    for r in rows:
        net.add(r)
    return net


def _chunked(head: str, tail: str, values: list[str]) -> list[str]:
    out: list[str] = []
    part: list[str] = []
    size = 0
    for v in values:
        if part and size + len(v) > _MAX_STATEMENT_BYTES:
            out.append(head + ", ".join(part) + tail)
            part, size = [], 0
        part.append(v)
        size += len(v) + 2
    if part:
        out.append(head + ", ".join(part) + tail)
    return out


def net_sql(db: str, table: str, net: NetEffect) -> list[str]:
    """The statements applying ``net`` to ``db.table`` (see the module docstring)."""
    name = f"{quote_ident(db)}.{quote_ident(table)}"
    deletes: list[tuple] = []
    inserts: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    upserts: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for key, image in net.last.items():
        first_insert = net.first_insert[key]
        if image is None:
            if not first_insert:
                deletes.append(key)
        else:
            (inserts if first_insert else upserts).setdefault(tuple(image), []).append(image)
    out: list[str] = []
    if deletes:
        cols = ", ".join(quote_ident(c) for c in net.pk)
        keys = ["(" + ", ".join(literal(v) for v in k) + ")" if len(k) > 1 else literal(k[0]) for k in deletes]
        out += _chunked(f"DELETE FROM {name} WHERE ({cols}) IN (", ")", keys)
    for images, tail in ((inserts, ""), (upserts, None)):
        for cols_t, rows in images.items():
            names = ", ".join(quote_ident(c) for c in cols_t)
            end = tail if tail is not None else (" ON DUPLICATE KEY UPDATE " + ", ".join(
                f"{quote_ident(c)} = VALUES({quote_ident(c)})" for c in cols_t))
            values = ["(" + ", ".join([literal(v) for v in r.values()]) + ")" for r in rows]
            out += _chunked(f"INSERT INTO {name} ({names}) VALUES ", end, values)
    return out


def net_run_sql(events: list[ChangeEvent], pks: dict[tuple[str, str], tuple[str, ...]],
                generated: dict[tuple[str, str], frozenset[str]]) -> list[str]:
    """The statements applying ``events`` (row changes only, of tables that allow it) as their net effect,
    per table in first-touched order (``generated``: columns the target computes, left out)."""
    tables: dict[tuple[str, str], NetEffect] = {}
    for ev in events:
        for row in ev.rows:
            key = (row.db, row.table)
            net = tables.get(key)
            if net is None:
                net = tables[key] = NetEffect(pks[key])
            if gen := generated[key]:
                row = without_columns(row, gen)
            net.add(row)
    return [sql for (db, table), net in tables.items() for sql in net_sql(db, table, net)]


_INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})


async def net_applicable(cur, db: str, table: str, pk: tuple[str, ...]) -> bool:
    """Can a unit's row changes of ``db.table`` be applied as their net effect (replicator/net_effect.py):
    an integer primary key, no other unique key, no foreign key to or from it?"""
    if not pk:
        return False
    await cur.execute("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                      "AND TABLE_NAME = %s", (db, table))
    types = {c: str(t).lower() for c, t in await cur.fetchall()}
    if not all(types.get(c) in _INTEGER_TYPES for c in pk):
        return False
    await cur.execute("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                      "AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY'", (db, table))
    (unique,), = await cur.fetchall()
    await cur.execute("SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE (CONSTRAINT_SCHEMA = %s "
                      "AND TABLE_NAME = %s) OR (UNIQUE_CONSTRAINT_SCHEMA = %s AND REFERENCED_TABLE_NAME = %s)",
                      (db, table, db, table))
    (fks,), = await cur.fetchall()
    return not unique and not fks
