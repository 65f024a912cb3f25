"""The chuk-artifacts conformance kit, run against the Redis session provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from chuk_artifacts_redis import RedisSessions

from chuk_artifacts.testing import SessionProviderConformance


class TestRedisSessions(SessionProviderConformance):
    @pytest.fixture
    def sessions(self, redis_url: str) -> Callable[..., Any]:
        # A new client per provider: like separate processes sharing one server.
        return lambda sandbox_id, ttl_seconds: RedisSessions.from_url(redis_url, sandbox_id, ttl_seconds)
