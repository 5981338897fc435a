"""replicator/packet_limit.py: a request's size on the wire against the target's max_allowed_packet."""

from __future__ import annotations

import pytest

from dbmux.replicator.packet_limit import MAX_PACKET_CEILING, fits, request_bytes, too_big


@pytest.mark.parametrize("sql, limit, fits_in", [
    ("SELECT 1", 1024, True),
    ("x" * 1023, 1024, True),   # 1023 bytes + the command byte
    ("x" * 1024, 1024, False),
    ("é" * 511, 1024, True),    # 2 bytes each: 1022 + 1
    ("é" * 512, 1024, False),   # 1024 + 1: under the limit by characters, over it in bytes
    ("😀" * 255, 1024, True),   # 4 bytes each
    ("😀" * 256, 1024, False),
])
def test_requests_are_measured_in_bytes_on_the_wire(sql, limit, fits_in):
    assert fits(sql, limit) is fits_in
    if not fits_in:
        assert request_bytes(sql, limit) == len(sql.encode()) + 1


@pytest.mark.parametrize("size, limit, advice", [
    (33_554_500, 16_777_216, "SET GLOBAL max_allowed_packet = 67108864"),  # next power of two over size + 1 KiB
    (1_500_000, 1_048_576, "SET GLOBAL max_allowed_packet = 2097152"),
    (MAX_PACKET_CEILING - 10, 16_777_216, f"SET GLOBAL max_allowed_packet = {MAX_PACKET_CEILING}"),
    (MAX_PACKET_CEILING + 10, MAX_PACKET_CEILING, "no server accepts a statement this long"),
])
def test_a_statement_over_the_limit_is_a_permanent_error_naming_the_fix(size, limit, advice):
    err = too_big(size, limit, target="replica1", gtid="0-1-28", offset=27, table="gotest.test")
    text = str(err)
    assert not err.retriable and err.gtid == "0-1-28" and err.offset == 27 and err.table == "gotest.test"
    assert text.startswith("gtid 0-1-28 offset 27 table gotest.test: ")
    assert f"a statement of {size:,} bytes is over target replica1's max_allowed_packet ({limit:,} bytes)" in text
    assert advice in text
