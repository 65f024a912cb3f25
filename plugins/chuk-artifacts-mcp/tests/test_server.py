"""The MCP server driven in-process by the SDK's real client (``mcp.Client`` on a server object)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from chuk_artifacts_mcp import TOOL_NAMES, ServerConfig, build_server
from click.testing import CliRunner
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import BlobResourceContents, CallToolResult, ResourceLink, TextResourceContents

from chuk_artifacts import ArtifactStore, AsyncArtifactStore
from chuk_artifacts.plugins import ensure_plugins_loaded

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store() -> AsyncIterator[AsyncArtifactStore]:
    async with AsyncArtifactStore() as s:
        yield s


def connect(server: Any) -> Client:
    # No response cache: these tests read the same URI before and after changing it.
    return Client(server, raise_exceptions=True, cache=None)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    res = await client.call_tool(tool, arguments)
    assert not res.is_error, res.content
    assert res.structured_content is not None
    return res.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; its error text (never a traceback)."""
    res = await client.call_tool(tool, arguments)
    assert res.is_error, res.structured_content
    text = " ".join(getattr(block, "text", "") for block in res.content)
    assert "Traceback" not in text and 'File "' not in text
    return text


def links(res: CallToolResult) -> list[ResourceLink]:
    return [block for block in res.content if isinstance(block, ResourceLink)]


async def read_bytes(client: Client, uri: str) -> tuple[bytes, str | None]:
    (content,) = (await client.read_resource(uri)).contents
    if isinstance(content, BlobResourceContents):
        return base64.b64decode(content.blob), content.mime_type
    assert isinstance(content, TextResourceContents)
    return content.text.encode(), content.mime_type


# -- discovery ---------------------------------------------------------------------------------


def test_the_plugin_is_found_through_its_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="chuk_artifacts") if ep.name == "mcp"]
    assert ep.value == "chuk_artifacts_mcp.plugin" and ep.dist is not None and ep.dist.name == "chuk-artifacts-mcp"
    assert dict(ensure_plugins_loaded().list_name_plugin())["mcp"].__name__ == ep.value


def test_chuk_admin_gains_an_mcp_command() -> None:
    from chuk_artifacts.cli import cli

    out = CliRunner().invoke(cli, ["mcp", "--help"], catch_exceptions=False)
    assert out.exit_code == 0
    assert "--transport" in out.output and "stdio" in out.output and "http" in out.output


def test_http_refuses_a_non_loopback_host() -> None:
    from chuk_artifacts.cli import cli

    out = CliRunner().invoke(cli, ["--provider", "memory", "mcp", "--transport", "http", "--host", "0.0.0.0"])
    assert out.exit_code == 2 and "not a loopback address" in out.output


async def test_tools_have_stable_names_descriptions_and_schemas(store: AsyncArtifactStore) -> None:
    async with connect(build_server(store, user_id="alice")) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert tuple(tools) == TOOL_NAMES
    for tool in tools.values():
        assert tool.description and tool.input_schema["type"] == "object"
        assert "ctx" not in tool.input_schema.get("properties", {})
    write = tools["artifact_write_text"].input_schema
    assert set(write["required"]) == {"text", "filename"}
    assert write["properties"]["scope"]["enum"] == ["session", "user"]


async def test_resource_templates_are_listed(store: AsyncArtifactStore) -> None:
    async with connect(build_server(store, user_id="alice")) as client:
        templates = (await client.list_resource_templates()).resource_templates
    assert {t.uri_template for t in templates} == {
        "artifact://{artifact_id}",
        "artifacts://sessions/{session_id}",
        "artifacts://users/{user_id}",
    }


# -- write, read back --------------------------------------------------------------------------


