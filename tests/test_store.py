"""The core store: storing, reading, changing, copying, moving, batches, stats and lifecycle."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from sqlalchemy import text

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactMetadata,
    ArtifactNotFoundError,
    ArtifactStoreError,
    GridKey,
    InvalidArgumentError,
)

#: The field names of the published package's metadata, plus expires_at.
SEED_FIELDS = {
    "artifact_id",
    "session_id",
    "sandbox_id",
    "key",
    "mime",
    "summary",
    "meta",
    "filename",
    "bytes",
    "sha256",
    "stored_at",
    "ttl",
    "scope",
    "owner_id",
    "storage_provider",
    "session_provider",
    "updated_at",
    "expires_at",
}


@pytest.fixture
def mem(make_store):
    """Argument validation does not depend on the backend: one memory store is enough."""
    return make_store("memory")


def blob_keys(store) -> list[str]:
    return sorted(store.blobs.keys())


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- store / retrieve / read_file / write_file ------------------------------------------------


def test_store_then_retrieve_returns_the_same_bytes(store):
    data = bytes(range(256)) * 10
    aid = store.store(data, mime="application/octet-stream", user_id="alice")
    assert store.retrieve(aid) == data


def test_store_returns_a_new_id_for_each_call(store):
    ids = {store.store(b"same", mime="text/plain", user_id="alice") for _ in range(5)}
    assert len(ids) == 5


def test_store_accepts_empty_bytes(store):
    aid = store.store(b"", mime="text/plain", user_id="alice")
    assert store.retrieve(aid) == b""
    assert store.metadata(aid).bytes == 0


def test_store_accepts_bytearray_and_memoryview(store):
    a = store.store(bytearray(b"abc"), mime="text/plain", user_id="alice")
    b = store.store(memoryview(b"def"), mime="text/plain", user_id="alice")
    assert store.retrieve(a) == b"abc"
    assert store.retrieve(b) == b"def"


def test_store_refuses_text_data(mem):
    with pytest.raises(InvalidArgumentError):
        mem.store("text", mime="text/plain", user_id="alice")
    assert blob_keys(mem) == []


def test_read_file_returns_bytes_by_default(store):
    aid = store.store("héllo".encode(), mime="text/plain", user_id="alice")
    assert store.read_file(aid) == "héllo".encode()


def test_read_file_as_text_decodes(store):
    aid = store.store("héllo".encode(), mime="text/plain", user_id="alice")
    assert store.read_file(aid, as_text=True) == "héllo"


def test_read_file_as_text_with_another_encoding(store):
    aid = store.store("héllo".encode("latin-1"), mime="text/plain", user_id="alice")
    assert store.read_file(aid, as_text=True, encoding="latin-1") == "héllo"


def test_read_file_as_text_of_non_text_raises_invalid_argument(store):
    aid = store.store(b"\xff\xfe\xfa", mime="application/octet-stream", user_id="alice")
    with pytest.raises(InvalidArgumentError):
        store.read_file(aid, as_text=True)


def test_write_file_stores_text_under_its_filename(store):
    aid = store.write_file("hello", filename="docs/a.txt", user_id="alice")
    meta = store.metadata(aid)
    assert store.read_file(aid, as_text=True) == "hello"
    assert meta.filename == "docs/a.txt"
    assert meta.mime == "text/plain"


def test_write_file_encodes_with_the_given_encoding(store):
    aid = store.write_file("héllo", filename="a.txt", encoding="utf-16", user_id="alice")
    assert store.retrieve(aid) == "héllo".encode("utf-16")


def test_write_file_with_overwrite_replaces_content_and_keeps_the_id(store):
    aid = store.write_file("v1", filename="a.txt", user_id="alice")
    same = store.write_file("version two", filename="b.txt", user_id="alice", overwrite_artifact_id=aid)
    meta = store.metadata(aid)
    assert same == aid
    assert store.read_file(aid, as_text=True) == "version two"
    assert meta.bytes == len(b"version two")
    assert meta.sha256 == hashlib.sha256(b"version two").hexdigest()
    assert meta.filename == "b.txt"
    assert len(store.search(user_id="alice")) == 1


def test_write_file_overwrite_keeps_the_mime_unless_one_is_given(store):
    aid = store.write_file('{"a": 1}', filename="a.json", mime="application/json", user_id="alice")
    store.write_file('{"a": 2}', filename="a.json", user_id="alice", overwrite_artifact_id=aid)
    assert store.metadata(aid).mime == "application/json"
    store.write_file("plain", filename="a.txt", mime="text/plain", user_id="alice", overwrite_artifact_id=aid)
    assert store.metadata(aid).mime == "text/plain"


def test_write_file_overwrite_of_unknown_artifact_raises_not_found(store):
    with pytest.raises(ArtifactNotFoundError):
        store.write_file("x", filename="a.txt", overwrite_artifact_id="nope")
    assert blob_keys(store) == []


# -- metadata -----------------------------------------------------------------------------


def test_metadata_has_every_seed_field_and_expires_at(store):
    aid = store.store(b"abc", mime="text/plain", user_id="alice")
    meta = store.metadata(aid)
    assert isinstance(meta, ArtifactMetadata)
    assert SEED_FIELDS <= set(meta.to_dict())
    assert SEED_FIELDS <= set(meta.model_dump())


def test_metadata_reports_what_was_stored(store):
    data = b"hello world"
    aid = store.store(
        data,
        mime="text/plain",
        summary="greeting",
        meta={"a": 1, "nested": {"b": [1, 2]}},
        filename="hello.txt",
        user_id="alice",
    )
    meta = store.metadata(aid)
    assert meta.artifact_id == aid
    assert meta.mime == "text/plain"
    assert meta.summary == "greeting"
    assert meta.meta == {"a": 1, "nested": {"b": [1, 2]}}
    assert meta.filename == "hello.txt"
    assert meta.bytes == len(data)
    assert meta.sha256 == hashlib.sha256(data).hexdigest()
    assert meta.scope == "session"
    assert meta.owner_id == "alice"
    assert meta.sandbox_id == store.sandbox_id
    assert meta.storage_provider == store.storage_provider
    assert meta.session_provider == store.session_provider


def test_metadata_supports_dict_style_access(mem):
    aid = mem.store(b"abc", mime="text/plain", user_id="alice")
    meta = mem.metadata(aid)
    assert meta["mime"] == "text/plain"
    assert meta.get("nope", 7) == 7
    with pytest.raises(KeyError):
        meta["nope"]


def test_metadata_times_are_iso_utc_and_expiry_is_stored_at_plus_ttl(store):
    aid = store.store(b"abc", mime="text/plain", user_id="alice", ttl=120)
    meta = store.metadata(aid)
    stored, expires = parse_iso(meta.stored_at), parse_iso(meta.expires_at)
    assert meta.stored_at.endswith("Z")
    assert stored.utcoffset().total_seconds() == 0
    assert meta.ttl == 120
    assert abs((expires - stored).total_seconds() - 120) < 1e-3


def test_metadata_meta_is_a_copy_not_the_callers_dict(store):
    mine = {"a": [1]}
    aid = store.store(b"abc", mime="text/plain", meta=mine, user_id="alice")
    mine["a"].append(2)
    mine["b"] = 1
    assert store.metadata(aid).meta == {"a": [1]}


def test_session_scoped_key_follows_the_grid_layout(store):
    sid = store.create_session(user_id="alice")
    aid = store.store(b"x", mime="text/plain", session_id=sid)
    meta = store.metadata(aid)
    assert meta.key == f"grid/{store.sandbox_id}/sessions/{sid}/{aid}"
    assert meta.session_id == sid


def test_user_scoped_key_follows_the_grid_layout(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice", scope="user")
    assert store.metadata(aid).key == f"grid/{store.sandbox_id}/users/alice/{aid}"


def test_sandbox_scoped_key_follows_the_grid_layout(store):
    aid = store.store(b"x", mime="text/plain", scope="sandbox")
    meta = store.metadata(aid)
    assert meta.key == f"grid/{store.sandbox_id}/shared/{aid}"
    assert meta.owner_id is None


def test_bytes_live_at_the_grid_key(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice", scope="user")
    assert blob_keys(store) == [store.metadata(aid).key]


def test_unicode_filenames_and_summaries_round_trip(store):
    aid = store.store(
        b"x",
        mime="application/pdf",
        filename="docs/résumé 2024 (v2).pdf",
        summary="Lebenslauf — 履歴書",
        user_id="alice",
    )
    meta = store.metadata(aid)
    assert (meta.filename, meta.summary) == ("docs/résumé 2024 (v2).pdf", "Lebenslauf — 履歴書")
    assert [m.artifact_id for m in store.search(filename_prefix="docs/résumé")] == [aid]


def test_filename_is_never_part_of_the_key(store):
    aid = store.store(b"x", mime="text/plain", filename="a/b/c.txt", user_id="alice")
    key = store.metadata(aid).key
    assert "c.txt" not in key
    assert key.endswith(f"/{aid}")


# -- exists / delete ----------------------------------------------------------------------


def test_exists_is_true_for_a_stored_artifact(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice")
    assert store.exists(aid) is True


def test_exists_is_false_for_an_unknown_artifact(store):
    assert store.exists("unknown") is False


def test_delete_returns_true_and_removes_the_artifact(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice")
    assert store.delete(aid) is True
    assert store.exists(aid) is False
    with pytest.raises(ArtifactNotFoundError):
        store.retrieve(aid)
    with pytest.raises(ArtifactNotFoundError):
        store.metadata(aid)


def test_delete_removes_the_bytes_from_storage(store):
    keep = store.store(b"keep", mime="text/plain", user_id="alice")
    gone = store.store(b"gone", mime="text/plain", user_id="alice")
    gone_key = store.metadata(gone).key
    store.delete(gone)
    assert gone_key not in blob_keys(store)
    assert blob_keys(store) == [store.metadata(keep).key]


def test_delete_leaves_no_row_behind_and_releases_the_usage(store):
    keep = store.store(b"keep", mime="text/plain", meta={"k": 1}, user_id="alice")
    before = store.usage(user_id="alice")
    gone = store.store(b"gone!", mime="text/plain", meta={"a": 1, "b": "two"}, user_id="alice")
    store.share(gone, user_id="alice")
    assert store.delete(gone, user_id="alice") is True
    with store.catalog.read() as conn:
        meta_rows = conn.execute(text("SELECT name FROM artifact_meta")).scalars().all()
        shares = conn.execute(text("SELECT artifact_id FROM shares")).scalars().all()
    assert meta_rows == ["k"] and shares == []  # the meta index and the links went with the row
    assert store.usage(user_id="alice") == before
    assert [m.artifact_id for m in store.search(user_id="alice", meta_filter={"a": 1})] == []
    assert store.exists(keep, user_id="alice")


def test_delete_of_an_unknown_artifact_returns_false(store):
    assert store.delete("unknown") is False


def test_delete_twice_returns_false_the_second_time(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice")
    assert store.delete(aid) is True
    assert store.delete(aid) is False


# -- update_file ----------------------------------------------------------------------------


def test_update_file_replaces_content_size_and_sha256(store):
    aid = store.store(b"old", mime="text/plain", user_id="alice")
    assert store.update_file(aid, data=b"brand new content") is True
    meta = store.metadata(aid)
    assert store.retrieve(aid) == b"brand new content"
    assert meta.bytes == len(b"brand new content")
    assert meta.sha256 == hashlib.sha256(b"brand new content").hexdigest()


def test_update_file_keeps_the_key_and_leaves_no_extra_blob(store):
    aid = store.store(b"old", mime="text/plain", user_id="alice")
    key = store.metadata(aid).key
    store.update_file(aid, data=b"new")
    assert store.metadata(aid).key == key
    assert blob_keys(store) == [key]


def test_update_file_changes_mime_and_summary(store):
    aid = store.store(b"x", mime="text/plain", summary="old", user_id="alice")
    store.update_file(aid, mime="application/json", summary="new")
    meta = store.metadata(aid)
    assert (meta.mime, meta.summary) == ("application/json", "new")
    assert store.retrieve(aid) == b"x"


def test_update_file_merges_meta(store):
    aid = store.store(b"x", mime="text/plain", meta={"a": 1, "b": 2}, user_id="alice")
    store.update_file(aid, meta={"b": 3, "c": 4})
    assert store.metadata(aid).meta == {"a": 1, "b": 3, "c": 4}


def test_update_file_bumps_version_and_updated_at(store, clock):
    aid = store.store(b"x", mime="text/plain", user_id="alice")
    before = store.metadata(aid)
    clock.advance(5)
    store.update_file(aid, data=b"y")
    after = store.metadata(aid)
    assert after.version == before.version + 1
    assert parse_iso(after.updated_at) > parse_iso(before.updated_at)
    assert after.stored_at == before.stored_at


def test_update_file_of_unknown_artifact_raises_not_found(store):
    with pytest.raises(ArtifactNotFoundError):
        store.update_file("unknown", data=b"x")
    assert blob_keys(store) == []


def test_update_file_with_bad_mime_changes_nothing(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice")
    with pytest.raises(InvalidArgumentError):
        store.update_file(aid, data=b"new", mime="not a mime")
    assert store.retrieve(aid) == b"x"
    assert store.metadata(aid).mime == "text/plain"


# -- update_metadata ------------------------------------------------------------------------


def test_update_metadata_merges_by_default(store):
    aid = store.store(b"x", mime="text/plain", meta={"a": 1, "b": 2}, user_id="alice")
    result = store.update_metadata(aid, meta={"b": 20, "c": 30})
    assert result.meta == {"a": 1, "b": 20, "c": 30}
    assert store.metadata(aid).meta == {"a": 1, "b": 20, "c": 30}


def test_update_metadata_with_merge_false_replaces(store):
    aid = store.store(b"x", mime="text/plain", meta={"a": 1, "b": 2}, user_id="alice")
    store.update_metadata(aid, meta={"c": 3}, merge=False)
    assert store.metadata(aid).meta == {"c": 3}


@pytest.mark.parametrize("how", ["update_metadata", "update_file", "move_file", "copy_file"])
def test_a_merge_past_the_meta_limit_is_refused_and_changes_nothing(make_store, how):
    store = make_store("memory", max_meta_bytes=200)
    aid = store.store(b"x", mime="text/plain", meta={"a": "x" * 100}, user_id="alice")
    extra = {"b": "y" * 90}  # valid alone, too large merged with what is there
    call = {
        "update_metadata": lambda: store.update_metadata(aid, meta=extra),
        "update_file": lambda: store.update_file(aid, meta=extra),
        "move_file": lambda: store.move_file(aid, new_meta=extra),
        "copy_file": lambda: store.copy_file(aid, new_meta=extra),
    }[how]
    with pytest.raises(InvalidArgumentError, match="larger than 200 bytes"):
        call()
    assert store.metadata(aid).meta == {"a": "x" * 100}
    assert len(store.list_by_session(store.metadata(aid).session_id)) == 1
    store.update_metadata(aid, meta={"b": "y" * 10})  # what fits is merged
    assert store.metadata(aid).meta == {"a": "x" * 100, "b": "y" * 10}


def test_update_metadata_accepts_new_meta_alias(store):
    aid = store.store(b"x", mime="text/plain", meta={"a": 1}, user_id="alice")
    store.update_metadata(aid, new_meta={"b": 2})
    assert store.metadata(aid).meta == {"a": 1, "b": 2}


def test_update_metadata_refuses_meta_and_new_meta_together(store):
    aid = store.store(b"x", mime="text/plain", meta={"a": 1}, user_id="alice")
    with pytest.raises(InvalidArgumentError):
        store.update_metadata(aid, meta={"b": 2}, new_meta={"c": 3})
    assert store.metadata(aid).meta == {"a": 1}


def test_update_metadata_changes_summary_and_filename_but_not_bytes(store):
    aid = store.store(b"x", mime="text/plain", summary="s", filename="a.txt", user_id="alice")
    store.update_metadata(aid, summary="t", filename="b.txt")
    meta = store.metadata(aid)
    assert (meta.summary, meta.filename) == ("t", "b.txt")
    assert store.retrieve(aid) == b"x"


def test_concurrent_update_metadata_merges_lose_no_key(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice")
    start = threading.Barrier(6)

    def work(i: int) -> None:
        start.wait()
        for j in range(4):
            store.update_metadata(aid, meta={f"t{i}-{j}": j})

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(work, i) for i in range(6)]:
            future.result()  # re-raises a worker's error
    meta = store.metadata(aid).meta
    assert meta == {f"t{i}-{j}": j for i in range(6) for j in range(4)}


# -- extend_ttl -----------------------------------------------------------------------------


def test_extend_ttl_pushes_expiry_back(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice", ttl=100)
    before = parse_iso(store.metadata(aid).expires_at)
    result = store.extend_ttl(aid, 50)
    after = parse_iso(store.metadata(aid).expires_at)
    assert abs((after - before).total_seconds() - 50) < 1e-3
    assert result.ttl == 150


def test_extend_ttl_keeps_an_artifact_readable_past_its_old_expiry(store, clock):
    aid = store.store(b"x", mime="text/plain", user_id="alice", ttl=100)
    store.extend_ttl(aid, 1000)
    clock.advance(500)
    assert store.retrieve(aid) == b"x"


def test_extend_ttl_leaves_a_persistent_artifact_persistent(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice", scope="user")
    store.extend_ttl(aid, 60)
    meta = store.metadata(aid)
    assert meta.ttl is None and meta.expires_at is None


@pytest.mark.parametrize("bad", [0, -5, 1.5, "10", True, None])
def test_extend_ttl_refuses_bad_seconds(mem, bad):
    aid = mem.store(b"x", mime="text/plain", user_id="alice", ttl=100)
    before = mem.metadata(aid)
    with pytest.raises(InvalidArgumentError):
        mem.extend_ttl(aid, bad)
    assert mem.metadata(aid).expires_at == before.expires_at


# -- copy_file ------------------------------------------------------------------------------


def test_copy_file_creates_an_identical_artifact_with_a_new_id(store):
    aid = store.store(b"content", mime="text/plain", meta={"a": 1}, filename="a.txt", user_id="alice")
    cid = store.copy_file(aid, new_filename="backup.txt")
    orig, copy = store.metadata(aid), store.metadata(cid)
    assert cid != aid
    assert store.retrieve(cid) == b"content"
    assert copy.filename == "backup.txt"
    assert (copy.mime, copy.meta, copy.sha256, copy.bytes) == (orig.mime, orig.meta, orig.sha256, orig.bytes)
    assert (copy.session_id, copy.scope, copy.owner_id) == (orig.session_id, orig.scope, orig.owner_id)
    assert copy.key == f"grid/{store.sandbox_id}/sessions/{orig.session_id}/{cid}"


def test_copy_file_into_the_same_session_is_allowed(store):
    sid = store.create_session(user_id="alice")
    aid = store.store(b"x", mime="text/plain", session_id=sid)
    cid = store.copy_file(aid, target_session_id=sid, session_id=sid)
    assert store.metadata(cid).session_id == sid


def test_copy_file_to_another_session_is_denied_and_copies_nothing(store):
    alice = store.create_session(user_id="alice")
    bob = store.create_session(user_id="bob")
    aid = store.store(b"x", mime="text/plain", session_id=alice)
    with pytest.raises(AccessDeniedError):
        store.copy_file(aid, target_session_id=bob)
    assert blob_keys(store) == [store.metadata(aid).key]
    assert store.list_by_session(bob) == []


def test_copy_is_independent_of_the_original(store):
    aid = store.store(b"original", mime="text/plain", meta={"a": 1}, user_id="alice")
    cid = store.copy_file(aid)
    store.update_file(aid, data=b"changed", meta={"a": 2})
    store.delete(aid)
    assert store.retrieve(cid) == b"original"
    assert store.metadata(cid).meta == {"a": 1}


def test_copy_with_new_meta_merges_into_the_copy_only(store):
    aid = store.store(b"x", mime="text/plain", meta={"a": 1}, user_id="alice")
    cid = store.copy_file(aid, new_meta={"b": 2})
    assert store.metadata(cid).meta == {"a": 1, "b": 2}
    assert store.metadata(aid).meta == {"a": 1}


# -- move_file ------------------------------------------------------------------------------


def test_move_file_renames_and_returns_the_new_metadata(store):
    aid = store.store(b"x", mime="text/plain", filename="old.txt", user_id="alice")
    result = store.move_file(aid, new_filename="new.txt")
    assert result.filename == "new.txt"
    assert result.artifact_id == aid


def test_move_file_rename_is_persisted(store):
    aid = store.store(b"x", mime="text/plain", filename="old.txt", user_id="alice")
    store.move_file(aid, new_filename="dir/new.txt")
    assert store.metadata(aid).filename == "dir/new.txt"
    assert [m.artifact_id for m in store.get_directory_contents(store.metadata(aid).session_id, "dir/")] == [aid]
    assert store.retrieve(aid) == b"x"


def test_move_file_rename_survives_reopening_the_filesystem_store(make_store):
    first = make_store("filesystem")
    aid = first.store(b"x", mime="text/plain", filename="old.txt", user_id="alice", scope="user")
    first.move_file(aid, new_filename="renamed.txt")
    second = make_store("filesystem")  # same fs_root, a second store
    assert second.metadata(aid).filename == "renamed.txt"
    assert second.retrieve(aid) == b"x"
    first.close()
    third = make_store("filesystem")
    assert third.metadata(aid).filename == "renamed.txt"


def test_move_file_to_another_session_is_denied_and_changes_nothing(store):
    alice = store.create_session(user_id="alice")
    bob = store.create_session(user_id="bob")
    aid = store.store(b"x", mime="text/plain", filename="a.txt", session_id=alice)
    with pytest.raises(AccessDeniedError):
        store.move_file(aid, new_filename="b.txt", new_session_id=bob)
    meta = store.metadata(aid)
    assert (meta.filename, meta.session_id) == ("a.txt", alice)


def test_move_file_merges_new_meta(store):
    aid = store.store(b"x", mime="text/plain", meta={"a": 1}, user_id="alice")
    store.move_file(aid, new_meta={"b": 2})
    assert store.metadata(aid).meta == {"a": 1, "b": 2}


# -- store_batch ----------------------------------------------------------------------------


def test_store_batch_stores_every_item_in_order(store):
    sid = store.create_session(user_id="alice")
    items = [
        {"data": b"one", "mime": "text/plain", "filename": "1.txt", "summary": "first", "meta": {"n": 1}},
        {"data": b"two", "mime": "application/json", "filename": "2.json"},
    ]
    ids = store.store_batch(items, session_id=sid)
    assert len(ids) == 2
    assert [store.retrieve(i) for i in ids] == [b"one", b"two"]
    first = store.metadata(ids[0])
    assert (first.filename, first.summary, first.meta, first.session_id) == ("1.txt", "first", {"n": 1}, sid)
    assert store.metadata(ids[1]).mime == "application/json"


@pytest.mark.parametrize(
    "bad",
    [
        {"data": b"x"},  # no mime
        {"mime": "text/plain"},  # no data
        {"data": "text", "mime": "text/plain"},  # not bytes
        {"data": b"x", "mime": "bad mime"},
        {"data": b"x", "mime": "text/plain", "filename": "../escape"},
        {"data": b"x", "mime": "text/plain", "meta": {"x": object()}},
        {"data": b"x", "mime": "text/plain", "ttl": 0},
        {"data": b"x", "mime": "text/plain", "unknown": 1},
        "not a mapping",
    ],
)
def test_store_batch_with_one_bad_item_stores_nothing(mem, bad):
    sid = mem.create_session(user_id="alice")
    good = {"data": b"good", "mime": "text/plain"}
    with pytest.raises(InvalidArgumentError):
        mem.store_batch([good, good, bad, good], session_id=sid)
    assert blob_keys(mem) == []
    assert mem.list_by_session(sid) == []
    assert mem.get_stats()["artifacts"]["count"] == 0


def test_store_batch_failing_at_the_catalog_leaves_no_bytes_behind(store, monkeypatch):
    from chuk_artifacts import ProviderError

    calls = []
    real_insert = store.catalog.insert_artifact

    def insert_then_fail(conn, values, **options):
        calls.append(values["artifact_id"])
        if len(calls) == 3:
            raise ProviderError("catalog failed mid-batch")
        return real_insert(conn, values, **options)

    sid = store.create_session(user_id="alice")
    monkeypatch.setattr(store.catalog, "insert_artifact", insert_then_fail)
    with pytest.raises(ProviderError):
        store.store_batch([{"data": b"%d" % i, "mime": "text/plain"} for i in range(4)], session_id=sid)
    monkeypatch.undo()
    assert blob_keys(store) == []
    assert store.list_by_session(sid) == []
    assert store.get_stats()["artifacts"]["count"] == 0


def test_store_batch_applies_the_batch_ttl_unless_an_item_overrides_it(store):
    ids = store.store_batch(
        [{"data": b"a", "mime": "text/plain"}, {"data": b"b", "mime": "text/plain", "ttl": 60}],
        ttl=300,
        user_id="alice",
    )
    assert [store.metadata(i).ttl for i in ids] == [300, 60]


# -- get_stats ------------------------------------------------------------------------------


def test_get_stats_counts_live_artifacts_and_bytes_by_scope(store):
    store.store(b"12345", mime="text/plain", user_id="alice")
    store.store(b"123", mime="text/plain", user_id="alice")
    store.store(b"1234567", mime="text/plain", user_id="alice", scope="user")
    store.store(b"12", mime="text/plain", scope="sandbox")
    stats = store.get_stats()["artifacts"]
    assert stats["count"] == 4
    assert stats["bytes"] == 17
    assert stats["by_scope"] == {
        "session": {"count": 2, "bytes": 8},
        "user": {"count": 1, "bytes": 7},
        "sandbox": {"count": 1, "bytes": 2},
    }


def test_get_stats_follows_deletes_and_updates(store):
    a = store.store(b"12345", mime="text/plain", user_id="alice")
    b = store.store(b"123", mime="text/plain", user_id="alice")
    store.delete(a)
    store.update_file(b, data=b"1234567890")
    stats = store.get_stats()["artifacts"]
    assert (stats["count"], stats["bytes"]) == (1, 10)


def test_get_stats_leaves_out_expired_artifacts(store, clock):
    store.store(b"12345", mime="text/plain", user_id="alice", ttl=10)
    store.store(b"123", mime="text/plain", user_id="alice", ttl=1000)
    clock.advance(11)
    stats = store.get_stats()["artifacts"]
    assert (stats["count"], stats["bytes"]) == (1, 3)
    assert stats["expired_pending_cleanup"] == 1


def test_get_stats_counts_live_sessions(store):
    store.create_session(user_id="alice")
    store.create_session(user_id="bob")
    stats = store.get_stats()
    assert stats["sessions"]["active"] == 2
    assert stats["storage_provider"] == store.storage_provider
    assert stats["sandbox_id"] == store.sandbox_id


# -- validate_configuration -------------------------------------------------------------------


def test_validate_configuration_reports_ok_for_a_working_store(store):
    report = store.validate_configuration()
    assert report["status"] == "ok"
    assert report["catalog"]["status"] == "ok"
    assert report["storage"]["status"] == "ok"
    assert report["storage"]["provider"] == store.storage_provider
    assert report["session"]["status"] == "ok"


def test_validate_configuration_leaves_no_probe_object_behind(store):
    store.validate_configuration()
    assert list(store.blobs.keys(prefix="_chuk/")) == []
    assert blob_keys(store) == []


def test_validate_configuration_reports_a_broken_backend(store, monkeypatch):
    from chuk_artifacts import ProviderError

    def broken(key, data):
        raise ProviderError("disk on fire")

    monkeypatch.setattr(store.blobs, "put", broken)
    report = store.validate_configuration()
    assert report["status"] == "error"
    assert report["storage"]["status"] == "error"
    assert "disk on fire" in report["storage"]["error"]


# -- parse_grid_key ---------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["session", "user", "sandbox"])
def test_parse_grid_key_round_trips_the_key_of_each_scope(store, scope):
    aid = store.store(b"x", mime="text/plain", user_id=None if scope == "sandbox" else "alice", scope=scope)
    meta = store.metadata(aid)
    parsed = store.parse_grid_key(meta.key)
    assert isinstance(parsed, GridKey)
    assert (parsed.sandbox_id, parsed.scope, parsed.artifact_id) == (store.sandbox_id, scope, aid)
    assert parsed.session_id == (meta.session_id if scope == "session" else None)
    assert parsed.user_id == ("alice" if scope == "user" else None)
    assert parsed.key == meta.key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "grid",
        "grid/sb/sessions/s1",
        "grid/sb/sessions/s1/a/extra",
        "grid/sb/users/alice",
        "grid/sb/shared",
        "grid/sb/shared/a/b",
        "grid/sb/other/x/a",
        "grod/sb/shared/a",
        "/grid/sb/shared/a",
        "grid/../shared/a",
        "grid/sb/shared/..",
        "grid/sb/sessions/../a",
        "grid/sb/users//a",
        "grid/sb/shared/a b",
        "grid/sb/shared/a\n",
        None,
        123,
    ],
)
def test_parse_grid_key_rejects_anything_else(mem, key):
    with pytest.raises(InvalidArgumentError):
        mem.parse_grid_key(key)


# -- close and context manager ---------------------------------------------------------------


def test_store_works_as_a_context_manager_and_closes(make_store, backend):
    from chuk_artifacts import ArtifactStore

    with make_store(backend) as s:
        assert isinstance(s, ArtifactStore)
        aid = s.store(b"x", mime="text/plain", user_id="alice")
        assert s.retrieve(aid) == b"x"
    with pytest.raises(ArtifactStoreError):
        s.retrieve(aid)


def test_a_closed_store_refuses_to_store(store):
    store.close()
    with pytest.raises(ArtifactStoreError):
        store.store(b"x", mime="text/plain", user_id="alice")


def test_close_is_idempotent(store):
    store.close()
    store.close()


def test_filesystem_artifacts_survive_close_and_reopen(make_store):
    first = make_store("filesystem")
    aid = first.store(b"persist", mime="text/plain", meta={"k": "v"}, user_id="alice", scope="user")
    first.close()
    second = make_store("filesystem")
    assert second.retrieve(aid, user_id="alice") == b"persist"
    assert second.metadata(aid).meta == {"k": "v"}


def test_memory_stores_do_not_share_artifacts(make_store):
    first, second = make_store("memory"), make_store("memory")
    aid = first.store(b"x", mime="text/plain", user_id="alice")
    assert second.exists(aid) is False
    assert list(second.blobs.keys()) == []
