"""The exception hierarchy. Every error the store raises is an ``ArtifactStoreError``."""

from __future__ import annotations

__all__ = [
    "ArtifactStoreError",
    "ArtifactNotFoundError",
    "ArtifactExpiredError",
    "AccessDeniedError",
    "ProviderError",
    "SessionError",
    "ArtifactCorruptedError",
    "InvalidArgumentError",
    "CatalogVersionError",
    "QuotaExceededError",
    "ShareGoneError",
    "SharePasswordError",
]


class ArtifactStoreError(Exception):
    """Base class of every chuk-artifacts error. ``http_status`` is a suggestion for web apps."""

    http_status = 400


class ArtifactNotFoundError(ArtifactStoreError):
    """No artifact (or session, or upload) with that id exists."""

    http_status = 404


class ArtifactExpiredError(ArtifactStoreError):
    """The artifact exists but its TTL has passed; it is never readable again."""

    http_status = 410


class AccessDeniedError(ArtifactStoreError):
    """The caller's identity may not perform this operation on this artifact."""

    http_status = 403


class ProviderError(ArtifactStoreError):
    """The storage backend or catalog failed (network, permissions, disk).

    ``reason`` says which failure it was where the backend can tell (S3: ``bucket_missing``,
    ``access_denied``, ``no_credentials``, ``endpoint_unreachable``), else ``error``.
    """

    http_status = 502
    reason: str = "error"


class SessionError(ArtifactStoreError):
    """A session could not be created, found or used."""

    http_status = 500


class ArtifactCorruptedError(ArtifactStoreError):
    """The stored bytes do not match the catalog (missing blob, wrong size or sha256)."""

    http_status = 500


class InvalidArgumentError(ArtifactStoreError, ValueError):
    """A bad argument: an invalid id, scope, TTL, MIME type, filename or metadata."""

    http_status = 400


class CatalogVersionError(ArtifactStoreError):
    """The catalog database schema is not the one this version of chuk-artifacts needs."""

    http_status = 500


class QuotaExceededError(ArtifactStoreError):
    """A write would take a user or the sandbox past a configured byte or count limit."""

    http_status = 413


class ShareGoneError(ArtifactExpiredError):
    """A share link that no longer opens: revoked, expired, used up, or locked after too many
    wrong passwords (``reason`` says which). It never opens again; create a new link."""

    http_status = 410
    reason: str = "expired"

    def __init__(self, message: str, reason: str = "expired") -> None:
        super().__init__(message)
        self.reason = reason


class SharePasswordError(AccessDeniedError):
    """A share link's password is missing or wrong (``required`` tells which)."""

    http_status = 401

    def __init__(self, message: str, *, required: bool = False) -> None:
        super().__init__(message)
        self.required = required
