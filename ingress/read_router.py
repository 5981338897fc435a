"""Read routing, shared by every session of one ingress: which replicas may take a read, and their links.

With ``ingress.reads = "replicas"`` every MySQL/MariaDB target that is not a shard (``serve_reads``)
takes reads. What the router knows of each (:class:`ReplicaState`) comes from its replicator, never
from a query per read:

* **applied GTIDs**: the replicator stores its position inside the target, in the transaction that
  applies the changes (``dbmux_meta.gtids``: per GTID domain the last sequence number applied, for
  this pipeline's topic). A watcher task per replica reads it every ``ingress.replica_poll_ms``, and
  every 2 ms while some read waits for that replica to catch up. Because it is written in the apply
  transaction, a replica showing ``seq`` has every transaction up to ``seq`` of that domain (GTIDs are
  applied strictly in order per domain).
* **rotation**: a replica is in rotation while its replicator's status row says ``running`` and its
  watcher can read it; ``halted``, ``waiting for gap``, ``retrying``, ``not started`` or unreachable
  take it out until it is back, and so do server settings that change answers and differ from the
  primary's (``RESULT_SETTINGS``: ``system_time_zone``, ``div_precision_increment`` ...).

What a read must see (``need``: per domain a sequence number) is the session's: its own last write
(``session``), the primary's position when the read began (``causal``: :class:`PrimaryClock`, one query
shared by every read that began before it was sent), or the primary's position at most
``max_replica_lag_ms`` ago (``bounded``). :meth:`ReadRouter.choose` picks, by ``read_weight``, among the
replicas in rotation that cover ``need`` and replicate every table the read reads (their ``tables``
filter), waiting up to ``ingress.read_wait_ms`` for one to catch up; else the read goes to the primary.

Links (:class:`~ingress.replica_link.ReplicaLink`) are pooled per replica and per (user, credentials,
capabilities): a link serves one read at a time and goes back to the pool after it, so N client
sessions share as many links as reads run at once. The account's ``SHA1(password)``, needed to log in
as the client's user, is derived once per session (:meth:`ReadRouter.secret`).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from dbmux.core.config import Config, TargetConfig
from dbmux.core.gtid import parse_gtid_list
from dbmux.core.mysql_connect import connect_aiomysql
from dbmux.ingress.replica_auth import stage1, stored_hash
from dbmux.ingress.replica_link import ReplicaLink, ReplicaLinkError

log = logging.getLogger(__name__)

READS = Counter("dbmux_ingress_reads_total", "Reads served, per backend (a replica's target name, or primary)",
                ["backend"])
FALLBACKS = Counter("dbmux_ingress_read_fallbacks_total",
                    "Reads that went to the primary with reads = replicas, per reason", ["reason"])
IN_ROTATION = Gauge("dbmux_ingress_replica_in_rotation", "1 while a replica takes routed reads, else 0", ["replica"])
WAITS = Histogram("dbmux_ingress_read_wait_seconds",
                  "How long reads waited for a replica to catch up (reads that waited at all)",
                  buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))

# Server-wide settings that change what a read answers and that a link cannot take from the session (only
# sql_mode, time_zone and the character sets are carried): a replica whose values differ from the primary's
# stays out of rotation ("settings differ"), with a warning naming the setting.
RESULT_SETTINGS = ("system_time_zone", "div_precision_increment", "group_concat_max_len", "max_sort_length",
                   "lc_time_names", "default_week_format", "lower_case_table_names", "sql_select_limit", "old_mode")
_SETTINGS_SQL = "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})".format(
    ", ".join(f"'{name}'" for name in RESULT_SETTINGS))
SETTINGS_CHECK_S = 10.0  # how often a replica's RESULT_SETTINGS are compared again
MAX_IDLE_LINKS = 64  # idle links kept per replica and key
REFUSED_FOR_S = 5.0  # a replica that refused a user's link is not asked again for that user this long
_FAST_POLL_S = 0.002


def covers(applied: dict[str, int], need: dict[str, int]) -> bool:
    """Has a target with ``applied`` (domain -> last seq) every transaction ``need`` names?"""
    return all(applied.get(domain, 0) >= seq for domain, seq in need.items())


def merge(into: dict[str, int], other: dict[str, int]) -> None:
    """``into`` raised to at least ``other`` in every domain."""
    for domain, seq in other.items():
        if into.get(domain, 0) < seq:
            into[domain] = seq


class ReplicaState:
    """One replica as the router knows it (see the module docstring)."""

    def __init__(self, target: TargetConfig) -> None:
        dsn = target.dsn
        self.name = target.name
        self.dsn = dsn
        self.host, self.port = dsn.host, dsn.port
        self.weight = target.read_weight
        self.patterns = target.tables
        self.applied: dict[str, int] = {}
        self.state = "unknown"
        self.idle: dict[Any, list[ReplicaLink]] = {}
        self.refused: dict[Any, float] = {}  # link key -> until when this replica is not asked (may_try)

    @property
    def in_rotation(self) -> bool:
        return self.state == "running"

    def holds(self, tables: Sequence[str], db: str | None) -> bool:
        """Does this replica replicate every one of ``tables`` (unqualified ones in ``db``)?"""
        if self.patterns == ("*",):
            return True
        for table in tables:
            schema, _, name = table.rpartition(".")
            schema = schema or db or ""
            if not schema or not any(fnmatch.fnmatchcase(f"{schema}.{name}", p) for p in self.patterns):
                return False
        return True


CLOCK_TIMEOUT_S = 2.0  # a position query (and its connection) taking longer fails: those reads go to the primary


class PrimaryClock:
    """The primary's GTID position, for ``causal`` and ``bounded`` reads: :meth:`fence` answers with a
    position read by a query sent after the call began (reads that wait together share one query). A query
    that takes longer than ``timeout_s`` fails the reads waiting for it (they go to the primary) and its
    connection is dropped: a stuck connection never holds every routed read."""

    def __init__(self, config: Config, timeout_s: float = CLOCK_TIMEOUT_S) -> None:
        self.dsn = config.primary.dsn
        self.timeout_s = timeout_s
        self._conn: Any = None
        self._sql = ""
        self._next: asyncio.Future[dict[str, int]] | None = None
        self._running = False
        self._last: tuple[float, dict[str, int]] | None = None  # (when its query was sent, position)

    async def fence(self) -> dict[str, int]:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        fut = self._next
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._run())
        return await asyncio.shield(fut)

    async def recent(self, max_age_s: float) -> dict[str, int]:
        """A position the primary had at most ``max_age_s`` ago (a fresh one when none is that recent)."""
        last = self._last
        if last is not None and time.monotonic() - last[0] <= max_age_s:
            return last[1]
        return await self.fence()

    async def _run(self) -> None:
        while self._next is not None:
            fut, self._next = self._next, None
            sent = time.monotonic()
            try:
                pos = await asyncio.wait_for(self._query(), self.timeout_s)
            except Exception as exc:  # noqa: BLE001 - the waiting reads go to the primary
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                why = f"no answer within {self.timeout_s:g}s" if isinstance(exc, TimeoutError) else str(exc)
                fut.set_exception(ReplicaLinkError(f"cannot read the primary's GTID position: {why}"))
                continue
            self._last = (sent, pos)
            fut.set_result(pos)
        self._running = False

    async def _query(self) -> dict[str, int]:
        if self._conn is None:
            self._conn = await connect_aiomysql(self.dsn, autocommit=True)
            async with self._conn.cursor() as cur:
                await cur.execute("SELECT @@version")
                (version,) = await cur.fetchone()
            self._sql = "SELECT @@gtid_binlog_pos" if "mariadb" in str(version).lower() else "SELECT @@gtid_executed"
        async with self._conn.cursor() as cur:
            await cur.execute(self._sql)
            (text,) = await cur.fetchone()
        return {domain: g.seq for domain, g in parse_gtid_list(text or "").items()}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class ReadRouter:
    """The ingress's read routing state (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        ing = config.ingress
        self.consistency = ing.read_consistency
        self.wait_s = ing.read_wait_ms / 1000
        self.max_lag_s = ing.max_replica_lag_ms / 1000
        self.poll_s = ing.replica_poll_ms / 1000
        self.topic = config.topic
        self.replicas = [ReplicaState(t) for t in config.targets if t.reads_here]
        self.clock = PrimaryClock(config)
        self._primary_dsn = config.primary.dsn
        self._accounts: Any = None  # the ingress's own connection to the primary, for stored password hashes
        self._accounts_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._waiting = 0
        self._primary_settings: dict[str, str] | None = None  # RESULT_SETTINGS as the primary has them
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch(r)) for r in self.replicas]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        self._tasks = []
        self.clock.close()
        if self._accounts is not None:
            self._accounts.close()
        for r in self.replicas:
            for links in r.idle.values():
                for link in links:
                    link.close()
            r.idle.clear()

    # ---- what each replica has applied -----------------------------------------------------------------
    async def _settings(self, conn: Any) -> dict[str, str]:
        async with conn.cursor() as cur:
            await cur.execute(_SETTINGS_SQL)
            return {str(name).lower(): str(value) for name, value in await cur.fetchall()}

    async def _settings_differ(self, replica_conn: Any) -> str:
        """Which result-deciding server setting the replica has otherwise than the primary ("" for none)."""
        if self._primary_settings is None:
            conn = await connect_aiomysql(self._primary_dsn, autocommit=True, connect_timeout=5)
            try:
                self._primary_settings = await self._settings(conn)
            finally:
                conn.close()
        mine = await self._settings(replica_conn)
        for name, value in sorted(self._primary_settings.items()):
            if mine.get(name) != value:
                return f"{name} is {mine.get(name)!r} here, {value!r} on the primary"
        return ""

    async def _watch(self, r: ReplicaState) -> None:
        conn: Any = None
        differ = ""
        checked = 0.0
        gauge = IN_ROTATION.labels(r.name)
        while True:
            try:
                if conn is None:
                    conn = await connect_aiomysql(r.dsn, autocommit=True, connect_timeout=5)
                    checked = 0.0
                if time.monotonic() - checked > SETTINGS_CHECK_S:
                    checked = time.monotonic()
                    was, differ = differ, await self._settings_differ(conn)
                    if differ and differ != was:
                        log.warning("replica %s stays out of read rotation: %s (reads there could answer "
                                    "differently; set it as on the primary)", r.name, differ)
                async with conn.cursor() as cur:
                    await cur.execute("SELECT domain_id, seq FROM dbmux_meta.gtids WHERE target = %s AND topic = %s",
                                      (r.name, self.topic))
                    rows = await cur.fetchall()
                    await cur.execute("SELECT state FROM dbmux_meta.status WHERE target = %s", (r.name,))
                    status = await cur.fetchone()
                state = "settings differ" if differ else status[0] if status else "not started"
                r.applied = {str(domain): int(seq) for domain, seq in rows}
            except asyncio.CancelledError:
                if conn is not None:
                    conn.close()
                raise
            except Exception as exc:  # noqa: BLE001 - out of rotation until it answers again
                state = "unreachable"
                if r.state != state:
                    log.warning("replica %s is out of read rotation: its position cannot be read (%s)", r.name,
                                exc)
                if conn is not None:
                    conn.close()
                    conn = None
            if state != r.state:
                log.info("replica %s: %s -> %s (%s)", r.name, r.state, state,
                         "in read rotation" if state == "running" else "out of read rotation")
                r.state = state
                gauge.set(1 if r.in_rotation else 0)
            self._changed.set()
            self._changed = asyncio.Event()
            if self._waiting:
                await asyncio.sleep(_FAST_POLL_S)
            else:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                except TimeoutError:
                    pass

    async def need(self, own: dict[str, int]) -> dict[str, int]:
        """What a read must see: the session's ``own`` floor, raised to the primary's position for
        ``causal`` (now) and ``bounded`` (at most max_replica_lag_ms ago)."""
        if self.consistency == "session":
            return own
        pos = await (self.clock.fence() if self.consistency == "causal" else self.clock.recent(self.max_lag_s))
        need = dict(pos)
        merge(need, own)
        return need

    async def choose(self, need: dict[str, int], tables: Sequence[str], db: str | None,
                     whole: bool = False) -> tuple[ReplicaState | None, str]:
        """A replica for a read (or None and why not), waiting up to read_wait_ms for one to catch up.
        ``whole``: only a replica that replicates every table (a transaction may read any)."""
        candidates = [r for r in self.replicas
                      if (r.patterns == ("*",) if whole else r.holds(tables, db))]
        if not candidates:
            return None, "tables"
        deadline = started = 0.0
        while True:
            ready = [r for r in candidates if r.in_rotation and covers(r.applied, need)]
            if ready:
                if started:
                    WAITS.observe(time.monotonic() - started)
                if len(ready) == 1:
                    return ready[0], ""
                return random.choices(ready, [r.weight for r in ready])[0], ""
            if not any(r.in_rotation for r in candidates):
                return None, "no_replica"
            now = time.monotonic()
            if not started:
                started, deadline = now, now + self.wait_s
            if now >= deadline:
                WAITS.observe(now - started)
                return None, "lagging"
            changed = self._changed
            self._waiting += 1
            self._wake.set()
            self._wake = asyncio.Event()
            try:
                await asyncio.wait_for(changed.wait(), deadline - now)
            except TimeoutError:
                pass
            finally:
                self._waiting -= 1

    # ---- links -----------------------------------------------------------------------------------------
    async def acquire(self, r: ReplicaState, key: Any, opener: Callable[[], Awaitable[ReplicaLink]]) -> ReplicaLink:
        idle = r.idle.get(key)
        while idle:
            link = idle.pop()
            if link.alive and not link.stream.frames.buffered_bytes:  # (an idle link that got something: gone)
                return link
            link.close()
        return await opener()

    def may_try(self, r: ReplicaState, key: Any) -> bool:
        """False while ``r`` refused a link for ``key`` (a login, a session setup) in the last few seconds."""
        until = r.refused.get(key)
        if until is None:
            return True
        if time.monotonic() < until:
            return False
        del r.refused[key]
        return True

    def refused(self, r: ReplicaState, key: Any, exc: Exception) -> None:
        """A link for ``key`` failed on ``r``: its reads go to the primary for REFUSED_FOR_S."""
        r.refused[key] = time.monotonic() + REFUSED_FOR_S

    def release(self, r: ReplicaState, key: Any, link: ReplicaLink) -> None:
        if not link.alive:
            return
        idle = r.idle.setdefault(key, [])
        if len(idle) < MAX_IDLE_LINKS:
            idle.append(link)
        else:
            link.close()

    async def secret(self, user: str, scramble: bytes, response: bytes) -> bytes | None:
        """The account's SHA1(password) from a client's native-password login (``b""``: no password;
        None: not a native-password login the primary's stored hash confirms)."""
        if not response:
            return b""
        async with self._accounts_lock:
            try:
                if self._accounts is None:
                    self._accounts = await connect_aiomysql(self._primary_dsn, autocommit=True, connect_timeout=5)
                async with self._accounts.cursor() as cur:
                    await cur.execute("SELECT authentication_string FROM mysql.user WHERE User = %s", (user,))
                    rows = await cur.fetchall()
            except Exception as exc:  # noqa: BLE001 - the session reads from the primary
                log.warning("cannot read stored password hashes from the primary for read routing (the "
                            "ingress's primary account needs SELECT on mysql.user): %s", type(exc).__name__)
                if self._accounts is not None:
                    self._accounts.close()
                    self._accounts = None
                return None
        for (auth,) in rows:
            stored = stored_hash(auth or "")
            found = stage1(scramble, response, stored) if stored is not None else None
            if found is not None:
                return found
        return None
