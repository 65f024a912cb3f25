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
from .core import StoreCore
from .errors import (
    AccessDeniedError,
    ArtifactCorruptedError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidArgumentError,
    ProviderError,
    QuotaExceededError,
)
from .events import reports_denials
from .models import (
    _DEFAULT,
    MultipartUploadCompleteRequest,
    MultipartUploadInitRequest,
    MultipartUploadPart,
    Ttl,
    check_request,
    chunks_of,
    iso,
)
from .presign import check_expires
from .streaming import copy_stream
from .writes import UPLOAD_FIELDS, hash_blob

__all__ = ["UploadMethods", "MAX_PARTS"]

MAX_PARTS = 10000
_COPY_CHUNK = 1 << 20


def _within(chunks: Iterator[bytes], room: int | None, upload: dict[str, Any]) -> Iterator[bytes]:
    """``chunks``, refused (``QuotaExceededError``) as soon as they pass ``room`` bytes: a body
    that could never be registered is not kept."""
    if room is None:
        yield from chunks
        return
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > room:
            raise QuotaExceededError(
                f"quota exceeded: upload {upload['upload_id']!r} passes the {room} bytes its owner has left"
            )
        yield chunk


def _check_part_number(part_number: Any) -> int:
    if isinstance(part_number, bool) or not isinstance(part_number, int) or not 1 <= part_number <= MAX_PARTS:
        raise InvalidArgumentError(f"part_number must be an integer from 1 to {MAX_PARTS}")
    return part_number


