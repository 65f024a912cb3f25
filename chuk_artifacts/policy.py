"""Policy: who is calling, what they may touch, and where a new artifact goes.

Every rule of ``docs/access-control.md`` that needs state is applied here, once: the identity a
call names (a session's owner is its user), the live row of an artifact (never an expired one),
the scope rules of ``access.py``, TTL limits, and the session a new artifact is placed in.
``Policy`` reads the catalog and the session provider; it never writes bytes and never calls
the store back.
"""

from __future__ import annotations

import contextvars
import hashlib
import math
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, NoReturn

from . import grid
from .access import Caller, can_read, can_write
from .config import MAX_TTL
from .errors import (
    AccessDeniedError,
    ArtifactCorruptedError,
    ArtifactExpiredError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidArgumentError,
)
from .models import _DEFAULT

if TYPE_CHECKING:
    from .catalog import Catalog
    from .config import Settings
    from .events import Events
    from .interfaces import SessionProvider
    from .models import Row

__all__ = ["Policy", "MAX_TTL", "admin_call", "UNREAD"]

#: "Not read yet" for rows a caller may hand down (``None`` is a row that does not exist).
UNREAD: Any = object()
#: Set while an explicit admin view runs a call, so strict mode lets it through.
admin_call: contextvars.ContextVar[bool] = contextvars.ContextVar("chuk_admin_call", default=False)


