"""The WSGI gateway that serves HMAC-signed URLs for memory and local backends.

``make_app(store)`` returns a WSGI application: mount it in any WSGI server (or an ASGI server
through a WSGI adapter), or run ``chuk-admin serve``. Routes, all signature-checked:

- ``GET|HEAD /blob/<key>``: the object, with Range, ETag, Content-Type, Content-Disposition
- ``PUT /upload/<upload_id>``: the body of a presigned upload
- ``PUT /upload/<upload_id>/part/<n>``: one part of a multipart upload (answers with its ETag)
- ``GET|HEAD /s/<token>``: a share link (``store.share``), on every backend: the bytes from
  memory / filesystem stores, a redirect to a fresh short-lived presigned URL on S3 / COS
  (``serve_share``, which holds the whole route apart from the WSGI plumbing)

A missing, tampered, expired or re-targeted signature gets 403 and touches nothing. The signed
routes exist only for stores without native presigning; share links are served for every store.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol
from urllib.parse import parse_qsl

from .errors import (
    ArtifactExpiredError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidArgumentError,
    QuotaExceededError,
    ShareGoneError,
    SharePasswordError,
)
from .interfaces import Presigner
from .models import SignedBlob
from .signing import HmacPresigner, SignatureError, content_disposition

__all__ = ["make_app", "serve", "serve_share", "SignedURLStore", "ShareStore", "GatewayStore"]

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
_CHUNK = 256 * 1024
_PART = re.compile(r"/upload/([^/]+)/part/([0-9]{1,5})")
_UPLOAD = re.compile(r"/upload/([^/]+)")
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
_SHARE = re.compile(r"/s/([^/]+)")
_TEXT = ("Content-Type", "text/plain; charset=utf-8")
Answer = tuple[str, list[tuple[str, str]], Iterable[bytes]]


class _Response(Exception):
    def __init__(self, status: str, message: str = "", headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def _body(environ: dict[str, Any]) -> Iterator[bytes]:
    """The request body in chunks; needs Content-Length (no chunked requests)."""
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        raise _Response("411 Length Required", "Content-Length is required") from None
    if remaining < 0:
        raise _Response("400 Bad Request", "bad Content-Length")
    stream = environ["wsgi.input"]

    def chunks() -> Iterator[bytes]:
        left = remaining
        while left > 0:
            chunk = stream.read(min(_CHUNK, left))
            if not chunk:
                raise InvalidArgumentError("request body ended before Content-Length bytes")
            left -= len(chunk)
            yield chunk

    return chunks()


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=`` range as [start, end), ``None`` to send everything; raises 416."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # multiple or unknown ranges: answer with the whole object
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise _Response("416 Range Not Satisfiable", "", [("Content-Range", f"bytes */{size}")])
        return max(0, size - n), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size or (last and int(last) < start):
        raise _Response("416 Range Not Satisfiable", "", [("Content-Range", f"bytes */{size}")])
    return start, end


class SignedURLStore(Protocol):
    """What the gateway needs from a store: its presigner (HMAC-signed URLs are verified with
    its secret), the artifact a signed key names, and the bodies of signed PUTs."""

    @property
    def presigner(self) -> Presigner: ...

    @property
    def storage_provider(self) -> str: ...

    def signed_blob(self, key: str) -> SignedBlob: ...

    def receive_upload(self, upload_id: str, chunks: Iterator[bytes]) -> str: ...

    def receive_part(self, upload_id: str, part_number: int, chunks: Iterator[bytes]) -> str: ...


class ShareStore(Protocol):
    """What ``serve_share`` needs from a store: ``open_share`` (``shares.ShareMethods``)."""

    def open_share(self, token: str, *, password: str | None = None) -> Any: ...


def _basic_password(authorization: str | None) -> str | None:
    """The password of an HTTP Basic ``Authorization`` header (the user name is ignored)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep else None


def _entity_headers(meta: Any, disposition: str) -> tuple[str, list[tuple[str, str]]]:
    etag = f'"{meta.sha256}"'
    return etag, [
        ("Content-Type", meta.mime),
        ("ETag", etag),
        ("Accept-Ranges", "bytes"),
        ("Content-Disposition", content_disposition(meta.filename, disposition)),
    ]


