"""Is a completed statement's text enough for a target to compute the primary's rows? (one session).

The ingress publishes every statement with an ``unsafe`` flag; a target applies a transaction with
any unsafe statement from its row copy (the binlog reader's row images of the same GTID), never from
its statements. :func:`ingress.rewrite.rewrite_deterministic` flags what the text alone shows, before
the statement runs. :class:`SessionSafety` adds, when the statement has completed, what depends on
the session and on the schema (``ingress.statement_safety = false`` turns these rules off: for tests
that show what they prevent, never for production):

* **temporary tables** (MySQL and MariaDB write none of them to a row-based binlog, so a target has
  none): while the session has one -- created by ``CREATE TEMPORARY TABLE`` and not yet dropped, or
  possibly created by something the ingress cannot see into (``CALL``, ``EXECUTE``, compound
  blocks: from then on, for the session's life) -- every write is unsafe: it may read or shadow a
  table the target does not have. ``CREATE/DROP TEMPORARY TABLE`` are themselves unsafe. A
  transaction that wrote only temporary tables has no GTID at all (nothing is in the binlog), so
  the ingress publishes nothing for it and no target waits;
* **ALTER TABLE reading the clock** (``ADD COLUMN c TIMESTAMP DEFAULT CURRENT_TIMESTAMP`` fills every
  existing row with the time it runs at): the binlog copy carries the primary's clock for it;
* **the schema of the tables a DML statement writes** (:mod:`ingress.write_shape` finds them,
  :mod:`ingress.schema_facts` knows them): triggers; implicit column values the statement does not
  set (clock or function defaults on INSERT/REPLACE, ``DEFAULT`` as a value, ``ON UPDATE
  CURRENT_TIMESTAMP`` on UPDATE and ``ON DUPLICATE KEY UPDATE``, ``TIMESTAMP NOT NULL`` columns that a
  NULL sets to the current time); views, sequences, system-versioned tables; ``ON DUPLICATE KEY
  UPDATE`` on a table with several unique keys; ``ORDER BY ... LIMIT`` whose columns do not cover a
  unique key of NOT NULL columns; ``INSERT ... SELECT`` into a table with an auto-increment column
  (and, with ``innodb_autoinc_lock_mode = 2``, multi-row inserts into one); and anything not known
  for certain: a statement form not recognised, a table not in the facts or in flux, facts not
  loaded or stale.

Schema changes: :meth:`SessionSafety.on_dispatch` tells the facts which tables a command's DDL is
about to change (in flux until its answer), :meth:`SessionSafety.judge` applies a successful DDL's
effect. Each decision that makes a statement unsafe is counted by reason
(``dbmux_ingress_unsafe_statements_total{reason}``) and logged at debug level.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable

from prometheus_client import Counter

from dbmux.ingress.classify import Classification
from dbmux.ingress.protocol.generic_packets import ErrPacket
from dbmux.ingress.schema_facts import NO_TABLE_EFFECT, PendingChange, SchemaFacts, TableFacts
from dbmux.ingress.statements import PlannedStatement, QueryPlan
from dbmux.ingress.write_shape import WriteShape

log = logging.getLogger(__name__)

__all__ = ["SessionSafety", "write_hazard"]

UNSAFE_STATEMENTS = Counter("dbmux_ingress_unsafe_statements_total",
                            "Statements flagged unsafe by the session/schema rules (applied from the row copy)",
                            ["reason"])

_TABLE_DDL = ("ALTER TABLE", "RENAME TABLE", "TRUNCATE TABLE", "CREATE INDEX", "DROP INDEX", "CREATE TRIGGER")
_Key = tuple[str, str]
_READS_CLOCK = re.compile(r"\b(?:CURRENT_TIMESTAMP|NOW|LOCALTIME|LOCALTIMESTAMP|UTC_TIMESTAMP|SYSDATE|CURDATE|"
                          r"CURRENT_DATE|CURTIME|CURRENT_TIME|UTC_DATE|UTC_TIME|UNIX_TIMESTAMP)\b", re.IGNORECASE)


class SessionSafety:
    """One session's statement-safety state and judgements (see the module docstring). ``facts`` None:
    no schema rules (unit tests of the relay); ``enabled`` False: no rule of this module at all."""

    def __init__(self, facts: SchemaFacts | None, enabled: bool = True,
                 foreign_key_checks: Callable[[], bool] = lambda: True) -> None:
        self.facts = facts if enabled else None
        self.enabled = enabled
        self.foreign_key_checks = foreign_key_checks  # the session's, as the primary reports it
        self.temporary: set[_Key] = set()
        self.hidden_temporary = False  # something may have created temporary tables the ingress cannot name
        self._flux: dict[int, PendingChange] = {}

    # ---- the command's life -----------------------------------------------------------------------------
    def on_dispatch(self, plan: QueryPlan | None, db: str | None) -> None:
        """``plan``'s command goes to the primary: its schema changes are in flux until answered."""
        if self._flux:
            self._release_all()  # (statements of the previous command that were never answered)
        facts = self.facts
        if facts is None or plan is None:
            return
        for i, st in enumerate(plan.statements):
            cls = st.cls
            if cls is not None and cls.use_db:
                db = cls.use_db  # (USE in a batch: what follows names tables in that database)
            elif cls is not None and st.kind in ("ddl", "unknown"):
                flux = facts.begin_change(cls, st.sql, db)
                if flux is not None:
                    self._flux[i] = flux

    def settle(self, index: int, stmt: PlannedStatement, result: object, db: str | None) -> PlannedStatement:
        """Statement ``index`` of the command in flight is answered with ``result`` (its OK, ERR, or the
        EOF ending its rows): ``stmt`` as capture must record it (flagged unsafe where a rule says so)."""
        if type(result) is ErrPacket:
            self.on_error(index)
            return stmt
        if not self.judge(index, stmt, db) or stmt.unsafe:
            return stmt
        return dataclasses.replace(stmt, unsafe=True)

    def judge(self, index: int, stmt: PlannedStatement, db: str | None) -> bool:
        """Statement ``index`` of the command in flight succeeded: is it unsafe (``stmt.unsafe`` or a rule
        of this module)? Takes its effect on the session's temporary tables and the schema facts."""
        flux = self._flux.pop(index, None)
        try:
            reason = self._reason(stmt, db)
        finally:
            if flux is not None and self.facts is not None:
                self.facts.end_change(flux)
        if reason is None:
            return stmt.unsafe
        category, text = reason
        UNSAFE_STATEMENTS.labels(category).inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("unsafe statement (%s): %s", category, text)
        return True

    def on_error(self, index: int) -> None:
        """Statement ``index`` failed: nothing changed."""
        flux = self._flux.pop(index, None)
        if flux is not None and self.facts is not None:
            self.facts.end_change(flux)

    def reset(self) -> None:
        """The primary's session was reset (COM_RESET_CONNECTION, COM_CHANGE_USER): no temporary table."""
        self.temporary.clear()
        self.hidden_temporary = False

    def close(self) -> None:
        self._release_all()

    def _release_all(self) -> None:
        fluxes, self._flux = self._flux, {}
        if self.facts is not None:
            for flux in fluxes.values():
                self.facts.end_change(flux)

    # ---- rules --------------------------------------------------------------------------------------------
    def _reason(self, stmt: PlannedStatement, db: str | None) -> tuple[str, str] | None:
        cls = stmt.cls
        if not self.enabled or cls is None or stmt.kind not in ("dml", "ddl", "unknown"):
            return None
        temporary_before = set(self.temporary)
        reason = self._temporary_rule(cls, db)
        if reason is None and cls.verb == "ALTER TABLE" and _READS_CLOCK.search(stmt.sql):
            reason = ("clock_ddl", "ALTER TABLE reading the clock: the rows it fills take the primary's time, "
                                   "which the binlog copy carries")
        if reason is None and cls.kind == "dml" and not self.foreign_key_checks():
            reason = ("foreign_key_checks", "the session has foreign_key_checks = 0: a target applying the "
                                            "statement would check (and cascade) what the primary did not")
        facts = self.facts
        if facts is not None:
            # (DDL on the session's temporary tables only -- DROP TABLE of a temporary table shadowing a
            # real one drops the temporary one -- changes nothing of the schema)
            only_temporary = cls.temporary or bool(cls.tables) and all(
                _key(n, db) in temporary_before for n in cls.tables)
            if cls.kind in ("ddl", "unknown") and not only_temporary:
                facts.apply_ddl(cls, stmt.sql, db)
            elif reason is None and cls.kind == "dml":
                hazard = write_hazard(cls.shape, facts, db)
                if hazard is not None:
                    reason = hazard
        return reason

    def _temporary_rule(self, cls: Classification, db: str | None) -> tuple[str, str] | None:
        temporary = self.temporary
        names = [_key(n, db) for n in cls.tables]
        if cls.temporary:
            if cls.verb.startswith("CREATE"):
                temporary.update(names[:1])
            else:
                temporary.difference_update(names)
            return "temporary_table", f"{cls.verb} (temporary tables are in no row-based binlog)"
        reason = None
        if cls.kind == "ddl" and names and temporary.intersection(names):
            if cls.verb in ("DROP TABLE", "DROP TABLES"):
                temporary.difference_update(names)  # (DROP TABLE drops the temporary table of that name first)
                reason = "temporary_table", f"{cls.verb} of a temporary table"
            elif cls.verb in _TABLE_DDL:
                if cls.verb == "RENAME TABLE":
                    temporary.update(names[1::2])
                reason = "temporary_table", f"{cls.verb} of a temporary table"
        if reason is None and (temporary or self.hidden_temporary):
            what = "has temporary tables" if temporary else "may have temporary tables (CALL, EXECUTE, ...)"
            reason = "temporary_table", f"the session {what}: a target has none"
        if cls.kind == "unknown" and cls.verb not in NO_TABLE_EFFECT:
            self.hidden_temporary = True
        return reason


