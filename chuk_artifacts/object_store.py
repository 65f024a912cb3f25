"""What the cloud object stores reached through an fsspec file system share (Azure Blob Storage
through adlfs, ``azure_blob.py``; Google Cloud Storage through gcsfs, ``gcs.py``): objects in one
bucket (an Azure container) that is the ``root``, buffered streaming writes that become visible
only when complete, and one rule for a missing object.

A subclass says how to tell that its bucket exists (``_bucket_exists``), how to word a failure
(``_provider_error``, which must treat ``BucketMissing`` as a missing bucket), where it is
(``_where``), and which field of ``fs.info()`` holds an object's modification time.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import IO, Any, ClassVar, Iterator

from .blobs import Blobs
from .errors import ArtifactStoreError, ProviderError

__all__ = ["BucketMissing", "ObjectStoreBlobs", "exception_chain"]


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during (ten at most)."""
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return
        yield current
        current = current.__cause__ or current.__context__


class BucketMissing(Exception):
    """Raised into ``_provider_error`` when the bucket itself does not exist."""


class ObjectStoreBlobs(Blobs):
    """Objects in one bucket of a cloud object store, through its fsspec file system."""

    #: Streaming writes send one block of this size at a time; reads fetch blocks of it.
    block_size: int
    #: The ``fs.info()`` field holding an object's modification time (a ``datetime``).
    mtime_field: ClassVar[str] = "mtime"
    #: Keyword arguments of ``fs.pipe_file`` for a whole-object write.
    put_options: ClassVar[dict[str, Any]] = {}

    @property
    def _where(self) -> str:
        """The endpoint, as failures and ``check`` name it."""
        raise NotImplementedError

    def _bucket_exists(self) -> bool:
        """``False`` if the bucket does not exist; other failures raise ``ProviderError``."""
        raise NotImplementedError

    def _provider_error(self, action: str, key: str | None, exc: BaseException) -> ProviderError:
        raise NotImplementedError

    @contextlib.contextmanager
    def _errors(self, action: str, key: str | None, *, missing_ok: bool = True) -> Iterator[None]:
        """Failures as ``ProviderError``; ``FileNotFoundError`` only for a missing object
        (``missing_ok``) in a bucket that exists (the file systems answer both with it)."""
        try:
            yield
        except ArtifactStoreError:
            raise
        except FileNotFoundError:
            if not self._bucket_exists():
                raise self._provider_error(action, key, BucketMissing()) from None
            if missing_ok:
                raise
            raise ProviderError(f"{self.name} failed to {action} {key!r}: no such object") from None
        except Exception as exc:
            raise self._provider_error(action, key, exc) from None

    # -- writing --------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        with self._errors("write", key, missing_ok=False):
            self.fs.pipe_file(self.path(key), data, **self.put_options)

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """The file system's buffered file: one block in memory at a time, sent as a staged
        upload that becomes the object only when it is closed, so readers see the old object or
        the new one. On an error nothing is committed (the store's module says what becomes of
        the staged blocks)."""
        with self._errors("write", key, missing_ok=False):
            f = self.fs.open(self.path(key), "wb", block_size=self.block_size)
        try:
            yield f
        except BaseException:
            f.closed = True  # never commit (fsspec files commit on close, even on error)
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
        value = None if info is None else info.get(self.mtime_field)
        return value.timestamp() if isinstance(value, datetime) else None

    def keys(self, prefix: str = "grid/") -> Iterator[str]:
        base = self.path(prefix).rstrip("/")
        try:
            with self._errors("list", prefix):
                found = self.fs.find(base)
        except FileNotFoundError:
            return
        strip = len(self.root) + 1
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
        """Bucket reachable and writable? ``reason`` names the failure."""
        where = {"bucket": self.root, "endpoint": self._where}
        try:
            if not self._bucket_exists():
                error = self._provider_error("check", None, BucketMissing())
                return {"status": "error", "reason": "bucket_missing", "error": str(error), **where}
        except ProviderError as exc:
            return {"status": "error", "reason": getattr(exc, "reason", "error"), "error": str(exc), **where}
        return {**super().check(), **where}
