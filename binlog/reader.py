"""The binlog reader: tail the primary's binlog by GTID and publish one change event per transaction.

python-mysql-replication is blocking, so one thread per connection runs ``BinLogStreamReader`` (with
``freeze_schema``: see ``_FREEZE_SCHEMA``), turns its events into :class:`~dbmux.core.events.ChangeEvent`
(:mod:`binlog.assembler`; :mod:`binlog.row_decoder` decodes the row images itself) and hands them to the event
loop without waiting for it (an ``asyncio.Queue`` fed by coalesced ``call_soon_threadsafe`` wake-ups,
one list of events per wake-up; back-pressure: the thread waits when ``_QUEUE_SIZE`` events are not yet
taken, i.e. when Kafka is slow). The loop encodes them (while the thread waits for the primary's next
packet, the loop has the GIL to itself) and publishes with an idempotent producer (acks=all, key =
GTID domain) in binlog order.

Position (:mod:`binlog.position`): after Kafka acknowledged an event, its GTID becomes the
acknowledged position; that position is written (coalesced, at most every ``_SAVE_EVERY_S``) to the
compacted topic ``<topic>.binlog-position``. On start the reader resumes from the stored position,
moved past any binlog event already on the topic after it, so nothing is lost and a crash publishes
at most the transactions Kafka accepted without acknowledging in time again (replicators skip
duplicate GTIDs). With no stored position the reader starts at the primary's current
``@@gtid_binlog_pos`` (history is backfill's job); ``--from-gtid POS`` overrides either.

Any transient failure (primary restart, lost connection, Kafka error; see
:func:`dbmux.core.transient.is_transient`) tears the pipeline down: in-flight sends are awaited, the
position saved, and after a back-off (:func:`dbmux.core.supervise.supervise`) the reader reconnects from
the acknowledged position. A permanent one (authentication/privilege errors, a position the primary no
longer has (1236)) stops it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import threading
import time
from typing import Any

import pymysql
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import GtidEvent, MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from dbmux.binlog.assembler import TransactionAssembler
from dbmux.binlog.errors import BinlogReaderError
from dbmux.binlog.position import BinlogPosition, PositionStore
from dbmux.binlog.table_schema import note_table_map
from dbmux.core.codec import encode_event
from dbmux.core.config import Config
from dbmux.core.dsn import Dsn
from dbmux.core.errors import DbmuxError
from dbmux.core.fragments import split_event
from dbmux.core.gctune import freeze_once
from dbmux.core.gtid import Gtid
from dbmux.core.kafka_topics import ensure_topic
from dbmux.core.mysql_connect import connect_pymysql
from dbmux.core.passwords import redact_text
from dbmux.core.supervise import supervise
from dbmux.core.topics import partition_key
from dbmux.core.transient import is_transient, mysql_errno

log = logging.getLogger(__name__)

__all__ = ["BinlogReader", "BinlogReaderError"]

_QUEUE_SIZE = 1000  # transactions buffered between the binlog thread and the publisher
_MAX_IN_FLIGHT = 2000  # sent but not yet acknowledged
# Kafka batch per partition and request. aiokafka sends one batch per partition per request and, when
# that batch is full, makes send() wait for the request in flight: its 16 KiB default held ~5 events
# and capped the reader at ~1,000-1,300 events/s (bench/binlog_bench.py). Well below the broker's
# default message.max.bytes (1 MiB), which applies to a whole batch.
_MAX_BATCH_BYTES = 256 * 1024
_SAVE_EVERY_S = 0.2
_HEARTBEAT_S = 5
_READ_TIMEOUT_S = 30  # > heartbeat: a silent connection is dead
# freeze_schema: the library parses a table map event (names, types, FULL metadata) only the first time
# it sees its table_id and reuses that table afterwards; otherwise it re-parses the table map written
# before every transaction's rows (~1/3 of its decoding time). Exact as long as one table_id denotes one
# table definition: the server assigns a new table_id whenever it loads a table definition (ALTER TABLE,
# RENAME, FLUSH TABLES, table cache eviction) from a counter that only a server restart resets. A restart
# starts a new binlog file, and the server starts every binlog file it sends (and every reconnect) with
# a rotate event, a fake one (timestamp 0) on which the library keeps its map: the reader drops the
# library's table maps at every rotate event. tests/integration/test_binlog_reader.py: ALTER TABLE (add,
# drop, modify, rename column, rename table) under a running reader; a catching-up reader crossing
# primary restarts that reused table ids for tables of other shapes.
_FREEZE_SCHEMA = True


class _Stopped(Exception):
    """Raised inside the binlog thread when the reader stops."""


def _describe(dsn: Dsn, exc: BaseException) -> BinlogReaderError:
    if isinstance(exc, DbmuxError) and not exc.retriable:  # e.g. tls=required and no TLS offered
        return BinlogReaderError(str(exc), retriable=False)
    errno = mysql_errno(exc)
    msg = exc.args[1] if errno is not None and len(exc.args) > 1 else str(exc) or type(exc).__name__
    hint = ""
    if errno == 1236:
        hint = " (the primary no longer has binlogs for the requested GTID position: backfill, then start " \
               "with --from-gtid at the primary's @@gtid_binlog_pos)"
    elif errno in (1044, 1045, 1227, 1698):
        hint = " (the binlog user needs REPLICATION SLAVE, REPLICATION CLIENT; see primary.binlog_url)"
    err = BinlogReaderError(f"primary {dsn.redacted()}: error {errno}: {msg}{hint}" if errno is not None
                            else f"primary {dsn.redacted()}: {msg}", retriable=is_transient(exc))
    return err


def _connection_settings(dsn: Dsn) -> dict[str, Any]:
    return {"host": dsn.host, "port": dsn.port, "user": dsn.user, "passwd": dsn.password,
            "connect_timeout": 10, "read_timeout": _READ_TIMEOUT_S}


def probe_primary(dsn: Dsn) -> tuple[bool, str]:
    """(is_mariadb, current GTID position) of the primary; raises BinlogReaderError naming it."""
    try:
        conn = connect_pymysql(dsn, host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                               connect_timeout=10)
    except (pymysql.err.MySQLError, OSError, DbmuxError) as exc:
        raise _describe(dsn, exc) from None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION(), @@global.binlog_format")
            version, fmt = cur.fetchone()
            mariadb = "mariadb" in str(version).lower()
            cur.execute("SELECT @@global.gtid_binlog_pos" if mariadb else "SELECT @@global.gtid_executed")
            (gtid_pos,) = cur.fetchone()
            cur.execute("SHOW GLOBAL VARIABLES LIKE 'binlog_row_metadata'")
            row = cur.fetchone()
    except pymysql.err.MySQLError as exc:
        raise _describe(dsn, exc) from None
    finally:
        conn.close()
    if str(fmt).upper() != "ROW":
        raise BinlogReaderError(f"primary {dsn.redacted()}: binlog_format is {fmt}, the binlog reader needs ROW",
                                retriable=False)
    if row is None or str(row[1]).upper() != "FULL":
        raise BinlogReaderError(f"primary {dsn.redacted()}: binlog_row_metadata must be FULL (row images are "
                                "keyed by column name)", retriable=False)
    return mariadb, (gtid_pos or "").replace("\n", "")


# --------------------------------------------------------------------------------------------- thread


class _BinlogThread(threading.Thread):
    """Runs BinLogStreamReader and assembles the transactions; puts lists of ("event", ChangeEvent) /
    ("error", exc) items on the loop's queue."""

    def __init__(self, dsn: Dsn, server_id: int, mariadb: bool, start: BinlogPosition,
                 loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        super().__init__(name="dbmux-binlog", daemon=True)
        self._dsn, self._server_id, self._mariadb, self._start = dsn, server_id, mariadb, start
        self._loop, self._queue = loop, queue
        # Back-pressure without a round trip per event: a slot per event handed over and not yet
        # taken by the loop (:meth:`taken`), at most _QUEUE_SIZE.
        self._slots = threading.Semaphore(_QUEUE_SIZE)
        # Items handed over; one scheduled _deliver (one loop wake-up) moves all that arrived meanwhile.
        self._handoff: collections.deque = collections.deque()
        self._deliver_scheduled = False
        self.stopping = threading.Event()
        self._stream: Any = None
        # Last GTID per domain handed over: where the library resumes when it reconnects by itself.
        self._gtids: dict[str, Gtid] = dict(start.gtids)

    def _connect(self, **kwargs: Any) -> pymysql.connections.Connection:
        """The library's pymysql_wrapper: every (re)connection goes through here, before the library
        asks the server for the binlog from ``auto_position`` (so it is set here, not per transaction)."""
        if self.stopping.is_set():
            raise _Stopped()
        if self._stream is not None:
            self._stream.auto_position = BinlogPosition(dict(self._gtids)).text()
        return connect_pymysql(self._dsn, **kwargs)

    def run(self) -> None:
        try:
            self._stream = BinLogStreamReader(
                connection_settings=_connection_settings(self._dsn), server_id=self._server_id,
                is_mariadb=self._mariadb, auto_position=self._start.text(), blocking=True, resume_stream=True,
                only_events=[MariadbGtidEvent if self._mariadb else GtidEvent, QueryEvent, XidEvent,
                             WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, TableMapEvent, RotateEvent],
                slave_heartbeat=_HEARTBEAT_S, pymysql_wrapper=self._connect, enable_logging=False,
                freeze_schema=_FREEZE_SCHEMA)
            assembler = TransactionAssembler(mariadb=self._mariadb)
            gtids = self._gtids
            fetchone, feed, put, stopping = self._stream.fetchone, assembler.feed, self._put, self.stopping
            debug = log.isEnabledFor(logging.DEBUG)
            while not stopping.is_set():
                binlog_event = fetchone()
                if binlog_event is None:
                    raise ConnectionError("the primary ended the binlog stream")
                if type(binlog_event) is TableMapEvent:
                    note_table_map(binlog_event)
                elif type(binlog_event) is RotateEvent:
                    # Table ids are per server run (see _FREEZE_SCHEMA): forget them at every binlog file.
                    self._stream.table_map = {}
                    log.debug("binlog: rotate to %s:%s", binlog_event.next_binlog, binlog_event.position)
                event = feed(binlog_event)
                if event is None:
                    continue
                gtid = event.gtid
                last = gtids.get(gtid.domain)
                if last is None or last.seq < gtid.seq:
                    gtids[gtid.domain] = gtid
                if debug:
                    log.debug("binlog: gtid %s db=%s rows=%d statements=%d", gtid, event.db, len(event.rows),
                              len(event.statements))
                if not put(("event", event)):
                    return
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, which decides
            if not self.stopping.is_set():
                self._put(("error", exc))
        finally:
            if self._stream is not None:
                with contextlib.suppress(Exception):
                    self._stream.close()

    def _put(self, item: tuple[str, Any]) -> bool:
        """Hand ``item`` to the loop without waiting for the loop to run (the thread goes on reading
        the binlog meanwhile); waits only while _QUEUE_SIZE items are not yet taken. The loop is woken
        only when no wake-up is pending already (a wake-up is a syscall and a GIL hand-over)."""
        while not self._slots.acquire(timeout=0.5):
            if self.stopping.is_set():
                return False
        self._handoff.append(item)  # before reading the flag: see _deliver
        if not self._deliver_scheduled:
            self._deliver_scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # loop closed
                return False
        return True

    def _deliver(self) -> None:
        """On the loop: move every handed-over item to the queue, as one list. The flag is cleared
        before draining, so an item appended after the drain saw the flag cleared and scheduled
        another call."""
        self._deliver_scheduled = False
        handoff = self._handoff
        items = []
        while handoff:
            items.append(handoff.popleft())
        if items:
            self._queue.put_nowait(items)

    def taken(self, n: int) -> None:
        """Called by the loop for the items it took off the queue: frees their slots."""
        self._slots.release(n)

    def stop(self) -> None:
        """Unblock the thread (it may sit in a socket read) and make it exit."""
        self.stopping.set()
        stream = self._stream
        conn = getattr(stream, "_stream_connection", None) if stream is not None else None
        sock = getattr(conn, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------------------------- reader


class BinlogReader:
    def __init__(self, config: Config, *, from_gtid: str | None = None, freeze_gc: bool = False) -> None:
        self.config = config
        self.topic = config.topic
        self.dsn = config.primary.binlog_dsn
        self._from_gtid = BinlogPosition.parse(from_gtid) if from_gtid is not None else None
        self._store = PositionStore(config.kafka, self.topic)
        self._freeze_gc = freeze_gc  # dbmux binlog: gc.freeze() after the first start-up
        # Acknowledged by Kafka (in-process truth), kept as mutable maps (updated per acknowledged event);
        # ``_acked`` builds the BinlogPosition.
        self._acked_gtids: dict[str, Gtid] | None = None
        self._acked_offsets: dict[int, int] = {}
        self.published = 0
        self.fragmented = 0  # events sent as fragments (over kafka.fragment_bytes)

    @property
    def _acked(self) -> BinlogPosition | None:
        if self._acked_gtids is None:
            return None
        return BinlogPosition(dict(self._acked_gtids), dict(self._acked_offsets))

    @_acked.setter
    def _acked(self, pos: BinlogPosition) -> None:
        self._acked_gtids, self._acked_offsets = dict(pos.gtids), dict(pos.offsets)

    async def run(self, stop: asyncio.Event) -> int:
        """Publish until ``stop`` is set (0), or a permanent error (2). Transient errors are retried."""
        try:
            # an attempt that published something had been working: the back-off starts afresh
            await supervise(lambda: self._run_once(stop), stop=stop, on_retry=self._on_retry,
                            progress=lambda: self.published)
        except DbmuxError as exc:  # a BinlogReaderError, or e.g. tls=required and the primary offers no TLS
            log.error("binlog reader: %s", redact_text(str(exc)))
            return 2
        except pymysql.err.MySQLError as exc:
            log.error("binlog reader: %s", redact_text(str(_describe(self.dsn, exc))))
            return 2
        return 0

    def _on_retry(self, exc: Exception, delay_s: float) -> None:
        if isinstance(exc, DbmuxError):
            problem = str(exc)
        elif isinstance(exc, pymysql.err.MySQLError):
            problem = str(_describe(self.dsn, exc))
        else:
            problem = f"{type(exc).__name__}: {exc}"
        acked = self._acked
        log.warning("binlog reader: %s; reconnecting from %s in %.1fs", redact_text(problem),
                    acked.text() if acked else "the stored position", delay_s)

    async def _start_position(self, server_pos: str) -> tuple[BinlogPosition, bool]:
        """(position, must_save_now)."""
        if self._from_gtid is not None:
            pos, self._from_gtid = self._from_gtid, None
            log.info("binlog reader: starting at --from-gtid %s", pos.text())
            return pos.with_offsets(await self._end_offsets()), True
        acked = self._acked
        if acked is not None:
            return acked, False
        stored = await self._store.load()
        if stored is not None:
            log.info("binlog reader: resuming after %s (stored in %s)", stored.text(), self._store.pos_topic)
            return stored, False
        pos = BinlogPosition.parse(server_pos)
        log.info("binlog reader: no stored position; starting at the primary's current position %s "
                 "(earlier history is backfill's job)", pos.text() or "<empty>")
        return pos.with_offsets(await self._end_offsets()), True

    async def _end_offsets(self) -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.config.kafka.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(self.topic)
            for _ in range(20):
                if parts:
                    break
                await consumer._client.force_metadata_update()  # noqa: SLF001 - just-created topic
                parts = consumer.partitions_for_topic(self.topic)
                await asyncio.sleep(0.1)
            tps = [TopicPartition(self.topic, p) for p in sorted(parts or ())]
            ends = await consumer.end_offsets(tps) if tps else {}
            return {tp.partition: off for tp, off in ends.items()}
        finally:
            await consumer.stop()

    async def _run_once(self, stop: asyncio.Event) -> None:
        k = self.config.kafka
        mariadb, server_pos = await asyncio.to_thread(probe_primary, self.dsn)
        await ensure_topic(k, self.topic)
        await self._store.ensure()
        pos, save_now = await self._start_position(server_pos)
        producer = AIOKafkaProducer(bootstrap_servers=k.bootstrap, acks="all", enable_idempotence=True,
                                    linger_ms=2, max_batch_size=_MAX_BATCH_BYTES,
                                    request_timeout_ms=k.request_timeout_ms,
                                    max_request_size=max(k.fragment_bytes + 64 * 1024, _MAX_BATCH_BYTES))
        await producer.start()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()  # lists of items; bounded by the thread's slots
        thread: _BinlogThread | None = None
        acker: asyncio.Task | None = None
        try:
            self._acked = pos
            if save_now:
                await (await self._store.save(producer, pos))
            thread = _BinlogThread(self.dsn, self.config.primary.binlog_server_id, mariadb, pos, loop, queue)
            thread.start()
            log.info("binlog reader: streaming from primary %s after %s into %s", self.dsn.redacted(),
                     pos.text() or "<start>", self.topic)
            if self._freeze_gc:
                freeze_once()
            pending: asyncio.Queue = asyncio.Queue()
            slots = asyncio.Semaphore(_MAX_IN_FLIGHT)
            acker = asyncio.ensure_future(self._ack_loop(producer, pending, slots))
            stop_wait = asyncio.ensure_future(stop.wait())
            send, topic, put_pending, acquire = producer.send, self.topic, pending.put_nowait, slots.acquire
            fragment_bytes = k.fragment_bytes
            try:
                while True:
                    try:
                        items = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        getter = asyncio.ensure_future(queue.get())
                        await asyncio.wait({getter, stop_wait, acker}, return_when=asyncio.FIRST_COMPLETED)
                        if not getter.done():
                            getter.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await getter
                            if acker.done():
                                acker.result()
                            return  # stop
                        items = getter.result()
                    thread.taken(len(items))
                    for tag, value in items:
                        if tag == "error":
                            raise value
                        # Encoded here, not in the binlog thread: bench/RESULTS.md (2026-11-26, binlog
                        # reader: changes) measured that slower.
                        await acquire()
                        payload = encode_event(value)
                        if len(payload) <= fragment_bytes:
                            fut = await send(topic, payload, key=partition_key(value))
                        else:  # over the message size: parts or fragments (dbmux.core.fragments), acked together
                            parts = split_event(value, payload, fragment_bytes)
                            fut = await self._send_fragments(producer, parts, partition_key(value))
                        put_pending((value.gtid, fut))
            finally:
                stop_wait.cancel()
        finally:
            if thread is not None:
                thread.stop()
            if acker is not None:
                if not acker.done():
                    pending.put_nowait(None)
                    with contextlib.suppress(Exception, asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(acker), 30)
                    acker.cancel()
                with contextlib.suppress(BaseException):
                    await acker
            with contextlib.suppress(Exception):
                acked = self._acked
                if acked is not None:
                    await asyncio.wait_for(await self._store.save(producer, acked), 10)
            with contextlib.suppress(Exception):
                await producer.stop()
            if thread is not None:
                await asyncio.to_thread(thread.join, 5)

    async def _send_fragments(self, producer: AIOKafkaProducer, parts: list[bytes], key: bytes) -> asyncio.Future:
        acks = [await producer.send(self.topic, part, key=key) for part in parts]
        self.fragmented += 1
        return asyncio.gather(*acks)

    async def _ack_loop(self, producer: AIOKafkaProducer, pending: asyncio.Queue,
                        slots: asyncio.Semaphore) -> None:
        """Await acks in send order; advance the acknowledged position; save it (coalesced: when the
        pipeline is idle, else at most every ``_SAVE_EVERY_S``)."""
        last_save = 0.0
        gtids, offsets = self._acked_gtids, self._acked_offsets
        assert gtids is not None
        get, empty, release = pending.get, pending.empty, slots.release
        while True:
            item = await get()
            if item is None:
                return
            gtid, fut = item
            try:
                md = await fut
            except Exception as exc:
                # the producer is spent (an idempotent producer's sequence breaks at a failed send): the run
                # ends, the next one starts a new producer from the acknowledged position, and sends
                # everything after it again (targets skip GTIDs they have)
                log.error("binlog reader: Kafka did not take transaction %s (%s: %s); restarting from %s",
                          gtid, type(exc).__name__, exc, self._acked.text() if self._acked else "<start>")
                _retrieve_all(pending)
                raise
            finally:
                release()
            if isinstance(md, list):  # fragments: the last one's offset
                md = md[-1]
            # = BinlogPosition.advance(gtid).with_offsets(...), in place
            last = gtids.get(gtid.domain)
            if last is None or last.seq < gtid.seq:
                gtids[gtid.domain] = gtid
            offsets[md.partition] = md.offset + 1
            self.published += 1
            now = time.monotonic()
            if empty() or now - last_save >= _SAVE_EVERY_S:
                acked_pos = self._acked
                if acked_pos is not None:
                    await self._store.save(producer, acked_pos)
                last_save = now


def _retrieve_all(pending: asyncio.Queue) -> None:
    """Sends still in flight behind a failed one: their outcome no longer matters (everything after the
    acknowledged position is sent again); take their exceptions so none is logged as never retrieved."""
    while not pending.empty():
        item = pending.get_nowait()
        if item is not None:
            item[1].add_done_callback(lambda f: f.cancelled() or f.exception())
