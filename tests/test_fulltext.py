"""Full-text search (``search(text=...)``): what is indexed, ranking, snippets, filters and access,
pagination, bad input, and the index following every write path, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text as sql

from chuk_artifacts import (
    ArtifactStore,
    InvalidArgumentError,
    MultipartUploadCompleteRequest,
    MultipartUploadInitRequest,
    SearchHit,
    StreamUploadRequest,
)
from chuk_artifacts.errors import AccessDeniedError

#: The catalogs under test: in-memory SQLite, a SQLite file, PostgreSQL.
CATALOGS = ["memory", "filesystem", "postgres"]


@pytest.fixture(params=CATALOGS)
def store(request: pytest.FixtureRequest, make_store: Any) -> ArtifactStore:
    return make_store(request.param)  # type: ignore[no-any-return]


def found(store: ArtifactStore, text: str, **filters: Any) -> list[str]:
    return [hit.artifact_id for hit in store.search(text=text, **filters)]


def index_rows(store: ArtifactStore) -> int:
    """Entries in the full-text index (every artifact has one, and nothing else does)."""
    with store.catalog.read() as conn:
        return int(conn.execute(sql("SELECT count(*) FROM artifact_text")).scalar_one())


def artifact_rows(store: ArtifactStore) -> int:
    with store.catalog.read() as conn:
        return int(conn.execute(sql("SELECT count(*) FROM artifacts")).scalar_one())


# -- what is indexed ----------------------------------------------------------------------------


def test_finds_words_of_the_filename_summary_meta_values_and_text_content(store: ArtifactStore) -> None:
    by_name = store.store(b"-", mime="application/octet-stream", filename="reports/quarterly-2024.xlsx")
    by_summary = store.store(b"-", mime="application/octet-stream", summary="minutes of the board meeting")
    by_meta = store.store(b"-", mime="application/octet-stream", meta={"project": {"code": "falcon"}, "n": [42]})
    by_text = store.store(b"the giraffe ate leaves", mime="text/markdown")
    by_json = store.store(json.dumps({"animal": "pelican"}).encode(), mime="application/json")
    store.store(b"the okapi hides", mime="application/octet-stream")  # binary: its bytes are not read

    assert found(store, "quarterly") == [by_name]
    assert found(store, "2024") == [by_name]
    assert found(store, "board meeting") == [by_summary]
    assert found(store, "falcon") == [by_meta]
    assert found(store, "42") == [by_meta]
    assert found(store, "giraffe") == [by_text]
    assert found(store, "pelican") == [by_json]
    assert found(store, "okapi") == []
    assert found(store, "project") == []  # meta keys are not values


def test_every_word_must_match_in_any_column(store: ArtifactStore) -> None:
    both = store.store(b"red apples", mime="text/plain", filename="fruit.txt")
    store.store(b"red cars", mime="text/plain", filename="cars.txt")
    assert found(store, "red fruit") == [both]
    assert found(store, "apples cars") == []


def test_case_and_accents_do_not_matter(store: ArtifactStore) -> None:
    artifact_id = store.store(b"Caf\xc3\xa9 CR\xc3\x88ME", mime="text/plain")
    assert found(store, "cafe") == [artifact_id]
    assert found(store, "CAFÉ crème") == [artifact_id]


def test_results_are_search_hits_ranked_best_first(store: ArtifactStore) -> None:
    in_content = store.store(b"about zebras and other things", mime="text/plain", filename="notes.txt")
    in_name = store.store(b"nothing", mime="text/plain", filename="zebra-zebras.txt")
    hits = store.search(text="zebras")
    assert [h.artifact_id for h in hits] == [in_name, in_content]  # the filename weighs most
    assert all(isinstance(h, SearchHit) for h in hits)
    assert hits[0].rank <= hits[1].rank
    assert hits[0].snippet is None
    assert hits[0].to_dict()["filename"] == "zebra-zebras.txt"


def test_a_snippet_marks_the_matched_words(store: ArtifactStore) -> None:
    store.store(b"a long text in which the word narwhal appears once", mime="text/plain")
    (hit,) = store.search(text="narwhal", snippet=True)
    assert hit.snippet is not None and "\u00abnarwhal\u00bb" in hit.snippet


def test_the_indexed_text_is_capped_in_utf8_bytes(make_store: Any) -> None:
    store = make_store("memory", text_index_bytes=16)
    artifact_id = store.store("\u00e9t\u00e9 ".encode() * 10, mime="text/plain")  # 2-byte characters
    with store.catalog.read() as conn:
        (content,) = conn.execute(sql("SELECT content FROM artifact_text")).one()
    assert len(content.encode()) <= 16 and content.startswith("\u00e9t\u00e9 ")
    assert found(store, "ete") == [artifact_id]


def test_content_is_indexed_up_to_text_index_bytes(make_store: Any) -> None:
    store = make_store("memory", text_index_bytes=32)
    artifact_id = store.store(b"early words " + b"x" * 40 + b" late words", mime="text/plain")
    assert found(store, "early") == [artifact_id]
    assert found(store, "late") == []


def test_text_index_bytes_zero_indexes_no_content_but_still_names(make_store: Any) -> None:
    store = make_store("memory", text_index_bytes=0)
    artifact_id = store.store(b"body", mime="text/plain", filename="title.txt")
    assert found(store, "body") == []
    assert found(store, "title") == [artifact_id]


def test_text_index_bytes_is_validated() -> None:
    with pytest.raises(InvalidArgumentError, match="ARTIFACT_TEXT_INDEX_BYTES"):
        ArtifactStore(text_index_bytes=10**9)


# -- filters, access, pagination ---------------------------------------------------------------


def test_text_combines_with_every_filter(store: ArtifactStore) -> None:
    sid = store.create_session(user_id="alice")
    kept = store.store(b"walrus", mime="text/plain", filename="sea/walrus.txt", meta={"kind": "animal"}, session_id=sid)
    store.store(b"walrus", mime="text/csv", filename="sea/walrus.csv", meta={"kind": "animal"}, session_id=sid)
    store.store(b"walrus", mime="text/plain", filename="land/walrus.txt", meta={"kind": "animal"}, session_id=sid)
    store.store(b"walrus", mime="text/plain", filename="sea/walrus2.txt", meta={"kind": "plant"}, session_id=sid)
    store.store(b"walrus", mime="text/plain", filename="sea/walrus3.txt", meta={"kind": "animal"}, user_id="bob")
    filters = {"mime_prefix": "text/plain", "filename_prefix": "sea/", "meta_filter": {"kind": "animal"}}
    assert found(store, "walrus", user_id="alice", **filters) == [kept]
    assert found(store, "walrus", session_id=sid, **filters) == [kept]
    assert found(store, "walrus", user_id="alice", scope="session", **filters) == [kept]
    assert found(store, "walrus", user_id="alice", scope="user", **filters) == []


def test_text_combines_with_many_meta_entries(store: ArtifactStore) -> None:
    meta = {f"k{i}": i for i in range(10)}  # past the cached statement shapes (8 entries)
    kept = store.store(b"emu", mime="text/plain", meta=meta)
    store.store(b"emu", mime="text/plain", meta={**meta, "k9": 0})
    assert found(store, "emu", meta_filter=meta) == [kept]


def test_text_search_never_shows_what_the_caller_may_not_read(store: ArtifactStore) -> None:
    alice = store.create_session(user_id="alice")
    anonymous = store.create_session()
    mine = store.store(b"secret plan", mime="text/plain", session_id=alice)
    store.store(b"secret plan", mime="text/plain", user_id="bob", scope="user")
    anon = store.store(b"secret plan", mime="text/plain", session_id=anonymous)
    shared = store.store(b"secret plan", mime="text/plain", scope="sandbox")
    assert found(store, "secret", user_id="alice") == [mine]
    assert found(store, "secret", session_id=alice) == [mine]
    assert found(store, "secret", session_id=anonymous) == [anon]
    assert found(store, "secret", user_id="alice", scope="sandbox") == [shared]
    assert sorted(found(store, "secret")) == sorted(found(store, "secret", limit=1000))  # the admin sees all 4
    assert len(found(store, "secret")) == 4


def test_expired_artifacts_are_never_found(store: ArtifactStore, clock: Any) -> None:
    store.store(b"ephemeral note", mime="text/plain", ttl=60)
    kept = store.store(b"ephemeral note", mime="text/plain", ttl=None)
    clock.advance(61)
    assert found(store, "ephemeral") == [kept]


def test_pages_return_every_match_exactly_once_in_rank_order(store: ArtifactStore) -> None:
    for i in range(23):
        # different ranks (more or fewer repetitions), and ties (the same text twice)
        store.store(("tapir " * (1 + i % 5) + "filler " * (i % 3)).encode(), mime="text/plain")
    whole = found(store, "tapir", limit=100)
    assert len(whole) == 23
    seen: list[str] = []
    cursor = None
    while True:
        page = store.search(text="tapir", limit=4, cursor=cursor)
        seen += [hit.artifact_id for hit in page]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == whole


def test_a_cursor_of_another_kind_of_search_is_refused(store: ArtifactStore) -> None:
    for _ in range(3):
        store.store(b"ibis", mime="text/plain")
    listing_cursor = store.search(limit=1).next_cursor
    with pytest.raises(InvalidArgumentError, match="invalid cursor"):
        store.search(text="ibis", cursor=listing_cursor)


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one word"),
        ("   ", "at least one word"),
        ("!!! ** ---", "at least one word"),
        ("x" * 1001, "longer than 1000"),
        (" ".join(f"w{i}" for i in range(33)), "at most 32"),
        (b"bytes", "must be a string"),
        (42, "must be a string"),
    ],
)
def test_bad_text_is_an_invalid_argument(store: ArtifactStore, text: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        store.search(text=text)


@pytest.mark.parametrize(
    "text",
    ['"unbalanced', "NEAR(a b)", "a OR b", "-minus", "star*", "col:umn", "a AND NOT b", "(x", "^caret", "a & b | !c"],
)
def test_query_syntax_is_read_as_words(store: ArtifactStore, text: str) -> None:
    hit = store.store(f"the text is {text} here".encode(), mime="text/plain")
    assert found(store, text) == [hit]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_any_text_is_words_or_an_invalid_argument(store: ArtifactStore, text: str) -> None:
    try:
        hits = store.search(text=text, snippet=True)
    except InvalidArgumentError:
        return
    assert hits == []  # an empty store, and no database error whatever the text


def test_snippet_needs_a_text_search(store: ArtifactStore) -> None:
    with pytest.raises(InvalidArgumentError, match="snippet"):
        store.search(snippet=True)


# -- the index follows every write path ------------------------------------------------------------


def test_store_batch_and_write_file(store: ArtifactStore) -> None:
    sid = store.create_session()
    ids = store.store_batch(
        [{"data": b"batch lemur", "mime": "text/plain"}, {"data": b"batch koala", "mime": "text/plain"}],
        session_id=sid,
    )
    written = store.write_file("file gecko", filename="notes/g.txt", session_id=sid)
    assert found(store, "lemur") == [ids[0]]
    assert found(store, "koala") == [ids[1]]
    assert found(store, "gecko") == [written]


def test_update_file_finds_the_new_words_not_the_old(store: ArtifactStore) -> None:
    artifact_id = store.store(b"old content alpha", mime="text/plain", filename="a.txt")
    store.update_file(artifact_id, data=b"new content omega")
    assert found(store, "alpha") == []
    assert found(store, "omega") == [artifact_id]
    assert found(store, "a") == [artifact_id]  # the name stays indexed
    store.update_file(artifact_id, summary="changed summary", filename="b.txt")
    assert found(store, "omega changed b") == [artifact_id]
    assert found(store, "a") == []


def test_update_file_with_a_new_binary_mime_drops_the_text(store: ArtifactStore) -> None:
    artifact_id = store.store(b"readable words", mime="text/plain")
    store.update_file(artifact_id, data=b"\x89PNG words", mime="image/png")
    assert found(store, "words") == []


def test_update_file_with_only_a_new_mime_indexes_the_bytes_as_that_type(store: ArtifactStore) -> None:
    artifact_id = store.store(b"hidden lynx", mime="application/octet-stream")
    assert found(store, "lynx") == []
    store.update_file(artifact_id, mime="text/plain")
    assert found(store, "lynx") == [artifact_id]
    store.update_file(artifact_id, mime="image/png")
    assert found(store, "lynx") == []


def test_update_metadata_and_move_change_what_is_found(store: ArtifactStore) -> None:
    artifact_id = store.store(b"-", mime="application/octet-stream", summary="first draft", meta={"tag": "blue"})
    store.update_metadata(artifact_id, summary="final version", meta={"tag": "green"})
    assert found(store, "draft") == []
    assert found(store, "blue") == []
    assert found(store, "final green") == [artifact_id]
    store.update_metadata(artifact_id, meta={"tag": "red"}, merge=False)
    assert found(store, "green") == []
    assert found(store, "red") == [artifact_id]
    store.move_file(artifact_id, new_filename="renamed/otter.bin")
    assert found(store, "otter") == [artifact_id]
    store.move_file(artifact_id, new_filename="renamed/beaver.bin")
    assert found(store, "otter") == []
    assert found(store, "beaver final") == [artifact_id]


def test_copy_is_found_by_its_own_name_and_the_source_content(store: ArtifactStore) -> None:
    source = store.store(b"copied heron", mime="text/plain", filename="one.txt")
    copy = store.copy_file(source, new_filename="two.txt")
    assert sorted(found(store, "heron")) == sorted([source, copy])
    assert found(store, "two") == [copy]
    assert found(store, "one") == [source]


@pytest.mark.parametrize("catalog", CATALOGS)
def test_stream_upload_is_indexed_from_a_bounded_prefix(make_store: Any, catalog: str) -> None:
    store = make_store(catalog, text_index_bytes=1024)
    chunks = [b"streamed marmot ", b"x " * 200_000, b"tail wombat"]  # 400 kB, far past the cap
    read: list[int] = []
    real_open = store.blobs.open_read

    def counting_open(key: str) -> Any:
        f = real_open(key)
        real_read = f.read

        def read_some(size: int = -1) -> bytes:
            data = real_read(size)
            read.append(len(data))
            return data

        f.read = read_some
        return f

    store.blobs.open_read = counting_open  # type: ignore[method-assign]
    artifact_id = store.stream_upload(StreamUploadRequest(data_stream=iter(chunks), mime="text/plain"))
    assert 0 < sum(read) <= 1024  # the prefix only, never the whole 400 kB
    assert found(store, "marmot") == [artifact_id]
    assert found(store, "wombat") == []


def test_a_registered_presigned_upload_is_indexed(store: ArtifactStore) -> None:
    sid = store.create_session()
    _url, artifact_id = store.presign_upload(sid, filename="upload.txt", mime_type="text/plain")
    with store.catalog.read() as conn:
        upload = store.catalog.get_upload_by_artifact(conn, artifact_id)
    store.receive_upload(upload["upload_id"], iter([b"uploaded ocelot"]))
    store.register_uploaded_artifact(artifact_id, session_id=sid, summary="registered summary")
    assert found(store, "ocelot") == [artifact_id]
    assert found(store, "registered upload") == [artifact_id]


@pytest.mark.parametrize("catalog", CATALOGS)
def test_a_completed_multipart_upload_is_indexed(make_store: Any, catalog: str) -> None:
    store = make_store(catalog, multipart_min_part_size=0)
    sid = store.create_session()
    init = store.initiate_multipart_upload(
        MultipartUploadInitRequest(filename="parts.txt", mime_type="text/plain", session_id=sid)
    )
    etag1 = store.receive_part(init["upload_id"], 1, iter([b"first part puffin "]))
    etag2 = store.receive_part(init["upload_id"], 2, iter([b"second part quokka"]))
    artifact_id = store.complete_multipart_upload(
        MultipartUploadCompleteRequest(
            upload_id=init["upload_id"],
            parts=[{"PartNumber": 1, "ETag": etag1}, {"PartNumber": 2, "ETag": etag2}],
            session_id=sid,
        )
    )
    assert found(store, "puffin quokka") == [artifact_id]


def test_deletes_sweeps_and_session_ends_remove_the_index_entries(store: ArtifactStore, clock: Any) -> None:
    doomed = store.create_session(user_id="carol")
    store.store(b"session jackal", mime="text/plain", session_id=doomed)
    store.store(b"expiring jackal", mime="text/plain", ttl=60)
    deleted = store.store(b"deleted jackal", mime="text/plain")
    kept = store.store(b"kept jackal", mime="text/plain", ttl=None)
    assert index_rows(store) == 4

    assert store.delete(deleted)
    assert store.delete_session(doomed)
    clock.advance(61)
    store.cleanup_expired_sessions()

    assert found(store, "jackal") == [kept]
    assert index_rows(store) == artifact_rows(store) == 1


def test_a_session_swept_on_expiry_takes_its_index_entries(store: ArtifactStore, clock: Any) -> None:
    sid = store.create_session(ttl_hours=1)
    store.store(b"swept hyena", mime="text/plain", session_id=sid, ttl=None)
    clock.advance(2 * 3600)
    store.cleanup_expired_sessions()
    assert index_rows(store) == artifact_rows(store) == 0


def test_access_is_checked_in_the_query_not_after_it(store: ArtifactStore) -> None:
    """Other users' matches do not eat a page: 30 of bob's, then alice's one, limit 1."""
    for _ in range(30):
        store.store(b"llama", mime="text/plain", user_id="bob", scope="user")
    mine = store.store(b"llama", mime="text/plain", user_id="alice", scope="user")
    page = store.search(text="llama", user_id="alice", limit=1)
    assert [h.artifact_id for h in page] == [mine]
    assert page.next_cursor is None


