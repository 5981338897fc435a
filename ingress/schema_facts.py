"""What the ingress must know of the primary's schema to judge a write's statement form safe.

A statement applied on a target computes what the primary computed only when nothing in it depends on
the moment or the server it runs on. Beyond the statement's own text (:mod:`ingress.rewrite`), the
schema of the tables it writes decides that:

* **triggers**: a target applies the row copy of such a transaction, which already holds the trigger's
  changes (targets do not run triggers: see the README, "Triggers");
* **implicit values**: a column whose default is a clock (``DEFAULT CURRENT_TIMESTAMP(6)``) or another
  non-deterministic expression (``DEFAULT (UUID())``), ``ON UPDATE CURRENT_TIMESTAMP``, and, with
  ``explicit_defaults_for_timestamp`` off, ``TIMESTAMP NOT NULL`` columns (a NULL stores the current
  time): a statement that does not set them lets each server pick its own value;
* **views, sequences, system-versioned tables**: what a write through them touches is not analysed;
* **keys**: ``ON DUPLICATE KEY UPDATE`` on a table with several unique keys, ``ORDER BY ... LIMIT``
  on columns that are not a unique key of NOT NULL columns, ``INSERT ... SELECT`` into a table with
  an auto-increment column (the SELECT's row order numbers the rows) -- MySQL's own "unsafe for
  statement-based replication" cases.

:class:`SchemaFacts` is one cache per ingress, shared by every session (one event loop: no locks). It
is loaded from the primary's ``information_schema`` (``primary.url``'s user: it must see every table,
and, for triggers, hold the ``TRIGGER`` privilege -- a warning is logged when it does not) and kept
current three ways:

1. **DDL through the ingress, at dispatch**: the tables a DDL statement names (every table, for a
   statement that may run DDL inside: ``CALL``, ``EXECUTE``, compound blocks) are *in flux* from the
   moment it is sent to the primary until its answer: a write judged meanwhile, by any session, is
   unsafe (it may have run after the DDL). An ``ALTER TABLE`` or index change without *decisive* parts
   (clock or function defaults, ``ON UPDATE``, ``RENAME``, system versioning; ``TIMESTAMP`` too while
   ``explicit_defaults_for_timestamp`` is off) puts only the table's keys in flux: writes that do not
   depend on keys go on in statement form while a long ALTER runs;
2. **DDL through the ingress, at its OK**: its effect is applied at once where the text tells it
   exactly (a ``CREATE TABLE`` without decisive parts, ``LIKE`` or ``SELECT`` is a table without
   triggers or implicit values; ``CREATE TRIGGER ... ON t`` gives ``t`` triggers; ``DROP``/``RENAME``
   forget or move tables; ``ALTER`` without decisive parts keeps a table's facts but forgets its
   keys), otherwise the table is forgotten (unknown: unsafe) -- and a reload is asked for;
3. **a reload every** ``ingress.schema_refresh_ms`` (DDL can bypass the ingress: such a change is seen
   within that interval; writes judged in between use the older facts -- run schema changes through
   the ingress). A reload that overlapped any DDL through the ingress is discarded and done again.
   Facts not refreshed for three intervals (the primary unreachable) are stale: everything is unsafe.

Anything not known -- facts not loaded yet or stale, a table not in them, a table in flux -- makes a
write unsafe: it is then applied from its row copy, which is always right, only later.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from dbmux.core.dsn import Dsn
from dbmux.core.mysql_connect import connect_aiomysql
from dbmux.core.sqllex import LexError, scan
from dbmux.ingress.classify import Classification
from dbmux.ingress.rewrite import DETERMINISTIC_FUNCTIONS

log = logging.getLogger(__name__)

__all__ = ["ALL_TABLES", "NO_TABLE_EFFECT", "PendingChange", "SchemaFacts", "SchemaSnapshot", "TableFacts",
           "build_tables", "implicit_default"]

Key = tuple[str, str]  # (db, table) as the server spells them
ALL_TABLES: Key = ("*", "*")  # in flux: every table
_SYSTEM = "('mysql', 'information_schema', 'performance_schema', 'sys', 'dbmux_meta')"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_CLOCK_WORDS = frozenset({
    "CURRENT_TIMESTAMP", "NOW", "LOCALTIME", "LOCALTIMESTAMP", "SYSDATE", "CURDATE", "CURRENT_DATE", "CURTIME",
    "CURRENT_TIME", "UTC_TIMESTAMP", "UTC_DATE", "UTC_TIME", "UNIX_TIMESTAMP",
})
# Words in DDL text that may give a table implicit values or change what is known of it: then the
# table is unknown until the reload (a false alarm only costs the row copy for a few milliseconds).
_DECISIVE_WORDS = _CLOCK_WORDS | {"UUID", "UUID_SHORT", "RAND", "SYS_GUID", "NEXTVAL", "LIKE", "SELECT",
                                  "RENAME", "VERSIONING", "PERIOD", "SEQUENCE", "UPDATE"}
_INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
_CASCADING = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})  # foreign-key rules that change the child
_FK_WORDS = frozenset({"REFERENCES", "FOREIGN", "RENAME"})  # DDL that may change which tables cascade
_DEFAULT_LITERAL_WORDS = frozenset({"NULL", "TRUE", "FALSE", "CHARSET", "CHARACTER", "COLLATE"})
# Verbs of statements of unknown kind that can change no table: neither run DDL nor create temporary
# tables (anything else may, inside: CALL, EXECUTE, compound blocks ...).
NO_TABLE_EFFECT = frozenset({
    "GRANT", "REVOKE", "SET PASSWORD", "SET DEFAULT", "CREATE USER", "ALTER USER", "DROP USER", "RENAME USER",
    "CREATE ROLE", "DROP ROLE", "FLUSH", "ANALYZE", "CHECK", "OPTIMIZE", "REPAIR", "CACHE", "RESET", "INSTALL",
    "UNINSTALL", "CHANGE", "SET GLOBAL", "SET PERSIST", "SET PERSIST_ONLY", "SET autocommit", "LOAD INDEX",
    "START SLAVE", "STOP SLAVE", "START REPLICA", "STOP REPLICA", "KILL", "HANDLER", "CHECKSUM", "PURGE",
    "EXPLAIN", "DESCRIBE", "DESC",
})


@dataclass(frozen=True, slots=True)
class TableFacts:
    """What decides whether a write to one table is safe in statement form (column names lower-case)."""

    kind: str = "table"  # table, view, sequence, versioned (system-versioned: hidden row_start/row_end times)
    triggers: bool = False
    insert_implicit: frozenset[str] = frozenset()  # default is a clock or a non-deterministic expression
    update_implicit: frozenset[str] = frozenset()  # ON UPDATE CURRENT_TIMESTAMP
    null_implicit: frozenset[str] = frozenset()  # TIMESTAMP NOT NULL, explicit_defaults_for_timestamp off
    auto_increment: bool = False
    unique_keys: int | None = 0  # unique indexes (the primary key included); None: not known
    ordering_keys: tuple[frozenset[str], ...] | None = ()  # unique keys of NOT NULL columns; None: not known
    int_pk: str | None = None  # the primary key's column when it is one integer column (the result cache)
    children: frozenset[str] = frozenset()  # "db.t" (lower case) whose foreign keys cascade from this table


@dataclass(frozen=True, slots=True)
class SchemaSnapshot:
    """One load of the primary's schema facts."""

    tables: dict[Key, TableFacts]
    autoinc_lock_mode: int = 1
    trigger_privilege: bool = True
    explicit_defaults: bool = True  # explicit_defaults_for_timestamp


