"""Keep clear-text passwords out of change events, logs, halt messages and the dead-letter topic.

Statements (:func:`redact_secrets`, every producer runs it on every statement it publishes; see
:func:`redact_event` for events read back). A password is replaced by the credential the server
stores for it whenever that form exists, so a replica applying the statement gets the same account:

==============================================================  ==============================================
statement (MariaDB's binlog keeps the first two as written)     published as
==============================================================  ==============================================
``CREATE|ALTER USER, GRANT ... IDENTIFIED BY 'pw'``             ``IDENTIFIED BY PASSWORD '*<sha1(sha1(pw))>'``
``IDENTIFIED VIA|WITH p USING|AS PASSWORD('pw')``, ``p`` one    ``USING|AS '<p's hash>'``
of mysql_native_password, mysql_old_password, ed25519
``IDENTIFIED WITH mysql_native_password BY 'pw'`` (MySQL)       ``IDENTIFIED WITH mysql_native_password AS
                                                                '*...'``
``PASSWORD('pw')``, ``OLD_PASSWORD('pw')`` anywhere (e.g.       the value: ``'*...'`` / ``'<16 hex>'``
``SET PASSWORD [FOR u] = PASSWORD('pw')``)
``SET PASSWORD [FOR u] = 'pw'`` (MySQL: clear text)             ``= '*...'``, flagged unsafe (MariaDB reads
                                                                it as a hash; MySQL as a password)
==============================================================  ==============================================

Where no stored form exists -- salted plugins (``IDENTIFIED WITH caching_sha2_password BY 'pw'``,
``parsec``), ``... REPLACE 'current pw'``, ``CHANGE MASTER TO MASTER_PASSWORD='pw'`` / ``CHANGE
REPLICATION SOURCE TO SOURCE_PASSWORD='pw'``, ``START SLAVE|REPLICA|GROUP_REPLICATION ...
PASSWORD='pw'``, ``CREATE|ALTER SERVER ... OPTIONS (PASSWORD 'pw')``, ``CLONE ... IDENTIFIED BY 'pw'``,
a password in a FEDERATED/CONNECT ``CONNECTION`` URL or ``OPTION_LIST`` -- the password is *withheld*:
the literal becomes ``'***' DBMUX_PASSWORD_WITHHELD`` and the statement is flagged ``unsafe``. The
marker makes the text a syntax error on purpose: a target that applies it halts (or dead-letters)
with a message naming it, instead of silently creating an account, server or table with a wrong
password. Events keep their format (``unsafe`` is the existing flag), so every consumer decodes them.

Text (:func:`redact_text`): log lines, error messages, status details -- arbitrary text that may quote
SQL (truncated, ``repr``-escaped, inside a server's "near '...'" echo). Every quoted value after a
password keyword is replaced by ``***`` (hashes are kept), passwords in URLs too, and every other
occurrence of a value found so (or in the statement the message is about, ``sources``) as well.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from dbmux.core.events import ChangeEvent, Statement
from dbmux.core.password_hash import PLUGIN_HASHES, native_password_hash, old_password_hash
from dbmux.core.sqllex import LexError, Token, scan

__all__ = ["WITHHELD_MARK", "Redaction", "native_password_hash", "redact_event", "redact_payload", "redact_secrets",
           "redact_text"]

WITHHELD_MARK = "DBMUX_PASSWORD_WITHHELD"
_WITHHELD = f"'***' {WITHHELD_MARK}"
_UNSCANNABLE = "/* dbmux: statement withheld, it could not be scanned for passwords */"
# pre-filters: words without which no rule can match. str.lower() + `in` runs at memory speed; a
# case-insensitive regex over a 64 MiB statement took seconds (measured in bench/big_packets.py)
_TRIGGER_WORDS = ("identified", "password", "connection", "option_list")
_TEXT_TRIGGER_WORDS = ("identified", "password", "pwd", "replace", "://")


def _mentions(text: str, words: tuple[str, ...]) -> bool:
    low = text.lower()
    return any(w in low for w in words)
_NATIVE_HASH = re.compile(r"\*[0-9A-Fa-f]{40}")
_OLD_HASH = re.compile(r"[0-9a-f]{16}")
# user:password@ in a URL; password=... / pwd=... in a connection string or option list
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^\s:/@'\"]*:)([^@'\"/\n]+)(@)")
_KV_PASSWORD = re.compile(r"(?i)(\b(?:pwd|password)\s*=\s*)([^\s;,'\"&()]++)(?!\()")
_FUNCTION_HASHES: dict[str, Callable[[str], str]] = {"PASSWORD": native_password_hash,
                                                      "OLD_PASSWORD": old_password_hash}


@dataclass(frozen=True, slots=True)
class Redaction:
    sql: str
    changed: bool
    unsafe: bool  # a password was withheld: the statement no longer does what it did on the primary


def _is_hash(value: str) -> bool:
    return bool(_NATIVE_HASH.fullmatch(value) or _OLD_HASH.fullmatch(value))


_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def _unquote(text: str, backslash_escapes: bool = True) -> str:
    """The value of a MySQL string literal (``'...'`` or ``"..."``, quote doubling, backslash escapes)."""
    q, body = text[0], text[1:-1]
    if not backslash_escapes:
        return body.replace(q + q, q)
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == "\\" and i + 1 < n:
            nxt = body[i + 1]
            out.append("\\" + nxt if nxt in "%_" else _ESCAPES.get(nxt, nxt))
            i += 2
        elif c == q and i + 1 < n and body[i + 1] == q:
            out.append(q)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _scrub_connection(value: str) -> str:
    return _KV_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***\3", value))


class _Rewriter:
    """One statement's edits, found on its tokens (see the module docstring for the rules)."""

    def __init__(self, sql: str, tokens: list[Token], backslash_escapes: bool) -> None:
        self.sql, self.tokens, self.bs = sql, tokens, backslash_escapes
        self.words = [t.upper if t.type == "word" else t.text for t in tokens]
        self.edits: list[tuple[int, int, str]] = []
        self.unsafe = False
        head = self.words[:4] + [""] * 4
        if head[1:3] == ["OR", "REPLACE"]:
            head = head[:1] + head[3:]
        self.account = head[0] == "GRANT" or (head[0] in ("CREATE", "ALTER") and head[1] == "USER") \
            or head[:2] == ["SET", "PASSWORD"]
        self.replication = (head[0] == "CHANGE" and head[1] in ("MASTER", "REPLICATION")) or (
            head[0] == "START" and head[1] in ("SLAVE", "REPLICA", "GROUP_REPLICATION"))
        self.server = head[0] in ("CREATE", "ALTER") and head[1] == "SERVER"
        self.table = head[0] in ("CREATE", "ALTER") and "TABLE" in self.words[1:5]
        # SET PASSWORD [FOR user] = ...: the index of its "="
        self.set_password_eq = self.words.index("=") if head[:2] == ["SET", "PASSWORD"] and "=" in self.words \
            else -1

    # helpers ----------------------------------------------------------------------------------------
    def w(self, i: int) -> str:
        return self.words[i] if 0 <= i < len(self.words) else ""

    def is_string(self, i: int) -> bool:
        return 0 <= i < len(self.tokens) and self.tokens[i].type == "string"

    def value(self, i: int) -> str:
        return _unquote(self.tokens[i].text, self.bs)

    def replace(self, first: int, last: int, text: str) -> None:
        self.edits.append((self.tokens[first].start, self.tokens[last].end, text))

    def withhold(self, i: int) -> None:
        """Replace string token ``i`` by the withheld marker (idempotent), flag the statement."""
        self.unsafe = True
        if self.value(i) == "***" and self.w(i + 1) == WITHHELD_MARK:
            return
        self.replace(i, i, _WITHHELD)

    def close_paren(self, i: int) -> int:
        """Index of the ``)`` matching the ``(`` at ``i`` (the last token if unbalanced)."""
        depth = 0
        for j in range(i, len(self.tokens)):
            if self.words[j] == "(":
                depth += 1
            elif self.words[j] == ")":
                depth -= 1
                if depth == 0:
                    return j
        return len(self.tokens) - 1

    def hash_call(self, i: int, hasher: Callable[[str], str] | None) -> int:
        """``PASSWORD ( 'pw' )`` at ``i``: the call becomes the quoted hash (or its strings are withheld
        when ``hasher`` is None or the argument is not one literal); returns the index after it."""
        close = self.close_paren(i + 1)
        inner = range(i + 2, close)
        if len(inner) == 1 and self.is_string(i + 2) and hasher is not None:
            self.replace(i, close, f"'{hasher(self.value(i + 2))}'")
        else:
            for j in inner:
                if self.is_string(j):
                    self.withhold(j)
        return close + 1

    # rules ------------------------------------------------------------------------------------------
    def run(self) -> None:
        i, n = 0, len(self.tokens)
        while i < n:
            w = self.w(i)
            if w == "IDENTIFIED":
                i = self.identified(i + 1)
                continue
            if w in _FUNCTION_HASHES and self.w(i + 1) == "(":
                i = self.hash_call(i, _FUNCTION_HASHES[w])
                continue
            if w == "=" and i == self.set_password_eq and self.is_string(i + 1):
                self.set_password_literal(i + 1)
            elif w == "REPLACE" and self.account and self.is_string(i + 1):
                self.withhold(i + 1)
            elif self.replication and w in ("MASTER_PASSWORD", "SOURCE_PASSWORD", "PASSWORD") \
                    and self.w(i + 1) == "=" and self.is_string(i + 2):
                self.withhold(i + 2)
            elif self.server and w == "PASSWORD" and self.is_string(i + 1):
                self.withhold(i + 1)
            elif self.table and w in ("CONNECTION", "OPTION_LIST"):
                j = i + 2 if self.w(i + 1) == "=" else i + 1
                if self.is_string(j):
                    self.connection(j)
            i += 1

    def identified(self, j: int) -> int:
        """After IDENTIFIED: ``BY 'pw'`` or ``VIA|WITH plugin [USING|AS|BY ...] [OR plugin ...]``."""
        if self.w(j) == "BY":
            if self.is_string(j + 1):
                pw = self.value(j + 1)
                if not self.account:
                    self.withhold(j + 1)  # e.g. CLONE ... IDENTIFIED BY: the server needs the clear text
                elif pw:
                    self.replace(j + 1, j + 1, f"PASSWORD '{native_password_hash(pw)}'")
                return j + 2
            return j + 1  # BY PASSWORD '<hash>', BY RANDOM PASSWORD
        if self.w(j) not in ("VIA", "WITH"):
            return j
        k = j + 1
        while k < len(self.tokens):
            plugin_tok = self.tokens[k]
            plugin = (_unquote(plugin_tok.text) if plugin_tok.type == "string" else plugin_tok.name).lower()
            hasher = PLUGIN_HASHES.get(plugin)
            op = self.w(k + 1)
            nxt = k + 2
            if op in ("USING", "AS"):
                if self.w(k + 2) == "PASSWORD" and self.w(k + 3) == "(":
                    nxt = self.hash_call(k + 2, hasher)
                else:
                    nxt = k + 3  # 'auth string': already the stored form (or not a secret: a PAM service)
            elif op == "BY" and self.is_string(k + 2):
                if plugin == "mysql_native_password":
                    self.replace(k + 1, k + 2, f"AS '{native_password_hash(self.value(k + 2))}'")
                elif self.value(k + 2):
                    self.withhold(k + 2)  # salted (caching_sha2_password, ...): not reproducible
                nxt = k + 3
            else:
                nxt = k + 1
            if self.w(nxt) != "OR":
                return nxt
            k = nxt + 1
        return k

    def set_password_literal(self, i: int) -> None:
        """``SET PASSWORD [FOR u] = '...'``: MariaDB takes a hash here, MySQL a clear-text password."""
        value = self.value(i)
        if value in ("", "***") or _is_hash(value):
            return
        self.replace(i, i, f"'{native_password_hash(value)}'")
        self.unsafe = True

    def connection(self, i: int) -> None:
        tok = self.tokens[i]
        scrubbed = _scrub_connection(tok.text)
        if scrubbed == tok.text:
            return
        self.unsafe = True
        if self.w(i + 1) != WITHHELD_MARK:
            self.replace(i, i, f"{scrubbed} {WITHHELD_MARK}")
        elif "***" not in tok.text:  # pragma: no cover - a marker after an unredacted URL
            self.replace(i, i, scrubbed)


