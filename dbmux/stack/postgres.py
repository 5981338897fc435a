"""PostgreSQL servers of the local stack (shard targets): initdb + the postgres daemon.

PostgreSQL refuses to run as root, so when the stack runs as root the servers run as the
``postgres`` system user (created by Debian's postgresql package). If that user cannot reach the
stack directory (e.g. a checkout under /root), the data directory goes under /var/tmp instead
and ``<stack>/<name>/data`` is a symlink to it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import asyncpg

from dbmux.core.errors import MissingDependency, StackError
from dbmux.stack.base import Service, run_checked
from dbmux.stack.layout import APP_PASSWORD, APP_USER, PG_DATABASE, Layout

_INSTALL = "apt-get install -y postgresql"


def pg_bindir() -> Path:
    """Newest Debian PostgreSQL server binaries, else whatever ``pg_config --bindir`` says."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip())
        if (bindir / "postgres").exists():
            return bindir
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise MissingDependency("PostgreSQL server binaries (postgres, initdb)", _INSTALL)


class Postgres(Service):
    def __init__(self, layout: Layout, name: str, port: int) -> None:
        super().__init__(layout)
        self.name = name
        self.port = port

    @property
    def user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    @property
    def datadir(self) -> Path:
        return self.dir / "data"

    @property
    def marker(self) -> str:
        # the daemon sees the real data directory (behind the symlink when one was needed)
        return str(self._real_datadir())

    def check_installed(self) -> None:
        self._bindir = pg_bindir()
        if self.user:
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                raise MissingDependency("the 'postgres' system user (running as root)", _INSTALL) from None

    def argv(self) -> list[str]:
        return [str(self._bindir / "postgres"), "-D", str(self._real_datadir()), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self._real_datadir()}",
                "-c", "max_connections=200", "-c", "shared_buffers=64MB", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", f"cluster_name=dbmux-{self.name}"]

    def _real_datadir(self) -> Path:
        return self.datadir.resolve() if self.datadir.is_symlink() else self.datadir

    def _reachable_by_user(self, path: Path) -> bool:
        if not self.user:
            return True
        return subprocess.run(["test", "-x", str(path)], user=self.user).returncode == 0

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.datadir.exists() and (self._real_datadir() / "PG_VERSION").exists():
            return
        self._remove_datadir()  # no PG_VERSION: nothing, or an interrupted initdb
        if self.user and not self._reachable_by_user(self.dir):
            real = Path("/var/tmp") / f"dbmux-pg-{hashlib.sha1(str(self.dir).encode()).hexdigest()[:12]}"
            shutil.rmtree(real, ignore_errors=True)
            real.mkdir(mode=0o700, parents=True)
            self.datadir.symlink_to(real)
        else:
            self.datadir.mkdir(mode=0o700)
        target = self._real_datadir()
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(target, pw.pw_uid, pw.pw_gid)
        pwfile = target.with_name(target.name + ".pwfile")  # initdb wants an empty data dir
        pwfile.write_text(APP_PASSWORD + "\n")
        pwfile.chmod(0o600)
        if self.user:
            os.chown(pwfile, pwd.getpwnam(self.user).pw_uid, -1)
        try:
            run_checked([str(self._bindir / "initdb"), "-D", str(target), "-U", APP_USER,
                         f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                         "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                        f"initdb for {self.name}", user=self.user, log_path=self.log_path)
        finally:
            pwfile.unlink(missing_ok=True)

    def purge(self) -> None:
        self._remove_datadir()
        super().purge()

    def _remove_datadir(self) -> None:
        if self.datadir.is_symlink():
            shutil.rmtree(self.datadir.resolve(), ignore_errors=True)
            self.datadir.unlink()
        elif self.datadir.exists():
            shutil.rmtree(self.datadir)

    async def probe(self) -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user=APP_USER, password=APP_PASSWORD,
                                     database="postgres", timeout=2)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_DATABASE)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        finally:
            await conn.close()
        if not (self._real_datadir() / "PG_VERSION").exists():
            raise StackError(f"{self.name}: data directory vanished")
