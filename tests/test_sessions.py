"""Sessions: lifecycle, reuse by user, ownership, and the cleanup sweep."""

from __future__ import annotations

from datetime import datetime

import pytest

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactNotFoundError,
    CleanupResult,
    InvalidArgumentError,
    SessionError,
)
from chuk_artifacts.models import MultipartUploadInitRequest

HOUR = 3600.0
DAY = 24 * HOUR


def ids(listing):
    return {m.artifact_id for m in listing}


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def mem(make_store):
    """Argument validation does not depend on the backend: one memory store is enough."""
    return make_store("memory")


def blob_keys(store) -> list[str]:
    return sorted(store.blobs.keys())


# -- create / validate / info ------------------------------------------------------------------


def test_create_session_returns_a_valid_session(store):
    sid = store.create_session(user_id="alice")
    assert sid.startswith("sess-")
    assert store.validate_session(sid) is True


def test_create_session_ids_are_unique(store):
    assert len({store.create_session(user_id="alice") for _ in range(5)}) == 5


def test_create_session_with_an_explicit_id(store):
    assert store.create_session(user_id="alice", session_id="my-session") == "my-session"
    assert store.get_session_info("my-session")["user_id"] == "alice"


def test_create_session_refuses_an_id_that_is_live(store):
    store.create_session(user_id="alice", session_id="taken")
    with pytest.raises(SessionError):
        store.create_session(user_id="bob", session_id="taken")
    assert store.get_session_info("taken")["user_id"] == "alice"


def test_get_session_info_reports_user_metadata_and_times(store, clock):
    sid = store.create_session(user_id="alice", ttl_hours=2, custom_metadata={"team": "red"})
    info = store.get_session_info(sid)
    assert info["session_id"] == sid
    assert info["user_id"] == "alice"
    assert info["sandbox_id"] == store.sandbox_id
    assert info["custom_metadata"] == {"team": "red"}
    lifetime = parse_iso(info["expires_at"]) - parse_iso(info["created_at"])
    assert abs(lifetime.total_seconds() - 2 * HOUR) < 1e-3


def test_session_ttl_defaults_to_24_hours(store):
    info = store.get_session_info(store.create_session(user_id="alice"))
    lifetime = parse_iso(info["expires_at"]) - parse_iso(info["created_at"])
    assert abs(lifetime.total_seconds() - DAY) < 1e-3


def test_validate_session_is_false_for_an_unknown_session(store):
    assert store.validate_session("no-such-session") is False
    assert store.get_session_info("no-such-session") is None


def test_a_session_expires_after_its_ttl(store, clock):
    sid = store.create_session(user_id="alice", ttl_hours=1)
    clock.advance(HOUR - 1)
    assert store.validate_session(sid) is True
    clock.advance(2)
    assert store.validate_session(sid) is False
    assert store.get_session_info(sid) is None


@pytest.mark.parametrize("bad", [0, -1, "2", True, float("nan"), float("inf")])
def test_create_session_refuses_a_bad_ttl(mem, bad):
    with pytest.raises(InvalidArgumentError):
        mem.create_session(user_id="alice", ttl_hours=bad)
    assert mem.get_stats()["sessions"]["active"] == 0


def test_create_session_refuses_non_json_metadata(store):
    with pytest.raises(InvalidArgumentError):
        store.create_session(user_id="alice", custom_metadata={"x": object()})
    assert store.get_stats()["sessions"]["active"] == 0


# -- update / extend / delete -------------------------------------------------------------------


def test_update_session_metadata_merges(store):
    sid = store.create_session(user_id="alice", custom_metadata={"a": 1, "b": 2})
    assert store.update_session_metadata(sid, {"b": 3, "c": 4}) is True
    assert store.get_session_info(sid)["custom_metadata"] == {"a": 1, "b": 3, "c": 4}


def test_update_session_metadata_of_an_unknown_session_raises_not_found(store):
    with pytest.raises(ArtifactNotFoundError):
        store.update_session_metadata("no-such-session", {"a": 1})


def test_update_session_metadata_refuses_non_json(store):
    sid = store.create_session(user_id="alice", custom_metadata={"a": 1})
    with pytest.raises(InvalidArgumentError):
        store.update_session_metadata(sid, {"b": object()})
    assert store.get_session_info(sid)["custom_metadata"] == {"a": 1}


