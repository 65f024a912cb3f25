"""A walk over EVERY public method of ``ArtifactStore``, called with a wrong identity for every
scope: each call raises ``AccessDeniedError`` (or gives the documented refusal) and changes
nothing — every catalog row of every table and every stored byte are compared before and after.

The public methods are enumerated from the class; a method that is neither in the walk table nor
exempted (with the reason) fails the test, so a new method cannot be forgotten. The same walk
runs through the async facade. ``test_access.py`` checks the allowed cells of the access table
on the per-artifact methods; this file checks the refusals on all of them.

Presigned URLs: a URL cannot be reused for another key, another upload, another part or another
HTTP method (what ``test_gateway.py`` / ``test_multipart.py`` do not already check).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactNotFoundError,
    ArtifactStore,
    AsyncArtifactStore,
    MultipartUploadCompleteRequest,
    MultipartUploadInitRequest,
    SessionError,
    StreamDownloadRequest,
    StreamUploadRequest,
)
from chuk_artifacts.aio import ASYNC_METHODS

from snapshots import snapshot  # type: ignore[import-not-found]

SCOPES = ("session", "user", "sandbox")

# -- the world: alice owns one artifact and one upload of each scope ---------------------------------


@dataclass
class World:
    store: ArtifactStore
    sessions: dict[str, str]  # alice1, alice2 (alice's), bob (bob's), anon (no user)
    artifacts: dict[str, str] = field(default_factory=dict)  # scope -> artifact id
    uploads: dict[str, str] = field(default_factory=dict)  # scope -> artifact id of a presigned upload
    multiparts: dict[str, str] = field(default_factory=dict)  # scope -> multipart upload id
    shares: dict[str, str] = field(default_factory=dict)  # artifact id -> share id of its owner's link

    def owner(self, scope: str) -> dict[str, Any]:
        """How the rightful owner names itself when creating things of ``scope``."""
        if scope == "sandbox":
            return {}
        return {"session_id": self.sessions["alice1"], **({"user_id": "alice"} if scope == "user" else {})}

    def wrong_readers(self, scope: str) -> list[dict[str, str]]:
        """Identities that may not read alice's artifact of ``scope`` (anyone reads sandbox ones)."""
        s = self.sessions
        foreign = [
            {"user_id": "bob"},
            {"session_id": s["bob"]},
            {"user_id": "bob", "session_id": s["bob"]},
            {"session_id": s["anon"]},
        ]
        if scope == "session":
            return [{"session_id": s["alice2"]}, *foreign]
        if scope == "user":
            return foreign
        return []

    def wrong_writers(self, scope: str) -> list[dict[str, str]]:
        """Identities that may not change alice's artifact (or upload) of ``scope``."""
        if scope == "sandbox":  # admin only
            s = self.sessions
            return [{"user_id": "alice"}, {"session_id": s["alice1"]}, {"user_id": "bob"}, {"session_id": s["anon"]}]
        return self.wrong_readers(scope)

    def wrong_creators(self, scope: str) -> list[dict[str, Any]]:
        """Identities (and scope) that may not create something of ``scope``: writing into a
        session of another user, or a sandbox-scoped artifact without being the admin."""
        s = self.sessions
        if scope == "sandbox":
            return [{"scope": "sandbox", **ident} for ident in self.wrong_writers("sandbox")]
        return [
            {"scope": scope, "user_id": "bob", "session_id": s["alice1"]},
            {"scope": scope, "user_id": "alice", "session_id": s["bob"]},
        ]


