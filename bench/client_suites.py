#!/usr/bin/env python3
"""MySQL client libraries' own test suites through the ingress and directly against the primary
(issue 12: "at least one MySQL client library's own test suite through the ingress, report pass/fail
against direct"; issue 20: "an ORM's own test suite run through the ingress leaves every target equal
to the primary").

Usage (from the repository root, local stack up; ``DBMUX_STACK_DIR`` selects another stack)::

    .venv/bin/python bench/client_suites.py [--suites pymysql,sqlalchemy,go-mysql,node-mysql2]
        [--modes ingress,direct]
        [--sqla-paths test/orm,test/sql,test/dialect/mysql] [--sqla-args=--backend-only]
        [--reset purge|none] [--no-results]

Each (suite, mode) is one phase: the stack is purged and started again on its recorded ports
(``--reset purge``, the default: it deletes the stack's data, so give the bench a stack of its own),
``dbmux up`` runs the whole pipeline (the stack's generated config: both MariaDB replicas, both
PostgreSQL shard targets), the suite runs against the ingress port or the primary port, then the
bench waits (``--converge-timeout``) for every target to reach the primary's GTID position
(``dbmux status``), runs ``dbmux verify`` and compares ``CHECKSUM TABLE`` of every table of the
suite's databases on the primary and both replicas. Direct runs exercise the binlog reader's row
form, ingress runs the statement form (and the row form for what the ingress flags unsafe).

The suites and their sources (same versions as the lock's, run with a venv of their own, ``--suites-venv``,
created with pytest and PyMySQL when missing; nothing is installed into ``.venv``):

- **PyMySQL**: the library from its PyPI sdist; its tests (``pymysql/tests``) are not in the sdist
  (only ``tests/test_auth.py``, which needs MySQL 8 accounts), so they come from a PyMySQL git
  checkout, ``--pymysql-git`` (``git archive HEAD pymysql/tests``), configured by the
  ``databases.json`` the suite reads.
- **SQLAlchemy**: the sdist (it has ``test/``), run from its tree with ``--dburi
  mysql+pymysql://...``; the MySQL dialect's ``test_schema``/``test_schema_2`` databases are created first.
- **go-mysql**: go-sql-driver/mysql, Go's most used driver, its own tests from the Go module proxy built
  into a test binary (``bench/go_suite.py``; needs ``go``), database ``go_mysql_<mode>``.
- **node-mysql2**: Node.js's most used driver, its tests from a git repository (``--mysql2-git``) run by
  their own runner (``bench/node_suite.py``; needs ``npm``), database ``node_mysql2_<mode>``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's own modules (run as bench/<script>.py)

import go_suite  # noqa: E402
import node_suite  # noqa: E402
from harness.environment import REPO, free_port, loadavg, run_meta, stack_dir, stack_env  # noqa: E402
from harness.errors import BenchError, Prereq  # noqa: E402
from harness.pipeline import dbmux_argv, env_without_dbmux  # noqa: E402
from harness.processes import PY, Proc, sigterm_as_interrupt, wait_mysql_greeting  # noqa: E402
from harness.results import command_line, report_head, run_and_publish  # noqa: E402

from dbmux.core.dsn import Dsn  # noqa: E402

SUITES = ("pymysql", "sqlalchemy", "go-mysql", "node-mysql2")
OTHER_LANGUAGES = {"go-mysql": go_suite.run, "node-mysql2": node_suite.run}
SYSTEM_DBS = {"mysql", "information_schema", "performance_schema", "sys", "dbmux_meta"}
_HALTED = re.compile(r"\bhalted\b")


@dataclass
class SuiteResult:
    """One suite run's outcome, from its JUnit XML: counts and each failed/errored test's first message line."""

    counts: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    note: str = ""


@dataclass
class Phase:
    suite: str
    mode: str
    result: SuiteResult = field(default_factory=SuiteResult)
    status: str = ""
    converged: bool = False
    converge_s: float = 0.0
    verify_rc: int | None = None
    verify_tail: str = ""
    checksum_diffs: list[str] = field(default_factory=list)
    tables_compared: int = 0
    pipeline_problems: str = ""
    reads: str = ""  # --ingress-reads replicas: reads served per backend, fallbacks per reason


# ---- sources ---------------------------------------------------------------------------------------

def sdist(work: Path, name: str) -> Path:
    """The PyPI sdist of ``name`` at the version in .venv (the lock's), extracted under ``work``."""
    version = metadata.version(name)
    dl = work / "sdists"
    dl.mkdir(parents=True, exist_ok=True)
    found = [p for p in dl.glob("*.tar.gz") if p.name.lower().startswith(f"{name.lower()}-{version}")]
    if not found:
        subprocess.run([PY, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        f"{name}=={version}", "-d", str(dl)], check=True, timeout=600)
        found = [p for p in dl.glob("*.tar.gz") if p.name.lower().startswith(f"{name.lower()}-{version}")]
    if not found:
        raise BenchError(f"no sdist of {name}=={version} downloaded into {dl}")
    tree = work / f"{name.lower()}-{version}"
    if not tree.exists():
        with tarfile.open(found[0]) as tf:
            tf.extractall(work, filter="data")
        extracted = work / found[0].name.removesuffix(".tar.gz")
        if extracted != tree:
            extracted.rename(tree)
    return tree


def suites_venv(path: Path) -> Path:
    """The suites' own venv (pytest, PyMySQL at the lock's version, what SQLAlchemy's tests import)."""
    py = path / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable if not Path("/usr/bin/python3").exists() else "/usr/bin/python3",
                        "-m", "venv", str(path)], check=True)
    need = [f"pymysql=={metadata.version('pymysql')}", "pytest", "typing_extensions", "greenlet"]
    subprocess.run([str(py), "-m", "pip", "install", "-q", *need], check=True, timeout=900)
    return py


