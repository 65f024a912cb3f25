"""chuk-artifacts as an MCP server: tools, ``artifact://`` resources, per-client identity and
change notifications, on the official ``mcp`` SDK. ``chuk-admin mcp`` serves a store."""

from .identity import Identities, Identity, StaticTokenVerifier
from .server import TOOL_NAMES, ArtifactServer, ServerConfig, build_server

__all__ = [
    "TOOL_NAMES",
    "ArtifactServer",
    "Identities",
    "Identity",
    "ServerConfig",
    "StaticTokenVerifier",
    "build_server",
]
__version__ = "0.1.0"
