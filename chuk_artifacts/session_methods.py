"""The store's session methods: create, validate, inspect, extend and delete sessions.

With ``user_id`` (or through ``store.as_user``) a call may only touch that user's own sessions;
in strict mode an identity is required. The sessions themselves are kept by the session
provider (``sessions.py`` for the built-in one).
"""

from __future__ import annotations

import time
from typing import Any

from .access import Caller
from .config import MAX_HOURS
from .core import StoreCore
from .errors import AccessDeniedError, ArtifactNotFoundError, InvalidArgumentError
from .events import reports_denials
from .grid import validate_id, validate_meta
from .models import Row, iso

__all__ = ["SessionMethods", "MAX_HOURS"]


def _check_hours(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_HOURS:
        raise InvalidArgumentError(f"{name} must be a positive number of hours (at most {MAX_HOURS})")
    return float(value)


_MAX_SESSION_SECONDS = MAX_HOURS * 3600.0


class SessionMethods(StoreCore):
    """The store's session methods. With ``user_id`` (or through ``store.as_user``) a call may
    only touch that user's own sessions; in strict mode an identity is required."""

    def _own_session(self, session_id: str, user_id: str | None) -> Row | None:
        """The session row (``None`` if unknown), after checking the caller may manage it."""
        caller = self.policy.caller(user_id, session_id, slide=False)
        row = self.sessions.get(session_id)
        if row is not None and user_id is not None and row["user_id"] != caller.user_id:
            raise AccessDeniedError(f"session {session_id!r} does not belong to user {user_id!r}")
        return row

    @reports_denials
    def create_session(
        self,
        user_id: str | None = None,
        ttl_hours: float | None = None,
        custom_metadata: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> str:
        """Create a session (optionally for a user, with its own TTL and metadata); return its id."""
        self.policy.caller(user_id, None)
        seconds = _check_hours(ttl_hours, "ttl_hours") * 3600 if ttl_hours is not None else None
        meta = validate_meta(custom_metadata, self.settings.max_meta_bytes)
        if session_id is not None:
            stale = self.sessions.get(validate_id(session_id, "session_id"))
            if stale is not None and stale["expires_at"] <= time.time():
                # An expired session's artifacts go with it (as a sweep would), never to its next owner.
                self.writer.retire_session(stale)
        row = self.sessions.create(user_id, session_id=session_id, ttl_seconds=seconds, meta=meta)
        self.events.emit("session_created", session_id=row["session_id"], user_id=user_id, caller=Caller(user_id))
        return str(row["session_id"])

    @reports_denials
    def validate_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        """``True`` if the session exists and has not expired."""
        try:
            row = self._own_session(session_id, user_id)
        except AccessDeniedError:
            return False
        return row is not None and row["expires_at"] > time.time()

    @reports_denials
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

    @reports_denials
    def update_session_metadata(self, session_id: str, metadata: dict[str, Any], *, user_id: str | None = None) -> bool:
        """Merge ``metadata`` into the session's custom metadata."""
        row = self._live_own_session(session_id, user_id)
        metadata = validate_meta(metadata, self.settings.max_meta_bytes)
        merged = validate_meta({**(row["meta"] or {}), **metadata}, self.settings.max_meta_bytes)
        return self.sessions.update(session_id, {"meta": merged, "last_accessed_at": time.time()})

    @reports_denials
    def extend_session_ttl(self, session_id: str, additional_hours: float, *, user_id: str | None = None) -> bool:
        """Push the session's expiry back by ``additional_hours``."""
        hours = _check_hours(additional_hours, "additional_hours")
        row = self._live_own_session(session_id, user_id)
        # Bounded (a century from now), so that no number of extensions overflows a date.
        expires_at = min(row["expires_at"] + hours * 3600, time.time() + _MAX_SESSION_SECONDS)
        return self.sessions.update(session_id, {"expires_at": expires_at})

    @reports_denials
    def delete_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        """Delete a session and its session-scoped artifacts (user-scoped ones stay)."""
        row = self._own_session(session_id, user_id)
        owner = user_id if user_id is not None else (row["user_id"] if row is not None else None)
        caller = Caller(owner, session_id)
        self.writer.purge_session(session_id, event="artifact_deleted", caller=caller)
        self.writer.drop_session_uploads(session_id)  # its uploads may not become artifacts later
        deleted = self.sessions.delete(session_id)
        if deleted:
            self.events.emit("session_deleted", session_id=session_id, caller=caller, expired=False)
        return deleted
