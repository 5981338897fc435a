"""The result cache in the command relay: what is cached, under which key, and what a write invalidates.

:class:`CacheGate` is shared by every session of one ingress (``ingress.cache_bytes`` > 0); each session
asks it through :class:`SessionCache`.

**What is cached**: the answer of a statement (COM_QUERY, or a prepared statement's execution) that is
one read a replica could answer (:mod:`ingress.read_rules`: a SELECT of known functions, no variables, no
locking, reading tables), calls no function whose answer changes by itself (``NOW()``, ``RAND()``,
``UUID()``, ``CURRENT_USER()`` ...), reads only base tables the schema facts know (not views: their tables
are not known here) matched by ``ingress.cache_tables``, in a session in autocommit outside any
transaction, without temporary tables, ``LOCK TABLES`` or session variables the key does not hold
(``ingress.read_session.SessionRules``). An answer that is an error is not kept.

**Key**: user, default database, the statement text (and an execution's parameter types and values),
``sql_mode``, ``time_zone``, the character sets and collation of the connection and results, and the
client's capabilities: one user's entry never answers another user, and an entry is replayed only to a
session that would get the same bytes.

**Invalidation** (:meth:`CacheGate.write_slots`), when a write is sent to the primary and again before
the writer gets its OK. Per key (:mod:`ingress.pinned_keys`) where the table's primary key is one integer
column and the statement pins its values (``WHERE id = 5``, ``id IN (...)``, an INSERT's VALUES; a
prepared statement's ``?`` bound to an integer):
an entry pinned to other keys stays; otherwise per table:

=======================================  =========================================================
``INSERT`` into base tables              their keys, or the tables
  without triggers
``UPDATE``, ``DELETE``                   their keys or tables, and every table a foreign key
                                         cascades to from them (``ON DELETE/UPDATE CASCADE``,
                                         ``SET NULL``, ``SET DEFAULT``), transitively
``REPLACE``, ``INSERT ... ON DUPLICATE   the same; per key only when the primary key is the
  KEY UPDATE``                           table's only unique key
a table with triggers, a view, a table   everything
  the facts do not know; cascades not
  known (a DDL naming foreign keys or a
  RENAME until the next schema reload)
DDL, ``CALL``, anything not understood   everything
a transaction's end (COMMIT, implicit)   what it wrote, again (its rows become visible then)
=======================================  =========================================================

Writes that do not pass through this ingress arrive by the topic (:mod:`ingress.cache_feed`).
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dbmux.core.config import IngressConfig
from dbmux.core.digests import DigestCache
from dbmux.ingress.classify import LexError, lexed
from dbmux.ingress.context import ConnectionContext
from dbmux.ingress.pinned_keys import read_keys, write_keys
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.read_rules import judge_read
from dbmux.ingress.result_cache import ResultCache, Slots, Ticket, read_slots, write_slots
from dbmux.ingress.schema_facts import SchemaFacts
from dbmux.ingress.statements import PlannedStatement, QueryPlan


class _CacheMetrics(Collector):
    """The cache's own counts, read when Prometheus scrapes (a hit costs no metric update)."""

    def __init__(self) -> None:
        self.gate: CacheGate | None = None

    def collect(self) -> Iterator[Metric]:
        gate = self.gate
        if gate is None:
            return
        cache = gate.cache
        lookups = CounterMetricFamily("dbmux_ingress_cache_lookups", "Result cache lookups of cacheable reads",
                                      labels=["result"])
        for result, n in (("hit", cache.hits), ("miss", cache.misses), ("wait", gate.waits)):
            lookups.add_metric([result], n)
        yield lookups
        inval = CounterMetricFamily("dbmux_ingress_cache_invalidations", "Result cache invalidations",
                                    labels=["scope"])
        inval.add_metric(["tables"], gate.invalidated_tables)
        inval.add_metric(["keys"], gate.invalidated_keys)
        inval.add_metric(["all"], gate.invalidated_all)
        yield inval
        yield CounterMetricFamily("dbmux_ingress_cache_evictions", "Entries evicted from the result cache",
                                  value=cache.evictions)
        yield GaugeMetricFamily("dbmux_ingress_cache_bytes", "Bytes the result cache holds", value=cache.bytes)
        yield GaugeMetricFamily("dbmux_ingress_cache_entries", "Entries the result cache holds", value=len(cache))


METRICS = _CacheMetrics()
REGISTRY.register(METRICS)

