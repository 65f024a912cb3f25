"""The plugin system: every hook exercised by a ``test_hook_<name>`` test (a meta-test checks
that), entry-point discovery of the first-party plugin distributions, the environment switches
and the "unknown provider" messages."""

from __future__ import annotations

import ast
import inspect
import io
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactStore,
    InvalidArgumentError,
    MultipartUploadCompleteRequest,
    MultipartUploadInitRequest,
    MultipartUploadPart,
    StreamUploadRequest,
    hookspecs,
    plugins,
)
from chuk_artifacts.access import Caller
from chuk_artifacts.blobs import MemoryBlobs
from chuk_artifacts.cli import cli as admin_cli
from chuk_artifacts.config import PluginSettings
from chuk_artifacts.hookspecs import hookimpl
from chuk_artifacts.plugins import (
    DEFAULT_PLUGINS,
    ensure_plugins_loaded,
    known_providers,
    known_session_providers,
)
from chuk_artifacts.sessions import CatalogSessions

ROOT = Path(__file__).resolve().parent.parent
HOOK_NAMES = sorted(
    name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "chuk_artifacts_spec")
)
FIRST_PARTY = {
    "redis": ("chuk-artifacts-redis", "chuk_artifacts_redis.plugin"),
    "audit": ("chuk-artifacts-audit", "chuk_artifacts_audit.plugin"),
    "mcp": ("chuk-artifacts-mcp", "chuk_artifacts_mcp.plugin"),
}


@pytest.fixture
def register() -> Iterator[Callable[..., Any]]:
    """``register(plugin)``: register a plugin object for the duration of the test."""
    pm = ensure_plugins_loaded()
    added: list[Any] = []

    def add(plugin: Any) -> Any:
        pm.register(plugin, name=f"test-plugin-{uuid.uuid4().hex[:8]}")
        added.append(plugin)
        return plugin

    yield add
    for plugin in added:
        pm.unregister(plugin)


@pytest.fixture
def only_builtins() -> Iterator[None]:
    """Take every non-built-in plugin (installed entry points included) out for the test."""
    pm = ensure_plugins_loaded()
    others = [(n, p) for n, p in pm.list_name_plugin() if n not in DEFAULT_PLUGINS and p is not None]
    for _, plugin in others:
        pm.unregister(plugin)
    yield
    for name, plugin in others:
        pm.register(plugin, name=name)


