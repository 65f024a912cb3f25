"""Sessions: the session provider interface (``SessionProvider``), the rules every provider
shares (``SessionRules``), the catalog-backed provider (rows in the ``sessions`` table) and the
store's session methods.

A user's live session is reused (``store(user_id=…)`` never mints a session per call). Sessions
slide: using one extends its expiry once less than half of its lifetime is left, so an active
session stays alive without a write on every call.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.exc import IntegrityError

from .access import Caller
from .catalog import Catalog, Row
from .errors import AccessDeniedError, ArtifactNotFoundError, InvalidArgumentError, SessionError
from .grid import validate_id, validate_meta
from .models import iso

__all__ = ["SessionProvider", "SessionRules", "CatalogSessions", "SessionMethodsMixin", "new_session_id"]


def new_session_id(user_id: str | None) -> str:
    token = secrets.token_hex(6)
    if user_id:
        return f"sess-{user_id[:80]}-{int(time.time())}-{token}"
    return f"sess-{int(time.time())}-{token}"


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


class SessionRules:
    """The session rules every provider shares, written once in terms of its own ``get``,
    ``create`` and ``update``: a new row's fields, ``ensure``, the sliding expiry (``touch``)
    and ``live``. A provider subclasses it and sets ``sandbox_id`` and ``ttl`` (seconds).

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
    _create_conflicts = (SessionError, IntegrityError)  # two inserts of one new session id

    def __init__(self, catalog: Catalog, sandbox_id: str, ttl_seconds: float) -> None:
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
        session_id = validate_id(session_id, "session_id") if session_id else new_session_id(user_id)
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
                    row = self._new_row(new_session_id(user_id), user_id, now, self.ttl, None)
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


def _check_hours(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_HOURS:
        raise InvalidArgumentError(f"{name} must be a positive number of hours (at most {MAX_HOURS})")
    return float(value)


MAX_HOURS = 100 * 365 * 24
_MAX_SESSION_SECONDS = MAX_HOURS * 3600.0


class SessionMethodsMixin:
    """The store's session methods. With ``user_id`` (or through ``store.as_user``) a call may
    only touch that user's own sessions; in strict mode an identity is required."""

    def _own_session(self, session_id: str, user_id: str | None) -> Row | None:
        """The session row (``None`` if unknown), after checking the caller may manage it."""
        caller = self._caller(user_id, session_id)
        row = self.sessions.get(session_id)
        if row is not None and user_id is not None and row["user_id"] != caller.user_id:
            raise AccessDeniedError(f"session {session_id!r} does not belong to user {user_id!r}")
        return row

    def create_session(
        self,
        user_id: str | None = None,
        ttl_hours: float | None = None,
        custom_metadata: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> str:
        """Create a session (optionally for a user, with its own TTL and metadata); return its id."""
        self._caller(user_id, None)
        seconds = _check_hours(ttl_hours, "ttl_hours") * 3600 if ttl_hours is not None else None
        meta = validate_meta(custom_metadata, self.settings.max_meta_bytes)
        if session_id is not None:
            stale = self.sessions.get(validate_id(session_id, "session_id"))
            if stale is not None and stale["expires_at"] <= time.time():
                # An expired session's artifacts go with it (as a sweep would), never to its next owner.
                self._purge_session_artifacts(session_id, event="artifact_expired", caller=Caller(None, None))
        row = self.sessions.create(user_id, session_id=session_id, ttl_seconds=seconds, meta=meta)
        self._emit("session_created", session_id=row["session_id"], user_id=user_id, caller=Caller(user_id))
        return row["session_id"]

    def validate_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        """``True`` if the session exists and has not expired."""
        try:
            row = self._own_session(session_id, user_id)
        except AccessDeniedError:
            return False
        return row is not None and row["expires_at"] > time.time()

    def get_session_info(self, session_id: str, *, user_id: str | None = None) -> dict[str, Any] | None:
        """The session's details, or ``None`` if it does not exist or has expired."""
        row = self._own_session(session_id, user_id)
        if row is None or row["expires_at"] <= time.time():
            return None
        return {
            "session_id": row["session_id"],
            "sandbox_id": row["sandbox_id"],
            "user_id": row["user_id"],
            "created_at": iso(row["created_at"]),
            "last_accessed_at": iso(row["last_accessed_at"]),
            "expires_at": iso(row["expires_at"]),
            "custom_metadata": dict(row["meta"] or {}),
            "session_provider": self.session_provider,
        }

    def _live_own_session(self, session_id: str, user_id: str | None) -> Row:
        row = self._own_session(session_id, user_id)
        if row is None or row["expires_at"] <= time.time():
            raise ArtifactNotFoundError(f"session {session_id!r} not found or expired")
        return row

    def update_session_metadata(
        self, session_id: str, metadata: dict[str, Any], *, user_id: str | None = None
    ) -> bool:
        """Merge ``metadata`` into the session's custom metadata."""
        row = self._live_own_session(session_id, user_id)
        metadata = validate_meta(metadata, self.settings.max_meta_bytes)
        merged = validate_meta({**(row["meta"] or {}), **metadata}, self.settings.max_meta_bytes)
        return self.sessions.update(session_id, {"meta": merged, "last_accessed_at": time.time()})

    def extend_session_ttl(
        self, session_id: str, additional_hours: float, *, user_id: str | None = None
    ) -> bool:
        """Push the session's expiry back by ``additional_hours``."""
        hours = _check_hours(additional_hours, "additional_hours")
        row = self._live_own_session(session_id, user_id)
        # Bounded (a century from now), so that no number of extensions overflows a date.
        expires_at = min(row["expires_at"] + hours * 3600, time.time() + _MAX_SESSION_SECONDS)
        return self.sessions.update(session_id, {"expires_at": expires_at})

    def delete_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        """Delete a session and its session-scoped artifacts (user-scoped ones stay)."""
        row = self._own_session(session_id, user_id)
        caller = Caller(user_id if user_id is not None else row and row["user_id"], session_id)
        self._purge_session_artifacts(session_id, event="artifact_deleted", caller=caller)
        deleted = self.sessions.delete(session_id)
        if deleted:
            self._emit("session_deleted", session_id=session_id, caller=caller, expired=False)
        return deleted

    def _purge_session_artifacts(
        self, session_id: str, *, event: str | None = None, caller: Caller | None = None
    ) -> tuple[int, int]:
        count = freed = 0
        while True:
            with self.catalog.read() as conn:
                ids = self.catalog.session_artifact_ids(conn, self.sandbox_id, session_id, 500)
            if not ids:
                return count, freed
            n, b = self._purge(ids, event=event, caller=caller)
            if n == 0:
                return count, freed  # someone else is removing them
            count, freed = count + n, freed + b
