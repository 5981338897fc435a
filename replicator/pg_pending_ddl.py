"""What DDL a PostgreSQL target consumed but has not applied yet may change for the applier's
judgement of later statements (``PostgresApplier.needs_row_form``), until the source schema is reloaded."""

from __future__ import annotations

import re
from typing import NamedTuple

from dbmux.core.events import ChangeEvent
from dbmux.replicator.created_tables import created_table
from dbmux.replicator.filtering import statement_tables
from dbmux.replicator.pg_types import not_applied
from dbmux.replicator.schema_info import TableInfo

__all__ = ["PendingDdl", "Tables", "pending_ddl"]

Tables = frozenset[tuple[str, str]] | None  # (db, table) pairs; None: any table
# DDL text that may change how a statement on its tables translates: types PostgreSQL holds differently, keys,
# auto-increment, clock defaults
_DECISIVE = re.compile(r"\b(?:(?:TINY|MEDIUM|LONG)?BLOB|(?:VAR)?BINARY|BIT|JSON|YEAR|ENUM\s*\(|SET\s*\(|PRIMARY|"
                       r"AUTO_INCREMENT|CURRENT_TIMESTAMP|NOW\s*\(|ON\s+UPDATE)", re.IGNORECASE)
_TIMESTAMP = re.compile(r"\bTIMESTAMP\b", re.IGNORECASE)


class PendingDdl(NamedTuple):
    """What DDL consumed but not applied yet (the schema not reloaded) may change for needs_row_form()."""

    tables: Tables  # tables whose statements it may make translate differently (or TIMESTAMP columns)
    decisive: bool  # ... triggers, columns of types PostgreSQL holds differently, keys, clock defaults
    timestamps: bool  # ... TIMESTAMP columns
    created: dict[tuple[str, str], TableInfo]  # tables it creates, as the reloaded schema will show them


def pending_ddl(ev: ChangeEvent) -> PendingDdl | None:
    """What ``ev``'s DDL may change for needs_row_form() until the schema is reloaded (None: nothing):
    triggers (any table: DROP TRIGGER names none); what :data:`_DECISIVE` or TIMESTAMP finds in the text
    (anywhere: a false alarm only costs a wait for the row copy); a CREATE TABLE, exactly."""
    default_db = (ev.db or (ev.session.db if ev.session else None) or "").lower()
    out: set[tuple[str, str]] | None = set()
    decisive = timestamps = False
    created: dict[tuple[str, str], TableInfo] = {}
    for st in ev.statements:
        kind = not_applied(st.sql)
        if kind is not None:
            if kind[0] == "trigger":
                out, decisive = None, True
            continue  # (the rest have no table meaning)
        table = created_table(st.sql, default_db or None)
        if table is not None:
            created[table[0]] = TableInfo(**table[1])
            continue
        decides, times = bool(_DECISIVE.search(st.sql)), bool(_TIMESTAMP.search(st.sql))
        if not (decides or times):
            continue
        decisive, timestamps = decisive or decides, timestamps or times
        tables = statement_tables(st.sql)
        if tables is None or out is None:
            out = None
        else:
            out |= {((d or default_db).lower(), name.lower()) for d, name in tables}
    if not (decisive or timestamps or created):
        return None
    return PendingDdl(None if out is None else frozenset(out), decisive, timestamps, created)
