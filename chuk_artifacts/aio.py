"""``AsyncArtifactStore``: the same methods as ``ArtifactStore``, awaited in a worker thread.

It is a thin facade (``asyncio.to_thread``), not a second implementation, so the event loop
never blocks on SQL or storage I/O. ``chuk_artifacts.aio.ArtifactStore`` is this class, so code
written for the published package's async API changes one import.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import inspect
import threading
from typing import Any, AsyncIterator, Iterator

from .errors import ArtifactStoreError
from .grid import GridKey
from .models import StreamDownloadRequest, StreamUploadRequest
from .store import ArtifactStore as SyncArtifactStore

__all__ = ["AsyncArtifactStore", "ArtifactStore"]

#: Public methods of the sync store that stay as they are here: pure helpers without I/O, the
#: views (re-wrapped below), ``close`` (``aclose``) and streaming (bridged below).
_NOT_THREADED = frozenset({
    "parse_grid_key", "get_canonical_prefix", "generate_artifact_key",
    "as_user", "as_session", "as_admin", "close", "stream_upload", "stream_download",
})
#: Methods awaited in a worker thread: every other public method of the sync store, derived from
#: the class so that a method added there can never be left blocking the event loop here.
ASYNC_METHODS = tuple(sorted(
    name for name in dir(SyncArtifactStore)
    if not name.startswith("_")
    and name not in _NOT_THREADED
    and inspect.isfunction(inspect.getattr_static(SyncArtifactStore, name))
))
_POLL = 0.25  # how often a worker thread waiting for the next upload chunk checks for cancellation
#: Bytes of chunks handed across the thread boundary at once by streaming: one thread hop per
#: 64 KiB chunk costs more than the I/O, one per MiB does not, and memory stays bounded.
_BRIDGE_BYTES = 1 << 20


def _threaded(name: str) -> Any:
    sync_method = getattr(SyncArtifactStore, name)

    @functools.wraps(sync_method)
    async def method(self: "AsyncArtifactStore", *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self._sync, name), *args, **kwargs)

    return method


class AsyncArtifactStore:
    """Async facade over ``ArtifactStore``; takes the same constructor arguments."""

    def __init__(self, *args: Any, sync_store: Any = None, **kwargs: Any) -> None:
        self._sync = sync_store if sync_store is not None else SyncArtifactStore(*args, **kwargs)

    @property
    def sync(self) -> Any:
        """The synchronous store (or view) behind this facade."""
        return self._sync

    def __getattr__(self, name: str) -> Any:
        # Attributes such as settings, sandbox_id, storage_provider come from the sync store.
        return getattr(self._sync, name)

    def parse_grid_key(self, key: str) -> GridKey:
        return self._sync.parse_grid_key(key)

    def as_user(self, user_id: str, session_id: str | None = None) -> "AsyncArtifactStore":
        return AsyncArtifactStore(sync_store=self._sync.as_user(user_id, session_id))

    def as_session(self, session_id: str, user_id: str | None = None) -> "AsyncArtifactStore":
        return AsyncArtifactStore(sync_store=self._sync.as_session(session_id, user_id))

    def as_admin(self) -> "AsyncArtifactStore":
        return AsyncArtifactStore(sync_store=self._sync.as_admin())

    async def stream_upload(self, request: StreamUploadRequest) -> str:
        """Upload from an async iterable (or a sync iterable / file object) without blocking the loop.

        The worker thread pulls chunks from the event loop about a MiB at a time (``_gather``),
        the next batch gathered while it writes the current one, so at most two batches are in
        flight; cancelling the awaiting task abandons the upload and discards it.
        """
        stream = request.data_stream
        if not hasattr(stream, "__aiter__"):
            return await asyncio.to_thread(self._sync.stream_upload, request)
        loop = asyncio.get_running_loop()
        abandoned = threading.Event()
        iterator = stream.__aiter__()

        def gather() -> concurrent.futures.Future[tuple[list[bytes], bool]]:
            return asyncio.run_coroutine_threadsafe(_gather(iterator, _BRIDGE_BYTES), loop)

        def pull() -> Iterator[bytes]:
            future: concurrent.futures.Future[tuple[list[bytes], bool]] | None = gather()
            try:
                while future is not None:
                    while True:
                        if abandoned.is_set():
                            raise ArtifactStoreError("stream upload abandoned")
                        try:
                            batch, ended = future.result(timeout=_POLL)
                            break
                        except concurrent.futures.TimeoutError:
                            continue
                    future = None if ended else gather()  # gathered while this batch is written
                    yield from batch
            finally:
                if future is not None:
                    future.cancel()

        bridged = dataclasses.replace(request, data_stream=pull())
        try:
            return await asyncio.to_thread(self._sync.stream_upload, bridged)
        except BaseException:
            abandoned.set()
            raise

    def stream_download(self, request: StreamDownloadRequest) -> AsyncIterator[bytes]:
        """An async iterator of the artifact's chunks, read in a worker thread about a MiB at a
        time (``_take``), the next batch read while the caller consumes the current one: bounded
        memory (two batches), and a thread hop per MiB rather than per chunk."""
        return self._download(request)

    async def _download(self, request: StreamDownloadRequest) -> AsyncIterator[bytes]:
        chunks = await asyncio.to_thread(self._sync.stream_download, request)
        pending: asyncio.Future[tuple[list[bytes], Exception | None]] | None = None
        try:
            pending = asyncio.ensure_future(asyncio.to_thread(_take, chunks, _BRIDGE_BYTES))
            while pending is not None:
                batch, error = await asyncio.shield(pending)  # a cancelled caller leaves it running
                pending = None
                if batch and error is None:
                    pending = asyncio.ensure_future(asyncio.to_thread(_take, chunks, _BRIDGE_BYTES))
                for chunk in batch:
                    yield chunk
                if error is not None:
                    raise error
        finally:
            if pending is not None:  # the read in flight must end before the generator is closed
                await asyncio.wait([pending])
            await asyncio.to_thread(chunks.close)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._sync.close)

    close = aclose

    async def __aenter__(self) -> "AsyncArtifactStore":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncArtifactStore of {self._sync!r}>"


async def _gather(iterator: AsyncIterator[Any], limit: int) -> tuple[list[bytes], bool]:
    """Chunks from ``iterator`` until they add up to ``limit`` bytes; and whether it ended.

    Chunks are copied to ``bytes`` here, since a producer may reuse its buffer for the next one.
    """
    batch: list[bytes] = []
    size = 0
    while size < limit:
        try:
            chunk = await iterator.__anext__()
        except StopAsyncIteration:
            return batch, True
        chunk = chunk if isinstance(chunk, bytes) else bytes(chunk)
        batch.append(chunk)
        size += len(chunk)
    return batch, False


def _take(chunks: Iterator[bytes], limit: int) -> tuple[list[bytes], Exception | None]:
    """Chunks from ``chunks`` until they add up to ``limit`` bytes (none once it is exhausted),
    and the error that stopped it, if any: the chunks read before an error are still delivered."""
    batch: list[bytes] = []
    size = 0
    try:
        for chunk in chunks:
            batch.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    except Exception as exc:  # noqa: BLE001 - re-raised by the caller after the chunks before it
        return batch, exc
    return batch, None


for _name in ASYNC_METHODS:
    setattr(AsyncArtifactStore, _name, _threaded(_name))
del _name

ArtifactStore = AsyncArtifactStore
