"""Compiled copies of the hot modules: which, where, and whether they may be loaded.

``scripts/compile`` builds :data:`MODULES` with mypyc (the same source, compiled to C extension
modules) into ``.compiled/<python>/``, with a manifest of each source file's hash. :func:`install`,
called when ``dbmux`` is imported, puts a finder in front of the import system that loads those
extension modules instead of the ``.py`` files -- only when every one of them was built from the
source as it is now (an edited module is never shadowed by an old build: all run pure then, and
:func:`status` says why) and ``DBMUX_PURE`` is not ``1``. Both ways run the same code; the test
suite runs in both (``.ci/run``).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GROUP = "dbmux_compiled"  # mypyc's shared library: <GROUP>__mypyc
SHARED = f"{GROUP}__mypyc"
MANIFEST = "manifest.json"
PURE_ENV = "DBMUX_PURE"

# The ingress's per-command path (framing, response walking, planning, capture, the relay itself) and
# what it calls per statement. Not compiled: modules mypyc cannot build as they are (read_session: an
# exception class deriving from ConnectionError; protocol.commands: dataclasses whose subclasses set
# ClassVars), the publisher, its sequencer and the read router (per commit or per routed read, their
# tests replace their methods), package __init__ files, and everything off that path.
MODULES: tuple[str, ...] = tuple(
    [f"dbmux.ingress.protocol.{m}" for m in (
        "auth", "binary_values", "constants", "encoding", "errors", "events", "framing",
        "generic_packets", "handshake", "response", "resultset", "session_state", "state")]
    + [f"dbmux.ingress.{m}" for m in (
        "cache_feed", "cache_session", "capture", "classify", "connection", "context", "errors", "handler",
        "literals", "pinned_keys", "read_rules", "relay", "relay_reads",
        "replica_auth", "replica_link", "response_relay", "result_cache", "rewrite", "schema_facts",
        "server", "statement_safety", "statements", "tls", "wire", "write_shape")]
    + ["dbmux.core.sqllex", "dbmux.core.digests"]
)


def source_of(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def build_dir() -> Path:
    """Where this interpreter's build goes (extension modules are per Python version and ABI)."""
    return ROOT / ".compiled" / sys.implementation.cache_tag


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(directory: Path) -> None:
    manifest = {"modules": {m: _digest(source_of(m)) for m in MODULES}, "abi": sys.implementation.cache_tag}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


@dataclass(frozen=True)
class Status:
    current: bool  # a build of every module from the source as it is now
    directory: Path
    reason: str  # why not (empty when current)
    loaded: bool = False  # install() put the finder in place


def status() -> Status:
    directory = build_dir()
    loaded = _FINDER is not None and _FINDER in sys.meta_path
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return Status(False, directory, "not built (run scripts/compile)", loaded)
    built = manifest.get("modules", {})
    if set(built) != set(MODULES):  # (compiled modules call each other directly: one build, all of them)
        return Status(False, directory, "built for another module list (run scripts/compile)", loaded)
    for module in MODULES:
        try:
            if built[module] != _digest(source_of(module)):
                return Status(False, directory, f"{source_of(module).relative_to(ROOT)} changed since the "
                                                f"build (run scripts/compile)", loaded)
        except OSError as exc:
            return Status(False, directory, f"cannot read {module}'s source: {exc}", loaded)
        if not (directory / _relative_so(module)).exists():
            return Status(False, directory, f"{_relative_so(module)} is missing (run scripts/compile)", loaded)
    return Status(True, directory, "", loaded)


def _relative_so(module: str) -> str:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return module.replace(".", "/") + suffix


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, directory: Path) -> None:
        self.names = frozenset(MODULES) | {SHARED}
        self.directory = directory

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> Any:
        if fullname not in self.names:
            return None
        so = str(self.directory / _relative_so(fullname))
        return importlib.util.spec_from_file_location(fullname, so,
                                                      loader=importlib.machinery.ExtensionFileLoader(fullname, so))


_FINDER: _Finder | None = None
_INSTALLED: Status | None = None  # what install() found (the modules run as it decided, whatever changed since)


def install() -> Status:
    """Load the compiled modules from now on, when :func:`status` says they are current and
    ``DBMUX_PURE`` is not ``1`` (call before any of :data:`MODULES` is imported)."""
    global _FINDER, _INSTALLED
    if os.environ.get(PURE_ENV) == "1":
        _INSTALLED = Status(False, build_dir(), f"{PURE_ENV}=1")
        return _INSTALLED
    st = status()
    if st.current and _FINDER is None:
        _FINDER = _Finder(st.directory)
        sys.meta_path.insert(0, _FINDER)
        st = Status(True, st.directory, "", True)
    _INSTALLED = st
    return st


def describe() -> str:
    """One line for logs: which modules run (as :func:`install` decided when ``dbmux`` was imported)."""
    st = _INSTALLED if _INSTALLED is not None else status()
    if st.loaded:
        return f"compiled ({len(MODULES)} modules from {st.directory})"
    return f"pure Python ({st.reason})"
