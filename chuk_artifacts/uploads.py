"""Uploads that arrive later: presigned PUT uploads and multipart uploads.

An upload is a catalog row (``uploads``) with its own expiry; it becomes an artifact only when
registered or completed, after its bytes have been verified. Multipart parts are stored as
separate objects (``_uploads/<sandbox>/<upload>/<part>``) and assembled by streaming.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from typing import Any, Iterator

from . import grid
from .access import Caller, can_write
from .errors import (
    AccessDeniedError,
    ArtifactCorruptedError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidArgumentError,
    ProviderError,
    QuotaExceededError,
)
from .models import (
    _DEFAULT,
    MultipartUploadCompleteRequest,
    MultipartUploadInitRequest,
    check_request,
    MultipartUploadPart,
    iso,
)
from .presign import check_expires
from .streaming import copy_stream

__all__ = ["UploadsMixin", "part_key", "staged_key", "MAX_PARTS"]

MAX_PARTS = 10000
_COPY_CHUNK = 1 << 20


def part_key(sandbox_id: str, upload_id: str, part_number: int, etag: str) -> str:
    """Where a part lives: named by its number and its content's ETag, so a part uploaded again
    with other bytes goes to another key and never changes the bytes a completion assembles."""
    return f"{parts_prefix(sandbox_id, upload_id)}{part_number:05d}-{_normal_etag(etag)}"


def parts_prefix(sandbox_id: str, upload_id: str) -> str:
    return f"_uploads/{sandbox_id}/{upload_id}/"


def staged_key(sandbox_id: str, upload_id: str) -> str:
    """Where a natively presigned PUT (``Blobs.native_presign``) lands. Registration copies it to
    the artifact's key, so a URL still valid afterwards can never change registered bytes."""
    return f"_uploads/{sandbox_id}/{upload_id}/object"


def _check_part_number(part_number: Any) -> int:
    if isinstance(part_number, bool) or not isinstance(part_number, int) or not 1 <= part_number <= MAX_PARTS:
        raise InvalidArgumentError(f"part_number must be an integer from 1 to {MAX_PARTS}")
    return part_number


def _normal_etag(etag: Any) -> str:
    if not isinstance(etag, str):
        raise InvalidArgumentError("ETag must be a string")
    return etag.strip().strip('"')


