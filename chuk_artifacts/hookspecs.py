"""Hook specifications: what a plugin can provide. The pluggy project name is ``chuk_artifacts``.

Hooks are grouped by the phase in which they are called. ``firstresult`` hooks stop at the first
plugin that answers (returns something other than ``None``); the others collect every answer.
Lifecycle events are called after the change has been committed to the catalog; an exception
raised by an event hook is logged, never raised into the operation that already succeeded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .access import Caller
    from .blobs import Blobs
    from .catalog import Catalog
    from .config import Settings
    from .models import ArtifactMetadata, ShareLink
    from .presign import Presigner
    from .sessions import SessionProvider
    from .store import ArtifactStore

hookspec = pluggy.HookspecMarker("chuk_artifacts")
hookimpl = pluggy.HookimplMarker("chuk_artifacts")


# -- storage backend for a provider name -----------------------------------------------------


@hookspec
def storage_providers() -> list[str]:
    """Names of the storage providers this plugin implements (for listings and error messages)."""
    raise NotImplementedError  # a specification: pluggy calls the plugins' implementations only


@hookspec(firstresult=True)
def storage_backend(provider: str, settings: Settings) -> Blobs | None:
    """Return the byte store for ``provider``, or ``None`` if this plugin does not provide it.

    :param provider: the normalised provider name (``memory``, ``filesystem``, ``s3`` …)
    :param settings: the store's configuration
    """


# -- session provider ------------------------------------------------------------------------


@hookspec
def session_providers() -> list[str]:
    """Names of the session providers this plugin implements (for listings and error messages)."""
    raise NotImplementedError  # a specification: pluggy calls the plugins' implementations only


@hookspec(firstresult=True)
def session_provider(name: str, settings: Settings, catalog: Catalog, sandbox_id: str) -> SessionProvider | None:
    """Return the sessions of ``sandbox_id`` kept by provider ``name``, or ``None``.

    The object must satisfy ``chuk_artifacts.sessions.SessionProvider``.

    :param name: the normalised session provider name (``catalog``, ``redis`` …)
    :param settings: the store's configuration (``session_ttl_seconds``, ``session_redis_url`` …)
    :param catalog: the store's catalog, for providers that keep sessions in it
    :param sandbox_id: the sandbox whose sessions the provider manages
    """


# -- presigner -------------------------------------------------------------------------------


@hookspec(firstresult=True)
def presigner(store: ArtifactStore) -> Presigner | None:
    """Return the presigner (download/upload/part URLs) for ``store``'s backend, or ``None``.

    :param store: the store asking; ``store.blobs`` and ``store.settings`` say which backend and
        configuration it has
    """


# -- catalog connection preparation ----------------------------------------------------------


@hookspec
def prepare_connection(dbapi_connection: Any, dialect: str) -> None:
    """Called for every new catalog database connection (for example to set SQLite pragmas).

    :param dbapi_connection: the DB-API connection
    :param dialect: ``sqlite`` or ``postgresql``
    """


# -- full-text search ------------------------------------------------------------------------


@hookspec(firstresult=True)
def extract_text(mime: str, filename: str | None, data: bytes, complete: bool) -> str | None:
    """Return the text of an artifact's bytes for the full-text index, or ``None``.

    ``None`` says this plugin does not read ``mime`` (the built-in one reads ``text/*`` and JSON,
    and runs last). Called before a new artifact or new bytes commit, outside any transaction; at most
    ``text_index_bytes`` of the text returned are indexed. An exception is logged, and the
    artifact is indexed without the text of its content.

    :param mime: the artifact's MIME type
    :param filename: its filename, if it has one
    :param data: its first ``text_index_bytes`` bytes (all of them if ``complete``)
    :param complete: whether ``data`` is the whole artifact
    """


# -- lifecycle events (after commit) ---------------------------------------------------------


@hookspec
def artifact_stored(store: ArtifactStore, metadata: ArtifactMetadata, caller: Caller) -> None:
    """A new artifact was committed (store, batch, stream, copy, upload or multipart completion).

    :param store: the store it was stored in
    :param metadata: the new artifact's metadata
    :param caller: the identity of the call (``Caller()`` is the application/admin; for an upload
        finished through a signed URL, the identity the URL was issued to)
    """


@hookspec
def artifact_updated(store: ArtifactStore, metadata: ArtifactMetadata, caller: Caller) -> None:
    """An artifact's bytes or metadata changed (update, metadata, TTL, move).

    :param store: the store it lives in
    :param metadata: the artifact's metadata after the change
    :param caller: the identity of the call
    """


@hookspec
def artifact_deleted(store: ArtifactStore, metadata: ArtifactMetadata, caller: Caller) -> None:
    """An artifact was deleted (by ``delete`` or with its session by ``delete_session``).

    :param store: the store it lived in
    :param metadata: the artifact's metadata as it was before the delete
    :param caller: the identity of the call
    """


@hookspec
def artifact_expired(store: ArtifactStore, metadata: ArtifactMetadata, caller: Caller) -> None:
    """Cleanup removed an artifact past its expiry (or one of an expired session).

    :param store: the store it lived in
    :param metadata: the artifact's metadata as it was
    :param caller: the identity that ran the cleanup
    """


@hookspec
def session_created(store: ArtifactStore, session_id: str, user_id: str | None, caller: Caller) -> None:
    """A session was created, explicitly or on first use by ``store(user_id=…)``.

    :param store: the store whose sandbox holds the session
    :param session_id: the new session's id
    :param user_id: the user the session belongs to, if any
    :param caller: the identity of the call
    """


@hookspec
def session_deleted(store: ArtifactStore, session_id: str, caller: Caller, expired: bool) -> None:
    """A session was deleted (``delete_session``) or swept after it expired (cleanup).

    :param store: the store whose sandbox held the session
    :param session_id: the session's id
    :param caller: the identity of the call
    :param expired: ``True`` when cleanup removed it because it had expired
    """


@hookspec
def access_denied(
    store: ArtifactStore,
    action: str,
    caller: Caller,
    artifact_id: str | None,
    session_id: str | None,
    reason: str,
) -> None:
    """A call was refused with ``AccessDeniedError`` (for audit logs).

    :param store: the store that refused
    :param action: the store method that was called (``retrieve``, ``delete`` …)
    :param caller: the identity the call named
    :param artifact_id: the artifact concerned, if the call named one
    :param session_id: the session concerned, if the call named one
    :param reason: the error message
    """


@hookspec
def share_created(store: ArtifactStore, share: ShareLink, caller: Caller) -> None:
    """A share link was created (``store.share``).

    :param store: the store whose artifact it shares
    :param share: the new link (its ``url`` holds the secret token: do not log it)
    :param caller: the identity of the call
    """


@hookspec
def share_used(store: ArtifactStore, share: ShareLink) -> None:
    """A download through a share link was counted.

    Called before the bytes are sent, or the client is redirected to S3.

    :param store: the store whose artifact was shared
    :param share: the link after the download was counted (``downloads`` includes it)
    """


@hookspec
def share_revoked(store: ArtifactStore, share: ShareLink, caller: Caller) -> None:
    """A share link was revoked (``store.revoke_share``).

    :param store: the store whose artifact it shared
    :param share: the link as revoked
    :param caller: the identity of the call
    """


# -- CLI commands ----------------------------------------------------------------------------


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to ``chuk-admin`` (as sqlite-utils does).

    :param cli: the ``chuk-admin`` click group; call ``cli.command()`` / ``cli.add_command()``
    """