# Functions whose answer changes by itself, or depends on the connection: never cached.
VOLATILE = frozenset({
    "NOW", "CURDATE", "CURTIME", "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "LOCALTIME", "LOCALTIMESTAMP",
    "UTC_DATE", "UTC_TIME", "UTC_TIMESTAMP", "SYSDATE", "UNIX_TIMESTAMP", "RAND", "UUID", "UUID_SHORT", "SYS_GUID",
    "RANDOM_BYTES", "CONNECTION_ID", "CURRENT_USER", "CURRENT_ROLE", "USER", "SESSION_USER", "SYSTEM_USER",
    "FOUND_ROWS", "ROW_COUNT", "LAST_INSERT_ID", "SLEEP", "BENCHMARK", "GET_LOCK", "NEXTVAL", "LASTVAL",
})
_ALL = None  # write_slots: every table
_SETTINGS = 8  # a key's last parts: the session settings (SessionCache.key)
_CALL = re.compile(r"[\w`]\s*\(")  # something that may be a function call


_VOLATILE_SHAPES: DigestCache[bool] = DigestCache("cache_volatile", 4096)


def _volatile(sql: str) -> bool:
    """Does ``sql`` call a function in VOLATILE (or not lex)? Function names are part of a statement's shape:
    the answer is kept per shape, not per text (a text per distinct literal would fill memory)."""
    try:
        tokens, _, shape = lexed(sql)
    except LexError:
        return True
    return _VOLATILE_SHAPES.get(shape, lambda: any(t.type == "word" and t.upper in VOLATILE for t in tokens))


def key_size(key: tuple) -> int:
    """The bytes a key (:meth:`SessionCache.key`, :meth:`SessionCache.execute_key`) holds of its own: the
    tuple and its statement parts (text, parameter types and values); the user, database and settings are
    shared with the session's other keys."""
    return sys.getsizeof(key) + sum([sys.getsizeof(part) for part in key[2:-_SETTINGS]])


def qualified(table: str, db: str | None) -> str | None:
    """``db.table`` in lower case (None: an unqualified table without a default database)."""
    schema, _, name = table.rpartition(".")
    schema = schema or db or ""
    return f"{schema}.{name}".lower() if schema else None


class CacheGate:
    """The ingress's result cache with what decides cacheability and invalidation (module docstring)."""

    def __init__(self, config: IngressConfig, facts: SchemaFacts) -> None:
        self.cache = ResultCache(config.cache_bytes, ttl_s=config.cache_ttl_ms / 1000)
        self.facts = facts
        self.patterns = tuple(p.lower() for p in config.cache_tables)
        self.own_connections: set[int] = set()  # the primary's ids of this ingress's sessions (cache_feed)
        self.waits = self.invalidated_tables = self.invalidated_keys = self.invalidated_all = 0
        METRICS.gate = self

    def forget_connection(self, connection_id: int) -> None:
        """A session ended; its events may still be on their way through the topic (cache_feed skips them
        for a while after)."""
        self.own_connections.discard(connection_id)

    def read_slots(self, sql: str, db: str | None,
                   params: Callable[[], Sequence[Any] | None] | None = None) -> Slots | None:
        """What a cacheable read depends on (:func:`result_cache.read_slots` of its tables, qualified), or
        None when it is not cacheable (``params``: a prepared statement's bound values, asked for only
        when they may pin keys)."""
        route = judge_read(sql)
        if not route.replica:
            return None
        if _volatile(sql):
            return None
        out: list[Hashable] = []
        for table in route.tables:
            name = qualified(table, db)
            facts = self.facts.table(table, db)
            if name is None or facts is None or facts.kind != "table":
                return None
            if self.patterns != ("*",) and not any(fnmatch.fnmatchcase(name, p) for p in self.patterns):
                return None
            keys = None
            if len(route.tables) == 1 and facts.int_pk:
                keys = read_keys(sql, facts.int_pk, params() if params is not None and "?" in sql else None)
            out.extend(read_slots(name, keys))
        return tuple(out)

    def write_slots(self, stmt: PlannedStatement, db: str | None,
                    params: Sequence[Any] | None = None) -> Slots | None:
        """What a statement sent to the primary invalidates: slots, () for nothing, None for everything
        (``params``: a prepared statement's bound values)."""
        kind, cls = stmt.kind, stmt.cls
        if kind == "read":  # a stored function or DO may write (no "name(" in the text: no function call)
            if cls is not None and cls.verb == "DO":
                return _ALL
            return _ALL if _CALL.search(stmt.sql) and judge_read(stmt.sql).reason == "function" else ()
        if kind == "tcl" or (kind == "session" and cls is not None) or (cls is not None and cls.temporary):
            return ()
        if kind != "dml" or cls is None or cls.shape is None:
            return _ALL
        shape = cls.shape
        out: list[Hashable] = []
        for table in shape.tables:
            name = qualified(table, db)
            facts = self.facts.table(table, db)
            if name is None or facts is None or facts.kind != "table" or facts.triggers:
                return _ALL
            # (REPLACE and ON DUPLICATE KEY UPDATE may change the row of another unique key)
            plain = shape.verb in ("UPDATE", "DELETE") or (shape.verb == "INSERT" and not shape.on_duplicate)
            keys = (write_keys(stmt.sql, shape, facts.int_pk, params)
                    if facts.int_pk and (plain or facts.unique_keys == 1) else None)
            out.extend(write_slots(name, keys))
            if shape.verb != "INSERT" or shape.on_duplicate:  # rows changed or deleted: foreign keys may cascade
                if not self.cascades(name, out, {name}):
                    return _ALL
        return tuple(out)

    def cascades(self, name: str, out: list[Hashable], seen: set[str]) -> bool:
        """Add the tables a change of ``name``'s rows may cascade to (False: not known)."""
        facts = self.facts.table(name, None)
        if facts is None or not self.facts.cascades_known:
            return False
        for child in facts.children - seen:
            seen.add(child)
            out.extend(write_slots(child, None))
            if not self.cascades(child, out, seen):
                return False
        return True

    def invalidate(self, slots: Slots | None) -> None:
        if slots is _ALL:
            self.cache.invalidate_all()
            self.invalidated_all += 1
        elif slots:
            self.cache.invalidate(slots)
            if any(type(s) is str and s[-1] == "*" for s in slots):
                self.invalidated_tables += 1
            else:
                self.invalidated_keys += 1


