"""A MySQL target's ``max_allowed_packet``: what the applier may send in one request.

A statement longer than the target's ``max_allowed_packet`` makes the server drop the connection
(error 2013, "Lost connection"), which looks transient: retried from the stored position it fails the
same way for ever -- a target that says "retrying" and never moves. Row copies make statements longer
than the primary's: a binary value travels hex-encoded (twice its size), so a blob the primary took in a
16 MiB packet needs more than 32 MiB on the target. The applier therefore measures each request before
sending it: a group-commit request over the limit is applied statement by statement instead, and a
single statement over it is a permanent error that names the event, the sizes and the fix.
"""

from __future__ import annotations

from dbmux.replicator.errors import ApplyError

MAX_PACKET_CEILING = 1 << 30  # the largest max_allowed_packet MySQL and MariaDB accept (1 GiB)


def request_bytes(sql: str, limit: int) -> int:
    """The size of ``sql`` on the wire (UTF-8, plus the command byte), computed exactly only when it could
    be over ``limit`` (a character is at most 4 bytes)."""
    if 4 * len(sql) + 1 <= limit:
        return len(sql) + 1  # a lower bound; enough to say "fits"
    return len(sql.encode("utf-8", "surrogateescape")) + 1


def fits(sql: str, limit: int) -> bool:
    return request_bytes(sql, limit) <= limit


def too_big(size: int, limit: int, *, target: str, gtid: str, offset: int, table: str) -> ApplyError:
    """The permanent error for a statement of ``size`` bytes that ``limit`` refuses."""
    wanted = 1 << max(size + 1024, 1).bit_length()
    advice = (f"raise it on the target: SET GLOBAL max_allowed_packet = {min(wanted, MAX_PACKET_CEILING)}, and "
              f"max_allowed_packet in its server configuration" if size < MAX_PACKET_CEILING else
              "no server accepts a statement this long; it cannot be applied to a MySQL target")
    return ApplyError(f"a statement of {size:,} bytes is over target {target}'s max_allowed_packet ({limit:,} "
                      f"bytes): {advice} (binary values travel hex-encoded, so a target needs more than twice the "
                      f"primary's max_allowed_packet), then start the replicator again",
                      gtid=gtid, offset=offset, table=table, retriable=False)