class UploadsMixin:
    """Presigned uploads and multipart uploads for ``ArtifactStore``."""

    # -- shared -----------------------------------------------------------------------------

    def _open_upload(
        self,
        kind: str,
        *,
        caller: Caller,
        scope: str,
        filename: Any,
        mime: Any,
        summary: Any,
        meta: Any,
        ttl: Any,
        lifetime: float,
        state: str = "open",
    ) -> dict[str, Any]:
        row = self._new_row(
            data=None, mime=mime, summary=summary, meta=meta, filename=filename,
            ttl=ttl, scope=scope, caller=caller,
        )
        now = time.time()
        upload = {
            "upload_id": uuid.uuid4().hex,
            "kind": kind,
            "state": state,
            "created_at": now,
            "expires_at": now + lifetime,
            "backend_upload_id": None,
            **{k: row[k] for k in (
                "artifact_id", "sandbox_id", "scope", "session_id", "owner_id", "key",
                "filename", "mime", "summary", "meta", "ttl",
            )},
        }
        if kind == "multipart" and self.blobs.native_multipart:  # the backend keeps the parts
            upload["backend_upload_id"] = self.blobs.create_multipart(upload["key"], upload["mime"])
        try:
            with self.catalog.write() as conn:
                self.catalog.insert_upload(conn, upload)
        except BaseException:
            if upload["backend_upload_id"]:
                with contextlib.suppress(ProviderError):
                    self.blobs.abort_multipart(upload["key"], upload["backend_upload_id"])
            raise
        return upload

    def _find_upload(self, upload_id: str, kind: str, states: tuple[str, ...]) -> dict[str, Any]:
        grid.validate_id(upload_id, "upload_id")
        with self.catalog.read() as conn:
            upload = self.catalog.get_upload(conn, upload_id)
        if (
            upload is None
            or upload["kind"] != kind
            or upload["sandbox_id"] != self.sandbox_id
            or upload["expires_at"] <= time.time()
        ):
            raise ArtifactNotFoundError(f"upload {upload_id!r} not found or expired")
        if upload["state"] not in states:
            raise ArtifactStoreError(f"upload {upload_id!r} is {upload['state']}, not open")
        return upload

    @staticmethod
    def _require_upload(upload: dict[str, Any], caller: Caller) -> None:
        if not can_write(upload["scope"], upload["owner_id"], upload["session_id"], caller):
            raise AccessDeniedError(f"access denied: upload {upload['upload_id']!r} is not yours")

    @contextlib.contextmanager
    def _claim_upload(self, upload: dict[str, Any]) -> Iterator[None]:
        """Mark the upload ``completing`` so only one caller finishes it; reopen it on failure."""
        with self.catalog.write() as conn:
            if not self.catalog.set_upload_state(conn, upload["upload_id"], upload["state"], "completing"):
                raise ArtifactStoreError(f"upload {upload['upload_id']!r} is already being completed")
        try:
            yield
        except BaseException:
            with self.catalog.write() as conn:
                self.catalog.set_upload_state(conn, upload["upload_id"], "completing", upload["state"])
            raise

    def _upload_to_artifact(
        self, upload: dict[str, Any], size: int, sha256: str, caller: Caller | None = None, **changes: Any
    ) -> str:
        """Insert the artifact row for an upload whose bytes sit at its key; drop the upload."""
        now = time.time()
        ttl = upload["ttl"]
        row = {
            **{k: upload[k] for k in (
                "artifact_id", "sandbox_id", "scope", "session_id", "owner_id", "key",
                "filename", "mime", "summary", "meta", "ttl",
            )},
            **{k: v for k, v in changes.items() if v is not None},
            "bytes": size,
            "sha256": sha256,
            "stored_at": now,
            "updated_at": now,
            "state": "committed",
            "version": 1,
            "storage_provider": self.storage_provider,
            "session_provider": self.session_provider,
        }
        ttl = row["ttl"]
        row["expires_at"] = now + ttl if ttl else None
        try:  # the upload's row stood for its bytes until now (no intent): cleanup knows them
            self._commit_rows(
                [row], intents=False, also=lambda conn: self.catalog.delete_upload(conn, upload["upload_id"])
            )
        except QuotaExceededError:
            raise  # the upload stays as it was: registrable once there is room
        except BaseException:
            self._discard_bytes([row])
            raise
        if caller is None:  # finished through a signed URL: the identity it was issued to
            caller = Caller(upload["owner_id"], upload["session_id"])
        self._emit_rows("artifact_stored", [row], caller)
        return row["artifact_id"]

    def _hash_blob(self, key: str) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        with self.blobs.open_read(key) as f:
            while chunk := f.read(_COPY_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    # -- presigned uploads ------------------------------------------------------------------

    def presign_upload(
        self,
        session_id: str | None = None,
        filename: str | None = None,
        mime_type: str = "application/octet-stream",
        expires: int = 1800,
        *,
        user_id: str | None = None,
        scope: str = "session",
        ttl: int | None = _DEFAULT,  # type: ignore[assignment]
        meta: dict[str, Any] | None = None,
        summary: str = "",
    ) -> tuple[str, str]:
        """A URL a client can PUT the bytes to, and the artifact id they will get once registered."""
        expires = check_expires(expires)
        caller = self._caller(user_id, session_id)
        upload = self._open_upload(
            "presigned", caller=caller, scope=scope, filename=filename, mime=mime_type,
            summary=summary, meta=meta, ttl=ttl, lifetime=expires + self.settings.upload_ttl,
        )
        return self.presigner.upload_url(upload, expires), upload["artifact_id"]

    def presign_upload_and_register(
        self,
        mime: str,
        summary: str = "",
        filename: str | None = None,
        meta: dict[str, Any] | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        expires: int = 1800,
        *,
        scope: str = "session",
        ttl: int | None = _DEFAULT,  # type: ignore[assignment]
    ) -> tuple[str, str]:
        """Like ``presign_upload`` with the metadata given now: the artifact is registered by
        itself, with its real size and sha256, as soon as the upload arrives."""
        expires = check_expires(expires)
        caller = self._caller(user_id, session_id)
        upload = self._open_upload(
            "presigned", caller=caller, scope=scope, filename=filename, mime=mime, summary=summary,
            meta=meta, ttl=ttl, lifetime=expires + self.settings.upload_ttl, state="auto_register",
        )
        return self.presigner.upload_url(upload, expires), upload["artifact_id"]

    def register_uploaded_artifact(
        self,
        artifact_id: str,
        *,
        mime: str | None = None,
        summary: str | None = None,
        filename: str | None = None,
        meta: dict[str, Any] | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        ttl: int | None = _DEFAULT,  # type: ignore[assignment]
    ) -> str:
        """Turn a finished presigned upload into an artifact, recording its real size and sha256.

        Raises ``ArtifactNotFoundError`` if nothing was uploaded for ``artifact_id``.
        """
        caller = self._caller(user_id, session_id)
        grid.validate_id(artifact_id, "artifact_id")
        with self.catalog.read() as conn:
            upload = self.catalog.get_upload_by_artifact(conn, artifact_id)
        if upload is None:
            raise ArtifactNotFoundError(f"no pending upload for artifact {artifact_id!r}")
        upload = self._find_upload(upload["upload_id"], "presigned", ("open", "auto_register"))
        self._require_upload(upload, caller)
        changes: dict[str, Any] = {
            "mime": grid.validate_mime(mime) if mime is not None else None,
            "summary": grid.validate_summary(summary) if summary is not None else None,
            "filename": grid.validate_filename(filename),
            "meta": grid.validate_meta(meta, self.settings.max_meta_bytes) if meta is not None else None,
        }
        if ttl is not _DEFAULT:
            changes["ttl"] = self._ttl(ttl, upload["scope"])
        with self._claim_upload(upload):
            try:
                size, sha256 = self._arrived_bytes(upload)
            except FileNotFoundError:
                raise ArtifactNotFoundError(
                    f"nothing has been uploaded yet for artifact {artifact_id!r}"
                ) from None
            if "ttl" in changes and changes["ttl"] is None:
                upload = {**upload, "ttl": None}
            registered = self._upload_to_artifact(upload, size, sha256, caller, **changes)
        self._drop_staged(upload)
        return registered

    def _receive_upload(self, upload_id: str, chunks: Iterator[bytes]) -> str:
        """Store the body of a presigned PUT (the signature already authorised it); return ETag."""
        upload = self._find_upload(upload_id, "presigned", ("open", "auto_register"))
        # Claimed while the body streams in: a concurrent PUT or register is refused instead of
        # changing bytes that are being (or have just been) hashed and registered.
        with self._claim_upload(upload):
            with self.blobs.open_write(upload["key"]) as target:
                size, sha256 = copy_stream(chunks, target)
            if upload["state"] == "auto_register":
                self._upload_to_artifact(upload, size, sha256)
            else:
                with self.catalog.write() as conn:
                    self.catalog.set_upload_state(conn, upload_id, "completing", upload["state"])
        return f'"{sha256}"'

    # -- multipart uploads ------------------------------------------------------------------

    def initiate_multipart_upload(self, request: MultipartUploadInitRequest) -> dict[str, Any]:
        """Start a multipart upload; returns ``upload_id``, ``artifact_id``, ``key``, ``expires_at``."""
        check_request(request, MultipartUploadInitRequest, "initiate_multipart_upload")
        caller = self._caller(request.user_id, request.session_id)
        upload = self._open_upload(
            "multipart", caller=caller, scope=request.scope, filename=request.filename,
            mime=request.mime_type, summary=request.summary, meta=request.meta, ttl=request.ttl,
            lifetime=self.settings.upload_ttl,
        )
        return {
            "upload_id": upload["upload_id"],
            "artifact_id": upload["artifact_id"],
            "key": upload["key"],
            "expires_at": iso(upload["expires_at"]),
        }

    def get_part_upload_url(
        self,
        upload_id: str,
        part_number: int,
        expires: int = 3600,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """A URL to PUT part ``part_number`` (1–10000) to; its response carries the part's ETag."""
        part_number = _check_part_number(part_number)
        expires = check_expires(expires)
        caller = self._caller(user_id, session_id)
        upload = self._find_upload(upload_id, "multipart", ("open",))
        self._require_upload(upload, caller)
        return self.presigner.part_url(upload, part_number, expires)

    def _receive_part(self, upload_id: str, part_number: int, chunks: Iterator[bytes]) -> str:
        """Store one part sent to a signed part URL; return its ETag (quoted MD5, as S3 does)."""
        part_number = _check_part_number(part_number)
        self._find_upload(upload_id, "multipart", ("open",))
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        # Received under a key of its own, then renamed after its content (``part_key``).
        arriving = f"{parts_prefix(self.sandbox_id, upload_id)}{part_number:05d}.{uuid.uuid4().hex}"
        with self.blobs.open_write(arriving) as target:
            for chunk in chunks:
                target.write(chunk)
                md5.update(chunk)
                size += len(chunk)
        etag = f'"{md5.hexdigest()}"'
        key = part_key(self.sandbox_id, upload_id, part_number, etag)
        self.blobs.move(arriving, key)
        with self.catalog.write() as conn:
            # Still open? (a no-op update: it locks the upload against a concurrent claim)
            still_open = self.catalog.set_upload_state(conn, upload_id, "open", "open")
            if still_open:
                replaced = self.catalog.get_parts(conn, upload_id).get(part_number)
                self.catalog.put_part(
                    conn,
                    {"upload_id": upload_id, "part_number": part_number, "etag": etag,
                     "size": size, "created_at": time.time()},
                )
        if not still_open:  # completed or aborted while this part arrived: leave no orphan
            self._delete_upload_blobs(upload_id)
            raise ArtifactNotFoundError(f"upload {upload_id!r} was completed or aborted during this part")
        if replaced is not None and _normal_etag(replaced["etag"]) != _normal_etag(etag):
            self.blobs.delete(part_key(self.sandbox_id, upload_id, part_number, replaced["etag"]))
        return etag

    def complete_multipart_upload(self, request: MultipartUploadCompleteRequest) -> str:
        """Verify every part (number, ETag, minimum size) and assemble them into the artifact."""
        check_request(request, MultipartUploadCompleteRequest, "complete_multipart_upload")
        caller = self._caller(request.user_id, request.session_id)
        upload = self._find_upload(request.upload_id, "multipart", ("open",))
        self._require_upload(upload, caller)
        if isinstance(request.parts, (str, bytes, dict)) or not hasattr(request.parts, "__iter__"):
            raise InvalidArgumentError("parts must be a list of MultipartUploadPart")
        wanted = [self._as_part(p) for p in request.parts]
        if not wanted:
            raise InvalidArgumentError("a multipart upload needs at least one part")
        numbers = [n for n, _ in wanted]
        if numbers != sorted(set(numbers)):
            raise InvalidArgumentError("parts must be listed once each, in ascending PartNumber order")
        if self.blobs.native_multipart:  # the backend checks every part's ETag and size itself
            return self._complete_native(upload, wanted, request.summary, caller)
        with self.catalog.read() as conn:
            recorded = self.catalog.get_parts(conn, upload["upload_id"])
            current = self.catalog.get_upload(conn, upload["upload_id"])  # after the parts, on purpose
        if current is None:  # completed or aborted concurrently: its parts are gone, not "missing"
            raise ArtifactNotFoundError(f"upload {upload['upload_id']!r} not found or expired")
        if current["state"] != "open":
            raise ArtifactStoreError(f"upload {upload['upload_id']!r} is {current['state']}, not open")
        minimum = self.settings.multipart_min_part_size
        for index, (number, etag) in enumerate(wanted):
            part = recorded.get(number)
            if part is None:
                raise InvalidArgumentError(f"part {number} was never uploaded")
            if _normal_etag(part["etag"]) != etag:
                raise InvalidArgumentError(f"the ETag given for part {number} does not match the upload")
            if index < len(wanted) - 1 and part["size"] < minimum:
                raise InvalidArgumentError(
                    f"part {number} has {part['size']} bytes; every part but the last needs {minimum}"
                )
        summary = grid.validate_summary(request.summary) if request.summary is not None else None
        with self._claim_upload(upload):
            size, sha256 = self._assemble(upload, [recorded[n] for n in numbers])
            artifact_id = self._upload_to_artifact(upload, size, sha256, caller, summary=summary)
        self._delete_upload_blobs(upload["upload_id"])
        return artifact_id

    @staticmethod
    def _as_part(part: Any) -> tuple[int, str]:
        if isinstance(part, MultipartUploadPart):
            return _check_part_number(part.PartNumber), _normal_etag(part.ETag)
        if isinstance(part, dict) and "PartNumber" in part and "ETag" in part:
            return _check_part_number(part["PartNumber"]), _normal_etag(part["ETag"])
        raise InvalidArgumentError("each part must be a MultipartUploadPart or {'PartNumber', 'ETag'}")

    def _assemble(self, upload: dict[str, Any], parts: list[dict[str, Any]]) -> tuple[int, str]:
        """Stream the parts, in order, into the artifact's key; check each part's size."""

        def chunks() -> Iterator[bytes]:
            for part in parts:
                key = part_key(self.sandbox_id, upload["upload_id"], part["part_number"], part["etag"])
                got = 0
                with self.blobs.open_read(key) as f:
                    while chunk := f.read(_COPY_CHUNK):
                        got += len(chunk)
                        yield chunk
                if got != part["size"]:
                    raise ArtifactCorruptedError(f"part {part['part_number']} changed size in storage")

        with self.blobs.open_write(upload["key"]) as target:
            return copy_stream(chunks(), target)

    def _delete_upload_blobs(self, upload_id: str) -> None:
        """Every object under the upload's own prefix: its parts, and what any interrupted part
        upload left (listing one upload's prefix, not the bucket)."""
        try:
            for key in list(self.blobs.keys(parts_prefix(self.sandbox_id, upload_id))):
                self.blobs.delete(key)
        except ProviderError:
            pass  # left for fsck (orphan-part); the rows are gone

    def abort_multipart_upload(
        self, upload_id: str, *, user_id: str | None = None, session_id: str | None = None
    ) -> bool:
        """Cancel a multipart upload and delete every part uploaded so far."""
        caller = self._caller(user_id, session_id)
        upload = self._find_upload(upload_id, "multipart", ("open",))
        self._require_upload(upload, caller)
        return self._drop_upload(upload)

    def _drop_upload(self, upload: dict[str, Any]) -> bool:
        """Remove an upload's parts, any bytes uploaded to its key, and its rows."""
        with self.catalog.write() as conn:
            if not self.catalog.set_upload_state(conn, upload["upload_id"], upload["state"], "aborting"):
                return False
        self._delete_upload_blobs(upload["upload_id"])
        if upload.get("backend_upload_id"):
            self.blobs.abort_multipart(upload["key"], upload["backend_upload_id"])
        self._drop_staged(upload)
        if upload["kind"] == "presigned" or upload["state"] != "open":
            with self.catalog.read() as conn:
                registered = self.catalog.get_artifact(conn, upload["artifact_id"]) is not None
            if not registered:
                self.blobs.delete(upload["key"])
                self.blobs.discard_partial(upload["key"])
        with self.catalog.write() as conn:
            self.catalog.delete_upload(conn, upload["upload_id"])
        return True

    def _cleanup_uploads(self, now: float) -> int:
        """Remove uploads past their expiry (and their bytes). Returns how many."""
        removed = 0
        while True:
            with self.catalog.read() as conn:
                stale = self.catalog.expired_uploads(conn, self.sandbox_id, now, 500)
            dropped = sum(1 for u in stale if self._drop_upload(u))
            removed += dropped
            if dropped == 0:
                return removed

    # -- backends with native uploads (S3: ``Blobs.native_multipart`` / ``native_presign``) ----

    def _complete_native(
        self, upload: dict[str, Any], parts: list[tuple[int, str]], summary: Any, caller: Caller
    ) -> str:
        """The backend's own completion (it verifies every ETag and part size), then the artifact
        with its real size and sha256, read back once as a stream."""
        summary = grid.validate_summary(summary) if summary is not None else None
        with self._claim_upload(upload):
            try:
                self.blobs.complete_multipart(upload["key"], upload["backend_upload_id"], parts)
            except ArtifactNotFoundError:
                # An earlier completion reached the backend, then failed: its object is at the key.
                if self.blobs.size(upload["key"]) is None:
                    raise
            size, sha256 = self._hash_blob(upload["key"])
            return self._upload_to_artifact(upload, size, sha256, caller, summary=summary)

    def _arrived_bytes(self, upload: dict[str, Any]) -> tuple[int, str]:
        """(size, sha256) of an upload's bytes, now at the artifact's key; ``FileNotFoundError``
        if nothing arrived. A native presigned PUT is copied there (server-side) from its stage."""
        if upload["kind"] == "presigned" and self.blobs.native_presign:
            self.blobs.copy(staged_key(upload["sandbox_id"], upload["upload_id"]), upload["key"])
        return self._hash_blob(upload["key"])

    def _drop_staged(self, upload: dict[str, Any]) -> None:
        if upload["kind"] == "presigned" and self.blobs.native_presign:
            try:
                self.blobs.delete(staged_key(upload["sandbox_id"], upload["upload_id"]))
            except ProviderError:
                pass  # left for fsck; the upload is done

    def _register_arrived(self, artifact_id: str) -> dict[str, Any] | None:
        """Register an auto-register upload whose bytes went straight to the backend (no gateway
        saw them arrive) when its artifact is first looked up. Its row, or ``None``."""
        with self.catalog.read() as conn:
            upload = self.catalog.get_upload_by_artifact(conn, artifact_id)
        if (
            upload is None
            or upload["kind"] != "presigned"
            or upload["state"] != "auto_register"
            or upload["sandbox_id"] != self.sandbox_id
            or upload["expires_at"] <= time.time()
            or self.blobs.size(staged_key(upload["sandbox_id"], upload["upload_id"])) is None
        ):
            return None
        with self.catalog.write() as conn:
            if not self.catalog.set_upload_state(conn, upload["upload_id"], "auto_register", "completing"):
                return None  # another caller is registering it right now
        try:
            size, sha256 = self._arrived_bytes(upload)
            self._upload_to_artifact(upload, size, sha256)
        except BaseException as exc:
            with self.catalog.write() as conn:
                self.catalog.set_upload_state(conn, upload["upload_id"], "completing", "auto_register")
            if isinstance(exc, FileNotFoundError):
                return None
            raise
        self._drop_staged(upload)
        with self.catalog.read() as conn:
            return self.catalog.get_artifact(conn, artifact_id)
