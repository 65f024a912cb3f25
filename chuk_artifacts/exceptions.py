"""The published package's home of the error classes: ``from chuk_artifacts.exceptions import …``
keeps working. The classes are those of ``chuk_artifacts.errors`` (one hierarchy, two paths)."""

from __future__ import annotations

from .errors import (
    AccessDeniedError,
    ArtifactCorruptedError,
    ArtifactExpiredError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    CatalogVersionError,
    InvalidArgumentError,
    ProviderError,
    QuotaExceededError,
    SessionError,
    ShareGoneError,
    SharePasswordError,
)

__all__ = [
    "ArtifactStoreError",
    "ArtifactNotFoundError",
    "ArtifactExpiredError",
    "ArtifactCorruptedError",
    "ProviderError",
    "SessionError",
    "AccessDeniedError",
    "InvalidArgumentError",
    "CatalogVersionError",
    "QuotaExceededError",
    "ShareGoneError",
    "SharePasswordError",
]
