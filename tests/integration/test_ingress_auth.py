"""Authentication is the primary's: plugins are relayed, COM_CHANGE_USER re-authenticates upstream."""

from __future__ import annotations

import subprocess
import uuid

import mysql.connector
import pymysql
import pytest

from dbmux.core.dsn import Dsn


def _admin(stack):
    p = stack.primary
    return pymysql.connect(host=p.host, port=p.port, user=p.user, password=p.password, autocommit=True)


@pytest.fixture(scope="module")
def other_user(stack):
    name, password = f"u{uuid.uuid4().hex[:8]}", "other-pw-1"
    conn = _admin(stack)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'")
        cur.execute(f"GRANT SELECT ON mysql.* TO '{name}'@'%'")
    yield name, password
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute(f"DROP USER '{name}'@'%'")
    conn.close()


def _change_user_flow(dsn: Dsn, user: str, password: str) -> list:
    out: list = []
    cnx = mysql.connector.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                  use_pure=True)
    try:
        cur = cnx.cursor()
        cur.execute("SELECT CURRENT_USER()")
        out.append(cur.fetchall())
        cnx.cmd_change_user(username=user, password=password, database="mysql")
        cur = cnx.cursor()
        cur.execute("SELECT CURRENT_USER(), DATABASE()")
        out.append(cur.fetchall())
        try:
            cnx.cmd_change_user(username=user, password="wrong", database="mysql")
        except mysql.connector.Error as exc:
            out.append((exc.errno, exc.sqlstate, exc.msg))
    finally:
        try:
            cnx.close()
        except mysql.connector.Error:
            pass
    return out


def test_change_user_behaves_like_the_primary(stack, ingress, other_user):
    user, password = other_user
    via = Dsn("mysql", ingress.host, ingress.port, stack.primary.user, stack.primary.password)
    expected = _change_user_flow(stack.primary, user, password)
    assert expected[1][0][0].startswith(user + "@")
    assert _change_user_flow(via, user, password) == expected


@pytest.fixture(scope="module")
def ed25519_user(stack):
    name, password = f"e{uuid.uuid4().hex[:8]}", "ed-pw-2"
    conn = _admin(stack)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute("SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'")
        if cur.fetchone()[0] == 0:
            cur.execute("INSTALL SONAME 'auth_ed25519'")
        cur.execute(f"CREATE USER '{name}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{password}')")
    yield name, password
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute(f"DROP USER '{name}'@'%'")
    conn.close()


@pytest.mark.parametrize("good", [True, False])
def test_ed25519_through_the_ingress_equals_the_primary(stack, ingress, ed25519_user, good):
    user, password = ed25519_user

    def cli(port: int):
        return subprocess.run(["mariadb", "-h", "127.0.0.1", "-P", str(port), "-u", user,
                               f"-p{password if good else 'nope'}", "--batch", "-e",
                               "SELECT CURRENT_USER(), 1 + 1"], capture_output=True, text=True, timeout=30)

    direct, via = cli(stack.primary.port), cli(ingress.port)
    assert (via.returncode, via.stdout, via.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    assert (direct.returncode == 0) is good
