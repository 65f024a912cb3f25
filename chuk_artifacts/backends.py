"""The built-in storage backends, registered as a plugin like any other.

``memory``, ``filesystem`` and ``sqlite`` (the stdlib's sqlite3: no extra) always; ``s3`` and ``ibm_cos`` when s3fs is installed
(``pip install 'chuk-artifacts[s3]'``), ``azure`` with adlfs (``[azure]``), ``gcs`` with gcsfs
(``[gcs]``). Without its extra a provider is refused with the exact ``pip install`` command.
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


def _installed(*modules: str) -> bool:
    try:
        return all(importlib.util.find_spec(name) is not None for name in modules)
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def _s3_installed() -> bool:
    return _installed("s3fs", "boto3")


def _azure_installed() -> bool:
    return _installed("adlfs", "azure.storage.blob")


def _gcs_installed() -> bool:
    return _installed("gcsfs")


@hookimpl
def storage_providers() -> list[str]:
    return [
        "memory",
        "filesystem",
        "sqlite",
        *(S3_PROVIDERS if _s3_installed() else ()),
        *(["azure"] if _azure_installed() else []),
        *(["gcs"] if _gcs_installed() else []),
    ]


@hookimpl
def storage_backend(provider: str, settings: Settings) -> Blobs | None:
    if provider == "memory":
        return MemoryBlobs()
    if provider == "filesystem":
        return LocalBlobs(settings.fs_root, fsync_directories=settings.durability == "power")
    if provider == "sqlite":
        from .sqlite_blobs import SQLiteBlobs

        return SQLiteBlobs(settings.sqlite_blob_path(), durable=settings.durability == "power")
    if provider in S3_PROVIDERS and _s3_installed():  # else: unknown, with the install hint
        from .s3 import S3Blobs

        return S3Blobs.from_settings(provider, settings)
    if provider == "azure" and _azure_installed():
        from .azure_blob import AzureBlobs

        return AzureBlobs.from_settings(settings)
    if provider == "gcs" and _gcs_installed():
        from .gcs import GCSBlobs

        return GCSBlobs.from_settings(settings)
    return None


@hookimpl(specname="presigner")
def native_presigner(store: ArtifactStore) -> Presigner | None:
    """S3 and IBM COS presign their own URLs (SigV4); Azure its downloads (SAS, when the account
    key is known; its uploads stay gateway URLs). Tried before the HMAC fallback."""
    if getattr(store.blobs, "native_presign", False) and store.blobs.name in S3_PROVIDERS:
        from .s3 import S3Blobs, S3Presigner

        if isinstance(store.blobs, S3Blobs):
            return S3Presigner(store.blobs)
    if store.blobs.name == "azure" and getattr(store.blobs, "account_key", None):
        from .azure_blob import AzureBlobs, AzureSasPresigner
        from .signing import HmacPresigner

        if isinstance(store.blobs, AzureBlobs):
            return AzureSasPresigner(HmacPresigner.for_store(store).signer, store.blobs)
    return None


@hookimpl(trylast=True)
def presigner(store: ArtifactStore) -> Presigner:
    """HMAC-signed gateway URLs: the fallback for every backend without native presigning."""
    from .signing import HmacPresigner

    return HmacPresigner.for_store(store)