def _not_modified(etag: str, if_none_match: str | None) -> bool:
    # a list of entity tags, compared weakly (RFC 9110 13.1.2)
    wanted = {t.strip().removeprefix("W/") for t in (if_none_match or "").split(",")}
    return etag in wanted or "*" in wanted


def serve_share(store: ShareStore, method: str, token: str, headers: Mapping[str, str]) -> Answer:
    """The answer to ``GET|HEAD /s/<token>`` (see ``_share_answer``); a HEAD never has a body."""
    status, response_headers, body = _share_answer(store, method, token, headers)
    return status, response_headers, [] if method == "HEAD" else body


def _share_answer(store: ShareStore, method: str, token: str, headers: Mapping[str, str]) -> Answer:
    """The answer to ``GET|HEAD /s/<token>`` (the whole share route, server-independent).

    ``headers``: the request headers with lower-case names (``range``, ``if-range``,
    ``if-none-match``, ``authorization``). Returns (status line, response headers, body
    chunks). HEAD, a 304 and every refusal count nothing; a GET counts one download, then
    streams the bytes or redirects (307) to a presigned URL valid for at most a minute.
    """
    if method not in ("GET", "HEAD"):
        return "405 Method Not Allowed", [("Allow", "GET, HEAD")], []
    try:
        opened = store.open_share(token, password=_basic_password(headers.get("authorization")))
    except SharePasswordError as exc:
        challenge = ("WWW-Authenticate", 'Basic realm="chuk-artifacts share link", charset="UTF-8"')
        return "401 Unauthorized", [challenge, _TEXT], [str(exc).encode()]
    except (ShareGoneError, ArtifactExpiredError) as exc:
        return "410 Gone", [_TEXT], [str(exc).encode()]
    except ArtifactNotFoundError:
        return "404 Not Found", [_TEXT], [b"share link not found"]
    meta = opened.metadata
    etag, entity = _entity_headers(meta, opened.share.disposition)
    if _not_modified(etag, headers.get("if-none-match")):
        return "304 Not Modified", [("ETag", etag)], []
    size = meta.bytes
    status, (start, end) = "200 OK", (0, size)
    try:
        wanted = _parse_range(headers.get("range"), size)
    except _Response as r:
        return r.status, r.headers, []
    if wanted is not None and (headers.get("if-range") or etag).strip() == etag:
        status, (start, end) = "206 Partial Content", wanted
        entity.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
    entity.append(("Content-Length", str(end - start)))
    if method == "HEAD":
        return status, entity, []
    try:
        served = opened.download(start, end, _CHUNK)
    except (ShareGoneError, ArtifactExpiredError) as exc:
        return "410 Gone", [_TEXT], [str(exc).encode()]
    except ArtifactNotFoundError:
        return "404 Not Found", [_TEXT], [b"share link not found"]
    if served.redirect is not None:
        return "307 Temporary Redirect", [("Location", served.redirect), ("Content-Length", "0")], []
    return status, entity, served.chunks if end > start else []


class GatewayStore(SignedURLStore, ShareStore, Protocol):
    """Everything the gateway asks of a store."""


