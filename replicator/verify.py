"""``dbmux verify``: prove that every target holds what the primary holds, by chunked checksums.

For every replicated table (each base table of the primary outside ``mysql``, ``information_schema``,
``performance_schema``, ``sys`` and ``dbmux_meta``, selected by the target's ``tables`` patterns) the
primary is walked once in primary-key order, ``chunk_rows`` rows at a time (keyset pagination). Each
chunk is compared with every target concurrently: the target's rows in the same key range are read,
every value is normalised to a canonical text (:mod:`replicator.checksum`), rows are hashed and the
chunk digests compared; on a mismatch the rows are diffed by key. Ranges are contiguous —
``(previous chunk's last key, this chunk's last key]`` and, after the walk, everything past the last
key — so a row the target has and the primary lacks is found wherever it sits. PostgreSQL targets
whose key has a text/binary/enum column (collations order those differently) are read by the chunk's
key list instead, and rows only on the target are counted from ``count(*)``.

Shard targets (``targets.<name>.shard``): the seam is an :data:`OwnsPredicate` per target,
``owns(db, table, pk) -> bool`` with ``pk`` the key as read from the primary (aiomysql types). With one,
only the primary's rows the shard owns are compared ("owned" mode). Without one (the shard map does not
exist yet) verify checks the *subset* property: every row on the shard exists on the primary with the
same values; primary rows absent from the shard are not differences ("subset" mode, ``rows target`` is
what the shard holds).

Shard rules per table (owned mode; :func:`shard_expectation`): a table the map makes ``single`` on
another shard is not expected on this one ("not on this shard" when absent; any rows it holds are
extra); a ``single`` table on this shard and a ``reference`` table must be whole copies.

Replication state: equal tables prove nothing about a target that stopped replicating (its tables may
have been dropped on the primary too). The primary's GTID position is read with its snapshot (on
MariaDB exactly the position the snapshot reflects); each target is given up to ``wait_s`` seconds to
reach it (not when it is halted or has no position), then its snapshot is taken and its stored
position and status row (``dbmux_meta``) are read inside it, so they describe exactly the data
compared. A target that is halted, waiting for a GTID gap, or behind that position in any domain fails
(:func:`dbmux.replicator.status.judge`), whatever its tables say. A target with no stored position
(never replicated) is compared by content only.

Consistency: the primary and each target are read inside one snapshot each (``START TRANSACTION WITH
CONSISTENT SNAPSHOT`` / ``REPEATABLE READ READ ONLY``). A target caught up exactly to the primary's
snapshot compares exactly; with writes going on a target may be past it, and the newest writes show up
as differences: run verify once writes are paused and the replicators have caught up.

Tables without a primary key are "not verifiable (no primary key)": only their row counts are
compared, and they fail when the counts differ (for a shard holding rows by key: when the shard has
more rows than the primary; a shard not owning the table: when it has any).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dbmux.core.config import Config, TargetConfig
from dbmux.core.gtid import Gtid
from dbmux.replicator.checksum import chunk_digest, column_kind, key_text, row_digest
from dbmux.replicator.errors import ReplicatorError
from dbmux.replicator.filtering import table_selected
from dbmux.replicator.shard_target import current_map, shard_owners
from dbmux.replicator.status import HALTED, NOT_STARTED, judge
from dbmux.replicator.verify_readers import (
    MySQLReader,
    PostgresReader,
    ReplicationMeta,
    Row,
    TableShape,
    TargetTable,
    connect_reader,
)
from dbmux.replicator.verify_report import KeyDiff, Replication, Status, TableResult, TargetReport, VerifyReport
from dbmux.shardmap import ShardMap
from dbmux.shardmap.errors import ShardMapError

log = logging.getLogger(__name__)

OwnsPredicate = Callable[[str, str, tuple[Any, ...]], bool]
"""``owns(db, table, pk) -> bool``: does this shard target own the primary's row with key ``pk``?"""

KeyText = tuple[str | None, ...]  # a primary key as canonical texts (checksum.key_text)

DEFAULT_CHUNK_ROWS = 1000
DEFAULT_MAX_KEYS = 20
DEFAULT_WAIT_S = 10.0  # how long a target that is behind may take to catch up before it counts as behind
POLL_S = 0.25

# what a target is expected to hold of a table (shard_expectation)
WHOLE = "whole"  # every row: a full target, or a shard owning a reference or single table
BY_KEY = "by key"  # the rows the shard owns by key (owns predicate)
NONE = "none"  # nothing: a single table on another shard
SUBSET = "subset"  # some: a shard target without a map (subset mode)


class VerifyError(ReplicatorError):
    """verify could not run (primary unreachable, bad arguments); the message names what and where."""


