"""A statement's bytes and their character set: what travels byte-exact, and its text for people.

The primary reads a client's statement as bytes in the session's ``character_set_client``; what it
stores depends on both (``SET NAMES latin1`` then ``'caf\\xc3\\xa9'`` stores five characters,
``cafÃ©``; the same bytes in utf8mb4 store four, ``café``). A change event therefore carries a
statement as its exact bytes plus that character set (:class:`~dbmux.core.events.Statement`:
``sql``, ``raw``, ``charset``), and keeps the plain UTF-8 text form only where it *is* the bytes:

- ``raw is None``: the bytes are ``sql.encode("utf-8")`` -- the statement is UTF-8 text in a UTF-8
  character set, or plain ASCII (the same bytes in every ASCII-compatible character set);
- otherwise ``raw`` holds the bytes and ``sql`` is :func:`sql_text` of them: the text they stand for
  in their character set, undecodable bytes (binary literals, the ``binary`` character set) as U+FFFD.
  That text serves logs, classification and table filters; MySQL targets apply ``raw`` in its own
  character set, PostgreSQL targets the row form.

Producers turn a statement's bytes into those fields with :func:`bytes_fields`, or, when they hold
it the way the ingress does -- its bytes decoded as UTF-8 with ``surrogateescape``, a lossless view --
with :func:`statement_fields`.
"""

from __future__ import annotations

import codecs

__all__ = ["UTF8_CHARSETS", "python_codec", "sql_text", "statement_fields", "bytes_fields", "is_utf8_charset"]

UTF8_CHARSETS = frozenset({"utf8mb4", "utf8mb3", "utf8"})
"""MySQL character sets whose bytes are UTF-8 (utf8mb3: at most 3 bytes a character)."""

# MySQL character set -> the Python codec that decodes it (those without one decode as UTF-8 with
# replacement: their text is informative only). latin1 is MySQL's: cp1252 plus C1 controls (below).
_CODECS = {
    "utf8mb4": "utf-8", "utf8mb3": "utf-8", "utf8": "utf-8", "latin1": "cp1252", "ascii": "ascii",
    "latin2": "iso8859_2", "latin5": "iso8859_9", "latin7": "iso8859_13", "greek": "iso8859_7",
    "hebrew": "iso8859_8", "cp1250": "cp1250", "cp1251": "cp1251", "cp1256": "cp1256", "cp1257": "cp1257",
    "cp850": "cp850", "cp852": "cp852", "cp866": "cp866", "koi8r": "koi8_r", "koi8u": "koi8_u",
    "macce": "mac_latin2", "macroman": "mac_roman", "tis620": "tis_620", "big5": "big5", "sjis": "shift_jis",
    "cp932": "cp932", "ujis": "euc_jp", "eucjpms": "euc_jp", "euckr": "euc_kr", "gb2312": "gb2312",
    "gbk": "gbk", "gb18030": "gb18030", "ucs2": "utf_16_be", "utf16": "utf_16_be", "utf16le": "utf_16_le",
    "utf32": "utf_32_be",
}
# MySQL's latin1 is cp1252 with the five bytes cp1252 leaves undefined mapped to the C1 controls of
# the same number: a 256-character decoding table for codecs.charmap_decode (C speed).
_LATIN1_TABLE = "".join(bytes([b]).decode("cp1252", "ignore") or chr(b) for b in range(256))


def is_utf8_charset(charset: str | None) -> bool:
    """Is ``charset`` (None: unknown, taken as the utf8mb4 every dbmux connection speaks) UTF-8?"""
    return charset is None or charset.lower() in UTF8_CHARSETS


def python_codec(charset: str | None) -> str | None:
    """The Python codec for a MySQL character set name; None for ``binary`` and unknown ones."""
    return _CODECS.get(charset.lower()) if charset else "utf-8"


def sql_text(data: bytes, charset: str | None) -> str:
    """The text ``data`` stands for in ``charset`` (bytes it cannot decode: U+FFFD). Deterministic:
    the decoder of an event derives a statement's ``sql`` from its ``raw`` bytes with it."""
    codec = python_codec(charset) or "utf-8"
    if codec == "cp1252":  # MySQL's latin1: every byte decodes
        return codecs.charmap_decode(data, "strict", _LATIN1_TABLE)[0]
    return data.decode(codec, "replace")


def statement_fields(escaped: str, charset: str | None) -> tuple[str, bytes | None]:
    """``(sql, raw)`` of a statement held as ``escaped``: its bytes decoded as UTF-8 with
    ``surrogateescape`` (how the ingress holds what a client sent). ``raw`` is None when the bytes
    are ``sql.encode("utf-8")`` (see the module docstring), which is the common case and costs no copy."""
    if escaped.isascii():  # (O(1) for CPython's compact ASCII strings)
        return escaped, None
    if is_utf8_charset(charset):
        try:
            escaped.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 (a _binary'...' literal, say)
            pass
        else:
            return escaped, None
    data = escaped.encode("utf-8", "surrogateescape")
    return sql_text(data, charset), data


def bytes_fields(data: bytes, charset: str | None) -> tuple[str, bytes | None]:
    """``(sql, raw)`` of a statement given as its bytes (see :func:`statement_fields`)."""
    if data.isascii():
        return data.decode("ascii"), None
    if is_utf8_charset(charset):
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError:
            pass
    return sql_text(data, charset), data