async def test_text_written_by_a_tool_reads_back_through_its_resource(store: AsyncArtifactStore) -> None:
    async with connect(build_server(store, user_id="alice")) as client:
        res = await client.call_tool(
            "artifact_write_text", {"text": "# Notes\nhéllo", "filename": "notes.md", "mime": "text/markdown"}
        )
        (resource,) = links(res)
        record = res.structured_content
        assert record is not None
        assert resource.uri == f"artifact://{record['artifact_id']}"
        assert (resource.name, resource.mime_type, resource.size) == (
            "notes.md",
            "text/markdown",
            len("# Notes\nhéllo".encode()),
        )
        data, mime = await read_bytes(client, resource.uri)
    assert data == "# Notes\nhéllo".encode() and mime == "text/markdown"
    # The store agrees: it is alice's, in the session the server made for her.
    meta = await store.metadata(record["artifact_id"])
    assert meta.owner_id == "alice" and meta.scope == "session" and meta.session_id == record["session_id"]


async def test_binary_bytes_round_trip_as_a_blob_resource(store: AsyncArtifactStore) -> None:
    payload = bytes(range(256)) * 8
    async with connect(build_server(store, user_id="alice")) as client:
        record = await call(
            client,
            "artifact_store_base64",
            data_base64=base64.b64encode(payload).decode(),
            filename="x.bin",
            mime="application/x-test",
        )
        data, mime = await read_bytes(client, record["uri"])
    assert data == payload and mime == "application/x-test" and record["bytes"] == len(payload)


async def test_read_inlines_small_text_and_links_the_rest(store: AsyncArtifactStore) -> None:
    server = build_server(store, user_id="alice", config=ServerConfig(inline_text_bytes=100))
    async with connect(server) as client:
        small = await call(client, "artifact_write_text", text="short", filename="s.txt")
        big = await call(client, "artifact_write_text", text="x" * 101, filename="b.txt")
        binary = await call(
            client, "artifact_store_base64", data_base64=base64.b64encode(b"\x00\x01").decode(), filename="b.bin"
        )

        res = await client.call_tool("artifact_read", {"artifact_id": small["artifact_id"]})
        assert res.structured_content is not None and res.structured_content["inline"] is True
        assert res.content[0].text == "short"  # type: ignore[union-attr]
        for record in (big, binary):
            res = await client.call_tool("artifact_read", {"artifact_id": record["artifact_id"]})
            assert res.structured_content is not None and res.structured_content["inline"] is False
            assert "x" * 101 not in json.dumps([c.model_dump() for c in res.content])
            (resource,) = links(res)
            assert resource.uri == record["uri"] and resource.size == record["bytes"]


async def test_metadata_update_copy_move_ttl_and_delete(store: AsyncArtifactStore) -> None:
    async with connect(build_server(store, user_id="alice")) as client:
        doc = await call(client, "artifact_write_text", text="v1", filename="a.txt", meta={"k": 1})
        aid = doc["artifact_id"]
        updated = await call(client, "artifact_update_metadata", artifact_id=aid, summary="first", meta={"j": 2})
        assert updated["summary"] == "first" and updated["meta"] == {"k": 1, "j": 2}
        copy = await call(client, "artifact_copy", artifact_id=aid, new_filename="b.txt")
        assert copy["artifact_id"] != aid and copy["filename"] == "b.txt"
        assert (await read_bytes(client, copy["uri"]))[0] == b"v1"
        moved = await call(client, "artifact_move", artifact_id=aid, new_filename="c.txt")
        assert moved["filename"] == "c.txt" and (await store.metadata(aid)).filename == "c.txt"
        before = doc["expires_at"]
        extended = await call(client, "artifact_extend_ttl", artifact_id=aid, additional_seconds=600)
        assert extended["expires_at"] > before
        assert (await call(client, "artifact_delete", artifact_id=aid))["deleted"] is True
        assert "not_found" in await refused(client, "artifact_metadata", artifact_id=aid)
    assert not await store.exists(aid)


async def test_user_scope_and_never_expiring_ttl(store: AsyncArtifactStore) -> None:
    async with connect(build_server(store, user_id="alice")) as client:
        doc = await call(client, "artifact_write_text", text="keep", filename="k.txt", scope="user", ttl="never")
    meta = await store.metadata(doc["artifact_id"])
    assert meta.scope == "user" and meta.ttl is None and meta.expires_at is None


