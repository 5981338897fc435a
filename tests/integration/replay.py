"""A minimal, test-only replay of ingress events into a MySQL server: statements in order with
their session context and bound parameters (interpolated as escaped literals at the ``?`` tokens).
It proves the events are complete enough to rebuild the primary's data. (The production applier is
the replicator.)"""

from __future__ import annotations

import pymysql

from dbmux.core.dsn import Dsn
from dbmux.core.events import ChangeEvent
from dbmux.replicator.mysql_sql import interpolate


def replay_statements(events: list[ChangeEvent], dsn: Dsn) -> int:
    conn = pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                           autocommit=False)
    applied = 0
    try:
        cur = conn.cursor()
        session: tuple = ()
        for ev in events:
            ctx = ev.session
            wanted = (ctx.sql_mode, ctx.time_zone) if ctx else ()
            if wanted and wanted != session:
                cur.execute("SET SESSION sql_mode = %s, time_zone = %s", wanted)
                session = wanted
            db = ev.db or (ctx.db if ctx else None)
            if db:
                try:
                    cur.execute(f"USE `{db}`")
                except pymysql.err.OperationalError:
                    pass  # the event creating it is this one
            cur.execute("START TRANSACTION")
            for st in ev.statements:
                if st.insert_id:
                    cur.execute(f"SET insert_id = {int(st.insert_id)}")
                cur.execute(st.sql if st.params is None else interpolate(st.sql, st.params))
            conn.commit()
            applied += 1
    finally:
        conn.close()
    return applied
