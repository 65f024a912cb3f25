"""Streaming uploads and downloads: bytes flow chunk by chunk, never held whole in memory.

sha256 and size are computed as the bytes pass; an upload that fails or is abandoned is
discarded (no catalog row, no blob). Access rules are those of ``store`` and ``retrieve``.
"""

from __future__ import annotations

import hashlib
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from .core import StoreCore
from .errors import ArtifactCorruptedError, ArtifactStoreError, InvalidArgumentError
from .events import reports_denials
from .models import (
    ProgressCallback,
    SignedBlob,
    StreamDownloadRequest,
    StreamUploadRequest,
    check_request,
    chunks_of,
    metadata_from_row,
)
from .writes import open_blob

if TYPE_CHECKING:
    from .blobs import Blobs
    from .models import Row

__all__ = ["StreamingMethods", "copy_stream", "read_range", "resolve_range"]

MAX_CHUNK = 64 * 1024 * 1024


def _check_chunk_size(chunk_size: Any) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK:
        raise InvalidArgumentError(f"chunk_size must be an integer from 1 to {MAX_CHUNK}")
    return chunk_size


def copy_stream(
    chunks: Iterator[bytes],
    target: IO[bytes],
    *,
    total: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[int, str]:
    """Write ``chunks`` to ``target``; return (size, sha256 hex). Calls ``progress`` per chunk."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        target.write(chunk)
        digest.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress(size, total)
    return size, digest.hexdigest()


class StreamingMethods(StoreCore):
    """``stream_upload`` / ``stream_download`` for ``ArtifactStore``."""

    @reports_denials
    def stream_upload(self, request: StreamUploadRequest) -> str:
        """Store an artifact from an iterable of bytes or a binary file object; return its id.

        With ``content_length`` set, an upload of any other size is refused and discarded.
        """
        check_request(request, StreamUploadRequest, "stream_upload")
        chunk_size = _check_chunk_size(request.chunk_size)
        expected = request.content_length
        if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int) or expected < 0):
            raise InvalidArgumentError("content_length must be a non-negative integer")
        caller = self.policy.caller(request.user_id, request.session_id)
        row = self.policy.new_row(
            data=None,
            mime=request.mime,
            summary=request.summary,
            meta=request.meta,
            filename=request.filename,
            ttl=request.ttl,
            scope=request.scope,
            caller=caller,
        )

        def fill(target: IO[bytes]) -> tuple[int, str]:
            size, sha256 = copy_stream(
                chunks_of(request.data_stream, chunk_size),
                target,
                total=expected,
                progress=request.progress_callback,
            )
            if expected is not None and size != expected:
                raise InvalidArgumentError(f"stream ended after {size} bytes but content_length is {expected}")
            return size, sha256

        self.writer.create_streamed(row, fill, expected=expected or 0)
        self.events.artifacts("artifact_stored", [row], caller)
        return str(row["artifact_id"])

    @reports_denials
    def stream_download(self, request: StreamDownloadRequest) -> Iterator[bytes]:
        """The artifact's bytes (or the range ``[start, end)``) in chunks of ``chunk_size``.

        Access is checked when this is called, before the first chunk is read.
        """
        check_request(request, StreamDownloadRequest, "stream_download")
        chunk_size = _check_chunk_size(request.chunk_size)
        row = self.policy.accessible(request.artifact_id, request.user_id, request.session_id)
        start, end = resolve_range(row["bytes"], request.start, request.end)
        # The whole artifact follows an update that lands as the download starts; a range of
        # it cannot (its bounds were the old version's) and is refused instead.
        whole = request.start is None and request.end is None
        return self._read_range(row, start, end, chunk_size, request.progress_callback, follow=whole)

    def signed_blob(self, key: str) -> SignedBlob:
        """The live artifact at ``key`` (a signed URL already authorised the request), with a
        reader of any byte range of it. For gateways (``gateway.SignedURLStore``)."""
        row = self.policy.row_for_key(key)

        def read(start: int, end: int, chunk_size: int) -> Iterator[bytes]:
            return self._read_range(row, start, end, chunk_size)

        return SignedBlob(metadata_from_row(row), read)

    def _read_range(
        self,
        row: Row,
        start: int,
        end: int,
        chunk_size: int,
        progress: ProgressCallback | None = None,
        *,
        follow: bool = False,
    ) -> Iterator[bytes]:
        return read_range(
            self.blobs,
            row,
            start,
            end,
            chunk_size,
            verify_reads=self.settings.verify_reads,
            missing=self.policy.missing_bytes,
            current=lambda r: self.catalog.artifact(r["artifact_id"]),
            follow=follow,
            progress=progress,
        )


#: Reads of an artifact that changed while being opened start again this many times at most.
_READ_ATTEMPTS = 5


def read_range(
    blobs: Blobs,
    row: Row,
    start: int,
    end: int,
    chunk_size: int,
    *,
    verify_reads: bool,
    missing: Callable[[Row], None],
    current: Callable[[Row], Row | None] | None = None,
    follow: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> Iterator[bytes]:
    """Chunks of ``row``'s blob in ``[start, end)``; the whole object is checked against the
    catalog's size (and sha256 when ``verify_reads`` is on). ``missing(row)`` raises the error
    for bytes that are gone.

    ``current(row)`` reads the row again once the blob is open. An update writes its row before
    it moves the new bytes over the key, so an unchanged row means the open file holds the bytes
    ``row`` describes (memory and local files keep an open object's bytes). A changed one is
    followed (``follow``: the whole artifact, as it is now) or refused before the first byte
    (``ArtifactStoreError``: ask again) — never a torn mix of two versions.
    """
    f = None
    for _attempt in range(_READ_ATTEMPTS):
        f, fresh = _open_checked(blobs, row, missing, current)
        if f is not None:
            break
        if not follow:
            raise ArtifactStoreError(f"artifact {row['artifact_id']!r} changed while it was being read: ask again")
        row, start, end = fresh, 0, fresh["bytes"]
    if f is None:
        raise ArtifactStoreError(f"artifact {row['artifact_id']!r} changes faster than it can be read: ask again")
    whole = start == 0 and end == row["bytes"]
    verify = whole and verify_reads

    def generate() -> Iterator[bytes]:
        digest = hashlib.sha256() if verify else None
        sent = 0
        with f:
            if start:
                f.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = f.read(min(chunk_size, remaining))
                if not chunk:
                    raise ArtifactCorruptedError(
                        f"artifact {row['artifact_id']!r}: stored bytes are shorter than recorded"
                    )
                remaining -= len(chunk)
                sent += len(chunk)
                if digest is not None:
                    digest.update(chunk)
                    if remaining == 0 and digest.hexdigest() != row["sha256"]:
                        raise ArtifactCorruptedError(
                            f"artifact {row['artifact_id']!r}: sha256 does not match the catalog"
                        )
                yield chunk
                if progress is not None:
                    progress(sent, end - start)

    return generate()


def _open_checked(
    blobs: Blobs, row: Row, missing: Callable[[Row], None], current: Callable[[Row], Row | None] | None
) -> tuple[IO[bytes] | None, Row]:
    """The open blob of ``row`` and ``row`` — or ``None`` and the row as it is now, if the
    artifact changed since ``row`` was read (see ``read_range``)."""
    try:
        f = open_blob(blobs, row)
    except FileNotFoundError:
        fresh = current(row) if current is not None else None
        if fresh is None or fresh["state"] != "committed" or _same_bytes(fresh, row):
            missing(row)
            raise
        return None, fresh
    fresh = current(row) if current is not None else row
    if fresh is None or fresh["state"] != "committed":
        f.close()
        missing(row)
        raise ArtifactStoreError(f"artifact {row['artifact_id']!r} is gone")  # (missing raises)
    if not _same_bytes(fresh, row):
        f.close()
        return None, fresh
    return f, row


def _same_bytes(a: Row, b: Row) -> bool:
    return bool(a["sha256"] == b["sha256"] and a["bytes"] == b["bytes"])


def resolve_range(size: int, start: int | None, end: int | None) -> tuple[int, int]:
    """Validate a ``[start, end)`` byte range against ``size``; ``None`` means the object's edge."""
    start = 0 if start is None else start
    end = size if end is None else end
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgumentError(f"{name} must be a non-negative integer")
    if start > end or end > size:
        raise InvalidArgumentError(f"range [{start}, {end}) is outside the artifact's {size} bytes")
    return start, end
