"""The shard map: which shard owns which rows, per table. Pure: no I/O, no asyncio.

A :class:`ShardMap` is one immutable *version* of the map: the ordered shard names, how keys are
placed on them (``jump``, ``ring`` or ``range``), and the table rules. :meth:`ShardMap.rule` decides
how one table is distributed, :meth:`ShardMap.locate` which shard owns one key, and
:meth:`ShardMap.with_shard` gives the next version with one more shard (see :mod:`shardmap.plan` for
what moves between two versions).
"""

from __future__ import annotations

import bisect
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dbmux.shardmap.errors import ShardMapError
from dbmux.shardmap.hashing import canonical_text, jump_hash, shard_hash

if TYPE_CHECKING:  # pragma: no cover
    from dbmux.core.config import ShardMapConfig

__all__ = ["PLACEMENTS", "VERSIONS_DB", "ShardMap", "ShardMapError", "TableRule"]

PLACEMENTS = ("jump", "ring", "range")
DEFAULT_RULES = ("primary_key", "none")
UNSHARDED = ("default", "all")
KINDS = ("sharded", "reference", "single")
# Map versions after the first are recorded on the primary in this database (table ``versions``), so
# the switch to a new version is a transaction in the stream like any other; it is a reference table.
VERSIONS_DB = "dbmux_shardmap"
_INT_TEXT = re.compile(r"0|-?[1-9][0-9]*")


