"""``AsyncArtifactStore``: the same methods as ``ArtifactStore``, awaited without blocking the loop.

It is a thin facade, not a second implementation: every method below is written out with the
sync method's exact parameters (so type checkers and IDEs see the real signatures) and hands
the call to the sync store through one helper, ``AsyncArtifactStore._run``.
``chuk_artifacts.aio.ArtifactStore`` is this class, so code written for the published package's
async API changes one import.

Where a call runs
-----------------
``_run`` asks the sync store (or identity view) ``runs_inline(name)`` just before each call:

* ``True``: the store promises that the call cannot block on I/O right now, nor wait behind a
  lock another thread holds across I/O. It touches only memory (for example a catalog-only
  read from an in-memory or WAL-mode SQLite catalog, or anything on the memory backend with an
  in-memory catalog) and no lifecycle plugin that might do I/O is listening. The sync method
  is then called directly on the event loop's thread, which is cheaper than the thread hop;
  the exact rule is the sync store's, described in ``docs/architecture.md``. An inline call is
  not a suspension point: it returns (or raises, with the very exception the thread would have
  raised) without yielding to other tasks, and it runs in the caller's ``contextvars`` context
  rather than a copy.
* ``False``, or a sync store without ``runs_inline``: ``await asyncio.to_thread(...)``, so
  SQL, storage and plugin I/O happen in a worker thread and the event loop never waits on them.

The other calls never run on the loop: ``stream_upload``/``stream_download`` bridge chunks to
worker threads of their own, and ``aclose`` closes the store in a worker thread. The views
(``as_user``/``as_session``/``as_admin``) and the key helpers are plain methods without I/O.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import threading
from typing import Any, AsyncIterator, Callable, Concatenate, Iterable, Iterator, Mapping, ParamSpec, TypeVar

from .errors import ArtifactStoreError
from .grid import GridKey
from .models import (
    _DEFAULT,
    ArtifactList,
    ArtifactMetadata,
    CleanupResult,
    MultipartUploadCompleteRequest,
    MultipartUploadInitRequest,
    ShareLink,
    StreamDownloadRequest,
    StreamUploadRequest,
    Ttl,
)
from .store import ArtifactStore as SyncArtifactStore

__all__ = ["AsyncArtifactStore", "ArtifactStore"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: Public methods of the sync store that are not awaited through ``_run``: pure helpers without
#: I/O, the views (re-wrapped below), ``close`` (``aclose``) and streaming (bridged below).
_NOT_THREADED = frozenset(
    {
        "parse_grid_key",
        "get_canonical_prefix",
        "generate_artifact_key",
        "runs_inline",
        "as_user",
        "as_session",
        "as_admin",
        "close",
        "stream_upload",
        "stream_download",
        "signed_blob",
        "receive_upload",
        "receive_part",  # a (sync) gateway's: see gateway.SignedURLStore
    }
)
_POLL = 0.25  # how often a worker thread waiting for the next upload chunk checks for cancellation
#: Bytes of chunks handed across the thread boundary at once by streaming: one thread hop per
#: 64 KiB chunk costs more than the I/O, one per MiB does not, and memory stays bounded.
_BRIDGE_BYTES = 1 << 20
#: Batches a download's reader thread may read ahead of the consumer.
_BRIDGE_DEPTH = 2


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

    # -- how a call runs ------------------------------------------------------------------

    def runs_inline(self, name: str) -> bool:
        """Whether calling method ``name`` now runs on the event loop (it cannot block on I/O)."""
        check = getattr(self._sync, "runs_inline", None)
        return check is not None and bool(check(name))

    async def _run(self, method: Callable[Concatenate[Any, _P], _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call the sync store's method of the same name as ``method`` (a function of the sync
        class, so type checkers check the arguments): inline when ``runs_inline`` says it
        cannot block, else in a worker thread."""
        name = method.__name__
        call: Callable[_P, _T] = getattr(self._sync, name)
        if self.runs_inline(name):
            return call(*args, **kwargs)
        return await asyncio.to_thread(call, *args, **kwargs)

    # -- helpers without I/O and identity-bound views -------------------------------------

    def parse_grid_key(self, key: str) -> GridKey:
        """Split a grid key into sandbox, scope, session/user and artifact id."""
        return self._sync.parse_grid_key(key)

    def get_canonical_prefix(self, session_id: str) -> str:
        """The key prefix of a session's session-scoped artifacts."""
        return self._sync.get_canonical_prefix(session_id)

    def generate_artifact_key(self, session_id: str, artifact_id: str) -> str:
        """The grid key of a session-scoped artifact."""
        return self._sync.generate_artifact_key(session_id, artifact_id)

    def as_user(self, user_id: str, session_id: str | None = None) -> "AsyncArtifactStore":
        """A view of this store whose every call acts as ``user_id`` (and ``session_id``)."""
        return AsyncArtifactStore(sync_store=self._sync.as_user(user_id, session_id))

    def as_session(self, session_id: str, user_id: str | None = None) -> "AsyncArtifactStore":
        """A view of this store whose every call acts as ``session_id``."""
        return AsyncArtifactStore(sync_store=self._sync.as_session(session_id, user_id))

    def as_admin(self) -> "AsyncArtifactStore":
        """An explicit admin view: the only way to act without identity in strict mode."""
        return AsyncArtifactStore(sync_store=self._sync.as_admin())

    # -- artifacts ------------------------------------------------------------------------

    async def store(
        self,
        data: bytes,
        *,
        mime: str,
        summary: str = "",
        meta: dict[str, Any] | None = None,
        filename: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        ttl: Ttl = _DEFAULT,
        scope: str = "session",
    ) -> str:
        """Store ``data`` and return its new artifact id."""
        return await self._run(
            SyncArtifactStore.store,
            data,
            mime=mime,
            summary=summary,
            meta=meta,
            filename=filename,
            session_id=session_id,
            user_id=user_id,
            ttl=ttl,
            scope=scope,
        )

    async def store_batch(
        self,
        items: Iterable[Mapping[str, Any]],
        session_id: str | None = None,
        ttl: Ttl = _DEFAULT,
        *,
        user_id: str | None = None,
        scope: str = "session",
    ) -> list[str]:
        """Store several artifacts in one transaction: all of them, or (on any error) none."""
        return await self._run(SyncArtifactStore.store_batch, items, session_id, ttl, user_id=user_id, scope=scope)

    async def write_file(
        self,
        content: str | bytes,
        *,
        filename: str,
        mime: str | None = None,
        summary: str = "",
        session_id: str | None = None,
        user_id: str | None = None,
        meta: dict[str, Any] | None = None,
        encoding: str = "utf-8",
        overwrite_artifact_id: str | None = None,
        scope: str = "session",
        ttl: Ttl = _DEFAULT,
    ) -> str:
        """Store text (encoded with ``encoding``) or bytes under ``filename``; return the id."""
        return await self._run(
            SyncArtifactStore.write_file,
            content,
            filename=filename,
            mime=mime,
            summary=summary,
            session_id=session_id,
            user_id=user_id,
            meta=meta,
            encoding=encoding,
            overwrite_artifact_id=overwrite_artifact_id,
            scope=scope,
            ttl=ttl,
        )

    async def retrieve(self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None) -> bytes:
        """The artifact's bytes."""
        return await self._run(SyncArtifactStore.retrieve, artifact_id, user_id=user_id, session_id=session_id)

    async def read_file(
        self,
        artifact_id: str,
        *,
        encoding: str = "utf-8",
        as_text: bool = False,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> bytes | str:
        """The artifact's bytes, or its text decoded with ``encoding`` when ``as_text=True``."""
        return await self._run(
            SyncArtifactStore.read_file,
            artifact_id,
            encoding=encoding,
            as_text=as_text,
            user_id=user_id,
            session_id=session_id,
        )

    async def metadata(
        self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None
    ) -> ArtifactMetadata:
        """The catalog's record of the artifact."""
        return await self._run(SyncArtifactStore.metadata, artifact_id, user_id=user_id, session_id=session_id)

    async def exists(self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None) -> bool:
        """``True`` if the artifact exists and has not expired (access is still checked)."""
        return await self._run(SyncArtifactStore.exists, artifact_id, user_id=user_id, session_id=session_id)

    async def update_file(
        self,
        artifact_id: str,
        *,
        data: bytes | None = None,
        mime: str | None = None,
        summary: str | None = None,
        meta: dict[str, Any] | None = None,
        filename: str | None = None,
        ttl: Ttl = _DEFAULT,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> bool:
        """Replace the content and/or change mime, summary, filename, meta (merged) or ttl."""
        return await self._run(
            SyncArtifactStore.update_file,
            artifact_id,
            data=data,
            mime=mime,
            summary=summary,
            meta=meta,
            filename=filename,
            ttl=ttl,
            user_id=user_id,
            session_id=session_id,
        )

    async def update_metadata(
        self,
        artifact_id: str,
        *,
        summary: str | None = None,
        meta: dict[str, Any] | None = None,
        merge: bool = True,
        filename: str | None = None,
        ttl: Ttl = _DEFAULT,
        new_meta: dict[str, Any] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> ArtifactMetadata:
        """Change metadata without touching the bytes. ``meta`` merges unless ``merge=False``."""
        return await self._run(
            SyncArtifactStore.update_metadata,
            artifact_id,
            summary=summary,
            meta=meta,
            merge=merge,
            filename=filename,
            ttl=ttl,
            new_meta=new_meta,
            user_id=user_id,
            session_id=session_id,
        )

    async def extend_ttl(
        self,
        artifact_id: str,
        additional_seconds: int,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> ArtifactMetadata:
        """Push the expiry back by ``additional_seconds`` (no effect on artifacts that never expire)."""
        return await self._run(
            SyncArtifactStore.extend_ttl,
            artifact_id,
            additional_seconds,
            user_id=user_id,
            session_id=session_id,
        )

    async def copy_file(
        self,
        artifact_id: str,
        *,
        new_filename: str | None = None,
        target_session_id: str | None = None,
        new_meta: dict[str, Any] | None = None,
        summary: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """Copy an artifact within its own session/scope; return the copy's id."""
        return await self._run(
            SyncArtifactStore.copy_file,
            artifact_id,
            new_filename=new_filename,
            target_session_id=target_session_id,
            new_meta=new_meta,
            summary=summary,
            user_id=user_id,
            session_id=session_id,
        )

    async def move_file(
        self,
        artifact_id: str,
        *,
        new_filename: str | None = None,
        new_session_id: str | None = None,
        new_meta: dict[str, Any] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> ArtifactMetadata:
        """Rename an artifact (and merge ``new_meta``); persisted. Moves never cross sessions."""
        return await self._run(
            SyncArtifactStore.move_file,
            artifact_id,
            new_filename=new_filename,
            new_session_id=new_session_id,
            new_meta=new_meta,
            user_id=user_id,
            session_id=session_id,
        )

    async def delete(self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None) -> bool:
        """Delete the artifact's bytes and row. ``False`` if there was nothing to delete."""
        return await self._run(SyncArtifactStore.delete, artifact_id, user_id=user_id, session_id=session_id)

    # -- listing --------------------------------------------------------------------------

    async def list_by_session(
        self,
        session_id: str,
        limit: int = 100,
        *,
        cursor: str | None = None,
        user_id: str | None = None,
    ) -> ArtifactList:
        """Live artifacts of a session, oldest first, one page at a time (see ``next_cursor``)."""
        return await self._run(SyncArtifactStore.list_by_session, session_id, limit, cursor=cursor, user_id=user_id)

    async def get_directory_contents(
        self,
        session_id: str,
        directory_prefix: str = "",
        limit: int = 100,
        *,
        cursor: str | None = None,
        user_id: str | None = None,
    ) -> ArtifactList:
        """Artifacts of a session whose filename starts with ``directory_prefix``, by filename."""
        return await self._run(
            SyncArtifactStore.get_directory_contents,
            session_id,
            directory_prefix,
            limit,
            cursor=cursor,
            user_id=user_id,
        )

    async def search(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        scope: str | None = None,
        mime_prefix: str | None = None,
        meta_filter: dict[str, Any] | None = None,
        filename_prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        text: str | None = None,
        snippet: bool = False,
    ) -> ArtifactList:
        """Live artifacts the caller may read that match every filter, oldest first, paginated;
        with ``text``, a full-text search, best first."""
        return await self._run(
            SyncArtifactStore.search,
            user_id=user_id,
            session_id=session_id,
            scope=scope,
            mime_prefix=mime_prefix,
            meta_filter=meta_filter,
            filename_prefix=filename_prefix,
            limit=limit,
            cursor=cursor,
            text=text,
            snippet=snippet,
        )

    # -- sessions -------------------------------------------------------------------------

    async def create_session(
        self,
        user_id: str | None = None,
        ttl_hours: float | None = None,
        custom_metadata: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> str:
        """Create a session (optionally for a user, with its own TTL and metadata); return its id."""
        return await self._run(
            SyncArtifactStore.create_session,
            user_id,
            ttl_hours,
            custom_metadata,
            session_id=session_id,
        )

    async def validate_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        """``True`` if the session exists and has not expired."""
        return await self._run(SyncArtifactStore.validate_session, session_id, user_id=user_id)

    async def get_session_info(self, session_id: str, *, user_id: str | None = None) -> dict[str, Any] | None:
        """The session's details, or ``None`` if it does not exist or has expired."""
        return await self._run(SyncArtifactStore.get_session_info, session_id, user_id=user_id)

    async def update_session_metadata(
        self, session_id: str, metadata: dict[str, Any], *, user_id: str | None = None
    ) -> bool:
        """Merge ``metadata`` into the session's custom metadata."""
        return await self._run(SyncArtifactStore.update_session_metadata, session_id, metadata, user_id=user_id)

    async def extend_session_ttl(self, session_id: str, additional_hours: float, *, user_id: str | None = None) -> bool:
        """Push the session's expiry back by ``additional_hours``."""
        return await self._run(SyncArtifactStore.extend_session_ttl, session_id, additional_hours, user_id=user_id)

    async def delete_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        """Delete a session and its session-scoped artifacts (user-scoped ones stay)."""
        return await self._run(SyncArtifactStore.delete_session, session_id, user_id=user_id)

    # -- presigned URLs and uploads -------------------------------------------------------

    async def presign(
        self,
        artifact_id: str,
        expires: int = 3600,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """A URL that downloads the artifact for ``expires`` seconds, without credentials."""
        return await self._run(SyncArtifactStore.presign, artifact_id, expires, user_id=user_id, session_id=session_id)

    async def presign_short(
        self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None
    ) -> str:
        """A 15-minute download URL."""
        return await self._run(SyncArtifactStore.presign_short, artifact_id, user_id=user_id, session_id=session_id)

    async def presign_medium(
        self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None
    ) -> str:
        """A 1-hour download URL."""
        return await self._run(SyncArtifactStore.presign_medium, artifact_id, user_id=user_id, session_id=session_id)

    async def presign_long(self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None) -> str:
        """A 24-hour download URL."""
        return await self._run(SyncArtifactStore.presign_long, artifact_id, user_id=user_id, session_id=session_id)

    async def share(
        self,
        artifact_id: str,
        *,
        expires: int = 86400,
        max_downloads: int | None = None,
        password: str | None = None,
        disposition: str = "attachment",
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> ShareLink:
        """A revocable, expiring, counted share link to the artifact (see the sync ``share``)."""
        return await self._run(
            SyncArtifactStore.share,
            artifact_id,
            expires=expires,
            max_downloads=max_downloads,
            password=password,
            disposition=disposition,
            user_id=user_id,
            session_id=session_id,
        )

    async def list_shares(
        self,
        artifact_id: str | None = None,
        *,
        include_inactive: bool = False,
        limit: int = 100,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> list[ShareLink]:
        """The caller's share links, newest first (see the sync ``list_shares``)."""
        return await self._run(
            SyncArtifactStore.list_shares,
            artifact_id,
            include_inactive=include_inactive,
            limit=limit,
            user_id=user_id,
            session_id=session_id,
        )

    async def revoke_share(self, share_id: str, *, user_id: str | None = None, session_id: str | None = None) -> bool:
        """Revoke a share link; ``False`` if there was none or it was revoked already."""
        return await self._run(SyncArtifactStore.revoke_share, share_id, user_id=user_id, session_id=session_id)

    async def presign_upload(
        self,
        session_id: str | None = None,
        filename: str | None = None,
        mime_type: str = "application/octet-stream",
        expires: int = 1800,
        *,
        user_id: str | None = None,
        scope: str = "session",
        ttl: Ttl = _DEFAULT,
        meta: dict[str, Any] | None = None,
        summary: str = "",
    ) -> tuple[str, str]:
        """A URL a client can PUT the bytes to, and the artifact id they will get once registered."""
        return await self._run(
            SyncArtifactStore.presign_upload,
            session_id,
            filename,
            mime_type,
            expires,
            user_id=user_id,
            scope=scope,
            ttl=ttl,
            meta=meta,
            summary=summary,
        )

    async def presign_upload_and_register(
        self,
        mime: str,
        summary: str = "",
        filename: str | None = None,
        meta: dict[str, Any] | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        expires: int = 1800,
        *,
        scope: str = "session",
        ttl: Ttl = _DEFAULT,
    ) -> tuple[str, str]:
        """Like ``presign_upload``, with the artifact's metadata given now rather than at registration."""
        return await self._run(
            SyncArtifactStore.presign_upload_and_register,
            mime,
            summary,
            filename,
            meta,
            session_id,
            user_id,
            expires,
            scope=scope,
            ttl=ttl,
        )

    async def register_uploaded_artifact(
        self,
        artifact_id: str,
        *,
        mime: str | None = None,
        summary: str | None = None,
        filename: str | None = None,
        meta: dict[str, Any] | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        ttl: Ttl = _DEFAULT,
    ) -> str:
        """Turn a finished presigned upload into an artifact, recording its real size and sha256."""
        return await self._run(
            SyncArtifactStore.register_uploaded_artifact,
            artifact_id,
            mime=mime,
            summary=summary,
            filename=filename,
            meta=meta,
            session_id=session_id,
            user_id=user_id,
            ttl=ttl,
        )

    async def initiate_multipart_upload(self, request: MultipartUploadInitRequest) -> dict[str, Any]:
        """Start a multipart upload; returns ``upload_id``, ``artifact_id``, ``key``, ``expires_at``."""
        return await self._run(SyncArtifactStore.initiate_multipart_upload, request)

    async def get_part_upload_url(
        self,
        upload_id: str,
        part_number: int,
        expires: int = 3600,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """A URL to PUT part ``part_number`` (1–10000) to; its response carries the part's ETag."""
        return await self._run(
            SyncArtifactStore.get_part_upload_url,
            upload_id,
            part_number,
            expires,
            user_id=user_id,
            session_id=session_id,
        )

    async def complete_multipart_upload(self, request: MultipartUploadCompleteRequest) -> str:
        """Verify every part (number, ETag, minimum size) and assemble them into the artifact."""
        return await self._run(SyncArtifactStore.complete_multipart_upload, request)

    async def abort_multipart_upload(
        self, upload_id: str, *, user_id: str | None = None, session_id: str | None = None
    ) -> bool:
        """Cancel a multipart upload and delete every part uploaded so far."""
        return await self._run(
            SyncArtifactStore.abort_multipart_upload,
            upload_id,
            user_id=user_id,
            session_id=session_id,
        )

    # -- maintenance ----------------------------------------------------------------------

    async def cleanup_expired_sessions(
        self, *, dry_run: bool = False, progress: Callable[[str, int], None] | None = None
    ) -> CleanupResult:
        """Remove expired artifacts and expired sessions with their artifacts (see the sync store)."""
        return await self._run(SyncArtifactStore.cleanup_expired_sessions, dry_run=dry_run, progress=progress)

    async def reindex(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the full-text index of this sandbox's artifacts (see the sync store)."""
        return await self._run(SyncArtifactStore.reindex, progress=progress)

    async def validate_configuration(self) -> dict[str, Any]:
        """Check the catalog, the storage backend and the session provider for real."""
        return await self._run(SyncArtifactStore.validate_configuration)

    async def get_stats(self) -> dict[str, Any]:
        """Real counts and bytes of live artifacts (by scope) and live sessions in this sandbox."""
        return await self._run(SyncArtifactStore.get_stats)

    async def usage(self, user_id: str | None = None) -> dict[str, Any]:
        """Bytes and artifact count held by ``user_id`` (or the whole sandbox), with the limits."""
        return await self._run(SyncArtifactStore.usage, user_id)

    # -- streaming (bridged) and lifecycle ------------------------------------------------

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

        def finish() -> None:
            if not finished.done():
                finished.set_result(None)

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
                    hand_over(finish)

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


#: The methods awaited through ``_run``: every coroutine method written out above except the
#: bridges and ``aclose``. ``tests/test_async.py`` checks that they match the sync store's.
ASYNC_METHODS = tuple(
    sorted(
        name
        for name, value in vars(AsyncArtifactStore).items()
        if not name.startswith("_")
        and name not in _NOT_THREADED
        and name != "aclose"
        and inspect.iscoroutinefunction(value)
    )
)

ArtifactStore = AsyncArtifactStore
