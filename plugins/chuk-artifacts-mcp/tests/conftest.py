"""Fixtures: a clean chuk-artifacts environment, the anyio backend, and a controllable clock."""

from __future__ import annotations

import time

import pytest

from chuk_artifacts.testing import postgres_database

_ENV_VARS = (
    "ARTIFACT_PROVIDER",
    "SESSION_PROVIDER",
    "ARTIFACT_SANDBOX_ID",
    "ARTIFACT_FS_ROOT",
    "ARTIFACT_CATALOG_URL",
    "ARTIFACT_STRICT",
    "CHUK_AUDIT_LOG",
    "CHUK_MCP_CHANGE_FEED",
    "CHUK_MCP_USER",
    "CHUK_MCP_TOKENS",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):
    from chuk_artifacts.testing import Clock

    c = Clock()
    monkeypatch.setattr(time, "time", c)
    return c


@pytest.fixture
def postgres_url():
    """A private PostgreSQL database; skipped when unreachable, except in CI (``CI`` set)."""
    with postgres_database("chuk_mcp") as url:
        yield url