class Recorder:
    """Records every lifecycle event as (event, id, caller, extra)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, Any, Any]] = []

    def of(self, event: str) -> list[tuple[str, Any, Any, Any]]:
        return [e for e in self.events if e[0] == event]

    @hookimpl
    def artifact_stored(self, store: Any, metadata: Any, caller: Caller) -> None:
        self.events.append(("artifact_stored", metadata.artifact_id, caller, metadata))

    @hookimpl
    def artifact_updated(self, store: Any, metadata: Any, caller: Caller) -> None:
        self.events.append(("artifact_updated", metadata.artifact_id, caller, metadata))

    @hookimpl
    def artifact_deleted(self, store: Any, metadata: Any, caller: Caller) -> None:
        self.events.append(("artifact_deleted", metadata.artifact_id, caller, metadata))

    @hookimpl
    def artifact_expired(self, store: Any, metadata: Any, caller: Caller) -> None:
        self.events.append(("artifact_expired", metadata.artifact_id, caller, metadata))

    @hookimpl
    def session_created(self, store: Any, session_id: str, user_id: str | None, caller: Caller) -> None:
        self.events.append(("session_created", session_id, caller, user_id))

    @hookimpl
    def session_deleted(self, store: Any, session_id: str, caller: Caller, expired: bool) -> None:
        self.events.append(("session_deleted", session_id, caller, expired))

    @hookimpl
    def access_denied(
        self,
        store: Any,
        action: str,
        caller: Caller,
        artifact_id: str | None,
        session_id: str | None,
        reason: str,
    ) -> None:
        self.events.append(("access_denied", artifact_id, caller, (action, session_id, reason)))

    @hookimpl
    def share_created(self, store: Any, share: Any, caller: Caller) -> None:
        self.events.append(("share_created", share.share_id, caller, share))

    @hookimpl
    def share_used(self, store: Any, share: Any) -> None:
        self.events.append(("share_used", share.share_id, None, share))

    @hookimpl
    def share_revoked(self, store: Any, share: Any, caller: Caller) -> None:
        self.events.append(("share_revoked", share.share_id, caller, share))


@pytest.fixture
def recorder(register: Callable[..., Any]) -> Recorder:
    return register(Recorder())


# -- the meta-tests --------------------------------------------------------------------------


def test_every_hookspec_has_a_test() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    missing = [name for name in HOOK_NAMES if f"def test_hook_{name}(" not in sources]
    assert not missing, f"hookspecs without a test_hook_<name> test: {missing}"


def test_the_hook_list_is_what_the_issue_asks_for() -> None:
    assert set(HOOK_NAMES) == {
        "storage_providers",
        "storage_backend",
        "session_providers",
        "session_provider",
        "presigner",
        "prepare_connection",
        "artifact_stored",
        "artifact_updated",
        "artifact_deleted",
        "artifact_expired",
        "session_created",
        "session_deleted",
        "access_denied",
        "share_created",
        "share_used",
        "share_revoked",
        "register_commands",
        "extract_text",
    }


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hookspec_has_a_summary_and_documents_every_parameter(name: str) -> None:
    spec = getattr(hookspecs, name)
    doc = inspect.getdoc(spec) or ""
    assert doc and doc.splitlines()[0].endswith("."), f"{name}: needs a one-line summary"
    for param in inspect.signature(spec).parameters:
        assert f":param {param}:" in doc, f"{name}: parameter {param} is undocumented"


def test_firstresult_where_one_answer_is_wanted() -> None:
    first = {n for n in HOOK_NAMES if getattr(hookspecs, n).chuk_artifacts_spec.get("firstresult")}
    assert first == {"storage_backend", "session_provider", "presigner", "extract_text"}


def test_builtins_are_registered_like_plugins() -> None:
    names = dict(ensure_plugins_loaded().list_name_plugin())
    for name in DEFAULT_PLUGINS:
        assert name in names
    assert names["chuk_artifacts.builtin_sessions"].__name__ == "chuk_artifacts.builtin_sessions"


# -- storage backend -------------------------------------------------------------------------


class ScratchBackend:
    @hookimpl
    def storage_providers(self) -> list[str]:
        return ["scratch"]

    @hookimpl
    def storage_backend(self, provider: str, settings: Any) -> Any:
        return MemoryBlobs() if provider == "scratch" else None


def test_hook_storage_providers(register: Callable[..., Any]) -> None:
    assert {"memory", "filesystem"} <= set(known_providers())
    register(ScratchBackend())
    assert "scratch" in known_providers()


def test_hook_storage_backend(register: Callable[..., Any]) -> None:
    register(ScratchBackend())
    with ArtifactStore(storage_provider="scratch") as store:
        aid = store.store(b"via a plugin", mime="text/plain")
        assert store.retrieve(aid) == b"via a plugin"
        assert store.storage_provider == "memory"  # the Blobs' own name
        assert isinstance(store.blobs, MemoryBlobs)


def test_unknown_storage_provider_lists_known_ones_and_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        ArtifactStore(storage_provider="nosuch")
    message = str(info.value)
    assert message.startswith("unknown storage provider 'nosuch'; known: ")
    assert message.split("known: ")[1].split(", ") == known_providers()
    assert {"filesystem", "memory"} <= set(known_providers())
    monkeypatch.setitem(plugins.PROVIDER_HINTS, "nosuch", "pip install chuk-artifacts-nosuch")
    with pytest.raises(InvalidArgumentError, match=r"\('nosuch' needs: pip install chuk-artifacts-nosuch\)$"):
        ArtifactStore(storage_provider="nosuch")


# -- session provider ------------------------------------------------------------------------


class CountingSessions(CatalogSessions):
    """The catalog provider under another name, counting the calls the store makes."""

    name = "counting"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls: list[str] = []

    def for_user(self, user_id: str) -> Any:
        self.calls.append("for_user")
        return super().for_user(user_id)

    def close(self) -> None:
        self.calls.append("close")


class CountingProvider:
    def __init__(self) -> None:
        self.made: list[CountingSessions] = []

    @hookimpl
    def session_providers(self) -> list[str]:
        return ["counting"]

    @hookimpl
    def session_provider(self, name: str, settings: Any, catalog: Any, sandbox_id: str) -> Any:
        if name != "counting":
            return None
        self.made.append(CountingSessions(catalog, sandbox_id, settings.session_ttl_seconds))
        return self.made[-1]


def test_hook_session_providers(register: Callable[..., Any]) -> None:
    assert "catalog" in known_session_providers()
    register(CountingProvider())
    assert "counting" in known_session_providers()


def test_hook_session_provider(register: Callable[..., Any]) -> None:
    plugin = register(CountingProvider())
    with ArtifactStore(session_provider="counting", sandbox_id="box") as store:
        (sessions,) = plugin.made
        assert store.sessions is sessions and sessions.sandbox_id == "box"
        aid = store.store(b"x", mime="text/plain", user_id="alice")
        assert sessions.calls == ["for_user"]
        assert store.session_provider == "counting"
        assert store.metadata(aid).session_provider == "counting"
        assert store.get_stats()["session_provider"] == "counting"
    assert sessions.calls[-1] == "close"


def test_the_default_session_provider_is_the_catalog_one_and_memory_is_its_alias() -> None:
    for name in (None, "catalog", "memory"):
        with ArtifactStore(session_provider=name) as store:
            assert isinstance(store.sessions, CatalogSessions)
            assert store.session_provider == "catalog"


def test_unknown_session_provider_lists_known_ones() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        ArtifactStore(session_provider="mongo")
    message = str(info.value)
    assert "unknown session provider 'mongo'" in message
    assert "catalog" in message


def test_unknown_session_provider_opens_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        ArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path / "fs"), session_provider="mongo")
    assert not (tmp_path / "fs").exists()


def test_a_session_provider_missing_methods_is_refused(register: Callable[..., Any]) -> None:
    class Broken:
        @hookimpl
        def session_providers(self) -> list[str]:
            return ["broken"]

        @hookimpl
        def session_provider(self, name: str, settings: Any, catalog: Any, sandbox_id: str) -> Any:
            return object() if name == "broken" else None

    register(Broken())
    with pytest.raises(TypeError, match="SessionProvider"):
        ArtifactStore(session_provider="broken")


# -- presigner and catalog connections --------------------------------------------------------


def test_hook_presigner(register: Callable[..., Any]) -> None:
    class Fixed:
        name = "fixed"

        def download_url(self, row: Any, expires: int) -> str:
            return f"https://cdn.example/{row['artifact_id']}?e={expires}"

        def upload_url(self, upload: Any, expires: int) -> str:
            return f"https://cdn.example/up/{upload['upload_id']}"

        def part_url(self, upload: Any, part_number: int, expires: int) -> str:
            return f"https://cdn.example/up/{upload['upload_id']}/{part_number}"

    class FixedPresigner:
        @hookimpl(tryfirst=True)
        def presigner(self, store: Any) -> Any:
            return Fixed()

    with ArtifactStore() as store:
        aid = store.store(b"x", mime="text/plain")
        assert store.presign(aid).startswith("http://127.0.0.1:8787/")  # the built-in HMAC one
    register(FixedPresigner())
    with ArtifactStore() as store:
        aid = store.store(b"x", mime="text/plain")
        assert store.presign(aid, 60) == f"https://cdn.example/{aid}?e=60"


def test_hook_prepare_connection(register: Callable[..., Any], tmp_path: Path) -> None:
    seen: list[str] = []

    class Pragmas:
        @hookimpl
        def prepare_connection(self, dbapi_connection: Any, dialect: str) -> None:
            seen.append(dialect)
            dbapi_connection.execute("PRAGMA cache_size=-4096")

    register(Pragmas())
    with ArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path)) as store:
        store.store(b"x", mime="text/plain")
        with store.catalog.read() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -4096
    assert seen and set(seen) == {"sqlite"}


# -- full-text search ------------------------------------------------------------------------


def test_hook_extract_text(register: Callable[..., Any]) -> None:
    seen: list[tuple[str, bytes, bool]] = []

    class FakePdf:
        @hookimpl
        def extract_text(self, mime: str, filename: str | None, data: bytes, complete: bool) -> str | None:
            seen.append((mime, data, complete))
            return "zanzibar invoice and more" if mime == "application/pdf" else None

    register(FakePdf())
    with ArtifactStore(text_index_bytes=16) as store:
        pdf = store.store(b"%PDF-1.7 binary and more", mime="application/pdf", filename="a.pdf")
        text = store.store(b"plain words and more here", mime="text/plain")
        assert [hit.artifact_id for hit in store.search(text="zanzibar")] == [pdf]
        assert [hit.artifact_id for hit in store.search(text="plain")] == [text]  # the built-in, after it
        assert store.search(text="here") == []  # past text_index_bytes, of the bytes
        assert store.search(text="more") == []  # and of the text a plugin returns
    assert ("application/pdf", b"%PDF-1.7 binary ", False) in seen


def test_hook_extract_text_failing_indexes_the_artifact_without_its_content(register: Callable[..., Any]) -> None:
    class Broken:
        @hookimpl
        def extract_text(self, mime: str, filename: str | None, data: bytes, complete: bool) -> str | None:
            raise RuntimeError("extractor crashed")

    register(Broken())
    with ArtifactStore() as store:
        artifact_id = store.store(b"body words", mime="text/plain", summary="kept summary")
        assert store.read_file(artifact_id) == b"body words"
        assert [hit.artifact_id for hit in store.search(text="kept")] == [artifact_id]
        assert store.search(text="body") == []


# -- lifecycle events ------------------------------------------------------------------------


def _upload_id(url: str) -> str:
    return url.split("/upload/", 1)[1].split("?", 1)[0].split("/", 1)[0]


def test_hook_artifact_stored(recorder: Recorder) -> None:
    with ArtifactStore() as store:
        one = store.store(b"1", mime="text/plain", user_id="alice")
        batch = store.store_batch([{"data": b"a", "mime": "text/plain"}] * 2, user_id="alice")
        streamed = store.stream_upload(StreamUploadRequest(data_stream=io.BytesIO(b"s"), mime="text/plain"))
        copied = store.copy_file(one, user_id="alice")
        url, presigned = store.presign_upload_and_register(mime="text/plain", user_id="bob")
        store.receive_upload(_upload_id(url), iter([b"uploaded"]))
        init = store.initiate_multipart_upload(
            MultipartUploadInitRequest(filename="f", mime_type="text/plain", user_id="carol")
        )
        part = store.get_part_upload_url(init["upload_id"], 1, user_id="carol")
        etag = store.receive_part(_upload_id(part), 1, iter([b"part"]))
        multipart = store.complete_multipart_upload(
            MultipartUploadCompleteRequest(init["upload_id"], [MultipartUploadPart(1, etag)], user_id="carol")
        )
    stored = recorder.of("artifact_stored")
    assert [e[1] for e in stored] == [one, *batch, streamed, copied, presigned, multipart]
    assert stored[0][2] == Caller("alice", None)
    assert stored[0][3].bytes == 1 and stored[0][3].owner_id == "alice"
    assert stored[3][2] == Caller()  # no identity: the application
    assert stored[5][2].user_id == "bob"  # finished through a signed URL issued to bob
    assert stored[6][2].user_id == "carol"


def test_hook_artifact_updated(recorder: Recorder) -> None:
    with ArtifactStore() as store:
        aid = store.store(b"1", mime="text/plain", user_id="alice", ttl=60)
        store.update_file(aid, data=b"22", user_id="alice")
        store.update_metadata(aid, summary="s", user_id="alice")
        store.extend_ttl(aid, 60, user_id="alice")
        store.move_file(aid, new_filename="renamed.txt", user_id="alice")
    updated = recorder.of("artifact_updated")
    assert [e[1] for e in updated] == [aid] * 4
    assert [e[3].version for e in updated] == [2, 3, 4, 5]
    assert updated[0][3].bytes == 2 and updated[-1][3].filename == "renamed.txt"
    assert {e[2] for e in updated} == {Caller("alice", None)}


def test_hook_artifact_deleted(recorder: Recorder) -> None:
    with ArtifactStore() as store:
        aid = store.store(b"1", mime="text/plain", user_id="alice", filename="a.txt")
        assert store.delete(aid, user_id="alice") is True
        assert store.delete(aid, user_id="alice") is False  # nothing deleted: no event
        sid = store.create_session(user_id="bob")
        in_session = store.store(b"2", mime="text/plain", session_id=sid)
        store.delete_session(sid, user_id="bob")
    deleted = recorder.of("artifact_deleted")
    assert [e[1] for e in deleted] == [aid, in_session]
    assert deleted[0][3].filename == "a.txt" and deleted[0][2] == Caller("alice", None)
    assert deleted[1][2] == Caller("bob", sid)


def test_hook_artifact_expired(recorder: Recorder, clock: Any) -> None:
    with ArtifactStore() as store:
        short = store.store(b"1", mime="text/plain", user_id="alice", ttl=60)
        store.store(b"2", mime="text/plain", user_id="alice", ttl=None)
        sid = store.create_session(user_id="bob", ttl_hours=1)
        with_session = store.store(b"3", mime="text/plain", session_id=sid, ttl=None)
        clock.advance(3601)
        store.cleanup_expired_sessions()
    expired = recorder.of("artifact_expired")
    assert [e[1] for e in expired] == [short, with_session]
    assert {e[2] for e in expired} == {Caller()}
    assert not recorder.of("artifact_deleted")


def test_hook_session_created(recorder: Recorder) -> None:
    with ArtifactStore() as store:
        explicit = store.create_session(user_id="alice", session_id="explicit")
        aid = store.store(b"1", mime="text/plain", user_id="bob")
        store.store(b"2", mime="text/plain", user_id="bob")  # reuses bob's session: no event
        store.store(b"3", mime="text/plain", session_id="named-on-first-use")
        implicit = store.metadata(aid).session_id
    created = recorder.of("session_created")
    assert [(e[1], e[3]) for e in created] == [
        (explicit, "alice"),
        (implicit, "bob"),
        ("named-on-first-use", None),
    ]
    assert created[1][2] == Caller("bob", None)


def test_hook_session_deleted(recorder: Recorder, clock: Any) -> None:
    with ArtifactStore() as store:
        sid = store.create_session(user_id="alice")
        store.delete_session(sid, user_id="alice")
        store.delete_session(sid)  # already gone: no event
        old = store.create_session(user_id="bob", ttl_hours=1)
        clock.advance(3601)
        store.cleanup_expired_sessions()
    assert [(e[1], e[3]) for e in recorder.of("session_deleted")] == [(sid, False), (old, True)]


def test_hook_access_denied(recorder: Recorder) -> None:
    with ArtifactStore() as store:
        aid = store.store(b"secret", mime="text/plain", user_id="alice", scope="user")
        with pytest.raises(AccessDeniedError):
            store.retrieve(aid, user_id="bob")
        with pytest.raises(AccessDeniedError):  # write_file -> update_file: reported once, inner
            store.write_file("x", filename="f.txt", overwrite_artifact_id=aid, user_id="bob")
        with pytest.raises(AccessDeniedError):
            store.as_user("bob").delete(aid)
        with pytest.raises(AccessDeniedError):
            store.store(b"x", mime="text/plain", scope="sandbox", user_id="bob")
        assert store.retrieve(aid, user_id="alice") == b"secret"
    denied = recorder.of("access_denied")
    assert [(e[3][0], e[1], e[2]) for e in denied] == [
        ("retrieve", aid, Caller("bob", None)),
        ("update_file", aid, Caller("bob", None)),
        ("delete", aid, Caller("bob", None)),
        ("store", None, Caller("bob", None)),
    ]
    assert all("denied" in e[3][2] or "only" in e[3][2] for e in denied)


def test_hook_share_created(recorder: Recorder) -> None:
    with ArtifactStore() as store:
        aid = store.store(b"shared", mime="text/plain", user_id="alice", scope="user")
        link = store.share(aid, max_downloads=3, user_id="alice")
        with pytest.raises(AccessDeniedError):
            store.share(aid, user_id="bob")  # refused: no event
    ((_, share_id, caller, share),) = recorder.of("share_created")
    assert (share_id, caller, share.artifact_id, share.max_downloads) == (link.share_id, Caller("alice"), aid, 3)


def test_hook_share_used(recorder: Recorder) -> None:
    with ArtifactStore() as store:
        aid = store.store(b"shared", mime="text/plain", user_id="alice", scope="user")
        link = store.share(aid, max_downloads=2, user_id="alice")
        token = link.url.rsplit("/", 1)[1]
        store.open_share(token)  # opened, nothing downloaded: no event
        for _ in range(2):
            assert b"".join(store.open_share(token).download(0, 6, 1024).chunks) == b"shared"
    assert [(e[1], e[3].downloads) for e in recorder.of("share_used")] == [(link.share_id, 1), (link.share_id, 2)]
    assert recorder.of("share_used")[-1][3].state == "exhausted"


def test_hook_share_revoked(recorder: Recorder) -> None:
    with ArtifactStore() as store:
        aid = store.store(b"shared", mime="text/plain", user_id="alice", scope="user")
        link = store.share(aid, user_id="alice")
        assert store.revoke_share(link.share_id, user_id="alice")
        assert not store.revoke_share(link.share_id, user_id="alice")  # already revoked: no event
    ((_, share_id, caller, share),) = recorder.of("share_revoked")
    assert (share_id, caller, share.state) == (link.share_id, Caller("alice"), "revoked")


def test_access_denied_in_strict_mode_is_reported(recorder: Recorder) -> None:
    with ArtifactStore(strict=True) as store, pytest.raises(AccessDeniedError):
        store.search()
    assert [e[3][0] for e in recorder.of("access_denied")] == ["search"]


def test_events_build_nothing_when_no_plugin_listens(only_builtins: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with ArtifactStore() as store:
        aid = store.store(b"1", mime="text/plain", user_id="alice")

        def fail(*args: Any) -> Any:
            raise AssertionError("metadata built for an event nobody listens to")

        import chuk_artifacts.events

        monkeypatch.setattr(chuk_artifacts.events, "metadata_from_row", fail)
        monkeypatch.setattr(store.catalog, "get_artifacts_by_row_ids", fail)
        store.store(b"2", mime="text/plain", user_id="alice")
        store.delete(aid)
        with pytest.raises(AccessDeniedError):
            store.exists(store.store(b"3", mime="text/plain", user_id="alice"), user_id="bob")


def test_a_listener_registered_or_unregistered_later_is_seen_by_the_next_call(only_builtins: None) -> None:
    """The async facade runs a memory store's calls on the event loop only while no plugin
    listens (a listener may do I/O); ``runs_inline`` follows registrations at once."""
    pm = ensure_plugins_loaded()
    heard: list[str] = []

    class Listener:
        @hookimpl
        def artifact_stored(self, store: Any, metadata: Any, caller: Any) -> None:
            heard.append(metadata.artifact_id)

    with ArtifactStore() as store:
        assert store.runs_inline("store") and store.runs_inline("metadata")
        listener = Listener()
        pm.register(listener, name="test-late-listener")
        try:
            assert not store.runs_inline("store") and not store.runs_inline("metadata")
            aid = store.store(b"1", mime="text/plain", user_id="alice")
            assert heard == [aid]
        finally:
            pm.unregister(listener)
        assert store.runs_inline("store") and store.runs_inline("metadata")
        store.store(b"2", mime="text/plain", user_id="alice")
        assert heard == [aid]


def test_a_failing_event_plugin_is_logged_and_the_operation_stands(
    register: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    class Failing:
        @hookimpl
        def artifact_stored(self, store: Any, metadata: Any, caller: Any) -> None:
            raise RuntimeError("audit sink is down")

    register(Failing())
    with ArtifactStore() as store:
        aid = store.store(b"1", mime="text/plain")
        assert store.retrieve(aid) == b"1"
    assert "artifact_stored failed" in caplog.text and "audit sink is down" in caplog.text


# -- CLI commands ----------------------------------------------------------------------------


def test_hook_register_commands(register: Callable[..., Any]) -> None:
    class Hello:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            @cli.command()
            @click.argument("name")
            def hello(name: str) -> None:
                """Say hello."""
                click.echo(f"hello {name}")

    register(Hello())
    from chuk_artifacts.cli import _register_plugin_commands

    @click.group()
    def group() -> None:
        pass

    _register_plugin_commands(group)
    result = CliRunner().invoke(group, ["hello", "plugins"], catch_exceptions=False)
    assert (result.exit_code, result.output) == (0, "hello plugins\n")


# -- environment switches --------------------------------------------------------------------


def test_plugin_settings_from_env() -> None:
    assert PluginSettings.from_env({}) == PluginSettings(only=None, trace=False)
    assert PluginSettings.from_env({"CHUK_ARTIFACTS_PLUGINS": "redis, audit"}).only == ("redis", "audit")
    assert PluginSettings.from_env({"CHUK_ARTIFACTS_PLUGINS": ""}).only == ()
    assert PluginSettings.from_env({"CHUK_ARTIFACTS_TRACE_PLUGINS": "1"}).trace is True


@pytest.mark.parametrize("var", ["CHUK_ARTIFACTS_PLUGINS", "CHUK_ARTIFACTS_TRACE_PLUGINS"])
def test_plugin_switches_are_documented(var: str) -> None:
    assert f"`{var}`" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`{var}`" in (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


@pytest.fixture
def fake_dists(tmp_path: Path) -> Path:
    """Two installed-looking distributions (dist-info + module) with ``chuk_artifacts`` entry
    points, on a directory to put on ``PYTHONPATH``."""
    for name in ("alpha", "beta"):
        (tmp_path / f"fake_{name}.py").write_text(
            textwrap.dedent(f"""
            from chuk_artifacts.hookspecs import hookimpl

            @hookimpl
            def storage_providers():
                return ["{name}-store"]
        """)
        )
        info = tmp_path / f"fake_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-{name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[chuk_artifacts]\n{name} = fake_{name}\n")
    return tmp_path


_PROBE = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
from chuk_artifacts.plugins import ensure_plugins_loaded, known_providers
from chuk_artifacts import ArtifactStore
pm = ensure_plugins_loaded()
with ArtifactStore() as store:
    store.store(b"x", mime="text/plain")
error = None
try:
    ArtifactStore(session_provider="redis")
except Exception as exc:
    error = str(exc)
print(json.dumps({
    "names": [n for n, _ in pm.list_name_plugin()],
    "dists": sorted(d.project_name for _, d in pm.list_plugin_distinfo()),
    "providers": known_providers(),
    "redis_error": error,
}))
"""


