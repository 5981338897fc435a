"""Where a target stands: Kafka offsets and last applied GTIDs, stored *inside the target*.

Value types (aiokafka ``structs.py`` style): positions are keyed by ``(topic, partition)`` and hold
the *next* offset to read; GTID positions hold the last applied sequence number per domain. Both are
written by the applier in the same transaction as the changes they describe (invariant 2), and read
back on partition assignment to seek.
"""

from __future__ import annotations

from dataclasses import dataclass, field

META_SCHEMA = "dbmux_meta"


@dataclass(frozen=True, slots=True)
class PartitionKey:
    topic: str
    partition: int


@dataclass(slots=True)
class TargetPosition:
    offsets: dict[PartitionKey, int] = field(default_factory=dict)  # next offset to read
    gtids: dict[str, int] = field(default_factory=dict)  # domain -> last applied seq

    def copy(self) -> TargetPosition:
        return TargetPosition(dict(self.offsets), dict(self.gtids))
