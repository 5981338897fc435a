"""Cutting consumed events into group-commit units, and the position each unit leaves the target at;
which ingress copies a fetch makes unnecessary (pure functions of the replicator's pipeline,
:mod:`dbmux.replicator.runner`)."""

from __future__ import annotations

import re

from dbmux.core.events import ChangeEvent
from dbmux.replicator.positions import PartitionKey, TargetPosition

Item = tuple[ChangeEvent, PartitionKey, int]
"""A released event, the partition it came from and its offset there."""


def chunks_for_commit(items: list[Item], max_txns: int, max_bytes: int = 1 << 62,
                      sizes: dict[tuple[PartitionKey, int], int] | None = None,
                      alone=lambda ev: False) -> list[list[Item]]:
    """Group-commit chunks: at most ``max_txns`` events and ``max_bytes`` of event payload (always at
    least one event); an event with DDL, or one ``alone(event)`` is true for, is a chunk of its own."""
    out: list[list[Item]] = []
    cur: list[Item] = []
    cur_bytes = 0
    for item in items:
        size = (sizes or {}).get((item[1], item[2]), 0)
        if cur and cur_bytes + size > max_bytes:
            out.append(cur)
            cur, cur_bytes = [], 0
        if item[0].has_ddl or alone(item[0]):
            if cur:
                out.append(cur)
                cur = []
            out.append([item])
            continue
        cur.append(item)
        cur_bytes += size
        if len(cur) >= max_txns:
            out.append(cur)
            cur, cur_bytes = [], 0
    if cur:
        out.append(cur)
    return out


def later_items(chunk: list[Item], item: Item) -> list[Item]:
    return chunk[chunk.index(item) + 1:]


def position_after(base: TargetPosition, chunk: list[Item], later: list[Item], held: dict[PartitionKey, int],
                   consumed: dict[PartitionKey, int]) -> TargetPosition:
    """The position once ``chunk`` is applied on top of ``base``: per partition the lowest offset still
    needed -- one past the last consumed, or an event cut ``later``, or one the orderer still needs
    (``held``: held, spilled or to be read again)."""
    pos = base.copy()
    for key, nxt in consumed.items():
        candidates = [nxt, *(off for _, k, off in later if k == key)]
        if key in held:
            candidates.append(held[key])
        pos.offsets[key] = min(candidates)
    for ev, _, _ in chunk:
        pos.gtids[ev.gtid.domain] = ev.gtid.seq
    return pos


# the head of a whole (unfragmented) event: encode_event writes "v", "gtid" and "source" first
_HEAD = re.compile(rb'\{"v":[0-9]+,"gtid":"([^"]+)","source":"(ingress|binlog)"')


def row_copies(recs) -> set[bytes]:
    """The GTIDs whose binlog copy is one of ``recs`` (whole events only)."""
    out = set()
    for rec in recs:
        m = _HEAD.match(rec.value)
        if m is not None and m[2] == b"binlog":
            out.add(m[1])
    return out


def ingress_copy_of(value: bytes, row_copies: set[bytes]) -> str | None:
    """The GTID of ``value`` when it is the ingress copy (a whole event) of a transaction whose binlog
    copy is in ``row_copies``, else None. Such a copy need not be decoded: the binlog copy, read in the
    same fetch, is applied (the row form is the primary's truth; while catching up a backlog, most pairs
    arrive in one fetch)."""
    m = _HEAD.match(value)
    return m[1].decode() if m is not None and m[2] == b"ingress" and m[1] in row_copies else None
