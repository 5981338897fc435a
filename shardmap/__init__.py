"""The shard map: a pure model (hashing, lookup, versions, resharding plans). No I/O, no asyncio."""

from dbmux.shardmap.hashing import canonical_key, jump_hash, shard_hash
from dbmux.shardmap.model import ShardMap, ShardMapError, TableRule

__all__ = ["ShardMap", "ShardMapError", "TableRule", "canonical_key", "jump_hash", "shard_hash"]
