"""Keep passwords out of change events and logs.

Account statements carry clear-text passwords (``CREATE USER u IDENTIFIED BY 'pw'``, ``ALTER USER``,
``GRANT ... IDENTIFIED BY``, ``SET PASSWORD = PASSWORD('pw')``). The primary gets the statement as the
client sent it; the *captured* copy is rewritten the way MariaDB's own binlog does it: the clear text
becomes the ``mysql_native_password`` hash (``IDENTIFIED BY PASSWORD '*…'``), which gives replicas the
same credential without the secret. Forms that cannot be expressed as a hash (``IDENTIFIED VIA|WITH
plugin USING|BY PASSWORD('pw')`` / ``AS 'pw'``) are redacted to ``'***'`` and flagged unsafe, so targets
take the binlog's row/statement form instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from dbmux.core.sqllex import LexError, Token, scan


@dataclass(frozen=True, slots=True)
class Redaction:
    sql: str
    changed: bool
    unsafe: bool


def native_password_hash(password: str) -> str:
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def _unquote(tok: Token) -> str:
    body = tok.text[1:-1]
    q = tok.text[0]
    return body.replace(q + q, q).replace("\\\\", "\x00").replace("\\" + q, q).replace("\x00", "\\")


_SECRET_WORDS = frozenset({"IDENTIFIED", "PASSWORD"})


def redact_secrets(sql: str) -> Redaction:
    upper = sql.upper()
    if "IDENTIFIED" not in upper and "PASSWORD" not in upper:
        return Redaction(sql, False, False)
    try:
        tokens = [t for t in scan(sql) if t.type not in ("space", "comment")]
    except LexError:
        return Redaction("/* dbmux: statement withheld, it could not be scanned for secrets */", True, True)
    edits: list[tuple[int, int, str]] = []
    unsafe = False
    words = [t.text.upper() if t.type == "word" else t.text for t in tokens]
    for i, tok in enumerate(tokens):
        if tok.type != "string":
            continue
        prev = words[i - 1] if i else ""
        prev2 = words[i - 2] if i > 1 else ""
        if prev == "BY" and prev2 == "IDENTIFIED":
            # IDENTIFIED BY 'pw'  ->  IDENTIFIED BY PASSWORD '*hash'
            edits.append((tok.start, tok.end, f"PASSWORD '{native_password_hash(_unquote(tok))}'"))
        elif prev == "(" and prev2 == "PASSWORD" and (i < 3 or words[i - 3] != "BY"):
            if i > 3 and words[i - 3] in ("=",) and "SET" in words[:i]:
                # SET PASSWORD [FOR u] = PASSWORD('pw')  ->  = '*hash'
                start = tokens[i - 2].start
                end = tokens[i + 1].end if i + 1 < len(tokens) and tokens[i + 1].text == ")" else tok.end
                edits.append((start, end, f"'{native_password_hash(_unquote(tok))}'"))
            else:
                edits.append((tok.start, tok.end, "'***'"))
                unsafe = True
        elif any(w in _SECRET_WORDS for w in words[max(0, i - 4):i]) and prev != "PASSWORD":
            # USING 'x' / AS 'x' / WITH plugin BY 'x' after IDENTIFIED ... : cannot hash for a plugin
            if prev in ("USING", "AS", "BY") or prev2 in ("USING", "AS"):
                edits.append((tok.start, tok.end, "'***'"))
                unsafe = True
    if not edits:
        return Redaction(sql, False, False)
    out, last = [], 0
    for start, end, text in sorted(edits):
        out.append(sql[last:start])
        out.append(text)
        last = end
    out.append(sql[last:])
    return Redaction("".join(out), True, unsafe)