def build_world(store: ArtifactStore) -> World:
    w = World(
        store,
        {
            "alice1": store.create_session(user_id="alice"),
            "alice2": store.create_session(user_id="alice"),
            "bob": store.create_session(user_id="bob"),
            "anon": store.create_session(),
        },
    )
    for scope in SCOPES:
        owner = w.owner(scope)
        w.artifacts[scope] = store.store(
            f"{scope} secret".encode(),
            mime="text/plain",
            scope=scope,
            filename=f"docs/{scope}.txt",
            meta={"scope": scope},
            ttl=3600,
            **owner,
        )
        _, w.uploads[scope] = store.presign_upload(scope=scope, filename=f"{scope}.bin", **owner)
        upload = _upload_row(store, w.uploads[scope])
        store.receive_upload(upload["upload_id"], iter([b"uploaded bytes"]))  # what a PUT does
        init = store.initiate_multipart_upload(
            MultipartUploadInitRequest(filename=f"{scope}.mp", mime_type="text/plain", scope=scope, **owner)
        )
        w.multiparts[scope] = init["upload_id"]
        store.receive_part(init["upload_id"], 1, iter([b"part one"]))  # what a part PUT does
        aid = w.artifacts[scope]
        w.shares[aid] = store.share(aid, **owner).share_id
    return w


def _upload_row(store: ArtifactStore, artifact_id: str) -> dict[str, Any]:
    with store.catalog.read() as conn:
        return store.catalog.get_upload_by_artifact(conn, artifact_id)


# -- the walk table ------------------------------------------------------------------------------------
#
# Each entry: (kind, call). ``call(api, world, target, ident)`` performs the method on ``target``
# (an artifact id, upload id or scope, by kind) with the wrong identity ``ident``.
#   read     target: alice's artifact of each scope; identities: ``wrong_readers``
#   write    target: alice's artifact of each scope; identities: ``wrong_writers``
#   create   target: the scope; identities: ``wrong_creators`` (they carry ``scope``)
#   upload   target: alice's upload (artifact id) or multipart upload (upload id) of each scope
#   session  target: alice's session, named by another user (bob)

Call = Callable[[Any, World, str, dict], Any]


def _mp(w: World, scope: str) -> str:
    return w.multiparts[scope]