class Policy:
    """The access, TTL and placement rules of one store (one sandbox)."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        sessions: SessionProvider,
        events: Events,
        *,
        storage_provider: str,
        sessions_in_catalog: bool,
        arrivals: Callable[[str], Row | None] | None = None,
        retire: Callable[[Row], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.sandbox_id = settings.sandbox_id
        self.catalog = catalog
        self.sessions = sessions
        self.events = events
        self.storage_provider = storage_provider
        #: The built-in provider keeps sessions in this catalog: ``accessible`` may then read
        #: the session and the artifact together (a subclass may change ``get``, so not for those).
        self.sessions_in_catalog = sessions_in_catalog
        #: Backends whose uploads arrive unseen (S3 presigned PUTs): finds and registers an
        #: auto-register upload for an artifact id the catalog does not know yet.
        self.arrivals = arrivals
        #: Removes what an expired session held (its session-scoped artifacts from before it
        #: expired, its open uploads) before a store replaces it with a new session of that id.
        self.retire = retire
        self.closed = False
        self._anonymous_session_id: str | None = None

    # -- identity -------------------------------------------------------------------------

    def caller(
        self, user_id: str | None, session_id: str | None, *, session_row: Any = UNREAD, slide: bool = True
    ) -> Caller:
        """Validate the identity a call names; resolve a session's owner as its user.
        ``session_row``: the session's row when the caller has read it already (and so has
        validated ``session_id``).

        Only a live session is an identity: an unknown, deleted or expired one resolves no
        user, and reaches none of its artifacts (``Caller.session`` is ``None``). Using a live
        session, by reading as well as by writing, slides its expiry (``SessionRules.touch``),
        except with ``slide=False`` (the session methods, which inspect a session, not use it).
        """
        if self.closed:
            raise ArtifactStoreError("the store is closed")
        if user_id is not None:
            grid.validate_id(user_id, "user_id")
        row = None
        if session_id is not None:
            if session_row is UNREAD:
                grid.validate_id(session_id, "session_id")
            row = self.sessions.get(session_id) if session_row is UNREAD else session_row
            if row is not None:
                now = time.time()
                if row["expires_at"] <= now:
                    row = None
                else:
                    if row["user_id"] is not None:
                        if user_id is not None and row["user_id"] != user_id:
                            raise AccessDeniedError(f"session {session_id!r} belongs to another user")
                        user_id = row["user_id"]
                    if slide:
                        row = self.sessions.touch(row, now)
        if user_id is None and session_id is None and self.settings.strict and not admin_call.get():
            raise AccessDeniedError(
                "strict mode: every call must name a user_id or session_id "
                "(use store.as_user(...), store.as_session(...) or store.as_admin())"
            )
        return Caller(user_id, session_id, session=row)

    # -- artifacts ------------------------------------------------------------------------

    def load(self, artifact_id: str, *, allow_expired: bool = False, row: Any = UNREAD) -> Row:
        """The live row of ``artifact_id`` (``row``: as the caller has read it already, having
        validated ``artifact_id``)."""
        if row is UNREAD:
            grid.validate_id(artifact_id, "artifact_id")
            row = self.catalog.artifact(artifact_id)
        if row is None and self.arrivals is not None:
            row = self.arrivals(artifact_id)
        return self.live(row, artifact_id, allow_expired=allow_expired)

    def live(self, row: Row | None, label: str, *, allow_expired: bool = False) -> Row:
        if row is None or row["state"] != "committed" or row["sandbox_id"] != self.sandbox_id:
            raise ArtifactNotFoundError(f"artifact {label!r} not found")
        if not allow_expired and row["expires_at"] is not None and row["expires_at"] <= time.time():
            raise ArtifactExpiredError(f"artifact {label!r} has expired")
        return row

    def row_for_key(self, key: str) -> Row:
        """The live artifact stored at ``key`` (the gateway finds artifacts by signed key)."""
        if grid.parse_grid_key(key).sandbox_id != self.sandbox_id:
            raise ArtifactNotFoundError(f"no artifact at {key!r}")
        with self.catalog.read() as conn:
            row = self.catalog.get_artifact_by_key(conn, key)
        return self.live(row, key)

    def missing_bytes(self, row: Row) -> NoReturn:
        """Raise for an artifact whose bytes are gone: a concurrent delete (not found) or a real
        loss (corrupted)."""
        current = self.catalog.artifact(row["artifact_id"])
        if current is None or current["state"] != "committed":
            raise ArtifactNotFoundError(f"artifact {row['artifact_id']!r} not found")
        raise ArtifactCorruptedError(f"artifact {row['artifact_id']!r}: its bytes are missing")

    @staticmethod
    def require(row: Row, caller: Caller, *, write: bool) -> None:
        check = can_write if write else can_read
        if not check(row["scope"], row["owner_id"], row["session_id"], caller):
            verb = "modify" if write else "read"
            raise AccessDeniedError(f"access denied: cannot {verb} artifact {row['artifact_id']!r}")

    def accessible(self, artifact_id: str, user_id: str | None, session_id: str | None, *, write: bool = False) -> Row:
        """The live row of ``artifact_id`` if the identity may read (or ``write``) it."""
        return self.access(artifact_id, user_id, session_id, write=write)[1]

    def access(
        self,
        artifact_id: str,
        user_id: str | None,
        session_id: str | None,
        *,
        write: bool = False,
        allow_expired: bool = False,
    ) -> tuple[Caller, Row]:
        """The caller, and the live row of ``artifact_id`` if the caller may read (or
        ``write``) it; ``allow_expired``: an expired row too."""
        session_row = artifact_row = UNREAD
        if session_id is not None and not self.closed and self.sessions_in_catalog:
            # The usual request of a server (an artifact, as a session): both rows in one round.
            grid.validate_id(session_id, "session_id")
            grid.validate_id(artifact_id, "artifact_id")
            session_row, artifact_row = self.catalog.session_and_artifact(self.sandbox_id, session_id, artifact_id)
        caller = self.caller(user_id, session_id, session_row=session_row)
        row = self.load(artifact_id, row=artifact_row, allow_expired=allow_expired)
        self.require(row, caller, write=write)
        return caller, row

    # -- values ---------------------------------------------------------------------------

    def ttl(self, ttl: Any, scope: str) -> int | None:
        if ttl is _DEFAULT:
            return self.settings.default_ttl if scope == "session" else None
        if ttl is None:
            return None
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl):
            raise InvalidArgumentError("ttl must be a number of seconds or None")
        if not 1 <= ttl <= MAX_TTL:
            raise InvalidArgumentError(f"ttl must be between 1 and {MAX_TTL} seconds, or None")
        return int(math.ceil(ttl))

    def ttl_values(self, ttl: Any, scope: str) -> Row:
        seconds = self.ttl(ttl, scope)
        return {"ttl": seconds, "expires_at": time.time() + seconds if seconds else None}

    @staticmethod
    def changed_fields(**fields: Any) -> Row:
        checks = {"mime": grid.validate_mime, "summary": grid.validate_summary, "filename": grid.validate_filename}
        return {name: checks[name](value) for name, value in fields.items() if value is not None}

    def merged_meta(self, row: Row, meta: dict[str, Any], *, merge: bool) -> dict[str, Any]:
        """The row's meta with ``meta`` (validated by the caller) merged in, or ``meta`` alone."""
        if not merge:
            return dict(meta)
        return grid.merge_meta(row["meta"] or {}, meta, self.settings.max_meta_bytes)

    # -- placement of new artifacts -------------------------------------------------------

    def placement(
        self, scope: str, caller: Caller, artifact_id: str, like: Row | None = None
    ) -> tuple[str | None, str | None, str]:
        """Where a new artifact goes: (session_id, owner_id, key), creating a session if needed.

        ``like``: an earlier row of the same batch (same caller and scope), whose session and
        owner the artifact shares — so a batch resolves its session once, not once per item.
        """
        grid.validate_scope(scope)
        if like is not None:
            session_id, owner = like["session_id"], like["owner_id"]
            key = grid.make_key(self.sandbox_id, scope, artifact_id, session_id=session_id, user_id=owner)
            return session_id, owner, key
        if scope == "sandbox":
            if not caller.is_admin:
                raise AccessDeniedError("only the application (admin) may write sandbox-scoped artifacts")
            return None, None, grid.make_key(self.sandbox_id, "sandbox", artifact_id)
        if scope == "user" and caller.user_id is None:
            raise InvalidArgumentError("scope='user' needs a user_id")
        if caller.session_id is not None:
            session = self._usable_session(caller)
        elif caller.user_id is not None:
            session = self.sessions.for_user(caller.user_id)
        else:
            session = self._anonymous_session()
        if session.get("created"):
            self.events.emit(
                "session_created", session_id=session["session_id"], user_id=session["user_id"], caller=caller
            )
        owner = caller.user_id if caller.user_id is not None else session["user_id"]
        key = grid.make_key(self.sandbox_id, scope, artifact_id, session_id=session["session_id"], user_id=owner)
        return session["session_id"], owner, key

    def _usable_session(self, caller: Caller) -> Row:
        """The caller's session, ready for a new artifact: the live row ``caller`` holds (slid
        already), else a new session of that id. An expired one is replaced, never revived: the
        artifacts of its old lifetime go first (``retire``), as a sweep would remove them."""
        known = caller.session
        if known is not None and known["session_id"] == caller.session_id:
            return known
        stale = self.sessions.get(caller.session_id)  # type: ignore[arg-type]
        if stale is not None and stale["expires_at"] <= time.time() and self.retire is not None:
            self.retire(stale)
        return self.sessions.ensure(caller.session_id, caller.user_id)  # type: ignore[arg-type]

    def _anonymous_session(self) -> Row:
        """The session of this store's identity-less (application) writes, reused across calls."""
        if self._anonymous_session_id is not None:
            return self.sessions.ensure(self._anonymous_session_id, None)
        row = self.sessions.create(None)
        self._anonymous_session_id = row["session_id"]
        return row

    def new_row(
        self,
        *,
        data: bytes | None,
        mime: str,
        summary: str,
        meta: Any,
        filename: Any,
        ttl: Any,
        scope: str,
        caller: Caller,
        like: Row | None = None,
    ) -> Row:
        """Validate everything about a new artifact and return its catalog row (not yet written).

        With ``data=None`` (streamed or uploaded bytes) size and sha256 are filled in later.
        """
        grid.validate_scope(scope)
        seconds = self.ttl(ttl, scope)
        values = {
            "mime": grid.validate_mime(mime),
            "summary": grid.validate_summary(summary),
            "meta": grid.validate_meta(meta, self.settings.max_meta_bytes),
            "filename": grid.validate_filename(filename),
            "ttl": seconds,
        }
        artifact_id = uuid.uuid4().hex
        session_id, owner_id, key = self.placement(scope, caller, artifact_id, like)
        now = time.time()
        return {
            "artifact_id": artifact_id,
            "sandbox_id": self.sandbox_id,
            "scope": scope,
            "session_id": session_id,
            "owner_id": owner_id,
            "key": key,
            "bytes": len(data) if data is not None else 0,
            "sha256": hashlib.sha256(data).hexdigest() if data is not None else "",
            "stored_at": now,
            "updated_at": now,
            "expires_at": now + seconds if seconds else None,
            "state": "committed",
            "version": 1,
            "pending_key": None,
            "storage_provider": self.storage_provider,
            "session_provider": self.sessions.name,
            **values,
        }
