"""chuk-artifacts as an MCP server: tools, ``artifact://`` resources, per-client identity and
change notifications, on the official ``mcp`` SDK. ``chuk-admin mcp`` serves a store.

The public names are loaded on first use (PEP 562): the plugin's hooks import this package in
every process that has it installed, and they must not pay for importing the MCP SDK.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import ServerConfig
    from .identity import Identities, Identity, StaticTokenVerifier
    from .server import ArtifactServer, build_server
    from .tools import TOOL_NAMES

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

_HOMES = {
    "Identities": "identity",
    "Identity": "identity",
    "StaticTokenVerifier": "identity",
    "TOOL_NAMES": "tools",
    "ArtifactServer": "server",
    "ServerConfig": "config",
    "build_server": "server",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
