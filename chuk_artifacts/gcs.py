"""Google Cloud Storage: bytes in one bucket through gcsfs; URLs are the gateway's.

The bucket is ``ARTIFACT_BUCKET``. Credentials: ``GCS_TOKEN`` (a service-account JSON file, or
``google_default``, ``cloud``, ``anon``), else the Google default credential chain
(``GOOGLE_APPLICATION_CREDENTIALS``, the metadata server, gcloud). ``GCS_ENDPOINT_URL`` points at
an emulator or a private endpoint; ``GCS_PROJECT`` names the project.

Presigned URLs are gateway URLs (``signing.HmacPresigner``), not GCS V4 signed URLs: a V4 URL
cannot be verified without Google (the emulators do not check signatures), and signing one
needs a private key that the default credential chain often does not have (metadata-server
credentials sign through the IAM API). The gateway streams bytes to and from the bucket.

gcsfs is imported when a store is made, never at import (``pip install 'chuk-artifacts[gcs]'``).
gcsfs's experimental gRPC file system is not used: the JSON API one (``gcsfs.core``) is.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Iterator

from .blobs import Blobs
from .errors import ArtifactStoreError, InvalidArgumentError, ProviderError

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["GCSBlobs", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'chuk-artifacts[gcs]'"
#: Streaming writes send one chunk of a resumable upload at a time (a multiple of 256 KiB).
BLOCK_SIZE = 8 * 1024 * 1024
#: gcsfs's attempts per request (its default, 6, waits minutes on a dead endpoint).
RETRIES = 2


def _chain(exc: BaseException) -> Iterator[BaseException]:
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return
        yield current
        current = current.__cause__ or current.__context__


def _reason(exc: BaseException) -> str:
    codes = {getattr(e, "code", None) for e in _chain(exc)}
    names = {type(e).__name__ for e in _chain(exc)}
    if isinstance(exc, PermissionError) or codes & {401, 403}:
        return "access_denied"
    if "DefaultCredentialsError" in names or "RefreshError" in names:
        return "no_credentials"
    if names & {"ClientConnectorError", "ClientConnectionError", "ConnectionRefusedError", "TimeoutError", "gaierror"}:
        return "endpoint_unreachable"
    return "error"


class GCSBlobs(Blobs):
    """Objects in one GCS bucket (the root)."""

    name = "gcs"

    def __init__(
        self,
        bucket: str,
        *,
        project: str | None = None,
        token: str | None = None,
        endpoint_url: str | None = None,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        try:
            from gcsfs.core import GCSFileSystem
        except ImportError as exc:  # pragma: no cover - the backend plugin checks first
            raise ProviderError(f"storage provider 'gcs' needs gcsfs: {INSTALL_HINT}") from exc
        if not bucket:
            raise InvalidArgumentError("storage provider 'gcs' needs a bucket (ARTIFACT_BUCKET)")
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        self.block_size = block_size
        try:
            fs = GCSFileSystem(
                project=project or "chuk-artifacts",
                token=token or ("anon" if endpoint_url else None),
                endpoint_url=self.endpoint_url,
                block_size=block_size,
                skip_instance_cache=True,
                use_listings_cache=False,
            )
        except Exception as exc:
            raise self._provider_error("connect", None, exc) from None
        fs.retries = RETRIES
        super().__init__(fs, bucket)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "GCSBlobs":
        return cls(
            settings.bucket,
            project=settings.gcs_project,
            token=settings.gcs_token,
            endpoint_url=settings.gcs_endpoint_url,
        )

    @property
    def _where(self) -> str:
        return self.endpoint_url or "Google Cloud Storage"

    def _provider_error(self, action: str, key: str | None, exc: BaseException) -> ProviderError:
        reason = _reason(exc)
        if reason == "bucket_missing" or isinstance(exc, _BucketMissing):
            reason = "bucket_missing"
            message = f"gcs bucket {self.bucket!r} does not exist at {self._where} (ARTIFACT_BUCKET)"
        elif reason == "access_denied":
            message = f"gcs refused access to bucket {self.bucket!r}: check the credentials and permissions ({exc})"
        elif reason == "no_credentials":
            message = f"no credentials for gcs: set GCS_TOKEN or configure the Google default credentials ({exc})"
        elif reason == "endpoint_unreachable":
            message = f"cannot reach gcs at {self._where}: {type(exc).__name__}: {exc}"
        else:
            target = f" {key!r}" if key else ""
            message = f"gcs failed to {action}{target}: {type(exc).__name__}: {exc}"
        error = ProviderError(message)
        error.reason = reason
        return error

    def _bucket_exists(self) -> bool:
        try:
            self.fs.call("GET", "b/{}", self.bucket, json_out=True)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self._provider_error("check", None, exc) from None
        return True

    @contextlib.contextmanager
    def _errors(self, action: str, key: str | None, *, missing_ok: bool = True) -> Iterator[None]:
        """gcsfs failures as ``ProviderError``; ``FileNotFoundError`` only for a missing object in
        a bucket that exists (gcsfs answers both with it)."""
        try:
            yield
        except ArtifactStoreError:
            raise
        except FileNotFoundError:
            if not self._bucket_exists():
                raise self._provider_error(action, key, _BucketMissing()) from None
            if missing_ok:
                raise
            raise ProviderError(f"gcs failed to {action} {key!r}: no such object") from None
        except Exception as exc:
            raise self._provider_error(action, key, exc) from None

    # -- writing --------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        with self._errors("write", key, missing_ok=False):
            self.fs.pipe_file(self.path(key), data)

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """gcsfs's buffered file: one chunk in memory at a time, sent as a resumable upload that
        becomes the object only when its last chunk arrives (readers see the old object or the
        new one). On an error the upload is left unfinished: it never becomes an object, and GCS
        drops it after a week (cancelling it would cost a request that may fail the same way)."""
        with self._errors("write", key, missing_ok=False):
            f = self.fs.open(self.path(key), "wb", block_size=self.block_size)
        try:
            yield f
        except BaseException:
            f.closed = True  # never finish the upload (fsspec files commit on close, even on error)
            raise
        try:
            with self._errors("write", key, missing_ok=False):
                f.close()
        except BaseException:
            f.closed = True
            raise

    def copy(self, src: str, dst: str) -> None:
        with self._errors("copy", src):
            self.fs.copy(self.path(src), self.path(dst))

    # -- reading --------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        with self._errors("read", key):
            data: bytes = self.fs.cat_file(self.path(key))
            return data

    def open_read(self, key: str) -> IO[bytes]:
        with self._errors("read", key):
            f: IO[bytes] = self.fs.open(self.path(key), "rb", block_size=self.block_size, cache_type="readahead")
            return f

    def _info(self, key: str) -> dict[str, Any] | None:
        try:
            with self._errors("stat", key):
                info: dict[str, Any] = self.fs.info(self.path(key))
        except FileNotFoundError:
            return None
        return info if info.get("type") == "file" else None

    def size(self, key: str) -> int | None:
        info = self._info(key)
        return None if info is None else int(info["size"])

    def exists(self, key: str) -> bool:
        return self._info(key) is not None

    def modified(self, key: str) -> float | None:
        info = self._info(key)
        value = None if info is None else info.get("mtime")
        return value.timestamp() if isinstance(value, datetime) else None

    def keys(self, prefix: str = "grid/") -> Iterator[str]:
        base = self.path(prefix).rstrip("/")
        try:
            with self._errors("list", prefix):
                found = self.fs.find(base)
        except FileNotFoundError:
            return
        strip = len(self.bucket) + 1
        for path in found:
            yield self.fs._strip_protocol(path)[strip:]

    # -- removing -------------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        try:
            with self._errors("delete", key):
                self.fs.rm_file(self.path(key))
        except FileNotFoundError:
            return False
        return True

    # -- operations -----------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        where = {"bucket": self.bucket, "endpoint": self._where}
        try:
            if not self._bucket_exists():
                error = self._provider_error("check", None, _BucketMissing())
                return {"status": "error", "reason": "bucket_missing", "error": str(error), **where}
        except ProviderError as exc:
            return {"status": "error", "reason": getattr(exc, "reason", "error"), "error": str(exc), **where}
        return {**super().check(), **where}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.fs.close_session(self.fs.loop, self.fs.session)


class _BucketMissing(Exception):
    pass
