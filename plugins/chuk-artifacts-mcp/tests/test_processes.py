"""``chuk-admin mcp`` in a subprocess, driven by the SDK's real clients: over stdio, over streamable
HTTP with bearer tokens, and notifications of changes made by another process (the change feed)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from chuk_artifacts_mcp import TOOL_NAMES, ServerConfig, build_server
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourcesListChanged
from mcp.types import BlobResourceContents

from chuk_artifacts import AsyncArtifactStore

pytestmark = pytest.mark.anyio

ADMIN = [sys.executable, "-c", "from chuk_artifacts.cli import main; main()"]


def env(root: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("ARTIFACT_", "CHUK_", "SESSION_"))}
    return {**keep, "ARTIFACT_PROVIDER": "filesystem", "ARTIFACT_FS_ROOT": str(root), **extra}


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    res = await client.call_tool(tool, arguments)
    assert not res.is_error, res.content
    assert res.structured_content is not None
    return res.structured_content


# -- stdio ---------------------------------------------------------------------------------------


def stdio(root: Path, user: str) -> Client:
    params = StdioServerParameters(command=ADMIN[0], args=[*ADMIN[1:], "mcp", "--user", user], env=env(root))
    return Client(params, cache=None)


async def test_stdio_serves_tools_and_resources_from_a_subprocess(tmp_path: Path) -> None:
    payload = os.urandom(3000)
    async with stdio(tmp_path, "alice") as client:
        assert tuple(t.name for t in (await client.list_tools()).tools) == TOOL_NAMES
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert "artifact://{artifact_id}" in templates
        record = await call(
            client, "artifact_store_base64", data_base64=base64.b64encode(payload).decode(), filename="r.bin"
        )
        (content,) = (await client.read_resource(record["uri"])).contents
        assert isinstance(content, BlobResourceContents) and base64.b64decode(content.blob) == payload
        bad = await client.call_tool("artifact_read", {"artifact_id": "../x"})
        assert bad.is_error and "invalid_argument" in bad.content[0].text  # type: ignore[union-attr]
        bad = await client.call_tool("artifact_list", {"limit": 0})
        assert bad.is_error and "limit" in bad.content[0].text  # type: ignore[union-attr]
    # The artifact is in the store the command was pointed at, owned by the configured user.
    async with AsyncArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path)) as store:
        meta = await store.metadata(record["artifact_id"])
        assert meta.owner_id == "alice" and await store.retrieve(record["artifact_id"]) == payload


async def test_stdio_pages_notifies_and_keeps_two_users_apart(tmp_path: Path) -> None:
    async with stdio(tmp_path, "alice") as alice, stdio(tmp_path, "bob") as bob:
        async with alice.listen(resources_list_changed=True) as sub:
            first = await call(alice, "artifact_write_text", text="0", filename="0.txt", scope="user")
            with anyio.fail_after(10):
                assert isinstance(await sub.__anext__(), ResourcesListChanged)
        for i in range(1, 5):
            await call(alice, "artifact_write_text", text=str(i), filename=f"{i}.txt", scope="user")
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(3):
            page = await call(alice, "artifact_list", scope="user", limit=2, **({"cursor": cursor} if cursor else {}))
            seen += [item["filename"] for item in page["items"]]
            cursor = page["next_cursor"]
        assert seen == [f"{i}.txt" for i in range(5)] and cursor is None
        # bob's server is another process on the same store: alice's artifacts stay hers.
        denied = await bob.call_tool("artifact_read", {"artifact_id": first["artifact_id"]})
        assert denied.is_error and "access_denied" in denied.content[0].text  # type: ignore[union-attr]
        assert (await call(bob, "artifact_list", scope="user"))["items"] == []


# -- streamable HTTP with bearer tokens ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for this module's HTTP tests (each test uses its own artifacts)."""
    tmp_path = tmp_path_factory.mktemp("http")
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"alice-token": "alice", "bob-token": "bob"}))
    port = free_port()
    proc = subprocess.Popen(
        [*ADMIN, "mcp", "--transport", "http", "--port", str(port), "--tokens", str(tokens)],
        env=env(tmp_path / "store"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chuk-admin mcp exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("chuk-admin mcp --transport http did not start listening within 30 s")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def as_bearer(url: str, token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0))
    return Client(streamable_http_client(url, http_client=http), cache=None)


async def test_http_users_come_from_their_tokens_and_are_isolated(http_server: str) -> None:
    async with as_bearer(http_server, "alice-token") as alice, as_bearer(http_server, "bob-token") as bob:
        assert (await call(alice, "artifact_whoami"))["user_id"] == "alice"
        assert (await call(bob, "artifact_whoami"))["user_id"] == "bob"
        doc = await call(alice, "artifact_write_text", text="for alice only", filename="a.txt", scope="user")
        denied = await bob.call_tool("artifact_read", {"artifact_id": doc["artifact_id"]})
        assert denied.is_error and "access_denied" in denied.content[0].text  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await bob.read_resource(doc["uri"])
        (content,) = (await alice.read_resource(doc["uri"])).contents
        assert content.text == "for alice only"  # type: ignore[union-attr]


async def test_http_refuses_a_client_without_a_valid_token(http_server: str) -> None:
    for token in (None, "forged-token"):
        async with httpx2.AsyncClient() as http:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await http.post(
                http_server,
                headers={**headers, "Accept": "application/json, text/event-stream"},
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            )
        assert response.status_code == 401


# -- another process's change --------------------------------------------------------------------


async def test_a_change_made_by_another_process_is_notified(tmp_path: Path) -> None:
    """The writer is a plain script (no MCP server) with CHUK_MCP_CHANGE_FEED=1: its hook writes
    the change feed, which the server polls; only the client that may read the artifact hears it."""
    async with AsyncArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path)) as store:
        config = ServerConfig(poll_interval=0.05)
        alice_server = build_server(store, user_id="alice", config=config)
        async with (
            Client(alice_server, cache=None) as alice,
            Client(build_server(store, user_id="bob", config=config), cache=None) as bob,
        ):
            async with (
                alice.listen(resources_list_changed=True) as alice_sub,
                bob.listen(resources_list_changed=True) as bob_sub,
            ):
                script = (
                    "from chuk_artifacts import ArtifactStore\n"
                    "with ArtifactStore() as s:\n"
                    "    print(s.store(b'from elsewhere', mime='text/plain', user_id='alice', scope='user'))\n"
                )
                done = await anyio.run_process(
                    [sys.executable, "-c", script], env=env(tmp_path, CHUK_MCP_CHANGE_FEED="1")
                )
                artifact_id = done.stdout.decode().strip()
                with anyio.fail_after(10):
                    event = await alice_sub.__anext__()
                assert isinstance(event, ResourcesListChanged)
                listing = await call(alice, "artifact_list", scope="user")
                assert [i["artifact_id"] for i in listing["items"]] == [artifact_id]
                with anyio.move_on_after(0.5) as quiet:
                    await bob_sub.__anext__()
                assert quiet.cancelled_caught, "bob was told of a change to alice's artifact"


