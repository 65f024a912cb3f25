"""The backends under test and how to build a store on each, from a plain dict (``spec``) so a
subprocess (the streaming worker) can build the same store.

``memory`` and ``filesystem`` are always there. ``s3`` runs against a loopback server started
here: SeaweedFS (``weed mini``, from the venv or ``PATH``) or, failing that, moto's server in a
subprocess (a separate process, so the server does not compete with the benchmark for the GIL).
When the ``s3`` storage provider or a server is missing, the backend is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from chuk_artifacts import ArtifactStore

__all__ = ["ALL_BACKENDS", "S3Server", "Unavailable", "build_store", "prepare", "raw_fs"]

ALL_BACKENDS = ("memory", "filesystem", "s3")
S3_KEY, S3_SECRET, S3_BUCKET = "benchkey", "benchsecret", "chuk-bench"


class Unavailable(Exception):
    """A backend cannot run here; the message says why (it is reported as skipped)."""


def build_store(spec: dict[str, Any], tag: str) -> ArtifactStore:
    """A fresh store on ``spec``'s backend; ``tag`` keeps stores of one run apart."""
    name = spec["name"]
    if name == "memory":
        return ArtifactStore(storage_provider="memory")
    root = os.path.join(spec["workdir"], tag)
    if name == "filesystem":
        return ArtifactStore(storage_provider="filesystem", fs_root=root)
    if name == "s3":
        os.makedirs(root, exist_ok=True)
        return ArtifactStore(
            storage_provider="s3",
            bucket=spec["bucket"],
            sandbox_id=tag.replace("_", "-"),  # one bucket, a prefix per store
            s3_endpoint_url=spec["endpoint"],
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            aws_region="us-east-1",
            catalog_url=f"sqlite:///{os.path.join(root, 'catalog.db')}",
        )
    raise ValueError(f"unknown backend {name!r}")


def raw_fs(spec: dict[str, Any], store: ArtifactStore) -> tuple[Any, str]:
    """The fsspec filesystem and a path prefix for the raw reference operations.

    The reference uses the same kind of filesystem as the store (the store's own instance where
    it has one, so the same client and connection pool), below a prefix of its own.
    """
    name = spec["name"]
    if name == "memory":
        from fsspec.implementations.memory import MemoryFileSystem

        return MemoryFileSystem(global_store=False, skip_instance_cache=True), "/raw"
    if name == "filesystem":
        from fsspec.implementations.local import LocalFileSystem

        root = os.path.join(spec["workdir"], "raw-objects")
        os.makedirs(root, exist_ok=True)
        return LocalFileSystem(), root
    return store.blobs.fs, f"{spec['bucket']}/raw"


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _venv_bin(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


class S3Server:
    """A loopback S3 server for the run: ``weed mini`` or ``moto_server``, in a subprocess."""

    def __init__(self, workdir: str, prefer: str = "auto") -> None:
        self.workdir = workdir
        self.prefer = prefer
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.kind = ""
        self.log_path = os.path.join(workdir, "s3-server.log")

    def start(self) -> S3Server:
        errors = []
        order = {"auto": ("weed", "moto"), "weed": ("weed",), "moto": ("moto",)}.get(self.prefer, ())
        for kind in order:
            try:
                getattr(self, f"_start_{kind}")()
                self.kind = {"weed": "SeaweedFS (weed mini)", "moto": "moto_server"}[kind]
                self._make_bucket()
                return self
            except Unavailable as exc:
                self.stop()
                errors.append(f"{kind}: {exc}")
        raise Unavailable("; ".join(errors) or f"s3 server {self.prefer!r} disabled")

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )

    def _wait(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise Unavailable(f"server exited with {self.proc.returncode} (log: {self.log_path})")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # it answers (403 without credentials is an answer)
            except OSError:
                time.sleep(0.2)
        raise Unavailable(f"server did not answer within {timeout:.0f} s (log: {self.log_path})")

    def _start_weed(self) -> None:
        weed = _venv_bin("weed")
        if weed is None:
            raise Unavailable("no `weed` binary in the venv or on PATH")
        data = os.path.join(self.workdir, "seaweedfs")
        os.makedirs(data, exist_ok=True)
        p = _free_ports(12)
        self.endpoint = f"http://127.0.0.1:{p[6]}"
        self._spawn(
            [
                weed,
                "mini",
                f"-dir={data}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={p[0]}",
                f"-master.port.grpc={p[1]}",
                f"-volume.port={p[2]}",
                f"-volume.port.grpc={p[3]}",
                f"-filer.port={p[4]}",
                f"-filer.port.grpc={p[5]}",
                f"-s3.port={p[6]}",
                f"-s3.port.grpc={p[7]}",
                f"-admin.port={p[8]}",
                f"-admin.port.grpc={p[9]}",
                "-admin.ui=false",
                f"-debug.port={p[10]}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-webdav=false",
                "-master.telemetry=false",
                f"-bucket={S3_BUCKET}",
            ],
            env={"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET},
        )
        self._wait(60)

    def _start_moto(self) -> None:
        try:
            import moto.server  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"moto is not installed ({exc})") from None
        (port,) = _free_ports(1)
        self.endpoint = f"http://127.0.0.1:{port}"
        self._spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
        self._wait(30)

    def _make_bucket(self) -> None:
        try:
            import boto3
        except ImportError as exc:
            raise Unavailable(f"boto3 is not installed ({exc})") from None
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                client.head_bucket(Bucket=S3_BUCKET)
                return
            except Exception:  # noqa: BLE001 - any failure: try to create it
                try:
                    client.create_bucket(Bucket=S3_BUCKET)
                    return
                except Exception as exc:  # noqa: BLE001 - retried until the deadline
                    if time.monotonic() > deadline:
                        raise Unavailable(f"cannot create bucket {S3_BUCKET!r}: {exc}") from None
                    time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def prepare(name: str, workdir: str, s3_server: str) -> tuple[dict[str, Any], S3Server | None]:
    """The spec of backend ``name`` (and the server it needs), or ``Unavailable``."""
    bdir = os.path.join(workdir, name)
    os.makedirs(bdir, exist_ok=True)
    spec: dict[str, Any] = {"name": name, "workdir": bdir}
    if name in ("memory", "filesystem"):
        return spec, None
    if name != "s3":
        raise Unavailable(f"unknown backend {name!r}")
    if s3_server == "none":
        raise Unavailable("disabled with --s3-server none")
    from chuk_artifacts.plugins import known_providers

    if "s3" not in known_providers():
        raise Unavailable(
            "no 's3' storage provider is registered (chuk_artifacts/s3.py or an s3 plugin is not "
            "installed in this environment)"
        )
    try:
        import s3fs  # noqa: F401
    except ImportError:
        raise Unavailable("s3fs is not installed (pip install 'chuk-artifacts[s3]')") from None
    server = S3Server(bdir, s3_server).start()
    spec.update(endpoint=server.endpoint, bucket=S3_BUCKET, server=server.kind)
    try:  # prove the provider works against the server before measuring anything
        store = build_store(spec, "probe")
        try:
            check = store.validate_configuration()
        finally:
            store.close()
        if check.get("status") != "ok":
            raise Unavailable(f"store on {server.kind} does not validate: {check}")
    except Unavailable:
        server.stop()
        raise
    except Exception as exc:  # noqa: BLE001 - reported as the reason for skipping
        server.stop()
        raise Unavailable(f"cannot build an s3 store against {server.kind}: {type(exc).__name__}: {exc}") from None
    return spec, server
