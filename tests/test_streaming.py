"""Streaming uploads and downloads: sync API, async facade, and the seed README's examples."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os

import pytest

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactExpiredError,
    ArtifactNotFoundError,
    AsyncArtifactStore,
    InvalidArgumentError,
    StreamDownloadRequest,
    StreamUploadRequest,
)

DATA = os.urandom(10 * 1000 + 37)


def chunked(data: bytes, size: int):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def upload(store, stream, **kwargs):
    kwargs.setdefault("mime", "application/octet-stream")
    kwargs.setdefault("user_id", "alice")
    return store.stream_upload(StreamUploadRequest(data_stream=stream, **kwargs))


def download(store, artifact_id, **kwargs):
    return list(store.stream_download(StreamDownloadRequest(artifact_id=artifact_id, **kwargs)))


def blob_keys(store):
    return sorted(store.blobs.keys())


# -- upload sources ---------------------------------------------------------------------------


def test_stream_upload_from_a_generator(store):
    aid = upload(store, chunked(DATA, 999))
    assert store.retrieve(aid) == DATA


def test_stream_upload_from_a_file_object(store, tmp_path):
    path = tmp_path / "source.bin"
    path.write_bytes(DATA)
    with open(path, "rb") as f:
        aid = upload(store, f, chunk_size=4096)
    assert store.retrieve(aid) == DATA


def test_stream_upload_from_a_list(store):
    aid = upload(store, [b"alpha-", b"", b"beta-", bytearray(b"gamma")])
    assert store.retrieve(aid) == b"alpha-beta-gamma"


def test_stream_upload_from_an_in_memory_binary_file(store):
    aid = upload(store, io.BytesIO(DATA), chunk_size=1000)
    assert store.retrieve(aid) == DATA


def test_stream_upload_of_nothing_gives_an_empty_artifact(store):
    aid = upload(store, iter(()))
    meta = store.metadata(aid)
    assert (meta.bytes, meta.sha256) == (0, hashlib.sha256(b"").hexdigest())


def test_stream_upload_records_size_and_sha256(store):
    aid = upload(store, chunked(DATA, 777))
    meta = store.metadata(aid)
    assert meta.bytes == len(DATA)
    assert meta.sha256 == hashlib.sha256(DATA).hexdigest()


def test_stream_upload_keeps_the_metadata(store):
    aid = upload(
        store,
        [b"x"],
        mime="text/plain",
        summary="s",
        filename="dir/a.txt",
        meta={"k": 1},
        scope="user",
        ttl=None,
    )
    meta = store.metadata(aid, user_id="alice")
    assert (meta.mime, meta.summary, meta.filename, meta.meta) == ("text/plain", "s", "dir/a.txt", {"k": 1})
    assert (meta.scope, meta.owner_id, meta.ttl, meta.expires_at) == ("user", "alice", None, None)


def test_stream_upload_rejects_a_bad_mime_before_reading(store):
    consumed = []

    def gen():
        consumed.append(1)
        yield b"x"

    with pytest.raises(InvalidArgumentError):
        upload(store, gen(), mime="text/plain\r\nX-Evil: 1")
    assert consumed == []


@pytest.mark.parametrize("chunk_size", [0, -1, 64 * 1024 * 1024 + 1, 1.5, True])
def test_stream_upload_rejects_a_bad_chunk_size(store, chunk_size):
    with pytest.raises(InvalidArgumentError):
        upload(store, [b"x"], chunk_size=chunk_size)


# -- progress ---------------------------------------------------------------------------------


def test_upload_progress_is_reported_after_every_chunk(store):
    calls = []
    chunks = list(chunked(DATA, 1000))
    upload(store, chunks, content_length=len(DATA), progress_callback=lambda s, t: calls.append((s, t)))
    assert len(calls) == len(chunks)
    assert [s for s, _ in calls] == [min((i + 1) * 1000, len(DATA)) for i in range(len(chunks))]
    assert all(t == len(DATA) for _, t in calls)
    assert calls[-1] == (len(DATA), len(DATA))


def test_upload_progress_total_is_none_without_content_length(store):
    calls = []
    upload(store, chunked(DATA, 4000), progress_callback=lambda s, t: calls.append((s, t)))
    assert calls[-1] == (len(DATA), None)


def test_download_progress_is_reported_after_every_chunk(store):
    aid = upload(store, [DATA])
    calls = []
    chunks = download(store, aid, chunk_size=1000, progress_callback=lambda s, t: calls.append((s, t)))
    assert len(calls) == len(chunks)
    running = 0
    for chunk, (sent, total) in zip(chunks, calls):
        running += len(chunk)
        assert (sent, total) == (running, len(DATA))
    assert calls[-1] == (len(DATA), len(DATA))


def test_download_progress_of_a_range_counts_the_range(store):
    aid = upload(store, [DATA])
    calls = []
    download(store, aid, start=100, end=2100, chunk_size=500, progress_callback=lambda s, t: calls.append((s, t)))
    assert calls == [(500, 2000), (1000, 2000), (1500, 2000), (2000, 2000)]


# -- content_length and failing sources -----------------------------------------------------------


@pytest.mark.parametrize("declared", [len(DATA) - 1, len(DATA) + 1, 0])
def test_content_length_mismatch_is_refused_and_leaves_nothing(store, declared):
    before = blob_keys(store)
    with pytest.raises(InvalidArgumentError):
        upload(store, chunked(DATA, 1000), content_length=declared)
    assert blob_keys(store) == before
    assert list(store.search()) == []


def test_content_length_matching_is_accepted(store):
    aid = upload(store, chunked(DATA, 1000), content_length=len(DATA))
    assert store.metadata(aid).bytes == len(DATA)


@pytest.mark.parametrize("declared", [-1, 1.5, "10", True])
def test_invalid_content_length_is_rejected(store, declared):
    with pytest.raises(InvalidArgumentError):
        upload(store, [b"x"], content_length=declared)


def test_source_that_raises_halfway_propagates_and_leaves_nothing(store):
    class Boom(Exception):
        pass

    def gen():
        yield b"a" * 5000
        yield b"b" * 5000
        raise Boom("source failed")

    before = blob_keys(store)
    with pytest.raises(Boom):
        upload(store, gen())
    assert blob_keys(store) == before
    assert list(store.search()) == []


def test_failed_upload_does_not_disturb_other_artifacts(store):
    keep = upload(store, [b"keep me"])

    def gen():
        yield b"partial"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        upload(store, gen())
    assert [m.artifact_id for m in store.search()] == [keep]
    assert store.retrieve(keep) == b"keep me"


def test_progress_callback_that_raises_aborts_the_upload(store):
    def progress(sent, total):
        if sent > 3000:
            raise KeyboardInterrupt

    before = blob_keys(store)
    with pytest.raises(KeyboardInterrupt):
        upload(store, chunked(DATA, 1000), progress_callback=progress)
    assert blob_keys(store) == before
    assert list(store.search()) == []


# -- downloads ----------------------------------------------------------------------------------


def test_stream_download_returns_the_bytes(store):
    aid = upload(store, [DATA])
    assert b"".join(download(store, aid)) == DATA


@pytest.mark.parametrize("chunk_size", [1000, 4096, 1, len(DATA), len(DATA) + 5])
def test_download_honours_chunk_size(store, chunk_size):
    data = DATA[:3000] if chunk_size == 1 else DATA
    aid = upload(store, [data])
    chunks = download(store, aid, chunk_size=chunk_size)
    assert all(len(c) == chunk_size for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= chunk_size
    assert b"".join(chunks) == data


def test_download_of_an_empty_artifact_yields_no_chunks(store):
    aid = upload(store, [])
    assert download(store, aid) == []


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 10), (10, None), (None, 5), (0, len(DATA)), (len(DATA) - 1, len(DATA)), (1234, 5678), (None, None)],
)
def test_range_download_is_start_inclusive_end_exclusive(store, start, end):
    aid = upload(store, [DATA])
    got = b"".join(download(store, aid, start=start, end=end, chunk_size=1000))
    assert got == DATA[start:end]


@pytest.mark.parametrize(("start", "end"), [(0, 0), (500, 500), (len(DATA), len(DATA)), (len(DATA), None)])
def test_empty_range_yields_no_chunks(store, start, end):
    aid = upload(store, [DATA])
    assert download(store, aid, start=start, end=end) == []


@pytest.mark.parametrize(
    ("start", "end"),
    [(10, 5), (0, len(DATA) + 1), (len(DATA) + 1, None), (-1, 10), (0, -1), (1.0, 5), ("0", 5), (True, 5)],
)
def test_invalid_range_is_rejected(store, start, end):
    aid = upload(store, [DATA])
    with pytest.raises(InvalidArgumentError):
        store.stream_download(StreamDownloadRequest(artifact_id=aid, start=start, end=end))


@pytest.mark.parametrize("chunk_size", [0, -5, 64 * 1024 * 1024 + 1, "64"])
def test_download_rejects_a_bad_chunk_size(store, chunk_size):
    aid = upload(store, [DATA])
    with pytest.raises(InvalidArgumentError):
        store.stream_download(StreamDownloadRequest(artifact_id=aid, chunk_size=chunk_size))


def test_download_of_another_users_artifact_is_denied_before_any_byte(store):
    aid = upload(store, [DATA], user_id="alice", scope="user")
    calls = []
    with pytest.raises(AccessDeniedError):
        store.stream_download(
            StreamDownloadRequest(artifact_id=aid, user_id="bob", progress_callback=lambda s, t: calls.append(s))
        )
    assert calls == []


def test_download_by_the_owner_is_allowed(store):
    aid = upload(store, [DATA], user_id="alice", scope="user")
    assert b"".join(download(store, aid, user_id="alice")) == DATA


def test_download_of_another_sessions_artifact_is_denied(store):
    aid = upload(store, [DATA], user_id=None, session_id="sess-one")
    with pytest.raises(AccessDeniedError):
        store.stream_download(StreamDownloadRequest(artifact_id=aid, session_id="sess-two"))


def test_download_of_an_expired_artifact_raises_expired(store, clock):
    aid = upload(store, [DATA], ttl=60)
    clock.advance(61)
    with pytest.raises(ArtifactExpiredError):
        store.stream_download(StreamDownloadRequest(artifact_id=aid))


def test_download_of_an_unknown_artifact_raises_not_found(store):
    with pytest.raises(ArtifactNotFoundError):
        store.stream_download(StreamDownloadRequest(artifact_id="0" * 32))


def test_streamed_upload_expires_after_its_ttl(store, clock):
    aid = upload(store, [DATA])  # session scope: 900 s by default
    clock.advance(899)
    assert b"".join(download(store, aid)) == DATA
    clock.advance(2)
    with pytest.raises(ArtifactExpiredError):
        store.stream_download(StreamDownloadRequest(artifact_id=aid))


def test_upload_from_a_file_object_reads_chunk_size_at_a_time(store):
    calls = []
    upload(store, io.BytesIO(DATA), chunk_size=1000, progress_callback=lambda s, t: calls.append(s))
    assert calls == [min((i + 1) * 1000, len(DATA)) for i in range(11)]


def test_download_of_truncated_bytes_raises_corrupted(store):
    from chuk_artifacts import ArtifactCorruptedError

    aid = upload(store, [DATA])
    store.blobs.put(store.metadata(aid).key, DATA[:5000])
    with pytest.raises(ArtifactCorruptedError):
        b"".join(store.stream_download(StreamDownloadRequest(artifact_id=aid, chunk_size=1000)))


def test_download_with_verify_reads_detects_changed_bytes(make_store, backend):
    from chuk_artifacts import ArtifactCorruptedError

    store = make_store(backend, verify_reads=True)
    aid = upload(store, [DATA])
    store.blobs.put(store.metadata(aid).key, bytes(len(DATA)))  # same size, other content
    with pytest.raises(ArtifactCorruptedError):
        b"".join(store.stream_download(StreamDownloadRequest(artifact_id=aid)))


def test_download_with_verify_reads_passes_intact_bytes(make_store, backend):
    store = make_store(backend, verify_reads=True)
    aid = upload(store, [DATA])
    assert b"".join(download(store, aid, chunk_size=999)) == DATA


def test_strict_store_refuses_an_anonymous_stream_upload_before_reading(make_store, backend):
    from chuk_artifacts import AccessDeniedError as Denied

    store = make_store(backend, strict=True)
    consumed = []

    def gen():
        consumed.append(1)
        yield b"x"

    with pytest.raises(Denied):
        store.stream_upload(StreamUploadRequest(data_stream=gen(), mime="text/plain"))
    assert consumed == []


def test_user_cannot_stream_upload_to_the_sandbox_scope(store):
    with pytest.raises(AccessDeniedError):
        upload(store, [b"x"], user_id="alice", scope="sandbox")
    assert list(store.search()) == []


def test_strict_store_refuses_an_anonymous_stream_download(make_store, backend):
    store = make_store(backend, strict=True)
    aid = upload(store, [DATA], user_id="alice")
    with pytest.raises(AccessDeniedError):
        store.stream_download(StreamDownloadRequest(artifact_id=aid))
    assert b"".join(download(store, aid, user_id="alice")) == DATA


# -- async facade -------------------------------------------------------------------------------


def test_async_upload_from_an_async_generator(astore, store):
    async def source():
        for chunk in chunked(DATA, 1000):
            await asyncio.sleep(0)
            yield chunk

    async def main():
        return await astore.stream_upload(
            StreamUploadRequest(data_stream=source(), mime="application/octet-stream", user_id="alice")
        )

    aid = asyncio.run(main())
    meta = store.metadata(aid)
    assert (meta.bytes, meta.sha256) == (len(DATA), hashlib.sha256(DATA).hexdigest())


def test_async_upload_from_a_sync_iterable(astore, store):
    async def main():
        return await astore.stream_upload(
            StreamUploadRequest(data_stream=chunked(DATA, 3000), mime="application/octet-stream")
        )

    assert store.retrieve(asyncio.run(main())) == DATA


def test_async_download_iterates_the_chunks(astore, store):
    aid = upload(store, [DATA])

    async def main():
        chunks = []
        async for chunk in astore.stream_download(StreamDownloadRequest(artifact_id=aid, chunk_size=1000)):
            chunks.append(chunk)
        return chunks

    chunks = asyncio.run(main())
    assert b"".join(chunks) == DATA
    assert all(len(c) == 1000 for c in chunks[:-1])


def test_async_download_denies_another_user(astore, store):
    aid = upload(store, [DATA], user_id="alice", scope="user")

    async def main():
        got = []
        async for chunk in astore.stream_download(StreamDownloadRequest(artifact_id=aid, user_id="bob")):
            got.append(chunk)
        return got

    with pytest.raises(AccessDeniedError):
        asyncio.run(main())


def test_async_upload_source_that_raises_leaves_nothing(astore, store):
    async def source():
        yield b"a" * 5000
        raise ValueError("source failed")

    async def main():
        await astore.stream_upload(StreamUploadRequest(data_stream=source(), mime="text/plain"))

    before = blob_keys(store)
    with pytest.raises(ValueError, match="source failed"):
        asyncio.run(main())
    assert blob_keys(store) == before
    assert list(store.search()) == []


def test_async_content_length_mismatch_leaves_nothing(astore, store):
    async def source():
        yield b"x" * 100

    async def main():
        await astore.stream_upload(StreamUploadRequest(data_stream=source(), mime="text/plain", content_length=101))

    before = blob_keys(store)
    with pytest.raises(InvalidArgumentError):
        asyncio.run(main())
    assert blob_keys(store) == before
    assert list(store.search()) == []


def test_abandoned_async_upload_leaves_no_row_and_no_blob(astore, store):
    before = blob_keys(store)

    async def main():
        started = asyncio.Event()
        never = asyncio.Event()

        async def source():
            yield b"a" * 10000
            started.set()  # the first chunk has been handed to the writer
            await never.wait()
            yield b"never sent"

        task = asyncio.create_task(astore.stream_upload(StreamUploadRequest(data_stream=source(), mime="text/plain")))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the worker thread notices the abandonment within its poll interval; wait for it
        for _ in range(100):
            if blob_keys(store) == before:
                break
            await asyncio.sleep(0.1)
        return blob_keys(store), list(store.search())

    keys, found = asyncio.run(main())
    assert keys == before
    assert found == []
    assert blob_keys(store) == before  # and nothing appears once every worker has finished


def test_abandoned_async_download_can_be_closed_early(astore, store):
    aid = upload(store, [DATA])

    async def main():
        chunks = astore.stream_download(StreamDownloadRequest(artifact_id=aid, chunk_size=1000))
        first = await chunks.__anext__()
        await chunks.aclose()
        return first

    assert asyncio.run(main()) == DATA[:1000]
    assert store.retrieve(aid) == DATA


# -- the seed README's streaming examples through AsyncArtifactStore -------------------------------


def async_store(backend, tmp_path):
    kwargs = {"fs_root": str(tmp_path / "seed")} if backend == "filesystem" else {}
    return AsyncArtifactStore(storage_provider=backend, **kwargs)


@pytest.fixture(params=["memory", "filesystem"])
def seed_backend(request):
    return request.param


@pytest.fixture
def large_video(tmp_path):
    path = tmp_path / "large_video.mp4"
    path.write_bytes(os.urandom(300 * 1024 + 123))
    return path


def test_seed_streaming_upload_with_progress(seed_backend, tmp_path, large_video):
    percents = []

    async def main():
        async with async_store(seed_backend, tmp_path) as store:

            async def file_chunks():
                with open(large_video, "rb") as f:  # noqa: ASYNC230 (as in the seed README)
                    while chunk := f.read(65536):  # 64KB chunks
                        yield chunk

            def progress_callback(bytes_sent, total_bytes):
                if total_bytes:
                    percents.append((bytes_sent / total_bytes) * 100)

            request = StreamUploadRequest(
                data_stream=file_chunks(),
                mime="video/mp4",
                summary="Product demo video",
                filename="demo.mp4",
                user_id="alice",
                content_length=os.path.getsize(large_video),
                progress_callback=progress_callback,
            )
            artifact_id = await store.stream_upload(request)
            return await store.metadata(artifact_id), await store.retrieve(artifact_id, user_id="alice")

    meta, content = asyncio.run(main())
    assert content == large_video.read_bytes()
    assert (meta.filename, meta.mime, meta.summary) == ("demo.mp4", "video/mp4", "Product demo video")
    assert len(percents) == 5  # 300 KiB + 123 bytes in 64 KiB chunks
    assert percents == sorted(percents)
    assert percents[-1] == 100.0


def test_seed_streaming_download_to_a_file(seed_backend, tmp_path, large_video):
    received = []
    target = tmp_path / "downloaded.mp4"

    async def main():
        async with async_store(seed_backend, tmp_path) as store:
            artifact_id = await store.store(large_video.read_bytes(), mime="video/mp4", summary="v", user_id="alice")

            def progress_callback(bytes_received, total_bytes):
                received.append((bytes_received, total_bytes))

            request = StreamDownloadRequest(
                artifact_id=artifact_id, user_id="alice", chunk_size=65536, progress_callback=progress_callback
            )
            with open(target, "wb") as f:  # noqa: ASYNC230 (as in the seed README)
                async for chunk in store.stream_download(request):
                    f.write(chunk)

    asyncio.run(main())
    size = large_video.stat().st_size
    assert target.read_bytes() == large_video.read_bytes()
    assert received[-1] == (size, size)


def test_seed_hash_on_the_fly(seed_backend, tmp_path, large_video):
    async def main():
        async with async_store(seed_backend, tmp_path) as store:
            artifact_id = await store.store(large_video.read_bytes(), mime="video/mp4", summary="v")
            sha256 = hashlib.sha256()
            bytes_processed = 0
            request = StreamDownloadRequest(artifact_id=artifact_id)
            async for chunk in store.stream_download(request):
                sha256.update(chunk)
                bytes_processed += len(chunk)
            return sha256.hexdigest(), bytes_processed, (await store.metadata(artifact_id)).sha256

    digest, processed, recorded = asyncio.run(main())
    assert digest == hashlib.sha256(large_video.read_bytes()).hexdigest() == recorded
    assert processed == large_video.stat().st_size


def test_seed_user_scoped_streaming_with_access_control(seed_backend, tmp_path):
    payload = [os.urandom(4096) for _ in range(8)]

    async def main():
        async with async_store(seed_backend, tmp_path) as store:

            async def data_generator():
                for chunk in payload:
                    yield chunk

            request = StreamUploadRequest(
                data_stream=data_generator(),
                mime="application/pdf",
                summary="User document",
                user_id="alice",
                scope="user",
                ttl=None,
            )
            artifact_id = await store.stream_upload(request)

            processed = []
            request = StreamDownloadRequest(artifact_id=artifact_id, user_id="alice")
            async for chunk in store.stream_download(request):
                processed.append(chunk)

            denied = None
            try:
                async for _chunk in store.stream_download(
                    StreamDownloadRequest(artifact_id=artifact_id, user_id="bob")
                ):
                    processed.append(b"LEAK")
            except AccessDeniedError as exc:
                denied = exc
            return b"".join(processed), denied, await store.metadata(artifact_id)

    content, denied, meta = asyncio.run(main())
    assert content == b"".join(payload)
    assert isinstance(denied, AccessDeniedError)
    assert (meta.scope, meta.ttl, meta.owner_id) == ("user", None, "alice")


def test_seed_concurrent_streaming_uploads(seed_backend, tmp_path):
    files = []
    for i in range(5):
        path = tmp_path / f"file{i + 1}.bin"
        path.write_bytes(os.urandom(70000 + i * 1000))
        files.append(path)

    async def main():
        async with async_store(seed_backend, tmp_path) as store:

            async def upload_file(file_path):
                async def file_chunks():
                    with open(file_path, "rb") as f:  # noqa: ASYNC230 (as in the seed README)
                        while chunk := f.read(65536):
                            yield chunk

                request = StreamUploadRequest(
                    data_stream=file_chunks(),
                    mime="application/octet-stream",
                    summary=f"Upload: {file_path}",
                    user_id="alice",
                )
                return await store.stream_upload(request)

            artifact_ids = await asyncio.gather(*[upload_file(f) for f in files])
            contents = [await store.retrieve(a, user_id="alice") for a in artifact_ids]
            return artifact_ids, contents

    artifact_ids, contents = asyncio.run(main())
    assert len(set(artifact_ids)) == 5
    assert contents == [f.read_bytes() for f in files]