@dataclass(frozen=True)
class TableRule:
    """How one table is distributed.

    ``sharded``: rows are spread over every shard by ``key`` (lower-case column names);
    ``reference``: every shard holds every row; ``single``: ``shard`` holds every row.
    """

    kind: str
    key: tuple[str, ...] = ()
    shard: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ShardMapError(f"table rule kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "sharded" and not self.key:
            raise ShardMapError("a sharded table rule needs key columns")
        if self.kind != "sharded" and self.key:
            raise ShardMapError(f"a {self.kind} table rule has no key columns")
        if (self.kind == "single") != bool(self.shard):
            raise ShardMapError("a single table rule names exactly one shard; other kinds name none")


def table_name(db: str, table: str) -> str:
    """The lower-case ``db.table`` name the map compares (table names are case-insensitive here)."""
    if not db or not table:
        raise ShardMapError(f"a table is named by a database and a table, got {db!r}.{table!r}")
    return f"{db}.{table}".lower()


def split_table_name(name: str) -> tuple[str, str]:
    """``'shop.orders'`` -> ``('shop', 'orders')``; ShardMapError unless exactly ``db.table``."""
    db, dot, table = name.partition(".")
    if not dot or not db or not table or "." in table:
        raise ShardMapError(f"{name!r} is not a table name of the form db.table")
    return db, table


@dataclass(frozen=True)
class ShardMap:
    """One version of the shard map (immutable). Build it with :meth:`from_config` or directly.

    ``ranges`` (placement ``range`` only) holds each shard's inclusive lower bound, aligned with
    ``shards``; the bounds need not be in shard order (a split appends the new shard with a bound in
    the middle). ``tables`` maps lower-case ``db.table`` to its explicit shard-key columns.
    """

    version: int
    shards: tuple[str, ...]
    placement: str = "jump"
    default_rule: str = "primary_key"
    unsharded: str = "default"
    default_shard: str = ""  # empty: the first shard
    reference_tables: tuple[str, ...] = ()
    tables: tuple[tuple[str, tuple[str, ...]], ...] = ()
    vnodes: int = 128
    ranges: tuple[int, ...] = ()
    _ring: tuple[tuple[int, ...], tuple[int, ...]] = field(init=False, repr=False, compare=False)
    _bounds: tuple[tuple[int, ...], tuple[int, ...]] = field(init=False, repr=False, compare=False)
    _explicit: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    # -- construction ------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "shards", tuple(self.shards))
        set_(self, "reference_tables", tuple(p.lower() for p in self.reference_tables))
        explicit = _normalise_tables(self.tables)
        set_(self, "tables", tuple(sorted(explicit.items())))
        set_(self, "_explicit", explicit)
        set_(self, "ranges", tuple(self.ranges))
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ShardMapError(f"the shard map version must be an integer >= 1, got {self.version!r}")
        if not self.shards:
            raise ShardMapError("the shard map has no shards (set [shardmap] shards = [...])")
        for name in self.shards:
            if not isinstance(name, str) or not name:
                raise ShardMapError(f"shard names are non-empty strings, got {name!r}")
        if len(set(self.shards)) != len(self.shards):
            raise ShardMapError(f"the shard map names a shard twice: {list(self.shards)}")
        if self.placement not in PLACEMENTS:
            raise ShardMapError(f"placement {self.placement!r} is not one of {', '.join(PLACEMENTS)}")
        if self.default_rule not in DEFAULT_RULES:
            raise ShardMapError(f"default_rule {self.default_rule!r} is not one of {', '.join(DEFAULT_RULES)}")
        if self.unsharded not in UNSHARDED:
            raise ShardMapError(f"unsharded {self.unsharded!r} is not one of {', '.join(UNSHARDED)}")
        if not self.default_shard:
            set_(self, "default_shard", self.shards[0])
        elif self.default_shard not in self.shards:
            raise ShardMapError(f"default shard {self.default_shard!r} is not one of the shards {list(self.shards)}")
        if isinstance(self.vnodes, bool) or not isinstance(self.vnodes, int) or self.vnodes < 1:
            raise ShardMapError(f"vnodes must be an integer >= 1, got {self.vnodes!r}")
        set_(self, "_ring", self._build_ring() if self.placement == "ring" else ((), ()))
        if self.placement != "range" and self.ranges:
            raise ShardMapError(f"range bounds only apply to placement 'range' (this map uses {self.placement!r})")
        set_(self, "_bounds", self._build_bounds() if self.placement == "range" else ((), ()))

    def _build_ring(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        # ties between equal points (never seen in practice) go to the shard name that sorts first
        points = sorted((shard_hash((name, i)), name.encode("utf-8"), idx)
                        for idx, name in enumerate(self.shards) for i in range(self.vnodes))
        return tuple(p[0] for p in points), tuple(p[2] for p in points)

    def _build_bounds(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if len(self.ranges) != len(self.shards):
            raise ShardMapError(f"placement 'range' needs one lower bound per shard: {len(self.shards)} shards, "
                                f"{len(self.ranges)} bounds")
        for b in self.ranges:
            if isinstance(b, bool) or not isinstance(b, int):
                raise ShardMapError(f"range bounds are integers, got {b!r}")
        if len(set(self.ranges)) != len(self.ranges):
            raise ShardMapError(f"range bounds must be distinct, got {list(self.ranges)}")
        for name, cols in self._explicit.items():
            if len(cols) != 1:
                raise ShardMapError(f"table {name}: placement 'range' needs exactly one (integer) key column, "
                                    f"got {list(cols)}")
        order = sorted(range(len(self.shards)), key=lambda i: self.ranges[i])
        return tuple(self.ranges[i] for i in order), tuple(order)

    @classmethod
    def from_config(cls, cfg: ShardMapConfig) -> ShardMap:
        """The map of a validated ``[shardmap]`` config section."""
        return cls(version=cfg.version, shards=tuple(cfg.shards), placement=cfg.placement,
                   default_rule=cfg.default_rule, unsharded=cfg.unsharded, default_shard=cfg.default_shard,
                   reference_tables=tuple(cfg.reference_tables), tables=tuple(cfg.tables.items()),
                   vnodes=cfg.vnodes, ranges=tuple(cfg.ranges) if cfg.placement == "range" else ())

    def to_dict(self) -> dict[str, Any]:
        """The map as plain JSON-able data (how versions are recorded); :meth:`from_dict` reads it back."""
        return {"version": self.version, "shards": list(self.shards), "placement": self.placement,
                "default_rule": self.default_rule, "unsharded": self.unsharded, "default_shard": self.default_shard,
                "reference_tables": list(self.reference_tables),
                "tables": {name: list(cols) for name, cols in self.tables}, "vnodes": self.vnodes,
                "ranges": list(self.ranges)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ShardMap:
        try:
            return cls(version=int(d["version"]), shards=tuple(d["shards"]), placement=d["placement"],
                       default_rule=d["default_rule"], unsharded=d["unsharded"], default_shard=d["default_shard"],
                       reference_tables=tuple(d["reference_tables"]),
                       tables=tuple((k, tuple(v)) for k, v in d["tables"].items()), vnodes=int(d["vnodes"]),
                       ranges=tuple(d["ranges"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ShardMapError(f"not a recorded shard map: {exc!r}") from exc

    def with_shard(self, name: str, lower_bound: int | None = None) -> ShardMap:
        """The next version with shard ``name`` appended.

        For placement ``range`` this is a split: ``lower_bound`` (required) is the new shard's
        inclusive lower bound; it takes the keys from there up to the next bound from the shard that
        owned them. For ``jump``/``ring`` ``lower_bound`` must be None.
        """
        if not isinstance(name, str) or not name:
            raise ShardMapError(f"a shard name is a non-empty string, got {name!r}")
        if name in self.shards:
            raise ShardMapError(f"shard {name!r} is already in the map (version {self.version})")
        ranges = self.ranges
        if self.placement == "range":
            if lower_bound is None:
                bounds = dict(zip(self.shards, self.ranges, strict=True))
                raise ShardMapError(f"adding shard {name!r} to a 'range' map is a split: give its inclusive "
                                    f"lower bound (existing bounds: {bounds})")
            if isinstance(lower_bound, bool) or not isinstance(lower_bound, int):
                raise ShardMapError(f"a range lower bound is an integer, got {lower_bound!r}")
            if lower_bound in self.ranges:
                owner = self.shards[self.ranges.index(lower_bound)]
                raise ShardMapError(f"lower bound {lower_bound} is already shard {owner!r}'s bound")
            ranges = self.ranges + (lower_bound,)
        elif lower_bound is not None:
            raise ShardMapError(f"a lower bound only applies to placement 'range' (this map uses "
                                f"{self.placement!r})")
        return replace(self, version=self.version + 1, shards=self.shards + (name,), ranges=ranges)

    # -- rules ---------------------------------------------------------------------------------------
    def _reference_pattern(self, name: str) -> str | None:
        if name.startswith(VERSIONS_DB + "."):
            return VERSIONS_DB + ".*"  # the map's own history is on every shard
        for pattern in self.reference_tables:
            if fnmatch.fnmatchcase(name, pattern):
                return pattern
        return None

    def _unsharded_rule(self) -> TableRule:
        if self.unsharded == "all":
            return TableRule("reference")
        return TableRule("single", shard=self.default_shard)

    def _rule_without_pk(self, name: str) -> TableRule | None:
        """The rule when it does not depend on the primary key; None when it does."""
        if self._reference_pattern(name) is not None:
            return TableRule("reference")
        if name in self._explicit:
            return TableRule("sharded", key=self._explicit[name])
        if self.default_rule != "primary_key":
            return self._unsharded_rule()
        return None

    def fixed_rule(self, db: str, table: str) -> TableRule | None:
        """The rule of ``db.table`` when it does not depend on its primary key (reference pattern, explicit
        entry, ``default_rule = "none"``); None when it does."""
        return self._rule_without_pk(table_name(db, table))

    def rule(self, db: str, table: str, primary_key: tuple[str, ...]) -> TableRule:
        """How ``db.table`` is distributed, given its primary-key columns from the source schema.

        In order: a ``reference_tables`` pattern -> reference; an explicit ``tables`` entry ->
        sharded by that key; ``default_rule = "primary_key"`` and a primary key -> sharded by it;
        otherwise (no primary key, or ``default_rule = "none"``) -> ``single`` on the default shard
        (``unsharded = "default"``) or ``reference`` (``unsharded = "all"``).
        """
        name = table_name(db, table)
        decided = self._rule_without_pk(name)
        if decided is not None:
            return decided
        pk = tuple(c.lower() for c in primary_key)
        if not pk:
            return self._unsharded_rule()
        if self.placement == "range" and len(pk) != 1:
            raise ShardMapError(f"table {name}: placement 'range' needs a single integer key column, its primary "
                                f"key is {list(pk)} (add a [shardmap.tables] entry with one column, or list "
                                f"it in reference_tables)")
        return TableRule("sharded", key=pk)

    def owners(self, rule: TableRule) -> tuple[str, ...]:
        """Every shard holding rows under ``rule``: all shards for sharded/reference, one for single."""
        if rule.kind == "single":
            if rule.shard not in self.shards:
                raise ShardMapError(f"shard {rule.shard!r} is not in the map (version {self.version})")
            return (rule.shard,)
        return self.shards

    # -- placement -----------------------------------------------------------------------------------
    def locate(self, db: str, table: str, key: tuple[Any, ...] | list[Any]) -> str:
        """The shard owning the row of ``db.table`` whose shard key is ``key`` (values in key-column order).

        Assumes the table is sharded by ``key`` when its rule depends on the primary key (the map does
        not know the schema). A ``single`` table (``default_rule = "none"``, ``unsharded =
        "default"``) is on the default shard; a reference table has no single owner (ShardMapError).
        """
        name = table_name(db, table)
        rule = self._rule_without_pk(name)
        key = tuple(key) if isinstance(key, list) else key
        if not isinstance(key, tuple) or not key:
            raise ShardMapError(f"table {name}: a key is a non-empty tuple of column values, got {key!r}")
        if rule is not None:
            if rule.kind == "reference":
                raise ShardMapError(f"table {name} is a reference table: every shard holds it "
                                    f"({', '.join(self.shards)})")
            if rule.kind == "single":
                return rule.shard  # type: ignore[return-value]  # a single rule always names its shard
            if len(key) != len(rule.key):
                raise ShardMapError(f"table {name} is sharded by {list(rule.key)}: expected {len(rule.key)} key "
                                    f"value(s), got {len(key)}")
        return self.shards[self._index(name, key)]

    def _index(self, name: str, key: tuple[Any, ...]) -> int:
        if self.placement == "jump":
            return jump_hash(shard_hash(key), len(self.shards))
        if self.placement == "ring":
            return self._ring_index(shard_hash(key))
        value = range_key(name, key)
        bounds, order = self._bounds
        return order[max(bisect.bisect_right(bounds, value) - 1, 0)]

    def _ring_index(self, h: int) -> int:
        """Index of the shard owning hash ``h`` on the ring: the first point >= h, wrapping around."""
        points, owners = self._ring
        i = bisect.bisect_left(points, h)
        return owners[i if i < len(points) else 0]

    def ring_points(self) -> tuple[int, ...]:
        """The sorted vnode points of placement ``ring`` (empty for other placements)."""
        return self._ring[0]

    def describe(self) -> list[str]:
        """Human-readable lines: version, placement, shards and rules (``dbmux shardmap show``)."""
        lines = [f"version: {self.version}", f"placement: {self.placement}"]
        if self.placement == "ring":
            lines.append(f"vnodes: {self.vnodes}")
        lines.append("shards:")
        if self.placement == "range":
            bounds, order = self._bounds
            for i, idx in enumerate(order):
                upper = f"{bounds[i + 1] - 1}" if i + 1 < len(bounds) else "+inf"
                lower = "-inf" if i == 0 else str(bounds[i])
                lines.append(f"  {self.shards[idx]}: keys {lower} .. {upper} (lower bound {bounds[i]})")
        else:
            lines.extend(f"  {i}: {s}" for i, s in enumerate(self.shards))
        lines.append("rules (first match wins):")
        for pattern in self.reference_tables:
            lines.append(f"  {pattern}: reference (every shard)")
        for name, cols in self.tables:
            lines.append(f"  {name}: sharded by ({', '.join(cols)})")
        unsharded = ("reference (every shard)" if self.unsharded == "all"
                     else f"single (on {self.default_shard})")
        if self.default_rule == "primary_key":
            lines.append("  other tables with a primary key: sharded by the primary key")
            lines.append(f"  other tables without a primary key: {unsharded}")
        else:
            lines.append(f"  other tables: {unsharded}")
        return lines


def range_key(name: str, key: tuple[Any, ...]) -> int:
    """The integer of a one-column key for placement ``range`` (its canonical text must be an integer)."""
    if len(key) != 1:
        raise ShardMapError(f"table {name}: placement 'range' needs a single integer key column, got "
                            f"{len(key)} key values")
    value: Any = key[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = None
    if isinstance(value, (bytes, bytearray, memoryview)):
        text = bytes(value).decode("ascii", errors="replace")
    elif value is not None:
        try:
            text = canonical_text(value)  # '5', Decimal('5.00'), 5.0 and True agree with hashing
        except ShardMapError:
            text = None
    if text is None or not _INT_TEXT.fullmatch(text):
        raise ShardMapError(f"table {name}: placement 'range' needs an integer key, got {value!r}")
    return int(text)


def _normalise_tables(tables: Iterable[tuple[str, Iterable[str]]] | Mapping[str, Iterable[str]]
                      ) -> dict[str, tuple[str, ...]]:
    items = tables.items() if isinstance(tables, Mapping) else tables
    out: dict[str, tuple[str, ...]] = {}
    for name, cols in items:
        db, table = split_table_name(name)
        norm = table_name(db, table)
        key = tuple(str(c).lower() for c in cols)
        if not key or any(not c for c in key):
            raise ShardMapError(f"table {name}: the shard key needs at least one non-empty column name")
        if len(set(key)) != len(key):
            raise ShardMapError(f"table {name}: the shard key names a column twice: {list(cols)}")
        if norm in out:
            raise ShardMapError(f"table {name} has two shard-key entries (names compare case-insensitively)")
        out[norm] = key
    return out