# --- one target's comparison of one table ------------------------------------------------------------

class _TableCheck:
    """State of one target while the primary walks one table."""

    def __init__(self, target: _Target, shape: TableShape, tt: TargetTable, max_keys: int) -> None:
        self.target, self.shape, self.tt, self.max_keys = target, shape, tt, max_keys
        assert target.reader is not None  # (only targets that could be opened are checked)
        self.reader: MySQLReader | PostgresReader = target.reader
        self.result = TableResult(shape.name)
        self.kinds = tuple(column_kind(t, target_type=tt.types[i], json_checked=shape.columns[i] in shape.json_columns)
                           for i, t in enumerate(shape.types))
        self.pk_kinds = tuple(self.kinds[i] for i in shape.pk)
        self.by_range = self.reader.range_safe(shape)
        self.matched = 0  # target rows seen by key lookup (keys mode)

    def _digests(self, rows: Sequence[Row]) -> dict[KeyText, bytes]:
        return {key_text(self.shape.key_of(r), self.pk_kinds): row_digest(r, self.kinds) for r in rows}

    def _text(self, key: Row | None) -> KeyText | None:
        return None if key is None else key_text(key, self.pk_kinds)

    def _note_key(self, what: str, key: KeyText) -> None:
        self.result.diff_rows += 1
        if len(self.result.keys) < self.max_keys:
            self.result.keys.append(KeyDiff(what, key))

    async def chunk(self, rows: Sequence[Row], after: Row | None, upto: Row) -> None:
        shape, owns = self.shape, self.target.owns
        mine = rows if owns is None else [r for r in rows if owns(shape.db, shape.table, shape.key_of(r))]
        reader = self.reader
        if self.by_range:
            t_rows = await reader.fetch_range(shape, self.tt, after, upto)
        else:
            t_rows = await reader.fetch_keys(shape, self.tt, [shape.key_of(r) for r in mine])
            self.matched += len(t_rows)
        self.result.chunks += 1
        self.result.rows_primary += len(mine)
        self.result.rows_target += len(t_rows)
        p, t = self._digests(mine), self._digests(t_rows)
        subset = self.target.mode == "subset"
        if not subset and chunk_digest(p.values()) == chunk_digest(t.values()):
            return
        before = self.result.diff_rows
        for key, digest in t.items():
            if key not in p:
                self._note_key("extra on target", key)
            elif p[key] != digest:
                self._note_key("changed", key)
        if not subset:
            for key in p:
                if key not in t:
                    self._note_key("missing on target", key)
        if self.result.diff_rows > before:
            self.result.ranges.append((self._text(after), self._text(upto)))

    async def finish(self, last: Row | None) -> None:
        """Rows past the primary's last key (range mode), or beyond the matched ones (keys mode)."""
        reader, shape = self.reader, self.shape
        if self.by_range:
            extra = await reader.count(shape, self.tt, last)
            if extra:
                self.result.rows_target += extra
                self.result.diff_rows += extra
                self.result.ranges.append((self._text(last), None))
                room = self.max_keys - len(self.result.keys)
                if room > 0:
                    rows = await reader.fetch_range(shape, self.tt, last, None, limit=room, order=True)
                    for key in self._digests(rows):
                        self.result.keys.append(KeyDiff("extra on target", key))
        else:
            total = await reader.count(shape, self.tt)
            extra = total - self.matched
            self.result.rows_target = total
            if extra > 0:
                self.result.diff_rows += extra
                self.result.note = f"{extra} rows only on target"
        if self.result.diff_rows:
            self.result.status = Status.DIFFERENT


def shard_expectation(shard_map: ShardMap, shard: str, db: str, table: str, pk: tuple[str, ...]) -> str:
    """What shard ``shard`` holds of ``db.table`` (primary key ``pk``) by the shard map's rules:
    :data:`WHOLE` (reference, or single on it), :data:`NONE` (single on another shard) or :data:`BY_KEY`."""
    try:
        rule = shard_map.rule(db, table, pk)
    except ShardMapError:
        return BY_KEY  # (the owns predicate names the problem for each row)
    if rule.kind == "reference":
        return WHOLE
    if rule.kind == "single":
        return WHOLE if rule.shard == shard else NONE
    return BY_KEY


@dataclass(slots=True)
class _Target:
    config: TargetConfig
    reader: MySQLReader | PostgresReader | None
    owns: OwnsPredicate | None
    report: TargetReport
    shard_map: ShardMap | None = None

    @property
    def mode(self) -> str:
        return self.report.mode

    def expects(self, shape: TableShape) -> str:
        if not self.config.shard:
            return WHOLE
        if self.owns is None or self.shard_map is None:
            return SUBSET
        return shard_expectation(self.shard_map, self.config.shard, shape.db, shape.table, shape.pk_names)


