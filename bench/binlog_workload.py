"""The workload of bench/binlog_bench.py: a table on the primary and ``--txns`` single-statement
transactions written straight to it, with the GTID range and binlog positions they span."""

from __future__ import annotations

import datetime as dt
import decimal
import random
import string
import time
from dataclasses import dataclass

DB = "binlog_bench"
TABLE = "orders"
STMTS_PER_ROUND_TRIP = 200

DDL = (f"CREATE TABLE {DB}.{TABLE} (id BIGINT NOT NULL PRIMARY KEY, customer_id INT NOT NULL, "
       "status VARCHAR(16) NOT NULL, note VARCHAR(120) NOT NULL, amount DECIMAL(12,2) NOT NULL, "
       "created_at DATETIME(6) NOT NULL, updated_at DATETIME(6) NULL, payload BLOB NULL) ENGINE=InnoDB")


@dataclass
class Prepared:
    start_gtid: str
    end_gtid: str
    txns: int  # GTIDs in (start, end]
    rows: int  # row images changed (an UPDATE counts once)
    kinds: dict[str, int]
    start_file: str = ""
    start_pos: int = 0
    end_file: str = ""
    end_pos: int = 0
    seconds: float = 0.0

    @property
    def binlog_bytes(self) -> int | None:
        return self.end_pos - self.start_pos if self.start_file == self.end_file else None


def _connect(dsn, **kw):
    import pymysql

    return pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                           charset="utf8mb4", autocommit=True, **kw)


def _position(cur) -> tuple[str, str, int]:
    cur.execute("SELECT @@global.gtid_binlog_pos")
    gtid = (cur.fetchone()[0] or "").replace("\n", "")
    cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    return gtid, (row[0] if row else ""), (int(row[1]) if row else 0)


def gtid_seq(gtid_pos: str, domain: str) -> int:
    from dbmux.core.gtid import parse_gtid_list

    g = parse_gtid_list(gtid_pos).get(domain)
    return g.seq if g is not None else 0


def make_statements(conn, n_txns: int, rows_per_txn: int, seed: int = 7) -> tuple[list[str], int, dict[str, int]]:
    """N single-statement transactions: per 10, 6 multi-row INSERTs, 3 UPDATEs, 1 DELETE."""
    rnd = random.Random(seed)
    letters = string.ascii_letters + string.digits + " "
    statuses = ("new", "paid", "shipped", "returned", "cancelled")
    base = dt.datetime(2026, 1, 1, 0, 0, 0)
    lit = conn.escape
    blocks: list[tuple[int, int]] = []  # surviving inserted id ranges
    deleted_upto = 0  # blocks[:deleted_upto] are gone
    next_id = 1
    stmts: list[str] = []
    rows = 0
    kinds = {"insert": 0, "update": 0, "delete": 0}
    for i in range(n_txns):
        slot = i % 10
        live = len(blocks) - deleted_upto
        if slot < 6 or live < 2:
            vals = []
            for j in range(rows_per_txn):
                rid = next_id + j
                created = base + dt.timedelta(seconds=rid, microseconds=rnd.randrange(1_000_000))
                note = "".join(rnd.choices(letters, k=rnd.randint(30, 110)))
                payload = rnd.randbytes(rnd.randint(64, 256))
                amount = decimal.Decimal(rnd.randint(100, 9_999_999)) / 100
                vals.append(f"({rid},{rnd.randint(1, 50_000)},{lit(rnd.choice(statuses))},{lit(note)},"
                            f"{lit(amount)},{lit(created)},NULL,{lit(payload)})")
            stmts.append(f"INSERT INTO {DB}.{TABLE} VALUES " + ",".join(vals))
            blocks.append((next_id, next_id + rows_per_txn - 1))
            next_id += rows_per_txn
            kinds["insert"] += 1
        elif slot < 9:
            lo, hi = blocks[rnd.randrange(deleted_upto, len(blocks))]
            upd = base + dt.timedelta(days=30, seconds=i, microseconds=rnd.randrange(1_000_000))
            stmts.append(f"UPDATE {DB}.{TABLE} SET status={lit(rnd.choice(statuses))}, amount=amount+1.25, "
                         f"customer_id=customer_id+1, updated_at={lit(upd)} WHERE id BETWEEN {lo} AND {hi}")
            kinds["update"] += 1
        else:
            lo, hi = blocks[deleted_upto]
            deleted_upto += 1
            stmts.append(f"DELETE FROM {DB}.{TABLE} WHERE id BETWEEN {lo} AND {hi}")
            kinds["delete"] += 1
        rows += rows_per_txn
    return stmts, rows, kinds


def prepare(primary, n_txns: int, rows_per_txn: int) -> Prepared:
    from pymysql.constants import CLIENT

    conn = _connect(primary, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
            cur.execute(f"CREATE DATABASE {DB}")
            cur.execute(DDL)
            stmts, rows, kinds = make_statements(conn, n_txns, rows_per_txn)
            start_gtid, start_file, start_pos = _position(cur)
            t0 = time.monotonic()
            for k in range(0, len(stmts), STMTS_PER_ROUND_TRIP):
                cur.execute(";\n".join(stmts[k:k + STMTS_PER_ROUND_TRIP]))
                while cur.nextset():
                    pass
            seconds = time.monotonic() - t0
            end_gtid, end_file, end_pos = _position(cur)
    finally:
        conn.close()
    return Prepared(start_gtid=start_gtid, end_gtid=end_gtid, txns=0, rows=rows, kinds=kinds,
                    start_file=start_file, start_pos=start_pos, end_file=end_file, end_pos=end_pos,
                    seconds=seconds)


def drop_workload(primary) -> None:
    c = _connect(primary)
    with c.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
    c.close()