def test_extend_session_ttl_pushes_expiry_back(store, clock):
    sid = store.create_session(user_id="alice", ttl_hours=1)
    before = parse_iso(store.get_session_info(sid)["expires_at"])
    assert store.extend_session_ttl(sid, 2) is True
    after = parse_iso(store.get_session_info(sid)["expires_at"])
    assert abs((after - before).total_seconds() - 2 * HOUR) < 1e-3
    clock.advance(2.5 * HOUR)
    assert store.validate_session(sid) is True


def test_extend_session_ttl_of_an_expired_session_raises_not_found(store, clock):
    sid = store.create_session(user_id="alice", ttl_hours=1)
    clock.advance(2 * HOUR)
    with pytest.raises(ArtifactNotFoundError):
        store.extend_session_ttl(sid, 1)
    assert store.validate_session(sid) is False


@pytest.mark.parametrize("bad", [0, -1, "1", None])
def test_extend_session_ttl_refuses_bad_hours(mem, bad):
    sid = mem.create_session(user_id="alice")
    before = mem.get_session_info(sid)["expires_at"]
    with pytest.raises(InvalidArgumentError):
        mem.extend_session_ttl(sid, bad)
    assert mem.get_session_info(sid)["expires_at"] == before


def test_delete_session_removes_the_session(store):
    sid = store.create_session(user_id="alice")
    assert store.delete_session(sid) is True
    assert store.validate_session(sid) is False


def test_delete_session_of_an_unknown_session_returns_false(store):
    assert store.delete_session("no-such-session") is False


def test_delete_session_deletes_its_session_scoped_artifacts_and_their_bytes(store):
    sid = store.create_session(user_id="alice")
    other = store.create_session(user_id="alice")
    gone = [store.store(b"x", mime="text/plain", session_id=sid) for _ in range(3)]
    kept = store.store(b"y", mime="text/plain", session_id=other)
    store.delete_session(sid)
    for aid in gone:
        assert store.exists(aid) is False
    assert blob_keys(store) == [store.metadata(kept).key]


def test_delete_session_keeps_user_scoped_artifacts(store):
    sid = store.create_session(user_id="alice")
    doc = store.store(b"persistent", mime="text/plain", session_id=sid, scope="user")
    store.store(b"ephemeral", mime="text/plain", session_id=sid)
    store.delete_session(sid)
    assert store.retrieve(doc, user_id="alice") == b"persistent"
    assert blob_keys(store) == [store.metadata(doc).key]


# -- sessions chosen by store(user_id=...) -------------------------------------------------------------


def test_store_with_user_id_reuses_one_session(store):
    a = store.store(b"1", mime="text/plain", user_id="alice")
    b = store.store(b"2", mime="text/plain", user_id="alice")
    sa, sb = store.metadata(a).session_id, store.metadata(b).session_id
    assert sa == sb
    assert sa.startswith("sess-") and "alice" not in sa  # a bearer id embeds nothing guessable
    assert store.get_stats()["sessions"]["active"] == 1


def test_store_with_user_id_uses_the_users_existing_session(store):
    sid = store.create_session(user_id="alice")
    aid = store.store(b"1", mime="text/plain", user_id="alice")
    assert store.metadata(aid).session_id == sid


def test_different_users_get_different_sessions(store):
    a = store.store(b"1", mime="text/plain", user_id="alice")
    b = store.store(b"2", mime="text/plain", user_id="bob")
    assert store.metadata(a).session_id != store.metadata(b).session_id
    assert store.get_session_info(store.metadata(b).session_id)["user_id"] == "bob"


def test_store_with_user_id_creates_a_new_session_after_the_old_one_expired(store, clock):
    first = store.store(b"1", mime="text/plain", user_id="alice", scope="user")
    old = store.metadata(first).session_id
    clock.advance(DAY + 1)
    assert store.validate_session(old) is False
    second = store.store(b"2", mime="text/plain", user_id="alice", scope="user")
    new = store.metadata(second).session_id
    assert new != old
    assert store.validate_session(new) is True


def test_using_a_users_session_keeps_it_alive(store, clock):
    store.store(b"1", mime="text/plain", user_id="alice")
    sid = store.search(user_id="alice")[0].session_id
    for _ in range(4):  # 4 x 20 h: far past the 24 h lifetime, but used all along
        clock.advance(20 * HOUR)
        store.store(b"x", mime="text/plain", user_id="alice", scope="user")
    assert store.validate_session(sid) is True
    assert {m.session_id for m in store.search(user_id="alice", scope="user")} == {sid}