# --- the run --------------------------------------------------------------------------------------

def replication(primary: dict[str, Gtid] | None, meta: ReplicationMeta | None) -> Replication:
    """The report's replication line from :func:`dbmux.replicator.status.judge` (no lag tolerance)."""
    j = judge(primary, meta, now_s=None)
    applied = ",".join(a.gtid for _, a in sorted(meta.applied.items())) if meta else ""
    text = ",".join(str(g) for _, g in sorted(primary.items())) if primary is not None else ""
    return Replication(j.state, j.detail, applied, text, j.lag_txns)


async def _caught_up_meta(reader: MySQLReader | PostgresReader, tc: TargetConfig, topic: str,
                          primary: dict[str, Gtid] | None, wait_s: float) -> ReplicationMeta | None:
    """The target's replication state once it caught up with ``primary``, is halted, has none, or
    ``wait_s`` passed (then as it is)."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        meta = await reader.replication_meta(tc.name, topic)
        j = judge(primary, meta)
        if j.caught_up or j.state in (HALTED, NOT_STARTED) or asyncio.get_running_loop().time() >= deadline:
            return meta
        await asyncio.sleep(POLL_S)


async def _open_target(tc: TargetConfig, owns: OwnsPredicate | None, topic: str, primary: dict[str, Gtid] | None,
                       wait_s: float, shard_map: ShardMap | None) -> _Target:
    dsn = tc.dsn
    mode = "full" if not tc.shard else ("owned" if owns is not None else "subset")
    report = TargetReport(tc.name, dsn.redacted(), mode)
    reader: MySQLReader | PostgresReader | None = None
    try:
        reader = await connect_reader(tc.name, dsn)
        meta = await _caught_up_meta(reader, tc, topic, primary, wait_s)
        await reader.begin()
        if meta is not None:
            try:  # again inside the snapshot: exactly the position the compared data reflects
                meta = await reader.replication_meta(tc.name, topic) or meta
            except Exception as exc:  # noqa: BLE001 - keep the one read just before
                log.warning("target %s: cannot read its position inside the snapshot: %s", tc.name, exc)
                await reader.recover()
    except Exception as exc:  # noqa: BLE001 - any driver/network error: report it, go on with the others
        report.error = (f"cannot read target '{tc.name}' at {dsn.redacted()}: {type(exc).__name__}: {exc} "
                        "(is the server up and the URL in targets." + tc.name + ".url right?)")
        if reader is not None:
            with contextlib.suppress(Exception):  # already failing: the first error is the one reported
                await reader.close()
        return _Target(tc, None, owns, report, shard_map)
    report.replication = replication(primary, meta)
    return _Target(tc, reader, owns, report, shard_map)


async def _recover(target: _Target) -> None:
    """After a failed read, make the target readable again for the next table."""
    try:
        assert target.reader is not None
        await target.reader.recover()
    except Exception as exc:  # noqa: BLE001
        log.warning("target %s cannot recover: %s", target.config.name, exc)


def no_pk_note(expects: str, rows_primary: int, rows_target: int) -> str:
    """Why a table without primary key fails ("" when its row count is what ``expects`` allows)."""
    if expects == NONE:
        return f"{rows_target} rows on a shard that does not hold this table" if rows_target else ""
    if expects == WHOLE:
        return "" if rows_target == rows_primary else "row counts differ"
    return "more rows than the primary" if rows_target > rows_primary else ""


async def _no_pk_table(primary: MySQLReader, shape: TableShape, targets: list[tuple[_Target, TargetTable]]
                       ) -> None:
    p_count = await primary.count(shape, None)
    for target, tt in targets:
        expects = target.expects(shape)
        res = TableResult(shape.name, Status.NOT_ON_SHARD if expects == NONE else Status.NOT_VERIFIABLE,
                          rows_primary=0 if expects == NONE else p_count)
        try:
            assert target.reader is not None
            res.rows_target = await target.reader.count(shape, tt)
        except Exception as exc:  # noqa: BLE001
            res.status, res.note = Status.ERROR, f"{type(exc).__name__}: {exc}"
            await _recover(target)
        else:
            res.note = no_pk_note(expects, p_count, res.rows_target)
        target.report.tables.append(res)


async def _verify_table(primary: MySQLReader, shape: TableShape, targets: list[_Target], chunk_rows: int,
                        max_keys: int) -> None:
    located: list[tuple[_Target, TargetTable]] = []
    p_count: int | None = None
    for target in targets:
        assert target.reader is not None
        try:
            tt = await target.reader.locate(shape)
        except Exception as exc:  # noqa: BLE001
            note = f"{type(exc).__name__}: {exc}"
            target.report.tables.append(TableResult(shape.name, Status.ERROR, note=note))
            await _recover(target)
            continue
        if tt is None and target.expects(shape) == NONE:
            target.report.tables.append(TableResult(shape.name, Status.NOT_ON_SHARD))
        elif tt is None:
            if p_count is None:
                p_count = await primary.count(shape, None)
            target.report.tables.append(TableResult(shape.name, Status.MISSING, rows_primary=p_count))
        elif tt.missing:
            cols = ", ".join(shape.columns[i] for i in tt.missing)
            target.report.tables.append(TableResult(shape.name, Status.DIFFERENT,
                                                    note=f"columns missing on target: {cols}"))
        else:
            located.append((target, tt))
    if not located:
        return
    if not shape.pk:
        await _no_pk_table(primary, shape, located)
        return
    checks = [_TableCheck(t, shape, tt, max_keys) for t, tt in located]
    failed: dict[int, str] = {}

    async def step(i: int, coro: Awaitable[None]) -> None:
        try:
            await coro
        except Exception as exc:  # noqa: BLE001 - this table on this target could not be read
            log.warning("verify %s on %s failed: %s", shape.name, checks[i].target.config.name, exc)
            failed[i] = f"{type(exc).__name__}: {exc}"
            await _recover(checks[i].target)

    after: Row | None = None
    while True:
        rows = await primary.fetch_after(shape, after, chunk_rows)
        if not rows:
            break
        upto = shape.key_of(rows[-1])
        await asyncio.gather(*(step(i, c.chunk(rows, after, upto)) for i, c in enumerate(checks) if i not in failed))
        after = upto
        if len(rows) < chunk_rows:
            break
    await asyncio.gather(*(step(i, c.finish(after)) for i, c in enumerate(checks) if i not in failed))
    for i, check in enumerate(checks):
        if i in failed:
            check.result.status, check.result.note = Status.ERROR, failed[i]
        check.target.report.tables.append(check.result)


async def verify(config: Config, *, target: str | None = None,
                 owners: Mapping[str, OwnsPredicate] | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 max_keys: int = DEFAULT_MAX_KEYS, wait_s: float = DEFAULT_WAIT_S) -> VerifyReport:
    """Compare every replicated table of the primary with each target (or only ``target``), and check
    that each target had caught up with the primary (waiting up to ``wait_s`` seconds for it).

    ``owners`` maps a shard target's name to its :data:`OwnsPredicate`; shard targets without one are
    checked in subset mode. Unreachable targets are reported (``TargetReport.error``), not raised;
    an unreachable primary raises :class:`VerifyError`.
    """
    if chunk_rows < 1:
        raise VerifyError(f"chunk size {chunk_rows} must be at least 1")
    if wait_s < 0:
        raise VerifyError(f"wait {wait_s} must not be negative")
    chosen = [config.target(target)] if target else list(config.targets)
    if not chosen:
        raise VerifyError(f"{config.source} configures no targets; add a [targets.NAME] table")
    shard_map = None
    if any(tc.shard for tc in chosen):
        try:
            if owners is None:
                owners = await shard_owners(config, chosen)
            shard_map = await current_map(config)
        except Exception as exc:  # noqa: BLE001 - primary unreachable or a bad recorded map
            raise VerifyError(f"cannot load the shard map for the shard targets: {type(exc).__name__}: {exc}") from None
    owners = owners or {}
    pdsn = config.primary.dsn
    try:
        primary = await MySQLReader.connect("primary", pdsn)
        await primary.begin()
    except Exception as exc:  # noqa: BLE001
        raise VerifyError(f"cannot read the primary at {pdsn.redacted()}: {type(exc).__name__}: {exc} "
                          "(check primary.url and that the server is up)") from None
    position: dict[str, Gtid] | None
    try:
        position, _ = await primary.gtid_position(snapshot=True)
    except Exception as exc:  # noqa: BLE001 - then no target can be shown caught up
        log.warning("cannot read the primary's GTID position: %s", exc)
        position = None
    targets = list(await asyncio.gather(*(
        _open_target(tc, owners.get(tc.name), config.topic, position, wait_s, shard_map) for tc in chosen)))
    try:
        shapes = await primary.list_tables()
        for shape in shapes:
            wanted = [t for t in targets if t.reader is not None
                      and table_selected(t.config.tables, shape.db, shape.table)]
            if wanted:
                log.info("verifying %s on %s", shape.name, ", ".join(t.config.name for t in wanted))
                await _verify_table(primary, shape, wanted, chunk_rows, max_keys)
    finally:
        await primary.close()
        for t in targets:
            if t.reader is not None:
                await t.reader.close()
    return VerifyReport([t.report for t in targets])
