"""The built-in ``catalog`` session provider, registered as a plugin like any other.

The catalog (SQLAlchemy) is imported when a provider is made, not when the plugin is registered:
``chuk-admin --help`` loads every plugin but needs no database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import Settings
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .catalog import Catalog
    from .sessions import CatalogSessions


@hookimpl
def session_providers() -> list[str]:
    return ["catalog"]


@hookimpl(trylast=True)
def session_provider(name: str, settings: Settings, catalog: Catalog, sandbox_id: str) -> CatalogSessions | None:
    if name == "catalog":
        from .sessions import CatalogSessions

        return CatalogSessions(catalog, sandbox_id, settings.session_ttl_seconds)
    return None