# -- listing, search, pagination ---------------------------------------------------------------


async def test_listing_pages_through_every_artifact_exactly_once(store: AsyncArtifactStore) -> None:
    async with connect(build_server(store, user_id="alice")) as client:
        stored = [
            (await call(client, "artifact_write_text", text=str(i), filename=f"f{i:02}.txt"))["artifact_id"]
            for i in range(23)
        ]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await call(client, "artifact_list", limit=10, **({"cursor": cursor} if cursor else {}))
            assert len(page["items"]) <= 10
            seen += [item["artifact_id"] for item in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == stored and pages == 3


async def test_search_filters_by_mime_prefix_and_metadata(store: AsyncArtifactStore) -> None:
    async with connect(build_server(store, user_id="alice")) as client:
        csv = await call(
            client, "artifact_write_text", text="a,b", filename="t.csv", mime="text/csv", meta={"kind": "table"}
        )
        await call(client, "artifact_write_text", text="plain", filename="p.txt", meta={"kind": "note"})
        by_mime = await call(client, "artifact_search", mime_prefix="text/csv")
        by_meta = await call(client, "artifact_search", meta_filter={"kind": "table"})
        kept = await call(
            client, "artifact_write_text", text="k", filename="k.txt", scope="user", meta={"kind": "table"}
        )
        by_user = await call(client, "artifact_search", scope="user", meta_filter={"kind": "table"})
        notice = await store.store(b"for everyone", mime="text/plain", scope="sandbox")
        shared = await call(client, "artifact_search", scope="sandbox")
    assert [i["artifact_id"] for i in by_mime["items"]] == [csv["artifact_id"]]
    assert [i["artifact_id"] for i in by_user["items"]] == [kept["artifact_id"]]
    assert [i["artifact_id"] for i in shared["items"]] == [notice]
    assert [i["artifact_id"] for i in by_meta["items"]] == [csv["artifact_id"]]


async def test_search_by_text_finds_words_in_content_and_names_best_first(store: AsyncArtifactStore) -> None:
    async with connect(build_server(store, user_id="alice")) as client:
        body = await call(client, "artifact_write_text", text="notes on the orca migration", filename="n.txt")
        named = await call(client, "artifact_write_text", text="see title", filename="orca.txt")
        await call(client, "artifact_write_text", text="nothing here", filename="x.txt")
        found = await call(client, "artifact_search", text="orca")
        both = await call(client, "artifact_search", text="orca migration")
        bad = await client.call_tool("artifact_search", {"text": "!!!"})
    async with connect(build_server(store, user_id="bob")) as other:
        theirs = await call(other, "artifact_search", text="orca", scope="user")
    assert [i["artifact_id"] for i in found["items"]] == [named["artifact_id"], body["artifact_id"]]
    assert "\u00abmigration\u00bb" in both["items"][0]["snippet"]
    assert [i["artifact_id"] for i in both["items"]] == [body["artifact_id"]]
    assert bad.is_error and "at least one word" in bad.content[0].text
    assert theirs["items"] == []


async def test_the_session_listing_resource(store: AsyncArtifactStore) -> None:
    async with connect(build_server(store, user_id="alice")) as client:
        doc = await call(client, "artifact_write_text", text="x", filename="x.txt")
        me = await call(client, "artifact_whoami")
        (content,) = (await client.read_resource(me["session_artifacts_uri"])).contents
    assert isinstance(content, TextResourceContents)
    assert [i["artifact_id"] for i in json.loads(content.text)["items"]] == [doc["artifact_id"]]


# -- isolation ---------------------------------------------------------------------------------


async def test_two_users_never_see_each_others_artifacts(store: AsyncArtifactStore) -> None:
    alice_server = build_server(store, user_id="alice")
    bob_server = build_server(store, user_id="bob")
    async with connect(alice_server) as alice, connect(bob_server) as bob:
        private = await call(alice, "artifact_write_text", text="alice's session", filename="a.txt")
        mine = await call(alice, "artifact_write_text", text="alice's user file", filename="u.txt", scope="user")
        alice_me = await call(alice, "artifact_whoami")
        for record in (private, mine):
            aid = record["artifact_id"]
            for tool, extra in (
                ("artifact_read", {}),
                ("artifact_metadata", {}),
                ("artifact_delete", {}),
                ("artifact_copy", {}),
                ("artifact_update_metadata", {"summary": "pwned"}),
                ("artifact_presign_download", {}),
            ):
                text = await refused(bob, tool, artifact_id=aid, **extra)
                assert "access_denied" in text or "not_found" in text, text
            with pytest.raises(MCPError):
                await bob.read_resource(record["uri"])
        for uri in (alice_me["session_artifacts_uri"], alice_me["user_artifacts_uri"]):
            with pytest.raises(MCPError) as denied:
                await bob.read_resource(uri)
            assert "access_denied" in str(denied.value)
        for scope in ("session", "user", "sandbox"):
            assert (await call(bob, "artifact_search", scope=scope))["items"] == []
        assert (await call(bob, "artifact_list", scope="user"))["items"] == []
        assert [i["artifact_id"] for i in (await call(alice, "artifact_list", scope="user"))["items"]] == [
            mine["artifact_id"]
        ]
        # And nothing of alice's changed.
        assert (await read_bytes(alice, mine["uri"]))[0] == b"alice's user file"
        assert (await store.metadata(private["artifact_id"])).summary == ""


async def test_two_clients_of_one_user_have_their_own_sessions(store: AsyncArtifactStore) -> None:
    async with (
        connect(build_server(store, user_id="alice")) as one,
        connect(build_server(store, user_id="alice")) as two,
    ):
        first, second = await call(one, "artifact_whoami"), await call(two, "artifact_whoami")
        assert first["session_id"] != second["session_id"]
        scratch = await call(one, "artifact_write_text", text="scratch", filename="s.txt")
        shared = await call(one, "artifact_write_text", text="shared", filename="u.txt", scope="user")
        assert "access_denied" in await refused(two, "artifact_read", artifact_id=scratch["artifact_id"])
        assert (await read_bytes(two, shared["uri"]))[0] == b"shared"


async def test_a_client_without_a_user_has_only_its_session(store: AsyncArtifactStore) -> None:
    owner = await store.store(b"secret", mime="text/plain", user_id="carol", scope="user")
    async with connect(build_server(store)) as anon:
        me = await call(anon, "artifact_whoami")
        assert me["user_id"] is None and me["session_id"]
        assert "access_denied" in await refused(anon, "artifact_read", artifact_id=owner)
        doc = await call(anon, "artifact_write_text", text="mine", filename="m.txt")
        assert (await read_bytes(anon, doc["uri"]))[0] == b"mine"
        assert "access_denied" in await refused(anon, "artifact_list", scope="user")
        assert "user" in await refused(anon, "artifact_write_text", text="x", filename="x", scope="user")


# -- errors and hostile input ------------------------------------------------------------------


async def test_bad_input_is_refused_with_a_clear_message_and_stores_nothing(store: AsyncArtifactStore) -> None:
    server = build_server(store, user_id="alice", config=ServerConfig(max_base64_bytes=1024))
    async with connect(server) as client:
        cases = [
            ("artifact_store_base64", {"data_base64": "not base64!!", "filename": "x"}, "not valid base64"),
            (
                "artifact_store_base64",
                {"data_base64": base64.b64encode(b"x" * 1025).decode(), "filename": "x"},
                "artifact_presign_upload",
            ),
            (
                "artifact_store_base64",
                {"data_base64": "A" * 100_000, "filename": "x"},
                "larger than this server accepts",
            ),
            ("artifact_write_text", {"text": "x", "filename": "x", "scope": "sandbox"}, "scope"),
            ("artifact_write_text", {"text": "x", "filename": "x", "ttl": 0}, "ttl"),
            ("artifact_write_text", {"text": "x", "filename": "x", "meta": "nope"}, "meta"),
            ("artifact_write_text", {"text": "x", "filename": "x", "mime": "not a mime"}, "invalid_argument"),
            ("artifact_write_text", {"text": "x"}, "filename"),
            ("artifact_list", {"limit": 1000}, "limit"),
            ("artifact_list", {"cursor": "garbage"}, "cursor"),
            ("artifact_read", {"artifact_id": "../../etc/passwd"}, "invalid_argument"),
            ("artifact_metadata", {"artifact_id": ""}, "artifact_id"),
            ("artifact_read", {"artifact_id": "0" * 32}, "not_found"),
        ]
        for tool, arguments, expected in cases:
            text = await refused(client, tool, **arguments)
            assert expected in text, (tool, arguments, text)
        with pytest.raises(MCPError) as bad_uri:
            await client.read_resource("artifact://..%2F..%2Fetc")
        assert bad_uri.value.error.code in (-32602, -32002)
    assert await store.search() == []


async def test_an_expired_artifact_is_reported_as_expired(store: AsyncArtifactStore, clock: Any) -> None:
    async with connect(build_server(store, user_id="alice")) as client:
        doc = await call(client, "artifact_write_text", text="brief", filename="b.txt", ttl=5)
        clock.advance(10)
        assert "expired" in await refused(client, "artifact_read", artifact_id=doc["artifact_id"])
        with pytest.raises(MCPError) as gone:
            await client.read_resource(doc["uri"])
    assert "expired" in str(gone.value)


async def test_a_quota_refusal_is_a_quota_error() -> None:
    async with AsyncArtifactStore(quota_user_bytes=10) as store:
        async with connect(build_server(store, user_id="alice")) as client:
            text = await refused(client, "artifact_write_text", text="x" * 11, filename="big.txt", scope="user")
    assert "quota_exceeded: quota exceeded for user" in text


# -- presigned transfers -----------------------------------------------------------------------


def wsgi(app: Any, method: str, url: str, body: bytes = b"") -> tuple[str, bytes]:
    parts = urlsplit(url)
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": parts.path,
        "QUERY_STRING": parts.query,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8787",
        "wsgi.url_scheme": "http",
    }
    status: list[str] = []
    out = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], out


