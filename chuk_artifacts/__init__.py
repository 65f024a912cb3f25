"""chuk-artifacts: scoped artifact storage with access control, TTL, search and presigned URLs.

Importing this package has no side effects: no environment files, no network, no files. It is
also cheap: the public names below are loaded from their modules on first use (PEP 562), so
``import chuk_artifacts`` (and ``chuk-admin --help``) imports neither SQLAlchemy, alembic nor
fsspec; ``chuk_artifacts.ArtifactStore`` does.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time ``__getattr__`` loads these
    from .aio import AsyncArtifactStore
    from .config import Settings
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
    from .grid import GridKey
    from .models import (
        ArtifactList,
        ArtifactMetadata,
        CleanupResult,
        MultipartUploadCompleteRequest,
        MultipartUploadInitRequest,
        MultipartUploadPart,
        SearchHit,
        ShareLink,
        StreamDownloadRequest,
        StreamUploadRequest,
    )
    from .store import ArtifactStore
    from .views import BoundStore

__version__ = "0.1.0"

__all__ = [
    "ArtifactStore",
    "AsyncArtifactStore",
    "BoundStore",
    "Settings",
    "ArtifactMetadata",
    "ArtifactList",
    "CleanupResult",
    "GridKey",
    "StreamUploadRequest",
    "StreamDownloadRequest",
    "MultipartUploadInitRequest",
    "MultipartUploadPart",
    "MultipartUploadCompleteRequest",
    "SearchHit",
    "ShareLink",
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

#: The submodule each public name lives in (the ``TYPE_CHECKING`` imports above, at run time).
_HOMES = {
    "ArtifactStore": "store",
    "AsyncArtifactStore": "aio",
    "BoundStore": "views",
    "Settings": "config",
    "GridKey": "grid",
    **dict.fromkeys(
        (
            "ArtifactMetadata",
            "ArtifactList",
            "CleanupResult",
            "StreamUploadRequest",
            "StreamDownloadRequest",
            "MultipartUploadInitRequest",
            "MultipartUploadPart",
            "MultipartUploadCompleteRequest",
            "SearchHit",
            "ShareLink",
        ),
        "models",
    ),
    **dict.fromkeys(
        (
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
        ),
        "errors",
    ),
}


def __getattr__(name: str) -> object:
    """Load a public name from its submodule on first access, then keep it as a global."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
