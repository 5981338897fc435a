"""Passwords never reach change events: replaced by the stored form a replica can apply, or withheld
(a deliberate syntax error) and flagged unsafe; log/error text never shows one either."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbmux.core.password_hash import ed25519_password_hash, native_password_hash, old_password_hash
from dbmux.core.passwords import WITHHELD_MARK, redact_secrets, redact_text
from dbmux.ingress.capture import StatementOutcome, TransactionCapture

H = native_password_hash
W = f"'***' {WITHHELD_MARK}"

FORMS = [
    # account statements: the mysql_native_password hash, applied by a replica as the same credential
    ("CREATE USER 'a'@'%' IDENTIFIED BY 'pw1'", f"CREATE USER 'a'@'%' IDENTIFIED BY PASSWORD '{H('pw1')}'", False),
    ("alter user a identified by 'x''y'", f"alter user a identified by PASSWORD '{H(chr(120) + chr(39) + 'y')}'",
     False),
    # escapes read as the server reads them (SELECT PASSWORD('b\\\\s\\'q\\n') on MariaDB)
    ("ALTER USER a IDENTIFIED BY 'b\\\\s\\'q\\n'",
     "ALTER USER a IDENTIFIED BY PASSWORD '*9C606122BD0586F097A281A5FD4786B2323BD705'", False),
    ("CREATE OR REPLACE USER IF NOT EXISTS a IDENTIFIED BY 'pw1' PASSWORD EXPIRE",
     f"CREATE OR REPLACE USER IF NOT EXISTS a IDENTIFIED BY PASSWORD '{H('pw1')}' PASSWORD EXPIRE", False),
    ("CREATE USER a IDENTIFIED BY 'pw1', b IDENTIFIED BY 'pw2'",
     f"CREATE USER a IDENTIFIED BY PASSWORD '{H('pw1')}', b IDENTIFIED BY PASSWORD '{H('pw2')}'", False),
    ('GRANT ALL ON *.* TO c IDENTIFIED BY "pw4"', f"GRANT ALL ON *.* TO c IDENTIFIED BY PASSWORD '{H('pw4')}'", False),
    ("/*!50000 CREATE USER a IDENTIFIED BY 'pw1' */",
     f"/*!50000 CREATE USER a IDENTIFIED BY PASSWORD '{H('pw1')}' */", False),
    ("SET PASSWORD FOR a = PASSWORD('pw2')", f"SET PASSWORD FOR a = '{H('pw2')}'", False),
    ("SET PASSWORD = PASSWORD('pw2')", f"SET PASSWORD = '{H('pw2')}'", False),
    ("SET PASSWORD FOR 'a'@'%' = OLD_PASSWORD('pw2')", f"SET PASSWORD FOR 'a'@'%' = '{old_password_hash('pw2')}'",
     False),
    # MySQL reads = 'pw' as a clear-text password (MariaDB as a hash): hashed, and flagged
    ("SET PASSWORD FOR a = 'pw2'", f"SET PASSWORD FOR a = '{H('pw2')}'", True),
    ("SET PASSWORD FOR a = 'pw2' REPLACE 'pw1'", f"SET PASSWORD FOR a = '{H('pw2')}' REPLACE {W}", True),
    ("CREATE USER b IDENTIFIED VIA mysql_native_password USING PASSWORD('pw3')",
     f"CREATE USER b IDENTIFIED VIA mysql_native_password USING '{H('pw3')}'", False),
    ("CREATE USER b IDENTIFIED VIA ed25519 USING PASSWORD('pw3') OR unix_socket",
     f"CREATE USER b IDENTIFIED VIA ed25519 USING '{ed25519_password_hash('pw3')}' OR unix_socket", False),
    ("CREATE USER b IDENTIFIED WITH mysql_old_password AS PASSWORD('pw3')",
     f"CREATE USER b IDENTIFIED WITH mysql_old_password AS '{old_password_hash('pw3')}'", False),
    ("CREATE USER d IDENTIFIED WITH mysql_native_password BY 'pw5'",
     f"CREATE USER d IDENTIFIED WITH mysql_native_password AS '{H('pw5')}'", False),
    ("SELECT PASSWORD('pw6')", f"SELECT '{H('pw6')}'", False),
    ("UPDATE t SET h = OLD_PASSWORD('pw6') WHERE id = 1", f"UPDATE t SET h = '{old_password_hash('pw6')}' WHERE id = 1",
     False),
    # no stored form to give: withheld (a syntax error on any target) and flagged unsafe
    ("CREATE USER b IDENTIFIED VIA parsec USING PASSWORD('pw3')",
     f"CREATE USER b IDENTIFIED VIA parsec USING PASSWORD({W})", True),
    ("CREATE USER d IDENTIFIED WITH caching_sha2_password BY 'pw5'",
     f"CREATE USER d IDENTIFIED WITH caching_sha2_password BY {W}", True),
    ("CREATE USER d IDENTIFIED WITH 'sha256_password' BY 'pw5'",
     f"CREATE USER d IDENTIFIED WITH 'sha256_password' BY {W}", True),
    ("ALTER USER d IDENTIFIED BY 'pw2' REPLACE 'pw1' RETAIN CURRENT PASSWORD",
     f"ALTER USER d IDENTIFIED BY PASSWORD '{H('pw2')}' REPLACE {W} RETAIN CURRENT PASSWORD", True),
    ("SELECT PASSWORD(CONCAT('pw1', 'pw2'))", f"SELECT PASSWORD(CONCAT({W}, {W}))", True),
    ("CHANGE MASTER TO MASTER_HOST='h', MASTER_USER='u', MASTER_PASSWORD='pw7', MASTER_PORT=3306",
     f"CHANGE MASTER TO MASTER_HOST='h', MASTER_USER='u', MASTER_PASSWORD={W}, MASTER_PORT=3306", True),
    ("CHANGE MASTER 'conn' TO MASTER_PASSWORD = 'pw7'", f"CHANGE MASTER 'conn' TO MASTER_PASSWORD = {W}", True),
    ("CHANGE REPLICATION SOURCE TO SOURCE_USER='u', SOURCE_PASSWORD='pw7'",
     f"CHANGE REPLICATION SOURCE TO SOURCE_USER='u', SOURCE_PASSWORD={W}", True),
    ("START SLAVE USER='u' PASSWORD='pw7'", f"START SLAVE USER='u' PASSWORD={W}", True),
    ("START REPLICA USER='u' PASSWORD='pw7'", f"START REPLICA USER='u' PASSWORD={W}", True),
    ("START GROUP_REPLICATION USER='u', PASSWORD='pw7'", f"START GROUP_REPLICATION USER='u', PASSWORD={W}", True),
    ("CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD 'pw8', HOST 'h')",
     f"CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD {W}, HOST 'h')", True),
    ("CREATE OR REPLACE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (PASSWORD 'pw8')",
     f"CREATE OR REPLACE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (PASSWORD {W})", True),
    ("ALTER SERVER s OPTIONS (PASSWORD 'pw8')", f"ALTER SERVER s OPTIONS (PASSWORD {W})", True),
    ("CREATE TABLE t (id INT) ENGINE=FEDERATED CONNECTION='mysql://fu:pw9@h:3306/db/t'",
     f"CREATE TABLE t (id INT) ENGINE=FEDERATED CONNECTION='mysql://fu:***@h:3306/db/t' {WITHHELD_MARK}", True),
    ("CREATE TABLE t (id INT) ENGINE=CONNECT TABLE_TYPE=MYSQL OPTION_LIST='user=u,password=pw9'",
     f"CREATE TABLE t (id INT) ENGINE=CONNECT TABLE_TYPE=MYSQL OPTION_LIST='user=u,password=***' {WITHHELD_MARK}",
     True),
    ("CLONE INSTANCE FROM 'u'@'h':3306 IDENTIFIED BY 'pw10'", f"CLONE INSTANCE FROM 'u'@'h':3306 IDENTIFIED BY {W}",
     True),
    # nothing secret: unchanged
    ("CREATE USER e IDENTIFIED BY PASSWORD '*ABC'", "CREATE USER e IDENTIFIED BY PASSWORD '*ABC'", False),
    ("CREATE USER e IDENTIFIED BY ''", "CREATE USER e IDENTIFIED BY ''", False),
    ("CREATE USER e IDENTIFIED VIA pam USING 'mariadb'", "CREATE USER e IDENTIFIED VIA pam USING 'mariadb'", False),
    ("CREATE USER e IDENTIFIED VIA unix_socket", "CREATE USER e IDENTIFIED VIA unix_socket", False),
    (f"SET PASSWORD FOR e = '{H('x')}'", f"SET PASSWORD FOR e = '{H('x')}'", False),
    ("ALTER USER e IDENTIFIED BY RANDOM PASSWORD", "ALTER USER e IDENTIFIED BY RANDOM PASSWORD", False),
    ("SELECT 'IDENTIFIED BY', 'pw'", "SELECT 'IDENTIFIED BY', 'pw'", False),
    ("UPDATE t SET password = 'not a credential statement'",
     "UPDATE t SET password = 'not a credential statement'", False),
    ("CREATE TABLE t (password VARCHAR(10), INDEX (password(5)))",
     "CREATE TABLE t (password VARCHAR(10), INDEX (password(5)))", False),
    ("CREATE TABLE t (id INT) CONNECTION='srv'", "CREATE TABLE t (id INT) CONNECTION='srv'", False),
    ("REPLACE INTO t VALUES ('pw')", "REPLACE INTO t VALUES ('pw')", False),
]


@pytest.mark.parametrize("sql, expected, unsafe", FORMS)
def test_each_form_is_rewritten(sql, expected, unsafe):
    r = redact_secrets(sql)
    assert r.sql == expected
    assert r.unsafe is unsafe
    assert r.changed is (expected != sql)
    for secret in ("pw1", "pw2", "pw3", "pw4", "pw5", "pw6", "pw7", "pw8", "pw9", "pw10"):
        assert secret not in r.sql or secret in expected


@pytest.mark.parametrize("sql, expected, unsafe", FORMS)
def test_rewriting_twice_changes_nothing_more(sql, expected, unsafe):
    again = redact_secrets(expected)
    assert again.sql == expected and not again.changed


def test_no_backslash_escapes_text_is_read_as_such():
    # lexes only with NO_BACKSLASH_ESCAPES: the password is  a\
    assert redact_secrets("CREATE USER a IDENTIFIED BY 'a\\'").sql == \
        f"CREATE USER a IDENTIFIED BY PASSWORD '{H(chr(97) + chr(92))}'"


def test_unscannable_text_is_withheld_whole():
    r = redact_secrets("CREATE USER a IDENTIFIED BY 'pw1 /* `")
    assert "pw1" not in r.sql and r.unsafe and r.changed


def test_hashes_match_mariadb():
    # SELECT PASSWORD(..), OLD_PASSWORD(..); CREATE USER .. VIA ed25519 USING PASSWORD('secret') on 10.11
    assert H("secret") == "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
    assert H("Pw5-secret") == "*65D799424AF446576E8872CFEB98D54D8261974F"
    assert H("é☃") == "*51570F8D8C564699F6180C931ADCD4584755AF81"
    assert old_password_hash("secret") == "428567f408994404"
    assert old_password_hash("a b\tc") == "7cd2b5942be28759"
    assert old_password_hash("é☃") == "2d41512705715153"
    assert ed25519_password_hash("secret") == "ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY"
    assert H("") == old_password_hash("") == ed25519_password_hash("") == ""


@pytest.mark.parametrize("text, expected", [
    ("error 1064: syntax error near 'pw1'' at line 1 in \"CREATE USER 'a'@'%' IDENTIFIED BY 'pw1'\"",
     "error 1064: syntax error near '***'' at line 1 in \"CREATE USER 'a'@'%' IDENTIFIED BY '***'\""),
    ("in 'CREATE USER \"a\" IDENTIFIED BY \\'pw1\\''", "in 'CREATE USER \"a\" IDENTIFIED BY \\'***\\''"),
    ("in 'CREATE USER a IDENTIFIED BY \\'pw1 (truncated", "in 'CREATE USER a IDENTIFIED BY \\'***"),
    ("SET PASSWORD = PASSWORD('pw2') and MASTER_PASSWORD='pw7'",
     "SET PASSWORD = PASSWORD('***') and MASTER_PASSWORD='***'"),
    ("mysql://u:pw9@h:3306/db password=pw8; pwd=pw7 {\"password\": \"pw6\"}",
     "mysql://u:***@h:3306/db password=***; pwd=*** {\"password\": \"***\"}"),
    (f"IDENTIFIED BY PASSWORD '{H('x')}'", f"IDENTIFIED BY PASSWORD '{H('x')}'"),
    ("gtid 0-1-5 offset 3: error 1062: Duplicate entry '1' for key 'PRIMARY'",
     "gtid 0-1-5 offset 3: error 1062: Duplicate entry '1' for key 'PRIMARY'"),
])
def test_text_redaction(text, expected):
    assert redact_text(text) == expected


def test_text_redaction_uses_the_statement_for_the_servers_echo():
    assert redact_text("error 1064: near 'hunter22' at line 1", "CREATE USER a IDENTIFIED BY 'hunter22'") == \
        "error 1064: near '***' at line 1"


def test_captured_event_has_no_clear_text_password():
    cap = TransactionCapture(last_gtid="0-1-1")
    commit = cap.on_success(StatementOutcome(
        sql="CREATE USER 'x'@'%' IDENTIFIED BY 'hunter2'", kind="unknown", tcl=None, unsafe=False,
        status_flags=0x0002, last_insert_id=0, gtid="0-1-2"))
    assert commit is not None
    assert "hunter2" not in commit.statements[0].sql
    assert H("hunter2") in commit.statements[0].sql


# ------------------------------------------------------------------------- property: never survives

TEMPLATES = [
    "CREATE USER 'u1'@'%' IDENTIFIED BY {q}",
    "ALTER USER u1 IDENTIFIED BY {q} PASSWORD EXPIRE NEVER",
    "GRANT SELECT ON *.* TO u1 IDENTIFIED BY {q} WITH GRANT OPTION",
    "SET PASSWORD FOR u1 = PASSWORD({q})",
    "SET PASSWORD = OLD_PASSWORD({q})",
    "SET PASSWORD FOR u1 = {q}",
    "CREATE USER u1 IDENTIFIED VIA ed25519 USING PASSWORD({q})",
    "CREATE USER u1 IDENTIFIED VIA mysql_native_password USING PASSWORD({q}) OR unix_socket",
    "CREATE USER u1 IDENTIFIED WITH mysql_native_password BY {q}",
    "CREATE USER u1 IDENTIFIED WITH caching_sha2_password BY {q}",
    "ALTER USER u1 IDENTIFIED BY 'new0' REPLACE {q}",
    "CHANGE MASTER TO MASTER_HOST='h', MASTER_PASSWORD={q}",
    "CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = {q}",
    "START SLAVE USER='u' PASSWORD={q}",
    "CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD {q})",
    "SELECT PASSWORD({q})",
]


def _quote(pw: str) -> str:
    return "'" + pw.replace("\\", "\\\\").replace("'", "''") + "'"


# a distinctive prefix: the generated password cannot occur in the statement's other text
passwords = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=24).map(
    lambda s: "Zq7~" + s)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pw=passwords, template=st.sampled_from(TEMPLATES))
def test_a_random_password_never_survives(pw, template):
    sql = template.format(q=_quote(pw))
    red = redact_secrets(sql)
    assert pw not in red.sql
    assert redact_secrets(red.sql).sql == red.sql
    # and in any text quoting the statement: a log line, an error with repr() or JSON of it, an echo
    server_echo = f"error 1064: You have an error in your SQL syntax near {_quote(pw)} at line 1"
    for text in (f"applying {sql}", f"in {sql!r}", f"in {sql[:40]!r}", orjson.dumps({"sql": sql}).decode()):
        assert pw not in redact_text(text), text
    assert pw not in redact_text(server_echo + f" in {sql!r}")
    assert pw not in redact_text(server_echo, sql)


url_passwords = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00@/'\"\\\n"), max_size=20).map(
    lambda s: "Zq7~" + s)


@settings(max_examples=150, deadline=None)
@given(pw=url_passwords)
def test_a_random_password_in_a_connection_url_never_survives(pw):
    sql = f"CREATE TABLE t (id INT) ENGINE=FEDERATED CONNECTION='mysql://fed_user:{pw}@h:3306/db/t'"
    red = redact_secrets(sql)
    assert pw not in red.sql and red.unsafe and red.sql.endswith(WITHHELD_MARK)
    assert redact_secrets(red.sql).sql == red.sql
    assert pw not in redact_text(f"error 1064 near '{pw}@h:3306/db/t'' in {sql!r}")
