"""The MCP server: a store's artifacts as tools and ``artifact://`` resources, for one or many users.

``build_server(store, …)`` returns an ``MCPServer`` (the official SDK's). Tool results carry a
compact JSON record and a resource link (name, mimeType, size) instead of the bytes, so a large
artifact never floods the model's context; the application reads ``artifact://{id}`` when it wants
the content. Every call acts as the client's identity (``identity.py``), so the store's access rules
decide what each client may see and do. The tools are in ``tools.py``; this module has the
resources, ``resources/subscribe``, and the wiring of notifications (``notify.py``, ``feed.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from chuk_artifacts import AccessDeniedError, AsyncArtifactStore, InvalidArgumentError

from . import feed
from .config import ServerConfig
from .hub import attach, detach, enable_feed, feed_origin, session_uri, user_uri
from .identity import Identities, Identity, default_user_from_token
from .notify import ArtifactBus, Notifier
from .results import INTERNAL_ERROR, is_text, record, resource_error
from .tools import TOOL_NAMES, register_tools

__all__ = ["ArtifactServer", "ServerConfig", "TOOL_NAMES", "build_server"]

logger = logging.getLogger(__name__)


class ArtifactServer(MCPServer):
    """``MCPServer`` whose ``artifact://{id}`` reads return the artifact's own MIME type."""

    identities: Identities
    store: AsyncArtifactStore
    config: ServerConfig
    notifier: Notifier

    def detach(self) -> None:
        """Stop hearing the store's changes (a server that is done; the store lives on)."""
        detach(self.store.sync, self.notifier)

    async def read_resource(self, uri: Any, context: Any = None) -> Any:
        text = str(uri)
        if not text.startswith("artifact://"):
            return await super().read_resource(uri, context)
        artifact_id = text[len("artifact://") :]
        try:
            me = await self.identities.resolve(context)
            view = me.view(self.store)
            meta = await view.metadata(artifact_id)
            if meta.bytes > self.config.max_resource_bytes:
                raise InvalidArgumentError(
                    f"{meta.bytes} bytes is more than this server returns in a read "
                    f"({self.config.max_resource_bytes}); use artifact_presign_download for a URL"
                )
            data = await view.retrieve(artifact_id)
        except Exception as exc:
            resource_error(exc, text)
        content: str | bytes = data
        if is_text(meta.mime):
            with contextlib.suppress(UnicodeDecodeError):
                content = data.decode("utf-8")
        return [ReadResourceContents(content=content, mime_type=meta.mime)]


class _Watcher:
    """Binds the notifier to the running loop and polls the change feed while any client is connected."""

    def __init__(self, store: AsyncArtifactStore, notifier: Notifier, watch: bool, interval: float) -> None:
        self.store = store
        self.notifier = notifier
        self.watch = watch
        self.interval = interval
        self._users = 0
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self, _server: Any) -> AsyncIterator[dict[str, Any]]:
        self.notifier.bind(asyncio.get_running_loop())
        self._users += 1
        if self.watch and self._task is None:
            reader = feed.FeedReader(self.store.sync, self.notifier.origin)
            try:
                await asyncio.to_thread(reader.start)
            except Exception:  # serve anyway: only other processes' changes go unnoticed
                logger.exception("cannot read the change feed; changes by other processes will not be notified")
            else:
                self._task = asyncio.create_task(self._poll(reader))
        try:
            yield {}
        finally:
            self._users -= 1
            if self._users == 0 and self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None

    async def _poll(self, reader: feed.FeedReader) -> None:
        while True:
            try:
                for change in await asyncio.to_thread(reader.poll):
                    self.notifier.deliver(change)
            except Exception:  # a catalog hiccup: log it and try again at the next interval
                logger.exception("polling the change feed failed")
            await asyncio.sleep(self.interval)


