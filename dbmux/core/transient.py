"""Is this error transient? The one answer every retry decision in dbmux uses.

An error is *transient* when trying again later -- on a fresh connection, from the stored position --
can succeed without anyone changing anything: the connection was lost or refused, the server is
shutting down or restarting, too many connections, a deadlock or lock wait timeout, the broker is
unavailable. Anything else (a constraint violation, a syntax error, access denied, a position the
primary no longer has, a bug) is *permanent*: retrying would fail the same way forever.

The appliers mark their :class:`~dbmux.replicator.errors.ApplyError` ``retriable`` with it, the
replicator's runner restarts on it, the binlog reader reconnects on it.

* dbmux's own errors (:class:`~dbmux.core.errors.DbmuxError`): their ``retriable`` flag.
* ``OSError`` (``ConnectionError``, ``asyncio.TimeoutError`` = ``TimeoutError``) and any aiokafka
  ``KafkaError``: transient.
* MySQL/MariaDB (PyMySQL, aiomysql): the errnos in :data:`MYSQL_TRANSIENT_ERRNOS` (client errors of a
  connection that could not be made or was lost; server errors of a server going away, out of
  connections, or a deadlock / lock wait), and ``InterfaceError`` (the connection is closed).
* PostgreSQL (asyncpg): the SQLSTATE classes ``08`` (connection exception), ``40`` (transaction
  rollback: serialization failure, deadlock; not ``40002``, a deferred constraint violation), ``53``
  (insufficient resources: too many connections, out of memory, disk full), ``57P`` (operator
  intervention: admin/crash shutdown, cannot connect now, idle session timeout; not ``57P04``, database
  dropped) and ``55P03`` (lock not available); and asyncpg's client-side ``InterfaceError``
  except its ``DataError`` (a value that cannot be encoded: permanent, so the target halts naming it),
  and its ``InternalClientError`` "another operation is in progress": the protocol is still consuming
  an error the server sent unasked -- a server crashing or shut down under an idle connection (found by
  the chaos suite: a PostgreSQL shard SIGKILLed between two transactions stopped its replicator).
* Everything else: permanent.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pymysql
from aiokafka.errors import KafkaError

from dbmux.core.errors import DbmuxError

__all__ = ["MYSQL_TRANSIENT_ERRNOS", "is_transient", "mysql_errno", "pg_sqlstate_is_transient"]

MYSQL_TRANSIENT_ERRNOS = frozenset({
    # client (CR_*): the connection could not be made, or was lost
    2002,  # CR_CONNECTION_ERROR
    2003,  # CR_CONN_HOST_ERROR
    2006,  # CR_SERVER_GONE_ERROR
    2013,  # CR_SERVER_LOST
    2055,  # CR_SERVER_LOST_EXTENDED
    # server (ER_*)
    1040,  # ER_CON_COUNT_ERROR: too many connections
    1053,  # ER_SERVER_SHUTDOWN
    1205,  # ER_LOCK_WAIT_TIMEOUT
    1213,  # ER_LOCK_DEADLOCK
    1927,  # ER_CONNECTION_KILLED (MariaDB)
})

_PG_TRANSIENT_CLASSES = ("08", "40", "53", "57P")
_PG_PERMANENT_IN_TRANSIENT_CLASSES = frozenset({"40002", "57P04"})
_PG_TRANSIENT_STATES = frozenset({"55P03"})  # lock_not_available (NOWAIT / lock_timeout)


def mysql_errno(exc: BaseException) -> int | None:
    """The MySQL error number of a PyMySQL/aiomysql error, or None (not one, or it has none)."""
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def pg_sqlstate_is_transient(sqlstate: str | None) -> bool:
    """Whether a PostgreSQL SQLSTATE names a transient condition (see the module docstring)."""
    if not sqlstate:
        return False
    if sqlstate in _PG_TRANSIENT_STATES:
        return True
    return sqlstate.startswith(_PG_TRANSIENT_CLASSES) and sqlstate not in _PG_PERMANENT_IN_TRANSIENT_CLASSES


def is_transient(exc: BaseException) -> bool:
    """True when retrying later (new connection, stored position) can succeed; see the module docstring."""
    if isinstance(exc, DbmuxError):
        return bool(exc.retriable)
    if isinstance(exc, (OSError, asyncio.TimeoutError, KafkaError)):  # OSError includes ConnectionError
        return True
    if isinstance(exc, pymysql.err.MySQLError):
        return isinstance(exc, pymysql.err.InterfaceError) or mysql_errno(exc) in MYSQL_TRANSIENT_ERRNOS
    if isinstance(exc, asyncpg.PostgresError):
        return pg_sqlstate_is_transient(getattr(exc, "sqlstate", None))
    if isinstance(exc, asyncpg.exceptions._base.InternalClientError):
        return "another operation" in str(exc) and "in progress" in str(exc)
    # asyncpg's client-side DataError (an InterfaceError and a ValueError): a value it cannot encode;
    # retrying the same value can never help
    return isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, ValueError)
