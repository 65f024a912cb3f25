"""Lifecycle events for plugins: the store reports a change after it has been committed.

When no plugin implements an event the cost is one check: no metadata is built and no rows are
read. An exception raised by a plugin is logged and swallowed, because the operation it reports
on has already succeeded.

Denials: every public store method is decorated with ``@reports_denials``, which reports an
``AccessDeniedError`` it raises to the ``access_denied`` hook, once — by the innermost decorated
method it passes through (``write_file`` overwriting reports as ``update_file``, which names the
artifact).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from .access import Caller
from .errors import AccessDeniedError
from .models import metadata_from_row

if TYPE_CHECKING:
    from .plugins import PluginManager

__all__ = ["Events", "reports_denials"]

logger = logging.getLogger("chuk_artifacts.events")

F = TypeVar("F", bound=Callable[..., Any])


def _manager() -> PluginManager:
    from .plugins import ensure_plugins_loaded

    return ensure_plugins_loaded()


class Events:
    """Calls the lifecycle hooks for one store (passed to plugins as ``store=``)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._pm = _manager()
        self._hook = self._pm.hook
        self._quiet: dict[tuple[str, ...], tuple[int, bool]] = {}

    def listening(self, event: str) -> bool:
        """Does any plugin implement ``event``? (cheap; lets callers skip building arguments)"""
        return bool(getattr(self._hook, event).get_hookimpls())

    def quiet(self, events: tuple[str, ...]) -> bool:
        """Does no plugin implement any of ``events``? Computed once per plugin generation
        (``plugins.PluginManager``): registering or unregistering a plugin is seen at once."""
        generation = self._pm.generation
        known = self._quiet.get(events)
        if known is not None and known[0] == generation:
            return known[1]
        answer = not any(self.listening(event) for event in events)
        self._quiet[events] = (generation, answer)
        return answer

    def emit(self, event: str, **kwargs: Any) -> None:
        """Call ``event`` with ``store=`` and ``kwargs`` if any plugin implements it."""
        if self.listening(event):
            self._call(event, store=self.store, **kwargs)

    def artifacts(self, event: str | None, rows: Iterable[dict[str, Any]], caller: Caller | None) -> None:
        """Call an artifact event once per catalog row."""
        if event is None or not self.listening(event):
            return
        for row in rows:
            self._call(event, store=self.store, metadata=metadata_from_row(row), caller=caller or Caller())

    def _call(self, event: str, **kwargs: Any) -> None:
        try:
            getattr(self._hook, event)(**kwargs)
        except Exception:
            logger.exception("chuk_artifacts plugin hook %s failed (the operation itself succeeded)", event)


def reports_denials(method: F) -> F:
    """Report an ``AccessDeniedError`` that ``method`` (a public store method) raises to the
    ``access_denied`` hook, with the ids the call named, then re-raise it."""
    signature = inspect.signature(method)
    action = method.__name__

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except AccessDeniedError as exc:
            if not getattr(exc, "_chuk_reported", False):
                exc._chuk_reported = True  # type: ignore[attr-defined]
                _report_denial(self, action, signature, args, kwargs, exc)
            raise

    return call  # type: ignore[return-value]


def _report_denial(
    store: Any,
    action: str,
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    exc: Exception,
) -> None:
    events: Events = store.events
    if not events.listening("access_denied"):
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
    events.emit(
        "access_denied",
        action=action,
        caller=Caller(user_id, session_id),
        artifact_id=named("artifact_id"),
        session_id=session_id,
        reason=str(exc),
    )
