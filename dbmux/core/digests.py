"""Statement digests: what sqlglot finds in a statement, computed once per statement *shape* (the
ingress classifying and rewriting writes, a replicator filtering statements by table).

A statement's digest is its token stream with each literal -- a number, a single-quoted string --
replaced by a placeholder of its kind (ProxySQL's query digest, without normalising anything else:
same keywords, same identifiers, same operators, same order). What the ingress asks sqlglot (the
tables a statement names, the functions it calls) depends on the statement's structure only, never
on a literal's value, so it is cached per digest: a text-protocol application sends a handful of
shapes with ever-new literals, and sqlglot then runs once per shape instead of once per execution.
Double-quoted strings stay as they are (under ``ANSI_QUOTES`` they are identifiers). Property tests
(tests/unit/test_digests.py) check the cached answer equals a fresh parse on generated statements.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from prometheus_client import Counter

from dbmux.core.sqllex import Token

__all__ = ["DigestCache", "digest"]

LOOKUPS = Counter("dbmux_digest_cache_total", "Statement-shape cache lookups (sqlglot runs on a miss)",
                  ["cache", "result"])

V = TypeVar("V")


def _placeholder(t: Token) -> str:
    if t.type == "number":
        return "?x" if t.text[:2].lower() in ("0x", "0b") else "?n"
    if t.type == "string" and t.text[0] == "'":
        return "?s"
    return t.text


def digest(tokens: Sequence[Token]) -> str:
    """The statement's shape (see the module docstring); tokens as :func:`dbmux.core.sqllex.scan` gives them."""
    return " ".join([_placeholder(t) if t.type in ("number", "string") else t.text for t in tokens])


class DigestCache(Generic[V]):
    """A bounded LRU of per-shape answers. ``get(key, compute, keep)`` returns the cached answer for
    ``key``, else ``compute()``'s, stored when ``keep(answer)`` (default: always) -- e.g. not a parse
    failure, which may come from one literal's content rather than from the shape."""

    def __init__(self, name: str, size: int = 8192) -> None:
        self._items: OrderedDict[str, V] = OrderedDict()
        self.size = size
        self._hit = LOOKUPS.labels(name, "hit")
        self._miss = LOOKUPS.labels(name, "miss")

    def get(self, key: str, compute: Callable[[], V], keep: Callable[[V], bool] | None = None) -> V:
        items = self._items
        try:
            value = items[key]
        except KeyError:
            self._miss.inc()
            value = compute()
            if keep is None or keep(value):
                items[key] = value
                if len(items) > self.size:
                    items.popitem(last=False)
            return value
        items.move_to_end(key)
        self._hit.inc()
        return value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