async def test_without_the_feed_variable_another_process_writes_no_feed(tmp_path: Path) -> None:
    from chuk_artifacts_mcp.feed import TABLE_NAME
    from sqlalchemy import inspect

    script = "from chuk_artifacts import ArtifactStore\nwith ArtifactStore() as s: s.store(b'x', mime='text/plain')\n"
    await anyio.run_process([sys.executable, "-c", script], env=env(tmp_path))
    async with AsyncArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path)) as store:
        with store.sync.catalog.read() as conn:
            assert not inspect(conn).has_table(TABLE_NAME)


async def test_the_feed_on_a_shared_postgresql_catalog(postgres_url: str, tmp_path: Path) -> None:
    """Two stores on one PostgreSQL catalog stand for two processes: each has its own origin, so a
    change through the second reaches the first's clients only through the feed table."""
    from chuk_artifacts_mcp.hub import enable_feed

    def open_store(name: str) -> AsyncArtifactStore:
        return AsyncArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path / name), catalog_url=postgres_url)

    async with open_store("a") as served, open_store("b") as other:
        enable_feed(other.sync)
        server = build_server(served, user_id="alice", config=ServerConfig(poll_interval=0.05))
        async with Client(server, cache=None) as alice:
            doc = await call(alice, "artifact_write_text", text="v1", filename="a.txt", scope="user")
            async with alice.listen(resource_subscriptions=[doc["uri"]]) as sub:
                await other.update_metadata(doc["artifact_id"], summary="changed elsewhere", user_id="alice")
                with anyio.fail_after(10):
                    event = await sub.__anext__()
                assert getattr(event, "uri", None) == doc["uri"]
            assert (await call(alice, "artifact_metadata", artifact_id=doc["artifact_id"]))["summary"] == (
                "changed elsewhere"
            )


async def test_each_stateful_http_session_gets_its_own_store_session(http_server: str) -> None:
    def legacy(token: str) -> Client:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0))
        return Client(streamable_http_client(http_server, http_client=http), cache=None, mode="legacy")

    async with legacy("alice-token") as one, legacy("alice-token") as two:
        first, second = await call(one, "artifact_whoami"), await call(two, "artifact_whoami")
        assert first["user_id"] == second["user_id"] == "alice"
        assert first["session_id"] != second["session_id"]
        assert (await call(one, "artifact_whoami"))["session_id"] == first["session_id"]
        scratch = await call(one, "artifact_write_text", text="one's scratch", filename="s.txt")
        denied = await two.call_tool("artifact_read", {"artifact_id": scratch["artifact_id"]})
        assert denied.is_error and "access_denied" in denied.content[0].text  # type: ignore[union-attr]


async def test_http_listen_streams_hear_changes(http_server: str) -> None:
    async with as_bearer(http_server, "alice-token") as watcher, as_bearer(http_server, "alice-token") as writer:
        async with watcher.listen(resources_list_changed=True) as sub:
            await call(writer, "artifact_write_text", text="new", filename="n.txt", scope="user")
            with anyio.fail_after(10):
                event = await sub.__anext__()
    assert isinstance(event, ResourcesListChanged)