class SessionCache:
    """One session's use of the cache: lookups, the answer of a miss, and its writes' invalidations."""

    def __init__(self, gate: CacheGate, ctx: ConnectionContext) -> None:
        self.gate = gate
        self.ctx = ctx
        self.written: set[Hashable] | None = set()  # slots written in the open transaction (None: unknown)

    def key(self, sql: str) -> tuple:
        ctx = self.ctx
        return (ctx.user, ctx.db, sql, ctx.sql_mode, ctx.time_zone, ctx.charset, ctx.charset_connection,
                ctx.collation_connection, ctx.charset_results, ctx.client_caps, ctx.ext_caps)

    def hit(self, sql: str) -> bytes | None:
        """The cached answer of ``sql`` in this session, looked up by its text alone (no planning)."""
        return self.gate.cache.get(self.key(sql))

    def execute_key(self, sql: str, types: bytes | None, values: bytes) -> tuple:
        """A prepared statement's execution: its text, parameter types and values (and the session's settings)."""
        ctx = self.ctx
        return (ctx.user, ctx.db, sql, types, values, ctx.sql_mode, ctx.time_zone, ctx.charset,
                ctx.charset_connection, ctx.collation_connection, ctx.charset_results, ctx.client_caps, ctx.ext_caps)

    def lookup(self, sql: str, key: tuple | None = None, params: Callable[[], Sequence[Any] | None] | None = None,
               ) -> tuple[bytes | None, Ticket | None, tuple | None]:
        """(answer, in-flight ticket to wait for, key for a miss); all None: not cacheable. ``key``: an
        execution's (:meth:`execute_key`; ``params``: its bound values when asked for), else the text's."""
        cache = self.gate.cache
        if key is not None:
            answer = cache.get(key)
            if answer is not None:
                return answer, None, None
        slots = self.gate.read_slots(sql, self.ctx.db, params)
        if slots is None:
            return None, None, None
        key = self.key(sql) if key is None else key
        answer = cache.get(key)
        if answer is not None:
            return answer, None, None
        flight = cache.in_flight(key)
        if flight is not None:
            self.gate.waits += 1
            return None, flight, None
        return None, None, key + (slots,)

    def begin(self, key: tuple) -> Ticket:
        return self.gate.cache.begin(key[:-1], key[-1], key_size(key[:-1]))

    def on_dispatch(self, plan: QueryPlan | None, params: Sequence[Any] | None = None) -> None:
        """Statements sent to the primary: their writes invalidate now (an error may have written part)."""
        if plan is None:
            return
        for stmt in plan.statements:
            slots = self.gate.write_slots(stmt, self.ctx.db, params)
            if slots is _ALL or slots:
                self.gate.invalidate(slots)
                if self.written is not None:
                    self.written = None if slots is _ALL else self.written | set(slots)

    def on_ok(self, stmt: PlannedStatement, status_flags: int, params: Sequence[Any] | None = None) -> None:
        """A statement's OK, before it goes to the client: its writes again, and a transaction's at its end."""
        slots = self.gate.write_slots(stmt, self.ctx.db, params)
        if slots is _ALL or slots:
            self.gate.invalidate(slots)
        if not status_flags & c.SERVER_STATUS_IN_TRANS and self.written != set():
            self.gate.invalidate(None if self.written is None else tuple(self.written))
            self.written = set()
