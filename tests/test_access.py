"""The access table of DESIGN.md, checked explicitly on every method that takes an identity.

| scope   | read                              | write / delete     |
|---------|-----------------------------------|--------------------|
| session | the owning session                | the owning session |
| user    | the owning user, from any session | the owning user    |
| sandbox | anyone in the sandbox             | admin only         |

A call with no identity is the trusted application (admin). A denied call raises
``AccessDeniedError`` and changes nothing: bytes, metadata and version stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from chuk_artifacts import AccessDeniedError, ArtifactStore, AsyncArtifactStore, BoundStore

# -- the world every access test runs in ----------------------------------------------------------


@dataclass
class World:
    store: ArtifactStore
    sessions: dict[str, str]  # alice1 (owner), alice2 (her other session), bob, anon (no user)
    artifacts: dict[str, str]  # scope -> artifact id

    def identity(self, name: str) -> dict[str, str]:
        s = self.sessions
        return {
            "owner_session": {"session_id": s["alice1"]},
            "owner_user": {"user_id": "alice"},
            "owner_user_and_session": {"user_id": "alice", "session_id": s["alice1"]},
            "owner_other_session": {"session_id": s["alice2"]},
            "other_user": {"user_id": "bob"},
            "other_users_session": {"session_id": s["bob"]},
            "anonymous_session": {"session_id": s["anon"]},
            "admin": {},
        }[name]

    def add_artifact(self, scope: str, filename: str) -> str:
        """Another artifact of ``scope`` owned as the world's artifact of that scope is."""
        where = {} if scope == "sandbox" else {"session_id": self.sessions["alice1"]}
        return self.store.store(
            f"{scope}-bytes".encode(),
            mime="text/plain",
            meta={"k": 1},
            scope=scope,
            filename=filename,
            ttl=3600 if scope != "session" else 900,
            **where,
        )

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a call could change, read as admin."""
        st = self.store
        metas = tuple(
            sorted((m.artifact_id, tuple(sorted(m.to_dict().items(), key=str))) for m in st.search(limit=1000))
        )
        blobs = tuple((k, st.blobs.get(k)) for k in sorted(st.blobs.keys()))
        return metas, blobs


def build_world(store: ArtifactStore, *, with_artifacts: bool = True) -> World:
    sessions = {
        "alice1": store.create_session(user_id="alice"),
        "alice2": store.create_session(user_id="alice"),
        "bob": store.create_session(user_id="bob"),
        "anon": store.create_session(),
    }
    if not with_artifacts:
        return World(store, sessions, {})
    common = {"mime": "text/plain", "meta": {"k": 1}}
    artifacts = {
        "session": store.store(b"session-bytes", session_id=sessions["alice1"], filename="docs/s.txt", **common),
        "user": store.store(
            b"user-bytes", session_id=sessions["alice1"], scope="user", filename="docs/u.txt", ttl=3600, **common
        ),
        "sandbox": store.store(b"sandbox-bytes", scope="sandbox", filename="docs/x.txt", ttl=3600, **common),
    }
    return World(store, sessions, artifacts)


@pytest.fixture
def world(store: ArtifactStore) -> World:
    return build_world(store)


IDENTITIES = [
    "owner_session",
    "owner_user",
    "owner_user_and_session",
    "owner_other_session",
    "other_user",
    "other_users_session",
    "anonymous_session",
    "admin",
]

#: (scope, identity) -> may read, may write. The table of DESIGN.md, written out.
ALLOWED: dict[tuple[str, str], tuple[bool, bool]] = {
    ("session", "owner_session"): (True, True),
    ("session", "owner_user"): (True, True),  # a user naming no session acts for their sessions
    ("session", "owner_user_and_session"): (True, True),
    ("session", "owner_other_session"): (False, False),
    ("session", "other_user"): (False, False),
    ("session", "other_users_session"): (False, False),
    ("session", "anonymous_session"): (False, False),
    ("session", "admin"): (True, True),
    ("user", "owner_session"): (True, True),
    ("user", "owner_user"): (True, True),
    ("user", "owner_user_and_session"): (True, True),
    ("user", "owner_other_session"): (True, True),  # the owning user, from any session
    ("user", "other_user"): (False, False),
    ("user", "other_users_session"): (False, False),
    ("user", "anonymous_session"): (False, False),
    ("user", "admin"): (True, True),
    **{("sandbox", who): (True, who == "admin") for who in IDENTITIES},
}

SCOPES = ["session", "user", "sandbox"]


# -- per-artifact methods ----------------------------------------------------------------------


def _check_retrieve(w: World, aid: str, ident: dict) -> None:
    assert w.store.retrieve(aid, **ident) == w.store.retrieve(aid)


def _check_read_file(w: World, aid: str, ident: dict) -> None:
    assert w.store.read_file(aid, as_text=True, **ident).endswith("-bytes")


def _check_metadata(w: World, aid: str, ident: dict) -> None:
    assert w.store.metadata(aid, **ident).artifact_id == aid


def _check_exists(w: World, aid: str, ident: dict) -> None:
    assert w.store.exists(aid, **ident) is True


def _check_update_file(w: World, aid: str, ident: dict) -> None:
    assert w.store.update_file(aid, data=b"changed", meta={"new": 1}, **ident) is True
    assert w.store.retrieve(aid) == b"changed"
    assert w.store.metadata(aid).meta == {"k": 1, "new": 1}


def _check_update_metadata(w: World, aid: str, ident: dict) -> None:
    w.store.update_metadata(aid, summary="changed", meta={"new": 1}, **ident)
    meta = w.store.metadata(aid)
    assert (meta.summary, meta.meta) == ("changed", {"k": 1, "new": 1})


def _check_extend_ttl(w: World, aid: str, ident: dict) -> None:
    before = w.store.metadata(aid).ttl
    w.store.extend_ttl(aid, 60, **ident)
    assert w.store.metadata(aid).ttl == before + 60


def _check_copy_file(w: World, aid: str, ident: dict) -> None:
    copy = w.store.copy_file(aid, new_filename="copy.txt", **ident)
    assert copy != aid
    assert w.store.retrieve(copy) == w.store.retrieve(aid)


def _check_move_file(w: World, aid: str, ident: dict) -> None:
    w.store.move_file(aid, new_filename="moved.txt", **ident)
    assert w.store.metadata(aid).filename == "moved.txt"


def _check_delete(w: World, aid: str, ident: dict) -> None:
    key = w.store.metadata(aid).key
    assert w.store.delete(aid, **ident) is True
    assert w.store.exists(aid) is False
    assert key not in set(w.store.blobs.keys())


READS: dict[str, Callable[[World, str, dict], None]] = {
    "retrieve": _check_retrieve,
    "read_file": _check_read_file,
    "metadata": _check_metadata,
    "exists": _check_exists,
}
WRITES: dict[str, Callable[[World, str, dict], None]] = {
    "update_file": _check_update_file,
    "update_metadata": _check_update_metadata,
    "extend_ttl": _check_extend_ttl,
    "copy_file": _check_copy_file,
    "move_file": _check_move_file,
    "delete": _check_delete,
}
METHODS = {**READS, **WRITES}


@pytest.mark.parametrize("who", IDENTITIES)
@pytest.mark.parametrize("scope", SCOPES)
def test_access_table_holds_on_every_identity_taking_method(store: ArtifactStore, scope: str, who: str) -> None:
    """One cell of the table, on every method; each method gets its own artifact of ``scope``."""
    world = build_world(store, with_artifacts=False)
    ident = world.identity(who)
    may_read, may_write = ALLOWED[(scope, who)]
    failures: list[str] = []
    for method, check in METHODS.items():
        aid = world.add_artifact(scope, f"{method}.txt")
        allowed = may_write if method in WRITES else may_read
        before = None if allowed else world.snapshot()
        try:
            check(world, aid, ident)
        except AccessDeniedError:
            if allowed:
                failures.append(f"{method}: denied, but the table allows it")
            elif world.snapshot() != before:
                failures.append(f"{method}: denied, but changed bytes or metadata")
            continue
        if not allowed:
            failures.append(f"{method}: allowed, but the table denies it")
    assert failures == []


def test_the_access_table_covers_every_scope_and_identity() -> None:
    assert set(ALLOWED) == {(s, w) for s in SCOPES for w in IDENTITIES}


# -- storing ----------------------------------------------------------------------------------------


def test_storing_a_sandbox_artifact_without_admin_is_denied_and_stores_nothing(world):
    before = world.snapshot()
    for who in IDENTITIES:
        if who == "admin":
            continue
        ident = world.identity(who)
        with pytest.raises(AccessDeniedError):
            world.store.store(b"x", mime="text/plain", scope="sandbox", **ident)
        with pytest.raises(AccessDeniedError):
            world.store.store_batch([{"data": b"x", "mime": "text/plain"}], scope="sandbox", **ident)
        with pytest.raises(AccessDeniedError):
            world.store.write_file("x", filename="x.txt", scope="sandbox", **ident)
        assert world.snapshot() == before, who


def test_storing_a_sandbox_artifact_as_admin_is_allowed(world):
    aid = world.store.store(b"x", mime="text/plain", scope="sandbox")
    assert world.store.retrieve(aid, user_id="bob") == b"x"


def test_storing_into_another_users_session_is_denied(world):
    before = world.snapshot()
    with pytest.raises(AccessDeniedError):
        world.store.store(b"x", mime="text/plain", user_id="bob", session_id=world.sessions["alice1"])
    assert world.snapshot() == before


def test_a_user_scoped_artifact_cannot_be_stored_without_a_user(world):
    from chuk_artifacts import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        world.store.store(b"x", mime="text/plain", scope="user", session_id=world.sessions["anon"])


# -- listings ---------------------------------------------------------------------------------------


def ids(results) -> set[str]:
    return {m.artifact_id for m in results}


@pytest.mark.parametrize("method", ["list_by_session", "get_directory_contents"])
def test_listing_a_session_as_its_owner_shows_its_artifacts(world, method):
    listed = getattr(world.store, method)(world.sessions["alice1"], user_id="alice")
    assert ids(listed) == {world.artifacts["session"], world.artifacts["user"]}


@pytest.mark.parametrize("method", ["list_by_session", "get_directory_contents"])
def test_listing_a_session_as_admin_shows_its_artifacts(world, method):
    listed = getattr(world.store, method)(world.sessions["alice1"])
    assert world.artifacts["session"] in ids(listed)


@pytest.mark.parametrize("method", ["list_by_session", "get_directory_contents"])
def test_listing_another_users_session_is_denied(world, method):
    with pytest.raises(AccessDeniedError):
        getattr(world.store, method)(world.sessions["alice1"], user_id="bob")


@pytest.mark.parametrize("method", ["list_by_session", "get_directory_contents"])
def test_listing_another_session_shows_none_of_the_first_sessions_artifacts(world, method):
    for other in ("alice2", "bob", "anon"):
        listed = getattr(world.store, method)(world.sessions[other])
        assert not ids(listed) & set(world.artifacts.values())


@pytest.mark.parametrize("method", ["list_by_session", "get_directory_contents"])
def test_listing_a_shared_session_hides_other_users_user_scoped_artifacts(world, method):
    st, anon = world.store, world.sessions["anon"]
    alice_doc = st.store(b"a", mime="text/plain", session_id=anon, user_id="alice", scope="user", filename="a")
    bob_doc = st.store(b"b", mime="text/plain", session_id=anon, user_id="bob", scope="user", filename="b")
    eph = st.store(b"e", mime="text/plain", session_id=anon, filename="e")
    list_ = getattr(st, method)
    assert ids(list_(anon, user_id="alice")) == {alice_doc, eph}
    assert ids(list_(anon, user_id="bob")) == {bob_doc, eph}
    assert ids(list_(anon)) == {eph}  # the session alone may not read anyone's user-scoped files
    with pytest.raises(AccessDeniedError):
        st.retrieve(bob_doc, session_id=anon)


def test_search_returns_only_artifacts_the_caller_may_read(world):
    for who in IDENTITIES:
        ident = world.identity(who)
        for scope in (None, "session", "user", "sandbox"):
            for found in world.store.search(scope=scope, **ident):
                owner_scope = next(s for s, a in world.artifacts.items() if a == found.artifact_id)
                assert ALLOWED[(owner_scope, who)][0], (who, scope, owner_scope)


def test_search_as_the_owner_finds_the_owners_artifacts(world):
    assert ids(world.store.search(user_id="alice")) == {world.artifacts["session"], world.artifacts["user"]}
    assert ids(world.store.search(session_id=world.sessions["alice1"])) == {
        world.artifacts["session"],
        world.artifacts["user"],
    }
    assert ids(world.store.search(user_id="alice", scope="sandbox")) == {world.artifacts["sandbox"]}


def test_search_as_another_user_finds_only_shared_artifacts(world):
    assert ids(world.store.search(user_id="bob")) == set()
    assert ids(world.store.search(user_id="bob", scope="sandbox")) == {world.artifacts["sandbox"]}
    assert ids(world.store.search(session_id=world.sessions["bob"])) == set()


def test_search_as_admin_finds_everything(world):
    assert ids(world.store.search()) == set(world.artifacts.values())


def test_search_with_a_session_of_another_user_is_denied(world):
    with pytest.raises(AccessDeniedError):
        world.store.search(user_id="bob", session_id=world.sessions["alice1"])


# -- strict mode ------------------------------------------------------------------------------------


def _identity_free_calls(st: Any, aid: str, sid: str) -> dict[str, Callable[[], Any]]:
    return {
        "store": lambda: st.store(b"x", mime="text/plain"),
        "store_batch": lambda: st.store_batch([{"data": b"x", "mime": "text/plain"}]),
        "write_file": lambda: st.write_file("x", filename="x.txt"),
        "retrieve": lambda: st.retrieve(aid),
        "read_file": lambda: st.read_file(aid),
        "metadata": lambda: st.metadata(aid),
        "exists": lambda: st.exists(aid),
        "update_file": lambda: st.update_file(aid, data=b"y"),
        "update_metadata": lambda: st.update_metadata(aid, summary="y"),
        "extend_ttl": lambda: st.extend_ttl(aid, 10),
        "copy_file": lambda: st.copy_file(aid),
        "move_file": lambda: st.move_file(aid, new_filename="y"),
        "delete": lambda: st.delete(aid),
        "search": lambda: st.search(),
    }


@pytest.fixture(params=["flag", "env"])
def strict_store(request, make_store, backend, monkeypatch) -> ArtifactStore:
    if request.param == "env":
        monkeypatch.setenv("ARTIFACT_STRICT", "1")
        st = make_store(backend)
    else:
        st = make_store(backend, strict=True)
    assert st.settings.strict is True
    return st


@pytest.mark.parametrize("method", list(_identity_free_calls(None, "", "")))
def test_strict_mode_refuses_every_call_without_identity(make_store, method):
    st = make_store("memory", strict=True)
    aid = st.store(b"x", mime="text/plain", user_id="alice")
    sid = st.metadata(aid, user_id="alice").session_id
    before = (st.retrieve(aid, user_id="alice"), st.metadata(aid, user_id="alice"))
    with pytest.raises(AccessDeniedError):
        _identity_free_calls(st, aid, sid)[method]()
    after = (st.retrieve(aid, user_id="alice"), st.metadata(aid, user_id="alice"))
    assert after == before
    assert len(st.search(user_id="alice")) == 1
    assert len(list(st.blobs.keys())) == 1


def test_strict_mode_refuses_a_call_without_identity(strict_store):
    aid = strict_store.store(b"x", mime="text/plain", user_id="alice")
    with pytest.raises(AccessDeniedError):
        strict_store.retrieve(aid)
    with pytest.raises(AccessDeniedError):
        strict_store.store(b"y", mime="text/plain")
    assert [m.artifact_id for m in strict_store.search(user_id="alice")] == [aid]


def test_strict_mode_allows_calls_with_identity(strict_store):
    aid = strict_store.store(b"x", mime="text/plain", user_id="alice", scope="user")
    assert strict_store.retrieve(aid, user_id="alice") == b"x"
    sid = strict_store.create_session(user_id="alice")
    assert strict_store.retrieve(aid, session_id=sid) == b"x"
    assert [m.artifact_id for m in strict_store.search(user_id="alice")] == [aid]


def test_strict_mode_still_checks_the_identity(strict_store):
    aid = strict_store.store(b"x", mime="text/plain", user_id="alice", scope="user")
    with pytest.raises(AccessDeniedError):
        strict_store.retrieve(aid, user_id="bob")


def test_strict_mode_as_admin_can_act_without_identity(strict_store):
    admin = strict_store.as_admin()
    aid = admin.store(b"shared", mime="text/plain", scope="sandbox")
    assert admin.retrieve(aid) == b"shared"
    assert admin.update_metadata(aid, summary="s").summary == "s"
    assert [m.artifact_id for m in admin.search()] == [aid]
    assert admin.delete(aid) is True


def test_strict_mode_admin_view_does_not_leak_admin_rights_to_the_store(strict_store):
    admin = strict_store.as_admin()
    aid = admin.store(b"shared", mime="text/plain", scope="sandbox")
    with pytest.raises(AccessDeniedError):
        strict_store.retrieve(aid)


def test_strict_mode_lets_anyone_with_an_identity_read_sandbox_artifacts(strict_store):
    aid = strict_store.as_admin().store(b"shared", mime="text/plain", scope="sandbox")
    assert strict_store.retrieve(aid, user_id="bob") == b"shared"
    with pytest.raises(AccessDeniedError):
        strict_store.delete(aid, user_id="bob")


def test_strict_mode_is_off_by_default(store):
    aid = store.store(b"x", mime="text/plain", user_id="alice")
    assert store.retrieve(aid) == b"x"


# -- identity-bound views ---------------------------------------------------------------------------


def test_as_user_view_injects_the_identity(store):
    alice = store.as_user("alice")
    assert isinstance(alice, BoundStore)
    aid = alice.store(b"mine", mime="text/plain", scope="user")
    meta = alice.metadata(aid)
    assert meta.owner_id == "alice"
    assert alice.retrieve(aid) == b"mine"
    assert [m.artifact_id for m in alice.search()] == [aid]


def test_as_user_view_cannot_read_another_users_artifacts(store):
    bob_doc = store.store(b"bob", mime="text/plain", user_id="bob", scope="user")
    alice = store.as_user("alice")
    with pytest.raises(AccessDeniedError):
        alice.retrieve(bob_doc)
    with pytest.raises(AccessDeniedError):
        alice.delete(bob_doc)
    assert store.retrieve(bob_doc) == b"bob"
    assert alice.search() == []


def test_as_user_view_refuses_a_different_explicit_user_id(store):
    bob_doc = store.store(b"bob", mime="text/plain", user_id="bob", scope="user")
    alice = store.as_user("alice")
    with pytest.raises(AccessDeniedError):
        alice.retrieve(bob_doc, user_id="bob")
    with pytest.raises(AccessDeniedError):
        alice.store(b"x", mime="text/plain", user_id="bob")
    with pytest.raises(AccessDeniedError):
        alice.search(user_id="bob")
    assert store.search(user_id="bob", scope="session") == []


def test_as_user_view_accepts_its_own_user_id_passed_again(store):
    alice = store.as_user("alice")
    aid = alice.store(b"x", mime="text/plain", user_id="alice")
    assert alice.retrieve(aid, user_id="alice") == b"x"


def test_as_user_view_refuses_a_session_of_another_user(store):
    bob_session = store.create_session(user_id="bob")
    alice = store.as_user("alice")
    with pytest.raises(AccessDeniedError):
        alice.store(b"x", mime="text/plain", session_id=bob_session)
    with pytest.raises(AccessDeniedError):
        alice.list_by_session(bob_session)
    assert store.list_by_session(bob_session) == []


def test_as_user_view_works_in_strict_mode(make_store, backend):
    st = make_store(backend, strict=True)
    alice = st.as_user("alice")
    aid = alice.store(b"x", mime="text/plain")
    assert alice.read_file(aid) == b"x"
    assert alice.exists(aid) is True


def test_as_session_view_injects_the_session(store):
    sid = store.create_session(user_id="alice")
    view = store.as_session(sid)
    aid = view.store(b"x", mime="text/plain")
    assert store.metadata(aid).session_id == sid
    assert view.retrieve(aid) == b"x"
    assert [m.artifact_id for m in view.list_by_session(sid)] == [aid]


def test_as_session_view_refuses_a_different_session(store):
    sid = store.create_session(user_id="alice")
    other = store.create_session(user_id="alice")
    aid = store.store(b"x", mime="text/plain", session_id=other)
    with pytest.raises(AccessDeniedError):
        store.as_session(sid).retrieve(aid, session_id=other)


def test_closing_a_view_leaves_the_store_open(store):
    store.as_user("alice").close()
    aid = store.store(b"x", mime="text/plain", user_id="alice")
    assert store.retrieve(aid) == b"x"


def test_views_validate_their_identity(store):
    from chuk_artifacts import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        store.as_user("../bob")
    with pytest.raises(InvalidArgumentError):
        store.as_session("a/b")


def test_async_facade_views_inject_identity_too(store):
    import asyncio

    async def main() -> None:
        alice = AsyncArtifactStore(sync_store=store).as_user("alice")
        aid = await alice.store(b"x", mime="text/plain", scope="user")
        assert (await alice.metadata(aid)).owner_id == "alice"
        with pytest.raises(AccessDeniedError):
            await alice.retrieve(aid, user_id="bob")

    asyncio.run(main())
