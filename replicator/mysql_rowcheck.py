"""Self-verification's check of a MySQL target (:mod:`replicator.self_verify`): do rows hold what the row
copies say? Part of :class:`~replicator.mysql_applier.MySQLApplier`; and the session row images are applied in."""

from __future__ import annotations

import aiomysql
import pymysql

from dbmux.core.transient import is_transient, mysql_errno
from dbmux.replicator.errors import ApplyError
from dbmux.replicator.mysql_sql import literal, verify_sql

# The session row images are applied in: they hold every column's value as the primary stored it, with
# TIMESTAMP values in UTC (binlog.row_decoder), and a zero in an AUTO_INCREMENT column stays zero. (Without
# it they ran in whatever an earlier ingress event had set: another time zone shifted TIMESTAMPs, and
# NO_BACKSLASH_ESCAPES misread the escaped literals.) The same as backfill's session.
ROW_SESSION = ("NO_AUTO_VALUE_ON_ZERO", "+00:00")


class RowChecks:
    """What :class:`~replicator.mysql_applier.MySQLApplier` checks rows with (its connection, its generated
    columns and its session state)."""

    connection: aiomysql.Connection
    _generated: dict
    _session: tuple

    async def _rollback(self) -> None:
        raise NotImplementedError

    async def differing_rows(self, items: list[tuple[str, str, tuple[str, ...], tuple, dict | None]],
                             events: list | None = None) -> dict[int, str]:
        """Self-verification (:mod:`replicator.self_verify`): which ``items`` -- (db, table, primary key,
        key, the row it must hold or None for none) -- the target does not hold exactly, index -> what
        differs. The images are written in a transaction that is rolled back; a row already equal is
        not changed (affected rows 0), so the server compares, byte for byte. Nothing is left changed."""
        parts: list[tuple[str, list[int]]] = []  # (statement, the items it covers)
        groups: dict[tuple, list[int]] = {}
        items = list(items)  # (the caller's list is left as it is)
        for i, (db, table, pk, _, image) in enumerate(items):
            if image is not None and (generated := self._generated.get((db, table))):  # (primary_key() found)
                image = {c: v for c, v in image.items() if c not in generated}
                items[i] = (db, table, pk, items[i][3], image)
            groups.setdefault((db, table, pk, None if image is None else tuple(image)), []).append(i)
        for idx in groups.values():
            for n in range(0, len(idx), 500):
                part = idx[n:n + 500]
                parts.append((verify_sql(items[part[0]], [items[i] for i in part]), part))
        counts = await self._rolled_back([sql for sql, _ in parts])
        suspects = [(sql, part) for (sql, part), n in zip(parts, counts, strict=True) if n != 0]
        if not suspects:
            return {}
        # which rows: each on its own (few: a difference is rare)
        singles = [i for _, part in suspects for i in part]
        single_counts = await self._rolled_back([verify_sql(items[i], [items[i]]) for i in singles])
        out: dict[int, str] = {}
        for i, got in zip(singles, single_counts, strict=True):
            if isinstance(got, str):
                out[i] = got
            elif items[i][4] is None and got:
                out[i] = "the target still has the row the row copy deleted"
            elif items[i][4] is not None and got == 1:
                out[i] = "the target has no such row"
            elif items[i][4] is not None and got:
                out[i] = "the target's row differs from the row copy"
        return out

    async def _rolled_back(self, statements: list[str]) -> list[int | str]:
        """Run ``statements`` in one rolled-back transaction, in the session row images are applied in,
        without foreign-key checks; per statement its affected rows (a SELECT: its first value), or, when
        it failed, the error (each statement then runs on its own)."""
        head = ["START TRANSACTION", f"SET SESSION sql_mode = {literal(ROW_SESSION[0])}, "
                f"time_zone = {literal(ROW_SESSION[1])}",
                "SET @dbmux_fkc = @@foreign_key_checks, foreign_key_checks = 0"]
        self._session = ()
        out: list[int | str] = []
        try:
            async with self.connection.cursor() as cur:
                await cur.execute(";\n".join([*head, *statements, "ROLLBACK", "SET foreign_key_checks = @dbmux_fkc"]))
                for n in range(len(head) + len(statements)):
                    if n:
                        await cur.nextset()
                    if n >= len(head):
                        out.append((await cur.fetchone())[0] if cur.description else cur.rowcount)
                while await cur.nextset():
                    pass
            return out
        except pymysql.err.MySQLError as exc:
            await self._rollback()
            if is_transient(exc):
                raise ApplyError(f"self-verification: {exc}", errno=mysql_errno(exc), retriable=True) from exc
            async with self.connection.cursor() as cur:
                await cur.execute("SET foreign_key_checks = @dbmux_fkc")
            if len(statements) == 1:
                return [f"error {mysql_errno(exc)}: {exc.args[1] if len(exc.args) > 1 else exc}"]
        return [r for sql in statements for r in await self._rolled_back([sql])]

