"""PostgreSQL applier, real servers: runs of row inserts go by COPY; a row that already exists makes the
COPY undo itself to its savepoint and the run is applied by INSERT ... ON CONFLICT (the row form's
idempotent meaning), in the same target transaction as the position."""

from __future__ import annotations

import asyncio

import pytest

from dbmux.core.events import ChangeEvent, RowChange
from dbmux.core.gtid import Gtid
from dbmux.replicator.errors import ApplyError
from dbmux.replicator.pg_applier import COPY_FALLBACKS, ROWS_COPIED, PostgresApplier
from dbmux.replicator.positions import PartitionKey, TargetPosition

from .pg_applier_case import pg_applier_case


def _events(db: str, first_seq: int, ids: list[int], per_event: int, value=lambda i: f"v{i}"):
    out = []
    for n, start in enumerate(range(0, len(ids), per_event)):
        rows = tuple(RowChange(table="t", db=db, op="insert", after={"id": i, "v": value(i)})
                     for i in ids[start:start + per_event])
        out.append(ChangeEvent(gtid=Gtid("0", "1", first_seq + n), source="binlog", ts_ms=1, db=db, rows=rows))
    return out


async def _apply(applier: PostgresApplier, events: list[ChangeEvent], topic: str, first_offset: int,
                 prepared: bool) -> None:
    batch = [(ev, first_offset + i) for i, ev in enumerate(events)]
    pos = TargetPosition({PartitionKey(topic, 0): first_offset + len(events)}, {"0": events[-1].gtid.seq})
    last = {"0": events[-1]}
    ready = applier.prepare(batch, pos, last) if prepared else None
    assert (ready is not None) is prepared
    await applier.apply(batch, pos, last, ready)


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "built-at-apply"])
def test_copy_then_fallback_on_an_existing_row(stack, prepared):
    async def main():
        async with pg_applier_case(stack, "copy", "t (id BIGINT PRIMARY KEY, v VARCHAR(40))") as case:
            db, target, topic, applier, pg = case.db, case.target, case.topic, case.applier, case.pg
            copied0, fallbacks0 = ROWS_COPIED.labels(target)._value.get(), COPY_FALLBACKS.labels(target)._value.get()
            # 30 new rows (bytes for the text column, as MySQL clients bind strings): one COPY
            await _apply(applier, _events(db, 1, list(range(1, 31)), 10, value=lambda i: f"v{i}".encode()),
                         topic, 0, prepared)
            assert ROWS_COPIED.labels(target)._value.get() - copied0 == 30
            assert await pg.fetchval(f"SELECT count(*) FROM {db}.t") == 30
            assert await pg.fetchval(f"SELECT v FROM {db}.t WHERE id = 7") == "v7"

            # a row put there by hand: the COPY meets it, undoes itself, the run goes by upsert
            await pg.execute(f"INSERT INTO {db}.t VALUES (35, 'by hand')")
            await _apply(applier, _events(db, 4, list(range(31, 61)), 10), topic, 3, prepared)
            assert COPY_FALLBACKS.labels(target)._value.get() - fallbacks0 == 1
            assert ROWS_COPIED.labels(target)._value.get() - copied0 == 30  # the second run was not copied
            rows = dict(await pg.fetch(f"SELECT id, v FROM {db}.t"))
            assert rows == {i: f"v{i}" for i in range(1, 61)}  # each row exactly once, the source's values
            stored = await pg.fetchrow("SELECT p.next_offset, g.seq FROM dbmux_meta.positions p JOIN "
                                       "dbmux_meta.gtids g USING (target, topic) WHERE p.target = $1", target)
            assert (stored["next_offset"], int(stored["seq"])) == (6, 6)

            # invalid UTF-8 for a text column: refused by the server, nothing of the batch lands
            bad = _events(db, 7, list(range(61, 81)), 20, value=lambda i: b"\xff\xfe" if i == 70 else f"v{i}")
            with pytest.raises(ApplyError) as ei:
                await _apply(applier, bad, topic, 6, prepared)
            assert not ei.value.retriable and "UTF8" in str(ei.value)
            assert await pg.fetchval(f"SELECT count(*) FROM {db}.t") == 60
            assert await pg.fetchval("SELECT next_offset FROM dbmux_meta.positions WHERE target = $1", target) == 6

    asyncio.run(main())