def test_using_a_short_lived_session_does_not_stretch_it_to_the_default_ttl(store, clock):
    sid = store.create_session(user_id="alice", ttl_hours=1)
    store.store(b"x", mime="text/plain", session_id=sid)
    clock.advance(2 * HOUR)
    assert store.validate_session(sid) is False


def test_concurrent_first_stores_of_a_user_share_one_session(store):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    start = threading.Barrier(6)

    def work() -> str:
        start.wait()
        return store.store(b"x", mime="text/plain", user_id="carol")

    with ThreadPoolExecutor(6) as pool:
        made = [f.result() for f in [pool.submit(work) for _ in range(6)]]
    assert len({store.metadata(aid).session_id for aid in made}) == 1
    assert store.get_stats()["sessions"]["active"] == 1


def test_store_with_an_unknown_session_id_creates_that_session(store):
    aid = store.store(b"1", mime="text/plain", session_id="fresh-session", user_id="alice")
    assert store.metadata(aid).session_id == "fresh-session"
    assert store.get_session_info("fresh-session")["user_id"] == "alice"


def test_a_session_of_alice_named_with_bob_is_denied_on_store(store):
    sid = store.create_session(user_id="alice")
    with pytest.raises(AccessDeniedError):
        store.store(b"x", mime="text/plain", session_id=sid, user_id="bob")
    assert store.list_by_session(sid) == []
    assert blob_keys(store) == []


def test_a_session_of_alice_named_with_bob_is_denied_on_read(store):
    sid = store.create_session(user_id="alice")
    aid = store.store(b"x", mime="text/plain", session_id=sid)
    with pytest.raises(AccessDeniedError):
        store.retrieve(aid, session_id=sid, user_id="bob")
    with pytest.raises(AccessDeniedError):
        store.list_by_session(sid, user_id="bob")


def test_recreating_an_expired_session_id_for_another_user_does_not_hand_over_its_artifacts(store, clock):
    store.create_session(user_id="alice", session_id="workflow-1")
    secret = store.store(b"alice's", mime="text/plain", session_id="workflow-1", ttl=3 * 86400)
    clock.advance(DAY + 1)  # the session expired, its artifact has not, no sweep ran yet
    store.create_session(user_id="bob", session_id="workflow-1")
    with pytest.raises((AccessDeniedError, ArtifactNotFoundError)):
        store.retrieve(secret, session_id="workflow-1")
    assert store.list_by_session("workflow-1", user_id="bob") == []
    assert blob_keys(store) == []


def test_artifacts_stored_in_a_users_session_are_owned_by_that_user(store):
    sid = store.create_session(user_id="alice")
    aid = store.store(b"x", mime="text/plain", session_id=sid, scope="user")
    meta = store.metadata(aid)
    assert meta.owner_id == "alice"
    assert meta.key.endswith(f"/users/alice/{aid}")


# -- cleanup_expired_sessions -----------------------------------------------------------------------


