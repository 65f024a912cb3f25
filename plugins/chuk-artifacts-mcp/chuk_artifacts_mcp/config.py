"""``ServerConfig``: what an MCP server may put in a tool result, and how it learns of changes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerConfig"]


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
