"""A small MySQL lexer shared by the ingress (classification, rewriting) and the replicator
(placeholder interpolation): MySQL's own comment, string and executable-comment rules, which
sqlglot's tokenizer does not follow everywhere. Token offsets index the original text.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from dbmux.core.errors import DbmuxError

__all__ = ["LexError", "Token", "ansi_names_backquoted", "has_mode", "effective_sql", "scan", "scan_with_markers",
           "split_statements"]


class LexError(DbmuxError, ValueError):
    """The text has an unterminated string, identifier or comment."""


# --------------------------------------------------------------------------------------------- lexer


class Token(NamedTuple):
    """One lexical token. ``start``/``end`` index the original text (``end`` exclusive).

    ``type`` is one of ``word`` (keyword or bare identifier), ``ident`` (backquoted), ``string``,
    ``number``, ``var`` (``@x``), ``sysvar`` (``@@x``), ``param`` (``?``), ``op``. (A named tuple: the
    ingress lexes every statement, and a tuple is built several times faster than a frozen dataclass.)
    """

    type: str
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper()

    @property
    def name(self) -> str:
        """The identifier a ``word``/``ident`` token names (backquotes removed)."""
        if self.type == "ident":
            return self.text[1:-1].replace("``", "`")
        return self.text


def _build_lexer(backslash_escapes: bool) -> re.Pattern[str]:
    if backslash_escapes:
        sq, dq = r"'(?:[^'\\]|\\.|'')*'", r'"(?:[^"\\]|\\.|"")*"'
    else:
        sq, dq = r"'(?:[^']|'')*'", r'"(?:[^"]|"")*"'
    parts = [
        ("ws", r"\s+"),
        ("comment", r"\#[^\n]*|--(?:[\x00-\x20][^\n]*)?(?=\n|\Z)|--[\x00-\x20][^\n]*"),
        ("exec_open", r"/\*M?!\d{0,6}"),
        ("comment", r"/\*.*?\*/"),
        ("bad", r"/\*"),
        ("exec_close", r"\*/"),
        ("string", f"{sq}|{dq}"),
        ("ident", r"`(?:[^`]|``)*`"),
        ("bad", r"['\"`]"),
        ("sysvar", r"@@(?:(?:global|session|local|persist|persist_only)\.)?(?:`(?:[^`]|``)*`|[A-Za-z0-9_$]+)"),
        ("var", rf"@(?:{sq}|{dq}|`(?:[^`]|``)*`|[A-Za-z0-9_$.]+)"),
        ("number", r"(?:0x[0-9A-Fa-f]+|0b[01]+|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
                   r"(?![A-Za-z0-9_$\u0080-\uffff])"),
        ("word", r"[A-Za-z0-9_$\u0080-\uffff]+"),
        ("param", r"\?"),
        ("op", r"<=>|->>|->|:=|<=|>=|<>|!=|\|\||&&|<<|>>|[^\s]"),
    ]
    return re.compile("|".join(f"(?P<{name}{i}>{rx})" for i, (name, rx) in enumerate(parts)), re.DOTALL)


_LEXERS = {True: _build_lexer(True), False: _build_lexer(False)}
_KINDS = {group: group.rstrip("0123456789") for group in _LEXERS[True].groupindex}


def scan_with_markers(sql: str, backslash_escapes: bool = True) -> tuple[list[Token], list[tuple[int, int]]]:
    tokens: list[Token] = []
    markers: list[tuple[int, int]] = []
    pos, in_exec, kinds, append = 0, False, _KINDS, tokens.append
    # matches are contiguous: the ws alternative matches any blank, the op alternative any other character
    for m in _LEXERS[backslash_escapes].finditer(sql):
        kind = kinds[m.lastgroup]  # type: ignore[index]  # every alternative is a named group
        start, end = m.span()
        if start != pos:  # pragma: no cover - see above
            raise LexError(f"cannot lex at offset {pos}")
        if kind == "word" or kind == "op" or kind == "number" or kind == "string" or kind == "ident":
            append(Token(kind, m.group(), start, end))
        elif kind == "ws" or kind == "comment":
            pass
        elif kind == "exec_open":
            if in_exec:  # MySQL does not nest comments; treat as plain text it cannot be
                raise LexError(f"nested executable comment at offset {start}")
            in_exec = True
            markers.append((start, end))
        elif kind == "exec_close":
            if in_exec:
                in_exec = False
                markers.append((start, end))
            else:
                tokens.append(Token("op", "*", start, start + 1))
                tokens.append(Token("op", "/", start + 1, end))
        elif kind == "bad":
            raise LexError(f"unterminated quoted text or comment at offset {start}")
        else:
            append(Token(kind, m.group(), start, end))
        pos = end
    if pos != len(sql):  # pragma: no cover - see above
        raise LexError(f"cannot lex at offset {pos}")
    if in_exec:
        raise LexError("unterminated executable comment")
    return tokens, markers


def scan(sql: str, backslash_escapes: bool = True) -> list[Token]:
    """Lex MySQL text into tokens, skipping whitespace and comments; raises :class:`LexError`."""
    return scan_with_markers(sql, backslash_escapes)[0]


def has_mode(sql_mode: str | None, mode: str) -> bool:
    """Does ``sql_mode`` (a session's, as SET or as the server shows it) include ``mode``, also through the
    combination ANSI (REAL_AS_FLOAT, PIPES_AS_CONCAT, ANSI_QUOTES, IGNORE_SPACE, ONLY_FULL_GROUP_BY)?"""
    modes = {m.strip() for m in (sql_mode or "").upper().split(",")}
    return mode in modes or (mode in _ANSI and "ANSI" in modes)


_ANSI = frozenset({"REAL_AS_FLOAT", "PIPES_AS_CONCAT", "ANSI_QUOTES", "IGNORE_SPACE", "ONLY_FULL_GROUP_BY"})


def ansi_names_backquoted(sql: str, sql_mode: str | None) -> str:
    """``sql`` as a session with ``sql_mode`` ran it, its double-quoted names (``"t"``: a name under
    ANSI_QUOTES, as sql_mode ANSI sets) backquoted (`` `t` ``: a name in every sql_mode; parsers of MySQL
    text read ``"t"`` as a string). Unchanged without ANSI_QUOTES, or when the text does not lex."""
    if '"' not in sql or not has_mode(sql_mode, "ANSI_QUOTES"):
        return sql
    try:
        tokens = scan(sql, "NO_BACKSLASH_ESCAPES" not in (sql_mode or "").upper())
    except LexError:
        return sql
    out, last = [], 0
    for t in tokens:
        if t.type == "string" and t.text.startswith('"'):
            name = t.text[1:-1].replace('""', '"').replace("`", "``")
            out.append(f"{sql[last:t.start]}`{name}`")
            last = t.end
    return "".join(out) + sql[last:]


def effective_sql(sql: str, markers: list[tuple[int, int]] | None = None) -> str:
    """``sql`` with executable-comment markers (``/*!50001``, ``*/``) blanked, offsets preserved."""
    if markers is None:
        _, markers = scan_with_markers(sql)
    if not markers:
        return sql
    chars = list(sql)
    for start, end in markers:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


# --------------------------------------------------------------------------------------------- split

_COMPOUND_OBJECTS = {"PROCEDURE", "FUNCTION", "TRIGGER", "EVENT"}
_STMT_START_PREV = {";", "BEGIN", "THEN", "ELSE", "DO", ":", "LOOP", "REPEAT", "ROW"}


def _is_compound_start(tokens: list[Token], i: int) -> bool:
    """Does the statement starting at tokens[i] carry a BEGIN ... END body (routine, trigger, event)?"""
    t = tokens[i]
    if t.upper == "BEGIN" and i + 1 < len(tokens) and tokens[i + 1].upper == "NOT":
        return True  # MariaDB anonymous block BEGIN NOT ATOMIC ... END
    if t.upper != "CREATE":
        return False
    for tok in tokens[i + 1 : i + 12]:
        if tok.text == ";":
            return False
        if tok.upper in _COMPOUND_OBJECTS:
            return True
    return False


def split_statements(sql: str, backslash_escapes: bool = True) -> list[str]:
    """Split multi-statement COM_QUERY text on top-level ``;``.

    Semicolons inside strings, identifiers and comments do not split, nor do those inside the
    ``BEGIN ... END`` bodies of CREATE PROCEDURE/FUNCTION/TRIGGER/EVENT and MariaDB ``BEGIN NOT ATOMIC``
    blocks (the server parses those as one statement). Pieces are stripped; empty pieces (only
    whitespace/comments) are dropped. Text that cannot be lexed (unterminated string) is returned
    whole, as one statement, for the server to reject.
    """
    try:
        tokens = scan(sql, backslash_escapes)
    except LexError:
        return [sql.strip()] if sql.strip() else []
    out: list[str] = []
    seg_start = 0
    first_idx: int | None = None
    compound = False
    depth = 0
    for i, tok in enumerate(tokens):
        if first_idx is None:
            if tok.text == ";":
                seg_start = tok.end
                continue
            first_idx = i
            compound = _is_compound_start(tokens, i)
            depth = 0
        if compound and tok.type == "word":
            u = tok.upper
            prev = tokens[i - 1].upper if i > first_idx else ""
            if u == "END":
                nxt = tokens[i + 1].upper if i + 1 < len(tokens) else ""
                depth -= 1
                if nxt in ("IF", "LOOP", "WHILE", "REPEAT", "CASE"):
                    tokens[i + 1] = Token("closer", tokens[i + 1].text, tokens[i + 1].start, tokens[i + 1].end)
            elif u in ("BEGIN", "CASE") and i > first_idx:
                depth += 1
            elif u in ("IF", "LOOP", "WHILE", "REPEAT") and prev in _STMT_START_PREV:
                depth += 1
        if tok.text == ";" and tok.type == "op" and depth <= 0:
            piece = sql[seg_start : tok.start].strip()
            if piece:
                out.append(piece)
            seg_start = tok.end
            first_idx = None
    if first_idx is not None:
        piece = sql[seg_start:].strip()
        if piece:
            out.append(piece)
    return out


# --------------------------------------------------------------------------------------------- model
