"""Identity-bound views: ``store.as_user("alice")`` acts as alice on every call, so a server
cannot forget to pass the identity. Naming a different identity on a view is refused."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from .errors import AccessDeniedError
from .policy import admin_call

__all__ = ["BoundStore"]

_VIEW_FACTORIES = {"as_user", "as_session", "as_admin", "runs_inline"}
#: The signatures of the store's methods, computed once per function (``inspect.signature``
#: costs tens of microseconds; a view looks one up on every attribute access).
_SIGNATURES: dict[Any, inspect.Signature | None] = {}


def _signature(method: Any) -> inspect.Signature | None:
    function = getattr(method, "__func__", method)
    try:
        return _SIGNATURES[function]
    except KeyError:
        pass
    except TypeError:  # unhashable
        return None
    try:
        signature: inspect.Signature | None = inspect.signature(method)
    except (TypeError, ValueError):
        signature = None
    if len(_SIGNATURES) < 4096:
        _SIGNATURES[function] = signature
    return signature


class BoundStore:
    """Wraps a store; methods that take ``user_id``/``session_id`` get this view's identity."""

    def __init__(
        self,
        store: Any,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        admin: bool = False,
    ) -> None:
        self._store = store
        self.user_id = user_id
        self.session_id = session_id
        self.admin = admin

    def __repr__(self) -> str:
        who = "admin" if self.admin else f"user_id={self.user_id!r} session_id={self.session_id!r}"
        return f"<BoundStore {who} of {self._store!r}>"

    def close(self) -> None:
        """A view does not own its store: closing it does nothing."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name.startswith("_") or not callable(attr) or name in _VIEW_FACTORIES:
            return attr
        signature = _signature(attr)
        if signature is None:
            return attr
        params = signature.parameters
        if "user_id" not in params and "session_id" not in params and not self.admin:
            return attr  # (an admin view wraps these too: cleanup_expired_sessions, stream_upload …)
        return self._bind(name, attr, signature)

    def _session_owner(self) -> str | None:
        """The user of this view's session while it is live (``None``: no user, or not live)."""
        info = self._store.get_session_info(self.session_id)
        return info["user_id"] if info is not None else None

    def runs_inline(self, name: str) -> bool:
        """As ``ArtifactStore.runs_inline``: a view adds no I/O."""
        return bool(self._store.runs_inline(name))

    def _bind(self, name: str, method: Any, signature: inspect.Signature) -> Any:

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs)
            given_user = bound.arguments.get("user_id")
            if self.user_id is None and self.session_id is not None and given_user is not None:
                # A session view acts as its session's owner, or as no user: never as another.
                owner = self._session_owner()
                if given_user != owner:
                    raise AccessDeniedError(
                        f"this view acts as session_id={self.session_id!r} (user {owner!r}), not user_id={given_user!r}"
                    )
            for param, mine in (("user_id", self.user_id), ("session_id", self.session_id)):
                if param not in signature.parameters or mine is None:
                    continue
                given = bound.arguments.get(param)
                if given is not None and given != mine:
                    raise AccessDeniedError(f"this view acts as {param}={mine!r}, not {given!r}")
                bound.arguments[param] = mine
            if self.admin:
                token = admin_call.set(True)
                try:
                    return method(*bound.args, **bound.kwargs)
                finally:
                    admin_call.reset(token)
            return method(*bound.args, **bound.kwargs)

        return call
