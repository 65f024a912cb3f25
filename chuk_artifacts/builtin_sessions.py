"""The built-in ``catalog`` session provider, registered as a plugin like any other."""

from __future__ import annotations

from .catalog import Catalog
from .config import Settings
from .hookspecs import hookimpl
from .sessions import CatalogSessions


@hookimpl
def session_providers() -> list[str]:
    return ["catalog"]


@hookimpl(trylast=True)
def session_provider(
    name: str, settings: Settings, catalog: Catalog, sandbox_id: str
) -> CatalogSessions | None:
    if name == "catalog":
        return CatalogSessions(catalog, sandbox_id, settings.session_ttl_seconds)
    return None
