"""The binlog reader's error root: every error it raises on purpose is a :class:`BinlogReaderError`."""

from __future__ import annotations

from dbmux.core.errors import DbmuxError

__all__ = ["BinlogReaderError"]


class BinlogReaderError(DbmuxError):
    """The binlog reader cannot proceed; the message names the primary (redacted) and the cause.

    ``retriable``: reconnecting later can help (the default: most trouble with the primary or Kafka
    passes); False for what needs an operator (access denied, binlog position gone, wrong binlog
    format)."""

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        self.retriable = retriable
        super().__init__(message)
