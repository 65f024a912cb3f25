"""Azure Blob Storage: bytes in one container through adlfs; downloads presigned with SAS.

The container is ``ARTIFACT_BUCKET``. Credentials, first found wins: a connection string
(``AZURE_STORAGE_CONNECTION_STRING``), an account name and key (``AZURE_STORAGE_ACCOUNT_NAME`` /
``AZURE_STORAGE_ACCOUNT_KEY``), or an account name alone, which uses the default Azure credential
chain (``azure.identity.DefaultAzureCredential``: environment, managed identity, Azure CLI ...).

Download URLs are SAS URLs signed with the account key, served by Azure itself. Uploads and
multipart parts go through the gateway (HMAC-signed URLs, ``signing.HmacPresigner``): the gateway
streams their bytes into the container. Without an account key (the credential chain) download
URLs are gateway URLs too.

Streaming writes stage blocks as they fill and commit them on close (Put Block List), so readers
see the old blob or the new one; after an error no block list is committed, the staged blocks are
never visible, and Azure drops them after a week.

adlfs and azure-storage-blob are imported when a store is made, never at import
(``pip install 'chuk-artifacts[azure]'``).
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .errors import ArtifactStoreError, InvalidArgumentError, ProviderError
from .object_store import BucketMissing, ObjectStoreBlobs, exception_chain
from .signing import HmacPresigner, UrlSigner, content_disposition

if TYPE_CHECKING:
    from .config import Settings
    from .models import Row

__all__ = ["AzureBlobs", "AzureSasPresigner", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'chuk-artifacts[azure]'"
#: Streaming writes stage one block of this size at a time; reads fetch blocks of it.
BLOCK_SIZE = 8 * 1024 * 1024

_DENIED = {
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "InvalidAuthenticationInfo",
}


def _error_code(exc: BaseException) -> str | None:
    for current in exception_chain(exc):
        code = getattr(current, "error_code", None) or getattr(current, "status_code", None)
        if code:
            return str(code)
    return None


def _reason(exc: BaseException) -> str:
    code = _error_code(exc)
    if code == "ContainerNotFound" or isinstance(exc, BucketMissing):
        return "bucket_missing"
    if code in _DENIED or code == "403" or isinstance(exc, PermissionError):
        return "access_denied"
    names = {type(e).__name__ for e in exception_chain(exc)}
    if "ClientAuthenticationError" in names or "CredentialUnavailableError" in names:
        return "no_credentials"
    if names & {"ServiceRequestError", "ClientConnectorError", "ConnectionRefusedError", "TimeoutError", "gaierror"}:
        return "endpoint_unreachable"
    return "error"


def _parse_connection_string(value: str) -> dict[str, str]:
    parts = (item.split("=", 1) for item in value.split(";") if "=" in item)
    return {k.strip().lower(): v.strip() for k, v in parts}


class AzureBlobs(ObjectStoreBlobs):
    """Objects in one Azure Blob Storage container (the root); block blobs only."""

    name = "azure"
    mtime_field = "last_modified"
    put_options = {"overwrite": True}

    def __init__(
        self,
        container: str,
        *,
        connection_string: str | None = None,
        account_name: str | None = None,
        account_key: str | None = None,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        try:
            import adlfs
        except ImportError as exc:  # pragma: no cover - the backend plugin checks first
            raise ProviderError(f"storage provider 'azure' needs adlfs: {INSTALL_HINT}") from exc
        if not container or len(container) < 3:
            raise InvalidArgumentError(
                "storage provider 'azure' needs a container name of 3 to 63 characters (ARTIFACT_BUCKET)"
            )
        if not (connection_string or account_name):
            raise InvalidArgumentError(
                "storage provider 'azure' needs AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME "
                "(with AZURE_STORAGE_ACCOUNT_KEY, or the default Azure credential chain)"
            )
        self.container = container
        self.block_size = block_size
        parsed = _parse_connection_string(connection_string) if connection_string else {}
        self.account_name = parsed.get("accountname") or account_name
        #: Signs SAS URLs; ``None`` under the credential chain (downloads then use the gateway).
        self.account_key = parsed.get("accountkey") or account_key or None
        endpoint = parsed.get("blobendpoint")
        self.endpoint = (endpoint or f"https://{self.account_name}.blob.core.windows.net").rstrip("/")
        options: dict[str, Any] = {"skip_instance_cache": True, "blocksize": block_size}
        if connection_string:
            options["connection_string"] = connection_string
        else:
            options["account_name"] = account_name
            if account_key:
                options["account_key"] = account_key
            else:  # the default credential chain
                options["anon"] = False
        try:
            fs = adlfs.AzureBlobFileSystem(**options)
        except Exception as exc:
            raise self._provider_error("connect", None, exc) from None
        super().__init__(fs, container)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "AzureBlobs":
        return cls(
            settings.bucket,
            connection_string=settings.azure_connection_string,
            account_name=settings.azure_account_name,
            account_key=settings.azure_account_key,
        )

    # -- errors ---------------------------------------------------------------------------

    def _provider_error(self, action: str, key: str | None, exc: BaseException) -> ProviderError:
        reason = _reason(exc)
        if reason == "bucket_missing":
            message = f"azure container {self.container!r} does not exist at {self.endpoint} (ARTIFACT_BUCKET)"
        elif reason == "access_denied":
            message = f"azure refused access to container {self.container!r}: check the account key or the role"
        elif reason == "no_credentials":
            message = f"no credentials for azure: set AZURE_STORAGE_CONNECTION_STRING or the account key ({exc})"
        elif reason == "endpoint_unreachable":
            message = f"cannot reach azure at {self.endpoint}: {type(exc).__name__}: {exc}"
        else:
            target = f" {key!r}" if key else ""
            message = f"azure failed to {action}{target}: {_error_code(exc) or type(exc).__name__}: {exc}"
        error = ProviderError(message)
        error.reason = reason
        return error

    @property
    def _where(self) -> str:
        return self.endpoint

    def _bucket_exists(self) -> bool:
        try:
            client = self.fs.service_client.get_container_client(self.container)
            return bool(_sync(self.fs, client.exists()))
        except Exception as exc:
            raise self._provider_error("check", None, exc) from None

    # -- presigning -----------------------------------------------------------------------

    def sas_url(self, key: str, expires: int, *, content_type: str | None, disposition: str | None) -> str:
        """A read-only SAS URL of the blob at ``key`` (signed with the account key, locally)."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        if not self.account_key or not self.account_name:
            raise ArtifactStoreError("azure SAS URLs need the account key (AZURE_STORAGE_ACCOUNT_KEY)")
        now = datetime.now(timezone.utc)
        token = generate_blob_sas(
            account_name=self.account_name,
            container_name=self.container,
            blob_name=key,
            account_key=self.account_key,
            permission=BlobSasPermissions(read=True),
            start=now - timedelta(minutes=5),  # allow for clock skew
            expiry=now + timedelta(seconds=expires),
            content_type=content_type,
            content_disposition=disposition,
        )
        from urllib.parse import quote

        return f"{self.endpoint}/{self.container}/{quote(key, safe='/')}?{token}"

    # -- operations -----------------------------------------------------------------------

    def close(self) -> None:
        with contextlib.suppress(Exception):
            _sync(self.fs, self.fs.service_client.close())


def _sync(fs: Any, coroutine: Any) -> Any:
    from fsspec.asyn import sync

    return sync(fs.loop, lambda: coroutine)


class AzureSasPresigner(HmacPresigner):
    """Download URLs signed with SAS (Azure serves them); upload and part URLs are the gateway's
    HMAC-signed URLs (inherited), so the gateway (``make_app``) serves those."""

    name = "azure-sas"

    def __init__(self, signer: UrlSigner, blobs: AzureBlobs) -> None:
        super().__init__(signer)
        self.blobs = blobs

    def download_url(self, row: "Row", expires: int) -> str:
        return self.blobs.sas_url(
            row["key"], expires, content_type=row["mime"], disposition=content_disposition(row["filename"])
        )