Loader = Callable[[], Awaitable[SchemaSnapshot]]


def implicit_default(default: Any, extra: str, mariadb: bool) -> bool:
    """Is a column default (``information_schema.COLUMNS.COLUMN_DEFAULT``/``EXTRA``) a value each server
    computes for itself: a clock or a non-deterministic expression? MariaDB writes literals quoted
    (``'abc'``), as numbers or ``NULL``, and expressions as text; MySQL marks expressions with
    ``DEFAULT_GENERATED`` in ``EXTRA`` and writes literals unquoted."""
    if default is None:
        return False
    text = (default.decode("utf-8", "replace") if isinstance(default, (bytes, bytearray)) else str(default)).strip()
    if mariadb:
        if text.upper() == "NULL" or text.startswith("'") or _NUMBER.fullmatch(text):
            return False
    elif "default_generated" not in extra.lower():
        return False
    try:
        tokens = scan(text)
    except LexError:
        return True
    for j, t in enumerate(tokens):
        if t.type in ("var", "sysvar"):
            return True
        if t.type != "word":
            continue
        if t.upper in _CLOCK_WORDS:
            return True
        called = j + 1 < len(tokens) and tokens[j + 1].text == "("
        if called and t.upper not in DETERMINISTIC_FUNCTIONS:
            return True
    return False


