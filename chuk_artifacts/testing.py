"""A conformance kit: pytest base classes that a storage backend or session provider plugin runs
against itself (the idea of fsspec's ``fsspec/tests/abstract``).

Subclass a base class in a test module (its name must start with ``Test``) and provide one
fixture; every ``test_*`` method of the base class then runs against your implementation::

    import pytest
    from chuk_artifacts.testing import BackendConformance, SessionProviderConformance

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def blobs(self):                      # a chuk_artifacts.blobs.Blobs ...
            return MyBlobs(...)
        # ... or instead a ``store`` fixture: an ArtifactStore on your backend

    class TestMySessions(SessionProviderConformance):
        @pytest.fixture
        def sessions(self):
            def make(sandbox_id, ttl_seconds):  # called once or more per test
                return MySessionProvider(..., sandbox_id=sandbox_id, ttl_seconds=ttl_seconds)
            yield make

Fixture contract:

- ``blobs``: an empty byte store. Without it, ``store.blobs`` is used.
- ``store``: an empty ``ArtifactStore`` on the backend. Without it, the kit builds one around
  ``blobs`` (registered for the test as a storage provider) with an in-memory catalog.
- ``sessions``: a factory ``make(sandbox_id, ttl_seconds) -> SessionProvider``. Providers made
  by one factory (within one test) must share their backing store, as two processes sharing a
  database or a Redis server do. Each test uses fresh sandbox ids. Providers read the clock through
  ``time.time()`` (the kit moves it with the ``clock`` fixture).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn, Protocol

import pytest

from .blobs import Blobs
from .errors import ArtifactNotFoundError, SessionError
from .hookspecs import hookimpl
from .models import StreamDownloadRequest, StreamUploadRequest
from .sessions import SessionProvider

if TYPE_CHECKING:
    from .config import Settings
    from .models import Row
    from .store import ArtifactStore

__all__ = [
    "BackendConformance",
    "Clock",
    "MakeProvider",
    "POSTGRES_ADMIN_URL",
    "SessionFactory",
    "SessionProviderConformance",
    "postgres_database",
    "unavailable",
]

#: The PostgreSQL server that ``postgres_database`` makes its databases on.
POSTGRES_ADMIN_URL = os.environ.get("CHUK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

_SESSION_FIELDS = {"sandbox_id", "session_id", "user_id", "created_at", "last_accessed_at", "expires_at", "ttl", "meta"}


class Clock:
    """A controllable ``time.time``: starts at the real time and moves only when told."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def unavailable(reason: str, tests: str = "these tests") -> NoReturn:
    """Skip the test with ``reason`` for a missing service; in CI (``CI`` set) fail instead,
    saying that CI must run ``tests``, so that CI cannot pass by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run {tests}, not skip them)")
    pytest.skip(reason)


@contextlib.contextmanager
def postgres_database(prefix: str = "chuk_test") -> Iterator[str]:
    """A private PostgreSQL database on ``CHUK_TEST_POSTGRES_URL`` (default 127.0.0.1:5432,
    user postgres), dropped afterwards; its SQLAlchemy URL. Without the server or psycopg the
    test skips (``unavailable``: it fails in CI)."""
    if importlib.util.find_spec("psycopg") is None:
        unavailable("psycopg is not installed (pip install 'chuk-artifacts[postgres]')", "the PostgreSQL tests")
    from sqlalchemy import create_engine, text

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        unavailable(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {type(exc).__name__}", "the PostgreSQL tests"
        )
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class _KitFixtures:
    @pytest.fixture
    def clock(self, monkeypatch: pytest.MonkeyPatch) -> Clock:
        c = Clock()
        monkeypatch.setattr(time, "time", c)
        return c


# -- storage backends --------------------------------------------------------------------------


class _OneBackend:
    """A plugin providing the fixture's ``blobs`` under a private provider name."""

    def __init__(self, name: str, blobs: Blobs) -> None:
        self.name, self.blobs = name, blobs

    @hookimpl
    def storage_providers(self) -> list[str]:
        return [self.name]

    @hookimpl
    def storage_backend(self, provider: str, settings: Settings) -> Blobs | None:
        return self.blobs if provider == self.name else None


