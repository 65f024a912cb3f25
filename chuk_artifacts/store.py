"""``ArtifactStore``: the synchronous store — its artifact methods, and the parts it is made of.

The store is ``StoreCore`` (its parts: catalog, blobs, sessions, policy, writer, events; see
``core.py``) plus the public methods, grouped by feature: storing, reading and changing
artifacts here; listing and search (``listing.py``), sessions (``session_methods.py``),
streaming (``streaming.py``), presigned URLs (``presign.py``), uploads (``uploads.py``), share
links (``shares.py``) and maintenance (``maintenance.py``). Every public method goes downward: policy (who may do what),
then the writer (the crash-safe write protocol) or the catalog and blobs for reads.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from . import grid
from .access import Caller
from .config import Settings
from .core import StoreCore
from .errors import (
    AccessDeniedError,
    ArtifactCorruptedError,
    ArtifactExpiredError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidArgumentError,
    ProviderError,
)
from .events import reports_denials
from .grid import GridKey
from .listing import ListingMethods
from .maintenance import MaintenanceMethods
from .models import _DEFAULT, ArtifactMetadata, Ttl, metadata_from_row
from .policy import MAX_TTL
from .presign import PresignMethods
from .session_methods import SessionMethods
from .shares import ShareMethods
from .streaming import StreamingMethods
from .uploads import UploadMethods
from .writes import copy_blob, read_blob

logger = logging.getLogger("chuk_artifacts.store")

if TYPE_CHECKING:
    from .catalog import Tx
    from .models import Row
    from .views import BoundStore

__all__ = ["ArtifactStore", "MAX_TTL"]


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        raise InvalidArgumentError("data must be bytes; use write_file() to store text")
    raise InvalidArgumentError(f"data must be bytes, not {type(data).__name__}")


class ArtifactStore(
    ListingMethods,
    SessionMethods,
    StreamingMethods,
    PresignMethods,
    UploadMethods,
    ShareMethods,
    MaintenanceMethods,
    StoreCore,
):
    """Scoped artifact storage with access control, TTL expiry and indexed search.

    With no arguments and no environment it keeps everything in memory. Arguments override the
    environment variables of the same meaning (see ``chuk_artifacts.config``).
    """

    def __init__(
        self,
        bucket: str | None = None,
        storage_provider: str | None = None,
        session_provider: str | None = None,
        sandbox_id: str | None = None,
        session_ttl_hours: float | None = None,
        max_retries: int | None = None,
        *,
        fs_root: str | None = None,
        catalog_url: str | None = None,
        strict: bool | None = None,
        default_ttl: int | None = None,
        verify_reads: bool | None = None,
        auto_migrate: bool | None = None,
        settings: Settings | None = None,
        **options: Any,
    ) -> None:
        # ``max_retries`` is accepted for compatibility; retries belong to the backend client.
        overrides = {
            "bucket": bucket,
            "storage_provider": storage_provider,
            "session_provider": session_provider,
            "sandbox_id": sandbox_id,
            "session_ttl_hours": session_ttl_hours,
            "fs_root": fs_root,
            "catalog_url": catalog_url,
            "strict": strict,
            "default_ttl": default_ttl,
            "verify_reads": verify_reads,
            **options,
        }
        if settings is None:
            settings = Settings.from_env(**overrides)
        elif any(v is not None for v in overrides.values()):
            raise InvalidArgumentError("pass either settings= or individual options, not both")
        else:
            settings = settings.normalized()
        super().__init__(settings, auto_migrate=auto_migrate)

    # -- storing --------------------------------------------------------------------------

    @reports_denials
    def store(
        self,
        data: bytes,
        *,
        mime: str,
        summary: str = "",
        meta: dict[str, Any] | None = None,
        filename: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        ttl: Ttl = _DEFAULT,
        scope: str = "session",
    ) -> str:
        """Store ``data`` and return its new artifact id.

        ``scope`` is ``session`` (default TTL 900 s), ``user`` (needs ``user_id``; no expiry by
        default) or ``sandbox`` (admin only). ``ttl=None`` never expires.
        """
        data = _as_bytes(data)
        caller = self.policy.caller(user_id, session_id)
        row = self.policy.new_row(
            data=data,
            mime=mime,
            summary=summary,
            meta=meta,
            filename=filename,
            ttl=ttl,
            scope=scope,
            caller=caller,
        )
        self.writer.create([row], [data])
        self.events.artifacts("artifact_stored", [row], caller)
        return str(row["artifact_id"])

    @reports_denials
    def store_batch(
        self,
        items: Iterable[Mapping[str, Any]],
        session_id: str | None = None,
        ttl: Ttl = _DEFAULT,
        *,
        user_id: str | None = None,
        scope: str = "session",
    ) -> list[str]:
        """Store several artifacts in one transaction: all of them, or (on any error) none.

        Each item is a mapping with ``data`` and ``mime`` and optionally ``summary``, ``meta``,
        ``filename`` and ``ttl``.
        """
        if isinstance(items, (str, bytes, Mapping)) or not hasattr(items, "__iter__"):
            raise InvalidArgumentError("items must be an iterable of mappings")
        caller = self.policy.caller(user_id, session_id)
        rows: list[Row] = []
        payloads: list[bytes] = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping) or "data" not in item or "mime" not in item:
                raise InvalidArgumentError(f"batch item {index} must be a mapping with data and mime")
            unknown = set(item) - {"data", "mime", "summary", "meta", "filename", "ttl"}
            if unknown:
                raise InvalidArgumentError(f"batch item {index} has unknown keys: {sorted(unknown)}")
            try:
                data = _as_bytes(item["data"])
                rows.append(
                    self.policy.new_row(
                        data=data,
                        mime=item["mime"],
                        summary=item.get("summary", ""),
                        meta=item.get("meta"),
                        filename=item.get("filename"),
                        ttl=item.get("ttl", ttl),
                        scope=scope,
                        caller=caller,
                        like=rows[0] if rows else None,
                    )
                )
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(f"batch item {index}: {exc}") from None
            payloads.append(data)
        if not rows:
            return []
        self.writer.create(rows, payloads)
        self.events.artifacts("artifact_stored", rows, caller)
        return [str(row["artifact_id"]) for row in rows]

    @reports_denials
    def write_file(
        self,
        content: str | bytes,
        *,
        filename: str,
        mime: str | None = None,
        summary: str = "",
        session_id: str | None = None,
        user_id: str | None = None,
        meta: dict[str, Any] | None = None,
        encoding: str = "utf-8",
        overwrite_artifact_id: str | None = None,
        scope: str = "session",
        ttl: Ttl = _DEFAULT,
    ) -> str:
        """Store text (encoded with ``encoding``) or bytes under ``filename``; return the id.

        ``mime`` defaults to ``text/plain``. With ``overwrite_artifact_id`` the existing
        artifact's content is replaced instead (its mime kept unless ``mime`` is given).
        """
        if isinstance(content, str):
            try:
                data = content.encode(encoding)
            except (LookupError, UnicodeError, TypeError, ValueError) as exc:
                raise InvalidArgumentError(f"content cannot be encoded as {encoding!r}: {exc}") from None
        else:
            data = _as_bytes(content)
        if overwrite_artifact_id is not None:
            self.update_file(
                overwrite_artifact_id,
                data=data,
                mime=mime,
                summary=summary or None,
                meta=meta,
                filename=filename,
                user_id=user_id,
                session_id=session_id,
            )
            return overwrite_artifact_id
        return self.store(
            data,
            mime=mime or "text/plain",
            summary=summary,
            meta=meta,
            filename=filename,
            session_id=session_id,
            user_id=user_id,
            ttl=ttl,
            scope=scope,
        )

    # -- reading --------------------------------------------------------------------------

    @reports_denials
    def retrieve(self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None) -> bytes:
        """The artifact's bytes."""
        row = self.policy.accessible(artifact_id, user_id, session_id)
        for _ in range(5):
            try:
                data = read_blob(self.blobs, row)
            except FileNotFoundError:
                current = self.policy.load(artifact_id)
                if current["version"] != row["version"]:
                    row = current  # a concurrent update moved or replaced the bytes
                    continue
                self.policy.missing_bytes(row)
            if len(data) == row["bytes"] and (
                not self.settings.verify_reads or hashlib.sha256(data).hexdigest() == row["sha256"]
            ):
                return data
            # A concurrent update_file moved its bytes into place after this row was read.
            current = self.policy.load(artifact_id)
            if current["version"] == row["version"]:
                break
            row = current
        raise ArtifactCorruptedError(f"artifact {artifact_id!r}: stored bytes do not match the catalog's size/sha256")

    @reports_denials
    def read_file(
        self,
        artifact_id: str,
        *,
        encoding: str = "utf-8",
        as_text: bool = False,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> bytes | str:
        """The artifact's bytes, or its text decoded with ``encoding`` when ``as_text=True``."""
        data = self.retrieve(artifact_id, user_id=user_id, session_id=session_id)
        if not as_text:
            return data
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"artifact {artifact_id!r} is not {encoding} text: {exc}") from None

    @reports_denials
    def metadata(
        self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None
    ) -> ArtifactMetadata:
        """The catalog's record of the artifact."""
        return metadata_from_row(self.policy.accessible(artifact_id, user_id, session_id))

    @reports_denials
    def exists(self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None) -> bool:
        """``True`` if the artifact exists and has not expired (access is still checked)."""
        try:
            self.policy.accessible(artifact_id, user_id, session_id)
        except (ArtifactNotFoundError, ArtifactExpiredError):
            return False
        return True

    # -- changing -------------------------------------------------------------------------

    def _update(self, artifact_id: str, user_id: str | None, session_id: str | None, change: Any) -> Row:
        """``writer.update`` as this caller, who must be allowed to change the artifact; the
        update is reported to ``artifact_updated``."""
        caller = self.policy.caller(user_id, session_id)
        grid.validate_id(artifact_id, "artifact_id")
        committed = self.writer.update(artifact_id, self._checker(artifact_id, caller), change)
        self.events.artifacts("artifact_updated", [committed], caller)
        return committed

    def _checker(self, artifact_id: str, caller: Caller) -> Any:
        def check(row: Row | None) -> Row:
            live = self.policy.live(row, artifact_id)
            self.policy.require(live, caller, write=True)
            return live

        return check

    def _changes(self, fields: Row, meta: dict[str, Any] | None, ttl: Any, *, merge: bool = True) -> Any:
        """The ``change`` of an update: ``fields`` as given, ``meta`` merged, ``ttl`` recomputed."""

        def change(row: Row, tx: Tx) -> Row:
            values = dict(fields)
            if meta is not None:
                values["meta"] = self.policy.merged_meta(row, meta, merge=merge)
            if ttl is not _DEFAULT:
                values.update(self.policy.ttl_values(ttl, row["scope"]))
            return values

        return change

    @reports_denials
    def update_file(
        self,
        artifact_id: str,
        *,
        data: bytes | None = None,
        mime: str | None = None,
        summary: str | None = None,
        meta: dict[str, Any] | None = None,
        filename: str | None = None,
        ttl: Ttl = _DEFAULT,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> bool:
        """Replace the content and/or change mime, summary, filename, meta (merged) or ttl."""
        if data is None and mime is None and summary is None and meta is None and filename is None and ttl is _DEFAULT:
            raise InvalidArgumentError(
                "update_file needs something to change: data, mime, summary, meta, filename or ttl"
            )
        payload = _as_bytes(data) if data is not None else None
        fields = self.policy.changed_fields(mime=mime, summary=summary, filename=filename)
        meta = grid.validate_meta(meta, self.settings.max_meta_bytes) if meta is not None else None
        change = self._changes(fields, meta, ttl)
        if payload is None:
            committed = self._update(artifact_id, user_id, session_id, change)
            if "mime" in fields:  # the same bytes, read as another type: index them anew
                try:
                    self.writer.reindex([committed])
                except ProviderError:  # committed already: the entry keeps the old type's text
                    logger.warning("could not read %s to index it as %s", artifact_id, fields["mime"])
            return True
        row = self.policy.accessible(artifact_id, user_id, session_id, write=True)
        caller = self.policy.caller(user_id, session_id)
        # the row as it will be (a new mime or filename decides how the new bytes are indexed)
        committed = self.writer.replace({**row, **fields}, payload, self._checker(artifact_id, caller), change)
        self.events.artifacts("artifact_updated", [committed], caller)
        return True

    @reports_denials
    def update_metadata(
        self,
        artifact_id: str,
        *,
        summary: str | None = None,
        meta: dict[str, Any] | None = None,
        merge: bool = True,
        filename: str | None = None,
        ttl: Ttl = _DEFAULT,
        new_meta: dict[str, Any] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> ArtifactMetadata:
        """Change metadata without touching the bytes. ``meta`` merges unless ``merge=False``."""
        if new_meta is not None:  # the published package's spelling
            if meta is not None:
                raise InvalidArgumentError("pass meta or new_meta, not both")
            meta = new_meta
        fields = self.policy.changed_fields(summary=summary, filename=filename)
        if meta is not None:
            meta = grid.validate_meta(meta, self.settings.max_meta_bytes)
        change = self._changes(fields, meta, ttl, merge=merge)
        return metadata_from_row(self._update(artifact_id, user_id, session_id, change))

    @reports_denials
    def extend_ttl(
        self,
        artifact_id: str,
        additional_seconds: int,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> ArtifactMetadata:
        """Push the expiry back by ``additional_seconds`` (no effect on artifacts that never expire)."""
        if (
            isinstance(additional_seconds, bool)
            or not isinstance(additional_seconds, int)
            or not (0 < additional_seconds <= MAX_TTL)
        ):
            raise InvalidArgumentError(f"additional_seconds must be an integer from 1 to {MAX_TTL}")

        def change(row: Row, tx: Tx) -> Row:
            if row["expires_at"] is None:
                return {}
            return {  # both capped, so no number of extensions overflows a date
                "ttl": min(row["ttl"] + additional_seconds, MAX_TTL),
                "expires_at": min(row["expires_at"] + additional_seconds, time.time() + MAX_TTL),
            }

        return metadata_from_row(self._update(artifact_id, user_id, session_id, change))

    @reports_denials
    def copy_file(
        self,
        artifact_id: str,
        *,
        new_filename: str | None = None,
        target_session_id: str | None = None,
        new_meta: dict[str, Any] | None = None,
        summary: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """Copy an artifact within its own session/scope; return the copy's id.

        Copies never cross sessions: a different ``target_session_id`` raises ``AccessDeniedError``.
        """
        # Arguments first, as everywhere: an invalid id is an InvalidArgumentError, not a denial.
        if target_session_id is not None:
            grid.validate_id(target_session_id, "target_session_id")
        if new_meta is not None:
            new_meta = grid.validate_meta(new_meta, self.settings.max_meta_bytes)
        row = self.policy.accessible(artifact_id, user_id, session_id, write=True)
        if target_session_id is not None and target_session_id != row["session_id"]:
            raise AccessDeniedError("cross-session copies are not allowed")
        new_id = uuid.uuid4().hex
        now = time.time()
        meta = self.policy.merged_meta(row, new_meta, merge=True) if new_meta else dict(row["meta"] or {})
        copy = {
            **{k: v for k, v in row.items() if k != "row_id"},
            "artifact_id": new_id,
            "key": grid.make_key(
                self.sandbox_id, row["scope"], new_id, session_id=row["session_id"], user_id=row["owner_id"]
            ),
            "filename": grid.validate_filename(new_filename) if new_filename else row["filename"],
            "summary": grid.validate_summary(summary) if summary is not None else row["summary"],
            "meta": meta,
            "stored_at": now,
            "updated_at": now,
            "expires_at": now + row["ttl"] if row["ttl"] else None,
            "version": 1,
            "pending_key": None,
        }
        self.writer.begin([copy["key"]], owner_id=copy["owner_id"], nbytes=copy["bytes"])
        try:
            self._copy_source(artifact_id, row, copy, new_meta)
        except BaseException:
            self.writer.abandon([copy["key"]])
            raise
        self.writer.commit_written([copy])
        self.events.artifacts("artifact_stored", [copy], Caller(user_id, session_id))
        return new_id

    def _copy_source(self, artifact_id: str, row: Row, copy: Row, new_meta: dict[str, Any] | None) -> None:
        """Copy the source's bytes to ``copy["key"]`` without its lock: the source row is read
        again afterwards, and an update or delete that committed meanwhile is caught (the copy
        is redone from the new row, or refused as not found) instead of mixing two versions."""
        for _ in range(5):
            try:
                copy_blob(self.blobs, row, copy["key"])
                copied = True
            except FileNotFoundError:
                copied = False  # deleted, or moved into place by an update: the row read below tells
            current = self.policy.load(artifact_id)  # ArtifactNotFoundError once deleted
            if current["version"] == row["version"]:
                if not copied:
                    self.policy.missing_bytes(row)
                return
            row = current
            copy.update(bytes=row["bytes"], sha256=row["sha256"], mime=row["mime"])
            copy["meta"] = self.policy.merged_meta(row, new_meta, merge=True) if new_meta else dict(row["meta"] or {})
        raise ArtifactStoreError(f"artifact {artifact_id!r} kept changing while it was copied; retry")

    @reports_denials
    def move_file(
        self,
        artifact_id: str,
        *,
        new_filename: str | None = None,
        new_session_id: str | None = None,
        new_meta: dict[str, Any] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> ArtifactMetadata:
        """Rename an artifact (and merge ``new_meta``); persisted. Moves never cross sessions."""
        filename = grid.validate_filename(new_filename) if new_filename is not None else None
        if new_meta is not None:
            new_meta = grid.validate_meta(new_meta, self.settings.max_meta_bytes)

        def change(row: Row, tx: Tx) -> Row:
            if new_session_id is not None and new_session_id != row["session_id"]:
                raise AccessDeniedError("cross-session moves are not allowed")
            values: Row = {}
            if filename is not None:
                values["filename"] = filename
            if new_meta is not None:
                values["meta"] = self.policy.merged_meta(row, new_meta, merge=True)
            return values

        return metadata_from_row(self._update(artifact_id, user_id, session_id, change))

    @reports_denials
    def delete(self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None) -> bool:
        """Delete the artifact's bytes and row. ``False`` if there was nothing to delete."""
        try:
            caller, row = self.policy.access(artifact_id, user_id, session_id, write=True, allow_expired=True)
        except ArtifactNotFoundError:
            return False
        return self.writer.delete_one(row, event="artifact_deleted", caller=caller)

    # -- keys ---------------------------------------------------------------------------

    def parse_grid_key(self, key: str) -> GridKey:
        """Split a grid key into sandbox, scope, session/user and artifact id."""
        return grid.parse_grid_key(key)

    def get_canonical_prefix(self, session_id: str) -> str:
        """The key prefix of a session's session-scoped artifacts."""
        return grid.session_prefix(self.sandbox_id, session_id)

    def generate_artifact_key(self, session_id: str, artifact_id: str) -> str:
        return grid.make_key(self.sandbox_id, "session", artifact_id, session_id=session_id)

    # -- identity-bound views -------------------------------------------------------------

    def as_user(self, user_id: str, session_id: str | None = None) -> BoundStore:
        """A view of this store whose every call acts as ``user_id`` (and ``session_id``)."""
        from .views import BoundStore

        return BoundStore(self, user_id=grid.validate_id(user_id, "user_id"), session_id=session_id)

    def as_session(self, session_id: str, user_id: str | None = None) -> BoundStore:
        """A view of this store whose every call acts as ``session_id``."""
        from .views import BoundStore

        return BoundStore(self, user_id=user_id, session_id=grid.validate_id(session_id, "session_id"))

    def as_admin(self) -> BoundStore:
        """An explicit admin view: the only way to act without identity in strict mode."""
        from .views import BoundStore

        return BoundStore(self, admin=True)

    def __enter__(self) -> ArtifactStore:
        return self