WALK: dict[str, tuple[str, Call]] = {
    # reads
    "retrieve": ("read", lambda api, w, aid, i: api.retrieve(aid, **i)),
    "read_file": ("read", lambda api, w, aid, i: api.read_file(aid, as_text=True, **i)),
    "metadata": ("read", lambda api, w, aid, i: api.metadata(aid, **i)),
    "exists": ("read", lambda api, w, aid, i: api.exists(aid, **i)),
    "presign": ("read", lambda api, w, aid, i: api.presign(aid, 60, **i)),
    "presign_short": ("read", lambda api, w, aid, i: api.presign_short(aid, **i)),
    "presign_medium": ("read", lambda api, w, aid, i: api.presign_medium(aid, **i)),
    "presign_long": ("read", lambda api, w, aid, i: api.presign_long(aid, **i)),
    "stream_download": (
        "read",
        lambda api, w, aid, i: list(api.stream_download(StreamDownloadRequest(artifact_id=aid, **i))),
    ),
    "share": ("read", lambda api, w, aid, i: api.share(aid, **i)),
    # the owner's link is not listed to the wrong reader (whole listing, then the artifact's)
    "list_shares": (
        "read",
        lambda api, w, aid, i: (
            [s for s in api.list_shares(**i) if s.artifact_id == aid] + api.list_shares(aid, include_inactive=True, **i)
        ),
    ),
    # writes
    "update_file": ("write", lambda api, w, aid, i: api.update_file(aid, data=b"evil", meta={"evil": 1}, **i)),
    "update_metadata": (
        "write",
        lambda api, w, aid, i: api.update_metadata(aid, summary="evil", meta={"evil": 1}, **i),
    ),
    "extend_ttl": ("write", lambda api, w, aid, i: api.extend_ttl(aid, 100, **i)),
    "copy_file": ("write", lambda api, w, aid, i: api.copy_file(aid, new_filename="stolen.txt", **i)),
    "move_file": ("write", lambda api, w, aid, i: api.move_file(aid, new_filename="moved.txt", **i)),
    "delete": ("write", lambda api, w, aid, i: api.delete(aid, **i)),
    "revoke_share": ("write", lambda api, w, aid, i: api.revoke_share(w.shares[aid], **i)),
    "write_file": (
        "write",
        lambda api, w, aid, i: api.write_file("evil", filename="e.txt", overwrite_artifact_id=aid, **i),
    ),
    # creating something in a place the caller does not own
    "store": ("create", lambda api, w, scope, i: api.store(b"evil", mime="text/plain", **i)),
    "store_batch": ("create", lambda api, w, scope, i: api.store_batch([{"data": b"evil", "mime": "text/plain"}], **i)),
    "stream_upload": (
        "create",
        lambda api, w, scope, i: api.stream_upload(StreamUploadRequest([b"evil"], mime="text/plain", **i)),
    ),
    "presign_upload": ("create", lambda api, w, scope, i: api.presign_upload(filename="e.bin", **i)),
    "presign_upload_and_register": (
        "create",
        lambda api, w, scope, i: api.presign_upload_and_register(mime="text/plain", **i),
    ),
    "initiate_multipart_upload": (
        "create",
        lambda api, w, scope, i: api.initiate_multipart_upload(
            MultipartUploadInitRequest(filename="e.bin", mime_type="text/plain", **i)
        ),
    ),
    # someone else's uploads
    "register_uploaded_artifact": (
        "upload",
        lambda api, w, scope, i: api.register_uploaded_artifact(w.uploads[scope], **i),
    ),
    "get_part_upload_url": ("upload", lambda api, w, scope, i: api.get_part_upload_url(_mp(w, scope), 2, **i)),
    "complete_multipart_upload": (
        "upload",
        lambda api, w, scope, i: api.complete_multipart_upload(
            MultipartUploadCompleteRequest(
                upload_id=_mp(w, scope), parts=[{"PartNumber": 1, "ETag": _etag(w, scope)}], **i
            )
        ),
    ),
    "abort_multipart_upload": ("upload", lambda api, w, scope, i: api.abort_multipart_upload(_mp(w, scope), **i)),
    # someone else's session (or its listing), named with another user
    "list_by_session": ("session", lambda api, w, sid, i: api.list_by_session(sid, **i)),
    "get_directory_contents": ("session", lambda api, w, sid, i: api.get_directory_contents(sid, "docs/", **i)),
    "search": ("session", lambda api, w, sid, i: api.search(session_id=sid, **i)),
    "get_session_info": ("session", lambda api, w, sid, i: api.get_session_info(sid, **i)),
    "update_session_metadata": ("session", lambda api, w, sid, i: api.update_session_metadata(sid, {"evil": 1}, **i)),
    "extend_session_ttl": ("session", lambda api, w, sid, i: api.extend_session_ttl(sid, 1, **i)),
    "delete_session": ("session", lambda api, w, sid, i: api.delete_session(sid, **i)),
    "validate_session": ("session", lambda api, w, sid, i: api.validate_session(sid, **i)),
    "create_session": ("session", lambda api, w, sid, i: api.create_session(session_id=sid, **i)),
    # identity-bound views acting for the wrong identity (or naming another one)
    "as_user": (
        "write",
        lambda api, w, aid, i: _view_call(
            api.as_user(i["user_id"]) if "user_id" in i else api.as_session(i["session_id"]), aid
        ),
    ),
    "as_session": (
        "write",
        lambda api, w, aid, i: _view_call(
            api.as_session(i["session_id"]) if "session_id" in i else api.as_user(i["user_id"]), aid
        ),
    ),
}

#: Refusals other than ``AccessDeniedError``, as documented.
OUTCOMES: dict[str, Any] = {
    # a yes/no question: a session that is not yours is not a valid session for you
    "validate_session": ("returns", False),
    # a live session id cannot be taken over: refused as already existing
    "create_session": ("raises", (AccessDeniedError, SessionError)),
    # a listing of the caller's own links: the owner's is not among them
    "list_shares": ("returns", []),
}

