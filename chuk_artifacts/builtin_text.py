"""The built-in ``extract_text`` plugin: the text of text-like artifacts (``text/*``, JSON).

It runs last (``trylast``), so a plugin that extracts the text of PDFs, Office files or images
(OCR) answers first for what it knows, and this one for the rest.
"""

from __future__ import annotations

from .fulltext import decode_text, is_text_mime
from .hookspecs import hookimpl


@hookimpl(trylast=True)
def extract_text(mime: str, filename: str | None, data: bytes, complete: bool) -> str | None:
    return decode_text(data) if is_text_mime(mime) else None