def test_cleanup_with_nothing_expired_removes_nothing(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice")
    result = store.cleanup_expired_sessions()
    assert isinstance(result, CleanupResult)
    assert (result.artifacts, result.sessions, result.bytes) == (0, 0, 0)
    assert result == 0
    assert store.retrieve(aid) == b"x"


def test_cleanup_removes_expired_artifacts_rows_and_bytes(store, clock):
    expired = [store.store(b"12345", mime="text/plain", user_id="alice", ttl=60) for _ in range(3)]
    live = store.store(b"keep", mime="text/plain", user_id="alice", ttl=3600)
    clock.advance(61)
    result = store.cleanup_expired_sessions()
    assert (result.artifacts, result.sessions, result.bytes) == (3, 0, 15)
    assert int(result) == 3
    for aid in expired:
        with pytest.raises(ArtifactNotFoundError):
            store.metadata(aid)
    assert blob_keys(store) == [store.metadata(live).key]
    assert store.get_stats()["artifacts"]["expired_pending_cleanup"] == 0


def test_cleanup_removes_expired_sessions_with_their_artifacts(store, clock):
    sid = store.create_session(user_id="alice")
    eph = store.store(b"12", mime="text/plain", session_id=sid, ttl=3 * 86400)
    doc = store.store(b"document", mime="text/plain", session_id=sid, scope="user")
    other = store.create_session(user_id="bob", ttl_hours=48)
    clock.advance(DAY + 1)
    result = store.cleanup_expired_sessions()
    assert (result.sessions, result.artifacts, result.bytes) == (1, 1, 2)
    assert store.get_session_info(sid) is None
    assert store.validate_session(other) is True
    with pytest.raises(ArtifactNotFoundError):
        store.metadata(eph)
    assert store.retrieve(doc, user_id="alice") == b"document"
    assert blob_keys(store) == [store.metadata(doc).key]


def test_cleanup_result_counts_artifacts_sessions_and_bytes_together(store, clock):
    sid = store.create_session(user_id="alice")
    store.store(b"abc", mime="text/plain", session_id=sid, ttl=60)
    store.store(b"defgh", mime="text/plain", session_id=sid, ttl=2 * 86400)
    clock.advance(DAY + 1)
    result = store.cleanup_expired_sessions()
    assert result.to_dict() == {"artifacts": 2, "sessions": 1, "uploads": result.uploads, "bytes": 8}
    assert int(result) == result.artifacts + result.sessions + result.uploads


def test_cleanup_twice_removes_nothing_the_second_time(store, clock):
    store.store(b"x", mime="text/plain", user_id="alice", ttl=60)
    clock.advance(61)
    assert store.cleanup_expired_sessions().artifacts == 1
    second = store.cleanup_expired_sessions()
    assert (second.artifacts, second.sessions, second.bytes) == (0, 0, 0)


def test_cleanup_sweeps_more_than_one_batch(store, clock, monkeypatch):
    import chuk_artifacts.maintenance

    monkeypatch.setattr(chuk_artifacts.maintenance, "_BATCH", 4)
    short = store.store_batch([{"data": b"x", "mime": "text/plain"} for _ in range(11)], user_id="alice", ttl=60)
    for i in range(9):
        store.store(b"yy", mime="text/plain", user_id=f"user{i}", ttl=3 * 86400)
    clock.advance(DAY + 1)
    result = store.cleanup_expired_sessions()
    assert (result.artifacts, result.sessions, result.bytes) == (len(short) + 9, 10, 11 + 18)
    assert blob_keys(store) == []
    assert store.get_stats()["sessions"]["active"] == 0


def test_cleanup_finishes_an_interrupted_delete(store, clock):
    aid = store.store(b"x", mime="text/plain", user_id="alice")
    key = store.metadata(aid).key
    # A delete that crashed after tombstoning the row, before removing bytes and row.
    with store.catalog.write() as conn:
        row = store.catalog.get_artifact(conn, aid)
        store.catalog.mark_deleting(conn, [row["row_id"]], __import__("time").time())
    assert store.exists(aid) is False
    clock.advance(301)
    result = store.cleanup_expired_sessions()
    assert result.artifacts == 1
    assert key not in blob_keys(store)
    with store.catalog.read() as conn:
        assert store.catalog.get_artifact(conn, aid) is None


def test_session_operations_refuse_invalid_session_ids(mem):
    store = mem
    for call in (
        lambda: store.validate_session("../x"),
        lambda: store.get_session_info("a/b"),
        lambda: store.update_session_metadata("a b", {}),
        lambda: store.extend_session_ttl("", 1),
        lambda: store.delete_session("x" * 129),
        lambda: store.create_session(user_id="al/ice"),
        lambda: store.create_session(session_id="../../etc"),
    ):
        with pytest.raises(InvalidArgumentError):
            call()


# -- a session is a security boundary only while it lives (issue 20, items 2-4, 8, 16) ----------
# (run with the catalog and the Redis session providers: `nox -s plugins`)


def test_artifacts_of_a_vanished_session_are_not_reachable_through_its_id(store):
    """As when Redis expires a session: its row is gone before the sweep removes its artifacts."""
    sid = store.create_session(user_id="alice")
    aid = store.store(b"alice's", mime="text/plain", session_id=sid)
    anonymous = store.create_session()
    loose = store.store(b"nobody's", mime="text/plain", session_id=anonymous)
    store.sessions.delete(sid)
    store.sessions.delete(anonymous)
    for caller in ({"session_id": sid}, {"session_id": sid, "user_id": "bob"}):
        with pytest.raises(AccessDeniedError):
            store.read_file(aid, **caller)
        with pytest.raises(AccessDeniedError):
            store.delete(aid, **caller)
        assert ids(store.list_by_session(sid, user_id=caller.get("user_id"))) == set()
        assert ids(store.search(**caller)) == set()
    with pytest.raises(AccessDeniedError):
        store.read_file(loose, session_id=anonymous)
    # bob takes the freed id over: he still reaches nothing alice stored there
    bobs = store.store(b"bob's", mime="text/plain", session_id=sid, user_id="bob")
    with pytest.raises(AccessDeniedError):
        store.read_file(aid, session_id=sid)
    assert ids(store.list_by_session(sid)) == {bobs}
    assert store.read_file(aid, user_id="alice") == b"alice's"  # its owner still may


def test_an_expired_session_is_no_identity(store, clock):
    sid = store.create_session(user_id="alice", ttl_hours=1)
    aid = store.store(b"old", mime="text/plain", session_id=sid, ttl=None)
    profile = store.store(b"profile", mime="text/plain", session_id=sid, scope="user", ttl=None)
    clock.advance(HOUR + 1)
    assert store.validate_session(sid) is False
    for call in (
        lambda: store.read_file(aid, session_id=sid),
        lambda: store.presign(aid, session_id=sid),
        lambda: store.delete(aid, session_id=sid),
        lambda: store.update_metadata(aid, session_id=sid, summary="x"),
        lambda: store.read_file(profile, session_id=sid),  # resolves no user any more
    ):
        with pytest.raises(AccessDeniedError):
            call()
    assert ids(store.search(session_id=sid)) == set()
    assert store.read_file(profile, user_id="alice") == b"profile"


def test_storing_into_an_expired_session_replaces_it_without_its_artifacts(store, clock):
    sid = store.create_session(user_id="alice", ttl_hours=1)
    old = store.store(b"old", mime="text/plain", session_id=sid, ttl=None)
    clock.advance(HOUR + 1)
    new = store.store(b"new", mime="text/plain", session_id=sid)
    assert store.validate_session(sid) is True
    assert ids(store.list_by_session(sid)) == {new}
    with pytest.raises(ArtifactNotFoundError):
        store.metadata(old)


def test_reading_through_a_session_slides_it_as_writing_does(store, clock):
    sid = store.create_session(user_id="alice", ttl_hours=1)
    aid = store.store(b"x", mime="text/plain", session_id=sid, ttl=None)
    for _ in range(4):  # two hours of reads, each past half of the session's lifetime
        clock.advance(HOUR * 0.6)
        assert store.read_file(aid, session_id=sid) == b"x"
    assert store.validate_session(sid)
    clock.advance(HOUR * 0.6)
    assert store.validate_session(sid)  # validate_session inspects; it does not slide
    clock.advance(HOUR * 0.5)
    assert not store.validate_session(sid)


def test_a_sweep_keeps_what_was_stored_into_a_session_replaced_during_it(store, clock):
    sid = store.create_session(user_id="alice", ttl_hours=1)
    old = store.store(b"old", mime="text/plain", session_id=sid, ttl=None)
    clock.advance(HOUR + 1)
    listed = store.sessions.expired
    stored: list[str] = []

    def expired_then_replaced(now, limit):
        found = listed(now, limit)
        if not stored:  # the session is replaced after the sweep listed it, before it purges
            clock.advance(1)
            stored.append(store.store(b"new", mime="text/plain", session_id=sid, ttl=None))
        return found

    store.sessions.expired = expired_then_replaced
    try:
        store.cleanup_expired_sessions()
    finally:
        store.sessions.expired = listed
    assert store.read_file(stored[0], session_id=sid) == b"new"  # acknowledged, and kept
    with pytest.raises(ArtifactNotFoundError):
        store.metadata(old)
    assert store.validate_session(sid)


def test_deleting_a_session_ends_its_uploads(store):
    sid = store.create_session(user_id="alice")
    url, presigned_id = store.presign_upload(session_id=sid, filename="a.bin")
    multipart = store.initiate_multipart_upload(
        MultipartUploadInitRequest(filename="b.bin", mime_type="application/octet-stream", session_id=sid)
    )
    assert store.delete_session(sid)
    with pytest.raises(ArtifactNotFoundError):
        store.register_uploaded_artifact(presigned_id, session_id=sid)
    with pytest.raises(ArtifactNotFoundError):
        store.get_part_upload_url(multipart["upload_id"], 1, session_id=sid)
    with store.catalog.read() as conn:
        assert store.catalog.session_uploads(conn, store.sandbox_id, sid, 10) == []
