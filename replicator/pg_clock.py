"""DDL that fills existing rows with the clock, at the primary's time on PostgreSQL targets.

``ALTER TABLE t ADD COLUMN c DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6)`` gives every existing row the
time the statement ran at on the primary. Translated as it is, PostgreSQL fills them with its own time
when the target applies it: every row differs. The ingress flags such an ALTER unsafe
(``statement_safety``), so targets apply the binlog reader's copy, which carries the query's clock to
the microsecond (``SessionContext.timestamp_us``, MariaDB's ``Q_HRNOW``). Here the translated
``ADD COLUMN ... DEFAULT CURRENT_TIMESTAMP[(n)]`` takes that instant as a literal default (existing rows
get it) and a second statement sets the clock default back for later inserts.

MySQL writes the clock as the session's wall time into DATETIME and as UTC into TIMESTAMP; this
target holds TIMESTAMP values in UTC. A session in UTC gives both the same literal; for a session in
another time zone the statement is left as it was (the target's time, as before: documented).
"""

from __future__ import annotations

import datetime as _dt
import re

from dbmux.core.events import SessionContext
from dbmux.replicator.pg_sql import PgStatement

_ADD_CLOCK = re.compile(r'^(ALTER TABLE (?P<table>.+?) ADD COLUMN (?P<col>"(?:[^"]|"")+") TIMESTAMP(?:\((?P<p>\d)\))? '
                        r"DEFAULT )CURRENT_TIMESTAMP(?:\((?P<q>\d)\))?(?P<rest>(?: NOT)? NULL)?$")


_UTC_NAMES = frozenset({"utc", "etc/utc", "etc/universal", "universal", "zulu", "etc/zulu"})
_ZERO_OFFSET = re.compile(r"[+-]0?0:00")


def is_utc(time_zone: str | None, system_time_zone: str) -> bool:
    """Is a MySQL session time zone (``SYSTEM`` = the server's ``system_time_zone``) UTC all year?
    (``GMT`` is not taken for UTC: some systems report Europe/London so in winter.)"""
    tz = (time_zone or "").strip()
    if tz.upper() == "SYSTEM":
        tz = system_time_zone.strip()
    return tz.lower() in _UTC_NAMES or bool(_ZERO_OFFSET.fullmatch(tz))


def at_primary_clock(statements: list[PgStatement], session: SessionContext | None,
                     system_time_zone: str) -> list[PgStatement]:
    """``statements`` (one translated DDL statement) with clock defaults of added columns filled at the
    primary's time when the event carries it and the session was in UTC."""
    stamp = session.timestamp_us if session is not None else None
    if not stamp or session is None or not is_utc(session.time_zone, system_time_zone):
        return statements
    out: list[PgStatement] = []
    for st in statements:
        m = _ADD_CLOCK.match(st.sql)
        if m is None or st.args:
            out.append(st)
            continue
        digits = int(m["p"] or 0)
        when = _dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=stamp)
        when = when.replace(microsecond=when.microsecond - when.microsecond % 10 ** (6 - digits))
        clock = f"CURRENT_TIMESTAMP({m['q']})" if m["q"] else "CURRENT_TIMESTAMP"
        out.append(PgStatement(f"{m[1]}TIMESTAMP '{when.isoformat(sep=' ')}'{m['rest'] or ''}", ()))
        out.append(PgStatement(f"ALTER TABLE {m['table']} ALTER COLUMN {m['col']} SET DEFAULT {clock}", ()))
    return out