def _tokens(sql: str) -> tuple[list[Token], bool] | None:
    for backslash_escapes in (True, False):  # NO_BACKSLASH_ESCAPES text may not lex the default way
        try:
            return scan(sql, backslash_escapes), backslash_escapes
        except LexError:
            continue
    return None


def redact_secrets(sql: str) -> Redaction:
    """``sql`` with every clear-text password replaced by its stored form or withheld (module docstring)."""
    if not _mentions(sql, _TRIGGER_WORDS):
        return Redaction(sql, False, False)
    scanned = _tokens(sql)
    if scanned is None:
        return Redaction(_UNSCANNABLE, True, True)
    rw = _Rewriter(sql, *scanned)
    rw.run()
    if not rw.edits:
        return Redaction(sql, False, rw.unsafe)
    out, last = [], 0
    for start, end, text in sorted(rw.edits):
        if start < last:  # pragma: no cover - rules never overlap; keep the first edit
            continue
        out.append(sql[last:start])
        out.append(text)
        last = end
    out.append(sql[last:])
    return Redaction("".join(out), True, rw.unsafe)


def redact_event(ev: ChangeEvent) -> ChangeEvent:
    """``ev`` with :func:`redact_secrets` applied to its statements (for events published before
    producers redacted); the same object when nothing changes."""
    statements = []
    changed = False
    for st in ev.statements:
        # a statement given as bytes (dbmux.core.charsets): the secret is in them, redact those
        red = redact_secrets(st.sql if st.raw is None else st.raw.decode("utf-8", "surrogateescape"))
        if red.changed or (red.unsafe and not st.unsafe):
            unsafe = st.unsafe or red.unsafe
            st = dataclasses.replace(st, sql=red.sql, unsafe=unsafe) if st.raw is None else Statement.from_escaped(
                red.sql, st.charset, params=st.params, insert_id=st.insert_id, last_insert_id=st.last_insert_id,
                unsafe=unsafe, kind=st.kind)
            changed = True
        statements.append(st)
    return dataclasses.replace(ev, statements=tuple(statements)) if changed else ev


