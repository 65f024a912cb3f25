"""The bytes: objects at grid keys in an fsspec filesystem, below a root prefix.

``Blobs`` never decides policy; it writes, reads and removes bytes, atomically where the
backend allows: a reader sees the old object or the new one, never a torn write.
Missing objects raise ``FileNotFoundError``; any other failure becomes ``ProviderError``.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
import uuid
from datetime import datetime
from typing import IO, Any, Iterator

from . import grid
from .errors import ArtifactStoreError, ProviderError

__all__ = ["Blobs", "MemoryBlobs", "LocalBlobs"]

#: An fsspec ``AbstractFileSystem``. fsspec publishes no type information, so to mypy it is ``Any``.
FileSystem = Any


@contextlib.contextmanager
def _provider_errors(action: str, key: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise
    except ProviderError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise ProviderError(f"storage failed to {action} {key!r}: {exc}") from exc


class Blobs:
    """Objects in ``fs`` under ``root``. Subclasses adapt writes to what the backend can do."""

    name = "fsspec"
    #: The backend runs multipart uploads itself (``create_multipart`` / ``complete_multipart`` /
    #: ``abort_multipart``); otherwise parts are separate objects assembled by the store.
    native_multipart = False
    #: The backend presigns its own URLs: a presigned PUT lands at ``s3.staged_key`` and is
    #: registered from there (no gateway sees it arrive).
    native_presign = False
    #: The bytes live in this process and die with it: a crash can leave none behind, so
    #: writes need no intents (``writes.Writer``) and nothing here ever blocks on I/O.
    volatile = False
    #: The SQLite file that holds the bytes, for a backend that keeps them in one (``sqlite``):
    #: a catalog in that same file writes them inside its own transactions (``joined``).
    database: str | None = None

    def __init__(self, fs: FileSystem, root: str = "") -> None:
        self.fs = fs
        self.root = root.rstrip("/")

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    # -- writing --------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key``, replacing any object there."""
        with _provider_errors("write", key):
            self.fs.pipe_file(self.path(key), data)

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """A file to stream an object into; committed on success, discarded on error."""
        with _provider_errors("write", key):
            f = self.fs.open(self.path(key), "wb")
        try:
            yield f
        except BaseException:
            with contextlib.suppress(Exception):
                f.discard()
            raise
        with _provider_errors("write", key):
            f.close()

    def copy(self, src: str, dst: str) -> None:
        with _provider_errors("copy", src):
            self.fs.copy(self.path(src), self.path(dst))

    def move(self, src: str, dst: str) -> None:
        """Put the object at ``src`` in place of the one at ``dst``; readers of ``dst`` see the
        old object or the new one, whole (a copy then a delete where renames are not atomic)."""
        self.copy(src, dst)
        self.delete(src)

    def discard_partial(self, key: str) -> None:
        """Remove what an interrupted write to ``key`` may have left beside it (nothing here)."""

    # -- reading --------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        with _provider_errors("read", key):
            data: bytes = self.fs.cat_file(self.path(key))
            return data

    def open_read(self, key: str) -> IO[bytes]:
        with _provider_errors("read", key):
            f: IO[bytes] = self.fs.open(self.path(key), "rb")
            return f

    def size(self, key: str) -> int | None:
        """The object's size, or ``None`` if there is no object at ``key``."""
        try:
            with _provider_errors("stat", key):
                return int(self.fs.size(self.path(key)))
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        with _provider_errors("stat", key):
            return bool(self.fs.exists(self.path(key)))

    def modified(self, key: str) -> float | None:
        """When the object was last written (epoch seconds); ``None`` if missing or unknown."""
        try:
            with _provider_errors("stat", key):
                info = self.fs.info(self.path(key))
        except FileNotFoundError:
            return None
        for name in ("mtime", "LastModified", "last_modified", "updated", "created"):
            value = info.get(name)
            if isinstance(value, datetime):
                return value.timestamp()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        return None

    def keys(self, prefix: str = "grid/") -> Iterator[str]:
        """Every object key below ``prefix`` (for integrity checks, never on a request path)."""
        base = self.path(prefix).rstrip("/")
        with _provider_errors("list", prefix):
            if not self.fs.exists(base):
                return
            found = self.fs.find(base)
        strip = len(self.root) + 1 if self.root else 0
        for path in found:
            path = self.fs._strip_protocol(path)
            yield path[strip:].lstrip("/") if self.root else path.lstrip("/")

    # -- removing -------------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        """Remove the object; ``False`` if there was none (deleting is idempotent)."""
        try:
            with _provider_errors("delete", key):
                self.fs.rm_file(self.path(key))
        except FileNotFoundError:
            return False
        return True

    def delete_many(self, keys: list[str]) -> None:
        """Remove every object of ``keys``; missing ones are not an error. Backends that can
        delete many objects in one request override this (S3: ``DeleteObjects``)."""
        for key in keys:
            self.delete(key)

    # -- native multipart (only when ``native_multipart``) ------------------------------------

    def create_multipart(self, key: str, mime: str) -> str:
        """Start the backend's multipart upload at ``key``; return its upload id."""
        raise NotImplementedError

    def complete_multipart(self, key: str, backend_upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Assemble ``(part_number, etag)`` parts at ``key``; the backend verifies them.
        ``InvalidArgumentError`` for refused parts, ``ArtifactNotFoundError`` if the upload is gone."""
        raise NotImplementedError

    def abort_multipart(self, key: str, backend_upload_id: str) -> None:
        """Abort the backend's multipart upload (idempotent)."""
        raise NotImplementedError

    # -- operations -----------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Probe the backend for real (write, read back, delete a small object). Never raises:
        returns ``{"status": "ok"}`` or ``{"status": "error", "error": ..., "reason": ...}``."""
        probe = grid.health_probe_key(uuid.uuid4().hex)
        try:
            self.put(probe, b"ok")
            ok = self.get(probe) == b"ok"
            self.delete(probe)
        except (ArtifactStoreError, OSError) as exc:
            return {"status": "error", "reason": getattr(exc, "reason", "error"), "error": str(exc)}
        return (
            {"status": "ok"} if ok else {"status": "error", "reason": "error", "error": "probe read back wrong bytes"}
        )

    def joined(self, connection: Any) -> contextlib.AbstractContextManager[None]:
        """Run this thread's operations inside ``connection``'s transaction until the block ends
        (only a backend with a ``database``, given a connection to that file; else nothing)."""
        return contextlib.nullcontext()

    def close(self) -> None:
        """Release clients and connections (nothing for most filesystems)."""


def _no_follow(path: str, flags: int) -> int:
    """``open``'s opener that refuses a symbolic link as the file itself (``ELOOP``)."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MemoryBlobs(Blobs):
    """Bytes in process memory; every store gets its own, never fsspec's global store."""

    name = "memory"
    volatile = True

    def __init__(self) -> None:
        from fsspec.implementations.memory import MemoryFileSystem

        super().__init__(MemoryFileSystem(global_store=False, skip_instance_cache=True), "/chuk")

    def put(self, key: str, data: bytes) -> None:
        # Straight into the filesystem's store, as ``pipe_file`` would put it there, without its
        # walk up the parents (a grid key never has a file for a parent).
        from fsspec.implementations.memory import MemoryFile

        MemoryFile(self.fs, self.path(key), data).commit()

    def get(self, key: str) -> bytes:
        try:
            return bytes(self.fs.store[self.path(key)].getbuffer())
        except KeyError:
            raise FileNotFoundError(key) from None

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        # A MemoryFile commits itself when opened, so build the object aside and publish it whole.
        import io

        buffer = io.BytesIO()
        yield buffer
        self.put(key, buffer.getvalue())

    def close(self) -> None:
        self.fs.store.clear()
        self.fs.pseudo_dirs[:] = [""]


class LocalBlobs(Blobs):
    """Files under a root directory: temp file in the target directory, fsync, ``os.replace``.

    Every path is checked to stay inside the root, whatever the key.
    """

    name = "filesystem"

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True, fsync_directories: bool = False) -> None:
        from fsspec.implementations.local import LocalFileSystem

        self.root_dir = os.path.realpath(os.fspath(root))
        os.makedirs(self.root_dir, exist_ok=True)
        self.fsync = fsync
        #: Also fsync the directory of each renamed file (and of each new directory), so that the
        #: rename itself survives an OS crash or power loss (``durability="power"``).
        self.fsync_directories = fsync_directories
        super().__init__(LocalFileSystem(), self.root_dir)

    def path(self, key: str) -> str:
        path = posixpath.normpath(posixpath.join(self.root_dir, key))
        if not path.startswith(self.root_dir + os.sep) or key.startswith("/"):
            raise ProviderError(f"refusing a key outside the storage root: {key!r}")
        # A symbolic link planted inside the root must not lead a write (or read) out of it:
        # ``realpath`` resolves every link on the way (``root_dir`` is resolved already).
        directory = os.path.dirname(path)
        if os.path.realpath(directory) != directory:
            raise ProviderError(f"refusing {key!r}: a directory on its path is a symbolic link ({self.root_dir})")
        return path

    def put(self, key: str, data: bytes) -> None:
        with self.open_write(key) as f:
            f.write(data)

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        path = self.path(key)
        directory = os.path.dirname(path)
        with _provider_errors("write", key):
            self._makedirs(directory)
            fd, tmp = tempfile.mkstemp(prefix=self._temp_prefix(path), dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            with _provider_errors("write", key):
                os.replace(tmp, path)
                if self.fsync_directories:
                    _fsync_directory(directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _makedirs(self, directory: str) -> None:
        """``os.makedirs``; with ``fsync_directories``, each new directory's parent is fsynced."""
        if not self.fsync_directories or os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
            return
        missing = []
        parent = directory
        while not os.path.isdir(parent) and parent.startswith(self.root_dir + os.sep):
            missing.append(parent)
            parent = os.path.dirname(parent)
        os.makedirs(directory, exist_ok=True)
        for made in reversed(missing):
            _fsync_directory(os.path.dirname(made))

    @staticmethod
    def _temp_prefix(path: str) -> str:
        # Named after the target, so that cleanup can find what a killed writer left.
        return f".tmp-{os.path.basename(path)[:150]}."

    def move(self, src: str, dst: str) -> None:
        source, target = self.path(src), self.path(dst)
        with _provider_errors("move", src):
            self._makedirs(os.path.dirname(target))
            os.replace(source, target)  # atomic; the source was fsynced when it was written
            if self.fsync_directories:
                _fsync_directory(os.path.dirname(target))

    def discard_partial(self, key: str) -> None:
        path = self.path(key)
        directory, prefix = os.path.dirname(path), self._temp_prefix(path)
        try:
            with os.scandir(directory) as entries:
                stale = [e.path for e in entries if e.name.startswith(prefix)]
        except FileNotFoundError:
            return
        for name in stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def copy(self, src: str, dst: str) -> None:
        with self.open_read(src) as source, self.open_write(dst) as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)

    def get(self, key: str) -> bytes:
        with _provider_errors("read", key), open(self.path(key), "rb", opener=_no_follow) as f:
            return f.read()

    def open_read(self, key: str) -> IO[bytes]:
        with _provider_errors("read", key):
            return open(self.path(key), "rb", opener=_no_follow)

    def delete(self, key: str) -> bool:
        try:
            with _provider_errors("delete", key):
                os.unlink(self.path(key))
        except FileNotFoundError:
            return False
        return True
