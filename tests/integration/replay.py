"""A minimal, test-only replay of ingress events into a MySQL server: statements in order with
their session context and bound parameters. It proves the events are complete enough to rebuild the
primary's data. (The production applier is the replicator.)"""

from __future__ import annotations

import mysql.connector

from dbmux.dsn import Dsn
from dbmux.envelope import ChangeEvent


def replay_statements(events: list[ChangeEvent], dsn: Dsn) -> int:
    conn = mysql.connector.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                   autocommit=False, use_pure=True)
    applied = 0
    try:
        plain = conn.cursor()
        prepared = conn.cursor(prepared=True)
        session: tuple = ()
        for ev in events:
            ctx = ev.session
            wanted = (ctx.sql_mode, ctx.time_zone) if ctx else ()
            if wanted and wanted != session:
                plain.execute("SET SESSION sql_mode = %s, time_zone = %s", wanted)
                session = wanted
            db = ev.db or (ctx.db if ctx else None)
            if db:
                try:
                    plain.execute(f"USE `{db}`")
                except mysql.connector.Error:
                    pass  # the event creating it is still ahead or this is it
            plain.execute("START TRANSACTION")
            for st in ev.statements:
                if st.insert_id:
                    plain.execute(f"SET insert_id = {int(st.insert_id)}")
                if st.params is None:
                    plain.execute(st.sql)
                    if plain.with_rows:
                        plain.fetchall()
                else:
                    prepared.execute(st.sql, st.params)
                    if prepared.with_rows:
                        prepared.fetchall()
            conn.commit()
            applied += 1
    finally:
        conn.close()
    return applied