# --------------------------------------------------------------------------------------------- text

_TEXT_KEYS = re.compile(
    r"""(?ix)
      \bIDENTIFIED \s+ (?: (?:VIA|WITH) \s+ [\w'"`$.-]+ \s+ )? BY \s+ (?:PASSWORD \s+)?
    | \bSET \s+ PASSWORD \b [^=;]{0,200} = \s*                 # SET PASSWORD [FOR 'u'@'h'] = '..'
    | (?<![\w$]) (?:\w*_)? PASSWORD ["'] \s* : \s*           # "password": "..."
    | (?<![\w$]) (?:\w*_)? PASSWORD \s* (?: [=(:] \s* )?     # PASSWORD('..'), PASSWORD = '..', PASSWORD '..'
    | \bREPLACE \s+
    """)
_MIN_ECHO = 3  # values this long are also removed wherever else they occur in the text


def _quoted_at(text: str, pos: int) -> tuple[int, int] | None:
    """The span of the content of a quoted value starting at ``pos`` (after optional backslashes, as in
    ``repr`` or JSON text); an unterminated one runs to the end of the text."""
    while pos < len(text) and text[pos] == "\\":
        pos += 1
    if pos >= len(text) or text[pos] not in "'\"":
        return None
    q, start = text[pos], pos + 1
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 < len(text) and text[i + 1] == q:
                return start, i  # an escaped closing quote (repr/JSON of the statement)
            i += 2
            continue
        if c == q:
            if i + 1 < len(text) and text[i + 1] == q:
                i += 2
                continue
            return start, i
        i += 1
    return start, len(text)


