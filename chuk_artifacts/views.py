"""Identity-bound views: ``store.as_user("alice")`` acts as alice on every call, so a server
cannot forget to pass the identity. Naming a different identity on a view is refused."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from .errors import AccessDeniedError

__all__ = ["BoundStore"]

_VIEW_FACTORIES = {"as_user", "as_session", "as_admin"}


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
        try:
            params = inspect.signature(attr).parameters
        except (TypeError, ValueError):
            return attr
        if "user_id" not in params and "session_id" not in params and not self.admin:
            return attr  # (an admin view wraps these too: cleanup_expired_sessions, stream_upload …)
        return self._bind(name, attr, inspect.signature(attr))

    def _bind(self, name: str, method: Any, signature: inspect.Signature) -> Any:
        from .store import _admin_call

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs)
            for param, mine in (("user_id", self.user_id), ("session_id", self.session_id)):
                if param not in signature.parameters or mine is None:
                    continue
                given = bound.arguments.get(param)
                if given is not None and given != mine:
                    raise AccessDeniedError(f"this view acts as {param}={mine!r}, not {given!r}")
                bound.arguments[param] = mine
            if self.admin:
                token = _admin_call.set(True)
                try:
                    return method(*bound.args, **bound.kwargs)
                finally:
                    _admin_call.reset(token)
            return method(*bound.args, **bound.kwargs)

        return call
