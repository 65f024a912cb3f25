"""TTL: defaults per scope, expiry on every read path, sweeping, and ttl validation."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from chuk_artifacts import (
    ArtifactExpiredError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidArgumentError,
)

TEN_YEARS = 10 * 365 * 86400


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def ids(results) -> list[str]:
    return [m.artifact_id for m in results]


# -- defaults -----------------------------------------------------------------------------------


def test_session_scope_defaults_to_900_seconds(store):
    meta = store.metadata(store.store(b"x", mime="text/plain", user_id="alice"))
    assert meta.ttl == 900
    assert abs((parse_iso(meta.expires_at) - parse_iso(meta.stored_at)).total_seconds() - 900) < 1e-3


@pytest.mark.parametrize("scope", ["user", "sandbox"])
def test_user_and_sandbox_scopes_default_to_no_expiry(store, scope):
    aid = store.store(b"x", mime="text/plain", user_id=None if scope == "sandbox" else "alice", scope=scope)
    meta = store.metadata(aid)
    assert meta.ttl is None
    assert meta.expires_at is None


def test_default_ttl_follows_the_store_setting(make_store):
    st = make_store("memory", default_ttl=60)
    assert st.metadata(st.store(b"x", mime="text/plain", user_id="alice")).ttl == 60


def test_explicit_ttl_is_kept(store):
    assert store.metadata(store.store(b"x", mime="text/plain", user_id="alice", ttl=3600)).ttl == 3600


def test_fractional_ttl_is_rounded_up_to_whole_seconds(store):
    assert store.metadata(store.store(b"x", mime="text/plain", user_id="alice", ttl=1.2)).ttl == 2


def test_a_user_scoped_artifact_may_have_a_ttl(store, clock):
    aid = store.store(b"x", mime="text/plain", user_id="alice", scope="user", ttl=60)
    clock.advance(61)
    with pytest.raises(ArtifactExpiredError):
        store.retrieve(aid, user_id="alice")


# -- ttl=None -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["session", "user", "sandbox"])
def test_ttl_none_never_expires(store, clock, scope):
    aid = store.store(
        b"forever", mime="text/plain", user_id=None if scope == "sandbox" else "alice", scope=scope, ttl=None
    )
    meta = store.metadata(aid)
    assert (meta.ttl, meta.expires_at) == (None, None)
    clock.advance(TEN_YEARS)
    assert store.retrieve(aid) == b"forever"
    assert store.exists(aid) is True
    assert aid in ids(store.search())


@pytest.mark.parametrize("scope", ["user", "sandbox"])
def test_ttl_none_survives_cleanup_after_ten_years(store, clock, scope):
    aid = store.store(
        b"forever", mime="text/plain", user_id=None if scope == "sandbox" else "alice", scope=scope, ttl=None
    )
    clock.advance(TEN_YEARS)
    store.cleanup_expired_sessions()
    assert store.retrieve(aid) == b"forever"


def test_update_metadata_with_ttl_none_makes_an_artifact_persistent(store, clock):
    aid = store.store(b"x", mime="text/plain", user_id="alice", ttl=60)
    store.update_metadata(aid, ttl=None)
    assert store.metadata(aid).expires_at is None
    clock.advance(3600)
    assert store.retrieve(aid) == b"x"


def test_update_metadata_with_a_ttl_restarts_the_clock(store, clock):
    aid = store.store(b"x", mime="text/plain", user_id="alice", ttl=60)
    clock.advance(50)
    store.update_metadata(aid, ttl=100)
    clock.advance(90)
    assert store.retrieve(aid) == b"x"
    clock.advance(11)
    with pytest.raises(ArtifactExpiredError):
        store.retrieve(aid)


# -- expiry ---------------------------------------------------------------------------------------


@pytest.fixture
def expired(store, clock):
    """An artifact whose 60 s TTL has just passed (and a live one beside it)."""
    sid = store.create_session(user_id="alice")
    aid = store.store(b"old", mime="text/plain", session_id=sid, filename="old.txt", ttl=60, meta={"k": 1})
    store.store(b"new", mime="text/plain", session_id=sid, filename="new.txt", ttl=3600, meta={"k": 1})
    clock.advance(61)
    return aid, sid


def test_an_artifact_is_readable_until_its_ttl_passes(store, clock):
    aid = store.store(b"x", mime="text/plain", user_id="alice", ttl=60)
    clock.advance(59.9)
    assert store.retrieve(aid) == b"x"
    clock.advance(0.2)
    with pytest.raises(ArtifactExpiredError):
        store.retrieve(aid)


def test_reading_an_expired_artifact_raises_expired(store, expired):
    aid, sid = expired
    for read in ("retrieve", "metadata", "read_file"):
        with pytest.raises(ArtifactExpiredError):
            getattr(store, read)(aid)
        with pytest.raises(ArtifactExpiredError):
            getattr(store, read)(aid, session_id=sid)


def test_expired_error_is_a_store_error_with_status_410(store, expired):
    with pytest.raises(ArtifactStoreError) as info:
        store.retrieve(expired[0])
    assert info.value.http_status == 410


def test_exists_is_false_for_an_expired_artifact(store, expired):
    assert store.exists(expired[0]) is False


CHANGES = {
    "update_file": lambda st, aid: st.update_file(aid, data=b"revived"),
    "update_metadata": lambda st, aid: st.update_metadata(aid, summary="revived"),
    "extend_ttl": lambda st, aid: st.extend_ttl(aid, 3600),
    "copy_file": lambda st, aid: st.copy_file(aid),
    "move_file": lambda st, aid: st.move_file(aid, new_filename="x"),
}


def test_an_expired_artifact_cannot_be_changed_or_revived(store, expired):
    aid, _ = expired
    keys_before = sorted(store.blobs.keys())
    for name, change in CHANGES.items():
        with pytest.raises(ArtifactExpiredError):
            change(store, aid)
        assert sorted(store.blobs.keys()) == keys_before, name
        with pytest.raises(ArtifactExpiredError):
            store.retrieve(aid)


def test_expired_artifacts_are_not_listed_or_searched(store, expired):
    aid, sid = expired
    assert aid not in ids(store.search())
    assert aid not in ids(store.search(user_id="alice"))
    assert aid not in ids(store.search(meta_filter={"k": 1}))
    assert aid not in ids(store.list_by_session(sid))
    assert aid not in ids(store.get_directory_contents(sid))
    assert len(store.list_by_session(sid)) == 1


def test_an_expired_artifact_can_still_be_deleted(store, expired):
    aid, sid = expired
    key = store.metadata(store.list_by_session(sid)[0].artifact_id).key
    assert store.delete(aid) is True
    assert sorted(store.blobs.keys()) == [key]
    with pytest.raises(ArtifactNotFoundError):
        store.retrieve(aid)


def test_after_cleanup_an_expired_artifact_is_not_found(store, expired):
    aid, _ = expired
    store.cleanup_expired_sessions()
    with pytest.raises(ArtifactNotFoundError):
        store.retrieve(aid)
    with pytest.raises(ArtifactNotFoundError):
        store.metadata(aid)
    assert store.exists(aid) is False


def test_cleanup_deletes_the_expired_bytes(store, expired):
    _, sid = expired
    live = store.list_by_session(sid)[0]
    store.cleanup_expired_sessions()
    assert sorted(store.blobs.keys()) == [live.key]


# -- ttl validation -------------------------------------------------------------------------------

BAD_TTLS = [0, -1, -0.5, 100 * 365 * 86400 + 1, 10**30, "abc", "60", True, False, math.nan, math.inf, [60], b"60"]


@pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
def test_store_refuses_an_invalid_ttl(make_store, ttl):
    st = make_store("memory")
    with pytest.raises(InvalidArgumentError) as info:
        st.store(b"x", mime="text/plain", user_id="alice", ttl=ttl)
    assert isinstance(info.value, ValueError)
    assert list(st.blobs.keys()) == []
    assert st.search() == []


def test_every_method_taking_a_ttl_refuses_an_invalid_one(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice", ttl=60)
    before = store.metadata(aid)
    calls = (
        lambda ttl: store.write_file("x", filename="a.txt", user_id="alice", ttl=ttl),
        lambda ttl: store.store_batch([{"data": b"x", "mime": "text/plain"}], user_id="alice", ttl=ttl),
        lambda ttl: store.update_file(aid, ttl=ttl),
        lambda ttl: store.update_metadata(aid, ttl=ttl),
    )
    for ttl in (0, -1, "abc", True, math.nan):
        for call in calls:
            with pytest.raises(InvalidArgumentError):
                call(ttl)
    assert store.metadata(aid) == before
    assert [m.artifact_id for m in store.search()] == [aid]


def test_the_largest_ttl_is_accepted(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice", ttl=100 * 365 * 86400)
    assert store.metadata(aid).ttl == 100 * 365 * 86400


def test_invalid_default_ttl_setting_is_refused(make_store):
    with pytest.raises(InvalidArgumentError):
        make_store("memory", default_ttl=-5)
