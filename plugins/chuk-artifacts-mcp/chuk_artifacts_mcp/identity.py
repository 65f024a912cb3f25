"""Who an MCP client is, as a store identity: a user and a store session.

The user comes from the transport's authentication (streamable HTTP with a token verifier: the
token's ``subject``, else its ``client_id``) or, without authentication (stdio, or HTTP on a
loopback port with no verifier), from the server's configuration. Every client also gets a store
session of its own: one per MCP session (the ``Mcp-Session-Id`` of a stateful HTTP connection) or,
where the transport has no session (stdio, where one process is one client; stateless requests),
one per user of this server. A session that expires is replaced by a new one on the next call.

A client always has a session, so it never acts as the store's admin (``Caller()``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

from chuk_artifacts import AccessDeniedError, AsyncArtifactStore

__all__ = ["Identities", "Identity", "StaticTokenVerifier", "default_user_from_token"]


@dataclass(frozen=True)
class Identity:
    user_id: str | None
    session_id: str

    def view(self, store: AsyncArtifactStore) -> AsyncArtifactStore:
        """The store acting as this identity on every call (naming another identity is refused)."""
        if self.user_id is None:
            return store.as_session(self.session_id)
        return store.as_user(self.user_id, session_id=self.session_id)

    def user_view(self, store: AsyncArtifactStore) -> AsyncArtifactStore:
        """The store acting as this identity's user, for user- and sandbox-scope listings (a
        session-bound search only finds that session's artifacts)."""
        if self.user_id is None:
            raise AccessDeniedError("this client has no user: it can list only its session's artifacts")
        return store.as_user(self.user_id)


def default_user_from_token(token: AccessToken) -> str:
    return token.subject or token.client_id


class StaticTokenVerifier:
    """A ``TokenVerifier`` over a fixed table of bearer tokens and the users they stand for: for a
    loopback deployment or tests. Production servers pass their own verifier (JWT, introspection)."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = dict(tokens)

    @classmethod
    def from_file(cls, path: str) -> StaticTokenVerifier:
        """A JSON object ``{"token": "user_id", …}``."""
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
        if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
            raise ValueError(f"{path}: expected a JSON object mapping each token to a user id")
        return cls(table)

    async def verify_token(self, token: str) -> AccessToken | None:
        user = self._tokens.get(token)
        if user is None:
            return None
        return AccessToken(token=token, client_id=user, subject=user, scopes=[])


class Identities:
    """Resolves the identity of the current request and keeps each client's store session."""

    def __init__(
        self,
        store: AsyncArtifactStore,
        *,
        user_id: str | None = None,
        require_token: bool = False,
        user_from_token: Callable[[AccessToken], str] = default_user_from_token,
        session_metadata: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.default_user = user_id
        self.require_token = require_token
        self.user_from_token = user_from_token
        self.session_metadata = {"client": "mcp", **(session_metadata or {})}
        self._sessions: dict[tuple[str | None, str], str] = {}
        self._locks: dict[tuple[str | None, str], asyncio.Lock] = {}
        #: Clients remembered at most (oldest forgotten first: one that comes back gets a new session).
        self.max_clients = 10_000

    def user(self) -> str | None:
        """The current request's user (raises ``AccessDeniedError`` when a token is required and absent)."""
        token = get_access_token()
        if token is not None:
            return self.user_from_token(token)
        if self.require_token:
            raise AccessDeniedError("this server requires a bearer token (Authorization: Bearer …)")
        return self.default_user

    @staticmethod
    def transport_session(ctx: Any) -> str:
        """The MCP session id of a stateful HTTP connection, else ``""``. ``ctx`` is a tool's
        ``Context`` or a low-level handler's ``ServerRequestContext``."""
        try:
            request_context = getattr(ctx, "request_context", ctx)
        except ValueError:  # a Context outside a request
            return ""
        headers = getattr(getattr(request_context, "request", None), "headers", None)
        if headers is None:
            return ""
        return str(headers.get("mcp-session-id") or "")

    async def resolve(self, ctx: Any = None) -> Identity:
        user = self.user()
        key = (user, self.transport_session(ctx))
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
            while len(self._locks) > self.max_clients:
                oldest = next(iter(self._locks))
                del self._locks[oldest]
                self._sessions.pop(oldest, None)
        async with lock:
            session_id = self._sessions.get(key)
            if session_id is None or not await self.store.validate_session(session_id, user_id=user):
                session_id = await self.store.create_session(user_id=user, custom_metadata=dict(self.session_metadata))
                self._sessions[key] = session_id
        return Identity(user, session_id)

    def listener(self) -> Callable[[], tuple[str | None, str | None]]:
        """For a listen stream opening now: a function giving its identity when an event arrives."""
        try:
            user = self.user()
        except AccessDeniedError:
            return lambda: (None, None)
        key = (user, "")  # listen streams (2026-07-28) have no transport session

        def identity() -> tuple[str | None, str | None]:
            return user, self._sessions.get(key)

        return identity