def build_tables(tables: Iterable[tuple], columns: Iterable[tuple], triggers: Iterable[tuple],
                 indexes: Iterable[tuple], *, mariadb: bool, explicit_defaults: bool,
                 primary_keys: Iterable[tuple] = (), foreign_keys: Iterable[tuple] = ()) -> dict[Key, TableFacts]:
    """Facts per table from ``information_schema`` rows (pure; see :func:`load_snapshot` for the queries):
    ``tables`` (db, table, TABLE_TYPE), ``columns`` (db, table, column, COLUMN_DEFAULT, EXTRA, DATA_TYPE,
    IS_NULLABLE), ``triggers`` (db, table), ``indexes`` (db, table, INDEX_NAME, NON_UNIQUE, COLUMN_NAME,
    NULLABLE), ``primary_keys`` (db, table, column, DATA_TYPE: the primary key's columns), ``foreign_keys``
    (db, table, referenced db, referenced table, UPDATE_RULE, DELETE_RULE)."""
    kinds = {"VIEW": "view", "SYSTEM VIEW": "view", "SEQUENCE": "sequence", "SYSTEM VERSIONED": "versioned"}
    out: dict[Key, dict[str, Any]] = {}
    for db, name, table_type in tables:
        out[(db, name)] = {"kind": kinds.get(str(table_type).upper(), "table"), "insert_implicit": set(),
                           "update_implicit": set(), "null_implicit": set()}
    for db, name, col, default, extra, data_type, nullable in columns:
        facts = out.get((db, name))
        if facts is None:
            continue
        c, extra = col.lower(), str(extra or "")
        if "auto_increment" in extra.lower():
            facts["auto_increment"] = True
        if implicit_default(default, extra, mariadb):
            facts["insert_implicit"].add(c)
        if "on update" in extra.lower():
            facts["update_implicit"].add(c)
        if not explicit_defaults and str(data_type).lower() == "timestamp" and str(nullable).upper() == "NO":
            facts["null_implicit"].add(c)
    for db, name in triggers:
        if (db, name) in out:
            out[(db, name)]["triggers"] = True
    keys: dict[Key, dict[str, list[tuple[str, bool]]]] = {}
    for db, name, index, non_unique, col, nullable in indexes:
        if str(non_unique) in ("0", "False") and (db, name) in out:
            keys.setdefault((db, name), {}).setdefault(index, []).append((col.lower(), str(nullable or "") == ""))
    pk_columns: dict[Key, list[tuple[str, str]]] = {}
    for db, name, col, data_type in primary_keys:
        pk_columns.setdefault((db, name), []).append((col.lower(), str(data_type).lower()))
    for key, cols in pk_columns.items():
        if key in out and len(cols) == 1 and cols[0][1] in _INTEGER_TYPES:
            out[key]["int_pk"] = cols[0][0]
    for db, name, ref_db, ref_name, on_update, on_delete in foreign_keys:
        if (ref_db, ref_name) in out and {str(on_update).upper(), str(on_delete).upper()} & _CASCADING:
            out[(ref_db, ref_name)].setdefault("children", set()).add(f"{db}.{name}".lower())
    for key, by_index in keys.items():
        out[key]["unique_keys"] = len(by_index)
        out[key]["ordering_keys"] = tuple(frozenset(c for c, _ in cols) for cols in by_index.values()
                                          if all(not_null for _, not_null in cols))
    return {k: TableFacts(**{**v, "insert_implicit": frozenset(v["insert_implicit"]),
                             "update_implicit": frozenset(v["update_implicit"]),
                             "null_implicit": frozenset(v["null_implicit"]),
                             "children": frozenset(v.get("children", ()))}) for k, v in out.items()}


