"""Passwords never reach change events: hashed like MariaDB's binlog, or redacted and flagged unsafe."""

from __future__ import annotations

import pytest

from dbmux.ingress.capture import StatementOutcome, TransactionCapture
from dbmux.ingress.secrets import native_password_hash, redact_secrets

H = native_password_hash


@pytest.mark.parametrize("sql, expected, unsafe", [
    ("CREATE USER 'a'@'%' IDENTIFIED BY 'pw1'", f"CREATE USER 'a'@'%' IDENTIFIED BY PASSWORD '{H('pw1')}'", False),
    ("alter user a identified by 'x''y'", f"alter user a identified by PASSWORD '{H(chr(120) + chr(39) + 'y')}'",
     False),
    ('GRANT ALL ON *.* TO c IDENTIFIED BY "pw4"', f"GRANT ALL ON *.* TO c IDENTIFIED BY PASSWORD '{H('pw4')}'", False),
    ("SET PASSWORD FOR a = PASSWORD('pw2')", f"SET PASSWORD FOR a = '{H('pw2')}'", False),
    ("SET PASSWORD = PASSWORD('pw2')", f"SET PASSWORD = '{H('pw2')}'", False),
    ("CREATE USER b IDENTIFIED VIA ed25519 USING PASSWORD('pw3')",
     "CREATE USER b IDENTIFIED VIA ed25519 USING PASSWORD('***')", True),
    ("CREATE USER d IDENTIFIED WITH mysql_native_password BY 'pw5'",
     "CREATE USER d IDENTIFIED WITH mysql_native_password BY '***'", True),
    ("CREATE USER e IDENTIFIED BY PASSWORD '*ABC'", "CREATE USER e IDENTIFIED BY PASSWORD '*ABC'", False),
    ("SELECT 'IDENTIFIED BY', 'pw'", "SELECT 'IDENTIFIED BY', 'pw'", False),
    ("UPDATE t SET password = 'not a credential statement'",
     "UPDATE t SET password = 'not a credential statement'", False),
])
def test_redaction_table(sql, expected, unsafe):
    r = redact_secrets(sql)
    assert r.sql == expected
    assert r.unsafe is unsafe
    for secret in ("pw1", "pw2", "pw3", "pw4", "pw5"):
        assert secret not in r.sql


def test_native_hash_matches_mysql():
    # SELECT PASSWORD('secret') on MariaDB
    assert native_password_hash("secret") == "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"


def test_captured_event_has_no_clear_text_password():
    cap = TransactionCapture(last_gtid="0-1-1")
    commit = cap.on_success(StatementOutcome(
        sql="CREATE USER 'x'@'%' IDENTIFIED BY 'hunter2'", kind="unknown", tcl=None, unsafe=False,
        status_flags=0x0002, last_insert_id=0, gtid="0-1-2"))
    assert commit is not None
    assert "hunter2" not in commit.statements[0].sql
    assert H("hunter2") in commit.statements[0].sql
