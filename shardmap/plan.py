"""Resharding plans: what moves between two versions of the shard map. Pure: no I/O.

``plan_add_shard(old, "shard_c")`` is the plan for the next version with one more shard;
:meth:`ReshardPlan.move` says where one row goes, :meth:`ReshardPlan.expected_fractions` how much of a
sharded table moves between each pair of shards (exactly, from the placement's arithmetic, assuming
uniformly distributed key hashes; ``dbmux shardmap plan --count`` counts real rows instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from dbmux.shardmap.errors import ShardMapError
from dbmux.shardmap.model import ShardMap, table_name

__all__ = ["Move", "ReshardPlan", "plan_add_shard"]

_RING_SIZE = 1 << 64


@dataclass(frozen=True)
class Move:
    """A row that changes owner between the two versions."""

    from_shard: str
    to_shard: str


@dataclass(frozen=True)
class ReshardPlan:
    """The change from one shard-map version to a later one."""

    old: ShardMap
    new: ShardMap

    def __post_init__(self) -> None:
        if self.new.version <= self.old.version:
            raise ShardMapError(f"a resharding plan goes to a later version: {self.old.version} -> "
                                f"{self.new.version}")

    @property
    def added(self) -> tuple[str, ...]:
        """Shards in the new version that the old one does not have, in order."""
        return tuple(s for s in self.new.shards if s not in self.old.shards)

    def _owner(self, smap: ShardMap, db: str, table: str, key: tuple[Any, ...]) -> str | None:
        rule = smap._rule_without_pk(table_name(db, table))
        if rule is not None and rule.kind == "reference":
            return None
        return smap.locate(db, table, key)

    def move(self, db: str, table: str, key: tuple[Any, ...]) -> Move | None:
        """Where the row of ``db.table`` with shard key ``key`` goes; None when its owner stays.

        Reference tables (in either version) have no single owner and never "move": a new shard gets
        its copy by backfill. Like :meth:`ShardMap.locate`, assumes the table is sharded by ``key``
        unless the map's rules say otherwise without the schema.
        """
        before = self._owner(self.old, db, table, key)
        after = self._owner(self.new, db, table, key)
        if before is None or after is None or before == after:
            return None
        return Move(before, after)

    def expected_fractions(self) -> dict[tuple[str, str], float]:
        """(from, to) -> expected share of all keys of a hash-sharded table that moves from -> to.

        Only pairs that move are listed; the values add up to the share of keys that moves (1/N+1
        when a shard is added to N). Exact for ``jump`` (any change of the shard list) and ``ring``
        (computed from the vnode arcs); ``range`` depends on the data: ShardMapError.
        """
        old, new = self.old, self.new
        if old.placement != new.placement:
            raise ShardMapError(f"expected fractions need one placement, got {old.placement!r} -> "
                                f"{new.placement!r}")
        if old.placement == "jump":
            shares = _jump_fractions(old.shards, new.shards)
        elif old.placement == "ring":
            shares = _ring_fractions(old, new)
        else:
            raise ShardMapError("placement 'range': how many keys move depends on the data, not on the map "
                                "(count them with: dbmux shardmap plan --count)")
        return {pair: float(f) for pair, f in sorted(shares.items()) if f}


def _jump_fractions(old: tuple[str, ...], new: tuple[str, ...]) -> dict[tuple[str, str], Fraction]:
    """Joint distribution of jump buckets at n and m buckets, summed over pairs whose names differ.

    With lo = min(n, m), hi = max(n, m): a key keeps bucket i < lo with probability 1/hi; a key in
    bucket j >= lo of the larger map was in each bucket of the smaller map with probability 1/(lo*hi).
    """
    n, m = len(old), len(new)
    lo, hi = min(n, m), max(n, m)
    out: dict[tuple[str, str], Fraction] = {}

    def add(a: str, b: str, p: Fraction) -> None:
        if a != b:
            out[(a, b)] = out.get((a, b), Fraction(0)) + p

    for i in range(lo):
        add(old[i], new[i], Fraction(1, hi))
    for big in range(lo, hi):
        for small in range(lo):
            if n >= m:
                add(old[big], new[small], Fraction(1, lo * hi))
            else:
                add(old[small], new[big], Fraction(1, lo * hi))
    return out


def _ring_fractions(old: ShardMap, new: ShardMap) -> dict[tuple[str, str], Fraction]:
    """Overlay both rings: each elementary arc has one owner in each version; sum the arcs that differ."""
    points = sorted(set(old.ring_points()) | set(new.ring_points()))
    out: dict[tuple[str, str], Fraction] = {}
    for t, point in enumerate(points):
        length = point - points[t - 1] if t else _RING_SIZE - points[-1] + point
        a = old.shards[old._ring_index(point)]
        b = new.shards[new._ring_index(point)]
        if a != b:
            out[(a, b)] = out.get((a, b), Fraction(0)) + Fraction(length, _RING_SIZE)
    return out


def plan_add_shard(old: ShardMap, name: str, lower_bound: int | None = None) -> ReshardPlan:
    """The plan from ``old`` to its next version with shard ``name`` appended (``lower_bound``: range split)."""
    return ReshardPlan(old, old.with_shard(name, lower_bound))
