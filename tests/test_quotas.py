"""Quotas: per-user and per-sandbox byte and count limits on every write path, enforced
atomically, visible in get_stats/usage, released by delete and expiry."""

from __future__ import annotations

import io
import threading
from typing import Any, Callable

import pytest

from chuk_artifacts import (
    ArtifactStore,
    MultipartUploadCompleteRequest,
    MultipartUploadInitRequest,
    MultipartUploadPart,
    QuotaExceededError,
    StreamUploadRequest,
)
from chuk_artifacts.errors import ArtifactStoreError, InvalidArgumentError

MakeStore = Callable[..., ArtifactStore]
LOCAL = ["memory", "filesystem", "postgres"]  # the upload paths below go through the gateway's code


def _upload_id(url: str) -> str:
    return url.split("/upload/", 1)[1].split("?", 1)[0].split("/", 1)[0]


def blob_keys(store: ArtifactStore) -> set[str]:
    return set(store.blobs.keys(f"grid/{store.sandbox_id}/"))


def test_quota_error_is_a_413_store_error() -> None:
    assert issubclass(QuotaExceededError, ArtifactStoreError)
    assert QuotaExceededError.http_status == 413


def test_user_byte_quota_refuses_the_store_that_would_pass_it(make_store: MakeStore, backend: str) -> None:
    store = make_store(backend, quota_user_bytes=100)
    store.store(b"a" * 60, mime="text/plain", user_id="alice", scope="user")
    keys = blob_keys(store)
    with pytest.raises(QuotaExceededError, match="alice"):
        store.store(b"b" * 41, mime="text/plain", user_id="alice", scope="user")
    # nothing was written: no row, no bytes, usage unchanged
    assert blob_keys(store) == keys
    assert store.usage("alice")["bytes"] == 60
    assert len(store.search(user_id="alice", scope="user")) == 1
    store.store(b"c" * 40, mime="text/plain", user_id="alice", scope="user")  # exactly at the limit
    assert store.usage("alice") == {"bytes": 100, "count": 2, "max_bytes": 100, "max_count": None}
    # another user has their own allowance
    store.store(b"d" * 100, mime="text/plain", user_id="bob", scope="user")


def test_count_quota_and_sandbox_quota(make_store: MakeStore, backend: str) -> None:
    store = make_store(backend, quota_user_count=2, quota_sandbox_bytes=1000)
    store.store(b"1", mime="text/plain", user_id="alice")
    store.store(b"2", mime="text/plain", user_id="alice")
    with pytest.raises(QuotaExceededError, match="artifacts"):
        store.store(b"3", mime="text/plain", user_id="alice")
    store.store(b"x" * 900, mime="text/plain", user_id="bob")
    with pytest.raises(QuotaExceededError, match="sandbox"):
        store.store(b"x" * 200, mime="text/plain", user_id="carol")
    assert store.get_stats()["usage"]["bytes"] == 902
    assert store.get_stats()["usage"]["max_bytes"] == 1000


def test_delete_and_expiry_release_usage(make_store: MakeStore, backend: str, clock) -> None:
    store = make_store(backend, quota_user_bytes=100)
    keep = store.store(b"k" * 50, mime="text/plain", user_id="alice", scope="user", ttl=None)
    gone = store.store(b"g" * 50, mime="text/plain", user_id="alice", scope="user", ttl=None)
    with pytest.raises(QuotaExceededError):
        store.store(b"n", mime="text/plain", user_id="alice", scope="user")
    store.delete(gone, user_id="alice")
    assert store.usage("alice")["bytes"] == 50
    short = store.store(b"s" * 50, mime="text/plain", user_id="alice", scope="user", ttl=60)
    clock.advance(61)  # expired, not yet swept: its room is given back to the next write
    new = store.store(b"n" * 50, mime="text/plain", user_id="alice", scope="user", ttl=None)
    assert not store.exists(short)
    assert store.retrieve(keep) == b"k" * 50 and store.retrieve(new) == b"n" * 50
    assert store.usage("alice")["bytes"] == 100


