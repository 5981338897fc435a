"""A statement's skeleton for shard routing (pure; no I/O): its text, comment-free, with bound ``?`` and
simple literals replaced by numbered variables (``@__dbmux_vN``), so the executions of one prepared
statement -- or texts that differ only in literals -- share one parse in :mod:`replicator.shard_analysis`.
The variables are its *slots*; each execution reads its values from the slots."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dbmux.core.sqllex import Token

__all__ = ["DML_VERBS", "INT_TEXT", "SLOT_PREFIX", "Skeleton", "skeleton", "slot_number"]

SLOT_PREFIX = "__dbmux_v"
"""A slot's variable is ``@`` + SLOT_PREFIX + its number."""
DML_VERBS = frozenset({"INSERT", "REPLACE", "UPDATE", "DELETE"})
_DML_MODIFIERS = frozenset({"LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "QUICK", "IGNORE"})
INT_TEXT = re.compile(r"[0-9]+\Z")
"""The text of an unsigned integer literal."""
_DECIMAL_TEXT = re.compile(r"[0-9]+\.[0-9]*\Z")


@dataclass(frozen=True, slots=True)
class Skeleton:
    """A statement's text as parsed: comment-free, ``?`` and simple literals replaced by numbered
    variables. ``slots[n]`` is ``(True, param index)`` or ``(False, literal value)``."""

    text: str
    slots: tuple[tuple[bool, Any], ...]
    n_params: int
    replace: bool = False  # REPLACE, parsed as INSERT
    ignore: bool = False  # the IGNORE modifier (removed before parsing, like LOW_PRIORITY/QUICK/DELAYED)


def _literal(tokens: list[Token], i: int) -> tuple[bool, Any]:
    """Can token i be a slot, and its value: numbers and plain strings after an operator."""
    tok = tokens[i]
    prev = tokens[i - 1] if i else None
    if prev is None or prev.type != "op" or prev.text == ".":
        return False, None
    if tok.type == "number":
        if INT_TEXT.match(tok.text):
            return True, int(tok.text)
        if _DECIMAL_TEXT.match(tok.text):
            return True, Decimal(tok.text)
        return False, None
    if tok.type == "string":
        quote, inner = tok.text[0], tok.text[1:-1]
        if "\\" in inner or quote in inner:
            return False, None
        if i + 1 < len(tokens) and tokens[i + 1].type == "string":  # 'a' 'b' is one literal
            return False, None
        return True, inner
    return False, None


def skeleton(tokens: list[Token], *, slot_literals: bool) -> Skeleton:
    """The skeleton of one statement's tokens: ``?`` always slotted; simple literals too in DML when
    ``slot_literals``."""
    verb = tokens[0].upper
    dml = verb in DML_VERBS
    out: list[str] = []
    slots: list[tuple[bool, Any]] = []
    n_params = 0
    replace = ignore = False
    modifiers = dml
    prev: Token | None = None
    for i, tok in enumerate(tokens):
        text = tok.text
        if i and modifiers and tok.type == "word" and tok.upper in _DML_MODIFIERS:
            ignore = ignore or tok.upper == "IGNORE"
            continue
        if i:
            modifiers = False
        if tok.type == "param":
            slots.append((True, n_params))
            n_params += 1
            text = f"@{SLOT_PREFIX}{len(slots) - 1}"
        elif i == 0 and verb == "REPLACE":
            replace, text = True, "INSERT"
        elif (verb in ("INSERT", "REPLACE") and tok.upper == "VALUE" and tok.type == "word" and i + 1 < len(tokens)
              and tokens[i + 1].text == "("):  # INSERT ... VALUE (..): sqlglot knows VALUES only
            text = "VALUES"
        elif dml and slot_literals and tok.type in ("number", "string"):
            ok, value = _literal(tokens, i)
            if ok:
                slots.append((False, value))
                text = f"@{SLOT_PREFIX}{len(slots) - 1}"
        # x'0a', b'01', N'x', _utf8mb4'x': keep a word glued to its string
        glue = prev is not None and prev.end == tok.start and prev.type == "word" and tok.type == "string"
        if out and not glue:
            out.append(" ")
        out.append(text)
        prev = tok
    return Skeleton("".join(out), tuple(slots), n_params, replace, ignore)


def slot_number(name: str) -> int | None:
    """The number of the slot whose variable is named ``name`` (without the ``@``); None: not a slot."""
    if name.startswith(SLOT_PREFIX) and name[len(SLOT_PREFIX):].isdigit():
        return int(name[len(SLOT_PREFIX):])
    return None
