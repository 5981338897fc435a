"""node-mysql2's own test suite (Node.js's most used MySQL driver) for bench/client_suites.py.

Its tests are not in the npm package: they come from a git repository of sidorares/node-mysql2
(``--mysql2-git``, e.g. the one the project's ``fetch`` tool mirrors), exported under the bench's work
directory; ``npm install`` fetches its dev dependencies once (the ``poku`` runner among them). The suite
reads ``MYSQL_HOST`` etc. (``CI=1``: it takes ``MYSQL_PASSWORD`` then) and runs every test file; the
``PASS``/``FAIL``/``SKIP`` line of each file is counted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

_LINE = re.compile(r"^\s*(PASS|FAIL|SKIP)\s+(test/\S+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tree(work: Path, git_dir: Path) -> tuple[Path, str]:
    """The suite's tree with its dependencies installed, and the driver's version."""
    out = work / "node-mysql2"
    if not (out / "node_modules" / ".bin" / "poku").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError("npm (apt-get install npm)")
        if not (git_dir / "HEAD").exists() and not (git_dir / ".git").exists():
            raise FileNotFoundError(f"a git repository of node-mysql2 at {git_dir} (--mysql2-git)")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        gd = git_dir if (git_dir / "HEAD").exists() else git_dir / ".git"
        archive = subprocess.run(["git", f"--git-dir={gd}", "archive", "HEAD"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=out, check=True, timeout=900,
                       capture_output=True)
    return out, json.loads((out / "package.json").read_text())["version"]


def run(suite: Path, host: str, port: int, user: str, password: str, database: str, log: Path,
        timeout: float) -> tuple[dict[str, int], dict[str, str], float, str]:
    """Run the suite; (counts, failed file -> "", seconds, note)."""
    env = {**os.environ, "CI": "1", "MYSQL_HOST": host, "MYSQL_PORT": str(port), "MYSQL_USER": user,
           "MYSQL_PASSWORD": password, "MYSQL_DATABASE": database}
    t0 = time.monotonic()
    note = ""
    with log.open("w") as f:
        try:
            subprocess.run([str(suite / "node_modules" / ".bin" / "poku")], cwd=suite, env=env, stdout=f,
                           stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            note = f"timed out after {timeout:.0f} s"
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    failed: dict[str, str] = {}
    for line in log.read_text(errors="replace").splitlines():
        if m := _LINE.match(_ANSI.sub("", line)):
            kind = {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}[m.group(1)]
            counts[kind] += 1
            if kind == "failed":
                failed[m.group(2)] = ""
    return counts, failed, time.monotonic() - t0, note
