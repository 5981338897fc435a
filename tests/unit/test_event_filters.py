"""dbmux events filters: which events --table/--gtid/--since/--until/--user/--op select."""

from __future__ import annotations

import pytest

from dbmux.cli.event_filters import EventFilter, parse_time
from dbmux.core.errors import ConfigError
from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement
from dbmux.core.gtid import Gtid

T0 = parse_time("2026-12-05T10:00:00", "--since")
ING = ChangeEvent(Gtid.parse("0-1-10"), "ingress", T0, db="shop",
                  statements=(Statement("UPDATE orders SET qty = 2 WHERE id = 1"),),
                  session=SessionContext(user="app", db="shop"))
ROWS = ChangeEvent(Gtid.parse("0-1-11"), "binlog", T0 + 60_000,
                   rows=(RowChange("orders", "shop", "delete", before={"id": 1}),))
DDL = ChangeEvent(Gtid.parse("0-1-12"), "ingress", T0 + 120_000, db="crm",
                  statements=(Statement("CREATE TABLE crm.people (id INT PRIMARY KEY)", kind="ddl"),),
                  session=SessionContext(user="admin", db="crm"))
OTHER_DOMAIN = ChangeEvent(Gtid.parse("1-1-11"), "binlog", T0, rows=(RowChange("t", "x", "insert", after={"a": 1}),))
ALL = (ING, ROWS, DDL, OTHER_DOMAIN)


@pytest.mark.parametrize("kw, selected", [
    ({}, ALL),
    ({"tables": ["shop.orders"]}, (ING, ROWS)),
    ({"tables": ["crm.*"]}, (DDL,)),
    ({"tables": ["shop.customers"]}, ()),
    ({"gtid": "0-1-11..0-1-12"}, (ROWS, DDL)),
    ({"gtid": "0-1-10"}, (ING,)),
    ({"since": "2026-12-05T10:01:00"}, (ROWS, DDL)),
    ({"until": "2026-12-05T10:01:00Z"}, (ING, ROWS, OTHER_DOMAIN)),
    ({"since": str(T0 + 1), "until": "2026-12-05T11:01:00+01:00"}, (ROWS,)),
    ({"user": "app"}, (ING,)),
    ({"ops": ["delete"]}, (ROWS,)),
    ({"ops": ["ddl", "insert"]}, (DDL, OTHER_DOMAIN)),
    ({"ops": ["dml"], "user": "admin"}, ()),
])
def test_filters_select(kw, selected):
    only = EventFilter.from_args(**kw)
    assert only.active == bool(kw)
    assert tuple(ev for ev in ALL if only.matches(ev)) == selected


@pytest.mark.parametrize("kw, key, fragment", [
    ({"gtid": "0-1-9..1-1-10"}, "--gtid", "one domain"),
    ({"gtid": "0-1-9..0-1-3"}, "--gtid", "one domain"),
    ({"gtid": "nope"}, "--gtid", "FROM..TO"),
    ({"since": "yesterday"}, "--since", "ISO 8601"),
    ({"ops": ["upsert"]}, "--op", "not one of"),
    ({"tables": ["orders"]}, "--table", "db.table"),
])
def test_bad_filters_name_the_option(kw, key, fragment):
    with pytest.raises(ConfigError) as info:
        EventFilter.from_args(**kw)
    assert info.value.key == key and fragment in str(info.value)
