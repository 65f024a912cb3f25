"""``StoreCore``: the state every part of ``ArtifactStore`` shares, declared in one place.

A store is assembled from small parts, each built here once and used explicitly by the public
methods (``store.py`` and the feature modules: ``listing``, ``session_methods``, ``streaming``,
``presign``, ``uploads``, ``shares``, ``maintenance``):

- ``catalog`` (SQL) and ``blobs`` (bytes): the data layer; they never decide anything;
- ``sessions``: the session provider (a plugin; ``interfaces.SessionProvider``);
- ``policy``: identity, access, TTL and placement rules (``policy.py``);
- ``writer``: the write protocol every write path goes through (``writes.py``);
- ``events``: the lifecycle hooks (``events.py``);
- ``presigner``: download and upload URLs (a plugin; ``interfaces.Presigner``).

A request flows downward: public method → policy → writer → catalog / blobs. No part holds a
reference to the store except ``events``, which hands it to plugins as ``store=``.
"""

from __future__ import annotations

from typing import Any

from .blobs import Blobs
from .catalog import Catalog
from .config import Settings
from .errors import InvalidArgumentError
from .events import Events
from .interfaces import Presigner, SessionProvider
from .policy import Policy
from .writes import Writer

__all__ = ["StoreCore"]

#: Public methods that only read the catalog: on an in-memory or WAL SQLite catalog with the
#: built-in session provider they cannot wait on I/O (``runs_inline``).
CATALOG_READS = frozenset(
    {
        "metadata",
        "exists",
        "search",
        "list_by_session",
        "get_directory_contents",
        "validate_session",
        "get_session_info",
        "usage",
    }
)
#: Public methods that read or write only the catalog and the bytes, through the write protocol.
#: On the memory backend with an in-memory catalog every one of them is CPU work in this process.
IN_PROCESS = CATALOG_READS | frozenset(
    {
        "store",
        "store_batch",
        "write_file",
        "retrieve",
        "read_file",
        "update_file",
        "update_metadata",
        "extend_ttl",
        "copy_file",
        "move_file",
        "delete",
        "create_session",
        "update_session_metadata",
        "extend_session_ttl",
        "delete_session",
    }
)
#: Lifecycle hooks the inline calls above may fire (a plugin listening may do I/O).
_EVENTS = (
    "artifact_stored",
    "artifact_updated",
    "artifact_deleted",
    "artifact_expired",
    "session_created",
    "session_deleted",
    "access_denied",
)


class StoreCore:
    """The parts of a store and the configuration they were built from (see the module doc)."""

    settings: Settings
    sandbox_id: str
    catalog: Catalog
    blobs: Blobs
    sessions: SessionProvider
    policy: Policy
    writer: Writer
    events: Events

    def __init__(self, settings: Settings, *, auto_migrate: bool | None = None) -> None:
        from .plugins import check_session_provider, ensure_plugins_loaded, make_blobs, make_sessions
        from .sessions import CatalogSessions

        self.settings = settings
        self.sandbox_id = settings.sandbox_id
        pm = ensure_plugins_loaded()
        check_session_provider(settings.session_provider)
        self.blobs = make_blobs(settings)
        try:
            self.catalog = Catalog(
                settings.resolved_catalog_url(),
                auto_migrate=auto_migrate,
                prepare_connection=lambda c, d: pm.hook.prepare_connection(dbapi_connection=c, dialect=d),
                durable=settings.durability == "power",
                statement_timeout=settings.statement_timeout,
            )
        except BaseException:
            self.blobs.close()
            raise
        try:  # from the ``session_provider`` hook: ``catalog`` is built in, plugins add more
            self.sessions = make_sessions(settings, self.catalog)
        except BaseException:
            self.catalog.close()
            self.blobs.close()
            raise
        self.events = Events(self)
        self.writer = Writer(settings, self.catalog, self.blobs, self.events, session_provider=self.sessions.name)
        sessions_in_catalog = type(self.sessions) is CatalogSessions and self.sessions.catalog is self.catalog
        self.policy = Policy(
            settings,
            self.catalog,
            self.sessions,
            self.events,
            storage_provider=self.blobs.name,
            sessions_in_catalog=sessions_in_catalog,
            arrivals=self.writer.register_arrived if self.blobs.native_presign else None,
            retire=self.writer.retire_session,
        )
        self._presigner: Presigner | None = None
        self._closed = False
        catalog_local = self.catalog.is_sqlite and (self.catalog.in_memory or self.catalog.wal)
        self._inline: frozenset[str] = frozenset()
        if sessions_in_catalog and catalog_local:
            in_process = self.blobs.volatile and self.catalog.in_memory
            self._inline = IN_PROCESS if in_process else CATALOG_READS

    # -- what a store is made of ----------------------------------------------------------

    @property
    def storage_provider(self) -> str:
        return self.blobs.name

    @property
    def session_provider(self) -> str:
        return self.sessions.name

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    @property
    def presigner(self) -> Presigner:
        """The presigner for this store's backend (hook ``presigner``), made on first use."""
        if self._presigner is None:
            from .plugins import ensure_plugins_loaded

            self._presigner = ensure_plugins_loaded().hook.presigner(store=self)
            if self._presigner is None:
                raise InvalidArgumentError(f"no presigner for provider {self.storage_provider!r}")
        return self._presigner

    def runs_inline(self, name: str) -> bool:
        """May public method ``name`` run on an event loop right now, without a worker thread?

        True only when it cannot wait on I/O: catalog-only reads on an in-memory or WAL SQLite
        catalog with the built-in session provider (a WAL reader never waits for writers), and
        every catalog-and-bytes method on the memory backend with an in-memory catalog (CPU work
        in this process) — and only while no plugin listens to a lifecycle event, since a
        listener may do I/O. The async facade asks before every call.
        """
        if not isinstance(name, str) or name not in self._inline:
            return False
        return self.events.quiet(_EVENTS)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the catalog's connections and the backend's clients. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.policy.closed = True
        self.sessions.close()
        self.catalog.close()
        self.blobs.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<ArtifactStore provider={self.storage_provider} sandbox={self.sandbox_id!r} "
            f"catalog={self.catalog.safe_url}>"
        )
