"""A MySQL target runs no triggers: CREATE/DROP TRIGGER from either producer is not applied (counted),
everything else is (a fake cursor records what the applier sends)."""

from __future__ import annotations

import asyncio

import pytest

from dbmux.core.dsn import Dsn
from dbmux.core.events import ChangeEvent, RowChange, SessionContext, Statement
from dbmux.core.gtid import Gtid
from dbmux.replicator.mysql_applier import TRIGGERS_SKIPPED, MySQLApplier


class FakeCursor:
    description = None

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def execute(self, sql, args=None):
        self.sent.append(sql)

    async def fetchall(self):
        last = self.sent[-1]
        if "DATA_TYPE" in last:
            return [("id", "int")]
        if "COUNT(*)" in last:
            return [(0,)]
        return [("id",)]


def _applied(ev: ChangeEvent, target: str) -> list[str]:
    applier = MySQLApplier(Dsn.parse("mysql://u:p@127.0.0.1:1"), target, "topic")
    cur = FakeCursor()
    asyncio.run(applier._apply_event(cur, ev, 0, ddl=ev.has_ddl))
    return cur.sent


CTX = SessionContext(user="app", db="shop", sql_mode="", time_zone="+00:00")
TRIGGER_TEXTS = [
    "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO audit VALUES (UUID())",
    "CREATE DEFINER=`dbmux`@`%` TRIGGER tr BEFORE UPDATE ON shop.t FOR EACH ROW SET NEW.a = 1",
    "/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER tr AFTER DELETE ON t "
    "FOR EACH ROW SET @x = 1 */",
    "DROP TRIGGER IF EXISTS shop.tr",
]


@pytest.mark.parametrize("text", TRIGGER_TEXTS)
@pytest.mark.parametrize("source", ["ingress", "binlog"])
def test_trigger_statements_are_not_applied(text, source):
    target = f"t_{source}"
    before = TRIGGERS_SKIPPED.labels(target)._value.get()
    ev = ChangeEvent(Gtid("0", "1", 5), source, 1000, db="shop", session=CTX if source == "ingress" else None,
                     statements=(Statement(text, kind="ddl"),))
    sent = _applied(ev, target)
    assert not any("TRIGGER" in s.upper() for s in sent), sent
    assert TRIGGERS_SKIPPED.labels(target)._value.get() == before + 1


def test_other_statements_and_rows_are_applied():
    ev = ChangeEvent(Gtid("0", "1", 6), "ingress", 1000, db="shop", session=CTX, statements=(
        Statement("CREATE TABLE trigger_log (id INT PRIMARY KEY)", kind="ddl"),))
    assert "CREATE TABLE trigger_log (id INT PRIMARY KEY)" in _applied(ev, "t_other")
    rows = ChangeEvent(Gtid("0", "1", 7), "binlog", 1000, db="shop", rows=(
        RowChange(db="shop", table="audit", op="insert", before=None, after={"id": 1, "v": "from the trigger"}),))
    assert any(s.startswith("INSERT INTO `shop`.`audit`") for s in _applied(rows, "t_other"))
