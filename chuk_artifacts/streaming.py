"""Streaming uploads and downloads: bytes flow chunk by chunk, never held whole in memory.

sha256 and size are computed as the bytes pass; an upload that fails or is abandoned is
discarded (no catalog row, no blob). Access rules are those of ``store`` and ``retrieve``.
"""

from __future__ import annotations

import hashlib
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from .errors import ArtifactCorruptedError, InvalidArgumentError
from .models import StreamDownloadRequest, StreamUploadRequest, check_request, chunks_of

if TYPE_CHECKING:
    from .catalog import Row

__all__ = ["StreamingMixin", "copy_stream"]

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


class StreamingMixin:
    """``stream_upload`` / ``stream_download`` for ``ArtifactStore``."""

    def stream_upload(self, request: StreamUploadRequest) -> str:
        """Store an artifact from an iterable of bytes or a binary file object; return its id.

        With ``content_length`` set, an upload of any other size is refused and discarded.
        """
        check_request(request, StreamUploadRequest, "stream_upload")
        chunk_size = _check_chunk_size(request.chunk_size)
        if request.content_length is not None and (
            isinstance(request.content_length, bool)
            or not isinstance(request.content_length, int)
            or request.content_length < 0
        ):
            raise InvalidArgumentError("content_length must be a non-negative integer")
        caller = self._caller(request.user_id, request.session_id)
        row = self._new_row(
            data=None, mime=request.mime, summary=request.summary, meta=request.meta,
            filename=request.filename, ttl=request.ttl, scope=request.scope, caller=caller,
        )
        self._begin_writes([row["key"]], owner_id=row["owner_id"], nbytes=request.content_length or 0)
        try:
            with self.blobs.open_write(row["key"]) as target:
                size, sha256 = copy_stream(
                    chunks_of(request.data_stream, chunk_size), target,
                    total=request.content_length, progress=request.progress_callback,
                )
                if request.content_length is not None and size != request.content_length:
                    raise InvalidArgumentError(
                        f"stream ended after {size} bytes but content_length is {request.content_length}"
                    )
        except BaseException:
            self._abandon_writes([row["key"]])
            raise
        row.update(bytes=size, sha256=sha256)
        self._insert_written([row])
        self._emit_rows("artifact_stored", [row], caller)
        return row["artifact_id"]

    def stream_download(self, request: StreamDownloadRequest) -> Iterator[bytes]:
        """The artifact's bytes (or the range ``[start, end)``) in chunks of ``chunk_size``.

        Access is checked when this is called, before the first chunk is read.
        """
        check_request(request, StreamDownloadRequest, "stream_download")
        chunk_size = _check_chunk_size(request.chunk_size)
        row = self._accessible(request.artifact_id, request.user_id, request.session_id)
        start, end = resolve_range(row["bytes"], request.start, request.end)
        return self._read_range(row, start, end, chunk_size, request.progress_callback)

    def _read_range(
        self,
        row: "Row",
        start: int,
        end: int,
        chunk_size: int,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> Iterator[bytes]:
        """Chunks of ``row``'s blob in ``[start, end)``; the whole object is checked against
        the catalog's size (and sha256 when ``verify_reads`` is on)."""
        try:
            f = self._open_blob(row)
        except FileNotFoundError:
            self._raise_missing_bytes(row)
        whole = start == 0 and end == row["bytes"]
        verify = whole and self.settings.verify_reads

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