def write_hazard(shape: WriteShape | None, facts: SchemaFacts, db: str | None) -> tuple[str, str] | None:
    """(reason category, text) when a DML statement of ``shape`` is not provably safe given the schema
    facts of the tables it writes (see the module docstring), else None. Pure but for ``facts``."""
    if shape is None:
        return "not_analysed", "statement form not recognised: the tables it writes are not known"
    if not facts.fresh():
        return "schema_unknown", "schema facts not loaded (or stale)"
    for name in shape.tables:
        f = facts.table(name, db)
        if f is None:
            return "schema_unknown", f"{name}: not in the schema facts (new, in flux, or no such table)"
        hazard = _table_hazard(shape, name, f, facts.autoinc_lock_mode)
        if hazard is not None:
            return hazard
    return None


def _table_hazard(shape: WriteShape, name: str, f: TableFacts, autoinc_lock_mode: int) -> tuple[str, str] | None:
    verb = shape.verb
    if f.kind != "table":
        return "not_a_table", f"{name} is a {f.kind}: what a write through it touches is not analysed"
    if f.triggers:
        return "trigger", f"{name} has triggers (their changes are in the row copy)"
    implicit = f.insert_implicit | f.update_implicit
    if shape.uses_default and implicit:
        return "implicit_value", f"DEFAULT as a value on {name}, which has clock or function defaults"
    if verb in ("INSERT", "REPLACE"):
        missing = f.insert_implicit - shape.columns if shape.columns is not None else frozenset()
        if missing:
            return "implicit_value", f"{name}.{sorted(missing)[0]} takes its clock or function default"
        if f.null_implicit:
            return "implicit_value", f"{name}.{sorted(f.null_implicit)[0]}: TIMESTAMP NOT NULL (a NULL stores now)"
        if shape.on_duplicate:
            on_update = f.update_implicit - shape.dup_columns
            if on_update:
                return "implicit_value", f"{name}.{sorted(on_update)[0]}: ON UPDATE CURRENT_TIMESTAMP"
            if f.unique_keys is None or f.unique_keys > 1:
                return "unique_keys", f"ON DUPLICATE KEY UPDATE on {name}, which has several unique keys (or " \
                                      "their number is not known)"
        if f.auto_increment and (shape.source == "select" or (autoinc_lock_mode == 2 and shape.rows > 1)):
            return "auto_increment", f"rows numbered by {name}'s auto-increment in an order not fixed by the text"
    elif verb == "UPDATE":
        given = shape.columns or frozenset()
        if f.update_implicit and (shape.multi_table or f.update_implicit - given):
            column = sorted(f.update_implicit - given or f.update_implicit)[0]
            return "implicit_value", f"{name}.{column}: ON UPDATE CURRENT_TIMESTAMP"
        if f.null_implicit & given or (f.null_implicit and shape.multi_table):
            return "implicit_value", f"{name}: TIMESTAMP NOT NULL column set (a NULL stores now)"
    if shape.limit:
        order = frozenset(shape.order_by or ())
        if f.ordering_keys is None or not any(key <= order for key in f.ordering_keys):
            return "limit", f"LIMIT on {name} ordered by {', '.join(shape.order_by or ()) or 'nothing'}: not a " \
                            "unique key of NOT NULL columns (ties are broken differently)"
    return None


def _key(name: str, db: str | None) -> _Key:
    d, _, table = name.rpartition(".")
    return (d or db or "", table)