async def test_a_large_file_goes_through_presigned_urls_not_the_model(store: AsyncArtifactStore) -> None:
    from chuk_artifacts.gateway import make_app

    payload = bytes(range(256)) * 4096  # 1 MiB
    gateway = make_app(store)
    async with connect(build_server(store, user_id="alice", config=ServerConfig(max_base64_bytes=1024))) as client:
        ticket = await call(client, "artifact_presign_upload", filename="big.bin", mime="application/octet-stream")
        assert ticket["method"] == "PUT" and ticket["artifact_id"]
        status, _ = await anyio.to_thread.run_sync(wsgi, gateway, "PUT", ticket["upload_url"], payload)
        assert status.startswith("2"), status
        res = await client.call_tool("artifact_register_upload", {"artifact_id": ticket["artifact_id"]})
        assert not res.is_error and res.structured_content is not None
        assert res.structured_content["bytes"] == len(payload)
        assert len(json.dumps([c.model_dump() for c in res.content])) < 4096  # a link, not the bytes
        url = (await call(client, "artifact_presign_download", artifact_id=ticket["artifact_id"]))["url"]
        status, body = await anyio.to_thread.run_sync(wsgi, gateway, "GET", url)
    assert status.startswith("200") and body == payload


# -- notifications -----------------------------------------------------------------------------


