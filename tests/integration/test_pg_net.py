"""PostgreSQL applier, real servers: units of OLTP row changes (updates, a delete and an insert of one id, key
changes, rows that come and go) are applied as their net effect per key to a table that allows it, row by row
to one that does not (a second unique index); both end equal to the history's final state, prepared ahead or
built at apply, and the position is stored with them."""

from __future__ import annotations

import asyncio
import random

import pytest

from dbmux.core.events import ChangeEvent, RowChange
from dbmux.core.gtid import Gtid
from dbmux.replicator.pg_applier import NET_ROWS
from dbmux.replicator.positions import PartitionKey, TargetPosition

from .pg_applier_case import pg_applier_case


def _history(db: str, tables: list[str], seed: int, txns: int) -> tuple[list[ChangeEvent], dict[str, dict]]:
    """``txns`` transactions of a primary (as sysbench's write-only: an update, a delete and an insert of the
    same id, now and then a key change), row images full, ten in a row on one table, then ten on the next;
    and each table's rows at the end."""
    rnd = random.Random(seed)
    state = {t: {i: f"v{i}" for i in range(1, 41)} for t in tables}
    events = []
    for n in range(txns):
        rows = []
        for t in [tables[n // 10 % len(tables)]]:
            rows_now = state[t]
            k = rnd.choice(sorted(rows_now))
            new_v = f"u{n}-{t}"
            rows.append(RowChange(t, db, "update", {"id": k, "v": rows_now[k]}, {"id": k, "v": new_v}))
            rows_now[k] = new_v
            d = rnd.choice(sorted(rows_now))
            rows.append(RowChange(t, db, "delete", {"id": d, "v": rows_now.pop(d)}, None))
            rows.append(RowChange(t, db, "insert", None, {"id": d, "v": f"i{n}-{t}"}))
            rows_now[d] = f"i{n}-{t}"
            if n % 7 == 3:  # a key change to a free id
                old = rnd.choice(sorted(rows_now))
                new = max(rows_now) + 1
                rows.append(RowChange(t, db, "update", {"id": old, "v": rows_now[old]}, {"id": new, "v": f"k{n}"}))
                del rows_now[old]
                rows_now[new] = f"k{n}"
        events.append(ChangeEvent(Gtid("0", "1", n + 1), "binlog", 1, db=db, rows=tuple(rows)))
    return events, state


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "built-at-apply"])
def test_oltp_units_applied_as_their_net_effect(stack, prepared):
    async def main():
        async with pg_applier_case(stack, "net", "t (id BIGINT PRIMARY KEY, v VARCHAR(40))",
                                   "u (id BIGINT PRIMARY KEY, v VARCHAR(40) UNIQUE)") as case:
            db, target, topic, applier, pg = case.db, case.target, case.topic, case.applier, case.pg
            events, final = _history(db, ["t", "u"], seed=7, txns=120)
            for t in ("t", "u"):
                await pg.executemany(f"INSERT INTO {db}.{t} VALUES ($1, $2)", [(i, f"v{i}") for i in range(1, 41)])
            net0 = NET_ROWS.labels(target)._value.get()
            offset = 0
            for start in range(0, len(events), 40):  # units of 40 transactions
                unit = [(ev, offset + i) for i, ev in enumerate(events[start:start + 40])]
                offset += len(unit)
                pos = TargetPosition({PartitionKey(topic, 0): offset}, {"0": unit[-1][0].gtid.seq})
                last = {"0": unit[-1][0]}
                ready = applier.prepare(unit, pos, last) if prepared else None
                await applier.apply(unit, pos, last, ready)
            for t in ("t", "u"):
                assert dict(await pg.fetch(f"SELECT id, v FROM {db}.{t}")) == final[t], t
            # table t's row changes went as their net effect (the first unit met it unknown when prepared
            # ahead: row by row), u's never (its second unique index)
            t_rows = [len(ev.rows) if ev.rows[0].table == "t" else 0 for ev in events]
            assert NET_ROWS.labels(target)._value.get() - net0 == sum(t_rows[40 if prepared else 0:])
            assert await pg.fetchval("SELECT next_offset FROM dbmux_meta.positions WHERE target = $1", target) == 120

    asyncio.run(main())
