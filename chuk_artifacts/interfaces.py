"""The interfaces plugins implement, apart from the built-in implementations.

- ``SessionProvider``: what the store needs from a session provider (hook ``session_provider``);
  the built-in one is ``sessions.CatalogSessions``, ``chuk-artifacts-redis`` adds another.
- ``Presigner``: makes download, upload and part URLs (hook ``presigner``); the built-ins are
  ``signing.HmacPresigner`` (gateway URLs) and ``s3.S3Presigner`` (SigV4).

``chuk_artifacts.testing`` has conformance kits that check an implementation against these.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .models import Row

__all__ = ["SessionProvider", "Presigner"]


@runtime_checkable
class SessionProvider(Protocol):
    """What ``ArtifactStore`` needs from a session provider (hook ``session_provider``).

    One provider serves one sandbox. A session is a dict with ``sandbox_id``, ``session_id``,
    ``user_id`` (or ``None``), ``created_at``, ``last_accessed_at``, ``expires_at`` (epoch
    seconds, from ``time.time()``), ``ttl`` (its sliding lifetime in seconds) and ``meta`` (a JSON
    object). Rows returned by ``create``, ``for_user`` and ``ensure`` carry ``created=True`` when
    that call created the session. An expired session may still be returned by ``get`` until it
    is swept (callers compare ``expires_at`` with ``time.time()``) or it may be gone already.
    ``chuk_artifacts.testing.SessionProviderConformance`` checks all of this.
    """

    name: str

    def get(self, session_id: str) -> Row | None:
        """The session, live or expired, or ``None`` if unknown."""

    def create(
        self,
        user_id: str | None = None,
        *,
        session_id: str | None = None,
        ttl_seconds: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Row:
        """A new session (``SessionError`` if ``session_id`` is live; an expired one is replaced)."""

    def for_user(self, user_id: str) -> Row:
        """The user's live session that expires last, or a new one: one session per user even
        when several threads or processes ask at once. Slides the session (``touch``)."""

    def ensure(self, session_id: str, user_id: str | None) -> Row:
        """``session_id`` made usable: created if unknown or expired, slid if live."""

    def touch(self, row: Row, now: float) -> Row:
        """Slide the expiry by the session's ``ttl`` once less than half of it is left."""

    def live(self, session_id: str) -> Row:
        """The live session, or ``ArtifactNotFoundError``."""

    def update(self, session_id: str, values: Row) -> bool:
        """Set ``meta``, ``expires_at`` and/or ``last_accessed_at``; ``False`` if unknown."""

    def delete(self, session_id: str) -> bool:
        """Remove the session; ``False`` if there was none."""

    def expired(self, now: float, limit: int) -> list[str]:
        """Up to ``limit`` ids of sessions expired at ``now`` and not yet swept (for cleanup)."""

    def delete_expired(self, session_ids: list[str], now: float) -> list[str]:
        """Remove those of ``session_ids`` still expired at ``now``; return the ids removed."""

    def count_live(self, now: float) -> int:
        """How many sessions of the sandbox are live at ``now``."""

    def close(self) -> None:
        """Release connections; the store calls it once, from ``close()``."""


class Presigner(Protocol):
    """Makes URLs that let a client GET an object, PUT an upload, or PUT one multipart part."""

    name: str

    def download_url(self, row: Row, expires: int) -> str: ...

    def upload_url(self, upload: Row, expires: int) -> str: ...

    def part_url(self, upload: Row, part_number: int, expires: int) -> str: ...