async def next_events(sub: Any, count: int, timeout: float = 5.0) -> list[Any]:
    events: list[Any] = []
    with anyio.fail_after(timeout):
        async for event in sub:
            events.append(event)
            if len(events) == count:
                break
    return events


async def test_a_client_is_notified_when_an_artifact_it_can_see_changes(store: AsyncArtifactStore) -> None:
    from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated

    async with (
        connect(build_server(store, user_id="alice")) as alice,
        connect(build_server(store, user_id="bob")) as bob,
    ):
        doc = await call(alice, "artifact_write_text", text="v1", filename="a.txt", scope="user")
        async with alice.listen(resources_list_changed=True, resource_subscriptions=[doc["uri"]]) as alice_sub:
            async with bob.listen(resources_list_changed=True, resource_subscriptions=[doc["uri"]]) as bob_sub:
                # A change made straight through the store (not through MCP) is heard too.
                await store.update_metadata(doc["artifact_id"], summary="v2", user_id="alice")
                events = await next_events(alice_sub, 2)
                assert ResourceUpdated(uri=doc["uri"]) in events
                assert any(isinstance(e, ResourcesListChanged) for e in events)
                # bob may not read it, so bob hears nothing; bob's own change he does hear.
                await call(bob, "artifact_write_text", text="b", filename="b.txt")
                (bob_event,) = await next_events(bob_sub, 1)
                assert isinstance(bob_event, ResourcesListChanged)


