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
#: Batches a download's reader thread may read ahead of the consumer.
_BRIDGE_DEPTH = 2


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
        """An async iterator of the artifact's chunks.

        A reader thread of its own reads them about a MiB at a time (``_take``) and hands each
        batch to the event loop, at most ``_BRIDGE_DEPTH`` batches ahead of the consumer:
        memory stays bounded, the read never waits for a thread hand-off, and a slow consumer
        holds no worker of the default executor. Closing the iterator early (``aclose()``, or
        ``async with contextlib.aclosing(...)`` around the loop, which also covers ``break``
        and cancellation) stops the reader and closes the download before it returns; an
        iterator merely abandoned is closed when the event loop finalizes it.
        """
        return self._download(request)

    async def _download(self, request: StreamDownloadRequest) -> AsyncIterator[bytes]:
        chunks = await asyncio.to_thread(self._sync.stream_download, request)
        loop = asyncio.get_running_loop()
        batches: asyncio.Queue[tuple[list[bytes], Exception | None]] = asyncio.Queue()
        slots = threading.Semaphore(_BRIDGE_DEPTH)
        stop = threading.Event()
        finished = loop.create_future()

        def hand_over(callback: Any, *args: Any) -> None:
            try:
                loop.call_soon_threadsafe(callback, *args)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

        def read() -> None:
            try:
                while True:
                    slots.acquire()
                    if stop.is_set():
                        return
                    batch, error = _take(chunks, _BRIDGE_BYTES)
                    hand_over(batches.put_nowait, (batch, error))
                    if not batch or error is not None:
                        return
            finally:
                try:
                    chunks.close()
                finally:
                    hand_over(lambda: finished.done() or finished.set_result(None))

        threading.Thread(target=read, name="chuk-artifacts-download", daemon=True).start()
        try:
            while True:
                batch, error = await batches.get()
                slots.release()
                for chunk in batch:
                    yield chunk
                if error is not None:
                    raise error
                if not batch:
                    return
        finally:
            stop.set()
            slots.release()  # a reader waiting for room wakes up, sees ``stop`` and ends
            await asyncio.wait([finished])  # the download is closed before the iterator is

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
