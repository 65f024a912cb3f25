"""S3 and IBM Cloud Object Storage: bytes in a bucket through s3fs, URLs presigned natively (SigV4).

One s3fs filesystem and one boto3 client (for presigning) per store, made once and reused, from
botocore sessions of the store's own: without explicit keys each store resolves the default AWS
credential chain itself (only the parsed service model is shared by the process).
Every failure of the service becomes a ``ProviderError`` whose ``reason`` says which it is:
``bucket_missing``, ``access_denied``, ``no_credentials``, ``endpoint_unreachable`` or ``error``.
Connect/read timeouts and a small retry budget keep a dead endpoint from hanging a call.

s3fs and boto3 are imported when a store is made, never at import (``pip install
'chuk-artifacts[s3]'``).
"""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Iterator, Protocol

from .blobs import Blobs
from .errors import ArtifactNotFoundError, ArtifactStoreError, InvalidArgumentError, ProviderError
from .grid import staged_key

if TYPE_CHECKING:
    from .config import Settings
    from .models import Row

__all__ = ["S3Blobs", "S3Presigner"]

#: Streaming writes buffer one part of this size (S3's minimum part is 5 MiB); reads fetch
#: blocks of it. Bounds the memory of a stream of any length.
BLOCK_SIZE = 8 * 1024 * 1024
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 60
#: botocore's attempts per request, the first included: one retry, after at most 1 s of backoff.
#: (botocore's ``max_attempts`` counts retries only; ``total_max_attempts`` is this number.)
#: s3fs adds its own retries for broken reads.
MAX_ATTEMPTS = 2
FS_RETRIES = 2

_BUCKET_MISSING = {"NoSuchBucket"}
_DELETE_BATCH = 1000  # keys per DeleteObjects request: S3's maximum
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidSecurity",
    "403",
    "Forbidden",
}
_BAD_PARTS = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML", "InvalidArgument"}


_loaders: dict[str, Any] = {}
_loaders_lock = threading.Lock()


def _session(kind: str) -> Any:
    """A new botocore session for one store: ``aio`` (aiobotocore, for s3fs) or ``sync`` (a
    boto3 session, for presigning).

    Never shared between stores: a session resolves the default credential chain once and keeps
    the answer, so a shared one would give every store of the process the credentials the first
    store found (a store made after the keys changed would still use the old ones). What is
    shared is the data loader, which caches the parsed S3 service model and endpoint rules: a new
    store costs milliseconds, not a re-parse of the model."""
    with _loaders_lock:
        if kind == "aio":
            from aiobotocore.session import AioSession

            session = AioSession()
        else:
            import botocore.session

            session = botocore.session.Session()
        loader = _loaders.get(kind)
        if loader is None:
            _loaders[kind] = session.get_component("data_loader")
        else:
            session.register_component("data_loader", loader)
    if kind == "aio":
        # aiohttp waits for an "Expect: 100-continue" answer with no timeout at all, so an
        # endpoint that accepts the connection and never answers would hang every write for
        # ever (botocore adds the header to every upload from a file object). Send without it:
        # the read timeout then bounds the wait for the response, as it does for reads.
        session.register("before-send.s3", _no_expect_continue)
        return session
    import boto3

    return boto3.session.Session(botocore_session=session)


def _no_expect_continue(request: Any, **_: Any) -> None:
    request.headers.pop("Expect", None)  # not a signed header: the signature stays valid


class _ServiceError(Protocol):
    """What is read of a botocore ``ClientError``: the service's parsed error answer."""

    response: dict[str, Any]


