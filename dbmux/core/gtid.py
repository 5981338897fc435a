"""Global transaction identifiers (GTIDs) of MariaDB and MySQL, as value types.

Two textual forms are accepted:

* MariaDB ``domain-server-seq`` (``0-1-42``): three unsigned decimals. ``domain`` and ``server`` are
  kept as their canonical decimal strings (leading zeros dropped), ``seq`` as an int.
* MySQL ``uuid:n`` (``3E11FA47-71CA-11E1-9E33-C80AA9429562:23``): ``domain`` is the UUID lowercased,
  ``server`` is ``''``, ``seq`` is ``n``. MySQL 8.4 tagged GTIDs ``uuid:tag:n`` are accepted too; their
  domain is ``uuid:tag`` (tag lowercased), because a tag starts its own sequence.

A GTID orders against another by ``(domain, seq)`` (:attr:`Gtid.key`); the replicator only ever
compares GTIDs of the same domain. Equality compares all three fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dbmux.core.errors import DbmuxError

__all__ = ["Gtid", "GtidError", "parse_gtid_list"]

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_EXPECTED = ("expected MariaDB 'domain-server-seq' (e.g. '0-1-42') or MySQL 'uuid:n' "
             "(e.g. '3e11fa47-71ca-11e1-9e33-c80aa9429562:23')")

_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
_TAG = r"[A-Za-z_][A-Za-z0-9_]{0,31}"
_MARIADB_RE = re.compile(r"([0-9]{1,10})-([0-9]{1,10})-([0-9]{1,20})")
_MYSQL_RE = re.compile(rf"({_UUID})(?::({_TAG}))?:([0-9]{{1,20}})")
_INTERVAL_RE = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")
_TAG_RE = re.compile(_TAG)
_UUID_RE = re.compile(_UUID)


class GtidError(DbmuxError, ValueError):
    """A GTID or GTID list could not be parsed; the message names the text and the expected forms."""

    def __init__(self, text: str, problem: str = "not a GTID") -> None:
        self.text = text
        shown = text if len(text) <= 200 else text[:200] + "..."
        super().__init__(f"{problem}: {shown!r}; {_EXPECTED}")


def _canonical_uuid(text: str) -> str:
    hexdigits = text.replace("-", "").lower()
    return f"{hexdigits[:8]}-{hexdigits[8:12]}-{hexdigits[12:16]}-{hexdigits[16:20]}-{hexdigits[20:]}"


@dataclass(frozen=True, slots=True)
class Gtid:
    """One GTID. ``domain`` is the ordering stream; ``seq`` increases by one per transaction in it."""

    domain: str
    server: str
    seq: int

    @classmethod
    def parse(cls, text: str) -> Gtid:
        """Parse one GTID in MariaDB or MySQL form; raises :class:`GtidError` on anything else."""
        if not isinstance(text, str):
            raise GtidError(repr(text), f"GTID must be a str, got {type(text).__name__}")
        stripped = text.strip()
        m = _MARIADB_RE.fullmatch(stripped)
        if m:
            domain, server, seq = int(m[1]), int(m[2]), int(m[3])
            if domain > _U32_MAX or server > _U32_MAX or seq > _U64_MAX:
                raise GtidError(text, "GTID component out of range")
            return cls(str(domain), str(server), seq)
        m = _MYSQL_RE.fullmatch(stripped)
        if m:
            seq = int(m[3])
            if seq < 1 or seq > 2**63 - 1:
                raise GtidError(text, "MySQL GTID sequence number out of range 1..2**63-1")
            source = _canonical_uuid(m[1])
            if m[2]:
                source += ":" + m[2].lower()
            return cls(source, "", seq)
        raise GtidError(text)

    @property
    def kind(self) -> str:
        """``'mariadb'`` or ``'mysql'``."""
        return "mysql" if self.server == "" else "mariadb"

    @property
    def key(self) -> tuple[str, int]:
        """The ordering key ``(domain, seq)``."""
        return (self.domain, self.seq)

    def __str__(self) -> str:
        if self.server == "":
            return f"{self.domain}:{self.seq}"
        return f"{self.domain}-{self.server}-{self.seq}"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Gtid):
            return NotImplemented
        return self.key < other.key

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Gtid):
            return NotImplemented
        return self.key <= other.key

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Gtid):
            return NotImplemented
        return self.key > other.key

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Gtid):
            return NotImplemented
        return self.key >= other.key


def _parse_mysql_set_item(item: str, whole: str) -> list[Gtid]:
    """``uuid:1-5:7-9[:tag:1-3...]`` -> one Gtid per (uuid[:tag]) holding the last interval's end."""
    parts = [p.strip() for p in item.split(":")]
    if not _UUID_RE.fullmatch(parts[0]) or len(parts) < 2:
        raise GtidError(whole, f"bad GTID set element {item!r}")
    uuid = _canonical_uuid(parts[0])
    out: dict[str, int] = {}
    domain = uuid
    seen_interval = False
    for part in parts[1:]:
        im = _INTERVAL_RE.fullmatch(part)
        if im:
            lo = int(im[1])
            hi = int(im[2]) if im[2] is not None else lo
            if lo < 1 or hi < lo or hi > 2**63 - 1:
                raise GtidError(whole, f"bad GTID interval {part!r}")
            out[domain] = hi  # the last interval is the highest one in MySQL's normalised output
            seen_interval = True
        elif _TAG_RE.fullmatch(part):
            domain = f"{uuid}:{part.lower()}"
        else:
            raise GtidError(whole, f"bad GTID set element {item!r}")
    if not seen_interval:
        raise GtidError(whole, f"GTID set element without an interval {item!r}")
    return [Gtid(d, "", seq) for d, seq in out.items()]


def parse_gtid_list(text: str) -> dict[str, Gtid]:
    """Parse a comma-separated GTID position into ``{domain: Gtid}``.

    * MariaDB ``gtid_binlog_pos`` / ``gtid_slave_pos`` / ``gtid_binlog_state``: ``0-1-5,1-2-9``. When a
      domain appears more than once (``gtid_binlog_state`` lists one GTID per server), the one with the
      highest ``seq`` wins.
    * MySQL ``gtid_executed`` set: ``uuid:1-5:7-9,uuid2:1-3``. For each UUID (and tag) the result is the
      end of its *last* interval (``uuid:9`` above), i.e. the highest executed GTID; gaps before it are
      not represented.

    Whitespace and newlines around elements are ignored; an empty text gives ``{}``. Mixing the two
    forms in one list is an error.
    """
    if not isinstance(text, str):
        raise GtidError(repr(text), f"GTID list must be a str, got {type(text).__name__}")
    result: dict[str, Gtid] = {}
    kinds: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            if text.strip():
                raise GtidError(text, "empty element in GTID list")
            continue
        if ":" in item:
            gtids = _parse_mysql_set_item(item, text)
            kinds.add("mysql")
        else:
            gtids = [Gtid.parse(item)] if _MARIADB_RE.fullmatch(item) else []
            if not gtids:
                raise GtidError(text, f"bad GTID list element {item!r}")
            kinds.add("mariadb")
        for g in gtids:
            old = result.get(g.domain)
            if old is None or g.seq > old.seq:
                result[g.domain] = g
    if len(kinds) > 1:
        raise GtidError(text, "GTID list mixes MariaDB and MySQL forms")
    return result
