"""The MCP server: a store's artifacts as tools and ``artifact://`` resources, for one or many users.

``build_server(store, …)`` returns an ``MCPServer`` (the official SDK's). Tool results carry a
compact JSON record and a resource link (name, mimeType, size) instead of the bytes, so a large
artifact never floods the model's context; the application reads ``artifact://{id}`` when it wants
the content. Every call acts as the client's identity (``identity.py``), so the store's access rules
decide what each client may see and do; store errors become tool errors with a short code.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CallToolResult,
    EmptyResult,
    ResourceLink,
    SubscribeRequestParams,
    TextContent,
    UnsubscribeRequestParams,
)
from pydantic import Field

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactCorruptedError,
    ArtifactExpiredError,
    ArtifactMetadata,
    ArtifactNotFoundError,
    ArtifactStoreError,
    AsyncArtifactStore,
    InvalidArgumentError,
    ProviderError,
    QuotaExceededError,
    SessionError,
)

from . import feed
from .hub import artifact_uri, attach, detach, enable_feed, feed_origin, session_uri, user_uri
from .identity import Identities, Identity, default_user_from_token
from .notify import ArtifactBus, Notifier

__all__ = ["ServerConfig", "TOOL_NAMES", "build_server"]

logger = logging.getLogger(__name__)

#: JSON-RPC error codes of resource reads (``-32002`` is the spec's "resource not found").
RESOURCE_NOT_FOUND = -32002
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

TOOL_NAMES = (
    "artifact_whoami",
    "artifact_write_text",
    "artifact_store_base64",
    "artifact_read",
    "artifact_list",
    "artifact_search",
    "artifact_metadata",
    "artifact_update_metadata",
    "artifact_copy",
    "artifact_move",
    "artifact_delete",
    "artifact_extend_ttl",
    "artifact_presign_download",
    "artifact_presign_upload",
    "artifact_register_upload",
)

_TEXT_MIMES = ("application/json", "application/xml", "application/yaml", "application/javascript", "image/svg+xml")


@dataclass(frozen=True)
class ServerConfig:
    """What a server may put in a tool result, and how it learns of changes.

    :param inline_text_bytes: ``artifact_read`` returns text up to this size inline; above it, or
        for binary content, a resource link
    :param max_base64_bytes: the largest decoded payload ``artifact_store_base64`` accepts (bigger
        files go through ``artifact_presign_upload``)
    :param max_resource_bytes: the largest artifact ``resources/read`` returns (bigger ones: presign)
    :param watch: write this store's changes to the change feed and poll it for other processes'
        changes; ``None``: when the catalog is not in memory
    :param poll_interval: seconds between polls of the change feed
    """

    inline_text_bytes: int = 16 * 1024
    max_base64_bytes: int = 1024 * 1024
    max_resource_bytes: int = 32 * 1024 * 1024
    watch: bool | None = None
    poll_interval: float = 0.5


# -- errors ------------------------------------------------------------------------------------

_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (ArtifactNotFoundError, "not_found"),
    (ArtifactExpiredError, "expired"),
    (AccessDeniedError, "access_denied"),
    (QuotaExceededError, "quota_exceeded"),
    (InvalidArgumentError, "invalid_argument"),
    (ProviderError, "provider_error"),
    (SessionError, "session_error"),
    (ArtifactCorruptedError, "corrupted"),
    (ArtifactStoreError, "store_error"),
)


def error_code(exc: BaseException) -> str:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return "internal_error"


def _message(exc: BaseException) -> str:
    code = error_code(exc)
    if code == "internal_error":
        return "internal_error: the server failed to complete the call (see its log)"
    return f"{code}: {exc}"


@contextlib.contextmanager
def tool_errors(tool: str) -> Iterator[None]:
    """Store errors (and anything unexpected) become a tool error with a code and a message."""
    try:
        yield
    except ToolError:
        raise
    except Exception as exc:
        if error_code(exc) == "internal_error":
            logger.exception("tool %s failed", tool)
        raise ToolError(_message(exc)) from None


def resource_error(exc: BaseException, uri: str) -> NoReturn:
    code = error_code(exc)
    if code == "internal_error":
        logger.exception("reading %s failed", uri)
    number = {"not_found": RESOURCE_NOT_FOUND, "expired": RESOURCE_NOT_FOUND, "invalid_argument": INVALID_PARAMS}
    raise MCPError(code=number.get(code, INTERNAL_ERROR), message=_message(exc), data={"uri": uri, "error": code})


# -- results -----------------------------------------------------------------------------------


def record(m: ArtifactMetadata) -> dict[str, Any]:
    """The compact description of an artifact a tool result carries (no bytes)."""
    return {
        "artifact_id": m.artifact_id,
        "uri": artifact_uri(m.artifact_id),
        "filename": m.filename,
        "mime": m.mime,
        "bytes": m.bytes,
        "summary": m.summary,
        "meta": m.meta,
        "scope": m.scope,
        "session_id": m.session_id,
        "owner_id": m.owner_id,
        "sha256": m.sha256,
        "stored_at": m.stored_at,
        "updated_at": m.updated_at,
        "expires_at": m.expires_at,
    }


def link(m: ArtifactMetadata) -> ResourceLink:
    return ResourceLink(
        type="resource_link",
        uri=artifact_uri(m.artifact_id),
        name=m.filename or m.artifact_id,
        mime_type=m.mime,
        size=m.bytes,
        description=m.summary or None,
    )


def result(payload: dict[str, Any], links: Iterable[ResourceLink] = (), text: str | None = None) -> CallToolResult:
    content: list[Any] = [TextContent(type="text", text=text if text is not None else json.dumps(payload))]
    content.extend(links)
    return CallToolResult(content=content, structured_content=payload)


def is_text(mime: str) -> bool:
    base = mime.split(";", 1)[0].strip().lower()
    return base.startswith("text/") or base in _TEXT_MIMES or base.endswith(("+json", "+xml"))


def _ttl(ttl: int | Literal["never"] | None) -> dict[str, Any]:
    """Tool ``ttl`` → store keyword: omitted = the scope's default, ``"never"`` = no expiry."""
    if ttl is None:
        return {}
    return {"ttl": None if ttl == "never" else ttl}


