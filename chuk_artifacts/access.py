"""Who may do what: the access rules of DESIGN.md as pure functions of an artifact and a caller.

| scope   | read                                    | write / delete     |
|---------|-----------------------------------------|--------------------|
| session | the owning session                      | the owning session |
| user    | the owning user, from any session       | the owning user    |
| sandbox | anyone in the sandbox                   | admin only         |

A caller that names no session but names the user who owns a session-scoped artifact acts for
that user's sessions. A caller with no identity at all is the trusted application (admin).

A session protects its artifacts only while it lives, so a caller naming a session reaches that
session's artifacts only while the session is live (``Caller.session`` is its row), and never
an artifact owned by a user other than the caller's: a deleted or expired session id, or one
that was replaced by someone else, is no key to what it held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Caller", "ADMIN", "can_read", "can_write"]


@dataclass(frozen=True)
class Caller:
    """The identity a call is made with. ``Caller()`` (no ids) is the admin."""

    user_id: str | None = None
    session_id: str | None = None
    #: The live session row read while resolving this identity (``None``: the named session is
    #: unknown, deleted or expired), so the rest of the same call need not read it again.
    #: Never compared, hashed or shown.
    session: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        return self.user_id is None and self.session_id is None


ADMIN = Caller()


def can_read(scope: str, owner_id: str | None, session_id: str | None, caller: Caller) -> bool:
    """May ``caller`` read an artifact of ``scope`` owned by ``owner_id`` in ``session_id``?"""
    if caller.is_admin or scope == "sandbox":
        return True
    if scope == "user":
        return caller.user_id is not None and caller.user_id == owner_id
    if caller.session_id is not None:
        return (
            caller.session is not None
            and caller.session_id == session_id
            and (owner_id is None or owner_id == caller.user_id)
        )
    return caller.user_id is not None and caller.user_id == owner_id


def can_write(scope: str, owner_id: str | None, session_id: str | None, caller: Caller) -> bool:
    """May ``caller`` change or delete such an artifact? Sandbox artifacts are admin-only."""
    if caller.is_admin:
        return True
    if scope == "sandbox":
        return False
    return can_read(scope, owner_id, session_id, caller)
