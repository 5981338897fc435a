"""dbmux.core.transient: the one "is this error transient?" answer the appliers, the runner and the
binlog reader share."""

from __future__ import annotations

import asyncpg
import pymysql
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError

from dbmux.binlog.errors import BinlogReaderError
from dbmux.core.dsn import DsnError
from dbmux.core.errors import ConfigError, DbmuxError, KafkaSetupError
from dbmux.core.gtid import GtidError
from dbmux.core.sqllex import LexError
from dbmux.core.transient import is_transient, mysql_errno, pg_sqlstate_is_transient
from dbmux.ingress.errors import IngressError
from dbmux.ingress.protocol.errors import ProtocolError
from dbmux.ingress.wire import PeerClosed
from dbmux.replicator.errors import ApplyError, BackfillError, ReplicatorError, TargetHalted
from dbmux.replicator.pg_types import Untranslatable

pgx = asyncpg.exceptions
my = pymysql.err


@pytest.mark.parametrize("exc, transient", [
    # dbmux's own errors: their retriable flag
    (KafkaSetupError("topic"), True),
    (ConfigError("k", "bad"), False),
    (ApplyError("deadlock", retriable=True), True),
    (ApplyError("duplicate key"), False),
    (TargetHalted("halted"), False),
    (BinlogReaderError("primary gone"), True),
    (BinlogReaderError("access denied", retriable=False), False),
    (GtidError("x"), False),
    (Untranslatable("LOCK TABLES"), False),
    # the OS, the network, asyncio, Kafka
    (OSError("no route"), True),
    (ConnectionResetError(), True),
    (ConnectionRefusedError(), True),
    (TimeoutError(), True),
    (TimeoutError(), True),
    (KafkaError(), True),
    (KafkaConnectionError("broker down"), True),
    # MySQL / MariaDB client errors
    (my.OperationalError(2002, "Can't connect through socket"), True),
    (my.OperationalError(2003, "Can't connect to MySQL server"), True),
    (my.OperationalError(2006, "MySQL server has gone away"), True),
    (my.OperationalError(2013, "Lost connection to MySQL server during query"), True),
    (my.OperationalError(2055, "Lost connection at 'reading initial communication packet'"), True),
    (my.InterfaceError(0, ""), True),  # PyMySQL: the connection is closed
    (my.InterfaceError("(0, 'Not connected')"), True),  # aiomysql
    # MySQL / MariaDB server errors
    (my.OperationalError(1040, "Too many connections"), True),
    (my.OperationalError(1053, "Server shutdown in progress"), True),
    (my.OperationalError(1205, "Lock wait timeout exceeded"), True),
    (my.OperationalError(1213, "Deadlock found when trying to get lock"), True),
    (my.OperationalError(1927, "Connection was killed"), True),
    (my.OperationalError(1045, "Access denied"), False),
    (my.OperationalError(1236, "Could not find GTID state requested by slave"), False),
    (my.IntegrityError(1062, "Duplicate entry"), False),
    (my.ProgrammingError(1064, "You have an error in your SQL syntax"), False),
    (my.ProgrammingError(1146, "Table doesn't exist"), False),
    (my.InternalError("no errno"), False),
    (my.MySQLError(), False),
    # PostgreSQL (asyncpg)
    (pgx.ConnectionDoesNotExistError("closed"), True),  # 08003
    (pgx.PostgresConnectionError("x"), True),  # 08000
    (pgx.SerializationError("x"), True),  # 40001
    (pgx.DeadlockDetectedError("x"), True),  # 40P01
    (pgx.TransactionIntegrityConstraintViolationError("x"), False),  # 40002
    (pgx.TooManyConnectionsError("x"), True),  # 53300
    (pgx.DiskFullError("x"), True),  # 53100
    (pgx.AdminShutdownError("x"), True),  # 57P01
    (pgx.CrashShutdownError("x"), True),  # 57P02
    (pgx.CannotConnectNowError("x"), True),  # 57P03
    (pgx.DatabaseDroppedError("x"), False),  # 57P04
    (pgx.LockNotAvailableError("x"), True),  # 55P03
    (pgx.QueryCanceledError("x"), False),  # 57014
    (pgx.UniqueViolationError("x"), False),  # 23505
    (pgx.UndefinedTableError("x"), False),  # 42P01
    (asyncpg.InterfaceError("connection is closed"), True),
    (asyncpg.exceptions._base.DataError("invalid input for query argument $1"), False),  # client encoding
    # an error the server sent unasked (it crashed under an idle connection) is still being consumed
    (asyncpg.exceptions._base.InternalClientError("cannot switch to state 15; another operation (2) is in "
                                                  "progress"), True),
    (asyncpg.exceptions._base.InternalClientError("unexpected codec state"), False),
    # anything else: permanent (a bug, bad data)
    (ValueError("bad"), False),
    (KeyError("k"), False),
    (RuntimeError("bug"), False),
])
def test_is_transient(exc, transient):
    assert is_transient(exc) is transient


@pytest.mark.parametrize("sqlstate, transient", [
    ("08006", True), ("08P01", True), ("40000", True), ("40003", True), ("40002", False),
    ("53000", True), ("53400", True), ("57P05", True), ("57P04", False), ("57014", False),
    ("55P03", True), ("55000", False), ("23505", False), ("", False), (None, False),
])
def test_pg_sqlstate_is_transient(sqlstate, transient):
    assert pg_sqlstate_is_transient(sqlstate) is transient


@pytest.mark.parametrize("exc, errno", [
    (my.OperationalError(2013, "lost"), 2013),
    (my.IntegrityError(1062, "dup"), 1062),
    (my.InterfaceError("(0, 'Not connected')"), None),
    (my.MySQLError(), None),
    (OSError(5, "io"), None),
])
def test_mysql_errno(exc, errno):
    assert mysql_errno(exc) == errno


@pytest.mark.parametrize("cls, root", [
    (GtidError, DbmuxError), (DsnError, DbmuxError), (LexError, DbmuxError),
    (GtidError, ValueError), (DsnError, ValueError), (LexError, ValueError),  # `except ValueError` still works
    (ApplyError, ReplicatorError), (TargetHalted, ReplicatorError), (BackfillError, ReplicatorError),
    (Untranslatable, ReplicatorError), (BinlogReaderError, DbmuxError),
    (ProtocolError, IngressError), (PeerClosed, IngressError), (IngressError, DbmuxError),
    (ReplicatorError, DbmuxError),
])
def test_one_error_root_per_package(cls, root):
    assert issubclass(cls, root)
