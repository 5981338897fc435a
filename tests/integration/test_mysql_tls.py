"""dbmux's own MySQL connections follow the TLS policy (dbmux.core.mysql_connect), against the real stack:
the primary offers TLS with a self-signed certificate, the replicas offer none."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import uuid
from pathlib import Path

import pymysql
import pytest

from dbmux.core.config import load_config
from dbmux.core.dsn import Dsn
from dbmux.core.mysql_connect import MySQLTlsError, connect_aiomysql, connect_pymysql

from .conftest import read_topic, run_dbmux, start_binlog_reader, stop_processes


def _with(dsn: Dsn, **params: str) -> Dsn:
    return dataclasses.replace(dsn, params=tuple(params.items()))


def _primary_cert(stack) -> Path:
    cert = stack.config.parent / "mariadb-primary" / "tls-cert.pem"
    assert cert.is_file(), f"the stack's primary certificate is missing: {cert}"
    return cert


def _cipher_pymysql(dsn: Dsn) -> str:
    conn = connect_pymysql(dsn, host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                           connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            return cur.fetchone()[1]
    finally:
        conn.close()


def _cipher_aiomysql(dsn: Dsn) -> str:
    async def main():
        conn = await connect_aiomysql(dsn, connect_timeout=10)
        try:
            async with conn.cursor() as cur:
                await cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                return (await cur.fetchone())[1]
        finally:
            conn.close()

    return asyncio.run(main())


@pytest.mark.parametrize("cipher", [_cipher_pymysql, _cipher_aiomysql], ids=["pymysql", "aiomysql"])
def test_policies_against_a_server_with_and_one_without_tls(stack, cipher):
    primary, replica, cert = stack.primary, stack.replicas[0], str(_primary_cert(stack))
    assert cipher(_with(primary, tls="required", tls_ca=cert))  # encrypted, certificate verified
    assert cipher(_with(primary, tls="preferred"))  # offered: used
    assert cipher(_with(primary, tls="disabled")) == ""
    assert cipher(replica) == ""  # no tls parameter: plain (target URLs)
    assert cipher(_with(replica, tls="preferred")) == ""  # not offered: plain
    with pytest.raises(MySQLTlsError, match="tls=required but the server does not offer TLS") as ei:
        cipher(_with(replica, tls="required"))
    assert replica.password not in str(ei.value) and f":{replica.port}" in str(ei.value)


@pytest.mark.parametrize("cipher", [_cipher_pymysql, _cipher_aiomysql], ids=["pymysql", "aiomysql"])
def test_a_certificate_not_signed_by_tls_ca_is_refused(stack, tmp_path, cipher):
    other_key, other_cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(other_key), "-out",
                    str(other_cert), "-days", "1", "-subj", "/CN=someone-else"], check=True, capture_output=True)
    with pytest.raises(MySQLTlsError, match="certificate is not verified by tls_ca") as ei:
        cipher(_with(stack.primary, tls="required", tls_ca=str(other_cert)))
    assert str(other_cert) in str(ei.value) and stack.primary.password not in str(ei.value)


def test_primary_section_sets_the_policy_of_dbmux_commands(stack, tmp_path):
    """primary.tls/tls_ca reach the commands' own connections to the primary: pointed at a server
    without TLS (a replica standing in as the primary), `required` makes the binlog reader (PyMySQL)
    stop with the clear error and exit 2, and `dbmux shardmap show` (aiomysql; the primary is optional
    there) say it and fall back to the config's map; against the real primary, verified with its
    certificate as tls_ca, the map is read from the primary without complaint."""
    replica = stack.replicas[0]

    def config(url: str, tls: str, ca: str = "", topic: str = "dbmux.tlstest.txn") -> Path:
        path = tmp_path / f"tls-{tls}-{len(list(tmp_path.iterdir()))}.toml"
        path.write_text(f"""
[kafka]
bootstrap = "{stack.kafka}"
topic = "{topic}"
[primary]
url = "{url}"
tls = "{tls}"
{f'tls_ca = "{ca}"' if ca else ''}
[shardmap]
shards = ["a"]
""")
        return path

    env = {k: v for k, v in os.environ.items() if not k.startswith("DBMUX_PRIMARY_")}  # the files' URLs count
    bad = config(replica.url(), "required")
    assert dict(load_config(bad, env).primary.dsn.params)["tls"] == "required"
    res = run_dbmux("binlog", "-c", str(bad), check=False, timeout=60, env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 2 and "tls=required but the server does not offer TLS" in out, out
    assert replica.password not in out
    res = run_dbmux("shardmap", "show", "-c", str(bad), check=False, timeout=60, env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "tls=required but the server does not offer TLS" in out, out

    good = config(stack.primary.url(), "required", str(_primary_cert(stack)))
    res = run_dbmux("shardmap", "show", "-c", str(good), check=False, timeout=60, env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "unreachable" not in out and "TLS" not in out, out

    # and the binlog reader streams over TLS, verified, end to end
    topic = f"dbmux.tls{uuid.uuid4().hex[:8]}.txn"
    db = f"tls_{uuid.uuid4().hex[:8]}"
    reader = start_binlog_reader(config(stack.primary.url(), "required", str(_primary_cert(stack)), topic),
                                 tmp_path / "binlog.log")
    p = stack.primary
    conn = pymysql.connect(host=p.host, port=p.port, user=p.user, password=p.password, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10))")
            cur.execute(f"INSERT INTO {db}.t VALUES (1, 'over tls')")
        events = asyncio.run(read_topic(stack.kafka, topic, min_count=3, timeout_s=60))
        rows = [r.after for ev in events for r in ev.rows if r.db == db]
        assert rows == [{"id": 1, "v": "over tls"}]
    finally:
        stop_processes([reader])
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        conn.close()
    assert "does not offer TLS" not in (tmp_path / "binlog.log").read_text()
