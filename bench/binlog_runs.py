"""The two paths bench/binlog_bench.py times over the same GTID range: a bare python-mysql-replication
loop, and the real binlog reader (``dbmux.binlog.reader.BinlogReader``) publishing to Kafka."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from binlog_workload import Prepared, gtid_seq
from harness.cpu import CpuProbe, thread_cpu_seconds
from harness.errors import BenchError
from harness.pipeline import env_without_dbmux
from harness.topics import end_offset

BARE_SERVER_ID = 4343  # the reader's default binlog_server_id is 4242; never two dumps with one id
POLL_S = 0.005


@dataclass
class Run:
    path: str  # bare / dbmux
    round: int
    txns: int = 0
    rows: int = 0
    total_s: float = 0.0  # start of the run -> last transaction
    first_s: float = 0.0  # start of the run -> first transaction
    cpu: dict[str, float | None] = field(default_factory=dict)
    threads: dict[str, float] = field(default_factory=dict)  # thread -> CPU s per wall s of the run
    ok: bool = False
    error: str = ""
    topic: str = ""
    topic_messages: int | None = None

    @property
    def total_rate(self) -> float:
        return self.txns / self.total_s if self.total_s else 0.0

    @property
    def cpu_us_per_txn(self) -> float | None:
        """CPU time of this process per transaction (start-up included): robust to other load on the
        machine, which slows the wall clock but not the work done per transaction."""
        cpu = self.cpu.get("self")
        return cpu * self.total_s / self.txns * 1e6 if cpu is not None and self.txns else None

    @property
    def steady_rate(self) -> float:
        span = self.total_s - self.first_s
        return (self.txns - 1) / span if span > 0 and self.txns > 1 else 0.0


def run_bare(binlog_dsn, prep: Prepared, domain: str, end_seq: int, probe: CpuProbe, rnd: int,
             timeout: float) -> Run:
    """The bare loop: same stream settings as the reader's thread; touch every value of every row."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import GtidEvent, MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

    from dbmux.binlog.reader import _FREEZE_SCHEMA, _HEARTBEAT_S, _connection_settings

    res = Run("bare", rnd)
    probe.start()
    cpu0 = time.thread_time()
    t0 = time.monotonic()
    stream = BinLogStreamReader(
        connection_settings=_connection_settings(binlog_dsn), server_id=BARE_SERVER_ID, is_mariadb=True,
        auto_position=prep.start_gtid, blocking=True, resume_stream=True,
        only_events=[MariadbGtidEvent, QueryEvent, XidEvent, WriteRowsEvent, UpdateRowsEvent,
                     DeleteRowsEvent, TableMapEvent, RotateEvent],
        slave_heartbeat=_HEARTBEAT_S, enable_logging=False, freeze_schema=_FREEZE_SCHEMA)
    txns = rows = values = 0
    last_seq = -1
    first_at = 0.0
    deadline = t0 + timeout
    try:
        for ev in stream:
            if isinstance(ev, (MariadbGtidEvent, GtidEvent)):
                last_seq = int(str(ev.gtid).rsplit("-", 1)[-1]) if isinstance(ev, MariadbGtidEvent) else -1
            elif isinstance(ev, (WriteRowsEvent, DeleteRowsEvent)):
                for row in ev.rows:
                    rows += 1
                    for _v in row["values"].values():
                        values += 1
            elif isinstance(ev, UpdateRowsEvent):
                for row in ev.rows:
                    rows += 1
                    for _v in row["before_values"].values():
                        values += 1
                    for _v in row["after_values"].values():
                        values += 1
            elif isinstance(ev, RotateEvent):
                stream.table_map = {}  # as the reader does (table ids are per server run)
            elif isinstance(ev, XidEvent) or (isinstance(ev, QueryEvent) and ev.query == "COMMIT"):
                txns += 1
                if txns == 1:
                    first_at = time.monotonic()
                if last_seq >= end_seq:
                    break
            if time.monotonic() > deadline:
                res.error = f"timeout after {timeout:.0f}s ({txns} transactions)"
                break
    finally:
        t1 = time.monotonic()
        cpu1 = time.thread_time()
        probe.stop()
        stream.close()
    res.txns, res.rows = txns, rows
    res.total_s, res.first_s = t1 - t0, (first_at - t0 if first_at else 0.0)
    res.cpu = probe.result
    res.threads = {"main": (cpu1 - cpu0) / res.total_s if res.total_s else 0.0}
    res.ok = not res.error and txns == prep.txns
    if not res.error and txns != prep.txns:
        res.error = f"read {txns} transactions, expected {prep.txns}"
    return res