def pymysql_tree(work: Path, git_dir: Path) -> Path:
    """The PyMySQL sdist's library with ``pymysql/tests`` from a git checkout laid over it."""
    tree = sdist(work, "PyMySQL")
    if not (tree / "pymysql" / "tests" / "base.py").exists():
        if not (git_dir / "HEAD").exists() and not (git_dir / ".git").exists():
            raise Prereq(f"--pymysql-git {git_dir} is not a git repository of PyMySQL (its tests are not in "
                         "the sdist); clone https://github.com/PyMySQL/PyMySQL and pass its path")
        archive = subprocess.run(["git", f"--git-dir={git_dir if (git_dir / 'HEAD').exists() else git_dir / '.git'}",
                                  "archive", "HEAD", "pymysql/tests"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


# ---- the stack and the pipeline --------------------------------------------------------------------

def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "dbmux.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env_without_dbmux())


def reset_stack(root: Path) -> None:
    """Purge the stack and start it again on the ports recorded in its stack.json."""
    state = json.loads((root / "stack.json").read_text())
    ports = [a for k, v in state.get("ports", {}).items() for a in (f"--{k.removesuffix('_port').replace('_', '-')}"
                                                                     f"-port", str(v))]
    down = cli("stack", "down", "--dir", str(root), "--purge", timeout=180)
    if down.returncode != 0:
        raise BenchError(f"stack down --purge failed:\n{down.stdout}{down.stderr}")
    up = cli("stack", "up", "--dir", str(root), "--kafka-brokers", str(state.get("kafka_brokers", 1)), *ports,
             timeout=600)
    if up.returncode != 0:
        raise BenchError(f"stack up failed:\n{up.stdout}{up.stderr}")


def mysql(dsn: Dsn, database: str | None = None):
    import pymysql

    return pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password, database=database,
                           autocommit=True)


def create_databases(dsn: Dsn, names: list[str]) -> None:
    conn = mysql(dsn)
    with conn.cursor() as cur:
        for n in names:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{n}` CHARACTER SET utf8mb4")
    conn.close()


def wait_converged(config: str, timeout: float) -> tuple[bool, str, float]:
    """Poll ``dbmux status`` until every target is caught up (exit 0), one halted, or ``timeout``."""
    t0 = time.monotonic()
    out = ""
    while time.monotonic() - t0 < timeout:
        st = cli("status", "-c", config, timeout=120)
        out = st.stdout.strip() or st.stderr.strip()
        if st.returncode == 0:
            return True, out, time.monotonic() - t0
        if _HALTED.search(out) and time.monotonic() - t0 > 20:
            break  # a halted target does not come back; give the others a little time, then stop waiting
        time.sleep(3)
    return False, out, time.monotonic() - t0


def checksums(dsn: Dsn, dbs: list[str]) -> dict[str, int | None]:
    conn = mysql(dsn)
    out: dict[str, int | None] = {}
    with conn.cursor() as cur:
        for db in dbs:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                        "AND table_type = 'BASE TABLE'", (db,))
            for (t,) in cur.fetchall():
                cur.execute(f"CHECKSUM TABLE `{db}`.`{t}`")
                row = cur.fetchone()
                out[f"{db}.{t}"] = row[1] if row else None
    conn.close()
    return out


def suite_dbs(dsn: Dsn) -> list[str]:
    conn = mysql(dsn)
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        dbs = [r[0] for r in cur.fetchall() if r[0] not in SYSTEM_DBS]
    conn.close()
    return dbs


def compare_checksums(env: dict[str, str], phase: Phase) -> None:
    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    dbs = suite_dbs(primary)
    want = checksums(primary, dbs)
    seen = set(want)
    for i, url in enumerate(u for u in env["DBMUX_REPLICA_URLS"].split(",") if u):
        got = checksums(Dsn.parse(url), dbs)
        seen |= set(got)
        for t in sorted(set(want) | set(got)):
            if want.get(t, "missing") != got.get(t, "missing"):
                phase.checksum_diffs.append(f"replica{i + 1} {t}: primary {want.get(t, 'missing')}, "
                                            f"replica {got.get(t, 'missing')}")
    phase.tables_compared = len(seen)  # the primary's and the replicas' (a table the primary dropped may remain)


# ---- the suites ------------------------------------------------------------------------------------

def parse_junit(path: Path) -> SuiteResult:
    res = SuiteResult(counts={"passed": 0, "failed": 0, "error": 0, "skipped": 0})
    if not path.exists():
        res.note = "no JUnit XML written"
        return res
    for tc in ET.parse(path).getroot().iter("testcase"):
        name = f"{tc.get('classname', '')}::{tc.get('name', '')}"
        kind = "passed"
        for ch in tc:
            if ch.tag in ("failure", "error"):
                kind = "failed" if ch.tag == "failure" else "error"
                msg = (ch.get("message") or ch.text or "").strip().splitlines()
                res.failed[name] = (msg[0] if msg else "")[:300]
                break
            if ch.tag == "skipped":
                kind = "skipped"
        res.counts[kind] += 1
    return res


def run_pytest(py: Path, cwd: Path, args: list[str], xml: Path, log: Path, timeout: float) -> SuiteResult:
    xml.unlink(missing_ok=True)
    t0 = time.monotonic()
    with log.open("w") as f:
        try:
            subprocess.run([str(py), "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", f"--junitxml={xml}",
                            *args], cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
            note = ""
        except subprocess.TimeoutExpired:
            note = f"timed out after {timeout:.0f} s"
    res = parse_junit(xml)
    res.seconds, res.note = time.monotonic() - t0, note or res.note
    return res


def run_pymysql(py: Path, tree: Path, dsn: Dsn, mode: str, work: Path, timeout: float) -> SuiteResult:
    dbs = [f"pymysql_{mode}1", f"pymysql_{mode}2"]
    create_databases(dsn, dbs)
    conf = [{"host": dsn.host, "port": dsn.port, "user": dsn.user, "password": dsn.password, "database": dbs[0],
             "use_unicode": True, "local_infile": True},
            {"host": dsn.host, "port": dsn.port, "user": dsn.user, "password": dsn.password, "database": dbs[1]}]
    (tree / "pymysql" / "tests" / "databases.json").write_text(json.dumps(conf))
    return run_pytest(py, tree, ["pymysql/tests"], work / f"pymysql-{mode}.xml", work / f"pymysql-{mode}.log",
                      timeout)


def run_sqlalchemy(py: Path, tree: Path, dsn: Dsn, mode: str, work: Path, paths: list[str],
                   timeout: float) -> SuiteResult:
    db = f"sqla_{mode}"
    create_databases(dsn, [db, "test_schema", "test_schema_2"])
    uri = f"mysql+pymysql://{dsn.user}:{dsn.password}@{dsn.host}:{dsn.port}/{db}?charset=utf8mb4"
    return run_pytest(py, tree, [*paths, "--dburi", uri, "--maxfail=1000000"], work / f"sqlalchemy-{mode}.xml",
                      work / f"sqlalchemy-{mode}.log", timeout)


# ---- one phase -------------------------------------------------------------------------------------

def pipeline_problems(log: Path, limit: int = 25) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    bad = [ln for ln in lines if re.search(r"HALTED|Traceback| ERROR dbmux|exited \d", ln)]
    return "\n".join(bad[:limit] + ([f"... ({len(bad)} lines, full log {log})"] if len(bad) > limit else []))


def run_phase(args: argparse.Namespace, phase: Phase, py: Path, trees: dict[str, Path], work: Path) -> None:
    if args.reset == "purge":
        print(f"[{phase.suite}/{phase.mode}] purging and restarting the stack in {stack_dir()}", flush=True)
        reset_stack(stack_dir())
    env = stack_env()
    config = env["DBMUX_CONFIG"]
    up_env = {"PYTHONUNBUFFERED": "1"}
    metrics_port = 0
    if args.ingress_reads != "primary" or args.cache_mib:
        metrics_port = free_port()
        up_env["DBMUX_INGRESS_METRICS_PORT"] = str(metrics_port)
    if args.ingress_reads != "primary":  # the ingress routes reads to the replicas
        up_env.update({"DBMUX_INGRESS_READS": "replicas", "DBMUX_INGRESS_READ_CONSISTENCY": args.read_consistency})
    if args.cache_mib:  # the ingress answers repeated reads from its result cache
        up_env["DBMUX_INGRESS_CACHE_BYTES"] = str(args.cache_mib << 20)
    up = Proc("dbmux up", dbmux_argv("up", "-c", config), work / f"up-{phase.suite}-{phase.mode}.log",
              env=env_without_dbmux(up_env))
    try:
        wait_mysql_greeting(Dsn.parse(env["DBMUX_INGRESS_URL"]).port, up, timeout=120)
        time.sleep(5)  # the binlog reader and the replicators start alongside
        url = env["DBMUX_INGRESS_URL"] if phase.mode == "ingress" else env["DBMUX_PRIMARY_URL"]
        dsn = Dsn.parse(url)
        print(f"[{phase.suite}/{phase.mode}] running the suite against {dsn.host}:{dsn.port}", flush=True)
        if phase.suite == "pymysql":
            phase.result = run_pymysql(py, trees["pymysql"], dsn, phase.mode, work, args.suite_timeout)
        elif phase.suite in OTHER_LANGUAGES:  # a driver in another language: its own runner, its own database
            db = f"{phase.suite.replace('-', '_')}_{phase.mode}"
            create_databases(dsn, [db])
            counts, failed, seconds, note = OTHER_LANGUAGES[phase.suite](
                trees[phase.suite], dsn.host, dsn.port, dsn.user, dsn.password, db,
                work / f"{phase.suite}-{phase.mode}.log", args.suite_timeout)
            phase.result = SuiteResult(counts, failed, seconds, note)
        else:
            phase.result = run_sqlalchemy(py, trees["sqlalchemy"], dsn, phase.mode, work,
                                          [*args.sqla_paths.split(","), *args.sqla_args.split()], args.suite_timeout)
        if metrics_port and phase.mode == "ingress":
            phase.reads = read_counts(metrics_port)
        print(f"[{phase.suite}/{phase.mode}] {phase.result.counts} in {phase.result.seconds:.0f} s; "
              f"{phase.reads + '; ' if phase.reads else ''}waiting for the targets", flush=True)
        phase.converged, phase.status, phase.converge_s = wait_converged(config, args.converge_timeout)
        ver = cli("verify", "-c", config, "--wait", "30", "--details", timeout=1800)
        phase.verify_rc = ver.returncode
        phase.verify_tail = "\n".join((ver.stdout + ver.stderr).strip().splitlines()[-args.verify_lines:])
        compare_checksums(env, phase)
    finally:
        up.stop(timeout=40)
        phase.pipeline_problems = pipeline_problems(up.log_path)


def read_counts(port: int) -> str:
    """The routing ingress's reads per backend and fallbacks per reason (its Prometheus counters)."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError as exc:
        return f"reads: metrics unreadable ({exc})"
    found = re.findall(r'^dbmux_ingress_(reads|read_fallbacks|cache_lookups|cache_invalidations)_total'
                       r'\{(?:backend|reason|result|scope)="([^"]+)"\} (\S+)$', body, re.MULTILINE)

    def listed(which: str) -> str:
        return ", ".join(f"{k} {float(v):,.0f}" for kind, k, v in found if kind == which)

    out = []
    if listed("reads"):
        out.append(f"reads: {listed('reads')}; to the primary because: {listed('read_fallbacks') or '-'}")
    if listed("cache_lookups"):
        out.append(f"result cache lookups: {listed('cache_lookups')}; invalidations: "
                   f"{listed('cache_invalidations') or '-'}")
    return "; ".join(out) or "no reads counted"


# ---- the report ------------------------------------------------------------------------------------

def _counts(r: SuiteResult) -> str:
    c = r.counts
    s = (f"{c.get('passed', 0)} passed, {c.get('failed', 0)} failed, {c.get('error', 0)} errors, "
         f"{c.get('skipped', 0)} skipped ({r.seconds:.0f} s)")
    return s + (f" — {r.note}" if r.note else "")


def _short(name: str) -> str:
    return name.split("test.", 1)[-1] if name.startswith("test.") else name


def report(args: argparse.Namespace, meta: dict, phases: list[Phase], versions: dict[str, str]) -> str:
    lines = report_head("bench/client_suites.py: client libraries' own test suites, ingress vs direct", meta,
                        command_line("client_suites.py"))
    lines += [f"- versions: PyMySQL {versions.get('pymysql', '-')}, SQLAlchemy {versions.get('sqlalchemy', '-')} "
              f"(MySQL dialect on PyMySQL; tests: {args.sqla_paths} {args.sqla_args}), go-sql-driver/mysql "
              f"{versions.get('go-mysql', '-')} (all its tests but {go_suite.SKIP}: see bench/go_suite.py), "
              f"node-mysql2 {versions.get('node-mysql2', '-')} (test files); "
              f"stack reset between phases: {args.reset}",
              "- targets: the stack's generated config (replica1, replica2: MariaDB; shard_a, shard_b: PostgreSQL)",
              ""]
    lines += ["| suite | mode | tests | targets caught up | dbmux verify | CHECKSUM TABLE (replicas) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for p in phases:
        verify = {0: "PASS", None: "-"}.get(p.verify_rc, f"FAIL (exit {p.verify_rc})")
        chk = f"{p.tables_compared} tables, " + (f"{len(p.checksum_diffs)} differ" if p.checksum_diffs else "equal")
        conv = f"yes ({p.converge_s:.0f} s)" if p.converged else "NO"
        lines.append(f"| {p.suite} | {p.mode} | {_counts(p.result)} | {conv} | {verify} | {chk} |")
    lines.append("")
    lines += [f"- {p.suite} / {p.mode}, ingress.reads = replicas: {p.reads}" for p in phases if p.reads]
    by_suite: dict[str, dict[str, Phase]] = {}
    for p in phases:
        by_suite.setdefault(p.suite, {})[p.mode] = p
    for suite, modes in by_suite.items():
        if "ingress" in modes and "direct" in modes:
            ing, dr = modes["ingress"].result.failed, modes["direct"].result.failed
            only = sorted(set(ing) - set(dr))
            lines.append(f"**{suite}: {len(only)} test(s) fail only through the ingress**"
                         + (f", {len(set(dr) - set(ing))} only directly" if set(dr) - set(ing) else "")
                         + (":" if only else "."))
            lines += ["", "```", *[f"{_short(n)}: {ing[n]}" for n in only[:args.list_limit]],
                      *([f"... {len(only) - args.list_limit} more"] if len(only) > args.list_limit else []),
                      "```"] if only else []
            lines.append("")
    for p in phases:
        if p.converged and p.verify_rc == 0 and not p.checksum_diffs:
            continue
        lines += [f"#### {p.suite} / {p.mode}: replication", "", "```", p.status, "```", ""]
        if p.verify_tail:
            lines += ["dbmux verify (last lines):", "", "```", p.verify_tail, "```", ""]
        if p.checksum_diffs:
            lines += ["CHECKSUM TABLE differences:", "", "```", *p.checksum_diffs[:40], "```", ""]
        if p.pipeline_problems:
            lines += ["dbmux up log (halts, errors):", "", "```", p.pipeline_problems, "```", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> str:
    sigterm_as_interrupt()
    suites = [s for s in args.suites.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    if set(suites) - set(SUITES) or set(modes) - {"ingress", "direct"}:
        raise Prereq(f"--suites from {','.join(SUITES)}, --modes from ingress,direct")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    stack_env()  # the stack is there (Prereq otherwise)
    if "pymysql" in suites and shutil.which("git") is None:
        raise Prereq("git is needed (PyMySQL's tests come from a git repository)")
    py = suites_venv(Path(args.suites_venv)) if {"pymysql", "sqlalchemy"} & set(suites) else Path(PY)
    trees: dict[str, Path] = {}
    versions: dict[str, str] = {}
    if "pymysql" in suites:
        trees["pymysql"] = pymysql_tree(work, Path(args.pymysql_git))
        versions["pymysql"] = metadata.version("pymysql")
    if "sqlalchemy" in suites:
        trees["sqlalchemy"] = sdist(work, "SQLAlchemy")
        versions["sqlalchemy"] = metadata.version("sqlalchemy")
    try:
        if "go-mysql" in suites:
            trees["go-mysql"], versions["go-mysql"] = go_suite.build(work), go_suite.VERSION
        if "node-mysql2" in suites:
            trees["node-mysql2"], versions["node-mysql2"] = node_suite.tree(work, Path(args.mysql2_git))
    except FileNotFoundError as exc:
        raise Prereq(f"a suite needs {exc}") from None
    meta = run_meta()
    meta["ingress.reads"] = args.ingress_reads + (f" ({args.read_consistency})" if args.ingress_reads != "primary"
                                                  else "")
    if args.cache_mib:
        meta["ingress.reads"] += f", result cache {args.cache_mib} MiB"
    phases = [Phase(s, m) for s in suites for m in modes]
    for p in phases:
        run_phase(args, p, py, trees, work)
    meta["load_end"] = loadavg()
    (work / "phases.json").write_text(json.dumps([p.__dict__ | {"result": p.result.__dict__} for p in phases],
                                                 indent=1, default=str))
    return report(args, meta, phases, versions)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suites", default="pymysql,sqlalchemy,go-mysql,node-mysql2",
                    help="comma-separated: pymysql, sqlalchemy, go-mysql, node-mysql2")
    ap.add_argument("--modes", default="ingress,direct", help="comma-separated: ingress, direct (in this order)")
    ap.add_argument("--sqla-paths", default="test/orm,test/sql,test/dialect/mysql",
                    help="SQLAlchemy test paths, comma-separated (the whole suite: test)")
    ap.add_argument("--sqla-args", default="--backend-only",
                    help="more pytest arguments for SQLAlchemy, space-separated ('' for every test of the paths)")
    ap.add_argument("--pymysql-git", default="/work/.mirror/PyMySQL+PyMySQL/repo",
                    help="a PyMySQL git repository (or checkout) whose HEAD's pymysql/tests are run")
    ap.add_argument("--mysql2-git", default="/work/.mirror/sidorares+node-mysql2/repo",
                    help="a node-mysql2 git repository (or checkout) whose HEAD's tests are run")
    ap.add_argument("--ingress-reads", choices=("primary", "replicas"), default="primary",
                    help="ingress.reads of the ingress the suites run through (replicas: reads routed)")
    ap.add_argument("--read-consistency", choices=("session", "causal", "bounded"), default="causal",
                    help="ingress.read_consistency with --ingress-reads replicas")
    ap.add_argument("--cache-mib", type=int, default=0, help="ingress.cache_bytes in MiB (0: no result cache)")
    ap.add_argument("--suites-venv", default="/tmp/suites-venv")
    ap.add_argument("--workdir", default="/tmp/dbmux-client-suites")
    ap.add_argument("--reset", choices=("purge", "none"), default="purge",
                    help="before each phase: purge and restart the stack (default), or keep it as it is")
    ap.add_argument("--suite-timeout", type=float, default=3600)
    ap.add_argument("--converge-timeout", type=float, default=600)
    ap.add_argument("--verify-lines", type=int, default=1, help="lines of dbmux verify's output in the report")
    ap.add_argument("--list-limit", type=int, default=80)
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args()
    return run_and_publish(run, args)


if __name__ == "__main__":
    sys.exit(main())