class UploadMethods(StoreCore):
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
        row = self.policy.new_row(
            data=None,
            mime=mime,
            summary=summary,
            meta=meta,
            filename=filename,
            ttl=ttl,
            scope=scope,
            caller=caller,
        )
        now = time.time()
        upload = {
            "upload_id": uuid.uuid4().hex,
            "kind": kind,
            "state": state,
            "created_at": now,
            "expires_at": now + lifetime,
            "backend_upload_id": None,
            **{k: row[k] for k in UPLOAD_FIELDS},
        }
        if kind == "multipart" and self.blobs.native_multipart:  # the backend keeps the parts
            upload["backend_upload_id"] = self.blobs.create_multipart(upload["key"], upload["mime"])
        try:
            self.writer.open_upload(upload)
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

    # -- presigned uploads ------------------------------------------------------------------

    @reports_denials
    def presign_upload(
        self,
        session_id: str | None = None,
        filename: str | None = None,
        mime_type: str = "application/octet-stream",
        expires: int = 1800,
        *,
        user_id: str | None = None,
        scope: str = "session",
        ttl: Ttl = _DEFAULT,
        meta: dict[str, Any] | None = None,
        summary: str = "",
    ) -> tuple[str, str]:
        """A URL a client can PUT the bytes to, and the artifact id they will get once registered."""
        expires = check_expires(expires)
        caller = self.policy.caller(user_id, session_id)
        upload = self._open_upload(
            "presigned",
            caller=caller,
            scope=scope,
            filename=filename,
            mime=mime_type,
            summary=summary,
            meta=meta,
            ttl=ttl,
            lifetime=expires + self.settings.upload_ttl,
        )
        return self.presigner.upload_url(upload, expires), upload["artifact_id"]

    @reports_denials
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
        ttl: Ttl = _DEFAULT,
    ) -> tuple[str, str]:
        """Like ``presign_upload`` with the metadata given now: the artifact is registered by
        itself, with its real size and sha256, as soon as the upload arrives."""
        expires = check_expires(expires)
        caller = self.policy.caller(user_id, session_id)
        upload = self._open_upload(
            "presigned",
            caller=caller,
            scope=scope,
            filename=filename,
            mime=mime,
            summary=summary,
            meta=meta,
            ttl=ttl,
            lifetime=expires + self.settings.upload_ttl,
            state="auto_register",
        )
        return self.presigner.upload_url(upload, expires), upload["artifact_id"]

    @reports_denials
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
        ttl: Ttl = _DEFAULT,
    ) -> str:
        """Turn a finished presigned upload into an artifact, recording its real size and sha256.

        Raises ``ArtifactNotFoundError`` if nothing was uploaded for ``artifact_id``.
        """
        caller = self.policy.caller(user_id, session_id)
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
            changes["ttl"] = self.policy.ttl(ttl, upload["scope"])
        with self.writer.claim_upload(upload):
            try:
                size, sha256 = self.writer.arrived_bytes(upload)
            except FileNotFoundError:
                raise ArtifactNotFoundError(f"nothing has been uploaded yet for artifact {artifact_id!r}") from None
            if "ttl" in changes and changes["ttl"] is None:
                upload = {**upload, "ttl": None}
            registered = self.writer.commit_upload(upload, size, sha256, caller, **changes)
        self.writer.drop_staged(upload)
        return registered

    def receive_upload(self, upload_id: str, chunks: Iterator[bytes]) -> str:
        """Store the body of a presigned PUT (a signed URL already authorised it); its ETag.
        For gateways (``gateway.SignedURLStore``)."""
        upload = self._find_upload(upload_id, "presigned", ("open", "auto_register"))
        room = self.writer.upload_room(upload)
        # Claimed while the body streams in: a concurrent PUT or register is refused instead of
        # changing bytes that are being (or have just been) hashed and registered.
        with self.writer.claim_upload(upload):
            with self.blobs.open_write(upload["key"]) as target:
                size, sha256 = copy_stream(_within(chunks_of(chunks, _COPY_CHUNK), room, upload), target)
            if upload["state"] == "auto_register":
                self.writer.commit_upload(upload, size, sha256)
            else:
                with self.catalog.write() as conn:
                    self.catalog.set_upload_state(conn, upload_id, "completing", upload["state"])
        return f'"{sha256}"'

    # -- multipart uploads ------------------------------------------------------------------

    @reports_denials
    def initiate_multipart_upload(self, request: MultipartUploadInitRequest) -> dict[str, Any]:
        """Start a multipart upload; returns ``upload_id``, ``artifact_id``, ``key``, ``session_id``,
        ``expires_at``."""
        check_request(request, MultipartUploadInitRequest, "initiate_multipart_upload")
        caller = self.policy.caller(request.user_id, request.session_id)
        upload = self._open_upload(
            "multipart",
            caller=caller,
            scope=request.scope,
            filename=request.filename,
            mime=request.mime_type,
            summary=request.summary,
            meta=request.meta,
            ttl=request.ttl,
            lifetime=self.settings.upload_ttl,
        )
        return {
            "upload_id": upload["upload_id"],
            "artifact_id": upload["artifact_id"],
            "key": upload["key"],
            "session_id": upload["session_id"],  # the published package's key (None for user/sandbox scope)
            "expires_at": iso(upload["expires_at"]),
        }

    @reports_denials
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
        caller = self.policy.caller(user_id, session_id)
        upload = self._find_upload(upload_id, "multipart", ("open",))
        self._require_upload(upload, caller)
        return self.presigner.part_url(upload, part_number, expires)

    def receive_part(self, upload_id: str, part_number: int, chunks: Iterator[bytes]) -> str:
        """Store one part sent to a signed part URL; its ETag (quoted MD5, as S3 does).
        For gateways (``gateway.SignedURLStore``)."""
        part_number = _check_part_number(part_number)
        upload = self._find_upload(upload_id, "multipart", ("open",))
        room = self.writer.upload_room(upload)
        if room is not None:  # the other parts of this upload take their share of the room
            with self.catalog.read() as conn:
                others = self.catalog.get_parts(conn, upload_id)
            room = max(0, room - sum(p["size"] for n, p in others.items() if n != part_number))
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        # Received under a key of its own, then renamed after its content (``part_key``).
        arriving = grid.arriving_part_key(self.sandbox_id, upload_id, part_number, uuid.uuid4().hex)
        with self.blobs.open_write(arriving) as target:
            for chunk in _within(chunks_of(chunks, _COPY_CHUNK), room, upload):
                target.write(chunk)
                md5.update(chunk)
                size += len(chunk)
        etag = f'"{md5.hexdigest()}"'
        key = grid.part_key(self.sandbox_id, upload_id, part_number, etag)
        self.blobs.move(arriving, key)
        with self.catalog.write() as conn:
            # Still open? (a no-op update: it locks the upload against a concurrent claim)
            still_open = self.catalog.set_upload_state(conn, upload_id, "open", "open")
            if still_open:
                replaced = self.catalog.get_parts(conn, upload_id).get(part_number)
                self.catalog.put_part(
                    conn,
                    {
                        "upload_id": upload_id,
                        "part_number": part_number,
                        "etag": etag,
                        "size": size,
                        "created_at": time.time(),
                    },
                )
        if not still_open:  # completed or aborted while this part arrived: leave no orphan
            self.writer.delete_upload_blobs(upload_id)
            raise ArtifactNotFoundError(f"upload {upload_id!r} was completed or aborted during this part")
        if replaced is not None and grid.normal_etag(replaced["etag"]) != grid.normal_etag(etag):
            self.blobs.delete(grid.part_key(self.sandbox_id, upload_id, part_number, replaced["etag"]))
        return etag

    @reports_denials
    def complete_multipart_upload(self, request: MultipartUploadCompleteRequest) -> str:
        """Verify every part (number, ETag, minimum size) and assemble them into the artifact."""
        check_request(request, MultipartUploadCompleteRequest, "complete_multipart_upload")
        caller = self.policy.caller(request.user_id, request.session_id)
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
            if grid.normal_etag(part["etag"]) != etag:
                raise InvalidArgumentError(f"the ETag given for part {number} does not match the upload")
            if index < len(wanted) - 1 and part["size"] < minimum:
                raise InvalidArgumentError(
                    f"part {number} has {part['size']} bytes; every part but the last needs {minimum}"
                )
        summary = grid.validate_summary(request.summary) if request.summary is not None else None
        with self.writer.claim_upload(upload):
            size, sha256 = self._assemble(upload, [recorded[n] for n in numbers])
            artifact_id = self.writer.commit_upload(upload, size, sha256, caller, summary=summary)
        self.writer.delete_upload_blobs(upload["upload_id"])
        return artifact_id

    @staticmethod
    def _as_part(part: Any) -> tuple[int, str]:
        if isinstance(part, MultipartUploadPart):
            return _check_part_number(part.PartNumber), grid.normal_etag(part.ETag)
        if isinstance(part, dict) and "PartNumber" in part and "ETag" in part:
            return _check_part_number(part["PartNumber"]), grid.normal_etag(part["ETag"])
        raise InvalidArgumentError("each part must be a MultipartUploadPart or {'PartNumber', 'ETag'}")

    def _assemble(self, upload: dict[str, Any], parts: list[dict[str, Any]]) -> tuple[int, str]:
        """Stream the parts, in order, into the artifact's key; check each part's size."""

        def chunks() -> Iterator[bytes]:
            for part in parts:
                key = grid.part_key(self.sandbox_id, upload["upload_id"], part["part_number"], part["etag"])
                got = 0
                with self.blobs.open_read(key) as f:
                    while chunk := f.read(_COPY_CHUNK):
                        got += len(chunk)
                        yield chunk
                if got != part["size"]:
                    raise ArtifactCorruptedError(f"part {part['part_number']} changed size in storage")

        with self.blobs.open_write(upload["key"]) as target:
            return copy_stream(chunks(), target)

    @reports_denials
    def abort_multipart_upload(
        self, upload_id: str, *, user_id: str | None = None, session_id: str | None = None
    ) -> bool:
        """Cancel a multipart upload and delete every part uploaded so far."""
        caller = self.policy.caller(user_id, session_id)
        upload = self._find_upload(upload_id, "multipart", ("open",))
        self._require_upload(upload, caller)
        return self.writer.drop_upload(upload)

    # -- backends with native uploads (S3: ``Blobs.native_multipart`` / ``native_presign``) ----

    def _complete_native(
        self, upload: dict[str, Any], parts: list[tuple[int, str]], summary: Any, caller: Caller
    ) -> str:
        """The backend's own completion (it verifies every ETag and part size), then the artifact
        with its real size and sha256, read back once as a stream."""
        summary = grid.validate_summary(summary) if summary is not None else None
        with self.writer.claim_upload(upload):
            try:
                self.blobs.complete_multipart(upload["key"], upload["backend_upload_id"], parts)
            except ArtifactNotFoundError:
                # An earlier completion reached the backend, then failed: its object is at the key.
                if self.blobs.size(upload["key"]) is None:
                    raise
            size, sha256 = hash_blob(self.blobs, upload["key"])
            return self.writer.commit_upload(upload, size, sha256, caller, summary=summary)