def _probe(env_extra: dict[str, str], path: Path | None = None) -> tuple[dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUK_ARTIFACTS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path or ""), str(ROOT), env.get("PYTHONPATH")]))
    env.update(env_extra)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_entry_points_load_without_restriction(fake_dists: Path) -> None:
    out, _ = _probe({}, fake_dists)
    assert {"alpha", "beta"} <= set(out["names"])
    assert {"fake-alpha", "fake-beta"} <= set(out["dists"])
    assert {"alpha-store", "beta-store", "memory"} <= set(out["providers"])


def test_chuk_artifacts_plugins_loads_only_the_named_entry_points(fake_dists: Path) -> None:
    out, stderr = _probe({"CHUK_ARTIFACTS_PLUGINS": "beta,nosuch"}, fake_dists)
    assert "beta" in out["names"] and "alpha" not in out["names"]
    assert "beta-store" in out["providers"] and "alpha-store" not in out["providers"]
    assert "CHUK_ARTIFACTS_PLUGINS names 'nosuch'" in stderr
    for name in DEFAULT_PLUGINS:  # built-ins always load
        assert name in out["names"]


def test_chuk_artifacts_plugins_empty_loads_no_entry_points(fake_dists: Path) -> None:
    out, _ = _probe({"CHUK_ARTIFACTS_PLUGINS": ""}, fake_dists)
    assert sorted(out["names"]) == sorted(DEFAULT_PLUGINS)
    assert out["dists"] == []


