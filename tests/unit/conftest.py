"""Unit tests run twice in CI (.ci/run): against the compiled modules (scripts/compile) and, with
DBMUX_PURE=1, against the pure-Python ones. A test marked ``pure_only`` watches calls by replacing a
module's functions, which compiled callers do not see: it runs in the pure pass."""

import pytest

from dbmux import _compiled


def pytest_report_header(config: pytest.Config) -> str:
    return f"dbmux modules: {_compiled.describe()}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _compiled.status().loaded:
        return
    skip = pytest.mark.skip(reason="replaces module functions to watch their calls, which compiled callers do "
                                   "not see; runs in the DBMUX_PURE=1 pass")
    for item in items:
        if "pure_only" in item.keywords:
            item.add_marker(skip)