def run_dbmux(config_path: str, bootstrap: str, prep: Prepared, probe: CpuProbe, rnd: int, topic: str,
              timeout: float) -> Run:
    """The real reader class in this process, from --from-gtid <start> until every txn is acked."""
    from dbmux.binlog.reader import BinlogReader
    from dbmux.core.config import load_config

    config = load_config(config_path, env=env_without_dbmux({"DBMUX_KAFKA_TOPIC": topic}))
    res = Run("dbmux", rnd, topic=topic)

    async def go() -> None:
        # freeze_gc as `dbmux binlog` does (gc.freeze() after start-up; undone below for the next run)
        reader = BinlogReader(config, from_gtid=prep.start_gtid, freeze_gc=True)
        stop = asyncio.Event()
        probe.start()
        main_cpu0 = time.thread_time()
        t0 = time.monotonic()
        task = asyncio.ensure_future(reader.run(stop))
        first_at = 0.0
        binlog_native: int | None = None
        thread_cpu = None
        deadline = t0 + timeout
        try:
            while True:
                n = reader.published
                if n and not first_at:
                    first_at = time.monotonic()
                if binlog_native is None:
                    binlog_native = next((t.native_id for t in threading.enumerate() if t.name == "dbmux-binlog"),
                                         None)
                if n >= prep.txns:
                    break
                if task.done():
                    rc = task.result()
                    raise BenchError(f"the binlog reader stopped (exit {rc}) after {n} transactions")
                if time.monotonic() > deadline:
                    res.error = f"timeout after {timeout:.0f}s ({n} transactions acknowledged)"
                    break
                await asyncio.sleep(POLL_S)
            t1 = time.monotonic()
            main_cpu1 = time.thread_time()
            thread_cpu = thread_cpu_seconds(binlog_native)
            probe.stop()
        finally:
            stop.set()
            rc = await asyncio.wait_for(task, 60)
        res.txns = reader.published
        res.rows = prep.rows if reader.published == prep.txns else 0
        res.total_s, res.first_s = t1 - t0, (first_at - t0 if first_at else 0.0)
        res.cpu = probe.result
        wall = res.total_s or 1.0
        res.threads = {"event loop (encode, Kafka)": (main_cpu1 - main_cpu0) / wall}
        if thread_cpu is not None:
            res.threads = {"binlog thread (read, decode, assemble)": thread_cpu / wall, **res.threads}
        acked = reader._acked.text() if reader._acked is not None else ""  # noqa: SLF001 - sanity only
        if not res.error and rc != 0:
            res.error = f"reader exited {rc}"
        if not res.error and reader.published == prep.txns and gtid_seq(acked, "0") < gtid_seq(prep.end_gtid, "0"):
            res.error = f"acknowledged position {acked} is before the end {prep.end_gtid}"

    import gc

    import dbmux.binlog.reader as br

    try:
        asyncio.run(go())
    finally:
        gc.unfreeze()
        br._gc_frozen = False  # noqa: SLF001 - each run starts like a fresh `dbmux binlog`
    res.topic_messages = end_offset(bootstrap, topic)
    if not res.error and res.topic_messages is not None and res.topic_messages != prep.txns:
        res.error = f"topic holds {res.topic_messages} messages, expected {prep.txns}"
    res.ok = not res.error and res.txns == prep.txns
    return res
