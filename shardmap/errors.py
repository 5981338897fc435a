"""The shard map's error type (its own module so hashing and the model can both raise it)."""

from __future__ import annotations

from dbmux.core.errors import DbmuxError


class ShardMapError(DbmuxError, ValueError):
    """A shard map, a rule or a key cannot be used as asked; the message names the table or value."""
