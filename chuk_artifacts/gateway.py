"""The gateway that serves HMAC-signed URLs for memory and local backends, as WSGI or ASGI.

``make_app(store)`` returns a WSGI application (mount it in any WSGI server, or run
``chuk-admin serve``); ``make_asgi_app(store)`` returns a native ASGI application with the same
behaviour (mount it in FastAPI or Starlette, or run it with uvicorn). Both call the same route
handlers: a route's logic is written once, in ``Gateway``, against a ``Request`` that each
adapter builds from its server's request. Routes, all signature-checked:

- ``GET|HEAD /blob/<key>``: the object, with Range, ETag, Content-Type, Content-Disposition
- ``PUT /upload/<upload_id>``: the body of a presigned upload
- ``PUT /upload/<upload_id>/part/<n>``: one part of a multipart upload (answers with its ETag)
- ``GET|HEAD /s/<token>``: a share link (``store.share``), on every backend: the bytes from
  memory / filesystem stores, a redirect to a fresh short-lived presigned URL on S3 / COS
  (``serve_share``, which holds the whole route apart from the server plumbing)

A missing, tampered, expired or re-targeted signature gets 403 and touches nothing. The signed
routes exist only for stores without native presigning; share links are served for every store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping, Protocol
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

__all__ = [
    "make_app",
    "make_asgi_app",
    "serve",
    "serve_share",
    "SignedURLStore",
    "ShareStore",
    "GatewayStore",
    "Request",
]

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
#: What a route answers: the status line, the headers and the body (an iterable of bytes).
Reply = tuple[str, list[tuple[str, str]], Iterable[bytes]]
_CHUNK = 256 * 1024
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
#: Digits of a Range bound that are worth reading: no artifact is 10**18 bytes long, so a longer
#: number means "past the end" (and int() of thousands of digits is refused, or slow).
_RANGE_DIGITS = 18


class _Response(Exception):
    def __init__(self, status: str, message: str = "", headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


@dataclass(frozen=True)
class Request:
    """An HTTP request as the routes see it, whatever the server: ``headers`` has lower-case
    names; ``read(n)`` blocks until it returns up to ``n`` bytes of the body (``b""`` at its end)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    read: Callable[[int], bytes]


def _body(request: Request) -> Iterator[bytes]:
    """The request body in chunks; needs Content-Length (no chunked requests)."""
    try:
        remaining = int(request.headers.get("content-length") or "")
    except ValueError:
        raise _Response("411 Length Required", "Content-Length is required") from None
    if remaining < 0:
        raise _Response("400 Bad Request", "bad Content-Length")

    def chunks() -> Iterator[bytes]:
        left = remaining
        while left > 0:
            chunk = request.read(min(_CHUNK, left))
            if not chunk:
                raise InvalidArgumentError("request body ended before Content-Length bytes")
            left -= len(chunk)
            yield chunk

    return chunks()


def _bound(digits: str) -> int:
    return int(digits) if len(digits) <= _RANGE_DIGITS else 10**_RANGE_DIGITS


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
    unsatisfiable = _Response("416 Range Not Satisfiable", "", [("Content-Range", f"bytes */{size}")])
    if not first:  # suffix: the last N bytes
        n = _bound(last)
        if n == 0:
            raise unsatisfiable
        if size == 0:  # satisfiable, yet no byte range to name (RFC 9110 14.1.1): send it whole
            return None
        return max(0, size - n), size
    start = _bound(first)
    end = min(_bound(last) + 1, size) if last else size
    if start >= size or (last and _bound(last) < start):
        raise unsatisfiable
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


class GatewayStore(SignedURLStore, ShareStore, Protocol):
    """Everything the gateway asks of a store."""


_TEXT = ("Content-Type", "text/plain; charset=utf-8")


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


def _entity_headers(meta: Any, disposition: str | None = None) -> tuple[str, list[tuple[str, str]]]:
    etag = f'"{meta.sha256}"'
    return etag, [
        ("Content-Type", meta.mime),
        ("ETag", etag),
        ("Accept-Ranges", "bytes"),
        ("Content-Disposition", content_disposition(meta.filename, disposition or "attachment")),
    ]


def _not_modified(etag: str, if_none_match: str | None) -> bool:
    # a list of entity tags, compared weakly (RFC 9110 13.1.2)
    wanted = {t.strip().removeprefix("W/") for t in (if_none_match or "").split(",")}
    return etag in wanted or "*" in wanted


def serve_share(store: ShareStore, method: str, token: str, headers: Mapping[str, str]) -> Reply:
    """The answer to ``GET|HEAD /s/<token>`` (see ``_share_answer``); a HEAD never has a body."""
    status, response_headers, body = _share_answer(store, method, token, headers)
    return status, response_headers, [] if method == "HEAD" else body


