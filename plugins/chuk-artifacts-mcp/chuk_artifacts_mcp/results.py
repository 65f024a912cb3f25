"""What a call returns: an artifact's compact record and its resource link (never its bytes), and
store errors mapped to a short code (tool errors and JSON-RPC errors of resource reads)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any, Literal, NoReturn

from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, ResourceLink, TextContent

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactCorruptedError,
    ArtifactExpiredError,
    ArtifactMetadata,
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidArgumentError,
    ProviderError,
    QuotaExceededError,
    SearchHit,
    SessionError,
)

from .hub import artifact_uri

logger = logging.getLogger(__name__)

#: JSON-RPC error codes of resource reads (``-32002`` is the spec's "resource not found").
RESOURCE_NOT_FOUND = -32002
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

_TEXT_MIMES = ("application/json", "application/xml", "application/yaml", "application/javascript", "image/svg+xml")


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
    """The compact description of an artifact a tool result carries (no bytes); a full-text
    search's hits add their ``rank`` and ``snippet``."""
    if isinstance(m, SearchHit):
        return {**_record(m), "rank": m.rank, "snippet": m.snippet}
    return _record(m)


def _record(m: ArtifactMetadata) -> dict[str, Any]:
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


def ttl_argument(ttl: int | Literal["never"] | None) -> dict[str, Any]:
    """Tool ``ttl`` → store keyword: omitted = the scope's default, ``"never"`` = no expiry."""
    if ttl is None:
        return {}
    return {"ttl": None if ttl == "never" else ttl}


def page(items: Iterable[ArtifactMetadata], next_cursor: str | None) -> CallToolResult:
    items = list(items)
    return result({"items": [record(m) for m in items], "next_cursor": next_cursor}, [link(m) for m in items])
