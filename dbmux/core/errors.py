"""Root of dbmux's error hierarchy (asyncpg style: one root, actionable messages).

Every error dbmux raises on purpose derives from :class:`DbmuxError`. ``retriable`` tells retry
logic whether trying again can help, so callers read a flag instead of parsing a message
(:func:`dbmux.core.transient.is_transient` reads it, and classifies third-party errors).

One root per package under it: the core's own errors here (and ``GtidError``, ``DsnError``,
``LexError``, ``EnvelopeError``, which are ``ValueError`` too), ``ShardMapError``
(:mod:`dbmux.shardmap.errors`), ``IngressError`` (:mod:`dbmux.ingress.errors`), ``BinlogReaderError``
(:mod:`dbmux.binlog.errors`) and ``ReplicatorError`` (:mod:`dbmux.replicator.errors`).
"""

from __future__ import annotations


class DbmuxError(Exception):
    """Base class of every error dbmux raises deliberately."""

    retriable: bool = False


class ConfigError(DbmuxError):
    """The configuration is invalid. The message names the key and what is expected."""

    def __init__(self, key: str, problem: str, fix: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        msg = f"config key '{key}': {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class StackError(DbmuxError):
    """The local stack could not be started, stopped or inspected."""


class MissingDependency(StackError):
    """A binary or package the stack needs is not installed; names the install command."""

    def __init__(self, what: str, install: str) -> None:
        self.what = what
        self.install = install
        super().__init__(f"{what} not found; install it with: {install}")


class KafkaSetupError(DbmuxError):
    """Kafka refused a setup request (e.g. creating the change-event topic)."""

    retriable = True
