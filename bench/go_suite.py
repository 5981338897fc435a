"""go-sql-driver/mysql's own test suite (Go's most used MySQL driver) for bench/client_suites.py.

The module's source comes from the Go module proxy (``go mod download``, its zip holds the tests) into
the bench's work directory, is built once into a test binary (``go test -c``), and runs against a
server named by ``MYSQL_TEST_ADDR`` etc. (the suite's own variables) with ``-test.v``; the ``--- PASS``,
``--- FAIL`` and ``--- SKIP`` lines (sub-tests included) are counted.

Skipped by the bench: ``TestConnectorReturnsTimeout`` dials 1.1.1.1:1234 expecting a connect timeout; in
this sandbox that dial does not time out and the driver then dereferences a nil logger (a crash of the
whole test binary, directly against the primary too).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

MODULE = "github.com/go-sql-driver/mysql"
VERSION = "v1.11.0"
SKIP = "TestConnectorReturnsTimeout"
_RESULT = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+)")
_MESSAGE = re.compile(r"^\s+\w+_test\.go:\d+: (.*)")


def go_binary() -> str | None:
    return shutil.which("go") or (str(Path("/usr/local/go/bin/go")) if Path("/usr/local/go/bin/go").exists() else None)


def build(work: Path) -> Path:
    """The suite's test binary, built once under ``work``."""
    binary = work / f"go-mysql-{VERSION}.test"
    if binary.exists():
        return binary
    go = go_binary()
    if go is None:
        raise FileNotFoundError("go (https://go.dev/dl/, or apt-get install golang-go)")
    env = {**os.environ, "GOPATH": str(work / "gopath"), "GOFLAGS": "-mod=mod"}
    info = json.loads(subprocess.run([go, "mod", "download", "-json", f"{MODULE}@{VERSION}"], env=env, check=True,
                                     capture_output=True, text=True, timeout=600).stdout)
    tree = work / f"go-mysql-{VERSION}"
    if not tree.exists():
        shutil.copytree(info["Dir"], tree)
        for p in [tree, *tree.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)  # the module cache is read-only
    subprocess.run([go, "test", "-c", "-o", str(binary), "."], cwd=tree, env=env, check=True, timeout=900)
    return binary


def run(binary: Path, host: str, port: int, user: str, password: str, database: str, log: Path,
        timeout: float) -> tuple[dict[str, int], dict[str, str], float, str]:
    """Run the suite; (counts, failed test -> first message, seconds, note)."""
    env = {**os.environ, "MYSQL_TEST_USER": user, "MYSQL_TEST_PASS": password, "MYSQL_TEST_PROT": "tcp",
           "MYSQL_TEST_ADDR": f"{host}:{port}", "MYSQL_TEST_DBNAME": database}
    t0 = time.monotonic()
    note = ""
    with log.open("w") as f:
        try:
            subprocess.run([str(binary), "-test.v", f"-test.timeout={int(timeout)}s", "-test.skip", SKIP],
                           cwd=binary.parent, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            note = f"timed out after {timeout:.0f} s"
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    failed: dict[str, str] = {}
    last_message = ""
    for line in log.read_text(errors="replace").splitlines():
        if m := _MESSAGE.match(line):
            last_message = m.group(1)
        elif m := _RESULT.match(line):
            kind = {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}[m.group(1)]
            counts[kind] += 1
            if kind == "failed":
                failed[m.group(2)] = last_message[:300]
            last_message = ""
        elif line.startswith(("panic:", "FAIL\t")) and not note:
            note = line[:200]
    return counts, failed, time.monotonic() - t0, note