def _page(items: Iterable[ArtifactMetadata], next_cursor: str | None) -> CallToolResult:
    items = list(items)
    return result({"items": [record(m) for m in items], "next_cursor": next_cursor}, [link(m) for m in items])


# -- argument types (they make the tools' JSON schemas) ----------------------------------------

ArtifactId = Annotated[str, Field(min_length=1, max_length=128, description="The artifact's id.")]
Filename = Annotated[str, Field(min_length=1, max_length=1024, description="Filename to record (metadata only).")]
Mime = Annotated[str, Field(min_length=3, max_length=255, description="MIME type, e.g. text/markdown.")]
Summary = Annotated[str, Field(max_length=4096, description="A one-line description.")]
Meta = Annotated[dict[str, Any] | None, Field(description="Custom metadata (JSON object).")]
WriteScope = Annotated[
    Literal["session", "user"],
    Field(description="session: this conversation only, expires; user: yours across sessions."),
]
Ttl = Annotated[
    Annotated[int, Field(ge=1)] | Literal["never"] | None,
    Field(description="Seconds until it expires, 'never', or omit for the scope's default."),
]
Limit = Annotated[int, Field(ge=1, le=100, description="Page size (1-100).")]
Cursor = Annotated[str | None, Field(max_length=1024, description="next_cursor of the previous page.")]
Expires = Annotated[int, Field(ge=1, le=7 * 86400, description="URL lifetime in seconds.")]


