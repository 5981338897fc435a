"""One client connection's session as the ingress sees it, and what the client sees of it.

:class:`ConnectionContext` holds who and where (for the change events), the capabilities negotiated
on each hop, and the session state the primary reports in its OK packets. The two hops differ: the
ingress always asks the primary to track what capture needs (GTIDs, context variables; see
``TRACKED_VARIABLES``), a client may not have asked for session tracking at all. So every OK packet
relayed to the client first updates the context (:meth:`ConnectionContext.note_session_state`), then
goes out as the primary would have sent it to this client (:meth:`ConnectionContext.client_ok`):
without what only the ingress asked for, and in the client's encoding (no session-state block and no
``SERVER_SESSION_STATE_CHANGED`` flag for a client without CLIENT_SESSION_TRACK).

What a client tracks itself (:meth:`ConnectionContext.client_tracks`) also decides the
``SERVER_SESSION_STATE_CHANGED`` flag of EOF packets, which the primary sets from the first tracked
change of a statement on, for clients with and without session tracking alike; the response relay
settles it (``ingress.response_relay``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dbmux.core.events import SessionContext
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.framing import Packet, frame
from dbmux.ingress.protocol.generic_packets import OkPacket
from dbmux.ingress.protocol.session_state import GtidsChange, SchemaChange, SessionChange, SystemVariableChange

# System variables the primary reports in OK packets (``session_track_system_variables``).
TRACKED_VARIABLES = ("autocommit,character_set_client,character_set_connection,character_set_results,time_zone,"
                     "sql_mode,foreign_key_checks,collation_connection")
# tracked for capture and read routing only; stripped for clients
INJECTED_VARIABLES = frozenset({"last_gtid", "sql_mode", "foreign_key_checks", "collation_connection"})
# (MySQL's SESSION_TRACK_GTIDS, which the ingress turns on with session_track_gtids, is stripped too: a
# client's own default is OFF.)


@dataclass(slots=True)
class ConnectionContext:
    client_addr: str = ""
    user: str = ""
    connection_id: int = 0  # the primary's
    db: str | None = None
    sql_mode: str | None = None
    time_zone: str | None = None
    charset: str | None = None  # character_set_client: what the client's statements are bytes in (it
    # travels with each captured statement; dbmux.core.charsets)
    system_time_zone: str | None = None  # the primary's, for a session time zone of SYSTEM
    foreign_key_checks: bool = True  # off: the session's writes are applied from their row copy
    # carried to replicas with routed reads (ingress.replica_link.Settings)
    charset_connection: str | None = None
    collation_connection: str | None = None
    charset_results: str | None = None
    status_flags: int = c.SERVER_STATUS_AUTOCOMMIT  # of the primary's last OK (transaction, autocommit)
    client_caps: int = 0  # negotiated with the client
    upstream_caps: int = 0  # negotiated with the primary
    ext_caps: int = 0  # MariaDB extended capabilities (the same on both hops)

    def snapshot(self) -> SessionContext:
        return SessionContext(user=self.user, client_addr=self.client_addr, connection_id=self.connection_id,
                              db=self.db, sql_mode=self.sql_mode, time_zone=self.time_zone, charset=self.charset)

    def note_session_state(self, ok: OkPacket) -> None:
        """Take the context variables and default schema the primary reports with ``ok``."""
        self.status_flags = ok.status_flags
        for change in ok.session_state_changes:
            if isinstance(change, SystemVariableChange):
                name = change.name
                if name == "sql_mode":
                    self.sql_mode = change.value
                elif name == "time_zone":
                    self.time_zone = change.value
                elif name == "character_set_client":
                    self.charset = change.value
                elif name == "foreign_key_checks":
                    self.foreign_key_checks = change.value.upper() not in ("OFF", "0")
                elif name == "character_set_connection":
                    self.charset_connection = change.value
                elif name == "collation_connection":
                    self.collation_connection = change.value
                elif name == "character_set_results":
                    self.charset_results = None if change.value.upper() in ("NULL", "") else change.value
            elif isinstance(change, SchemaChange):
                # an empty name is "no database selected" (reported e.g. when a CALL returns to a session
                # that had none): None, never "" -- a table filter reads "" as a database it does not select
                self.db = change.schema or None

    @staticmethod
    def client_tracks(change: SessionChange) -> bool:
        """Whether the primary would track ``change`` for the client itself (not only for the ingress)."""
        if isinstance(change, SystemVariableChange):
            return change.name not in INJECTED_VARIABLES
        return not isinstance(change, GtidsChange)

    def client_ok(self, ok: OkPacket, pkt: Packet) -> bytes:
        """The OK packet's frames as the primary would have sent them to the client: without what only
        the ingress asked for, encoded for the client's capabilities."""
        if self.client_caps & c.CLIENT_SESSION_TRACK:
            if not ok.status_flags & c.SERVER_SESSION_STATE_CHANGED:
                return pkt.raw
            kept = tuple(ch for ch in ok.session_state_changes if self.client_tracks(ch))
            if len(kept) == len(ok.session_state_changes):
                return pkt.raw
            flags = ok.status_flags if kept else ok.status_flags & ~c.SERVER_SESSION_STATE_CHANGED
            stripped = dataclasses.replace(ok, session_state_changes=kept, status_flags=flags)
        elif self.upstream_caps & c.CLIENT_SESSION_TRACK:
            # as the primary answers a client without session tracking: no state, no flag (the info
            # text keeps its length prefix: OkPacket.encode)
            stripped = dataclasses.replace(ok, session_state_changes=(),
                                           status_flags=ok.status_flags & ~c.SERVER_SESSION_STATE_CHANGED)
        else:
            return pkt.raw
        return frame(stripped.encode(self.client_caps), pkt.first_seq)
