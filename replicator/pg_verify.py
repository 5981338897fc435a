"""Self-verification on PostgreSQL targets: the :class:`~replicator.self_verify.RowComparer` half of
:class:`~replicator.pg_applier.PostgresApplier` (a mixin: it uses the applier's connection, source
schema and row typing).

A key the row copy deleted must have no row; a key it wrote must have a row equal to its last image:
the image goes through the same typing and conversion the row copy's own apply uses (the event's
column types), and PostgreSQL compares every column with ``IS NOT DISTINCT FROM`` (one ``SELECT
count(*)`` per key; the row's own ctid query of :func:`~replicator.pg_sql.row_statement`, which matches
a row on every column). Generated columns are left out (the target holds them as plain columns).
A value that cannot be compared (it cannot be typed for its column) is counted and logged, not
reported as a difference.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import asyncpg

from dbmux.core.events import ChangeEvent, RowChange
from dbmux.replicator.pg_sequences import is_sequence_row
from dbmux.replicator.pg_sql import row_statement
from dbmux.replicator.pg_types import bit_strings
from dbmux.replicator.schema_info import StaticSchema, TableInfo
from dbmux.replicator.self_verify import UNVERIFIED, ancestors

log = logging.getLogger(__name__)

# foreign keys whose parent's update or delete changes the child (CASCADE, SET NULL, SET DEFAULT)
_CASCADING = """
SELECT cn.nspname, c.relname, pn.nspname, p.relname FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE con.contype = 'f' AND (con.confdeltype IN ('c', 'n', 'd') OR con.confupdtype IN ('c', 'n', 'd'))
"""


class PgRowComparer:
    """Self-verification methods of the PostgreSQL applier (see the module text)."""

    target: str
    _conn: asyncpg.Connection | None
    _schema: StaticSchema
    _gone: dict[tuple[str, str], TableInfo]

    def _row_typing(self, ev: ChangeEvent, row: RowChange, schema: str, table: str) -> tuple[
            tuple[str, ...], Mapping[str, int] | None, Mapping[str, str] | None]:
        raise NotImplementedError  # (the applier's)

    async def primary_key(self, db: str, table: str) -> tuple[str, ...]:
        info = self._table_info(db, table)
        return tuple(info.primary_key) if info is not None else ()

    async def cascading_parents(self, db: str, table: str) -> frozenset[tuple[str, str]]:
        assert self._conn is not None
        return ancestors(await self._conn.fetch(_CASCADING), db, table)

    async def differing_rows(self, items: list[tuple[str, str, tuple[str, ...], tuple, dict | None]],
                             events: list[ChangeEvent] | None = None) -> dict[int, str]:
        """Which ``items`` -- (db, table, primary key, key, the row it must hold or None) -- the target
        does not hold exactly, index -> what differs; ``events``: the row copy each came from (its types)."""
        conn = self._conn
        assert conn is not None
        out: dict[int, str] = {}
        for i, (db, table, pk, key, image) in enumerate(items):
            if is_sequence_row(image):  # a MariaDB sequence's state: a PostgreSQL sequence here (pg_sequences)
                continue
            schema, name = db.lower(), table.lower()
            info = self._table_info(db, table)
            if image is not None and info is not None and info.generated:
                image = {c: v for c, v in image.items() if c.lower() not in info.generated}
            by_key = dict(zip(pk, key, strict=True))
            ev = events[i] if events else None
            probe = RowChange(table, db, "delete", before=image if image is not None else by_key)
            _, bits, types = self._row_typing(ev, probe, schema, name) if ev is not None else ((), None, None)
            try:
                if image is None:
                    st = row_statement(schema, name, "delete", by_key, None, pk, types)
                    n = await conn.fetchval(f"SELECT count(*) FROM {_q(schema)}.{_q(name)} WHERE "
                                            + st.sql.split(" WHERE ", 1)[1], *st.args)
                    if n:
                        out[i] = "the target still has the row the row copy deleted"
                    continue
                before = bit_strings(image, bits) if bits else image
                st = row_statement(schema, name, "delete", before, None, (), types)
                inner = st.sql[st.sql.index("(SELECT ctid") + 1:-1]
                if await conn.fetchval(f"SELECT count(*) FROM ({inner}) x", *st.args):
                    continue
                kst = row_statement(schema, name, "delete", by_key, None, pk, types)
                has = await conn.fetchval(f"SELECT count(*) FROM {_q(schema)}.{_q(name)} WHERE "
                                          + kst.sql.split(" WHERE ", 1)[1], *kst.args)
                out[i] = "the target's row differs from the row copy" if has else "the target has no such row"
            except (asyncpg.DataError, asyncpg.PostgresError, ValueError, TypeError, OverflowError) as exc:
                if isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, asyncpg.DataError) \
                        and getattr(exc, "sqlstate", "")[:2] not in ("22", "42"):
                    raise  # (connection trouble: the apply task's retry)
                UNVERIFIED.labels(self.target, "cannot compare").inc()
                log.warning("target %s: self-verification cannot compare %s.%s key %s: %s: %s",
                            self.target, db, table, key, type(exc).__name__, exc)
        return out

    def _table_info(self, db: str, table: str) -> TableInfo | None:
        name = (db.lower(), table.lower())
        return self._schema.tables.get(name) or self._gone.get(name)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
