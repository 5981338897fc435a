"""MySQL DDL text as sqlglot reads it right (pure): the tokenizer :mod:`replicator.pg_ddl` and
:mod:`replicator.pg_sql` use, and :func:`parseable_ddl` (type synonyms, spatial types, MariaDB's
``PERSISTENT``, MySQL 8's ``SRID n``, ``ZEROFILL``, ``CREATE SPATIAL|FULLTEXT INDEX``)."""

from __future__ import annotations

import re

from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

from dbmux.replicator.pg_types import Untranslatable

__all__ = ["tokens", "parseable_ddl", "CREATE_KIND"]


class _Tokenizer(MySQL.Tokenizer):
    COMMANDS: set = set()  # tokenize RENAME/REPLACE statements fully instead of as one command string


def tokens(sql: str) -> list[Token]:
    try:
        return _Tokenizer().tokenize(sql)
    except SqlglotError as e:
        raise Untranslatable(f"unparseable statement: {e}", sql) from None


_SPATIAL_TYPES = frozenset({"POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING", "MULTIPOLYGON",
                            "GEOMETRYCOLLECTION", "GEOMCOLLECTION"})
# MySQL/MariaDB type synonyms sqlglot reads otherwise (LONG as BIGINT, INT8 as TINYINT, REAL as FLOAT4) or not
# at all; REAL is DOUBLE unless the session's sql_mode has REAL_AS_FLOAT (real_as_float=True)
_SYNONYMS = {"LONG": "MEDIUMTEXT", "MIDDLEINT": "MEDIUMINT", "INT1": "TINYINT", "INT2": "SMALLINT",
             "INT3": "MEDIUMINT", "INT4": "INT", "INT8": "BIGINT", "FLOAT4": "FLOAT", "FLOAT8": "DOUBLE",
             "REAL": "DOUBLE", "NCHAR": "CHAR", "INET4": "INET", "INET6": "INET", "NVARCHAR": "VARCHAR",
             **{t: "GEOMETRY" for t in _SPATIAL_TYPES}}
_PAIRS = {("LONG", "VARCHAR"): "MEDIUMTEXT", ("LONG", "VARBINARY"): "MEDIUMBLOB", ("NATIONAL", "CHAR"): "CHAR",
          ("NATIONAL", "VARCHAR"): "VARCHAR", ("NATIONAL", "CHARACTER"): "CHARACTER"}
_DDL_WORD = re.compile("|".join(sorted(set(_SYNONYMS) | {"NATIONAL", "SRID", "SPATIAL", "FULLTEXT", "PERSISTENT",
                                                                     "ZEROFILL"})),
                       re.IGNORECASE)
CREATE_KIND = re.compile(r"\s*CREATE\s+(SPATIAL|FULLTEXT)\s", re.IGNORECASE)
_NOT_COLUMN = frozenset({"KEY", "INDEX", "CONSTRAINT", "UNIQUE", "PRIMARY", "FOREIGN", "CHECK", "FULLTEXT", "SPATIAL",
                         "PERIOD"})
_INTEGERS = frozenset({"TINYINT", "SMALLINT", "MEDIUMINT", "INT", "INTEGER", "BIGINT", "INT1", "INT2", "INT3", "INT4",
                       "INT8", "MIDDLEINT"})
_BEFORE_COLUMN = frozenset({"(", ",", "ADD", "COLUMN", "MODIFY", "EXISTS"})


def parseable_ddl(sql: str, *, real_as_float: bool = False) -> str:
    """DDL text as sqlglot reads it right: type synonyms in their plain spelling (``LONG`` MEDIUMTEXT, ``INT8``
    BIGINT, ``REAL`` DOUBLE or, ``real_as_float``, FLOAT, ``NCHAR`` CHAR, ...), MySQL's spatial types as
    GEOMETRY (all one BYTEA type here), MariaDB's ``PERSISTENT`` (generated columns) as ``STORED``, MySQL 8's
    ``SRID n`` column attribute dropped and ``CREATE SPATIAL INDEX`` as ``CREATE INDEX``
    (:func:`translate_create_index` reads SPATIAL from the original). A type is a word right after a column
    name that follows ``(``, ``,``, ADD, COLUMN, MODIFY (or CHANGE's new name)."""
    if not _DDL_WORD.search(sql):
        return sql
    toks = tokens(sql)
    out, last = [], 0
    if CREATE_KIND.match(sql):
        out.append(sql[:toks[1].start])
        last = toks[1].end + 1
    skip = -1
    for i, t in enumerate(toks):
        if i < 2 or i <= skip:
            continue
        word, prev = t.text.upper(), toks[i - 1]
        typed = prev.text.upper() not in _NOT_COLUMN and prev.token_type not in (
            TokenType.L_PAREN, TokenType.COMMA, TokenType.DOT, TokenType.R_PAREN) and (
            toks[i - 2].text.upper() in _BEFORE_COLUMN or (i >= 3 and toks[i - 3].text.upper() == "CHANGE"))
        pair = (word, toks[i + 1].text.upper()) if i + 1 < len(toks) else None
        if typed and pair in _PAIRS:
            out.append(sql[last:t.start] + _PAIRS[pair])
            last, skip = toks[i + 1].end + 1, i + 1
        elif typed and word in _SYNONYMS:
            out.append(sql[last:t.start] + ("FLOAT" if word == "REAL" and real_as_float else _SYNONYMS[word]))
            last = t.end + 1
        elif word == "PERSISTENT" and prev.token_type == TokenType.R_PAREN:
            out.append(sql[last:t.start] + "STORED")
            last = t.end + 1
        elif word == "ZEROFILL":  # display padding, and UNSIGNED (MySQL adds it): the values are the same
            unsigned = "UNSIGNED" in (prev.text.upper(), toks[i + 1].text.upper() if i + 1 < len(toks) else "")
            integer = any(x.text.upper() in _INTEGERS for x in toks[max(0, i - 5):i])  # (other types keep theirs)
            out.append(sql[last:t.start] + ("UNSIGNED" if integer and not unsigned else ""))
            last = t.end + 1
        elif word == "SRID" and i + 1 < len(toks) and toks[i + 1].token_type == TokenType.NUMBER:
            out.append(sql[last:t.start])
            last = toks[i + 1].end + 1
    return "".join(out) + sql[last:]
