"""The error hierarchy, and invalid arguments refused before anything is stored."""

from __future__ import annotations

import pytest

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactCorruptedError,
    ArtifactExpiredError,
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreError,
    CatalogVersionError,
    InvalidArgumentError,
    ProviderError,
    SessionError,
)

# -- the hierarchy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ArtifactNotFoundError,
        ArtifactExpiredError,
        AccessDeniedError,
        ProviderError,
        SessionError,
        ArtifactCorruptedError,
        InvalidArgumentError,
        CatalogVersionError,
    ],
)
def test_every_error_is_an_artifact_store_error(error):
    assert issubclass(error, ArtifactStoreError)


def test_invalid_argument_error_is_also_a_value_error():
    assert issubclass(InvalidArgumentError, ValueError)
    with pytest.raises(ValueError):
        raise InvalidArgumentError("bad")


@pytest.mark.parametrize(
    "error, status",
    [
        (ArtifactNotFoundError, 404),
        (ArtifactExpiredError, 410),
        (AccessDeniedError, 403),
        (InvalidArgumentError, 400),
    ],
)
def test_http_status_of_client_errors(error, status):
    assert error.http_status == status
    assert error("x").http_status == status


def test_provider_error_status_is_a_gateway_error():
    assert ProviderError.http_status in (502, 503)


@pytest.mark.parametrize(
    "error", [ArtifactNotFoundError, ArtifactExpiredError, AccessDeniedError, InvalidArgumentError]
)
def test_client_errors_are_not_provider_errors(error):
    assert not issubclass(error, ProviderError)
    assert not issubclass(ProviderError, error)


# -- not found is not found -----------------------------------------------------------------------


NOT_FOUND_CALLS = {
    "retrieve": lambda st: st.retrieve("missing"),
    "read_file": lambda st: st.read_file("missing"),
    "metadata": lambda st: st.metadata("missing"),
    "update_file": lambda st: st.update_file("missing", data=b"x"),
    "update_metadata": lambda st: st.update_metadata("missing", summary="x"),
    "extend_ttl": lambda st: st.extend_ttl("missing", 10),
    "copy_file": lambda st: st.copy_file("missing"),
    "move_file": lambda st: st.move_file("missing", new_filename="x"),
    "update_session_metadata": lambda st: st.update_session_metadata("missing", {"a": 1}),
    "extend_session_ttl": lambda st: st.extend_session_ttl("missing", 1),
}


def test_an_unknown_id_raises_not_found_not_a_provider_error(store):
    for name, call in NOT_FOUND_CALLS.items():
        with pytest.raises(ArtifactNotFoundError) as info:
            call(store)
        assert not isinstance(info.value, ProviderError), name
        assert info.value.http_status == 404, name
    assert list(store.blobs.keys()) == []


def test_queries_about_unknown_ids_answer_without_error(store):
    assert store.exists("missing") is False
    assert store.delete("missing") is False
    assert store.delete_session("missing") is False
    assert store.validate_session("missing") is False
    assert store.get_session_info("missing") is None


