"""Lifecycle events for plugins: the store calls these after a change has been committed.

When no plugin implements an event the cost is one list check: no metadata is built and no
rows are read. An exception raised by a plugin is logged and swallowed, because the operation it
reports on has already succeeded. Every public store method reports an ``AccessDeniedError``
it raises to the ``access_denied`` hook, once: by the innermost public method it passes through
(``write_file`` overwriting reports as ``update_file``, which names the artifact).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .access import Caller
from .errors import AccessDeniedError

__all__ = ["EventsMixin"]

logger = logging.getLogger("chuk_artifacts.events")

#: Public methods that never refuse access (no identity) and are not wrapped.
_NOT_WRAPPED = {"as_user", "as_session", "as_admin", "close", "parse_grid_key"}


def _hook(name: str) -> Any:
    from .plugins import ensure_plugins_loaded

    return getattr(ensure_plugins_loaded().hook, name)


def _call(name: str, **kwargs: Any) -> None:
    try:
        _hook(name)(**kwargs)
    except Exception:
        logger.exception("chuk_artifacts plugin hook %s failed (the operation itself succeeded)", name)


class EventsMixin:
    """Event emission for ``ArtifactStore`` and the ``access_denied`` wrapper of its methods."""

    def _listening(self, event: str) -> bool:
        """Does any plugin implement ``event``? (cheap; lets callers skip building arguments)"""
        return bool(_hook(event).get_hookimpls())

    def _emit(self, event: str, **kwargs: Any) -> None:
        """Call ``event`` with ``store=self`` and ``kwargs`` if any plugin implements it."""
        if self._listening(event):
            _call(event, store=self, **kwargs)

    def _emit_rows(self, event: str | None, rows: Iterable[dict[str, Any]], caller: Caller | None) -> None:
        """Call an artifact event once per catalog row."""
        if event is None or not self._listening(event):
            return
        for row in rows:
            _call(event, store=self, metadata=self._to_metadata(row), caller=caller or Caller())

    def _updated(self, row: dict[str, Any], user_id: str | None, session_id: str | None) -> dict[str, Any]:
        """Report an artifact update (``row`` as committed) and pass the row through."""
        self._emit_rows("artifact_updated", [row], Caller(user_id, session_id))
        return row

    def _rows_for_event(self, conn: Any, event: str | None, row_ids: list[int]) -> list[dict[str, Any]]:
        """Whole rows to report ``event`` for, read only when some plugin implements it."""
        if event is None or not row_ids or not self._listening(event):
            return []
        return self.catalog.get_artifacts_by_row_ids(conn, row_ids)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in dir(cls):
            if name.startswith("_") or name in _NOT_WRAPPED:
                continue
            method = inspect.getattr_static(cls, name)
            if not inspect.isfunction(method) or getattr(method, "_chuk_reports_denials", False):
                continue
            setattr(cls, name, _reporting_denials(name, method))


def _reporting_denials(action: str, method: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(method)

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except AccessDeniedError as exc:
            if not getattr(exc, "_chuk_reported", False):
                exc._chuk_reported = True  # type: ignore[attr-defined]
                _report_denial(self, action, signature, args, kwargs, exc)
            raise

    call._chuk_reports_denials = True  # type: ignore[attr-defined]
    return call


def _report_denial(
    store: Any, action: str, signature: inspect.Signature, args: tuple, kwargs: dict, exc: Exception
) -> None:
    if not store._listening("access_denied"):
        return
    try:
        arguments = signature.bind_partial(store, *args, **kwargs).arguments
    except TypeError:
        arguments = {}
    request = arguments.get("request")  # stream_*, multipart: ids live on the request object

    def named(name: str) -> Any:
        value = arguments.get(name)
        if value is None and request is not None:
            value = getattr(request, name, None)
        return value if isinstance(value, str) else None

    user_id, session_id = named("user_id"), named("session_id")
    _call(
        "access_denied",
        store=store,
        action=action,
        caller=Caller(user_id, session_id),
        artifact_id=named("artifact_id"),
        session_id=session_id,
        reason=str(exc),
    )
