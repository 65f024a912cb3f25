"""Fixtures: a clean chuk-artifacts environment, the anyio backend, and a controllable clock."""

from __future__ import annotations

import os
import time

import pytest

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


POSTGRES_ADMIN_URL = os.environ.get("CHUK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_url():
    """A private PostgreSQL database; skipped when unreachable, except in CI (``CI`` set)."""
    import uuid

    from sqlalchemy import create_engine, text

    def unavailable(reason: str) -> None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests, not skip them)")
        pytest.skip(reason)

    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed")
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"chuk_mcp_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        unavailable(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {type(exc).__name__}")
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