def _secret_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _TEXT_KEYS.finditer(text):
        span = _quoted_at(text, m.end())
        if span is None:
            continue
        value = text[span[0]:span[1]]
        if value in ("", "***") or _is_hash(value):
            continue
        spans.append(span)
    for rx, group in ((_URL_PASSWORD, 2), (_KV_PASSWORD, 2)):
        for m in rx.finditer(text):
            if m.group(group) != "***":
                spans.append(m.span(group))
    return spans


def _python_unescaped(raw: str) -> str:
    """``raw`` read as the inside of a Python/JSON literal (``repr`` escapes ``\\x``, ``\\u`` ...)."""
    try:
        return raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return raw


def _values(text: str, spans: list[tuple[int, int]]) -> set[str]:
    """The secrets at ``spans``, as written and as the other ways they may be written elsewhere in the text."""
    out = set()
    for start, end in spans:
        raw = text[start:end]
        sql_value = raw.replace("''", "'").replace('""', '"')
        for v in (raw, sql_value, _python_unescaped(raw), _python_unescaped(sql_value)):
            if len(v) >= _MIN_ECHO:
                out.add(v)
    return out


def redact_text(text: str, *sources: str) -> str:
    """``text`` (a log line, an error message) with every password it quotes -- or that ``sources``
    (e.g. the statement an error is about) quote -- replaced by ``***``."""
    if not text:
        return text
    spans = _secret_spans(text) if _mentions(text, _TEXT_TRIGGER_WORDS) else []
    known = _values(text, spans)
    for src in sources:
        if src and _mentions(src, _TEXT_TRIGGER_WORDS):
            known |= _values(src, _secret_spans(src))
    if not spans and not known:
        return text
    out, last = [], 0
    for start, end in sorted(spans):
        if start < last:
            continue
        out.append(text[last:start])
        out.append("***")
        last = end
    out.append(text[last:])
    result = "".join(out)
    for value in sorted(known, key=len, reverse=True):
        result = result.replace(value, "***")
    return result


def redact_payload(data: bytes) -> bytes:
    """Raw bytes that may hold text (an undecodable event bound for the dead-letter topic) with
    :func:`redact_text` applied; bytes that are not UTF-8 stay as they are around the redactions."""
    text = bytes(data).decode("utf-8", "surrogateescape")
    redacted = redact_text(text)
    return data if redacted == text else redacted.encode("utf-8", "surrogateescape")