def build_server(
    store: AsyncArtifactStore,
    *,
    user_id: str | None = None,
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
    user_from_token: Callable[[AccessToken], str] = default_user_from_token,
    config: ServerConfig | None = None,
    name: str = "chuk-artifacts",
) -> ArtifactServer:
    """An MCP server over ``store``.

    :param store: the store (its root: the server acts as each client's identity, never as admin)
    :param user_id: the user of clients that present no token (stdio); ``None``: session-only clients
    :param token_verifier: verifies HTTP bearer tokens (with ``auth``); clients must then present one
    :param auth: the resource server's ``AuthSettings`` (issuer, resource URL, required scopes) for
        OAuth discovery; without it a verifier still guards every request, and the discovery
        document names a placeholder issuer on 127.0.0.1 (fine for static tokens, not for OAuth)
    :param user_from_token: the user id an ``AccessToken`` stands for (default: subject, else client id)
    :param config: limits and change-feed settings
    """
    config = config or ServerConfig()
    if token_verifier is not None and auth is None:
        auth = AuthSettings(issuer_url="http://127.0.0.1/", resource_server_url=None)  # type: ignore[arg-type]
    identities = Identities(
        store, user_id=user_id, require_token=token_verifier is not None, user_from_token=user_from_token
    )
    bus = ArtifactBus(identities.listener)
    watch = config.watch if config.watch is not None else not store.sync.catalog.in_memory
    origin = enable_feed(store.sync) if watch else feed_origin(store.sync) or "local"
    notifier = Notifier(bus, origin)
    watcher = _Watcher(store, notifier, watch, config.poll_interval)
    attach(store.sync, notifier)

    server = ArtifactServer(
        name,
        instructions=(
            "Artifact storage. Tools return a resource link (artifact://ID) instead of file contents: "
            "read the resource for the bytes. Large files: artifact_presign_upload, then PUT the bytes to "
            "the URL, then artifact_register_upload."
        ),
        token_verifier=token_verifier,
        auth=auth,
        subscriptions=bus,
        lifespan=watcher.running,
    )
    server.identities = identities
    server.store = store
    server.config = config
    server.notifier = notifier

    register_tools(server, store, identities, config)

    # -- resources -----------------------------------------------------------------------------

    @server.resource(
        "artifact://{artifact_id}",
        name="artifact",
        description="An artifact's content, as text or a base64 blob with its own MIME type.",
        mime_type="application/octet-stream",
    )
    def artifact(artifact_id: str) -> str:  # served by ArtifactServer.read_resource
        raise MCPError(code=INTERNAL_ERROR, message="artifact:// is read by ArtifactServer.read_resource")

    async def listing(ctx: Context, uri: str, fetch: Callable[[AsyncArtifactStore, Identity], Any]) -> str:
        try:
            who = await identities.resolve(ctx)
            page = await fetch(who.view(store), who)
        except Exception as exc:
            resource_error(exc, uri)
        return json.dumps({"items": [record(m) for m in page], "next_cursor": page.next_cursor})

    @server.resource(
        "artifacts://sessions/{session_id}",
        name="session_artifacts",
        description="The first 100 artifacts of a session (yours only), as JSON.",
        mime_type="application/json",
    )
    async def session_artifacts(session_id: str, ctx: Context) -> str:
        async def fetch(view: AsyncArtifactStore, who: Identity) -> Any:
            if session_id != who.session_id:
                raise AccessDeniedError(f"session {session_id!r} is not this client's session")
            return await view.list_by_session(session_id, 100)

        return await listing(ctx, session_uri(session_id), fetch)

    @server.resource(
        "artifacts://users/{user_id}",
        name="user_artifacts",
        description="The first 100 user-scope artifacts of a user (yourself only), as JSON.",
        mime_type="application/json",
    )
    async def user_artifacts(user_id: str, ctx: Context) -> str:
        async def fetch(view: AsyncArtifactStore, who: Identity) -> Any:
            if user_id != who.user_id:
                raise AccessDeniedError(f"user {user_id!r} is not this client's user")
            return await who.user_view(store).search(scope="user", limit=100)

        return await listing(ctx, user_uri(user_id), fetch)

    # -- resources/subscribe, for handshake-era clients -------------------------------------

    async def subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        uri = str(params.uri)
        try:
            who = await identities.resolve(ctx)
            await readable(who, uri)
        except Exception as exc:
            resource_error(exc, uri)
        connection = getattr(ctx.session, "_connection", None)  # the SDK keeps no public handle
        if connection is not None:
            notifier.legacy.subscribe(connection, uri, (who.user_id, who.session_id))
        return EmptyResult()

    async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        connection = getattr(ctx.session, "_connection", None)
        if connection is not None:
            notifier.legacy.unsubscribe(connection, str(params.uri))
        return EmptyResult()

    async def readable(who: Identity, uri: str) -> None:
        """Subscribing is refused where reading would be: no probing what changes, or when."""
        if uri.startswith("artifact://"):
            await who.view(store).metadata(uri[len("artifact://") :])
        elif uri == session_uri(who.session_id) or (who.user_id and uri == user_uri(who.user_id)):
            return
        elif uri.startswith("artifacts://"):
            raise AccessDeniedError("only your own session's and user's listings can be subscribed to")
        else:
            raise InvalidArgumentError(f"{uri!r} is not a resource of this server")

    lowlevel = server._lowlevel_server  # MCPServer registers no resources/subscribe handler itself
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)

    return server