#: Public methods that take no identity, each with the reason it needs no walk.
EXEMPT = {
    "as_admin": "the explicit admin view: acting without identity is its purpose",
    "close": "releases this store's own resources",
    "get_stats": "application-level counts; takes no identity",
    "validate_configuration": "application-level health check; takes no identity",
    "cleanup_expired_sessions": "application-level sweep (admin); takes no identity",
    "reindex": "application-level rebuild of the full-text index (admin); takes no identity",
    "parse_grid_key": "pure string parsing; reads and changes nothing",
    "get_canonical_prefix": "pure string building; reads and changes nothing",
    "generate_artifact_key": "pure string building; reads and changes nothing",
    "usage": "reports the totals of the user it names; there is no second identity to be wrong",
    "runs_inline": "says whether a call may run on an event loop; reads and changes nothing",
    "signed_blob": "the gateway's: a signed URL (tests/test_gateway.py) authorised the key",
    "receive_upload": "the gateway's: a signed upload URL (tests/test_gateway.py) authorised it",
    "receive_part": "the gateway's: a signed part URL (tests/test_multipart.py) authorised it",
    "open_share": "the gateway's: the link's token authorised it, and the creator's read is "
    "checked again (tests/test_shares.py)",
}
#: Exempt methods that still take a parameter named like an identity (as a plain value).
EXEMPT_WITH_ID_PARAMETER = {"get_canonical_prefix", "generate_artifact_key", "usage"}


def _view_call(view: Any, aid: str) -> Any:
    """A view acting for the wrong identity tries to read and then delete alice's artifact."""
    view.metadata(aid)
    return view.delete(aid)


def _etag(w: World, scope: str) -> str:
    with w.store.catalog.read() as conn:
        return w.store.catalog.get_parts(conn, w.multiparts[scope])[1]["etag"]


def cases(w: World, method: str) -> list[tuple[str, str, dict]]:
    """(label, target, wrong identity) for every scope."""
    kind, _ = WALK[method]
    out = []
    for scope in SCOPES:
        if kind == "read":
            out += [(scope, w.artifacts[scope], i) for i in w.wrong_readers(scope)]
        elif kind == "write":
            out += [(scope, w.artifacts[scope], i) for i in w.wrong_writers(scope)]
        elif kind == "create":
            out += [(scope, scope, i) for i in w.wrong_creators(scope)]
        elif kind == "upload":
            out += [(scope, scope, i) for i in w.wrong_writers(scope)]
    if kind == "session":  # sessions have no scope: alice's sessions named by bob
        out += [(name, w.sessions[name], {"user_id": "bob"}) for name in ("alice1", "alice2")]
    return out


def public_methods() -> set[str]:
    return {
        name
        for name in dir(ArtifactStore)
        if not name.startswith("_") and inspect.isfunction(inspect.getattr_static(ArtifactStore, name))
    }


# -- the guards: nothing public is left out ----------------------------------------------------------


def test_every_public_method_is_walked_or_exempted_with_a_reason():
    public = public_methods()
    assert public - set(WALK) - set(EXEMPT) == set(), "add the new method to WALK (or EXEMPT, with the reason)"
    assert (set(WALK) | set(EXEMPT)) - public == set(), "the table names a method that no longer exists"
    assert set(WALK) & set(EXEMPT) == set()


def test_an_exempt_method_takes_no_identity():
    for name in set(EXEMPT) - EXEMPT_WITH_ID_PARAMETER:
        params = inspect.signature(getattr(ArtifactStore, name)).parameters
        assert not {"user_id", "session_id"} & set(params), f"{name} takes an identity: walk it"


def test_every_walked_kind_has_cases():
    with ArtifactStore() as store:
        w = build_world(store)
        for method in WALK:
            assert cases(w, method), method


# -- the walk ------------------------------------------------------------------------------------------


class ViaAsync:
    """The async facade driven synchronously, so the same walk runs through it."""

    def __init__(self, astore: AsyncArtifactStore) -> None:
        self._astore = astore

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._astore, name)
        if name == "stream_download":

            async def collect(request: Any) -> list[bytes]:
                return [chunk async for chunk in attr(request)]

            return lambda request: asyncio.run(collect(request))
        if name in ("as_user", "as_session", "as_admin"):
            return lambda *a, **k: ViaAsync(attr(*a, **k))
        if inspect.iscoroutinefunction(attr):
            return lambda *a, **k: asyncio.run(attr(*a, **k))
        return attr