def _client_error(exc: BaseException) -> _ServiceError | None:
    """The botocore ``ClientError`` behind ``exc`` (s3fs wraps them in OSErrors), if any."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if hasattr(current, "response") and isinstance(current.response, dict):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _code(exc: BaseException) -> str | None:
    error = _client_error(exc)
    if error is None:
        return None
    code = error.response.get("Error", {}).get("Code")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(code or status or "") or None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        yield current
        current = current.__cause__ or current.__context__
        seen += 1


def _reason(exc: BaseException) -> str:
    code = _code(exc)
    if code in _BUCKET_MISSING:
        return "bucket_missing"
    if code in _DENIED or isinstance(exc, PermissionError):
        return "access_denied"
    names = {type(e).__name__ for e in _chain(exc)}
    if "NoCredentialsError" in names or "PartialCredentialsError" in names:
        return "no_credentials"
    unreachable = {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ClientConnectorError",
        "ClientConnectionError",
        "ServerDisconnectedError",
        "FSTimeoutError",
        "TimeoutError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "gaierror",
    }
    if names & unreachable:
        return "endpoint_unreachable"
    return "error"


class S3Blobs(Blobs):
    """Objects in one S3 (or S3-compatible) bucket; the bucket is the root.

    Writes request server-side encryption (``S3_SSE_ALGORITHM``) on every put, multipart upload
    and copy. Multipart and presigned uploads are native (``native_multipart``,
    ``native_presign``): parts go straight to S3, which checks their ETags on completion.
    """

    native_multipart = True
    native_presign = True

    def __init__(
        self,
        bucket: str,
        *,
        provider: str = "s3",
        key: str | None = None,
        secret: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        sse: str | None = None,
        block_size: int = BLOCK_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        try:
            import s3fs
        except ImportError as exc:  # pragma: no cover - the backend plugin checks first
            raise ProviderError(f"storage provider {provider!r} needs s3fs: pip install 'chuk-artifacts[s3]'") from exc
        if not bucket:
            raise InvalidArgumentError(f"storage provider {provider!r} needs a bucket (ARTIFACT_BUCKET)")
        self.name = provider
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        self.region = region or "us-east-1"
        self.sse = sse or None
        self.block_size = block_size
        self._credentials = {"aws_access_key_id": key or None, "aws_secret_access_key": secret or None}
        self._presign_client: Any = None
        self._presign_lock = threading.Lock()  # one presigning client, even under concurrent use
        config: dict[str, Any] = {
            "signature_version": "s3v4",
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "retries": {"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            # S3-compatible services (IBM COS, SeaweedFS, MinIO) reject the newer default checksums.
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        if self.endpoint_url:
            config["s3"] = {"addressing_style": "path"}
        self._config = config
        fs = s3fs.S3FileSystem(
            key=key or None,
            secret=secret or None,
            endpoint_url=self.endpoint_url,
            client_kwargs={"region_name": self.region},
            config_kwargs=config,
            s3_additional_kwargs={"ServerSideEncryption": self.sse} if self.sse else {},
            default_block_size=block_size,
            session=_session("aio"),
            skip_instance_cache=True,  # never share a filesystem (or its state) with another store
            use_listings_cache=False,  # another store or process may change the bucket at any time
        )
        fs.retries = FS_RETRIES
        super().__init__(fs, bucket)

    @classmethod
    def from_settings(cls, provider: str, settings: "Settings") -> "S3Blobs":
        """``s3``: ``AWS_*`` keys (none: the default credential chain), ``S3_ENDPOINT_URL``;
        ``ibm_cos``: ``IBM_COS_ACCESS_KEY``/``IBM_COS_SECRET_KEY`` at ``IBM_COS_ENDPOINT``."""
        if provider == "ibm_cos":
            endpoint = settings.ibm_cos_endpoint or settings.s3_endpoint_url
            if not endpoint:
                raise InvalidArgumentError("storage provider 'ibm_cos' needs IBM_COS_ENDPOINT")
            key = settings.ibm_cos_access_key or settings.aws_access_key_id
            secret = settings.ibm_cos_secret_key or settings.aws_secret_access_key
        else:
            endpoint = settings.s3_endpoint_url
            key, secret = settings.aws_access_key_id, settings.aws_secret_access_key
        return cls(
            settings.bucket,
            provider=provider,
            key=key,
            secret=secret,
            region=settings.aws_region,
            endpoint_url=endpoint,
            sse=settings.s3_sse_algorithm,
            connect_timeout=settings.s3_connect_timeout,
            read_timeout=settings.s3_read_timeout,
        )

    # -- errors ---------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return self.endpoint_url or f"AWS S3 ({self.region})"

    def _provider_error(self, action: str, key: str | None, exc: BaseException) -> ProviderError:
        reason = _reason(exc)
        code = _code(exc)
        if reason == "bucket_missing":
            message = f"{self.name} bucket {self.bucket!r} does not exist at {self._where} (ARTIFACT_BUCKET)"
        elif reason == "access_denied":
            message = (
                f"{self.name} refused access to bucket {self.bucket!r} at {self._where}: "
                f"check the access key, secret and permissions ({code or 'access denied'})"
            )
        elif reason == "no_credentials":
            message = (
                f"no credentials for {self.name}: set the access key and secret, or configure the AWS credential chain"
            )
        elif reason == "endpoint_unreachable":
            message = f"cannot reach {self.name} at {self._where}: {type(exc).__name__}: {exc}"
        else:
            target = f" {key!r}" if key else ""
            message = f"{self.name} failed to {action}{target}: {code or type(exc).__name__}: {exc}"
        error = ProviderError(message)
        error.reason = reason
        return error

    def _bucket_exists(self) -> bool:
        """``head_bucket``: ``False`` if there is no such bucket; other failures raise."""
        try:
            self.fs.call_s3("head_bucket", Bucket=self.bucket)
        except FileNotFoundError:
            return False
        except Exception as exc:
            if _code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                return False
            raise self._provider_error("check", None, exc) from None
        return True

    @contextlib.contextmanager
    def _errors(self, action: str, key: str | None, *, missing_ok: bool = True) -> Iterator[None]:
        """Translate s3fs/botocore failures into ``ProviderError``. ``FileNotFoundError`` passes
        through only for a missing object (``missing_ok``) in a bucket that exists: S3 answers a
        HEAD with a bare 404 for both, so an ambiguous 404 costs one ``head_bucket``."""
        try:
            yield
        except ArtifactStoreError:
            raise
        except Exception as exc:
            code = _code(exc)
            if isinstance(exc, FileNotFoundError) or code in {"404", "NotFound", "NoSuchKey", "NoSuchBucket"}:
                if code in _BUCKET_MISSING:
                    bucket = False
                elif code == "NoSuchKey":
                    bucket = True
                else:
                    bucket = self._bucket_exists()
                if not bucket:
                    raise self._provider_error(action, key, _BucketMissing()) from None
                if missing_ok:
                    raise FileNotFoundError(f"no object at {key!r}") from None
            raise self._provider_error(action, key, exc) from None

    def _head(self, key: str) -> dict[str, Any] | None:
        """The object's ``head_object`` answer, or ``None`` if there is none."""
        try:
            with self._errors("stat", key):
                head: dict[str, Any] = self.fs.call_s3("head_object", Bucket=self.bucket, Key=key)
                return head
        except FileNotFoundError:
            return None

    # -- writing --------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        with self._errors("write", key, missing_ok=False):
            self.fs.call_s3("put_object", Bucket=self.bucket, Key=key, Body=data)

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """s3fs's buffered file: one part in memory at a time, sent as an S3 multipart upload.

        On an exception nothing is created: the multipart upload is aborted and the file is
        marked closed, so it can never commit later (fsspec commits on close, even on error).
        """
        with self._errors("write", key, missing_ok=False):
            f = self.fs.open(self.path(key), "wb", block_size=self.block_size)
        try:
            yield f
        except BaseException:
            with contextlib.suppress(Exception):
                f.discard()
            f.closed = True
            raise
        try:
            with self._errors("write", key, missing_ok=False):
                f.close()
        except BaseException:
            with contextlib.suppress(Exception):
                f._abort_mpu()
            f.closed = True
            raise

    def copy(self, src: str, dst: str) -> None:
        """Server-side copy (managed multipart copy for objects over 5 GiB)."""
        with self._errors("copy", src):
            self.fs.copy(self.path(src), self.path(dst))

    # -- reading --------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        with self._errors("read", key):
            data: bytes = self.fs.cat_file(self.path(key))
            return data

    def open_read(self, key: str) -> IO[bytes]:
        """A seekable file that fetches one block per ranged GET (``seek`` then ``read``)."""
        with self._errors("read", key):
            f: IO[bytes] = self.fs.open(self.path(key), "rb", block_size=self.block_size, cache_type="readahead")
            return f

    def size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def modified(self, key: str) -> float | None:
        head = self._head(key)
        value = None if head is None else head.get("LastModified")
        return value.timestamp() if isinstance(value, datetime) else None

    def keys(self, prefix: str = "grid/") -> Iterator[str]:
        base = self.path(prefix).rstrip("/")
        with self._errors("list", prefix, missing_ok=False):
            found = self.fs.find(base + "/")
        strip = len(self.bucket) + 1
        for path in found:
            yield self.fs._strip_protocol(path)[strip:]

    # -- removing -------------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        if self._head(key) is None:
            return False
        with self._errors("delete", key):
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=key)
        return True

    def delete_many(self, keys: list[str]) -> None:
        """One ``DeleteObjects`` request per 1,000 keys (S3's limit) instead of a HEAD and a
        DELETE per key: cleanup of many expired artifacts is bound by round trips. Keys that
        are already gone count as deleted (S3 answers so); any per-key error is raised."""
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            with self._errors("delete", batch[0], missing_ok=False):
                out = self.fs.call_s3(
                    "delete_objects",
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            errors = out.get("Errors") or []
            if errors:
                first = errors[0]
                error = ProviderError(
                    f"{self.name} failed to delete {len(errors)} of {len(batch)} objects, first "
                    f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message', '')}".rstrip()
                )
                error.reason = "access_denied" if first.get("Code") in _DENIED else "error"
                raise error

    # -- native multipart -----------------------------------------------------------------

    def create_multipart(self, key: str, mime: str) -> str:
        """Start an S3 multipart upload at ``key``; returns S3's upload id."""
        with self._errors("start a multipart upload at", key, missing_ok=False):
            out = self.fs.call_s3("create_multipart_upload", Bucket=self.bucket, Key=key, ContentType=mime)
        upload_id: str = out["UploadId"]
        return upload_id

    def complete_multipart(self, key: str, backend_upload_id: str, parts: list[tuple[int, str]]) -> None:
        """S3's CompleteMultipartUpload; S3 checks every ETag and part size.

        Raises ``InvalidArgumentError`` for a part S3 refuses (unknown, wrong ETag, too small,
        out of order) and ``ArtifactNotFoundError`` if S3 no longer knows the upload.
        """
        listed = [{"PartNumber": n, "ETag": f'"{etag}"'} for n, etag in parts]
        try:
            self.fs.call_s3(
                "complete_multipart_upload",
                Bucket=self.bucket,
                Key=key,
                UploadId=backend_upload_id,
                MultipartUpload={"Parts": listed},
            )
        except Exception as exc:
            code = _code(exc)
            if code in _BAD_PARTS:
                raise InvalidArgumentError(f"{self.name} refused the part list ({code}): {exc}") from None
            if code == "NoSuchUpload":
                raise ArtifactNotFoundError(f"{self.name} no longer has multipart upload for {key!r}") from None
            if isinstance(exc, FileNotFoundError) and code not in _BUCKET_MISSING and self._bucket_exists():
                raise ArtifactNotFoundError(f"{self.name} no longer has multipart upload for {key!r}") from None
            raise self._provider_error("complete the multipart upload of", key, exc) from None

    def abort_multipart(self, key: str, backend_upload_id: str) -> None:
        """Abort an S3 multipart upload (its parts are freed); an unknown upload is not an error."""
        try:
            self.fs.call_s3("abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=backend_upload_id)
        except Exception as exc:
            if _code(exc) in {"NoSuchUpload", "404"}:
                return
            if isinstance(exc, FileNotFoundError) and _code(exc) not in _BUCKET_MISSING:
                return
            raise self._provider_error("abort the multipart upload of", key, exc) from None

    # -- presigning -----------------------------------------------------------------------

    def presign(self, operation: str, params: dict[str, Any], expires: int) -> str:
        """A SigV4 URL for ``operation`` (``get_object``, ``put_object``, ``upload_part``)."""
        try:
            url: str = self._presigning_client().generate_presigned_url(
                operation, Params={"Bucket": self.bucket, **params}, ExpiresIn=expires
            )
            return url
        except Exception as exc:
            raise self._provider_error("presign", params.get("Key"), exc) from None

    def _presigning_client(self) -> Any:
        """The store's boto3 client for presigning (made on first use; signing is local)."""
        with self._presign_lock:
            if self._presign_client is None:
                from botocore.config import Config

                self._presign_client = _session("sync").client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    config=Config(**self._config),
                    **{k: v for k, v in self._credentials.items() if v},
                )
            return self._presign_client

    # -- operations -----------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Bucket reachable and writable? ``reason`` names the failure (see the module doc)."""
        where = {"bucket": self.bucket, "endpoint": self._where}
        try:
            if not self._bucket_exists():
                error = self._provider_error("check", None, _BucketMissing())
                return {"status": "error", "reason": "bucket_missing", "error": str(error), **where}
        except ProviderError as exc:
            return {"status": "error", "reason": getattr(exc, "reason", "error"), "error": str(exc), **where}
        return {**super().check(), **where}

    def close(self) -> None:
        client, self.fs._s3 = self.fs._s3, None
        if client is not None:
            with contextlib.suppress(Exception):
                type(self.fs).close_session(self.fs.loop, client)
        if self._presign_client is not None:
            with contextlib.suppress(Exception):
                self._presign_client.close()
            self._presign_client = None


class _BucketMissing(Exception):
    response = {"Error": {"Code": "NoSuchBucket"}}


class S3Presigner:
    """Native SigV4 URLs: GET with the artifact's type and filename, PUT to an upload's staging
    key, PUT of one part of an S3 multipart upload."""

    name = "s3"

    def __init__(self, blobs: S3Blobs) -> None:
        self.blobs = blobs

    def download_url(self, row: "Row", expires: int) -> str:
        from .signing import content_disposition

        return self.blobs.presign(
            "get_object",
            {
                "Key": row["key"],
                "ResponseContentType": row["mime"],
                # a share link's row names its disposition (``attachment`` or ``inline``)
                "ResponseContentDisposition": content_disposition(
                    row["filename"], row.get("disposition", "attachment")
                ),
            },
            expires,
        )

    def upload_url(self, upload: "Row", expires: int) -> str:
        return self.blobs.presign("put_object", {"Key": staged_key(upload["sandbox_id"], upload["upload_id"])}, expires)

    def part_url(self, upload: "Row", part_number: int, expires: int) -> str:
        if not upload.get("backend_upload_id"):
            raise ArtifactStoreError(f"upload {upload['upload_id']!r} has no {self.blobs.name} multipart upload")
        return self.blobs.presign(
            "upload_part",
            {"Key": upload["key"], "UploadId": upload["backend_upload_id"], "PartNumber": part_number},
            expires,
        )
