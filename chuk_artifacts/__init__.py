"""chuk-artifacts: scoped artifact storage with access control, TTL, search and presigned URLs.

Importing this package has no side effects: no environment files, no network, no files.
"""

from .aio import AsyncArtifactStore
from .config import Settings
from .errors import (
    AccessDeniedError,
    ArtifactCorruptedError,
    ArtifactExpiredError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    CatalogVersionError,
    QuotaExceededError,
    InvalidArgumentError,
    ProviderError,
    SessionError,
)
from .grid import GridKey
from .models import (
    ArtifactList,
    ArtifactMetadata,
    CleanupResult,
    MultipartUploadCompleteRequest,
    MultipartUploadInitRequest,
    MultipartUploadPart,
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
]