class Gateway:
    """The WSGI application of one store (``make_app``)."""

    def __init__(self, store: GatewayStore) -> None:
        presigner = store.presigner
        self.store = store
        # S3 / COS presign natively: S3 serves their signed URLs, this gateway only share links
        self.signer = presigner.signer if isinstance(presigner, HmacPresigner) else None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        try:
            status, headers, body = self.route(method, path, query, environ)
        except _Response as r:
            status, headers, body = r.status, r.headers, [r.message.encode()] if r.message else []
            if body:
                headers = [*headers, ("Content-Type", "text/plain; charset=utf-8")]
        except ArtifactExpiredError as exc:
            status, headers, body = "410 Gone", [("Content-Type", "text/plain; charset=utf-8")], [str(exc).encode()]
        except ArtifactNotFoundError as exc:
            status, headers, body = (
                "404 Not Found",
                [("Content-Type", "text/plain; charset=utf-8")],
                [str(exc).encode()],
            )
        except InvalidArgumentError as exc:
            status, headers, body = (
                "400 Bad Request",
                [("Content-Type", "text/plain; charset=utf-8")],
                [str(exc).encode()],
            )
        except QuotaExceededError as exc:
            status, headers, body = (
                "413 Content Too Large",
                [("Content-Type", "text/plain; charset=utf-8")],
                [str(exc).encode()],
            )
        except ArtifactStoreError as exc:
            log.warning("gateway: %s %s failed: %s", method, path, exc)
            status, headers, body = "409 Conflict", [("Content-Type", "text/plain; charset=utf-8")], [str(exc).encode()]
        start_response(status, [*headers, ("Cache-Control", "no-store")])
        return body

    def _verify(self, method: str, path: str, query: dict[str, str]) -> None:
        if self.signer is None:
            raise _Response(
                "404 Not Found",
                f"provider {self.store.storage_provider!r} presigns natively: its signed URLs are served by S3",
            )
        try:
            self.signer.verify(method, path, query)
        except SignatureError as exc:
            raise _Response("403 Forbidden", f"forbidden: {exc}") from None

    def route(
        self, method: str, path: str, query: dict[str, str], environ: dict[str, Any]
    ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        share = _SHARE.fullmatch(path)
        if share:
            return serve_share(self.store, method, share.group(1), _request_headers(environ))
        # The signature is checked against the request's own method first (HEAD reads as GET):
        # a URL signed for one method used with another is refused with 403 like any bad URL.
        if path.startswith("/blob/"):
            self._verify("GET" if method == "HEAD" else method, path, query)
            if method not in ("GET", "HEAD"):
                raise _Response("405 Method Not Allowed", "", [("Allow", "GET, HEAD")])
            return self.download(path[len("/blob/") :], method, environ)
        part = _PART.fullmatch(path)
        upload = _UPLOAD.fullmatch(path)
        if part or upload:
            self._verify(method, path, query)
            if method != "PUT":
                raise _Response("405 Method Not Allowed", "", [("Allow", "PUT")])
            if part:
                etag = self.store.receive_part(part.group(1), int(part.group(2)), _body(environ))
            else:
                assert upload is not None
                etag = self.store.receive_upload(upload.group(1), _body(environ))
            return "200 OK", [("ETag", etag), ("Content-Length", "0")], []
        raise _Response("404 Not Found", "not found")

    def download(
        self, key: str, method: str, environ: dict[str, Any]
    ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        blob = self.store.signed_blob(key)
        meta = blob.metadata
        etag = f'"{meta.sha256}"'
        headers = [
            ("Content-Type", meta.mime),
            ("ETag", etag),
            ("Accept-Ranges", "bytes"),
            ("Content-Disposition", content_disposition(meta.filename)),
        ]
        # a list of entity tags, compared weakly (RFC 9110 13.1.2)
        wanted_tags = {t.strip().removeprefix("W/") for t in environ.get("HTTP_IF_NONE_MATCH", "").split(",")}
        if etag in wanted_tags or "*" in wanted_tags:
            return "304 Not Modified", [("ETag", etag)], []
        size = meta.bytes
        status, (start, end) = "200 OK", (0, size)
        wanted = _parse_range(environ.get("HTTP_RANGE"), size)
        if wanted is not None and environ.get("HTTP_IF_RANGE", etag).strip() == etag:
            status, (start, end) = "206 Partial Content", wanted
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        headers.append(("Content-Length", str(end - start)))
        if method == "HEAD" or end == start:
            return status, headers, []
        return status, headers, blob.read(start, end, _CHUNK)


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request headers ``serve_share`` reads, from a WSGI environ."""
    names = ("range", "if-range", "if-none-match", "authorization")
    found = {name: environ.get("HTTP_" + name.upper().replace("-", "_")) for name in names}
    return {name: value for name, value in found.items() if value is not None}


def make_app(store: Any) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI application serving ``store``'s signed URLs (accepts the sync or async store)."""
    return Gateway(getattr(store, "sync", store))


def serve(store: Any, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Serve the gateway with the standard library's threaded WSGI server (for development)."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s - %s", self.address_string(), format % args)

    with make_server(host, port, make_app(store), server_class=Server, handler_class=Quiet) as httpd:
        httpd.serve_forever()