async def load_snapshot(dsn: Dsn) -> SchemaSnapshot:
    """Read the schema facts from the primary (one connection, five queries)."""
    conn = await connect_aiomysql(dsn, autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT VERSION(), @@explicit_defaults_for_timestamp, @@innodb_autoinc_lock_mode")
            version, explicit, lock_mode = await cur.fetchone()
            await cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                              f"WHERE TABLE_SCHEMA NOT IN {_SYSTEM}")
            tables = await cur.fetchall()
            await cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT, EXTRA, DATA_TYPE, IS_NULLABLE "
                f"FROM information_schema.COLUMNS WHERE TABLE_SCHEMA NOT IN {_SYSTEM} AND (COLUMN_DEFAULT IS NOT "
                "NULL OR EXTRA <> '' OR DATA_TYPE = 'timestamp')")
            columns = await cur.fetchall()
            await cur.execute("SELECT DISTINCT EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE FROM "
                              f"information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA NOT IN {_SYSTEM}")
            triggers = await cur.fetchall()
            await cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, NULLABLE FROM "
                              f"information_schema.STATISTICS WHERE NON_UNIQUE = 0 AND TABLE_SCHEMA NOT IN {_SYSTEM}")
            indexes = await cur.fetchall()
            await cur.execute("SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE FROM "
                              "information_schema.KEY_COLUMN_USAGE k JOIN information_schema.COLUMNS c USING "
                              "(TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME) WHERE k.CONSTRAINT_NAME = 'PRIMARY' "
                              f"AND k.TABLE_SCHEMA NOT IN {_SYSTEM}")
            primary_keys = await cur.fetchall()
            await cur.execute("SELECT CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME, "
                              "UPDATE_RULE, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS")
            foreign_keys = await cur.fetchall()
            await cur.execute("SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES "
                              "WHERE PRIVILEGE_TYPE IN ('TRIGGER', 'SUPER')")
            (privileged,) = await cur.fetchone()
    finally:
        conn.close()
    facts = build_tables(tables, columns, triggers, indexes, mariadb="mariadb" in str(version).lower(),
                         explicit_defaults=bool(int(explicit)), primary_keys=primary_keys, foreign_keys=foreign_keys)
    return SchemaSnapshot(facts, autoinc_lock_mode=int(lock_mode), trigger_privilege=bool(privileged),
                          explicit_defaults=bool(int(explicit)))


@dataclass(slots=True)
class PendingChange:
    """A schema change on its way through the primary (see :meth:`SchemaFacts.begin_change`)."""

    keys: tuple[Key, ...]
    keys_only: bool  # only the tables' keys may change (an ALTER or index without decisive parts)
    done: bool = field(default=False)


