"""ADD COLUMN ... DEFAULT CURRENT_TIMESTAMP on PostgreSQL targets: existing rows at the primary's time
(replicator.pg_clock), from the translated statement and the binlog copy's clock."""

from __future__ import annotations

import pytest

from dbmux.core.events import SessionContext
from dbmux.replicator.pg_clock import at_primary_clock
from dbmux.replicator.pg_sql import translate_statement

STAMP = 1796551063123456  # 2026-12-06 ... .123456 UTC


def _session(time_zone: str = "SYSTEM", stamp: int | None = STAMP) -> SessionContext:
    return SessionContext(time_zone=time_zone, timestamp_us=stamp)


@pytest.mark.parametrize("mysql, want", [
    ("ALTER TABLE a ADD COLUMN t6 DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)",
     ['ALTER TABLE "d"."a" ADD COLUMN "t6" TIMESTAMP(6) DEFAULT TIMESTAMP \'2026-12-06 09:57:43.123456\' NOT NULL',
      'ALTER TABLE "d"."a" ALTER COLUMN "t6" SET DEFAULT CURRENT_TIMESTAMP(6)']),
    ("ALTER TABLE a ADD COLUMN t0 TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP",
     ['ALTER TABLE "d"."a" ADD COLUMN "t0" TIMESTAMP(0) DEFAULT TIMESTAMP \'2026-12-06 09:57:43\' NULL',
      'ALTER TABLE "d"."a" ALTER COLUMN "t0" SET DEFAULT CURRENT_TIMESTAMP']),
    ("ALTER TABLE a ADD COLUMN t3 DATETIME(3) DEFAULT NOW(3)",
     ['ALTER TABLE "d"."a" ADD COLUMN "t3" TIMESTAMP(3) DEFAULT TIMESTAMP \'2026-12-06 09:57:43.123000\'',
      'ALTER TABLE "d"."a" ALTER COLUMN "t3" SET DEFAULT CURRENT_TIMESTAMP(3)']),
    ("ALTER TABLE a ADD COLUMN n INT DEFAULT 5", ['ALTER TABLE "d"."a" ADD COLUMN "n" INTEGER DEFAULT 5']),
])
def test_added_clock_columns_take_the_primary_time(mysql, want):
    out = at_primary_clock(translate_statement(mysql, "d"), _session(), "UTC")
    assert [st.sql for st in out] == want


@pytest.mark.parametrize("session, system", [
    (_session(stamp=None), "UTC"),  # an ingress copy: no clock carried
    (_session("+02:00"), "UTC"),  # DATETIME would take the session's wall time, TIMESTAMP UTC: left as it was
    (_session("SYSTEM"), "Europe/Berlin"),
    (None, "UTC"),
])
def test_left_as_translated_without_the_primary_clock_in_utc(session, system):
    st = translate_statement("ALTER TABLE a ADD COLUMN t6 DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6)", "d")
    assert at_primary_clock(st, session, system) == st
