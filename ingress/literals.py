"""Long string literals set aside while a big statement is classified and rewritten.

Classification and rewriting lex the statement (``dbmux.core.sqllex``, a regular expression tried
token by token) and hand DML to sqlglot, whose tokenizer walks the text one character at a time in
Python: about a microsecond per byte, so a 20 MiB INSERT of one literal took half a minute, during
which the event loop served no other session. What a literal holds never changes what a statement
is or which functions it calls, so :func:`elide_literals` finds the long ones with ``str.find``
(memchr speed, one pass) and returns a *skeleton*: the statement with each long literal replaced
by a short placeholder literal of the same quote; the skeleton is planned as usual and
:meth:`Elided.restore` puts the literals back into whatever text the plan holds (the statement
split into parts, rewritten, captured).

The finder knows MySQL's quoting and comment rules (backslash escapes unless NO_BACKSLASH_ESCAPES,
doubled quotes, backquoted identifiers, ``#``, ``-- ``, ``/* */`` comments; an executable comment's
content is code); the lexer has the last word: the skeleton must lex with every placeholder a
literal of its own where the original literal began, else nothing is elided (the statement is
planned whole, as before).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from dbmux.core.sqllex import LexError, scan

MIN_STATEMENT_CHARS = 32 * 1024  # shorter statements are planned as they are
MIN_LITERAL_CHARS = 1024  # shorter literals stay in the skeleton
_PREFIX = "dbmuxelided"
_SPECIALS = "'\"`#-/"


@dataclass(frozen=True, slots=True)
class Elided:
    """A statement's skeleton and what was taken out of it (see the module docstring)."""

    sql: str  # the original statement
    skeleton: str
    spans: tuple[tuple[int, int], ...]  # each elided literal, quotes included: sql[start:end]
    mark: str  # the placeholder's prefix: quote + mark + index + quote

    def restore(self, text: str) -> str:
        """``text`` (derived from the skeleton) with every placeholder replaced by its literal."""
        if self.mark not in text:
            return text
        sql, spans = self.sql, self.spans
        out: list[str] = []
        last = 0
        for m in re.finditer(f"(['\"]){re.escape(self.mark)}(\\d+)\\1", text):
            start, end = spans[int(m.group(2))]
            out.append(text[last : m.start()])
            out.append(sql[start:end])
            last = m.end()
        out.append(text[last:])
        return "".join(out)


def quoted_end(sql: str, start: int, backslash_escapes: bool) -> int:
    """Where the quoted text opened at ``sql[start]`` ends (after its closing quote), or -1 when it does
    not: a doubled quote is one character, and so is a backslash and the character after it (when
    ``backslash_escapes``). Linear: every quote and backslash is found once, by ``str.find``."""
    q = sql[start]
    find, n = sql.find, len(sql)
    i = start + 1
    nq = find(q, i)
    nb = find("\\", i) if backslash_escapes and q != "`" else -1
    while nq >= 0:
        if 0 <= nb < nq:  # an escape first: it covers the character after the backslash
            i = nb + 2
            nb = find("\\", i)
            if nq < i:
                nq = find(q, i)
            continue
        if nq + 1 < n and sql[nq + 1] == q:  # a doubled quote
            i = nq + 2
            nq = find(q, i)
            continue
        return nq + 1
    return -1


def long_literals(sql: str, backslash_escapes: bool,
                  min_chars: int = MIN_LITERAL_CHARS) -> list[tuple[int, int]] | None:
    """Spans of the string literals of at least ``min_chars`` characters (quotes included), in order;
    None when the text has unterminated quoted text or comment (the lexer reports those)."""
    find, n = sql.find, len(sql)
    nxt = {ch: find(ch) for ch in _SPECIALS}  # the next occurrence of each special character
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        i = min((p for p in nxt.values() if p >= 0), default=-1)
        if i < 0:
            return spans
        ch = sql[i]
        if ch in "'\"`":
            pos = quoted_end(sql, i, backslash_escapes)
            if pos < 0:
                return None
            if ch != "`" and pos - i >= min_chars:
                spans.append((i, pos))
        elif ch == "#" or (ch == "-" and sql.startswith("-", i + 1) and (i + 2 >= n or sql[i + 2] <= " ")):
            eol = find("\n", i)  # a comment to the end of the line
            pos = n if eol < 0 else eol
        elif ch == "/" and sql.startswith("*", i + 1):
            if sql.startswith("!", i + 2) or sql.startswith("M!", i + 2):
                pos = i + 2  # an executable comment: its content is code
            else:
                close = find("*/", i + 2)
                if close < 0:
                    return None
                pos = close + 2
        else:
            pos = i + 1
        for c, p in nxt.items():
            if 0 <= p < pos:
                nxt[c] = find(c, pos)


def elide_literals(sql: str, backslash_escapes: bool = True, min_chars: int = MIN_LITERAL_CHARS) -> Elided | None:
    """The skeleton of ``sql`` with its long literals taken out, or None when there is none (or the
    lexer would not read the skeleton with each placeholder where its literal was)."""
    spans = long_literals(sql, backslash_escapes, min_chars)
    if not spans:
        return None
    kept: list[str] = []  # the text between the long literals
    last = 0
    for start, end in spans:
        kept.append(sql[last:start])
        last = end
    kept.append(sql[last:])
    mark = _PREFIX
    while any(mark in part for part in kept):  # (text that holds the prefix itself gets one of its own)
        mark = f"{_PREFIX}{secrets.token_hex(4)}x"
    parts = [kept[0]]
    for k, (start, _) in enumerate(spans):
        q = sql[start]
        parts.append(f"{q}{mark}{k}{q}")
        parts.append(kept[k + 1])
    skeleton = "".join(parts)
    try:
        strings = [t.text for t in scan(skeleton, backslash_escapes) if t.type in ("string", "var") and mark in t.text]
    except LexError:
        return None
    expected = [f"{sql[start]}{mark}{k}{sql[start]}" for k, (start, _) in enumerate(spans)]
    if len(strings) != len(expected) or not all(
        got == want or (got.startswith("@") and got[1:] == want) for got, want in zip(strings, expected, strict=True)
    ):
        return None
    return Elided(sql, skeleton, tuple(spans), mark)