def walk(api: Any, w: World, method: str) -> list[str]:
    """Run every wrong-identity case of ``method``; the failures, described."""
    _, call = WALK[method]
    how, expected = OUTCOMES.get(method, ("raises", (AccessDeniedError,)))
    failures = []
    for label, target, ident in cases(w, method):
        before = snapshot(w.store)
        where = f"{method} [{label}] as {ident}"
        try:
            result = call(api, w, target, ident)
        except Exception as exc:  # noqa: BLE001 - sorted out below
            if how != "raises" or not isinstance(exc, expected):
                failures.append(f"{where}: raised {type(exc).__name__}: {exc}")
                continue
        else:
            if how == "raises":
                failures.append(f"{where}: ALLOWED (returned {result!r:.80})")
                continue
            if result != expected:
                failures.append(f"{where}: returned {result!r:.80}, expected {expected!r}")
        after = snapshot(w.store)
        if after != before:
            changed = [t for t in before[0] if before[0][t] != after[0][t]]
            blobs = sorted(set(before[1].items()) ^ set(after[1].items()))
            failures.append(f"{where}: refused but changed tables {changed} / objects {blobs}")
    return failures


@pytest.fixture(params=["memory", "filesystem"])
def world(request, make_store) -> World:
    return build_world(make_store(request.param))


@pytest.mark.parametrize("method", sorted(WALK))
def test_a_wrong_identity_is_refused_and_changes_nothing(world, method):
    assert walk(world.store, world, method) == []


@pytest.mark.parametrize("method", sorted(WALK))
def test_the_async_facade_refuses_the_same_and_changes_nothing(make_store, method):
    store = make_store("memory")
    w = build_world(store)
    assert walk(ViaAsync(AsyncArtifactStore(sync_store=store)), w, method) == []


def test_every_public_method_that_does_io_is_awaitable_on_the_async_facade():
    """The facade threads every public method that touches the catalog or the bytes, so no
    call (``usage`` included) can block the event loop or fail to be awaited."""
    sync_only = {
        "parse_grid_key",
        "get_canonical_prefix",
        "generate_artifact_key",
        "as_user",
        "as_session",
        "as_admin",
        "stream_download",
        "runs_inline",  # stream_download returns an async iterator
        "signed_blob",
        "receive_upload",
        "receive_part",
        "open_share",
    }  # what a (sync) gateway calls
    for name in public_methods() - sync_only:
        assert inspect.iscoroutinefunction(getattr(AsyncArtifactStore, name, None)), name
    assert set(ASYNC_METHODS) <= public_methods()

    async def main() -> list[Any]:
        async with AsyncArtifactStore() as astore:
            aid = await astore.store(b"x", mime="text/plain", user_id="alice", scope="user")
            # every threaded method that needs no target, awaited for real
            return [
                await astore.get_stats(),
                await astore.validate_configuration(),
                await astore.metadata(aid),
                *([await astore.usage(user_id="alice")] if "usage" in ASYNC_METHODS else []),
            ]

    assert len(asyncio.run(main())) >= 3


# -- presigned URLs cannot be reused for another key, upload, part or method -----------------------------


@pytest.fixture
def gw(serve):
    return serve("filesystem")


def with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


@pytest.mark.parametrize("method", ["DELETE", "POST", "PATCH", "OPTIONS", "PROPFIND"])
def test_a_download_url_works_for_get_and_head_only(gw, http, method):
    aid = gw.store.store(b"keep me", mime="text/plain", user_id="alice")
    url = gw.store.presign(aid)
    assert http("HEAD", url).status == 200
    r = http(method, url, data=b"evil" if method in ("POST", "PATCH") else None)
    assert r.status == 403
    assert b"keep me" not in r.body
    assert gw.store.retrieve(aid) == b"keep me"
    assert http("GET", url).body == b"keep me"


