"""What full-text search indexes and how a query's text becomes words.

The databases do the searching (SQLite FTS5, PostgreSQL full-text search); this module only
prepares their input: the words of a query (user text is words, never query syntax), the text of
meta values, which MIME types are text, and the text of a bounded prefix of an artifact's bytes.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .errors import InvalidArgumentError

__all__ = [
    "MAX_QUERY_LENGTH",
    "MAX_QUERY_WORDS",
    "decode_text",
    "is_text_mime",
    "meta_text",
    "normalized_words",
    "query_words",
]

#: The longest ``text=`` a search accepts (characters), and the most words in it.
MAX_QUERY_LENGTH = 1000
MAX_QUERY_WORDS = 32

# A word: letters and digits (what SQLite's unicode61 tokenizer keeps; ``_`` separates).
_WORD = re.compile(r"[^\W_]+")


def _fold(text: str) -> str:
    """Lower case without diacritics (as FTS5's ``unicode61 remove_diacritics 2`` folds)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalized_words(text: str) -> str:
    """``text`` as folded words separated by spaces: what PostgreSQL indexes, so that both
    databases split ``report-2024.pdf`` into ``report 2024 pdf`` (PostgreSQL's parser would keep
    file names, URLs and hyphenated words whole)."""
    return " ".join(_WORD.findall(_fold(text)))


def query_words(text: object) -> list[str]:
    """The words of a search's ``text=``; every one must be found (in any column).

    Refused with ``InvalidArgumentError``: anything but a string, an empty or blank one, one
    longer than ``MAX_QUERY_LENGTH``, one with no letter or digit, one of more than
    ``MAX_QUERY_WORDS`` words.
    """
    if not isinstance(text, str):
        raise InvalidArgumentError("text must be a string")
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidArgumentError(f"text is longer than {MAX_QUERY_LENGTH} characters")
    words = list(dict.fromkeys(_WORD.findall(_fold(text))))
    if not words:
        raise InvalidArgumentError("text must contain at least one word (letters or digits)")
    if len(words) > MAX_QUERY_WORDS:
        raise InvalidArgumentError(f"text has {len(words)} words; at most {MAX_QUERY_WORDS} are allowed")
    return words


def meta_text(meta: Any) -> str:
    """The values of a meta dict (nested ones too, not the keys) as one text."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif value is not None:
            out.append(value if isinstance(value, str) else str(value).lower())

    walk(meta or {})
    return " ".join(out)


def is_text_mime(mime: str) -> bool:
    """Text the built-in extraction reads: ``text/*``, JSON (``application/json``, ``*+json``)."""
    base = mime.split(";", 1)[0].strip().lower()
    return base.startswith("text/") or base == "application/json" or base.endswith("+json")


def decode_text(data: bytes) -> str:
    """A prefix of UTF-8 text as ``str`` (a character cut at the end is dropped; invalid bytes
    become U+FFFD; NUL, which PostgreSQL text refuses, becomes a space)."""
    text = data.decode("utf-8", errors="replace")
    if text.endswith("\ufffd") and not data.endswith(b"\xef\xbf\xbd"):
        text = text.rstrip("\ufffd")
    return text.replace("\x00", " ")
