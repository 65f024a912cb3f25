"""Google Cloud Storage: bytes in one bucket through gcsfs; URLs are the gateway's.

The bucket is ``ARTIFACT_BUCKET``. Credentials: ``GCS_TOKEN`` (a service-account JSON file, or
``google_default``, ``cloud``, ``anon``), else the Google default credential chain
(``GOOGLE_APPLICATION_CREDENTIALS``, the metadata server, gcloud). ``GCS_ENDPOINT_URL`` points at
an emulator or a private endpoint; ``GCS_PROJECT`` names the project.

Presigned URLs are gateway URLs (``signing.HmacPresigner``), not GCS V4 signed URLs: a V4 URL
cannot be verified without Google (the emulators do not check signatures), and signing one
needs a private key that the default credential chain often does not have (metadata-server
credentials sign through the IAM API). The gateway streams bytes to and from the bucket.

gcsfs is imported when a store is made, never at import (``pip install 'chuk-artifacts[gcs]'``).
gcsfs's experimental gRPC file system is not used: the JSON API one (``gcsfs.core``) is.

Streaming writes send one chunk of a resumable upload at a time; the upload becomes the object only
when its last chunk arrives, so readers see the old object or the new one. After an error the
upload is left unfinished: it never becomes an object, and GCS drops it after a week (cancelling it
would cost a request that may fail the same way).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from .errors import InvalidArgumentError, ProviderError
from .object_store import BucketMissing, ObjectStoreBlobs, exception_chain

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["GCSBlobs", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'chuk-artifacts[gcs]'"
#: Streaming writes send one chunk of a resumable upload at a time (a multiple of 256 KiB).
BLOCK_SIZE = 8 * 1024 * 1024
#: gcsfs's attempts per request (its default, 6, waits minutes on a dead endpoint).
RETRIES = 2


def _reason(exc: BaseException) -> str:
    codes = {getattr(e, "code", None) for e in exception_chain(exc)}
    names = {type(e).__name__ for e in exception_chain(exc)}
    if isinstance(exc, PermissionError) or codes & {401, 403}:
        return "access_denied"
    if "DefaultCredentialsError" in names or "RefreshError" in names:
        return "no_credentials"
    if names & {"ClientConnectorError", "ClientConnectionError", "ConnectionRefusedError", "TimeoutError", "gaierror"}:
        return "endpoint_unreachable"
    return "error"


class GCSBlobs(ObjectStoreBlobs):
    """Objects in one GCS bucket (the root)."""

    name = "gcs"

    def __init__(
        self,
        bucket: str,
        *,
        project: str | None = None,
        token: str | None = None,
        endpoint_url: str | None = None,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        try:
            from gcsfs.core import GCSFileSystem
        except ImportError as exc:  # pragma: no cover - the backend plugin checks first
            raise ProviderError(f"storage provider 'gcs' needs gcsfs: {INSTALL_HINT}") from exc
        if not bucket:
            raise InvalidArgumentError("storage provider 'gcs' needs a bucket (ARTIFACT_BUCKET)")
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        self.block_size = block_size
        try:
            fs = GCSFileSystem(
                project=project or "chuk-artifacts",
                token=token or ("anon" if endpoint_url else None),
                endpoint_url=self.endpoint_url,
                block_size=block_size,
                skip_instance_cache=True,
                use_listings_cache=False,
            )
        except Exception as exc:
            raise self._provider_error("connect", None, exc) from None
        fs.retries = RETRIES
        super().__init__(fs, bucket)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "GCSBlobs":
        return cls(
            settings.bucket,
            project=settings.gcs_project,
            token=settings.gcs_token,
            endpoint_url=settings.gcs_endpoint_url,
        )

    @property
    def _where(self) -> str:
        return self.endpoint_url or "Google Cloud Storage"

    def _provider_error(self, action: str, key: str | None, exc: BaseException) -> ProviderError:
        reason = _reason(exc)
        if reason == "bucket_missing" or isinstance(exc, BucketMissing):
            reason = "bucket_missing"
            message = f"gcs bucket {self.bucket!r} does not exist at {self._where} (ARTIFACT_BUCKET)"
        elif reason == "access_denied":
            message = f"gcs refused access to bucket {self.bucket!r}: check the credentials and permissions ({exc})"
        elif reason == "no_credentials":
            message = f"no credentials for gcs: set GCS_TOKEN or configure the Google default credentials ({exc})"
        elif reason == "endpoint_unreachable":
            message = f"cannot reach gcs at {self._where}: {type(exc).__name__}: {exc}"
        else:
            target = f" {key!r}" if key else ""
            message = f"gcs failed to {action}{target}: {type(exc).__name__}: {exc}"
        error = ProviderError(message)
        error.reason = reason
        return error

    def _bucket_exists(self) -> bool:
        try:
            self.fs.call("GET", "b/{}", self.bucket, json_out=True)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self._provider_error("check", None, exc) from None
        return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.fs.close_session(self.fs.loop, self.fs.session)
