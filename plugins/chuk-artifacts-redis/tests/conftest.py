"""Fixtures: a Redis URL with a private key prefix per test (keys removed afterwards).

The tests need redis-server at 127.0.0.1:6379 (``CHUK_TEST_REDIS_URL`` to change). When it is
unreachable they are skipped with the reason — except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

REDIS_URL = os.environ.get("CHUK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

#: Settings chuk-artifacts reads from the environment; cleared so a developer's shell cannot leak in.
_ENV_VARS = (
    "ARTIFACT_PROVIDER",
    "SESSION_PROVIDER",
    "SESSION_REDIS_URL",
    "ARTIFACT_SANDBOX_ID",
    "ARTIFACT_FS_ROOT",
    "ARTIFACT_CATALOG_URL",
    "ARTIFACT_STRICT",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def redis_client() -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"redis-server is not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the Redis tests, not skip them)")
        pytest.skip(reason)
    yield client
    client.close()


@pytest.fixture
def key_prefix(redis_client) -> Iterator[str]:
    prefix = f"chuk-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def redis_url(key_prefix: str) -> str:
    """``SESSION_REDIS_URL`` for this test: the server, with this test's own key prefix."""
    return f"{REDIS_URL}?key_prefix={key_prefix}"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):
    """``time.time`` frozen at the real time, moved only by ``clock.advance(seconds)``."""
    import time

    from chuk_artifacts.testing import Clock

    c = Clock()
    monkeypatch.setattr(time, "time", c)
    return c