def test_update_file_charges_only_the_growth(make_store: MakeStore, backend: str) -> None:
    store = make_store(backend, quota_user_bytes=100, quota_user_count=1)
    aid = store.store(b"a" * 80, mime="text/plain", user_id="alice", scope="user")
    store.update_file(aid, data=b"b" * 100, user_id="alice")  # at the count limit: not a new artifact
    with pytest.raises(QuotaExceededError):
        store.update_file(aid, data=b"c" * 101, user_id="alice")
    assert store.retrieve(aid, user_id="alice") == b"b" * 100  # the refused update changed nothing
    store.update_file(aid, data=b"d" * 10, user_id="alice")
    assert store.usage("alice")["bytes"] == 10
    assert blob_keys(store) == {store.metadata(aid).key}  # no staged bytes left behind


def test_stream_copy_and_batch_are_counted(make_store: MakeStore, backend: str) -> None:
    store = make_store(backend, quota_user_bytes=300, quota_user_count=10)
    streamed = store.stream_upload(
        StreamUploadRequest(data_stream=io.BytesIO(b"s" * 100), mime="text/plain", user_id="alice", scope="user")
    )
    store.copy_file(streamed, user_id="alice")
    assert store.usage("alice") == {"bytes": 200, "count": 2, "max_bytes": 300, "max_count": 10}
    with pytest.raises(QuotaExceededError):  # a stream of unknown length is refused at its end
        store.stream_upload(
            StreamUploadRequest(
                data_stream=iter([b"x" * 60, b"y" * 60]), mime="text/plain", user_id="alice", scope="user"
            )
        )
    with pytest.raises(QuotaExceededError):  # with content_length, before a byte is sent
        store.stream_upload(
            StreamUploadRequest(
                data_stream=iter([b"never read"]),
                mime="text/plain",
                user_id="alice",
                scope="user",
                content_length=101,
            )
        )
    store.copy_file(streamed, user_id="alice")  # exactly at the limit
    with pytest.raises(QuotaExceededError):
        store.copy_file(streamed, user_id="alice")
    with pytest.raises(QuotaExceededError):  # a batch is all or nothing
        store.store_batch([{"data": b"z" * 40, "mime": "text/plain"}] * 3, user_id="alice", scope="user")
    assert store.usage("alice")["bytes"] == 300
    assert len(blob_keys(store)) == 3


@pytest.mark.parametrize("backend", LOCAL)
def test_presigned_upload_registration_is_checked_and_keeps_the_upload(make_store: MakeStore, backend: str) -> None:
    store = make_store(backend, quota_user_bytes=100)
    store.store(b"a" * 30, mime="text/plain", user_id="alice", scope="user")
    url, artifact_id = store.presign_upload(user_id="alice", scope="user", filename="big.bin")
    store.receive_upload(_upload_id(url), iter([b"u" * 60]))  # fits when it arrives…
    store.store(b"b" * 30, mime="text/plain", user_id="alice", scope="user")  # …no longer
    with pytest.raises(QuotaExceededError):
        store.register_uploaded_artifact(artifact_id, mime="text/plain", user_id="alice")
    # nothing lost: once there is room, the same upload registers
    first = list(store.search(user_id="alice", scope="user"))[0]
    store.delete(first.artifact_id, user_id="alice")
    assert store.register_uploaded_artifact(artifact_id, mime="text/plain", user_id="alice") == artifact_id
    assert store.retrieve(artifact_id, user_id="alice") == b"u" * 60
    assert store.usage("alice")["bytes"] == 90


@pytest.mark.parametrize("backend", LOCAL)
def test_an_upload_body_past_the_room_left_is_refused_and_the_upload_stays_open(
    make_store: MakeStore, backend: str
) -> None:
    store = make_store(backend, quota_user_bytes=100)
    store.store(b"a" * 50, mime="text/plain", user_id="alice", scope="user")
    url, artifact_id = store.presign_upload(user_id="alice", scope="user", filename="big.bin")
    with pytest.raises(QuotaExceededError, match="passes the 50 bytes"):
        store.receive_upload(_upload_id(url), iter([b"u" * 60]))
    store.receive_upload(_upload_id(url), iter([b"u" * 50]))  # the upload is still open
    assert store.register_uploaded_artifact(artifact_id, mime="text/plain", user_id="alice") == artifact_id


