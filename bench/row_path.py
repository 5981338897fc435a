#!/usr/bin/env python3
"""In-process cost per row of a PostgreSQL target's path for row-insert events: decoding the events
(``decode_event``) and translating them (``PostgresApplier.prepare``), no servers involved.

Usage (from the repository root)::

    .venv/bin/python bench/row_path.py [--rows 200000] [--per-event 10] [--rounds 3] [--no-tables]

The rows are ``bench/replicator_bench.py``'s (id, k, c, pad), encoded as binlog row events of
``--per-event`` inserts each, carrying the table's schema as the binlog reader writes it (``--no-tables``:
without, as that bench's synthetic events). Prints microseconds per row for each step and round, with the
collector tuned as the replicator tunes it (``gctune.for_batches``). What the numbers are for: the share
of the replicator's work that is Python per row, against the ~1-2 us per row a raw ``COPY`` costs in all
(bench/RESULTS.md, issue 14).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

from replicator_apply import make_rows  # noqa: E402

from dbmux.core import gctune  # noqa: E402
from dbmux.core.codec import decode_event, encode_event  # noqa: E402
from dbmux.core.dsn import Dsn  # noqa: E402
from dbmux.core.events import ChangeEvent, ColumnType, RowChange, TableSchema  # noqa: E402
from dbmux.core.gtid import Gtid  # noqa: E402
from dbmux.replicator.pg_applier import PostgresApplier  # noqa: E402
from dbmux.replicator.schema_info import StaticSchema, TableInfo  # noqa: E402

DB, COLUMNS = "bench_apply", ("id", "k", "c", "pad")
TYPES = ("bigint", "int", "varchar charset utf8mb4", "varchar charset utf8mb4")
UNIT = 50  # events per prepare() call (a unit of 500 rows at 10 rows per event)


def events(n: int, per_event: int, with_tables: bool) -> list[bytes]:
    ts = TableSchema(db=DB, table="t", columns=COLUMNS, types=tuple(map(ColumnType.parse, TYPES)), primary_key=("id",))
    rows = make_rows(n)
    out = []
    for seq, start in enumerate(range(0, n, per_event), 1):
        changes = tuple(RowChange(table="t", db=DB, op="insert", after=dict(zip(COLUMNS, r, strict=True)))
                        for r in rows[start:start + per_event])
        out.append(encode_event(ChangeEvent(gtid=Gtid("0", "1", seq), source="binlog", ts_ms=1, db=DB, rows=changes,
                                            tables=(ts,) if with_tables else ())))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--per-event", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-tables", action="store_true", help="events without the table's schema")
    args = ap.parse_args(argv)
    wire = events(args.rows, args.per_event, not args.no_tables)
    applier = PostgresApplier(Dsn.parse("postgresql://bench@127.0.0.1:1/bench"), "bench", "bench",
                              Dsn.parse("mysql://bench@127.0.0.1:1/"))
    applier._schema = StaticSchema({(DB, "t"): TableInfo(primary_key=("id",), columns=COLUMNS)})  # (no server)
    gctune.for_batches()
    print(f"{args.rows:,} rows in {len(wire):,} events of {args.per_event} inserts "
          f"({'with' if not args.no_tables else 'without'} the table's schema), {sum(map(len, wire)):,} bytes")
    for r in range(1, args.rounds + 1):
        t0 = time.perf_counter()
        decoded = [decode_event(w) for w in wire]
        t1 = time.perf_counter()
        for i in range(0, len(decoded), UNIT):
            if applier.prepare([(ev, 0) for ev in decoded[i:i + UNIT]], None, {}) is None:  # type: ignore[arg-type]
                print("prepare() declined the batch", file=sys.stderr)
                return 1
        t2 = time.perf_counter()
        n = args.rows
        print(f"round {r}: decode {1e6 * (t1 - t0) / n:.2f} us/row, translate {1e6 * (t2 - t1) / n:.2f} us/row, "
              f"together {1e6 * (t2 - t0) / n:.2f} us/row")
        del decoded
    return 0


if __name__ == "__main__":
    sys.exit(main())
