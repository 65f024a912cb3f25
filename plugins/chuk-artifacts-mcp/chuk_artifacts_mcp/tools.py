"""The tools: their stable names, typed arguments (which make their JSON schemas) and bodies.

Each tool resolves the client's identity and calls the store through a view bound to it, so the
store's access rules apply to every call; ``tool_errors`` turns what the store raises into a tool
error with a code.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from chuk_artifacts import AsyncArtifactStore

from .config import ServerConfig
from .hub import session_uri, user_uri
from .identity import Identities, Identity
from .results import is_text, link, page, record, result, tool_errors, ttl_argument

__all__ = ["TOOL_NAMES", "register_tools"]

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


def register_tools(server: MCPServer, store: AsyncArtifactStore, identities: Identities, config: ServerConfig) -> None:
    """Add the tools of ``TOOL_NAMES`` to ``server``."""

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
                text, filename=filename, mime=mime, summary=summary, meta=meta, scope=scope, **ttl_argument(ttl)
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
                data, mime=mime, summary=summary, meta=meta, filename=filename, scope=scope, **ttl_argument(ttl)
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
                found = await view.list_by_session(who.session_id, limit, cursor=cursor)
            else:
                found = await who.user_view(store).search(scope="user", limit=limit, cursor=cursor)
        return page(found, found.next_cursor)

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
        text: Annotated[
            str | None,
            Field(
                max_length=1000,
                description="Words that must all occur in the filename, summary, metadata values or text "
                "content (case and accents ignored; not a query syntax). Results come best first, "
                "each with a snippet.",
            ),
        ] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> CallToolResult:
        """Search the artifacts you may read in one scope by words (full text), MIME prefix, metadata
        and filename prefix."""
        with tool_errors("artifact_search"):
            who = await me(ctx)
            view = who.view(store) if scope == "session" else who.user_view(store)
            found = await view.search(
                scope=scope,
                mime_prefix=mime_prefix,
                meta_filter=meta_filter,
                filename_prefix=filename_prefix,
                limit=limit,
                cursor=cursor,
                **({"text": text, "snippet": True} if text is not None else {}),
            )
        return page(found, found.next_cursor)

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
                .presign_upload(
                    None, filename, mime, expires, scope=scope, meta=meta, summary=summary, **ttl_argument(ttl)
                )
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