# -- the server --------------------------------------------------------------------------------


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
    :param auth: the resource server's ``AuthSettings`` (issuer, resource URL, required scopes)
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

    async def me(ctx: Context) -> Identity:
        with tool_errors("identity"):
            return await identities.resolve(ctx)

    # -- tools ---------------------------------------------------------------------------------

    @server.tool(name="artifact_whoami")
    async def whoami(ctx: Context) -> CallToolResult:
        """Your identity here: user id, store session id, and the URIs that list your artifacts."""
        who = await me(ctx)
        payload: dict[str, Any] = {
            "user_id": who.user_id,
            "session_id": who.session_id,
            "session_artifacts_uri": session_uri(who.session_id),
            "user_artifacts_uri": user_uri(who.user_id) if who.user_id else None,
        }
        return result(payload)

    @server.tool(name="artifact_write_text")
    async def write_text(
        ctx: Context,
        text: Annotated[str, Field(description="The content (UTF-8).")],
        filename: Filename,
        mime: Mime = "text/plain",
        summary: Summary = "",
        meta: Meta = None,
        scope: WriteScope = "session",
        ttl: Ttl = None,
    ) -> CallToolResult:
        """Store text as a new artifact; returns its record and a resource link."""
        with tool_errors("artifact_write_text"):
            view = (await me(ctx)).view(store)
            artifact_id = await view.write_file(
                text, filename=filename, mime=mime, summary=summary, meta=meta, scope=scope, **_ttl(ttl)
            )
            m = await view.metadata(artifact_id)
        return result(record(m), [link(m)])

    @server.tool(name="artifact_store_base64")
    async def store_base64(
        ctx: Context,
        data_base64: Annotated[str, Field(description="The bytes, base64-encoded (small payloads only).")],
        filename: Filename,
        mime: Mime = "application/octet-stream",
        summary: Summary = "",
        meta: Meta = None,
        scope: WriteScope = "session",
        ttl: Ttl = None,
    ) -> CallToolResult:
        """Store a small base64 payload. Above the server's limit use artifact_presign_upload."""
        limit = config.max_base64_bytes
        if len(data_base64) > 4 * ((limit + 2) // 3) + 4:
            raise ToolError(
                f"invalid_argument: the payload is larger than this server accepts inline ({limit} bytes "
                "decoded); upload it with artifact_presign_upload and artifact_register_upload"
            )
        try:
            data = base64.b64decode(data_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ToolError("invalid_argument: data_base64 is not valid base64 (RFC 4648, no line breaks)") from None
        if len(data) > limit:
            raise ToolError(
                f"invalid_argument: {len(data)} bytes is more than this server accepts inline ({limit}); "
                "upload it with artifact_presign_upload and artifact_register_upload"
            )
        with tool_errors("artifact_store_base64"):
            view = (await me(ctx)).view(store)
            artifact_id = await view.store(
                data, mime=mime, summary=summary, meta=meta, filename=filename, scope=scope, **_ttl(ttl)
            )
            m = await view.metadata(artifact_id)
        return result(record(m), [link(m)])

    @server.tool(name="artifact_read")
    async def read(ctx: Context, artifact_id: ArtifactId) -> CallToolResult:
        """Read an artifact: small text inline; binary or large content as a resource link."""
        with tool_errors("artifact_read"):
            view = (await me(ctx)).view(store)
            m = await view.metadata(artifact_id)
            payload = record(m)
            if is_text(m.mime) and m.bytes <= config.inline_text_bytes:
                data = await view.retrieve(artifact_id)
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                else:
                    payload["inline"] = True
                    return CallToolResult(
                        content=[TextContent(type="text", text=text), link(m)], structured_content=payload
                    )
        payload["inline"] = False
        note = (
            f"{m.bytes} bytes of {m.mime} are not inlined: read the resource {payload['uri']}, "
            "or get a URL with artifact_presign_download."
        )
        return result(payload, [link(m)], text=note + "\n" + json.dumps(payload))

    @server.tool(name="artifact_list")
    async def list_(
        ctx: Context,
        scope: Annotated[
            Literal["session", "user"], Field(description="session: this session's; user: your user artifacts.")
        ] = "session",
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> CallToolResult:
        """List your artifacts, oldest first, one page at a time (pass next_cursor back as cursor)."""
        with tool_errors("artifact_list"):
            who = await me(ctx)
            view = who.view(store)
            if scope == "session":
                page = await view.list_by_session(who.session_id, limit, cursor=cursor)
            else:
                page = await who.user_view(store).search(scope="user", limit=limit, cursor=cursor)
        return _page(page, page.next_cursor)

    @server.tool(name="artifact_search")
    async def search(
        ctx: Context,
        scope: Annotated[
            Literal["session", "user", "sandbox"],
            Field(description="session: this session's; user: your user artifacts; sandbox: shared ones."),
        ] = "session",
        mime_prefix: Annotated[str | None, Field(max_length=255, description="e.g. image/ or text/csv")] = None,
        meta_filter: Annotated[
            dict[str, Any] | None, Field(description="Metadata entries that must all be equal.")
        ] = None,
        filename_prefix: Annotated[str | None, Field(max_length=1024)] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> CallToolResult:
        """Search the artifacts you may read in one scope by MIME prefix, metadata and filename prefix."""
        with tool_errors("artifact_search"):
            who = await me(ctx)
            view = who.view(store) if scope == "session" else who.user_view(store)
            page = await view.search(
                scope=scope,
                mime_prefix=mime_prefix,
                meta_filter=meta_filter,
                filename_prefix=filename_prefix,
                limit=limit,
                cursor=cursor,
            )
        return _page(page, page.next_cursor)

    @server.tool(name="artifact_metadata")
    async def metadata(ctx: Context, artifact_id: ArtifactId) -> CallToolResult:
        """An artifact's metadata (no content)."""
        with tool_errors("artifact_metadata"):
            m = await (await me(ctx)).view(store).metadata(artifact_id)
        return result(record(m), [link(m)])

    @server.tool(name="artifact_update_metadata")
    async def update_metadata(
        ctx: Context,
        artifact_id: ArtifactId,
        summary: Summary | None = None,
        meta: Meta = None,
        merge: Annotated[bool, Field(description="Merge meta into the existing (else replace it).")] = True,
        filename: Filename | None = None,
    ) -> CallToolResult:
        """Change an artifact's summary, metadata or filename (the bytes stay)."""
        with tool_errors("artifact_update_metadata"):
            m = (
                await (await me(ctx))
                .view(store)
                .update_metadata(artifact_id, summary=summary, meta=meta, merge=merge, filename=filename)
            )
        return result(record(m), [link(m)])

    @server.tool(name="artifact_copy")
    async def copy(
        ctx: Context,
        artifact_id: ArtifactId,
        new_filename: Filename | None = None,
        new_meta: Meta = None,
        summary: Summary | None = None,
    ) -> CallToolResult:
        """Copy an artifact (within its scope); returns the copy."""
        with tool_errors("artifact_copy"):
            view = (await me(ctx)).view(store)
            new_id = await view.copy_file(artifact_id, new_filename=new_filename, new_meta=new_meta, summary=summary)
            m = await view.metadata(new_id)
        return result(record(m), [link(m)])

    @server.tool(name="artifact_move")
    async def move(
        ctx: Context, artifact_id: ArtifactId, new_filename: Filename | None = None, new_meta: Meta = None
    ) -> CallToolResult:
        """Rename an artifact and/or merge metadata into it."""
        with tool_errors("artifact_move"):
            m = await (await me(ctx)).view(store).move_file(artifact_id, new_filename=new_filename, new_meta=new_meta)
        return result(record(m), [link(m)])

    @server.tool(name="artifact_delete")
    async def delete(ctx: Context, artifact_id: ArtifactId) -> CallToolResult:
        """Delete an artifact (bytes and record)."""
        with tool_errors("artifact_delete"):
            deleted = await (await me(ctx)).view(store).delete(artifact_id)
        return result({"artifact_id": artifact_id, "deleted": bool(deleted)})

    @server.tool(name="artifact_extend_ttl")
    async def extend_ttl(
        ctx: Context,
        artifact_id: ArtifactId,
        additional_seconds: Annotated[int, Field(ge=1, le=10 * 365 * 86400)],
    ) -> CallToolResult:
        """Push an artifact's expiry back."""
        with tool_errors("artifact_extend_ttl"):
            m = await (await me(ctx)).view(store).extend_ttl(artifact_id, additional_seconds)
        return result(record(m), [link(m)])

    @server.tool(name="artifact_presign_download")
    async def presign_download(ctx: Context, artifact_id: ArtifactId, expires: Expires = 3600) -> CallToolResult:
        """A URL that downloads the artifact without credentials until it expires."""
        with tool_errors("artifact_presign_download"):
            view = (await me(ctx)).view(store)
            url = await view.presign(artifact_id, expires)
            m = await view.metadata(artifact_id)
        return result({"artifact_id": artifact_id, "url": url, "expires_in": expires}, [link(m)])

    @server.tool(name="artifact_presign_upload")
    async def presign_upload(
        ctx: Context,
        filename: Filename,
        mime: Mime = "application/octet-stream",
        summary: Summary = "",
        meta: Meta = None,
        scope: WriteScope = "session",
        ttl: Ttl = None,
        expires: Expires = 1800,
    ) -> CallToolResult:
        """Get a URL to PUT a file to (the bytes never pass through the model) and its artifact id;
        then call artifact_register_upload with that id."""
        with tool_errors("artifact_presign_upload"):
            url, artifact_id = (
                await (await me(ctx))
                .view(store)
                .presign_upload(None, filename, mime, expires, scope=scope, meta=meta, summary=summary, **_ttl(ttl))
            )
        payload = {"artifact_id": artifact_id, "upload_url": url, "method": "PUT", "expires_in": expires}
        return result(payload)

    @server.tool(name="artifact_register_upload")
    async def register_upload(
        ctx: Context,
        artifact_id: ArtifactId,
        mime: Mime | None = None,
        summary: Summary | None = None,
        filename: Filename | None = None,
        meta: Meta = None,
    ) -> CallToolResult:
        """Turn a finished presigned upload into an artifact (records its real size and sha256)."""
        with tool_errors("artifact_register_upload"):
            view = (await me(ctx)).view(store)
            await view.register_uploaded_artifact(artifact_id, mime=mime, summary=summary, filename=filename, meta=meta)
            m = await view.metadata(artifact_id)
        return result(record(m), [link(m)])

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