def test_a_download_url_cannot_be_moved_to_another_artifact_of_the_same_owner(gw, http):
    mine = gw.store.store(b"first", mime="text/plain", user_id="alice")
    other = gw.store.store(b"second", mime="text/plain", user_id="alice")
    url = gw.store.presign(mine, user_id="alice")
    r = http("GET", with_path(url, "/blob/" + gw.store.metadata(other).key))
    assert r.status == 403 and b"second" not in r.body


@pytest.mark.parametrize("suffix", ["/", "/.", "/..", "//", "%2F..%2F" + "x", "%00", ";x", "/../" + "x"])
def test_a_download_url_cannot_be_stretched_to_a_neighbouring_path(gw, http, suffix):
    aid = gw.store.store(b"secret", mime="text/plain", user_id="alice")
    neighbour = gw.store.store(b"neighbour", mime="text/plain", user_id="alice")
    url = gw.store.presign(aid)
    path = urlsplit(url).path
    r = http("GET", with_path(url, path + suffix))
    assert r.status in (403, 404)
    assert b"neighbour" not in r.body and b"secret" not in r.body
    assert gw.store.retrieve(neighbour) == b"neighbour"


def test_an_upload_url_cannot_read_the_artifact_it_creates(gw, http):
    url, aid = gw.store.presign_upload(user_id="alice", filename="a.bin")
    assert http("PUT", url, data=b"uploaded").status == 200
    gw.store.register_uploaded_artifact(aid, user_id="alice")
    key = gw.store.metadata(aid).key
    for method in ("GET", "HEAD"):
        r = http(method, with_path(url, "/blob/" + key))
        assert r.status == 403 and b"uploaded" not in r.body


def test_an_upload_url_cannot_change_a_registered_artifact(gw, http):
    url, aid = gw.store.presign_upload(user_id="alice", filename="a.bin")
    assert http("PUT", url, data=b"registered bytes").status == 200
    gw.store.register_uploaded_artifact(aid, user_id="alice")
    r = http("PUT", url, data=b"replacement")
    assert r.status >= 400
    assert gw.store.retrieve(aid) == b"registered bytes"
    assert gw.store.metadata(aid).sha256 == hashlib.sha256(b"registered bytes").hexdigest()


def _multipart(store: ArtifactStore) -> str:
    return store.initiate_multipart_upload(
        MultipartUploadInitRequest(filename="m.bin", mime_type="application/octet-stream", user_id="alice")
    )["upload_id"]


def test_a_part_url_cannot_be_used_for_another_upload(gw, http):
    first, second = _multipart(gw.store), _multipart(gw.store)
    url = gw.store.get_part_upload_url(first, 1, user_id="alice")
    r = http("PUT", with_path(url, f"/upload/{second}/part/1"), data=b"smuggled")
    assert r.status == 403
    with gw.store.catalog.read() as conn:
        assert gw.store.catalog.get_parts(conn, second) == {}
    assert list(gw.store.blobs.keys(f"_uploads/{gw.store.sandbox_id}/{second}/")) == []


def test_a_part_url_cannot_be_used_as_the_upload_itself_or_with_another_method(gw, http):
    upload_id = _multipart(gw.store)
    url = gw.store.get_part_upload_url(upload_id, 1, user_id="alice")
    assert http("PUT", with_path(url, f"/upload/{upload_id}"), data=b"whole").status == 403
    for method in ("GET", "POST", "DELETE"):
        assert http(method, url, data=b"x" if method == "POST" else None).status == 403
    with gw.store.catalog.read() as conn:
        assert gw.store.catalog.get_parts(conn, upload_id) == {}


def test_an_upload_url_cannot_be_used_as_a_part_url(gw, http):
    url, aid = gw.store.presign_upload(user_id="alice", filename="a.bin")
    upload_id = urlsplit(url).path.rsplit("/", 1)[-1]
    r = http("PUT", with_path(url, f"/upload/{upload_id}/part/1"), data=b"part")
    assert r.status == 403
    with pytest.raises(ArtifactNotFoundError):
        gw.store.register_uploaded_artifact(aid, user_id="alice")
