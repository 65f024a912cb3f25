"""Change notifications: which listen streams hear that an artifact changed.

A change reaches a server in one of two ways. In the process that made it, the store's lifecycle
hooks (``plugin.py``) hand it to every ``Notifier`` serving that store (``hub.py``). From another
process, it arrives through the change feed (``feed.py``): a table in the shared catalog that each
server polls.

Either way the ``Notifier`` publishes on its ``ArtifactBus``, a ``SubscriptionBus`` that remembers
who opened each listen stream and delivers a change only to streams whose identity may read the
artifact (the store's own rule, ``chuk_artifacts.access.can_read``). Each visible change becomes a
``notifications/resources/updated`` for ``artifact://{id}`` and for the listing it belongs to, and
a ``notifications/resources/list_changed``. Handshake-era clients (no listen streams) get
``notifications/resources/updated`` for the URIs they ``resources/subscribe``d to instead.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from mcp.server.subscriptions import ResourcesListChanged, ResourceUpdated, ServerEvent

from .hub import Change

__all__ = ["ArtifactBus", "LegacySubscriptions", "Notifier"]

logger = logging.getLogger(__name__)

#: Who a listen stream belongs to, asked when it opens: returns (user_id, session_id) later, at
#: delivery time, because the client's store session may be created after its stream opened.
IdentityOf = Callable[[], tuple[str | None, str | None]]


class ArtifactBus:
    """A ``SubscriptionBus`` that delivers an artifact change only to streams that may read it.

    ``identify`` is called when a stream subscribes (inside the ``subscriptions/listen`` request,
    so the request's access token is current) and returns that stream's ``IdentityOf``.
    """

    def __init__(self, identify: Callable[[], IdentityOf]) -> None:
        self._identify = identify
        self._listeners: dict[object, tuple[Callable[[ServerEvent], None], IdentityOf]] = {}

    async def publish(self, event: ServerEvent) -> None:
        """Generic events (``ctx.notify_*``) go to every stream; artifact changes use ``deliver``."""
        for listener, _ in list(self._listeners.values()):
            self._call(listener, event)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        token = object()
        self._listeners[token] = (listener, self._identify())

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    def deliver(self, change: Change) -> None:
        """Fan one change out to the streams allowed to see it (on the event loop)."""
        events: list[ServerEvent] = [ResourceUpdated(uri=uri) for uri in change.uris()]
        events.append(ResourcesListChanged())
        for listener, identity_of in list(self._listeners.values()):
            try:
                user_id, session_id = identity_of()
            except Exception:  # an identity that can no longer be resolved sees nothing
                continue
            if change.visible_to(user_id, session_id):
                for event in events:
                    self._call(listener, event)

    @staticmethod
    def _call(listener: Callable[[ServerEvent], None], event: ServerEvent) -> None:
        try:
            listener(event)
        except Exception:  # one broken stream must not starve the others
            logger.exception("listen stream refused an event")


class Notifier:
    """Hands changes from any thread to a bus on the server's event loop."""

    def __init__(self, bus: ArtifactBus, origin: str, legacy: LegacySubscriptions | None = None) -> None:
        self.bus = bus
        self.legacy = legacy or LegacySubscriptions()
        #: Written on the change feed rows this server's store produces, so its poller skips them.
        self.origin = origin
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def deliver(self, change: Change) -> None:
        """On the event loop: to the listen streams and to the legacy subscriptions."""
        self.bus.deliver(change)
        self.legacy.deliver(change)

    def changed(self, change: Change) -> None:
        """From any thread: schedule ``deliver`` on the server's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            if _running_loop() is loop:
                self.deliver(change)
            else:
                loop.call_soon_threadsafe(self.deliver, change)
        except RuntimeError:  # the loop closed in between: nobody is listening any more
            pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LegacySubscriptions:
    """``resources/subscribe`` of handshake-era clients (protocol 2025-11-25 and earlier), which
    cannot open listen streams: ``notifications/resources/updated`` on the connection's own
    channel, for the URIs it subscribed to, when its identity may read the change. Kept per
    connection object and dropped with it."""

    def __init__(self) -> None:
        self._subs: weakref.WeakKeyDictionary[Any, dict[str, tuple[str | None, str | None]]] = (
            weakref.WeakKeyDictionary()
        )
        self._sending: set[asyncio.Task[None]] = set()

    def subscribe(self, connection: Any, uri: str, identity: tuple[str | None, str | None]) -> None:
        self._subs.setdefault(connection, {})[uri] = identity

    def unsubscribe(self, connection: Any, uri: str) -> None:
        self._subs.get(connection, {}).pop(uri, None)

    def deliver(self, change: Change) -> None:
        """On the event loop: notify each subscribed connection allowed to see the change."""
        uris = set(change.uris())
        for connection, subs in list(self._subs.items()):
            for uri, (user_id, session_id) in list(subs.items()):
                if uri in uris and change.visible_to(user_id, session_id):
                    task = asyncio.get_running_loop().create_task(
                        connection.notify("notifications/resources/updated", {"uri": uri})
                    )
                    self._sending.add(task)
                    task.add_done_callback(self._sending.discard)