async def test_a_detached_server_no_longer_hears_its_store(store: AsyncArtifactStore) -> None:
    from chuk_artifacts_mcp.hub import notifiers_for

    first, second = build_server(store, user_id="alice"), build_server(store, user_id="bob")
    assert notifiers_for(store.sync) == [first.notifier, second.notifier]
    first.detach()
    assert notifiers_for(store.sync) == [second.notifier]
    with ArtifactStore() as other:  # a store no server serves has no notifiers
        assert notifiers_for(other) == []


def test_loading_the_plugin_imports_neither_the_sdk_nor_sqlalchemy() -> None:
    """Every process with the plugin installed loads it (and ``chuk-admin --help`` does)."""
    import subprocess
    import sys

    probe = "import sys, chuk_artifacts_mcp.plugin; print(sorted(m for m in ('mcp', 'sqlalchemy', 'pydantic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_handshake_era_client_is_notified_of_what_it_subscribed_to(store: AsyncArtifactStore) -> None:
    """Clients of protocol 2025-11-25 cannot listen; they resources/subscribe instead."""
    import warnings

    from mcp.types import ResourceUpdatedNotification

    received: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            received.append(message.params.uri)
            arrived.set()

    server_a, server_b = build_server(store, user_id="alice"), build_server(store, user_id="bob")
    alice = Client(server_a, raise_exceptions=True, cache=None, mode="legacy", message_handler=on_message)
    async with alice, Client(server_b, cache=None, mode="legacy") as bob:
        assert alice.server_capabilities.resources is not None and alice.server_capabilities.resources.subscribe
        doc = await call(alice, "artifact_write_text", text="v1", filename="a.txt", scope="user")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resources/subscribe is deprecated for 2026-era clients
            await alice.subscribe_resource(doc["uri"])
            with pytest.raises(MCPError) as denied:  # bob may not read it, so may not watch it either
                await bob.subscribe_resource(doc["uri"])
        assert "access_denied" in str(denied.value)
        await store.update_metadata(doc["artifact_id"], summary="v2", user_id="alice")
        with anyio.fail_after(5):
            await arrived.wait()
    assert received == [doc["uri"]]


def test_who_hears_of_a_change_follows_the_read_rules() -> None:
    from chuk_artifacts_mcp.hub import Change

    session = Change("stored", "a1", "session", "alice", "sess-1")
    user = Change("stored", "a2", "user", "alice", "sess-1")
    sandbox = Change("stored", "a3", "sandbox", None, None)
    assert session.visible_to("alice", "sess-1") and not session.visible_to("alice", "sess-2")
    assert not session.visible_to("alice", None)  # no session yet: none of alice's sessions
    assert user.visible_to("alice", "sess-9") and user.visible_to("alice", None)
    assert not user.visible_to("bob", "sess-1") and not user.visible_to(None, "sess-1")
    assert sandbox.visible_to(None, None) and sandbox.visible_to("bob", "sess-2")
    assert not user.visible_to(None, None) and not session.visible_to(None, None)
