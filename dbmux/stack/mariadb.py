"""MariaDB servers of the local stack: a primary with binlog (ROW, FULL metadata, GTID) and replicas.

The replicas are independent servers without native replication: dbmux is their replication.
Users are (re)created by an ``--init-file`` at every start, with ``sql_log_bin=0`` so the
bootstrap never consumes GTIDs on the primary.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pymysql

from dbmux.stack.base import Service, require_binary, run_checked
from dbmux.stack.layout import APP_PASSWORD, APP_USER, REPL_PASSWORD, REPL_USER, Layout

_INSTALL = "apt-get install -y mariadb-server mariadb-client"
_SOCKET_MAX = 100  # sun_path is 108 bytes; keep a margin


class MariaDB(Service):
    def __init__(self, layout: Layout, name: str, port: int, server_id: int, *, primary: bool) -> None:
        super().__init__(layout)
        self.name = name
        self.port = port
        self.server_id = server_id
        self.primary = primary

    @property
    def datadir(self) -> Path:
        return self.dir / "data"

    @property
    def tmpdir(self) -> Path:
        # Private: concurrent servers sharing /tmp can collide on internal temporary table names.
        return self.dir / "tmp"

    @property
    def socket(self) -> str:
        path = str(self.dir / "mysqld.sock")
        if len(path) > _SOCKET_MAX:  # deep checkouts: a short, stable path instead
            path = f"/tmp/dbmux-{hashlib.sha1(path.encode()).hexdigest()[:12]}.sock"
        return path

    def check_installed(self) -> None:
        self._mariadbd = require_binary("mariadbd", _INSTALL)
        self._install_db = require_binary("mariadb-install-db", _INSTALL)

    @property
    def tls_files(self) -> tuple[Path, Path]:
        return self.dir / "tls-cert.pem", self.dir / "tls-key.pem"

    def _make_tls_cert(self) -> None:
        """A self-signed certificate so the primary offers TLS (the ingress uses it when offered)."""
        cert, key = self.tls_files
        if cert.exists() and key.exists():
            return
        openssl = require_binary("openssl", "apt-get install -y openssl")
        run_checked([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                     "-days", "3650", "-subj", f"/CN=dbmux-{self.name}"], f"TLS certificate for {self.name}",
                    log_path=self.log_path)

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmpdir.mkdir(exist_ok=True)
        if self.primary:
            self._make_tls_cert()
        (self.dir / "init.sql").write_text(self._init_sql())
        if (self.datadir / "mysql").is_dir():
            return
        argv = [self._install_db, "--no-defaults", f"--datadir={self.datadir}", f"--tmpdir={self.tmpdir}",
                "--auth-root-authentication-method=socket", "--skip-test-db"]
        if os.geteuid() == 0:
            argv.append("--user=root")
        run_checked(argv, f"mariadb-install-db for {self.name}", log_path=self.log_path)

    def _init_sql(self) -> str:
        lines = [
            "SET SESSION sql_log_bin = 0;",
            f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}';",
            f"ALTER USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}';",
            f"GRANT ALL PRIVILEGES ON *.* TO '{APP_USER}'@'%' WITH GRANT OPTION;",
        ]
        if self.primary:
            lines += [
                f"CREATE USER IF NOT EXISTS '{REPL_USER}'@'%' IDENTIFIED BY '{REPL_PASSWORD}';",
                f"ALTER USER '{REPL_USER}'@'%' IDENTIFIED BY '{REPL_PASSWORD}';",
                f"GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, SELECT, RELOAD "
                f"ON *.* TO '{REPL_USER}'@'%';",
            ]
        return "\n".join(lines) + "\n"

    def argv(self) -> list[str]:
        argv = [
            self._mariadbd, "--no-defaults",
            f"--datadir={self.datadir}", f"--tmpdir={self.tmpdir}", f"--port={self.port}", "--bind-address=127.0.0.1",
            f"--socket={self.socket}", f"--pid-file={self.dir / 'mariadbd.pid'}",
            f"--log-error={self.dir / 'error.log'}", f"--init-file={self.dir / 'init.sql'}",
            f"--server-id={self.server_id}", "--skip-name-resolve", "--max-connections=500",
            "--innodb-buffer-pool-size=128M", "--innodb-log-file-size=64M",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
            "--gtid-domain-id=0",
            # a development stack: no fsync per commit (like PostgreSQL's fsync=off here)
            "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
        ]
        if self.primary:
            cert, key = self.tls_files
            argv += [f"--ssl-cert={cert}", f"--ssl-key={key}"]
            argv += [
                f"--log-bin={self.datadir / 'mariadb-bin'}", "--binlog-format=ROW",
                "--binlog-row-image=FULL", "--binlog-row-metadata=FULL", "--gtid-strict-mode=ON",
                "--log-slave-updates=ON", "--max-binlog-size=256M",
            ]
        else:
            # row copies carry binary values hex-encoded: a replica needs more than twice the primary's
            # max_allowed_packet (16 MiB) to take every row the primary took (replicator/packet_limit.py)
            argv.append("--max-allowed-packet=1G")
        if os.geteuid() == 0:
            argv.append("--user=root")
        return argv

    async def probe(self) -> None:
        await asyncio.to_thread(self._probe)

    def _probe(self) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user=APP_USER, password=APP_PASSWORD,
                               connect_timeout=2)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
        finally:
            conn.close()
