"""``dbmux events`` filters: which change events a user asked for (pure; the command reads the topic).

``--table`` patterns (``db.table``, ``db.*``; an event matches when any of its rows or statements
touches one, by the replicators' own table filter), ``--gtid FROM..TO`` (inclusive, one domain),
``--since``/``--until`` (commit time: ISO 8601, UTC unless an offset is given, or epoch milliseconds),
``--user`` (the client user of an ingress event), ``--op`` (``insert``, ``update``, ``delete`` of a
row; ``ddl`` or ``dml`` of a statement).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from dbmux.core.errors import ConfigError
from dbmux.core.events import ChangeEvent
from dbmux.core.gtid import Gtid, GtidError
from dbmux.replicator.filtering import filter_event

OPS = ("insert", "update", "delete", "ddl", "dml")


def parse_time(text: str, option: str) -> int:
    """Milliseconds since the epoch, from epoch milliseconds or an ISO 8601 time (UTC unless it says)."""
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(option, f"{text!r} is not a time", "use ISO 8601 (2026-12-05T10:00:00, UTC unless "
                          "an offset is given) or epoch milliseconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def parse_gtid_range(text: str) -> tuple[Gtid, Gtid]:
    first, sep, last = text.partition("..")
    try:
        lo, hi = Gtid.parse(first), Gtid.parse(last if sep else first)
    except GtidError as exc:
        raise ConfigError("--gtid", str(exc), "use FROM..TO, e.g. 0-1-100..0-1-200, or one GTID") from None
    if lo.domain != hi.domain or lo.seq > hi.seq:
        raise ConfigError("--gtid", f"{text!r} is not a range within one domain", "e.g. 0-1-100..0-1-200")
    return lo, hi


@dataclass(frozen=True)
class EventFilter:
    tables: tuple[str, ...] = ()
    gtids: tuple[Gtid, Gtid] | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    user: str | None = None
    ops: frozenset[str] = frozenset()

    @classmethod
    def from_args(cls, tables: Sequence[str] = (), gtid: str | None = None, since: str | None = None,
                  until: str | None = None, user: str | None = None, ops: Sequence[str] = ()) -> EventFilter:
        for op in ops:
            if op not in OPS:
                raise ConfigError("--op", f"{op!r} is not one of {', '.join(OPS)}")
        for pattern in tables:
            if "." not in pattern:
                raise ConfigError("--table", f"{pattern!r} is not db.table", "e.g. shop.orders or shop.*")
        return cls(tuple(tables), parse_gtid_range(gtid) if gtid else None,
                   parse_time(since, "--since") if since else None, parse_time(until, "--until") if until else None,
                   user, frozenset(ops))

    @property
    def active(self) -> bool:
        return bool(self.tables or self.gtids or self.since_ms is not None or self.until_ms is not None
                    or self.user is not None or self.ops)

    def matches(self, ev: ChangeEvent) -> bool:
        if self.gtids is not None:
            lo, hi = self.gtids
            if ev.gtid.domain != lo.domain or not lo.seq <= ev.gtid.seq <= hi.seq:
                return False
        if self.since_ms is not None and ev.ts_ms < self.since_ms:
            return False
        if self.until_ms is not None and ev.ts_ms > self.until_ms:
            return False
        if self.user is not None and (ev.session is None or ev.session.user != self.user):
            return False
        if self.tables:
            ev = filter_event(ev, self.tables)
            if not ev.rows and not ev.statements:
                return False
        if self.ops:
            ops = {r.op for r in ev.rows} | {s.kind for s in ev.statements}
            if not ops & self.ops:
                return False
        return True
