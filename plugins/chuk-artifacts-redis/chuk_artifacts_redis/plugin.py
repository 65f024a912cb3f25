"""The plugin module registered under the ``chuk_artifacts`` entry-point group."""

from __future__ import annotations

from typing import Any

from chuk_artifacts.hookspecs import hookimpl

from .sessions import DEFAULT_URL, RedisSessions


@hookimpl
def session_providers() -> list[str]:
    return ["redis"]


@hookimpl
def session_provider(name: str, settings: Any, catalog: Any, sandbox_id: str) -> RedisSessions | None:
    if name != "redis":
        return None
    return RedisSessions.from_url(settings.session_redis_url or DEFAULT_URL, sandbox_id, settings.session_ttl_seconds)
