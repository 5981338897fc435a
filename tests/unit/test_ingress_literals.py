"""Big statements: long literals are set aside while a statement is planned (ingress.literals), so
planning costs what the statement's code costs, not a Python step per byte of its data.

Table-driven: each statement is planned with and without elision (same instant), and both plans must
be equal; the structural test checks that neither the lexer nor sqlglot ever sees a long literal.
"""

from __future__ import annotations

import datetime as _dt

import pytest
import sqlglot

from dbmux.core import sqllex
from dbmux.ingress import classify as classify_module
from dbmux.ingress import literals, rewrite, statements
from dbmux.ingress.literals import elide_literals, long_literals, quoted_end
from dbmux.ingress.statements import plan_query

BIG = "x" * 40_000  # above MIN_LITERAL_CHARS; two of them make a statement above MIN_STATEMENT_CHARS
ESCAPED = ("ab\\'c''d\\\\" * 5000)[:-1] + "e"  # backslash escapes and doubled quotes all along

# (statement, placeholders expected in the skeleton: None when nothing may be elided)
ELISION_TABLE = [
    pytest.param(f"INSERT INTO t VALUES ('{BIG}', NOW(), \"{BIG}\")", 2, id="two-literals-and-now"),
    pytest.param(f"INSERT INTO t VALUES ('{ESCAPED}', '{BIG}')", 2, id="escapes-and-doubled-quotes"),
    pytest.param(f"INSERT INTO t VALUES ('{BIG}') /* ' */ ; UPDATE t SET a = NOW() WHERE b = '{BIG}'", 2,
                 id="multi-statement-with-quote-in-comment"),
    pytest.param(f"SELECT '{BIG}', '{BIG}'", 2, id="read"),
    pytest.param(f"# it's\nINSERT INTO t VALUES ('{BIG}', '{BIG}')", 2, id="hash-comment-with-quote"),
    pytest.param(f"-- it's\nINSERT INTO t VALUES ('{BIG}', '{BIG}')", 2, id="dash-comment-with-quote"),
    pytest.param(f"INSERT INTO `it's` VALUES ('{BIG}', '{BIG}')", 2, id="quote-in-backquoted-name"),
    pytest.param(f"INSERT INTO t /*! VALUES ('{BIG}', '{BIG}') */", 2, id="executable-comment"),
    pytest.param(f"INSERT INTO t VALUES (_binary'{BIG}', X'{'ab' * 20_000}', @'{BIG}')", 3, id="introducers"),
    pytest.param(f"XA START '{BIG}{BIG}'", 1, id="xa-refused"),
    pytest.param(f"INSERT INTO t VALUES ('{BIG}', '{BIG}') -- dbmuxelided0", 2, id="text-holds-the-prefix"),
    pytest.param(f"INSERT INTO t VALUES ('{BIG}', '{BIG}", None, id="unterminated"),
    pytest.param(f"INSERT INTO t VALUES ('{BIG}', '{BIG}') /* open", None, id="unterminated-comment"),
    pytest.param(f"--\nINSERT INTO t VALUES ('{BIG}', '{BIG}')", None, id="lexer-disagrees-on-comment"),
    pytest.param(f"INSERT INTO t VALUES ('{'y' * 600}', '{'y' * 600}')" + " " * 40_000, None, id="short-literals"),
]


NOW = _dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=_dt.UTC)  # (both plans pin NOW() to one instant)


@pytest.mark.parametrize(("sql", "placeholders"), ELISION_TABLE)
def test_elided_plan_equals_the_whole_plan(sql, placeholders):
    elided = elide_literals(sql)
    if placeholders is None:
        assert elided is None
    else:
        assert elided is not None and len(elided.spans) == placeholders and len(elided.skeleton) < 300
        assert elided.restore(elided.skeleton) == sql
    assert len(sql) >= literals.MIN_STATEMENT_CHARS
    assert plan_query(sql, time_zone="+00:00", now=NOW) == statements._plan_text(sql, "+00:00", True, NOW)


# (quoted text, where it ends with backslash escapes, where it ends without; -1: unterminated)
QUOTED_TABLE = [
    (r"'abc' x", 5, 5),
    (r"'a''b' x", 6, 6),
    (r"'a\'b' x", 6, 4),
    (r"'a\\' x", 5, 5),
    (r"'\'' x", 4, -1),
    (r"'''' x", 4, 4),
    (r"'a'' x", -1, -1),
    (r"'a\' x", -1, 4),
    (r'"a""b" x', 6, 6),
    (r'"a\"" x', 5, -1),
    (r"`a``b` x", 6, 6),
    (r"`a\` x", 4, 4),  # backslashes escape nothing in backquoted names
    ("'" + r"\n" * 50 + "' x", 102, 102),
    ("'ends at the end\\", -1, -1),
]


@pytest.mark.parametrize(("text", "with_escapes", "without"), QUOTED_TABLE)
def test_quoted_end(text, with_escapes, without):
    assert quoted_end(text, 0, True) == with_escapes
    assert quoted_end(text, 0, False) == without
    for mode, end in ((True, with_escapes), (False, without)):  # as the lexer reads it
        if end > 0 and text[0] != "`":
            assert sqllex.scan(text[:end], mode)[0].text == text[:end]


def test_the_sql_mode_decides_where_a_literal_ends():
    sql = f"INSERT INTO t VALUES ('{BIG}\\'', '{BIG}')"
    first = (22, 22 + len(BIG) + 4)
    assert long_literals(sql, True) == [first, (first[1] + 2, len(sql) - 1)]
    assert long_literals(sql, False) is None  # NO_BACKSLASH_ESCAPES: "\'" ends it, "''," goes on: unterminated


@pytest.mark.pure_only
def test_planning_a_big_statement_never_lexes_its_literals(monkeypatch):
    """Structural: the per-character work (the MySQL lexer, sqlglot's tokenizer) sees the statement's
    code only, whatever the size of its literals -- planning is linear in the size, at memchr speed."""
    seen: list[int] = []

    def spy(real):
        def wrapped(sql, *args, **kwargs):
            seen.append(len(sql))
            return real(sql, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(classify_module, "scan_with_markers", spy(sqllex.scan_with_markers))
    monkeypatch.setattr(rewrite, "scan", spy(sqllex.scan))
    monkeypatch.setattr(literals, "scan", spy(sqllex.scan))
    monkeypatch.setattr(sqlglot, "parse", spy(sqlglot.parse))
    classify_module.classify.cache_clear()
    for size in (1 << 16, 1 << 20, 1 << 22):
        seen.clear()
        text = "z" * size
        plan = plan_query(f"INSERT INTO t (a, b, c) VALUES (NOW(), '{text}', 3)", time_zone="+00:00")
        assert plan.rewritten is not None and text in plan.rewritten and plan.statements[0].kind == "dml"
        assert seen and max(seen) < 200, seen  # the skeleton, every time
        seen.clear()
        assert plan_query(f"SELECT '{text}'", time_zone="+00:00").statements[0].sql == f"SELECT '{text}'"
        assert seen and max(seen) < 200, seen


def test_many_replacements_in_a_big_statement_are_made_in_one_pass():
    rows = ", ".join(f"({i}, NOW())" for i in range(2000))
    sql = f"INSERT INTO t (a, b) VALUES {rows}"
    result = rewrite.rewrite_deterministic(sql, _dt.datetime(2024, 1, 2, 3, 4, 5), "+00:00", None)
    assert result.changed and "NOW()" not in result.sql
    assert result.sql.count("'2024-01-02 03:04:05'") == 2000
