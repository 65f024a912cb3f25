"""The plugin manager: built-ins first, then the ``chuk_artifacts`` entry-point group, once.

Nothing is loaded at import: the first store (or ``chuk-admin``) calls ``ensure_plugins_loaded``.
``CHUK_ARTIFACTS_PLUGINS`` restricts which entry points load; ``CHUK_ARTIFACTS_TRACE_PLUGINS=1``
logs every hook call (see ``config.PluginSettings``).
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .config import PluginSettings
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .blobs import Blobs
    from .catalog import Catalog
    from .config import Settings
    from .interfaces import SessionProvider

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "ensure_plugins_loaded",
    "known_providers",
    "known_session_providers",
    "make_blobs",
    "make_sessions",
    "pm",
]

ENTRY_POINT_GROUP = "chuk_artifacts"

#: Built-in behaviour is registered exactly like third-party plugins.
DEFAULT_PLUGINS = (
    "chuk_artifacts.backends",  # memory, filesystem, sqlite (and cloud) storage, the presigners
    "chuk_artifacts.builtin_sessions",  # the catalog session provider
    "chuk_artifacts.builtin_text",  # the text of text-like artifacts, for full-text search
)

#: Storage providers that exist but live in an optional install.
PROVIDER_HINTS = {
    "s3": "pip install 'chuk-artifacts[s3]'",
    "ibm_cos": "pip install 'chuk-artifacts[s3]'",
    "azure": "pip install 'chuk-artifacts[azure]'",
    "gcs": "pip install 'chuk-artifacts[gcs]'",
}

#: Session providers that live in a separately installed plugin distribution.
SESSION_PROVIDER_HINTS = {
    "redis": "pip install chuk-artifacts-redis",
}

logger = logging.getLogger("chuk_artifacts.plugins")


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, counting changes: ``generation`` moves whenever a plugin is registered
    or unregistered (or hook specifications are added), so that what depends only on which
    hooks are implemented can be computed once per generation (``Events.quiet``)."""

    generation = 0

    def register(self, plugin: object, name: str | None = None) -> str | None:
        try:
            return super().register(plugin, name)
        finally:
            self.generation += 1

    def unregister(self, plugin: object | None = None, name: str | None = None) -> object | None:
        try:
            return super().unregister(plugin, name)
        finally:
            self.generation += 1

    def add_hookspecs(self, module_or_class: Any) -> None:
        try:
            super().add_hookspecs(module_or_class)
        finally:
            self.generation += 1


pm = PluginManager(ENTRY_POINT_GROUP)
pm.add_hookspecs(hookspecs)

_loaded = False
_lock = threading.Lock()


def ensure_plugins_loaded() -> PluginManager:
    """Register the built-ins and entry-point plugins on first use; later calls do nothing."""
    global _loaded
    if _loaded:
        return pm
    with _lock:
        if not _loaded:
            _load(PluginSettings.from_env())
            _loaded = True
    return pm


def _load(config: PluginSettings) -> None:
    for name in DEFAULT_PLUGINS:
        module = importlib.import_module(name)
        if not pm.is_registered(module):
            pm.register(module, name=name)
    if config.only is None:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    else:
        from importlib.metadata import entry_points

        available = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
        for name in config.only:
            if name not in available:
                logger.warning(
                    "CHUK_ARTIFACTS_PLUGINS names %r, but no %r entry point is installed (have: %s)",
                    name,
                    ENTRY_POINT_GROUP,
                    ", ".join(sorted(available)) or "none",
                )
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    pm.check_pending()
    if config.trace:
        pm.trace.root.setwriter(lambda message: logger.info("%s", message.rstrip()))
        pm.enable_tracing()


# -- storage --------------------------------------------------------------------------------


def known_providers() -> list[str]:
    """Every storage provider name some registered plugin implements."""
    answers: list[list[str]] = ensure_plugins_loaded().hook.storage_providers()
    return sorted({n for names in answers for n in names})


def _unknown(kind: str, name: str, known: list[str], hints: dict[str, str]) -> InvalidArgumentError:
    message = f"unknown {kind} provider {name!r}; known: {', '.join(known) or 'none'}"
    hint = hints.get(name)
    if hint:
        message += f" ({name!r} needs: {hint})"
    return InvalidArgumentError(message)


def make_blobs(settings: Settings) -> Blobs:
    """The byte store for ``settings.storage_provider``, from whichever plugin provides it."""
    blobs: Blobs | None = ensure_plugins_loaded().hook.storage_backend(
        provider=settings.storage_provider, settings=settings
    )
    if blobs is None:
        raise _unknown("storage", settings.storage_provider, known_providers(), PROVIDER_HINTS)
    return blobs


# -- sessions -------------------------------------------------------------------------------


def known_session_providers() -> list[str]:
    """Every session provider name some registered plugin implements."""
    answers: list[list[str]] = ensure_plugins_loaded().hook.session_providers()
    return sorted({n for names in answers for n in names})


def check_session_provider(name: str) -> None:
    """Fail early (before a store opens anything) if no plugin names session provider ``name``."""
    known = known_session_providers()
    if name not in known:
        raise _unknown("session", name, known, SESSION_PROVIDER_HINTS)


def make_sessions(settings: Settings, catalog: Catalog) -> SessionProvider:
    """The session provider ``settings.session_provider`` for the store's sandbox."""
    from .interfaces import SessionProvider

    name = settings.session_provider
    provider: object = ensure_plugins_loaded().hook.session_provider(
        name=name, settings=settings, catalog=catalog, sandbox_id=settings.sandbox_id
    )
    if provider is None:
        raise _unknown("session", name, known_session_providers(), SESSION_PROVIDER_HINTS)
    if not isinstance(provider, SessionProvider):
        raise TypeError(
            f"session provider {name!r} returned {type(provider).__name__}, which lacks methods of "
            "chuk_artifacts.sessions.SessionProvider"
        )
    return provider