def _share_answer(store: ShareStore, method: str, token: str, headers: Mapping[str, str]) -> Reply:
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


class Gateway:
    """The routes of one store's gateway, independent of the server (``make_app``,
    ``make_asgi_app``). ``routes`` is the route table: a path pattern and the handler its match
    is passed to (named groups as keyword arguments); each handler checks its own signature."""

    def __init__(self, store: GatewayStore) -> None:
        presigner = store.presigner
        self.store = store
        # S3 / COS presign natively: S3 serves their signed URLs, this gateway only share links
        self.signer = presigner.signer if isinstance(presigner, HmacPresigner) else None
        self.routes: list[tuple[re.Pattern[str], Callable[..., Reply]]] = [
            (re.compile(r"/s/(?P<token>[^/]+)"), self.share),
            (re.compile(r"/blob/(?P<key>.+)", re.DOTALL), self.download),
            (re.compile(r"/upload/(?P<upload_id>[^/]+)/part/(?P<part_number>[0-9]{1,5})"), self.upload_part),
            (re.compile(r"/upload/(?P<upload_id>[^/]+)"), self.upload),
        ]

    def handle(self, request: Request) -> Reply:
        """The reply to ``request``: a route's, or the error status of what it raised."""
        try:
            status, headers, body = self.route(request)
        except _Response as r:
            status, headers, body = r.status, r.headers, [r.message.encode()] if r.message else []
            if body:
                headers = [*headers, ("Content-Type", "text/plain; charset=utf-8")]
        except ArtifactStoreError as exc:
            status = next((s for cls, s in _ERROR_STATUS.items() if isinstance(exc, cls)), "409 Conflict")
            if status == "409 Conflict":
                log.warning("gateway: %s %s failed: %s", request.method, request.path, exc)
            headers, body = [("Content-Type", "text/plain; charset=utf-8")], [str(exc).encode()]
        return status, [*headers, ("Cache-Control", "no-store")], body

    def route(self, request: Request) -> Reply:
        for pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if match is not None:
                return handler(request, **match.groupdict())
        raise _Response("404 Not Found", "not found")

    # The signature is checked against the request's own method first (HEAD reads as GET): a
    # URL signed for one method used with another is refused with 403 like any bad URL.

    def _verify(self, request: Request, method: str | None = None) -> None:
        if self.signer is None:
            raise _Response(
                "404 Not Found",
                f"provider {self.store.storage_provider!r} presigns natively: its signed URLs are served by S3",
            )
        try:
            self.signer.verify(method or request.method, request.path, dict(request.query))
        except SignatureError as exc:
            raise _Response("403 Forbidden", f"forbidden: {exc}") from None

    @staticmethod
    def _allow(request: Request, *methods: str) -> None:
        if request.method not in methods:
            raise _Response("405 Method Not Allowed", "", [("Allow", ", ".join(methods))])

    def share(self, request: Request, token: str) -> Reply:
        """A share link: its token is its own authority (no signature)."""
        return serve_share(self.store, request.method, token, request.headers)

    def upload(self, request: Request, upload_id: str) -> Reply:
        self._verify(request)
        self._allow(request, "PUT")
        etag = self.store.receive_upload(upload_id, _body(request))
        return "200 OK", [("ETag", etag), ("Content-Length", "0")], []

    def upload_part(self, request: Request, upload_id: str, part_number: str) -> Reply:
        self._verify(request)
        self._allow(request, "PUT")
        etag = self.store.receive_part(upload_id, int(part_number), _body(request))
        return "200 OK", [("ETag", etag), ("Content-Length", "0")], []

    def download(self, request: Request, key: str) -> Reply:
        self._verify(request, "GET" if request.method == "HEAD" else None)
        self._allow(request, "GET", "HEAD")
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
        wanted_tags = {t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")}
        if etag in wanted_tags or "*" in wanted_tags:
            return "304 Not Modified", [("ETag", etag)], []
        size = meta.bytes
        status, (start, end) = "200 OK", (0, size)
        wanted = _parse_range(request.headers.get("range"), size)
        if wanted is not None and request.headers.get("if-range", etag).strip() == etag:
            status, (start, end) = "206 Partial Content", wanted
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        headers.append(("Content-Length", str(end - start)))
        if request.method == "HEAD" or end == start:
            return status, headers, []
        return status, headers, blob.read(start, end, _CHUNK)


#: The status of each error a route may raise (the most specific class that matches wins).
_ERROR_STATUS: dict[type[ArtifactStoreError], str] = {
    ArtifactExpiredError: "410 Gone",
    ArtifactNotFoundError: "404 Not Found",
    InvalidArgumentError: "400 Bad Request",
    QuotaExceededError: "413 Content Too Large",
}


class WsgiGateway:
    """The WSGI application of one store (``make_app``)."""

    def __init__(self, store: GatewayStore) -> None:
        self.gateway = Gateway(store)
        self.store = store

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_LENGTH"):
            headers["content-length"] = environ["CONTENT_LENGTH"]
        stream = environ.get("wsgi.input")
        request = Request(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=environ.get("PATH_INFO", "") or "/",
            query=dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
            headers=headers,
            read=stream.read if stream is not None else (lambda n: b""),
        )
        status, reply_headers, body = self.gateway.handle(request)
        start_response(status, reply_headers)
        return body


ASGIScope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _AsgiBody:
    """A blocking ``read(n)`` over an ASGI request body, for the route running in a worker
    thread: each read waits for the event loop to ``receive()`` the next message."""

    def __init__(self, receive: ASGIReceive, loop: asyncio.AbstractEventLoop) -> None:
        self.receive, self.loop = receive, loop
        self.buffer = b""
        self.more = True

    def read(self, n: int) -> bytes:
        while not self.buffer and self.more:
            message = asyncio.run_coroutine_threadsafe(self._next(), self.loop).result()
            if message["type"] == "http.disconnect":
                self.more = False
                break
            self.buffer += message.get("body", b"")
            self.more = bool(message.get("more_body", False))
        chunk, self.buffer = self.buffer[:n], self.buffer[n:]
        return chunk

    async def _next(self) -> MutableMapping[str, Any]:
        return await self.receive()


class AsgiGateway:
    """The ASGI application of one store (``make_asgi_app``): the routes of ``Gateway``, run in
    worker threads (the store is synchronous) so the event loop never blocks; a download is
    sent chunk by chunk as it is read, an upload read as it arrives."""

    def __init__(self, store: GatewayStore) -> None:
        self.gateway = Gateway(store)
        self.store = store

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            raise ValueError(f"the gateway serves HTTP, not {scope['type']!r}")
        path, root = scope.get("path", "/"), scope.get("root_path", "")
        if root and path.startswith(root):  # mounted (Starlette keeps the full path in "path")
            path = path[len(root) :]
        request = Request(
            method=scope["method"].upper(),
            path=path or "/",
            query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)),
            headers=_asgi_headers(scope.get("headers", ())),
            read=_AsgiBody(receive, asyncio.get_running_loop()).read,
        )
        status, headers, body = await asyncio.to_thread(self.gateway.handle, request)
        await send(
            {
                "type": "http.response.start",
                "status": int(status[:3]),
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        # The request body is consumed by now: the next message is the client going away, and
        # servers ignore what is sent after that, so stop reading the artifact then.
        gone = asyncio.ensure_future(_disconnected(receive))
        chunks = iter(body)
        try:
            while not gone.done() and (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            gone.cancel()
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: ASGIReceive) -> None:
    """Return once the client has disconnected (``http.disconnect``)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _asgi_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header pairs as one lower-case name → value map (repeated headers joined by ", ")."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def make_app(store: Any) -> WsgiGateway:
    """The WSGI application serving ``store``'s signed URLs (accepts the sync or async store)."""
    return WsgiGateway(getattr(store, "sync", store))


def make_asgi_app(store: Any) -> AsgiGateway:
    """The ASGI application serving ``store``'s signed URLs (accepts the sync or async store):
    ``app.mount("/artifacts", make_asgi_app(store))`` in FastAPI, with ``ARTIFACT_PUBLIC_URL``
    ending in ``/artifacts``."""
    return AsgiGateway(getattr(store, "sync", store))


def serve(store: Any, host: str = "127.0.0.1", port: int = 8787, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve the gateway with the standard library's threaded WSGI server (for development).

    ``ready(base_url)`` is called once the socket listens (``port=0`` picks a free port). Each
    request is logged to this module's logger at INFO: client, method, path (never the query,
    which holds the signature), status and bytes sent. SIGTERM stops it like Ctrl-C does: the
    ``KeyboardInterrupt`` it raises leaves this function after the socket is closed.
    """
    import signal
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Handler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            path = self.path.partition("?")[0]
            log.info('%s "%s %s" %s %s', self.address_string(), self.command, path, code, size)

        def log_message(self, format: str, *args: Any) -> None:
            log.warning("%s - %s", self.address_string(), format % args)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        with make_server(host, port, make_app(store), server_class=Server, handler_class=Handler) as httpd:
            if ready is not None:
                ready(f"http://{host}:{httpd.server_port}")
            httpd.serve_forever()
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
