"""The built-in storage backends, registered as a plugin like any other.

``memory`` and ``filesystem`` always; ``s3`` and ``ibm_cos`` when s3fs is installed
(``pip install 'chuk-artifacts[s3]'``; without it the store names that install in its error).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from .blobs import Blobs, LocalBlobs, MemoryBlobs
from .config import Settings
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .presign import Presigner
    from .store import ArtifactStore

S3_PROVIDERS = ("s3", "ibm_cos")


def _s3_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("s3fs", "boto3"))


@hookimpl
def storage_providers() -> list[str]:
    return ["memory", "filesystem", *(S3_PROVIDERS if _s3_installed() else ())]


@hookimpl
def storage_backend(provider: str, settings: Settings) -> Blobs | None:
    if provider == "memory":
        return MemoryBlobs()
    if provider == "filesystem":
        return LocalBlobs(settings.fs_root, fsync_directories=settings.durability == "power")
    if provider in S3_PROVIDERS and _s3_installed():  # else: unknown, with the install hint
        from .s3 import S3Blobs

        return S3Blobs.from_settings(provider, settings)
    return None


@hookimpl(specname="presigner")
def native_presigner(store: ArtifactStore) -> Presigner | None:
    """S3 and IBM COS presign their own URLs (SigV4); tried before the HMAC fallback."""
    if getattr(store.blobs, "native_presign", False) and store.blobs.name in S3_PROVIDERS:
        from .s3 import S3Blobs, S3Presigner

        if isinstance(store.blobs, S3Blobs):
            return S3Presigner(store.blobs)
    return None


@hookimpl(trylast=True)
def presigner(store: ArtifactStore) -> Presigner:
    """HMAC-signed gateway URLs: the fallback for every backend without native presigning."""
    from .signing import HmacPresigner

    return HmacPresigner.for_store(store)
