"""HMAC-signed URLs for backends without native presigning (memory, local files).

A URL is bound to its HTTP method, its path (which names one key or upload) and its expiry;
changing any of them, or the signature, makes ``verify`` fail. The secret comes from
configuration, or is generated once and kept in the catalog so URLs survive restarts and are
accepted by every instance sharing that catalog.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Any, Mapping
from urllib.parse import quote, urlencode

from .models import Row

__all__ = ["UrlSigner", "SignatureError", "generate_secret", "content_disposition", "HmacPresigner"]


class SignatureError(Exception):
    """The URL's signature is missing, wrong or expired."""


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


class UrlSigner:
    def __init__(self, secret: str | bytes, base_url: str) -> None:
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self.base_url = base_url.rstrip("/")

    def _signature(self, method: str, path: str, expires: int) -> str:
        message = f"{method.upper()}\n{path}\n{expires}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, method: str, path: str, expires_in: int) -> str:
        """A full URL for ``method`` on ``path`` (starting with ``/``) valid for ``expires_in`` s."""
        expires = int(time.time()) + int(expires_in)
        query = urlencode({"expires": expires, "signature": self._signature(method, path, expires)})
        return f"{self.base_url}{quote(path, safe='/')}?{query}"

    def verify(self, method: str, path: str, query: Mapping[str, str]) -> None:
        """Raise ``SignatureError`` unless ``query`` carries a valid, unexpired signature."""
        try:
            expires = int(query["expires"])
            given = query["signature"]
        except (KeyError, ValueError):
            raise SignatureError("missing or malformed signature") from None
        expected = self._signature(method, path, expires)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise SignatureError("invalid signature")
        if expires < time.time():
            raise SignatureError("URL has expired")


def content_disposition(filename: str | None, disposition: str = "attachment") -> str:
    """A ``Content-Disposition`` value (``attachment``, or ``inline`` for share links that ask
    for it) for ``filename`` (ASCII fallback and UTF-8).

    Signed download URLs carry it: the gateway sends it, S3 URLs ask for it
    (``ResponseContentDisposition``).
    """
    kind = "inline" if disposition == "inline" else "attachment"
    name = (filename or "download").rsplit("/", 1)[-1] or "download"
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name)[:200]
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class HmacPresigner:
    """Gateway URLs signed with the store's secret: ``/blob/<key>``, ``/upload/<id>[/part/<n>]``."""

    name = "hmac"

    def __init__(self, signer: UrlSigner) -> None:
        self.signer = signer

    @classmethod
    def for_store(cls, store: Any) -> HmacPresigner:
        secret = store.settings.presign_secret
        if not secret:
            if store.catalog.in_memory:
                secret = generate_secret()
            else:  # generated once, kept in the catalog: survives restarts, shared by instances
                with store.catalog.write() as conn:
                    secret = store.catalog.set_info_if_absent(conn, "presign_secret", generate_secret())
        return cls(UrlSigner(secret, store.settings.public_url))

    def download_url(self, row: Row, expires: int) -> str:
        return self.signer.sign("GET", f"/blob/{row['key']}", expires)

    def upload_url(self, upload: Row, expires: int) -> str:
        return self.signer.sign("PUT", f"/upload/{upload['upload_id']}", expires)

    def part_url(self, upload: Row, part_number: int, expires: int) -> str:
        return self.signer.sign("PUT", f"/upload/{upload['upload_id']}/part/{part_number}", expires)