class SchemaFacts:
    """The ingress's cache of the primary's schema facts; see the module docstring."""

    def __init__(self, dsn: Dsn | None, refresh_ms: int, *, loader: Loader | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if loader is None:
            assert dsn is not None, "a DSN or a loader"
            target = dsn

            async def load() -> SchemaSnapshot:
                return await load_snapshot(target)

            loader = load
        self._loader = loader
        self._clock = clock
        self.refresh_s = refresh_ms / 1000
        self._tables: dict[Key, TableFacts] = {}
        self._folded: dict[Key, TableFacts] | None = None  # lower-cased keys, built when first needed
        self.autoinc_lock_mode = 1
        self.explicit_defaults = True  # explicit_defaults_for_timestamp (off: TIMESTAMP columns are implicit)
        self.loaded_at: float | None = None
        self._stale_all = False  # a statement that may run DDL inside completed: unknown until the reload
        self.cascades_known = False  # each table's children (foreign keys) as loaded still hold
        # tables in flux, and tables whose keys only are in flux: a count per table (changes may overlap),
        # keyed by lower-cased names (whatever lower_case_table_names says: a false alarm costs little)
        self._flux: dict[Key, int] = {}
        self._key_flux: dict[Key, int] = {}
        self._generation = 0
        self._wanted = asyncio.Event()  # a reload is asked for
        self._settled = asyncio.Event()  # nothing is in flux
        self._settled.set()
        self._attempted = asyncio.Event()  # a load succeeded or failed
        self._task: asyncio.Task[None] | None = None
        self._warned_privilege = False
        self.reloads = 0

    # ---- lookups ----------------------------------------------------------------------------------------
    def fresh(self) -> bool:
        return (self.loaded_at is not None and not self._stale_all
                and self._clock() - self.loaded_at <= 3 * self.refresh_s and ALL_TABLES not in self._flux)

    def table(self, name: str, default_db: str | None) -> TableFacts | None:
        """Facts of table ``name`` (``db.t`` or ``t`` in ``default_db``); None when not known for certain
        (not loaded, stale, in flux, or no such table)."""
        db, _, table = name.rpartition(".")
        key = (db or default_db or "", table)
        folded = (key[0].lower(), table.lower())
        if not self.fresh() or folded in self._flux:
            return None
        facts = self._tables.get(key)
        if facts is None:  # lower_case_table_names, or a name written in another case
            if self._folded is None:
                self._folded = {(d.lower(), t.lower()): f for (d, t), f in self._tables.items()}
            facts = self._folded.get(folded)
        if facts is not None and folded in self._key_flux:
            facts = replace(facts, unique_keys=None, ordering_keys=None, int_pk=None)
        return facts

    # ---- schema changes through the ingress ---------------------------------------------------------------
    def begin_change(self, cls: Classification, sql: str, default_db: str | None) -> PendingChange | None:
        """A statement that may change the schema is sent to the primary: its tables (or only their keys,
        for an ALTER or index without decisive parts) are in flux until :meth:`end_change` (None: it
        changes no table)."""
        if cls.kind == "ddl" and (cls.verb == "RENAME TABLE" or _words(sql) & _FK_WORDS):
            self.cascades_known = False  # (until a reload that began after this change ended)
        keys = self._changed_keys(cls, default_db)
        if not keys:
            return None
        keys_only = cls.verb in ("ALTER TABLE", "CREATE INDEX", "DROP INDEX") and not self._decisive(sql)
        flux = self._key_flux if keys_only else self._flux
        for k in keys:
            flux[k] = flux.get(k, 0) + 1
        self._generation += 1
        self._settled.clear()
        return PendingChange(keys, keys_only)

    def end_change(self, flux: PendingChange | None) -> None:
        """The statement :meth:`begin_change` saw is answered (or will never be): out of flux, and reload."""
        if flux is None or flux.done:
            return
        flux.done = True
        counts = self._key_flux if flux.keys_only else self._flux
        for k in flux.keys:
            n = counts[k] - 1
            if n:
                counts[k] = n
            else:
                del counts[k]
        if not self._flux and not self._key_flux:
            self._settled.set()
        self._generation += 1
        self._wanted.set()

    def _changed_keys(self, cls: Classification, default_db: str | None) -> tuple[Key, ...]:
        if cls.kind == "unknown":
            return () if cls.verb in NO_TABLE_EFFECT else (ALL_TABLES,)
        if cls.kind != "ddl" or cls.temporary or cls.verb == "TRUNCATE TABLE":
            return ()
        verb = cls.verb
        if verb.endswith(("DATABASE", "SCHEMA")):
            return (ALL_TABLES,) if verb.startswith("DROP") else ()
        if not cls.tables:
            # DROP TRIGGER (names no table) keeps a table's triggers until the reload: no flux needed;
            # routines, events, users, servers change no table
            return ()
        names = cls.tables[:1] if verb in ("CREATE TABLE", "CREATE VIEW") else cls.tables  # (not a SELECT's)
        return tuple((d.lower(), t.lower()) for d, t in (_key(name, default_db) for name in names))

    def apply_ddl(self, cls: Classification, sql: str, default_db: str | None) -> None:
        """A statement that may change the schema succeeded: take its effect (module docstring, 2.)."""
        if cls.kind == "unknown":
            if cls.verb not in NO_TABLE_EFFECT:
                self._stale_all = True
                self._changed()
            return
        if cls.kind != "ddl" or cls.temporary:
            return
        verb = cls.verb
        names = [_key(n, default_db) for n in cls.tables]
        tables = self._tables
        decisive = self._decisive(sql)
        if verb.startswith("DROP") and verb.endswith(("DATABASE", "SCHEMA")):
            dropped = _dropped_database(sql)
            for k in [k for k in tables if dropped is None or k[0] == dropped]:
                del tables[k]
        elif not names:
            return
        elif verb in ("CREATE VIEW", "ALTER VIEW", "CREATE SEQUENCE"):
            tables[names[0]] = TableFacts(kind="sequence" if verb == "CREATE SEQUENCE" else "view")
        elif verb == "CREATE TABLE":
            target = names[0]
            if decisive or (_if_not_exists(sql) and target not in tables):
                tables.pop(target, None)  # (IF NOT EXISTS on a table not known: it may exist, as it is)
            elif not _if_not_exists(sql):
                tables[target] = TableFacts(auto_increment="AUTO_INCREMENT" in _words(sql), unique_keys=None,
                                            ordering_keys=None)
        elif verb == "CREATE TRIGGER":
            facts = tables.get(names[0])
            if facts is not None:
                tables[names[0]] = replace(facts, triggers=True)
        elif verb in ("ALTER TABLE", "CREATE INDEX", "DROP INDEX"):
            facts = tables.get(names[0])
            if facts is not None and verb == "ALTER TABLE" and decisive:
                del tables[names[0]]
            elif facts is not None:
                tables[names[0]] = replace(facts, unique_keys=None, ordering_keys=None, int_pk=None,
                                           auto_increment=facts.auto_increment or "AUTO_INCREMENT" in _words(sql))
        elif verb == "RENAME TABLE" and len(names) % 2 == 0:
            moved = [(names[i], tables.pop(names[i], None)) for i in range(0, len(names), 2)]
            for (_, facts), new in zip(moved, names[1::2], strict=True):
                if facts is not None:
                    tables[new] = facts
                else:
                    tables.pop(new, None)
        elif verb != "TRUNCATE TABLE":  # DROP TABLE/VIEW/SEQUENCE, and whatever else names tables: forgotten
            for k in names:
                tables.pop(k, None)
        self._changed()

    def doubt_cascades(self) -> None:
        """A schema change went around the ingress (seen in the binlog): which tables cascade from which is
        not known until the reload this asks for."""
        self.cascades_known = False
        self._changed()

    def _decisive(self, sql: str) -> bool:
        return _decisive(sql, timestamps=not self.explicit_defaults)

    def _changed(self) -> None:
        self._folded = None
        self._generation += 1
        self._wanted.set()

    # ---- loading --------------------------------------------------------------------------------------------
    def install(self, snapshot: SchemaSnapshot) -> None:
        self._tables = dict(snapshot.tables)
        self._folded = None
        self.autoinc_lock_mode = snapshot.autoinc_lock_mode
        self.explicit_defaults = snapshot.explicit_defaults
        self.loaded_at = self._clock()
        self._stale_all = False
        self.cascades_known = True
        self.reloads += 1
        if not snapshot.trigger_privilege and not self._warned_privilege:
            self._warned_privilege = True
            log.warning("schema facts: the primary.url user lacks the global TRIGGER privilege, so "
                        "information_schema may hide triggers; writes to tables with hidden triggers would be "
                        "replicated as statements (grant TRIGGER ON *.* to that user)")

    async def reload_once(self) -> bool:
        """Load and install the facts, unless a schema change through the ingress overlapped the load;
        True when installed."""
        generation = self._generation
        snapshot = await self._loader()
        if generation != self._generation or self._flux or self._key_flux:
            return False
        self.install(snapshot)
        return True

    async def start(self, first_load_timeout_s: float = 0) -> None:
        """Start loading and refreshing in the background; wait up to ``first_load_timeout_s`` for the
        first load to succeed or fail (then: logged, and writes are unsafe until a load succeeds)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        if first_load_timeout_s > 0:
            try:
                await asyncio.wait_for(self._attempted.wait(), first_load_timeout_s)
            except TimeoutError:
                log.warning("schema facts: not loaded within %.0fs; writes are replicated from their row copy "
                            "until they are", first_load_timeout_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wanted.clear()
            try:
                installed = await self.reload_once()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the primary away, a privilege missing: retried
                self._attempted.set()
                failures += 1
                installed = False
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("schema facts: reload failed (%s: %s); writes are replicated from their row "
                                "copy until the facts are loaded", type(exc).__name__, exc)
                await asyncio.sleep(min(0.05 * 2 ** min(failures, 6), self.refresh_s))
                continue
            self._attempted.set()
            if not installed:  # a schema change overlapped: again once nothing is in flux
                await self._settled.wait()
                continue
            try:
                await asyncio.wait_for(self._wanted.wait(), self.refresh_s)
            except TimeoutError:
                pass


def _key(name: str, default_db: str | None) -> Key:
    db, _, table = name.rpartition(".")
    return (db or default_db or "", table)


def _words(sql: str) -> set[str]:
    try:
        return {t.upper for t in scan(sql) if t.type == "word"}
    except LexError:
        return {"SELECT"}  # (decisive: unknown)


def _if_not_exists(sql: str) -> bool:
    try:
        words = [t.upper for t in scan(sql)[:12] if t.type == "word"]
    except LexError:
        return True
    return any(words[i:i + 3] == ["IF", "NOT", "EXISTS"] for i in range(len(words)))


def _decisive(sql: str, *, timestamps: bool) -> bool:
    """May this DDL text give a table implicit values, or change what is known of it (see _DECISIVE_WORDS)?
    ``DEFAULT`` followed by anything but a literal (an expression or a function) counts too, and so does
    ``TIMESTAMP`` when ``timestamps`` (explicit_defaults_for_timestamp off: such a column may get a clock
    default and ON UPDATE without saying so)."""
    try:
        tokens = scan(sql)
    except LexError:
        return True
    for j, t in enumerate(tokens):
        if t.type == "word" and (t.upper in _DECISIVE_WORDS or (timestamps and t.upper == "TIMESTAMP")):
            return True
        if t.type == "word" and t.upper == "DEFAULT" and j + 1 < len(tokens):
            nxt = tokens[j + 1]
            if nxt.text in ("-", "+") and j + 2 < len(tokens):
                nxt = tokens[j + 2]
            if nxt.type not in ("string", "number") and nxt.upper not in _DEFAULT_LITERAL_WORDS and nxt.text != "=":
                return True
    return False


def _dropped_database(sql: str) -> str | None:
    try:
        tokens = scan(sql)
    except LexError:
        return None
    names = [t.name for t in tokens[2:] if t.type in ("word", "ident") and t.upper not in ("IF", "EXISTS")]
    return names[0] if names else None
