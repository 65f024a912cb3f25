"""Session providers: the rules every provider shares (``SessionRules``) and the built-in
catalog-backed provider (rows in the ``sessions`` table). The interface is
``interfaces.SessionProvider`` (re-exported here); the store's session methods are in
``session_methods.py``.

A user's live session is reused (``store(user_id=…)`` never mints a session per call). Sessions
slide: using one extends its expiry once less than half of its lifetime is left, so an active
session stays alive without a write on every call.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from .errors import ArtifactNotFoundError, SessionError
from .grid import validate_id
from .interfaces import SessionProvider
from .models import Row

if TYPE_CHECKING:
    from .catalog import Catalog


__all__ = ["SessionProvider", "SessionRules", "CatalogSessions", "new_session_id"]


def new_session_id() -> str:
    """A new session id: ``sess-`` and 128 random bits. A session id is a bearer credential for
    its artifacts, so it embeds nothing that can be guessed (no user id, no time)."""
    return f"sess-{secrets.token_hex(16)}"


class SessionRules(SessionProvider):
    """The session rules every provider shares, written once in terms of its own ``get``,
    ``create`` and ``update`` (declared by ``SessionProvider``): a new row's fields, ``ensure``,
    the sliding expiry (``touch``) and ``live``. A provider subclasses it, implements the rest of
    ``SessionProvider`` and sets ``sandbox_id`` and ``ttl`` (seconds).

    ``_create_conflicts``: what ``create`` raises when another caller created the session
    first (``ensure`` then reads that one instead).
    """

    sandbox_id: str
    ttl: float
    _create_conflicts: tuple[type[BaseException], ...] = (SessionError,)

    def ensure(self, session_id: str, user_id: str | None) -> Row:
        """Make ``session_id`` usable: create it if unknown or expired, extend it when used."""
        now = time.time()
        row = self.get(session_id)
        if row is None or row["expires_at"] <= now:
            try:
                return self.create(user_id, session_id=session_id)
            except self._create_conflicts:
                row = self.get(session_id)  # created concurrently by someone else
                if row is None:
                    raise SessionError(f"could not create session {session_id!r}") from None
        return self.touch(row, now)

    def _new_row(
        self, session_id: str, user_id: str | None, now: float, ttl: float, meta: dict[str, Any] | None
    ) -> Row:
        return {
            "sandbox_id": self.sandbox_id,
            "session_id": session_id,
            "user_id": user_id,
            "created_at": now,
            "last_accessed_at": now,
            "expires_at": now + ttl,
            "ttl": ttl,
            "meta": meta or {},
        }

    def touch(self, row: Row, now: float) -> Row:
        """Slide the session's expiry by its own lifetime once less than half of it is left."""
        if row["expires_at"] - now < row["ttl"] / 2:
            expires_at = now + row["ttl"]
            self.update(row["session_id"], {"expires_at": expires_at, "last_accessed_at": now})
            row = {**row, "expires_at": expires_at, "last_accessed_at": now}
        return row

    def live(self, session_id: str) -> Row:
        """The live session or ``ArtifactNotFoundError``."""
        row = self.get(session_id)
        if row is None or row["expires_at"] <= time.time():
            raise ArtifactNotFoundError(f"session {session_id!r} not found or expired")
        return row


class CatalogSessions(SessionRules):
    """Sessions of one sandbox, kept in the catalog (the built-in ``catalog`` provider)."""

    name = "catalog"

    def __init__(self, catalog: Catalog, sandbox_id: str, ttl_seconds: float) -> None:
        from sqlalchemy.exc import IntegrityError

        self._create_conflicts = (SessionError, IntegrityError)  # two inserts of one new session id
        self.catalog = catalog
        self.sandbox_id = sandbox_id
        self.ttl = ttl_seconds

    def get(self, session_id: str) -> Row | None:
        """The session row, live or expired, or ``None``."""
        return self.catalog.session(self.sandbox_id, session_id)

    def create(
        self,
        user_id: str | None = None,
        *,
        session_id: str | None = None,
        ttl_seconds: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Row:
        """Create a session (a new id unless ``session_id`` is given); replaces an expired one."""
        now = time.time()
        session_id = validate_id(session_id, "session_id") if session_id else new_session_id()
        values = self._new_row(session_id, user_id, now, ttl_seconds or self.ttl, meta)
        with self.catalog.write() as conn:
            existing = self.catalog.get_session(conn, self.sandbox_id, session_id)
            if existing is not None:
                if existing["expires_at"] > now:
                    raise SessionError(f"session {session_id!r} already exists")
                self.catalog.delete_sessions(conn, self.sandbox_id, [session_id])
            self.catalog.insert_session(conn, values)
        return {**values, "created": True}

    def for_user(self, user_id: str) -> Row:
        """The user's live session in this sandbox, created if there is none."""
        now = time.time()
        with self.catalog.read() as conn:
            row = self.catalog.live_user_session(conn, self.sandbox_id, user_id, now)
        if row is None:
            # Check again under a lock so concurrent callers (and processes) share one new session.
            with self.catalog.write() as conn:
                self.catalog.lock(conn, f"user-session:{self.sandbox_id}:{user_id}")
                row = self.catalog.live_user_session(conn, self.sandbox_id, user_id, now)
                if row is None:
                    row = self._new_row(new_session_id(), user_id, now, self.ttl, None)
                    self.catalog.insert_session(conn, row)
                    return {**row, "created": True}
        return self.touch(row, now)

    def update(self, session_id: str, values: Row) -> bool:
        with self.catalog.write() as conn:
            return self.catalog.update_session(conn, self.sandbox_id, session_id, values)

    def delete(self, session_id: str) -> bool:
        with self.catalog.write() as conn:
            return self.catalog.delete_sessions(conn, self.sandbox_id, [session_id]) == 1

    def expired(self, now: float, limit: int) -> list[str]:
        with self.catalog.read() as conn:
            return [s["session_id"] for s in self.catalog.expired_sessions(conn, self.sandbox_id, now, limit)]

    def delete_expired(self, session_ids: list[str], now: float) -> list[str]:
        with self.catalog.write() as conn:  # re-checked in the transaction: a revived one stays
            gone = []
            for session_id in session_ids:
                row = self.catalog.get_session(conn, self.sandbox_id, session_id)
                if row is not None and row["expires_at"] <= now:
                    gone.append(session_id)
            self.catalog.delete_sessions(conn, self.sandbox_id, gone)
        return gone

    def count_live(self, now: float) -> int:
        with self.catalog.read() as conn:
            return self.catalog.count_live_sessions(conn, self.sandbox_id, now)

    def close(self) -> None:
        """Nothing to release: the store closes the catalog."""
