"""The native ASGI gateway (``make_asgi_app``) under uvicorn, with a real HTTP client (httpx):
the same answers as the WSGI gateway, uploads and parts streamed in, and mounted in FastAPI."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fixtures.services import unavailable

from chuk_artifacts import ArtifactStore, MultipartUploadCompleteRequest, MultipartUploadInitRequest
from chuk_artifacts.gateway import make_app, make_asgi_app

try:
    import httpx
    import uvicorn
except ImportError as exc:  # the test dependency group has both
    httpx = uvicorn = None
    MISSING = f"the ASGI gateway tests need uvicorn and httpx (pip install uvicorn httpx): {exc}"

DATA = bytes(range(256)) * 4 + b"tail-of-the-artifact"


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def run_asgi() -> Iterator[Callable[..., tuple[str, ArtifactStore]]]:
    """``run_asgi(make_app, prefix="")``: a memory store whose URLs point at uvicorn serving
    ``make_app(store)`` on a free port (``prefix``: the path the gateway is mounted at)."""
    if uvicorn is None or httpx is None:
        unavailable(MISSING, "the ASGI gateway tests")
    running: list[tuple[Any, threading.Thread, ArtifactStore]] = []

    def start(build: Callable[[ArtifactStore], Any] = make_asgi_app, prefix: str = "") -> tuple[str, ArtifactStore]:
        sock = _listening_socket()
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        store = ArtifactStore(public_url=base + prefix)
        server = uvicorn.Server(uvicorn.Config(build(store), log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        running.append((server, thread, store))
        return base, store

    yield start
    for server, thread, store in running:
        server.should_exit = True
        thread.join(10)
        store.close()


@pytest.fixture
def asgi(run_asgi: Callable[..., tuple[str, ArtifactStore]]) -> Iterator[tuple[httpx.Client, ArtifactStore]]:
    _, store = run_asgi()
    with httpx.Client(timeout=30) as client:
        yield client, store


def wsgi_answer(store: ArtifactStore, method: str, url: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    """The WSGI gateway's answer to the same request, called in process."""
    import io
    from urllib.parse import urlsplit
    from wsgiref.util import setup_testing_defaults

    parts = urlsplit(url)
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": parts.path, "QUERY_STRING": parts.query}
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = int(status[:3]), {k.lower(): v for k, v in response_headers}

    body = b"".join(make_app(store)(environ, start_response))
    return answer["status"], answer["headers"], body


COMPARED = ("content-type", "content-length", "content-range", "etag", "content-disposition", "allow", "cache-control")


def test_every_kind_of_request_gets_the_wsgi_gateways_answer(asgi: tuple[httpx.Client, ArtifactStore]) -> None:
    client, store = asgi
    aid = store.store(DATA, mime="text/csv", filename="t.csv", user_id="alice")
    empty = store.store(b"", mime="text/plain", user_id="alice")
    url, empty_url = store.presign(aid), store.presign(empty)
    shared = str(store.share(aid, user_id="alice").url)  # share links: the same route table
    etag = f'"{hashlib.sha256(DATA).hexdigest()}"'
    cases = [
        ("GET", shared, {}),
        ("HEAD", shared, {}),
        ("GET", shared, {"Range": "bytes=0-9"}),
        ("GET", shared, {"If-None-Match": etag}),
        ("PUT", shared, {}),
        ("GET", shared[:-4] + "zzzz", {}),  # an unknown token
        ("GET", url, {}),
        ("HEAD", url, {}),
        ("GET", url, {"Range": "bytes=0-9"}),
        ("GET", url, {"Range": "bytes=-5"}),
        ("GET", url, {"Range": "bytes=5000-"}),
        ("GET", url, {"Range": "bytes=" + "9" * 5000 + "-"}),
        ("GET", url, {"Range": "bytes=0-9", "If-Range": '"stale"'}),
        ("GET", url, {"If-None-Match": etag}),
        ("GET", empty_url, {"Range": "bytes=-5"}),
        ("GET", url.replace("signature=", "signature=A"), {}),  # tampered
        ("GET", url.split("?")[0], {}),  # unsigned
        ("DELETE", url, {}),
        ("PUT", url, {}),
        ("GET", url.replace("/blob/", "/nowhere/"), {}),
    ]
    for method, target, headers in cases:
        got = client.request(method, target, headers=headers)
        status, wanted_headers, body = wsgi_answer(store, method, target, headers)
        assert got.status_code == status, (method, headers)
        assert got.content == body, (method, headers)
        assert {k: got.headers.get(k) for k in COMPARED} == {k: wanted_headers.get(k) for k in COMPARED}


