"""A read-consistency checker (issue 15): writers bump keys they own, readers compare every read with the
highest value already acknowledged.

* Each writer owns some keys of table ``k (id, v)``; it sets ``v`` to 1, 2, 3 ... one autocommit UPDATE
  at a time through ``write_dsn`` and, once the OK is back, records the value as acknowledged. With
  ``read_own`` it then reads its key back on the same connection: a value below what it just wrote is a
  **read-your-writes violation** (what ``session`` consistency rules out).
* Each reader, on connections of its own to ``read_dsn``, takes a key's acknowledged value *before*
  sending the read and compares: a value below it is a **stale read** -- a write whose OK some client
  already had, missed (what ``causal`` consistency rules out).

Anything that raises is an error. Pointed at a replica directly (or a replica whose replicator is frozen)
the checker finds stale reads at once -- that is how it shows it can fail.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import pymysql

from dbmux.core.dsn import Dsn


def connect(dsn: Dsn, db: str | None = None) -> pymysql.Connection:
    return pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password, database=db,
                           autocommit=True, connect_timeout=10, read_timeout=60)


def create_table(dsn: Dsn, db: str, keys: int) -> None:
    conn = connect(dsn)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.k (id INT PRIMARY KEY, v BIGINT NOT NULL)")
        cur.execute(f"INSERT INTO {db}.k VALUES " + ",".join(f"({i}, 0)" for i in range(keys)))
    conn.close()


@dataclass
class Report:
    writes: int = 0
    reads: int = 0
    stale: list[tuple[int, int, int]] = field(default_factory=list)  # (key, read, acknowledged before the read)
    ryw: list[tuple[int, int, int]] = field(default_factory=list)  # (key, read back, just written)
    errors: list[str] = field(default_factory=list)
    staleness_s: float = 0.0  # the longest a stale read lagged behind an acknowledged write

    def summary(self) -> str:
        return (f"{self.writes} writes, {self.reads} reads, {len(self.stale)} stale reads, "
                f"{len(self.ryw)} read-your-writes violations, {len(self.errors)} errors "
                f"(first: {self.stale[:3]} {self.ryw[:3]} {self.errors[:3]})")


class Checker:
    def __init__(self, write_dsn: Dsn, read_dsn: Dsn, db: str, keys: int = 8, writers: int = 4, readers: int = 4,
                 read_own: bool = False, write_pause_s: float = 0.002) -> None:
        self.write_dsn, self.read_dsn, self.db = write_dsn, read_dsn, db
        self.keys, self.writers, self.readers, self.read_own = keys, writers, readers, read_own
        self.write_pause_s = write_pause_s
        self.acked = [0] * keys
        self.acked_at: list[dict[int, float]] = [{} for _ in range(keys)]  # key -> value -> when acknowledged
        self.report = Report()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for w in range(self.writers):
            self._threads.append(threading.Thread(target=self._guard, args=(self._write, w), daemon=True))
        for r in range(self.readers):
            self._threads.append(threading.Thread(target=self._guard, args=(self._read, r), daemon=True))
        for t in self._threads:
            t.start()

    def stop(self) -> Report:
        self._stop.set()
        for t in self._threads:
            t.join(90)
        return self.report

    def _guard(self, body, index: int) -> None:
        try:
            body(index)
        except Exception as exc:  # noqa: BLE001 - reported
            with self._lock:
                self.report.errors.append(f"{type(exc).__name__}: {exc}")

    def _write(self, w: int) -> None:
        conn = connect(self.write_dsn, self.db)
        owned = [k for k in range(self.keys) if k % self.writers == w]
        values = dict.fromkeys(owned, 0)
        with conn.cursor() as cur:
            while not self._stop.is_set():
                key = random.choice(owned)
                values[key] += 1
                cur.execute("UPDATE k SET v = %s WHERE id = %s", (values[key], key))
                with self._lock:
                    self.acked[key] = values[key]
                    self.acked_at[key][values[key]] = time.monotonic()
                    self.report.writes += 1
                if self.read_own:
                    cur.execute("SELECT v FROM k WHERE id = %s", (key,))
                    (got,) = cur.fetchone()
                    with self._lock:
                        self.report.reads += 1
                        if got < values[key]:
                            self.report.ryw.append((key, got, values[key]))
                time.sleep(self.write_pause_s)
        conn.close()

    def _read(self, _r: int) -> None:
        conn = connect(self.read_dsn, self.db)
        with conn.cursor() as cur:
            while not self._stop.is_set():
                key = random.randrange(self.keys)
                with self._lock:
                    floor = self.acked[key]
                cur.execute("SELECT v FROM k WHERE id = %s", (key,))
                (got,) = cur.fetchone()
                with self._lock:
                    self.report.reads += 1
                    if got < floor:
                        self.report.stale.append((key, got, floor))
                        # how long the value after the one read had been acknowledged: the staleness
                        since = self.acked_at[key].get(got + 1)
                        if since is not None:
                            self.report.staleness_s = max(self.report.staleness_s, time.monotonic() - since)
        conn.close()
