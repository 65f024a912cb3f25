"""The async facade: the same API as the sync store, awaited off the event loop."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time

import pytest

import chuk_artifacts.aio
from chuk_artifacts import (
    AccessDeniedError,
    ArtifactExpiredError,
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreError,
    AsyncArtifactStore,
    CleanupResult,
    InvalidArgumentError,
)
from chuk_artifacts.aio import ASYNC_METHODS


def run(coro):
    return asyncio.run(coro)


def test_aio_artifact_store_is_the_async_store():
    assert chuk_artifacts.aio.ArtifactStore is AsyncArtifactStore


def test_every_async_method_is_a_coroutine_function_named_like_the_sync_one():
    for name in ASYNC_METHODS:
        assert inspect.iscoroutinefunction(getattr(AsyncArtifactStore, name)), name
        assert hasattr(ArtifactStore, name), name


def test_the_async_store_mirrors_every_public_sync_method(astore):
    sync_public = {n for n, v in inspect.getmembers(ArtifactStore, callable) if not n.startswith("_")}
    missing = {n for n in sync_public if not hasattr(astore, n)}
    assert missing == set()


def test_async_methods_keep_the_sync_signature():
    for name in ASYNC_METHODS:
        assert inspect.signature(getattr(AsyncArtifactStore, name)) == inspect.signature(
            getattr(ArtifactStore, name)
        ), name


def test_async_store_and_retrieve(astore):
    async def main():
        aid = await astore.store(b"hello", mime="text/plain", user_id="alice", filename="h.txt")
        assert await astore.retrieve(aid) == b"hello"
        assert await astore.read_file(aid, as_text=True) == "hello"
        assert await astore.exists(aid) is True
        meta = await astore.metadata(aid)
        assert (meta.filename, meta.bytes) == ("h.txt", 5)

    run(main())


def test_async_write_file_and_store_batch(astore):
    async def main():
        sid = await astore.create_session(user_id="alice")
        aid = await astore.write_file("text", filename="t.txt", session_id=sid)
        ids = await astore.store_batch(
            [{"data": b"1", "mime": "text/plain"}, {"data": b"2", "mime": "text/plain"}], session_id=sid
        )
        listed = await astore.list_by_session(sid)
        assert [m.artifact_id for m in listed] == [aid, *ids]

    run(main())


def test_async_search_and_directory_listing(astore):
    async def main():
        sid = await astore.create_session(user_id="alice")
        a = await astore.store(b"1", mime="image/png", session_id=sid, filename="img/a.png", meta={"k": 1})
        await astore.store(b"2", mime="text/plain", session_id=sid, filename="doc/b.txt", meta={"k": 2})
        assert [m.artifact_id for m in await astore.search(user_id="alice", mime_prefix="image/")] == [a]
        assert [m.artifact_id for m in await astore.search(meta_filter={"k": 1})] == [a]
        assert [m.artifact_id for m in await astore.get_directory_contents(sid, "img/")] == [a]
        page = await astore.search(user_id="alice", limit=1)
        rest = await astore.search(user_id="alice", limit=1, cursor=page.next_cursor)
        assert len(page) == len(rest) == 1 and rest.next_cursor is None

    run(main())


def test_async_update_copy_move_and_delete(astore):
    async def main():
        aid = await astore.store(b"v1", mime="text/plain", user_id="alice", meta={"a": 1})
        assert await astore.update_file(aid, data=b"v2") is True
        updated = await astore.update_metadata(aid, meta={"b": 2})
        assert updated.meta == {"a": 1, "b": 2}
        extended = await astore.extend_ttl(aid, 60)
        assert extended.ttl == 960
        copy = await astore.copy_file(aid, new_filename="copy.txt")
        moved = await astore.move_file(aid, new_filename="moved.txt")
        assert moved.filename == "moved.txt"
        assert await astore.delete(aid) is True
        assert await astore.retrieve(copy) == b"v2"
        with pytest.raises(ArtifactNotFoundError):
            await astore.retrieve(aid)

    run(main())


def test_async_sessions(astore):
    async def main():
        sid = await astore.create_session(user_id="alice", custom_metadata={"a": 1})
        assert await astore.validate_session(sid) is True
        assert await astore.update_session_metadata(sid, {"b": 2}) is True
        assert await astore.extend_session_ttl(sid, 1) is True
        info = await astore.get_session_info(sid)
        assert info["custom_metadata"] == {"a": 1, "b": 2}
        assert await astore.delete_session(sid) is True
        assert await astore.validate_session(sid) is False

    run(main())


def test_async_cleanup(astore, clock):
    async def main():
        aid = await astore.store(b"12345", mime="text/plain", user_id="alice", ttl=10)
        clock.advance(11)
        with pytest.raises(ArtifactExpiredError):
            await astore.retrieve(aid)
        result = await astore.cleanup_expired_sessions()
        assert isinstance(result, CleanupResult)
        assert (result.artifacts, result.bytes) == (1, 5)
        with pytest.raises(ArtifactNotFoundError):
            await astore.retrieve(aid)

    run(main())


def test_async_stats_configuration_and_grid_keys(astore):
    async def main():
        aid = await astore.store(b"123", mime="text/plain", user_id="alice", scope="user")
        stats = await astore.get_stats()
        assert stats["artifacts"]["count"] == 1
        assert (await astore.validate_configuration())["status"] == "ok"
        key = (await astore.metadata(aid)).key
        assert astore.parse_grid_key(key).artifact_id == aid

    run(main())


def test_async_errors_are_the_sync_errors(astore):
    async def main():
        aid = await astore.store(b"x", mime="text/plain", user_id="alice", scope="user")
        with pytest.raises(AccessDeniedError):
            await astore.retrieve(aid, user_id="bob")
        with pytest.raises(InvalidArgumentError):
            await astore.store(b"x", mime="text/plain", ttl=0)
        with pytest.raises(ArtifactNotFoundError):
            await astore.metadata("missing")

    run(main())


def test_async_store_as_context_manager_closes_the_store(make_store, backend):
    sync = make_store(backend)

    async def main():
        async with AsyncArtifactStore(sync_store=sync) as s:
            aid = await s.store(b"x", mime="text/plain", user_id="alice")
            assert await s.retrieve(aid) == b"x"
        return aid

    aid = run(main())
    with pytest.raises(ArtifactStoreError, match="closed"):
        sync.retrieve(aid)


def test_async_store_built_with_constructor_arguments(tmp_path):
    async def main():
        async with AsyncArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path / "fs")) as s:
            assert s.storage_provider == "filesystem"
            aid = await s.store(b"x", mime="text/plain", user_id="alice")
            assert await s.retrieve(aid) == b"x"

    run(main())
    assert (tmp_path / "fs" / "catalog.db").exists()


def test_async_store_with_no_arguments_is_in_memory():
    async def main():
        async with AsyncArtifactStore() as s:
            aid = await s.store(b"x", mime="text/plain")
            assert await s.read_file(aid) == b"x"
            assert s.storage_provider == "memory"

    run(main())


def test_async_calls_run_off_the_event_loop_thread(astore, monkeypatch):
    """A call the sync store cannot promise to be free of I/O runs in a worker thread."""
    monkeypatch.setattr(astore.sync, "runs_inline", lambda name: False, raising=False)
    threads: list[int] = []
    original = astore.sync.store

    def spy(*args, **kwargs):
        threads.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(astore.sync, "store", spy)

    async def main():
        await astore.store(b"x", mime="text/plain", user_id="alice")
        return threading.get_ident()

    loop_thread = run(main())
    assert threads and threads[0] != loop_thread


def test_the_event_loop_keeps_running_during_concurrent_stores(astore, monkeypatch):
    """20 concurrent stores whose backend writes take 30 ms each: a heartbeat keeps ticking."""
    # A slow backend blocks: the sync store would not run its calls inline.
    monkeypatch.setattr(astore.sync, "runs_inline", lambda name: False, raising=False)
    original_put = astore.sync.blobs.put

    def slow_put(key, data):
        time.sleep(0.03)  # a slow backend (real sleep: blocks whatever thread runs it)
        original_put(key, data)

    monkeypatch.setattr(astore.sync.blobs, "put", slow_put)

    async def main():
        ticks = 0
        done = asyncio.Event()

        async def heartbeat():
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        beat = asyncio.create_task(heartbeat())
        await asyncio.sleep(0)
        start = ticks
        ids = await asyncio.gather(
            *(astore.store(f"{i}".encode(), mime="text/plain", user_id="alice") for i in range(20))
        )
        during = ticks - start
        done.set()
        await beat
        return ids, during

    ids, during = run(main())
    assert len(set(ids)) == 20
    # A blocked loop would tick at most once; 20 x 30 ms spread over worker threads take >= 0.1 s.
    assert during >= 5
    assert [astore.sync.retrieve(i) for i in ids] == [f"{i}".encode() for i in range(20)]


def test_async_as_user_injects_the_identity(astore):
    async def main():
        alice = astore.as_user("alice")
        assert isinstance(alice, AsyncArtifactStore)
        aid = await alice.store(b"mine", mime="text/plain", scope="user")
        assert (await alice.metadata(aid)).owner_id == "alice"
        assert [m.artifact_id for m in await alice.search()] == [aid]
        bob = astore.as_user("bob")
        with pytest.raises(AccessDeniedError):
            await bob.retrieve(aid)
        with pytest.raises(AccessDeniedError):
            await alice.retrieve(aid, user_id="bob")

    run(main())


def test_async_as_admin_works_in_strict_mode(make_store, backend):
    st = AsyncArtifactStore(sync_store=make_store(backend, strict=True))

    async def main():
        with pytest.raises(AccessDeniedError):
            await st.store(b"x", mime="text/plain")
        aid = await st.as_admin().store(b"x", mime="text/plain", scope="sandbox")
        assert await st.as_user("bob").retrieve(aid) == b"x"

    run(main())


# -- the download bridge ---------------------------------------------------------------------


class _CountingDownload:
    """Stands in for the sync store's download: endless 64 KiB chunks, counted, closable."""

    CHUNK = 64 * 1024

    def __init__(self, fail_after: int | None = None) -> None:
        self.produced = 0
        self.closed = threading.Event()
        self.fail_after = fail_after

    def __call__(self, request):
        return self._chunks()

    def _chunks(self):
        try:
            while True:
                if self.fail_after is not None and self.produced >= self.fail_after:
                    raise ArtifactStoreError("backend read failed")
                self.produced += self.CHUNK
                yield bytes([self.produced // self.CHUNK % 256]) * self.CHUNK
        finally:
            self.closed.set()


def test_async_download_of_many_batches_returns_every_byte_in_order(astore):
    data = bytes(range(256)) * (5 * 4096 + 7)  # ~5 MiB: several bridge batches, a ragged end
    aid = astore.sync.store(data, mime="application/octet-stream")

    async def main():
        from chuk_artifacts import StreamDownloadRequest

        return b"".join([c async for c in astore.stream_download(StreamDownloadRequest(aid))])

    assert run(main()) == data


def test_async_download_reads_a_bounded_amount_ahead_of_a_slow_consumer(astore, monkeypatch):
    source = _CountingDownload()
    monkeypatch.setattr(astore.sync, "stream_download", source)

    async def main():
        from chuk_artifacts import StreamDownloadRequest

        stream = astore.stream_download(StreamDownloadRequest("any"))
        first = await stream.__anext__()
        await asyncio.sleep(0.3)  # the reader runs ahead as far as it may, then waits
        ahead = source.produced
        await stream.aclose()
        return first, ahead

    first, ahead = run(main())
    assert len(first) == _CountingDownload.CHUNK
    limit = (chuk_artifacts.aio._BRIDGE_DEPTH + 1) * chuk_artifacts.aio._BRIDGE_BYTES
    assert chuk_artifacts.aio._BRIDGE_BYTES <= ahead <= limit
    assert source.closed.is_set()  # closed before aclose() returned


def test_async_download_error_arrives_after_the_chunks_read_before_it(astore, monkeypatch):
    source = _CountingDownload(fail_after=3 * 1024 * 1024 + 5 * _CountingDownload.CHUNK)
    monkeypatch.setattr(astore.sync, "stream_download", source)

    async def main():
        from chuk_artifacts import StreamDownloadRequest

        got = 0
        with pytest.raises(ArtifactStoreError, match="backend read failed"):
            async for chunk in astore.stream_download(StreamDownloadRequest("any")):
                got += len(chunk)
        return got

    assert run(main()) == source.fail_after
    assert source.closed.is_set()


@pytest.mark.parametrize("closing", [True, False], ids=["aclosing", "abandoned"])
def test_cancelled_async_download_stops_its_reader(astore, monkeypatch, closing):
    """Cancelled mid-download: with ``contextlib.aclosing`` the download is closed before the
    task ends; abandoned without it, the loop finalizes the generator and the reader still
    ends and closes the download."""
    import contextlib

    source = _CountingDownload()
    monkeypatch.setattr(astore.sync, "stream_download", source)
    closed_when_task_ended: list[bool] = []

    async def main():
        from chuk_artifacts import StreamDownloadRequest

        started = asyncio.Event()

        async def consume():
            stream = astore.stream_download(StreamDownloadRequest("any"))
            guard = contextlib.aclosing(stream) if closing else contextlib.nullcontext(stream)
            async with guard as chunks:
                async for _ in chunks:
                    started.set()
                    await asyncio.sleep(10)

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        closed_when_task_ended.append(source.closed.is_set())
        return [t for t in threading.enumerate() if t.name == "chuk-artifacts-download"]

    readers = run(main())
    if closing:
        assert closed_when_task_ended == [True]
    for reader in readers:
        reader.join(timeout=5)
        assert not reader.is_alive()
    assert source.closed.is_set()