def test_a_presigned_upload_is_streamed_in_and_registered(asgi: tuple[httpx.Client, ArtifactStore]) -> None:
    client, store = asgi
    data = os.urandom(3 * 1024 * 1024 + 17)  # many ASGI body messages
    url, aid = store.presign_upload(user_id="alice", filename="big.bin")

    def body() -> Iterator[bytes]:  # sent in pieces, with a Content-Length
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    r = client.put(url, content=body(), headers={"Content-Length": str(len(data))})
    assert r.status_code == 200, r.text
    store.register_uploaded_artifact(aid, user_id="alice")
    assert store.retrieve(aid, user_id="alice") == data
    download = client.get(store.presign(aid, user_id="alice"))
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(data).digest()
    assert client.put(url, content=b"again").status_code in (403, 404, 409)  # an upload URL is used once


def test_an_upload_without_content_length_is_refused_with_411(asgi: tuple[httpx.Client, ArtifactStore]) -> None:
    client, store = asgi
    url, _ = store.presign_upload(user_id="alice")
    r = client.put(url, content=iter([b"chunked", b" body"]))  # httpx sends it chunked
    assert r.status_code == 411


def test_multipart_parts_go_through_the_asgi_gateway(asgi: tuple[httpx.Client, ArtifactStore]) -> None:
    client, store = asgi
    init = store.initiate_multipart_upload(
        MultipartUploadInitRequest(filename="v.bin", mime_type="video/mp4", user_id="alice", scope="user")
    )
    first, second = os.urandom(5 * 1024 * 1024), b"the last part"
    parts = []
    for number, data in ((1, first), (2, second)):
        r = client.put(store.get_part_upload_url(init["upload_id"], number), content=data)
        assert r.status_code == 200, r.text
        parts.append({"PartNumber": number, "ETag": r.headers["ETag"]})
    aid = store.complete_multipart_upload(MultipartUploadCompleteRequest(upload_id=init["upload_id"], parts=parts))
    assert store.retrieve(aid, user_id="alice") == first + second


def test_a_slow_download_does_not_block_other_requests(asgi: tuple[httpx.Client, ArtifactStore]) -> None:
    """Routes run in worker threads: while one response is being read, others are answered."""
    client, store = asgi
    big = store.store(os.urandom(8 * 1024 * 1024), mime="application/octet-stream", user_id="alice")
    small = store.store(b"small", mime="text/plain", user_id="alice")
    with client.stream("GET", store.presign(big)) as slow:
        assert slow.status_code == 200
        next(slow.iter_bytes(1024))  # the big body is in flight, not read
        with httpx.Client(timeout=10) as other:
            assert other.get(store.presign(small)).content == b"small"


def test_the_gateway_mounted_in_fastapi_serves_its_urls_beside_the_apps_routes(
    run_asgi: Callable[..., tuple[str, ArtifactStore]],
) -> None:
    try:
        import fastapi
    except ImportError:
        unavailable("the FastAPI recipe's test needs fastapi (pip install fastapi)", "the FastAPI recipe's test")

    def build(store: ArtifactStore) -> Any:
        app = fastapi.FastAPI()
        app.mount("/artifacts", make_asgi_app(store))

        @app.get("/health")
        def health() -> dict[str, str]:
            return {"status": "ok"}

        return app

    base, store = run_asgi(build, "/artifacts")
    aid = store.store(DATA, mime="text/plain", user_id="alice")
    url = store.presign(aid)
    assert url.startswith(f"{base}/artifacts/blob/")
    with httpx.Client(timeout=30) as client:
        assert client.get(url).content == DATA
        assert client.get(url, headers={"Range": "bytes=0-3"}).content == DATA[:4]
        assert client.get(url.replace("signature=", "signature=A")).status_code == 403
        assert client.get(f"{base}/health").json() == {"status": "ok"}
        upload_url, upload_aid = store.presign_upload(user_id="alice")
        assert client.put(upload_url, content=b"via fastapi").status_code == 200
    store.register_uploaded_artifact(upload_aid, user_id="alice")
    assert store.retrieve(upload_aid, user_id="alice") == b"via fastapi"


def test_a_download_the_client_abandons_stops_reading_the_artifact(
    asgi: tuple[httpx.Client, ArtifactStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    client, store = asgi
    size = 64 * 1024 * 1024  # 256 chunks of the gateway's 256 KiB
    big = store.store(b"\0" * size, mime="application/octet-stream", user_id="alice")
    read: list[int] = []
    original = store.signed_blob

    def counted(key: str) -> Any:
        blob = original(key)

        def read_range(start: int, end: int, chunk_size: int) -> Iterator[bytes]:
            for chunk in blob.read(start, end, chunk_size):
                read.append(len(chunk))
                yield chunk

        return dataclasses.replace(blob, read=read_range)

    monkeypatch.setattr(store, "signed_blob", counted)
    with client.stream("GET", store.presign(big)) as response:
        next(response.iter_bytes(1024))
    # the connection is closed; the gateway notices and stops within a few chunks
    deadline = time.monotonic() + 10
    settled = -1
    while time.monotonic() < deadline and settled != len(read):
        settled = len(read)
        time.sleep(0.3)
    assert 0 < sum(read) < size // 2