class BackendConformance(_KitFixtures):
    """What every byte store must do, and what a store on it must do end to end."""

    @pytest.fixture
    def blobs(self, store: ArtifactStore) -> Blobs:
        return store.blobs

    @pytest.fixture
    def store(self, blobs: Blobs) -> Iterator[ArtifactStore]:
        from .plugins import ensure_plugins_loaded
        from .store import ArtifactStore

        pm = ensure_plugins_loaded()
        plugin = _OneBackend(f"conformance-{uuid.uuid4().hex[:8]}", blobs)
        pm.register(plugin, name=plugin.name)
        try:
            with ArtifactStore(storage_provider=plugin.name, catalog_url="sqlite://") as store:
                yield store
        finally:
            pm.unregister(plugin)

    # -- bytes ---------------------------------------------------------------------------

    @pytest.mark.parametrize("size", [0, 1, 1000, 3 * 1024 * 1024 + 7])
    def test_put_then_get_returns_the_same_bytes(self, blobs: Blobs, size: int) -> None:
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        blobs.put("grid/conf/a/object", data)
        assert blobs.get("grid/conf/a/object") == data

    def test_get_of_a_missing_key_raises_file_not_found(self, blobs: Blobs) -> None:
        with pytest.raises(FileNotFoundError):
            blobs.get("grid/conf/missing")
        with pytest.raises(FileNotFoundError):
            blobs.open_read("grid/conf/missing")

    def test_put_replaces_an_existing_object(self, blobs: Blobs) -> None:
        blobs.put("grid/conf/k", b"old contents")
        blobs.put("grid/conf/k", b"new")
        assert blobs.get("grid/conf/k") == b"new"

    def test_open_write_streams_and_publishes_on_close(self, blobs: Blobs) -> None:
        with blobs.open_write("grid/conf/streamed") as f:
            for _ in range(64):
                f.write(b"x" * 1024)
            assert not blobs.exists("grid/conf/streamed"), "visible before the write finished"
        assert blobs.get("grid/conf/streamed") == b"x" * 65536

    def test_a_failed_streamed_write_keeps_the_old_object(self, blobs: Blobs) -> None:
        blobs.put("grid/conf/k", b"old")
        with pytest.raises(RuntimeError), blobs.open_write("grid/conf/k") as f:
            f.write(b"partial new contents")
            raise RuntimeError("the client went away")
        assert blobs.get("grid/conf/k") == b"old"

    def test_a_failed_streamed_write_of_a_new_key_leaves_nothing(self, blobs: Blobs) -> None:
        with pytest.raises(RuntimeError), blobs.open_write("grid/conf/new") as f:
            f.write(b"partial")
            raise RuntimeError("boom")
        assert not blobs.exists("grid/conf/new")
        assert list(blobs.keys("grid/conf/")) == []

    def test_open_read_reads_in_chunks_and_seeks(self, blobs: Blobs) -> None:
        data = bytes(range(256)) * 40
        blobs.put("grid/conf/r", data)
        with blobs.open_read("grid/conf/r") as f:
            assert f.read(10) == data[:10]
            f.seek(1000)
            assert f.read(24) == data[1000:1024]
            rest = b"".join(iter(lambda: f.read(999), b""))
        assert rest == data[1024:]

    def test_copy_duplicates_the_bytes(self, blobs: Blobs) -> None:
        blobs.put("grid/conf/src", b"payload")
        blobs.copy("grid/conf/src", "grid/conf/dst")
        assert blobs.get("grid/conf/dst") == b"payload"
        assert blobs.get("grid/conf/src") == b"payload"

    def test_delete_is_idempotent(self, blobs: Blobs) -> None:
        blobs.put("grid/conf/d", b"x")
        assert blobs.delete("grid/conf/d") is True
        assert blobs.delete("grid/conf/d") is False
        with pytest.raises(FileNotFoundError):
            blobs.get("grid/conf/d")

    def test_exists_and_size(self, blobs: Blobs) -> None:
        assert blobs.exists("grid/conf/s") is False
        assert blobs.size("grid/conf/s") is None
        blobs.put("grid/conf/s", b"12345")
        assert blobs.exists("grid/conf/s") is True
        assert blobs.size("grid/conf/s") == 5

    def test_keys_lists_objects_below_a_prefix(self, blobs: Blobs) -> None:
        wanted = {"grid/conf/sessions/s1/a", "grid/conf/sessions/s1/b", "grid/conf/users/u/c"}
        for key in wanted:
            blobs.put(key, b"x")
        blobs.put("_uploads/conf/u1/00001", b"part")
        assert set(blobs.keys("grid/")) == wanted
        assert set(blobs.keys("grid/conf/sessions/")) == {k for k in wanted if "/sessions/" in k}
        assert list(blobs.keys("grid/nothing-here/")) == []

    # -- a store on the backend ----------------------------------------------------------

    def test_store_round_trip_records_size_and_sha256(self, store: ArtifactStore) -> None:
        data = b"conformance" * 100
        aid = store.store(data, mime="application/octet-stream", user_id="alice")
        meta = store.metadata(aid)
        assert store.retrieve(aid) == data
        assert (meta.bytes, meta.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert meta.storage_provider == store.storage_provider
        assert store.blobs.get(meta.key) == data

    def test_streamed_upload_and_download_round_trip(self, store: ArtifactStore) -> None:
        data = bytes(range(256)) * 4096  # 1 MiB
        aid = store.stream_upload(
            StreamUploadRequest(
                data_stream=io.BytesIO(data), mime="application/octet-stream", user_id="alice", chunk_size=65536
            )
        )
        chunks = list(store.stream_download(StreamDownloadRequest(artifact_id=aid, chunk_size=100_000)))
        assert b"".join(chunks) == data
        assert max(len(c) for c in chunks) <= 100_000

    def test_update_file_replaces_the_bytes(self, store: ArtifactStore) -> None:
        aid = store.store(b"v1", mime="text/plain", user_id="alice")
        store.update_file(aid, data=b"version two")
        assert store.retrieve(aid) == b"version two"
        assert store.metadata(aid).bytes == len(b"version two")

    def test_delete_removes_the_bytes(self, store: ArtifactStore) -> None:
        aid = store.store(b"gone soon", mime="text/plain", user_id="alice")
        key = store.metadata(aid).key
        assert store.delete(aid) is True
        assert key not in set(store.blobs.keys("grid/"))

    def test_cleanup_removes_expired_bytes(self, store: ArtifactStore, clock: Clock) -> None:
        expired = store.store(b"short-lived", mime="text/plain", user_id="alice", ttl=60)
        kept = store.store(b"kept", mime="text/plain", user_id="alice", ttl=None)
        key = store.metadata(expired).key
        clock.advance(61)
        assert store.cleanup_expired_sessions().artifacts == 1
        assert set(store.blobs.keys("grid/")) == {store.metadata(kept).key}
        assert key not in set(store.blobs.keys("grid/"))


# -- session providers -------------------------------------------------------------------------


class SessionFactory(Protocol):
    """The ``sessions`` fixture: makes a provider of one sandbox's sessions."""

    def __call__(self, *, sandbox_id: str, ttl_seconds: float) -> SessionProvider: ...


class MakeProvider(Protocol):
    """The kit's ``make`` fixture: ``make(sandbox=None, ttl=TTL)``."""

    def __call__(self, sandbox: str | None = None, ttl: float = ...) -> SessionProvider: ...


def _existing(provider: SessionProvider, session_id: str) -> Row:
    """``provider.get(session_id)`` of a session the test expects to be there."""
    row = provider.get(session_id)
    assert row is not None, f"session {session_id!r} not found"
    return row


class SessionProviderConformance(_KitFixtures):
    """What every session provider must do for ``ArtifactStore`` (see ``SessionProvider``)."""

    TTL = 3600.0

    @pytest.fixture
    def make(self, sessions: SessionFactory) -> Iterator[MakeProvider]:
        """``make(sandbox=None, ttl=TTL)``: a provider (closed after the test); a fresh sandbox
        id unless one is given, so several calls can share a sandbox."""
        made: list[SessionProvider] = []

        def build(sandbox: str | None = None, ttl: float = self.TTL) -> SessionProvider:
            provider = sessions(sandbox_id=sandbox or f"conf-{uuid.uuid4().hex[:10]}", ttl_seconds=ttl)
            made.append(provider)
            return provider

        yield build
        for provider in made:
            provider.close()

    @pytest.fixture
    def provider(self, make: MakeProvider) -> SessionProvider:
        return make()

    # -- shape ---------------------------------------------------------------------------

    def test_satisfies_the_session_provider_protocol(self, provider: SessionProvider) -> None:
        assert isinstance(provider, SessionProvider)
        assert isinstance(provider.name, str) and provider.name

    def test_create_returns_a_complete_new_session(self, provider: SessionProvider, clock: Clock) -> None:
        row = provider.create("alice")
        assert _SESSION_FIELDS <= set(row)
        assert row["created"] is True
        assert row["session_id"].startswith("sess-")
        assert row["user_id"] == "alice"
        assert row["created_at"] == pytest.approx(clock.now, abs=1e-3)
        assert row["expires_at"] - row["created_at"] == pytest.approx(self.TTL, abs=1e-3)
        assert row["ttl"] == pytest.approx(self.TTL)
        assert row["meta"] == {}

    def test_get_returns_what_create_stored(self, provider: SessionProvider) -> None:
        row = provider.create("alice", ttl_seconds=120.0, meta={"team": "red", "n": [1, 2, {"é": None}]})
        got = provider.get(row["session_id"])
        assert got is not None
        for field in _SESSION_FIELDS:
            value = got[field]
            assert value == (pytest.approx(row[field], abs=1e-3) if isinstance(value, float) else row[field])

    def test_get_of_an_unknown_session_is_none(self, provider: SessionProvider) -> None:
        assert provider.get("no-such-session") is None

    def test_a_session_without_a_user_has_user_id_none(self, provider: SessionProvider) -> None:
        row = provider.create()
        assert _existing(provider, row["session_id"])["user_id"] is None

    def test_create_with_an_explicit_id(self, provider: SessionProvider) -> None:
        assert provider.create("alice", session_id="my-session")["session_id"] == "my-session"
        assert _existing(provider, "my-session")["user_id"] == "alice"

    def test_create_refuses_an_id_that_is_live(self, provider: SessionProvider) -> None:
        provider.create("alice", session_id="taken")
        with pytest.raises(SessionError):
            provider.create("bob", session_id="taken")
        assert _existing(provider, "taken")["user_id"] == "alice"

    def test_create_replaces_an_expired_session(self, provider: SessionProvider, clock: Clock) -> None:
        provider.create("alice", session_id="reused", ttl_seconds=60.0)
        clock.advance(61)
        row = provider.create("bob", session_id="reused")
        assert row["user_id"] == "bob"
        assert _existing(provider, "reused")["user_id"] == "bob"

    # -- for_user ------------------------------------------------------------------------

    def test_for_user_creates_once_then_reuses(self, provider: SessionProvider) -> None:
        first = provider.for_user("alice")
        second = provider.for_user("alice")
        assert first.get("created") is True
        assert not second.get("created")
        assert first["session_id"] == second["session_id"]
        assert provider.count_live(time.time()) == 1

    def test_for_user_gives_each_user_their_own_session(self, provider: SessionProvider) -> None:
        a, b = provider.for_user("alice"), provider.for_user("bob")
        assert a["session_id"] != b["session_id"]
        assert (a["user_id"], b["user_id"]) == ("alice", "bob")

    def test_for_user_reuses_a_session_created_for_the_user(self, provider: SessionProvider) -> None:
        sid = provider.create("alice")["session_id"]
        assert provider.for_user("alice")["session_id"] == sid

    def test_for_user_starts_a_new_session_after_expiry(self, provider: SessionProvider, clock: Clock) -> None:
        old = provider.for_user("alice")["session_id"]
        clock.advance(self.TTL + 1)
        new = provider.for_user("alice")
        assert new["session_id"] != old
        assert new.get("created") is True

    def test_for_user_under_concurrency_yields_one_session(self, make: MakeProvider) -> None:
        sandbox = f"conf-{uuid.uuid4().hex[:10]}"
        providers = [make(sandbox) for _ in range(4)]  # like four processes sharing the backing store
        barrier = threading.Barrier(16)
        seen: list[str] = []
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                barrier.wait()
                seen.append(providers[i % 4].for_user("carol")["session_id"])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(set(seen)) == 1
        assert providers[0].count_live(time.time()) == 1

    # -- ensure / touch / live -----------------------------------------------------------

    def test_ensure_creates_an_unknown_session_with_that_id(self, provider: SessionProvider) -> None:
        row = provider.ensure("fresh-session", "alice")
        assert (row["session_id"], row["user_id"], row.get("created")) == ("fresh-session", "alice", True)
        assert provider.get("fresh-session") is not None

    def test_ensure_returns_a_live_session_as_it_is(self, provider: SessionProvider) -> None:
        sid = provider.create("alice", meta={"k": 1})["session_id"]
        row = provider.ensure(sid, "alice")
        assert not row.get("created")
        assert row["meta"] == {"k": 1}

    def test_ensure_recreates_an_expired_session(self, provider: SessionProvider, clock: Clock) -> None:
        provider.create("alice", session_id="again", ttl_seconds=60.0)
        clock.advance(61)
        row = provider.ensure("again", "alice")
        assert row.get("created") is True
        assert row["expires_at"] > clock.now

    def test_touch_slides_only_after_half_the_lifetime(self, provider: SessionProvider, clock: Clock) -> None:
        row = provider.create("alice", ttl_seconds=100.0)
        clock.advance(40)
        assert provider.touch(row, clock.now)["expires_at"] == pytest.approx(row["expires_at"], abs=1e-3)
        clock.advance(20)  # 40 s left: less than half
        slid = provider.touch(row, clock.now)
        assert slid["expires_at"] == pytest.approx(clock.now + 100.0, abs=1e-3)
        assert _existing(provider, row["session_id"])["expires_at"] == pytest.approx(clock.now + 100.0, abs=1e-3)

    def test_using_a_session_keeps_it_alive(self, provider: SessionProvider, clock: Clock) -> None:
        sid = provider.for_user("alice")["session_id"]
        for _ in range(4):
            clock.advance(self.TTL * 0.8)
            assert provider.for_user("alice")["session_id"] == sid
        assert provider.live(sid)["session_id"] == sid

    def test_live_refuses_unknown_and_expired_sessions(self, provider: SessionProvider, clock: Clock) -> None:
        sid = provider.create("alice", ttl_seconds=60.0)["session_id"]
        assert provider.live(sid)["session_id"] == sid
        with pytest.raises(ArtifactNotFoundError):
            provider.live("no-such-session")
        clock.advance(61)
        with pytest.raises(ArtifactNotFoundError):
            provider.live(sid)

    # -- update / delete -----------------------------------------------------------------

    def test_update_sets_meta_and_expiry(self, provider: SessionProvider, clock: Clock) -> None:
        sid = provider.create("alice", meta={"a": 1})["session_id"]
        later = clock.now + 2 * self.TTL
        assert provider.update(sid, {"meta": {"a": 2, "b": "ü"}, "expires_at": later, "last_accessed_at": clock.now})
        row = _existing(provider, sid)
        assert row["meta"] == {"a": 2, "b": "ü"}
        assert row["expires_at"] == pytest.approx(later, abs=1e-3)
        clock.advance(1.5 * self.TTL)
        assert provider.live(sid)["session_id"] == sid

    def test_update_of_an_unknown_session_is_false(self, provider: SessionProvider) -> None:
        assert provider.update("no-such-session", {"meta": {}}) is False
        assert provider.get("no-such-session") is None

    def test_delete_removes_the_session(self, provider: SessionProvider) -> None:
        sid = provider.for_user("alice")["session_id"]
        assert provider.delete(sid) is True
        assert provider.delete(sid) is False
        assert provider.get(sid) is None
        assert provider.for_user("alice")["session_id"] != sid

    # -- cleanup support -----------------------------------------------------------------

    def test_expired_lists_only_expired_sessions_up_to_limit(self, provider: SessionProvider, clock: Clock) -> None:
        short = {provider.create(f"u{i}", ttl_seconds=10.0)["session_id"] for i in range(3)}
        long = provider.create("v", ttl_seconds=1000.0)["session_id"]
        assert provider.expired(clock.now, 10) == []
        clock.advance(11)
        assert set(provider.expired(clock.now, 10)) == short
        assert len(provider.expired(clock.now, 2)) == 2
        assert long not in provider.expired(clock.now, 10)

    def test_delete_expired_removes_only_those_still_expired(self, provider: SessionProvider, clock: Clock) -> None:
        gone = provider.create("a", ttl_seconds=10.0)["session_id"]
        revived = provider.create("b", ttl_seconds=10.0)["session_id"]
        live = provider.create("c", ttl_seconds=1000.0)["session_id"]
        clock.advance(11)
        provider.ensure(revived, "b")  # used again after it expired: a new lifetime
        removed = provider.delete_expired([gone, revived, live], clock.now)
        assert removed == [gone]
        assert provider.expired(clock.now, 10) == []
        assert provider.get(revived) is not None and provider.get(live) is not None

    def test_count_live_counts_only_live_sessions(self, provider: SessionProvider, clock: Clock) -> None:
        provider.create("a", ttl_seconds=10.0)
        provider.create("b", ttl_seconds=1000.0)
        provider.for_user("c")
        assert provider.count_live(clock.now) == 3
        clock.advance(11)
        assert provider.count_live(clock.now) == 2

    # -- sharing and isolation -----------------------------------------------------------

    def test_providers_of_one_sandbox_share_sessions(self, make: MakeProvider) -> None:
        sandbox = f"conf-{uuid.uuid4().hex[:10]}"
        one, two = make(sandbox), make(sandbox)
        sid = one.for_user("alice")["session_id"]
        assert two.for_user("alice")["session_id"] == sid
        assert two.delete(sid) is True
        assert one.get(sid) is None

    def test_sandboxes_are_isolated(self, make: MakeProvider) -> None:
        x, y = make(), make()
        sid = x.create("alice", session_id="same-id")["session_id"]
        assert y.get(sid) is None
        assert y.create("bob", session_id="same-id")["user_id"] == "bob"
        assert _existing(x, sid)["user_id"] == "alice"
        assert x.for_user("carol")["session_id"] != y.for_user("carol")["session_id"]
        assert x.count_live(time.time()) == 2 and y.count_live(time.time()) == 2