def test_missing_bytes_are_reported_as_corruption_not_as_provider_error(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice")
    store.blobs.delete(store.metadata(aid).key)
    with pytest.raises(ArtifactCorruptedError) as info:
        store.retrieve(aid)
    assert not isinstance(info.value, ProviderError)


def test_bytes_of_the_wrong_size_are_reported_as_corruption(store):
    aid = store.store(b"12345", mime="text/plain", user_id="alice")
    store.blobs.put(store.metadata(aid).key, b"123")
    with pytest.raises(ArtifactCorruptedError):
        store.retrieve(aid)


def test_bytes_changed_in_place_are_caught_when_reads_are_verified(make_store, backend):
    st = make_store(backend, verify_reads=True)
    aid = st.store(b"12345", mime="text/plain", user_id="alice")
    assert st.retrieve(aid) == b"12345"
    st.blobs.put(st.metadata(aid).key, b"54321")  # same size, different bytes
    with pytest.raises(ArtifactCorruptedError):
        st.retrieve(aid)


def test_storage_failures_are_raised_as_provider_errors_and_store_nothing(store, monkeypatch):
    def broken(key, data):
        raise ProviderError("backend down")

    monkeypatch.setattr(store.blobs, "put", broken)
    with pytest.raises(ProviderError):
        store.store(b"x", mime="text/plain", user_id="alice")
    monkeypatch.undo()
    assert store.search() == []


def test_a_catalog_failure_after_the_bytes_are_written_leaves_no_bytes_behind(store, monkeypatch):
    def broken(conn, values, **options):
        raise ProviderError("catalog down")

    monkeypatch.setattr(store.catalog, "insert_artifact", broken)
    with pytest.raises(ProviderError):
        store.store(b"x", mime="text/plain", user_id="alice")
    monkeypatch.undo()
    assert list(store.blobs.keys()) == []
    assert store.search() == []


# -- invalid ids ------------------------------------------------------------------------------------

BAD_IDS = ["a/b", "/abs", "..", "a..b", "../x", "a\x00b", "a\nb", "a\tb", "a b", "", "x" * 129, "é", 123, b"abc", ["a"]]


def bad_id_ids(value) -> str:
    return repr(value)[:20]


@pytest.fixture
def mem(make_store) -> ArtifactStore:
    """Argument validation does not depend on the backend; one memory store is enough."""
    return make_store("memory")


@pytest.mark.parametrize("bad", BAD_IDS, ids=bad_id_ids)
def test_invalid_artifact_id_is_refused_everywhere(mem, bad):
    calls = [
        lambda: mem.retrieve(bad),
        lambda: mem.read_file(bad),
        lambda: mem.metadata(bad),
        lambda: mem.exists(bad),
        lambda: mem.delete(bad),
        lambda: mem.update_file(bad, data=b"x"),
        lambda: mem.update_metadata(bad, summary="x"),
        lambda: mem.extend_ttl(bad, 10),
        lambda: mem.copy_file(bad),
        lambda: mem.move_file(bad, new_filename="x"),
        lambda: mem.write_file("x", filename="x.txt", overwrite_artifact_id=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError):
            call()


def test_artifact_id_of_128_characters_is_valid_but_unknown(mem):
    assert mem.exists("x" * 128) is False
    with pytest.raises(ArtifactNotFoundError):
        mem.retrieve("x" * 128)


@pytest.mark.parametrize("bad", BAD_IDS, ids=bad_id_ids)
@pytest.mark.parametrize("arg", ["user_id", "session_id"])
def test_invalid_identity_is_refused_everywhere_and_stores_nothing(mem, arg, bad):
    aid = mem.store(b"x", mime="text/plain", scope="sandbox")
    before = mem.metadata(aid)
    ident = {arg: bad}
    calls = [
        lambda: mem.store(b"x", mime="text/plain", **ident),
        lambda: mem.store_batch([{"data": b"x", "mime": "text/plain"}], **ident),
        lambda: mem.write_file("x", filename="x.txt", **ident),
        lambda: mem.retrieve(aid, **ident),
        lambda: mem.read_file(aid, **ident),
        lambda: mem.metadata(aid, **ident),
        lambda: mem.exists(aid, **ident),
        lambda: mem.delete(aid, **ident),
        lambda: mem.update_file(aid, data=b"y", **ident),
        lambda: mem.update_metadata(aid, summary="y", **ident),
        lambda: mem.extend_ttl(aid, 10, **ident),
        lambda: mem.copy_file(aid, **ident),
        lambda: mem.move_file(aid, new_filename="y", **ident),
        lambda: mem.search(**ident),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError):
            call()
    assert mem.metadata(aid) == before
    assert [m.artifact_id for m in mem.search()] == [aid]
    assert len(list(mem.blobs.keys())) == 1


@pytest.mark.parametrize("bad", BAD_IDS, ids=bad_id_ids)
def test_invalid_session_id_is_refused_by_listings_and_session_methods(mem, bad):
    calls = [
        lambda: mem.list_by_session(bad),
        lambda: mem.get_directory_contents(bad),
        lambda: mem.create_session(session_id=bad) if bad != "" else mem.create_session(session_id="a/b"),
        lambda: mem.validate_session(bad),
        lambda: mem.get_session_info(bad),
        lambda: mem.update_session_metadata(bad, {}),
        lambda: mem.extend_session_ttl(bad, 1),
        lambda: mem.delete_session(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError):
            call()


@pytest.mark.parametrize("bad", BAD_IDS, ids=bad_id_ids)
def test_invalid_user_id_is_refused_by_create_session_and_views(mem, bad):
    with pytest.raises(InvalidArgumentError):
        mem.create_session(user_id=bad)
    with pytest.raises(InvalidArgumentError):
        mem.as_user(bad)
    with pytest.raises(InvalidArgumentError):
        mem.list_by_session("some-session", user_id=bad)


@pytest.mark.parametrize("bad", [b for b in BAD_IDS if isinstance(b, str) and b], ids=bad_id_ids)
def test_invalid_sandbox_id_is_refused_by_the_constructor(make_store, bad):
    with pytest.raises(InvalidArgumentError):
        make_store("memory", sandbox_id=bad)


def test_invalid_sandbox_id_from_the_environment_is_refused(make_store, monkeypatch):
    monkeypatch.setenv("ARTIFACT_SANDBOX_ID", "../escape")
    with pytest.raises(InvalidArgumentError):
        make_store("memory")


def test_invalid_target_session_id_on_copy_is_refused_or_denied(mem):
    aid = mem.store(b"x", mime="text/plain", user_id="alice")
    with pytest.raises((InvalidArgumentError, AccessDeniedError)):
        mem.copy_file(aid, target_session_id="../other")
    assert len(mem.search()) == 1


def test_ids_with_every_allowed_character_are_accepted(store):
    uid = "Al_ice.9@example.com+tag=x~y|z:w-1"
    aid = store.store(b"x", mime="text/plain", user_id=uid, scope="user")
    assert store.metadata(aid).key == f"grid/{store.sandbox_id}/users/{uid}/{aid}"
    assert store.retrieve(aid, user_id=uid) == b"x"


# -- invalid content arguments ------------------------------------------------------------------------

BAD_MIMES = [
    "text/plain\r\nX-Injected: 1",
    "text/plain\n",
    "text",
    "",
    "/plain",
    "text/",
    "text /plain",
    "a" * 300 + "/b",
    None,
    5,
]
BAD_FILENAMES = ["../x", "a/../../x", "/abs", "\\windows", "a\\b", "a\x00b", "a\nb", "./x", "a/./b", "", "x" * 1025, 5]
BAD_METAS = [
    {"x": object()},
    {"x": {1, 2}},
    {"x": float("nan")},
    {"x": float("inf")},
    {1: "int key"},
    {"": "empty key"},
    "not a dict",
    ["a"],
    {"big": "x" * 70000},
]


def assert_nothing_stored(st: ArtifactStore) -> None:
    assert list(st.blobs.keys()) == []
    assert st.search() == []
    assert st.get_stats()["artifacts"]["count"] == 0


@pytest.mark.parametrize("mime", BAD_MIMES, ids=repr)
def test_bad_mime_is_refused_and_nothing_stored(mem, mime):
    with pytest.raises(InvalidArgumentError):
        mem.store(b"x", mime=mime, user_id="alice")
    if mime:  # write_file's mime is optional (None means text/plain)
        with pytest.raises(InvalidArgumentError):
            mem.write_file("x", filename="a.txt", mime=mime, user_id="alice")
    assert_nothing_stored(mem)


@pytest.mark.parametrize("filename", BAD_FILENAMES, ids=repr)
def test_bad_filename_is_refused_and_nothing_stored(mem, filename):
    with pytest.raises(InvalidArgumentError):
        mem.store(b"x", mime="text/plain", filename=filename, user_id="alice")
    with pytest.raises(InvalidArgumentError):
        mem.write_file("x", filename=filename, user_id="alice")
    assert_nothing_stored(mem)


@pytest.mark.parametrize("meta", BAD_METAS, ids=lambda m: repr(m)[:24])
def test_bad_meta_is_refused_and_nothing_stored(mem, meta):
    with pytest.raises(InvalidArgumentError):
        mem.store(b"x", mime="text/plain", meta=meta, user_id="alice")
    assert_nothing_stored(mem)


def test_meta_just_under_the_size_limit_is_accepted(mem):
    meta = {"big": "x" * 60000}
    aid = mem.store(b"x", mime="text/plain", meta=meta, user_id="alice")
    assert mem.metadata(aid).meta == meta


def test_merging_meta_past_the_size_limit_is_refused_and_changes_nothing(mem):
    aid = mem.store(b"x", mime="text/plain", meta={"a": "x" * 40000}, user_id="alice")
    with pytest.raises(InvalidArgumentError):
        mem.update_metadata(aid, meta={"b": "y" * 40000})
    assert mem.metadata(aid).meta == {"a": "x" * 40000}


BAD_CHANGES = {
    "update_file-mime": lambda st, aid: st.update_file(aid, data=b"new", mime="text/plain\r\nX: y"),
    "update_file-filename": lambda st, aid: st.update_file(aid, data=b"new", filename="../x"),
    "update_file-meta": lambda st, aid: st.update_file(aid, data=b"new", meta={"x": object()}),
    "update_metadata-filename": lambda st, aid: st.update_metadata(aid, filename="/abs"),
    "update_metadata-meta": lambda st, aid: st.update_metadata(aid, meta={"x": float("nan")}),
    "update_metadata-summary": lambda st, aid: st.update_metadata(aid, summary=5),
    "move-filename": lambda st, aid: st.move_file(aid, new_filename="a\x00b"),
    "move-meta": lambda st, aid: st.move_file(aid, new_meta={"x": object()}),
    "copy-filename": lambda st, aid: st.copy_file(aid, new_filename="../x"),
    "copy-meta": lambda st, aid: st.copy_file(aid, new_meta={"x": object()}),
}


def test_bad_arguments_to_a_change_are_refused_and_change_nothing(store):
    aid = store.store(b"old", mime="text/plain", filename="a.txt", meta={"k": 1}, user_id="alice")
    before = store.metadata(aid)
    for name, change in BAD_CHANGES.items():
        with pytest.raises(InvalidArgumentError):
            change(store, aid)
        assert store.metadata(aid) == before, name
        assert store.retrieve(aid) == b"old", name
        assert [m.artifact_id for m in store.search()] == [aid], name
        assert len(list(store.blobs.keys())) == 1, name


@pytest.mark.parametrize("scope", ["global", "", None, "Session", 1])
def test_unknown_scope_is_refused(mem, scope):
    with pytest.raises(InvalidArgumentError):
        mem.store(b"x", mime="text/plain", user_id="alice", scope=scope)
    assert_nothing_stored(mem)


@pytest.mark.parametrize("summary", [5, None, b"bytes", "x" * 70000], ids=lambda s: repr(s)[:12])
def test_bad_summary_is_refused(mem, summary):
    with pytest.raises(InvalidArgumentError):
        mem.store(b"x", mime="text/plain", summary=summary, user_id="alice")
    assert_nothing_stored(mem)


@pytest.mark.parametrize("data", ["text", 5, None, [1, 2]], ids=repr)
def test_non_bytes_data_is_refused(mem, data):
    with pytest.raises(InvalidArgumentError):
        mem.store(data, mime="text/plain", user_id="alice")
    assert_nothing_stored(mem)


def test_unknown_constructor_option_is_refused():
    with pytest.raises(InvalidArgumentError):
        ArtifactStore(no_such_option=1)


def test_unknown_session_provider_is_refused():
    with pytest.raises(InvalidArgumentError):
        ArtifactStore(session_provider="nope")
