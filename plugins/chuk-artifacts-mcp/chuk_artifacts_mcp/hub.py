"""Where a store's changes meet the MCP servers that serve it. Cheap to import (the standard
library and ``chuk_artifacts.access`` only), because the lifecycle hooks import it in every process
that has the plugin installed, served or not.

- ``Change``: what changed, with enough of the artifact's row to decide who may see it.
- The notifiers serving each store (``attach``/``detach``/``notifiers_for``), looked up by the hooks.
- The change-feed origin of each store (``enable_feed``/``feed_origin``): set when a server watches
  the catalog or the process runs with ``CHUK_MCP_CHANGE_FEED=1``; ``None`` means "write no feed".
"""

from __future__ import annotations

import os
import threading
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

from chuk_artifacts.access import Caller, can_read

__all__ = [
    "FEED_ENV_VAR",
    "Change",
    "attach",
    "detach",
    "enable_feed",
    "feed_origin",
    "notifiers_for",
    "artifact_uri",
    "session_uri",
    "user_uri",
]

FEED_ENV_VAR = "CHUK_MCP_CHANGE_FEED"


def artifact_uri(artifact_id: str) -> str:
    return f"artifact://{artifact_id}"


def session_uri(session_id: str) -> str:
    return f"artifacts://sessions/{session_id}"


def user_uri(user_id: str) -> str:
    return f"artifacts://users/{user_id}"


@dataclass(frozen=True)
class Change:
    """What changed: enough of the artifact's row to decide who may see it."""

    kind: str  # stored, updated, deleted, expired
    artifact_id: str
    scope: str
    owner_id: str | None
    session_id: str | None

    @classmethod
    def from_metadata(cls, kind: str, metadata: Any) -> Change:
        return cls(kind, metadata.artifact_id, metadata.scope, metadata.owner_id, metadata.session_id)

    def visible_to(self, user_id: str | None, session_id: str | None) -> bool:
        """May a client acting as (``user_id``, ``session_id``) read the artifact?"""
        if session_id is None:
            # A client without its store session yet has no session-scope artifacts (the store
            # would let a session-less user read all of that user's sessions), and a client with
            # no identity at all is not the store's admin (``Caller()``).
            if self.scope == "session" or user_id is None:
                return self.scope == "sandbox"
        # A client's store session is live (its server replaces one that expired), so the
        # caller is built as the store builds a caller of a live session; a notification is a
        # cue only: the read it prompts is checked by the store itself.
        live = {"session_id": session_id, "user_id": user_id} if session_id is not None else None
        return can_read(self.scope, self.owner_id, self.session_id, Caller(user_id, session_id, session=live))

    def uris(self) -> list[str]:
        """The resources this change touches: the artifact, and the listing it appears in."""
        uris = [artifact_uri(self.artifact_id)]
        if self.scope == "session" and self.session_id:
            uris.append(session_uri(self.session_id))
        if self.scope == "user" and self.owner_id:
            uris.append(user_uri(self.owner_id))
        return uris


class Listener(Protocol):
    def changed(self, change: Change) -> None: ...


_lock = threading.Lock()
_notifiers: weakref.WeakKeyDictionary[Any, list[Listener]] = weakref.WeakKeyDictionary()
_origins: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def attach(store: Any, notifier: Listener) -> None:
    with _lock:
        _notifiers.setdefault(store, []).append(notifier)


def detach(store: Any, notifier: Listener) -> None:
    with _lock:
        found = _notifiers.get(store, [])
        if notifier in found:
            found.remove(notifier)


def notifiers_for(store: Any) -> list[Listener]:
    with _lock:
        return list(_notifiers.get(store, ()))


def enable_feed(store: Any) -> str:
    """Write ``store``'s changes to the change feed from now on; returns its origin token."""
    with _lock:
        origin = _origins.get(store)
        if origin is None:
            origin = _origins[store] = uuid.uuid4().hex
        return origin


def feed_origin(store: Any) -> str | None:
    """The store's origin token if its changes go to the feed, else ``None``."""
    with _lock:
        origin = _origins.get(store)
    if origin is None and os.environ.get(FEED_ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on"):
        if getattr(store.catalog, "in_memory", False):
            return None  # no other process can read an in-memory catalog
        origin = enable_feed(store)
    return origin
