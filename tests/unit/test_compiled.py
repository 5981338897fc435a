"""The compiled build (dbmux._compiled, scripts/compile): when it may be loaded, and the source rules
that keep compiled and pure modules behaving alike."""

import ast
import json

import pytest

from dbmux import _compiled


def _fake_build(tmp_path, monkeypatch, **changed: str):
    """A build directory for the current sources (``changed``: module -> another recorded hash)."""
    monkeypatch.setattr(_compiled, "build_dir", lambda: tmp_path)
    for module in _compiled.MODULES:
        so = tmp_path / _compiled._relative_so(module)
        so.parent.mkdir(parents=True, exist_ok=True)
        so.write_bytes(b"")
    _compiled.write_manifest(tmp_path)
    manifest = json.loads((tmp_path / _compiled.MANIFEST).read_text())
    manifest["modules"].update(changed)
    (tmp_path / _compiled.MANIFEST).write_text(json.dumps(manifest))


def test_a_build_of_the_current_sources_is_current(tmp_path, monkeypatch):
    _fake_build(tmp_path, monkeypatch)
    st = _compiled.status()
    assert st.current and st.reason == "" and st.directory == tmp_path


def test_an_edited_module_is_never_shadowed_by_its_old_build(tmp_path, monkeypatch):
    _fake_build(tmp_path, monkeypatch, **{"dbmux.ingress.relay": "0" * 64})
    st = _compiled.status()
    assert not st.current and "ingress/relay.py changed since the build" in st.reason


def test_a_build_of_another_module_list_is_not_current(tmp_path, monkeypatch):
    _fake_build(tmp_path, monkeypatch, **{"dbmux.ingress.gone": "0" * 64})
    assert "another module list" in _compiled.status().reason


def test_a_missing_extension_module_is_not_current(tmp_path, monkeypatch):
    _fake_build(tmp_path, monkeypatch)
    (tmp_path / _compiled._relative_so("dbmux.ingress.wire")).unlink()
    assert "wire" in _compiled.status().reason and not _compiled.status().current


def test_no_build_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setattr(_compiled, "build_dir", lambda: tmp_path)
    assert _compiled.status().reason == "not built (run scripts/compile)"


def test_dbmux_pure_forces_the_pure_modules(monkeypatch):
    monkeypatch.setenv(_compiled.PURE_ENV, "1")
    monkeypatch.setattr(_compiled, "_INSTALLED", _compiled._INSTALLED)  # (restored: this process's modules stay)
    st = _compiled.install()
    assert not st.loaded and st.reason == "DBMUX_PURE=1"
    assert _compiled.describe() == "pure Python (DBMUX_PURE=1)"


@pytest.mark.parametrize("module", _compiled.MODULES)
def test_no_function_binds_one_name_to_two_exception_types(module):
    """mypyc gives a local one type: ``except A as exc`` then ``except B as exc`` in one function makes the
    second a TypeError in the compiled build (found by the integration suite in IngressServer._serve)."""
    tree = ast.parse(_compiled.source_of(module).read_text())
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            types: dict[str, set[str]] = {}
            for node in ast.walk(fn):
                if isinstance(node, ast.ExceptHandler) and node.name:
                    types.setdefault(node.name, set()).add(ast.unparse(node.type) if node.type else "")
            assert all(len(t) == 1 for t in types.values()), (fn.name, types)
