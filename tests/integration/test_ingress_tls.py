"""TLS on both hops: clients may use TLS to the ingress (certificate from the config), and the
ingress uses TLS to the primary when the primary offers it (primary.tls = preferred)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import uuid

import pymysql
import pytest

from .conftest import read_topic, start_ingress, stop_ingress


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def tls_ingress(stack, cert, tmp_path_factory):
    ing = start_ingress(stack, tmp_path_factory.mktemp("tls-ingress"), DBMUX_INGRESS_TLS_CERT=str(cert[0]),
                        DBMUX_INGRESS_TLS_KEY=str(cert[1]), DBMUX_PRIMARY_TLS="preferred")
    yield ing
    stop_ingress(ing)


def _connect(ing, stack, **kw):
    p = stack.primary
    return pymysql.connect(host=ing.host, port=ing.port, user=p.user, password=p.password, autocommit=True, **kw)


def test_client_tls_and_upstream_tls(stack, tls_ingress, cert):
    conn = _connect(tls_ingress, stack, ssl={"ca": str(cert[0]), "check_hostname": False})
    try:
        assert isinstance(conn._sock, ssl.SSLSocket) and conn._sock.version().startswith("TLS")
        db = f"tls_{uuid.uuid4().hex[:8]}"
        with conn.cursor() as cur:
            # the session on the primary is the ingress's upstream connection: it is encrypted too
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
            assert cur.fetchone()[1].startswith("TLS")
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v MEDIUMTEXT)")
            cur.execute(f"INSERT INTO {db}.t VALUES (1, %s)", ("x" * 100_000,))  # many TLS records
            cur.execute(f"SELECT LENGTH(v) FROM {db}.t")
            assert cur.fetchone() == (100_000,)
    finally:
        conn.close()
    events = asyncio.run(read_topic(stack.kafka, tls_ingress.topic, min_count=3))
    assert any(s.sql.startswith(f"INSERT INTO {db}.t") for e in events for s in e.statements)


def test_plain_client_still_served_when_tls_is_offered(stack, tls_ingress):
    conn = _connect(tls_ingress, stack, ssl_disabled=True)
    try:
        assert not isinstance(conn._sock, ssl.SSLSocket)
        with conn.cursor() as cur:
            cur.execute("SELECT 6 * 7")
            assert cur.fetchone() == (42,)
    finally:
        conn.close()


def test_mariadb_cli_over_tls_equals_the_primary(stack, tls_ingress):
    def cli(port: int) -> subprocess.CompletedProcess:
        p = stack.primary
        return subprocess.run(["mariadb", "--ssl", "-h", "127.0.0.1", "-P", str(port), "-u", p.user, f"-p{p.password}",
                               "--batch", "-e", "SELECT 1 + 1, CURRENT_USER(); SHOW STATUS LIKE 'Ssl_cipher'"],
                              capture_output=True, text=True, timeout=30)

    via, direct = cli(tls_ingress.port), cli(stack.primary.port)
    assert via.returncode == direct.returncode == 0, via.stderr + direct.stderr
    assert via.stdout.splitlines()[:2] == direct.stdout.splitlines()[:2]
    assert "Ssl_cipher\t" in via.stdout and via.stdout.split("Ssl_cipher\t")[1].strip()  # encrypted upstream


def test_upstream_tls_can_be_disabled(stack, tmp_path):
    ing = start_ingress(stack, tmp_path, DBMUX_PRIMARY_TLS="disabled")
    try:
        conn = _connect(ing, stack)
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
            assert cur.fetchone()[1] == ""
        conn.close()
    finally:
        stop_ingress(ing)