def test_a_denied_search_stays_denied(store: ArtifactStore) -> None:
    sid = store.create_session(user_id="alice")
    with pytest.raises(AccessDeniedError):
        store.search(text="anything", session_id=sid, user_id="bob")


# -- properties -------------------------------------------------------------------------------

WORDS = ["amber", "basil", "cedar", "delta", "ember"]
USERS = ["alice", "bob", None]
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
artifacts_strategy = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from(["session", "user", "sandbox"]),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=8,
)


@PROPERTY
@given(artifacts=artifacts_strategy, caller=st.sampled_from(["alice", "bob"]), word=st.sampled_from(WORDS))
def test_text_search_never_returns_an_artifact_the_caller_may_not_read(
    store: ArtifactStore, artifacts: list[tuple[str | None, str, list[str]]], caller: str, word: str
) -> None:
    example = {"example": uuid.uuid4().hex}  # this example's artifacts, in a store shared by all
    stored: dict[str, str] = {}
    for owner, scope, words in artifacts:
        if scope == "user" and owner is None:
            scope = "session"
        owner_kw = {"user_id": owner} if owner and scope != "sandbox" else {}  # the admin's
        text = " ".join(words)
        stored[store.store(text.encode(), mime="text/plain", scope=scope, meta=example, **owner_kw)] = text
    for scope in (None, "session", "user", "sandbox"):
        for hit in store.search(text=word, user_id=caller, scope=scope, meta_filter=example, limit=1000):
            store.metadata(hit.artifact_id, user_id=caller)  # raises if the caller may not read it
            assert word in stored[hit.artifact_id].split()
    # and nothing readable is missed: the caller's own artifacts that hold the word
    mine = {m.artifact_id for m in store.search(user_id=caller, meta_filter=example, limit=1000)}
    expected = {aid for aid in mine if word in stored[aid].split()}
    assert {h.artifact_id for h in store.search(text=word, user_id=caller, meta_filter=example)} == expected


@PROPERTY
@given(
    old=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    new=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
)
def test_an_updated_artifact_is_found_by_its_new_words_and_not_its_old(
    store: ArtifactStore, old: list[str], new: list[str]
) -> None:
    example = {"example": uuid.uuid4().hex}
    by_bytes = store.store(" ".join(old).encode(), mime="text/plain", meta=example)
    by_summary = store.store(b"-", mime="application/octet-stream", summary=" ".join(old), meta=example)
    store.update_file(by_bytes, data=" ".join(new).encode())
    store.update_metadata(by_summary, summary=" ".join(new))
    for word in WORDS:
        expected = {by_bytes, by_summary} if word in new else set()
        assert set(found(store, word, meta_filter=example)) == expected, word


def test_the_async_facade_searches_text() -> None:
    from chuk_artifacts import AsyncArtifactStore

    async def scenario() -> None:
        async with AsyncArtifactStore() as store:
            artifact_id = await store.store(b"async puma", mime="text/plain")
            hits = await store.search(text="puma", snippet=True)
            assert [h.artifact_id for h in hits] == [artifact_id]
            assert "\u00abpuma\u00bb" in (hits[0].snippet or "")
            assert await store.reindex() == 1

    asyncio.run(scenario())