@pytest.mark.parametrize("backend", LOCAL)
def test_multipart_completion_is_checked(make_store: MakeStore, backend: str) -> None:
    store = make_store(backend, quota_user_bytes=100, multipart_min_part_size=10)
    init = store.initiate_multipart_upload(
        MultipartUploadInitRequest(filename="f", mime_type="text/plain", user_id="alice", scope="user")
    )
    parts = []
    for n in (1, 2):
        url = store.get_part_upload_url(init["upload_id"], n, user_id="alice")
        etag = store.receive_part(_upload_id(url), n, iter([bytes([48 + n]) * 40]))
        parts.append(MultipartUploadPart(n, etag))
    url = store.get_part_upload_url(init["upload_id"], 3, user_id="alice")
    with pytest.raises(QuotaExceededError):  # the parts together pass the room left
        store.receive_part(_upload_id(url), 3, iter([b"3" * 40]))
    store.store(b"x" * 30, mime="text/plain", user_id="alice")
    complete = MultipartUploadCompleteRequest(init["upload_id"], parts, user_id="alice")
    with pytest.raises(QuotaExceededError):
        store.complete_multipart_upload(complete)
    assert store.usage("alice")["bytes"] == 30
    assert not store.exists(init["artifact_id"])


@pytest.mark.parametrize("backend", ["filesystem", "postgres"])
def test_concurrent_writers_cannot_overshoot(make_store: MakeStore, backend: str) -> None:
    """Many threads (each with its own store, so its own connections) race for the last room."""
    limit = 20
    stores = [make_store(backend, quota_user_count=limit) for _ in range(4)]
    stored: list[str] = []
    refused: list[Exception] = []
    lock = threading.Lock()

    def writer(store: ArtifactStore) -> None:
        for _ in range(10):
            try:
                aid = store.store(b"x", mime="text/plain", user_id="alice", scope="user")
            except QuotaExceededError as exc:
                with lock:
                    refused.append(exc)
            else:
                with lock:
                    stored.append(aid)

    threads = [threading.Thread(target=writer, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stored) == limit and len(refused) == 40 - limit
    assert stores[0].usage("alice")["count"] == limit
    assert len(stores[0].search(user_id="alice", scope="user", limit=100)) == limit


@pytest.mark.parametrize("backend", ["filesystem", "postgres"])
@pytest.mark.parametrize("limit", [None, 50])
def test_concurrent_first_writes_of_new_owners_are_all_counted(
    make_store: MakeStore, backend: str, limit: int | None
) -> None:
    """The first writes of an owner race to create its usage row: none may be refused for it
    (a limit far away, or none at all) and every one must be counted."""
    stores = [make_store(backend, quota_user_count=limit) for _ in range(6)]
    start = threading.Barrier(len(stores))
    errors: list[Exception] = []

    def writer(store: ArtifactStore, owner: str) -> None:
        start.wait()
        try:
            store.store(b"x", mime="text/plain", user_id=owner, scope="user")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for round_ in range(5):
        owner = f"new-{round_}"
        threads = [threading.Thread(target=writer, args=(s, owner)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert stores[0].usage(owner)["count"] == len(stores)


def test_quota_settings_are_validated_and_read_from_the_environment(monkeypatch: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        ArtifactStore(quota_user_bytes=-1)
    monkeypatch.setenv("ARTIFACT_QUOTA_SANDBOX_COUNT", "1")
    with ArtifactStore() as store:
        store.store(b"1", mime="text/plain")
        with pytest.raises(QuotaExceededError):
            store.store(b"2", mime="text/plain")
        assert store.usage() == {"bytes": 1, "count": 1, "max_bytes": None, "max_count": 1}