def test_unknown_redis_session_provider_names_the_package_to_install() -> None:
    out, _ = _probe({"CHUK_ARTIFACTS_PLUGINS": ""})
    assert out["redis_error"] == (
        "unknown session provider 'redis'; known: catalog ('redis' needs: pip install chuk-artifacts-redis)"
    )


def test_chuk_artifacts_trace_plugins_logs_every_hook_call() -> None:
    _, stderr = _probe({"CHUK_ARTIFACTS_PLUGINS": "", "CHUK_ARTIFACTS_TRACE_PLUGINS": "1"})
    assert "chuk_artifacts.plugins:" in stderr
    for hook in ("storage_backend", "session_provider", "prepare_connection", "storage_providers"):
        assert f"{hook} [hook]" in stderr, hook
    _, untraced = _probe({"CHUK_ARTIFACTS_PLUGINS": ""})
    assert "[hook]" not in untraced


# -- the first-party plugin distributions ----------------------------------------------------


def _require_installed() -> None:
    found = {ep.name for ep in entry_points(group="chuk_artifacts")}
    if not set(FIRST_PARTY) <= found:
        reason = (
            "the plugin distributions are not installed (nox -s tests / nox -s plugins install "
            "them: pip install -e plugins/chuk-artifacts-redis -e plugins/chuk-artifacts-audit -e plugins/chuk-artifacts-mcp)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason + " — CI must run these tests, not skip them")
        pytest.skip(reason)


def test_first_party_plugins_are_discovered_through_entry_points() -> None:
    _require_installed()
    eps = {ep.name: ep for ep in entry_points(group="chuk_artifacts")}
    pm = ensure_plugins_loaded()
    names = dict(pm.list_name_plugin())
    dists = {plugin: dist for plugin, dist in pm.list_plugin_distinfo()}
    for name, (dist, module) in FIRST_PARTY.items():
        assert eps[name].value == module
        assert eps[name].dist is not None and eps[name].dist.name == dist
        plugin = names[name]  # registered under the entry point's name ...
        assert plugin.__name__ == module
        assert dists[plugin].project_name == dist  # ... by load_setuptools_entrypoints
    assert "redis" in known_session_providers()
    assert "audit" in CliRunner().invoke(admin_cli, ["--help"]).output


def test_the_library_never_imports_its_plugins_by_name() -> None:
    for path in (ROOT / "chuk_artifacts").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.startswith(("chuk_artifacts_redis", "chuk_artifacts_audit")) for n in names), path
