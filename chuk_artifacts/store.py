"""``ArtifactStore``: the synchronous store, where policy lives (scopes, access, TTL, sessions).

The catalog (SQL) and the blobs (fsspec) never decide anything; every rule is applied here.
Write ordering (``writes.py``, ``docs/reliability.md``): intent, bytes, then the row; a delete
tombstones the row, removes the bytes, then the row — so a crash leaves at worst an intent or a
tombstone that cleanup finishes.
"""

from __future__ import annotations

import contextvars
import hashlib
import math
import time
import uuid
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from . import grid
from .access import Caller, can_read, can_write
from .blobs import Blobs
from .catalog import Catalog, Row
from .config import Settings
from .errors import (
    AccessDeniedError,
    ArtifactCorruptedError,
    ArtifactExpiredError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidArgumentError,
    ProviderError,
)
from .grid import GridKey
from .models import _DEFAULT, ArtifactMetadata, iso
from .presign import PresignMixin
from .events import EventsMixin
from .listing import ListingMixin
from .maintenance import MaintenanceMixin
from .sessions import CatalogSessions, SessionMethodsMixin, SessionProvider
from .streaming import StreamingMixin
from .uploads import UploadsMixin
from .writes import WritesMixin, staging_key

if TYPE_CHECKING:
    from .views import BoundStore

__all__ = ["ArtifactStore"]

MAX_TTL = 100 * 365 * 86400

#: "Not read yet" for rows a caller may hand down (``None`` is a row that does not exist).
_UNREAD: Any = object()
#: Set while an explicit admin view runs a call, so strict mode lets it through.
_admin_call: contextvars.ContextVar[bool] = contextvars.ContextVar("chuk_admin_call", default=False)


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        raise InvalidArgumentError("data must be bytes; use write_file() to store text")
    raise InvalidArgumentError(f"data must be bytes, not {type(data).__name__}")


class ArtifactStore(
    ListingMixin,
    MaintenanceMixin,
    SessionMethodsMixin,
    StreamingMixin,
    PresignMixin,
    UploadsMixin,
    WritesMixin,
    EventsMixin,
):
    """Scoped artifact storage with access control, TTL expiry and indexed search.

    Session methods (``sessions.py``), streaming (``streaming.py``), presigned URLs
    (``presign.py``) and uploads (``uploads.py``) are mixed in from their own modules.

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
        self.settings = settings
        self.sandbox_id = settings.sandbox_id

        from .plugins import check_session_provider, ensure_plugins_loaded, make_blobs, make_sessions

        pm = ensure_plugins_loaded()
        check_session_provider(settings.session_provider)
        self.blobs: Blobs = make_blobs(settings)
        try:
            self.catalog = Catalog(
                settings.resolved_catalog_url(),
                auto_migrate=auto_migrate,
                prepare_connection=lambda c, d: pm.hook.prepare_connection(dbapi_connection=c, dialect=d),
            )
        except BaseException:
            self.blobs.close()
            raise
        try:  # from the ``session_provider`` hook: ``catalog`` is built in, plugins add more
            self.sessions: SessionProvider = make_sessions(settings, self.catalog)
        except BaseException:
            self.catalog.close()
            self.blobs.close()
            raise
        self._closed = False
        self._anonymous_session_id: str | None = None
        #: The built-in provider keeps sessions in this catalog: ``_accessible`` may then read the
        #: session and the artifact together (a subclass may change ``get``, so not for those).
        self._sessions_in_catalog = (
            type(self.sessions) is CatalogSessions and self.sessions.catalog is self.catalog
        )

    # -- identity and policy --------------------------------------------------------------

    @property
    def storage_provider(self) -> str:
        return self.blobs.name

    @property
    def session_provider(self) -> str:
        return self.sessions.name

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    def _caller(
        self, user_id: str | None, session_id: str | None, *, session_row: Any = _UNREAD
    ) -> Caller:
        """Validate the identity a call names; resolve a session's owner as its user.
        ``session_row``: the session's row when the caller has read it already."""
        if self._closed:
            raise ArtifactStoreError("the store is closed")
        if user_id is not None:
            grid.validate_id(user_id, "user_id")
        row = None
        if session_id is not None:
            grid.validate_id(session_id, "session_id")
            row = self.sessions.get(session_id) if session_row is _UNREAD else session_row
            if row is not None and row["user_id"] is not None:
                if user_id is not None and row["user_id"] != user_id:
                    raise AccessDeniedError(f"session {session_id!r} belongs to another user")
                user_id = row["user_id"]
        if user_id is None and session_id is None and self.settings.strict and not _admin_call.get():
            raise AccessDeniedError(
                "strict mode: every call must name a user_id or session_id "
                "(use store.as_user(...), store.as_session(...) or store.as_admin())"
            )
        return Caller(user_id, session_id, session=row)

    def _load(self, artifact_id: str, *, allow_expired: bool = False, row: Any = _UNREAD) -> Row:
        """The live row of ``artifact_id`` (``row``: as the caller has read it already)."""
        grid.validate_id(artifact_id, "artifact_id")
        if row is _UNREAD:
            row = self.catalog.artifact(artifact_id)
        if row is None and self.blobs.native_presign:  # an auto-register upload may have arrived
            row = self._register_arrived(artifact_id)
        return self._live(row, artifact_id, allow_expired=allow_expired)

    def _row_for_key(self, key: str) -> Row:
        """The live artifact stored at ``key`` (the gateway finds artifacts by signed key)."""
        if grid.parse_grid_key(key).sandbox_id != self.sandbox_id:
            raise ArtifactNotFoundError(f"no artifact at {key!r}")
        with self.catalog.read() as conn:
            row = self.catalog.get_artifact_by_key(conn, key)
        return self._live(row, key)

    def _live(self, row: Row | None, label: str, *, allow_expired: bool = False) -> Row:
        if row is None or row["state"] != "committed" or row["sandbox_id"] != self.sandbox_id:
            raise ArtifactNotFoundError(f"artifact {label!r} not found")
        if not allow_expired and row["expires_at"] is not None and row["expires_at"] <= time.time():
            raise ArtifactExpiredError(f"artifact {label!r} has expired")
        return row

    @staticmethod
    def _require(row: Row, caller: Caller, *, write: bool) -> None:
        check = can_write if write else can_read
        if not check(row["scope"], row["owner_id"], row["session_id"], caller):
            verb = "modify" if write else "read"
            raise AccessDeniedError(f"access denied: cannot {verb} artifact {row['artifact_id']!r}")

    def _accessible(
        self, artifact_id: str, user_id: str | None, session_id: str | None, *, write: bool = False
    ) -> Row:
        session_row = artifact_row = _UNREAD
        if session_id is not None and not self._closed and self._sessions_in_catalog:
            # The usual request of a server (an artifact, as a session): both rows in one round.
            grid.validate_id(session_id, "session_id")
            grid.validate_id(artifact_id, "artifact_id")
            session_row, artifact_row = self.catalog.session_and_artifact(
                self.sandbox_id, session_id, artifact_id
            )
        caller = self._caller(user_id, session_id, session_row=session_row)
        row = self._load(artifact_id, row=artifact_row)
        self._require(row, caller, write=write)
        return row

    def _ttl(self, ttl: Any, scope: str) -> int | None:
        if ttl is _DEFAULT:
            return self.settings.default_ttl if scope == "session" else None
        if ttl is None:
            return None
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl):
            raise InvalidArgumentError("ttl must be a number of seconds or None")
        if not 1 <= ttl <= MAX_TTL:
            raise InvalidArgumentError(f"ttl must be between 1 and {MAX_TTL} seconds, or None")
        return int(math.ceil(ttl))

    def _new_placement(
        self, scope: str, caller: Caller, artifact_id: str, like: Row | None = None
    ) -> tuple[str | None, str | None, str]:
        """Where a new artifact goes: (session_id, owner_id, key), creating a session if needed.

        ``like``: an earlier row of the same batch (same caller and scope), whose session and
        owner the artifact shares — so a batch resolves its session once, not once per item.
        """
        grid.validate_scope(scope)
        if like is not None:
            session_id, owner = like["session_id"], like["owner_id"]
            key = grid.make_key(self.sandbox_id, scope, artifact_id, session_id=session_id, user_id=owner)
            return session_id, owner, key
        if scope == "sandbox":
            if not caller.is_admin:
                raise AccessDeniedError("only the application (admin) may write sandbox-scoped artifacts")
            return None, None, grid.make_key(self.sandbox_id, "sandbox", artifact_id)
        if scope == "user" and caller.user_id is None:
            raise InvalidArgumentError("scope='user' needs a user_id")
        if caller.session_id is not None:
            session = self._usable_session(caller)
        elif caller.user_id is not None:
            session = self.sessions.for_user(caller.user_id)
        else:
            session = self._anonymous_session()
        if session.get("created"):
            self._emit("session_created", session_id=session["session_id"], user_id=session["user_id"], caller=caller)
        owner = caller.user_id if caller.user_id is not None else session["user_id"]
        key = grid.make_key(
            self.sandbox_id, scope, artifact_id, session_id=session["session_id"], user_id=owner
        )
        return session["session_id"], owner, key

    def _usable_session(self, caller: Caller) -> Row:
        """``sessions.ensure`` for the caller's session, reusing the row ``_caller`` just read:
        a live one is only slid (``touch``), as ``ensure`` would after reading it itself."""
        now = time.time()
        known = caller.session
        if known is not None and known["session_id"] == caller.session_id and known["expires_at"] > now:
            return self.sessions.touch(known, now)
        return self.sessions.ensure(caller.session_id, caller.user_id)

    def _anonymous_session(self) -> Row:
        """The session of this store's identity-less (application) writes, reused across calls."""
        if self._anonymous_session_id is not None:
            return self.sessions.ensure(self._anonymous_session_id, None)
        row = self.sessions.create(None)
        self._anonymous_session_id = row["session_id"]
        return row

    def _new_row(
        self,
        *,
        data: bytes | None,
        mime: str,
        summary: str,
        meta: Any,
        filename: Any,
        ttl: Any,
        scope: str,
        caller: Caller,
        like: Row | None = None,
    ) -> Row:
        """Validate everything about a new artifact and return its catalog row (not yet written).

        With ``data=None`` (streamed or uploaded bytes) size and sha256 are filled in later.
        """
        grid.validate_scope(scope)
        values = {
            "mime": grid.validate_mime(mime),
            "summary": grid.validate_summary(summary),
            "meta": grid.validate_meta(meta, self.settings.max_meta_bytes),
            "filename": grid.validate_filename(filename),
            "ttl": self._ttl(ttl, scope),
        }
        artifact_id = uuid.uuid4().hex
        session_id, owner_id, key = self._new_placement(scope, caller, artifact_id, like)
        now = time.time()
        return {
            "artifact_id": artifact_id,
            "sandbox_id": self.sandbox_id,
            "scope": scope,
            "session_id": session_id,
            "owner_id": owner_id,
            "key": key,
            "bytes": len(data) if data is not None else 0,
            "sha256": hashlib.sha256(data).hexdigest() if data is not None else "",
            "stored_at": now,
            "updated_at": now,
            "expires_at": now + values["ttl"] if values["ttl"] else None,
            "state": "committed",
            "version": 1,
            "storage_provider": self.storage_provider,
            "session_provider": self.session_provider,
            **values,
        }

    def _to_metadata(self, row: Row) -> ArtifactMetadata:
        return ArtifactMetadata(
            artifact_id=row["artifact_id"],
            session_id=row["session_id"],
            sandbox_id=row["sandbox_id"],
            key=row["key"],
            mime=row["mime"],
            summary=row["summary"],
            meta=dict(row["meta"] or {}),
            filename=row["filename"],
            bytes=row["bytes"],
            sha256=row["sha256"],
            stored_at=iso(row["stored_at"]),
            ttl=row["ttl"],
            scope=row["scope"],
            owner_id=row["owner_id"],
            storage_provider=row["storage_provider"],
            session_provider=row["session_provider"],
            updated_at=iso(row["updated_at"]),
            expires_at=iso(row["expires_at"]),
            version=row["version"],
        )

    def _insert_with_bytes(self, rows: list[Row], payloads: list[bytes]) -> None:
        """Intents, bytes, then every row in one transaction; on failure nothing remains."""
        self._begin_writes(
            [r["key"] for r in rows], owner_id=rows[0]["owner_id"] if rows else None,
            nbytes=sum(len(p) for p in payloads),
        )
        try:
            for row, data in zip(rows, payloads):
                self.blobs.put(row["key"], data)
        except BaseException:
            self._abandon_writes([r["key"] for r in rows])
            raise
        self._insert_written(rows)

    def _insert_written(self, rows: list[Row]) -> None:
        """Insert rows whose bytes are written (under intents); on failure remove the bytes."""
        try:
            self._commit_rows(rows)
        except BaseException:
            self._abandon_writes([r["key"] for r in rows])
            raise

    def _discard_bytes(self, rows: list[Row]) -> None:
        for row in rows:
            try:
                self.blobs.delete(row["key"])
            except ProviderError:
                pass  # an orphan blob: fsck finds it

    # -- storing --------------------------------------------------------------------------

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
        ttl: int | None = _DEFAULT,  # type: ignore[assignment]
        scope: str = "session",
    ) -> str:
        """Store ``data`` and return its new artifact id.

        ``scope`` is ``session`` (default TTL 900 s), ``user`` (needs ``user_id``; no expiry by
        default) or ``sandbox`` (admin only). ``ttl=None`` never expires.
        """
        data = _as_bytes(data)
        caller = self._caller(user_id, session_id)
        row = self._new_row(
            data=data, mime=mime, summary=summary, meta=meta, filename=filename,
            ttl=ttl, scope=scope, caller=caller,
        )
        self._insert_with_bytes([row], [data])
        self._emit_rows("artifact_stored", [row], caller)
        return row["artifact_id"]

    def store_batch(
        self,
        items: Iterable[Mapping[str, Any]],
        session_id: str | None = None,
        ttl: int | None = _DEFAULT,  # type: ignore[assignment]
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
        caller = self._caller(user_id, session_id)
        rows, payloads = [], []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping) or "data" not in item or "mime" not in item:
                raise InvalidArgumentError(f"batch item {index} must be a mapping with data and mime")
            unknown = set(item) - {"data", "mime", "summary", "meta", "filename", "ttl"}
            if unknown:
                raise InvalidArgumentError(f"batch item {index} has unknown keys: {sorted(unknown)}")
            try:
                data = _as_bytes(item["data"])
                rows.append(
                    self._new_row(
                        data=data, mime=item["mime"], summary=item.get("summary", ""),
                        meta=item.get("meta"), filename=item.get("filename"),
                        ttl=item.get("ttl", ttl), scope=scope, caller=caller,
                        like=rows[0] if rows else None,
                    )
                )
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(f"batch item {index}: {exc}") from None
            payloads.append(data)
        if not rows:
            return []
        self._insert_with_bytes(rows, payloads)
        self._emit_rows("artifact_stored", rows, caller)
        return [row["artifact_id"] for row in rows]

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
        ttl: int | None = _DEFAULT,  # type: ignore[assignment]
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
                overwrite_artifact_id, data=data, mime=mime, summary=summary or None,
                meta=meta, filename=filename, user_id=user_id, session_id=session_id,
            )
            return overwrite_artifact_id
        return self.store(
            data, mime=mime or "text/plain", summary=summary, meta=meta, filename=filename,
            session_id=session_id, user_id=user_id, ttl=ttl, scope=scope,
        )

    # -- reading --------------------------------------------------------------------------

    def retrieve(
        self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None
    ) -> bytes:
        """The artifact's bytes."""
        row = self._accessible(artifact_id, user_id, session_id)
        for _ in range(5):
            try:
                data = self._read_blob(row)
            except FileNotFoundError:
                current = self._load(artifact_id)
                if current["version"] != row["version"]:
                    row = current  # a concurrent update moved or replaced the bytes
                    continue
                self._raise_missing_bytes(row)
            if len(data) == row["bytes"] and (
                not self.settings.verify_reads or hashlib.sha256(data).hexdigest() == row["sha256"]
            ):
                return data
            # A concurrent update_file moved its bytes into place after this row was read.
            current = self._load(artifact_id)
            if current["version"] == row["version"]:
                break
            row = current
        raise ArtifactCorruptedError(
            f"artifact {artifact_id!r}: stored bytes do not match the catalog's size/sha256"
        )

    def _raise_missing_bytes(self, row: Row) -> None:
        """Bytes gone: a concurrent delete (not found) or a real loss (corrupted)."""
        with self.catalog.read() as conn:
            current = self.catalog.get_artifact(conn, row["artifact_id"])
        if current is None or current["state"] != "committed":
            raise ArtifactNotFoundError(f"artifact {row['artifact_id']!r} not found")
        raise ArtifactCorruptedError(f"artifact {row['artifact_id']!r}: its bytes are missing")

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

    def metadata(
        self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None
    ) -> ArtifactMetadata:
        """The catalog's record of the artifact."""
        return self._to_metadata(self._accessible(artifact_id, user_id, session_id))

    def exists(
        self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None
    ) -> bool:
        """``True`` if the artifact exists and has not expired (access is still checked)."""
        try:
            self._accessible(artifact_id, user_id, session_id)
        except (ArtifactNotFoundError, ArtifactExpiredError):
            return False
        return True

    # -- changing -------------------------------------------------------------------------

    def _update_row(
        self,
        artifact_id: str,
        user_id: str | None,
        session_id: str | None,
        change: Any,
    ) -> Row:
        """Apply ``change(row) -> values`` to the row, locked: concurrent updates (threads or
        processes) queue up, so none is lost and a merge always sees the previous one."""
        caller = self._caller(user_id, session_id)
        grid.validate_id(artifact_id, "artifact_id")
        with self.catalog.write() as conn:
            row = self._live(self.catalog.get_artifact(conn, artifact_id, for_update=True), artifact_id)
            self._require(row, caller, write=True)
            values = change(row, conn)
            values["updated_at"] = time.time()
            if not self.catalog.update_artifact(conn, row["row_id"], row["version"], values):
                raise ArtifactStoreError(f"artifact {artifact_id!r} changed during its update")
        return {**row, **values, "version": row["version"] + 1}

    def update_file(
        self,
        artifact_id: str,
        *,
        data: bytes | None = None,
        mime: str | None = None,
        summary: str | None = None,
        meta: dict[str, Any] | None = None,
        filename: str | None = None,
        ttl: int | None = _DEFAULT,  # type: ignore[assignment]
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> bool:
        """Replace the content and/or change mime, summary, filename, meta (merged) or ttl."""
        payload = _as_bytes(data) if data is not None else None
        fields = self._changed_fields(mime=mime, summary=summary, filename=filename)
        meta = grid.validate_meta(meta, self.settings.max_meta_bytes) if meta is not None else None
        if payload is None:
            committed = self._update_fields(artifact_id, fields, meta, ttl, user_id, session_id)
            self._updated(committed, user_id, session_id)
            return True
        # New bytes go to a staging key first (see writes.py): the old ones stay readable and
        # intact until the row commits, whatever happens to this process.
        row = self._accessible(artifact_id, user_id, session_id, write=True)
        fields["bytes"] = len(payload)
        fields["sha256"] = hashlib.sha256(payload).hexdigest()
        staged = staging_key(row["key"])
        self._begin_writes(
            [staged], owner_id=row["owner_id"], nbytes=max(0, len(payload) - row["bytes"]), count=0
        )
        superseded: list[str] = []
        try:
            self.blobs.put(staged, payload)
            fields["pending_key"] = staged
            committed = self._update_fields(artifact_id, fields, meta, ttl, user_id, session_id, staged, superseded)
        except BaseException:
            self._abandon_writes([staged])
            raise
        # Committed: what follows only tidies up, and cleanup finishes it if this fails.
        for old in superseded:
            self._drop_superseded(old)
        try:
            self._promote(artifact_id, staged)
        except ProviderError:
            pass  # readers use pending_key meanwhile
        self._updated(committed, user_id, session_id)
        return True

    def _update_fields(
        self,
        artifact_id: str,
        fields: Row,
        meta: dict[str, Any] | None,
        ttl: Any,
        user_id: str | None,
        session_id: str | None,
        staged: str | None = None,
        superseded: list[str] | None = None,
    ) -> Row:
        """Apply the changes to the locked row; the committed row (events are the caller's)."""

        def change(row: Row, conn: Any) -> Row:
            values = dict(fields)
            if meta is not None:
                values["meta"] = self._merged_meta(row, meta, merge=True)
            if ttl is not _DEFAULT:
                values.update(self._ttl_values(ttl, row["scope"]))
            if staged is not None:
                if self.catalog.claim_intents(conn, [staged]) != 1:
                    raise ProviderError("the update outlived the upload window and cleanup gave it up; retry")
                if values["bytes"] != row["bytes"]:
                    self.catalog.charge(
                        conn, self.sandbox_id, row["owner_id"], values["bytes"] - row["bytes"], 0, self._quotas
                    )
                if row["pending_key"]:  # an earlier update's bytes, never moved into place
                    self._supersede(conn, row["pending_key"])
                    superseded.append(row["pending_key"])  # type: ignore[union-attr]
            return values

        return self._update_row(artifact_id, user_id, session_id, change)

    def _changed_fields(self, **fields: Any) -> Row:
        checks = {"mime": grid.validate_mime, "summary": grid.validate_summary, "filename": grid.validate_filename}
        return {name: checks[name](value) for name, value in fields.items() if value is not None}

    def _merged_meta(self, row: Row, meta: dict[str, Any], *, merge: bool) -> dict[str, Any]:
        merged = {**(row["meta"] or {}), **meta} if merge else dict(meta)
        return grid.validate_meta(merged, self.settings.max_meta_bytes)

    def _ttl_values(self, ttl: Any, scope: str) -> Row:
        seconds = self._ttl(ttl, scope)
        return {"ttl": seconds, "expires_at": time.time() + seconds if seconds else None}

    def update_metadata(
        self,
        artifact_id: str,
        *,
        summary: str | None = None,
        meta: dict[str, Any] | None = None,
        merge: bool = True,
        filename: str | None = None,
        ttl: int | None = _DEFAULT,  # type: ignore[assignment]
        new_meta: dict[str, Any] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> ArtifactMetadata:
        """Change metadata without touching the bytes. ``meta`` merges unless ``merge=False``."""
        if new_meta is not None:  # the published package's spelling
            if meta is not None:
                raise InvalidArgumentError("pass meta or new_meta, not both")
            meta = new_meta
        fields = self._changed_fields(summary=summary, filename=filename)
        if meta is not None:
            grid.validate_meta(meta, self.settings.max_meta_bytes)

        def change(row: Row, conn: Any) -> Row:
            values = dict(fields)
            if meta is not None:
                values["meta"] = self._merged_meta(row, meta, merge=merge)
            if ttl is not _DEFAULT:
                values.update(self._ttl_values(ttl, row["scope"]))
            return values

        return self._to_metadata(self._updated(self._update_row(artifact_id, user_id, session_id, change), user_id, session_id))

    def extend_ttl(
        self,
        artifact_id: str,
        additional_seconds: int,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> ArtifactMetadata:
        """Push the expiry back by ``additional_seconds`` (no effect on artifacts that never expire)."""
        if isinstance(additional_seconds, bool) or not isinstance(additional_seconds, int) or not (
            0 < additional_seconds <= MAX_TTL
        ):
            raise InvalidArgumentError(f"additional_seconds must be an integer from 1 to {MAX_TTL}")

        def change(row: Row, conn: Any) -> Row:
            if row["expires_at"] is None:
                return {}
            return {  # both capped, so no number of extensions overflows a date
                "ttl": min(row["ttl"] + additional_seconds, MAX_TTL),
                "expires_at": min(row["expires_at"] + additional_seconds, time.time() + MAX_TTL),
            }

        return self._to_metadata(self._updated(self._update_row(artifact_id, user_id, session_id, change), user_id, session_id))

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
        row = self._accessible(artifact_id, user_id, session_id, write=True)
        if target_session_id is not None and target_session_id != row["session_id"]:
            raise AccessDeniedError("cross-session copies are not allowed")
        new_id = uuid.uuid4().hex
        now = time.time()
        if new_meta is not None:
            new_meta = grid.validate_meta(new_meta, self.settings.max_meta_bytes)
        meta = self._merged_meta(row, new_meta, merge=True) if new_meta else dict(row["meta"] or {})
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
        self._begin_writes([copy["key"]], owner_id=copy["owner_id"], nbytes=copy["bytes"])
        try:
            self._copy_source(artifact_id, row, copy, new_meta)
        except BaseException:
            self._abandon_writes([copy["key"]])
            raise
        self._insert_written([copy])
        self._emit_rows("artifact_stored", [copy], Caller(user_id, session_id))
        return new_id

    def _copy_source(self, artifact_id: str, row: Row, copy: Row, new_meta: dict[str, Any] | None) -> None:
        """Copy the source's bytes to ``copy["key"]`` without its lock: the source row is read
        again afterwards, and an update or delete that committed meanwhile is caught (the copy
        is redone from the new row, or refused as not found) instead of mixing two versions."""
        for _ in range(5):
            try:
                self._copy_blob(row, copy["key"])
                copied = True
            except FileNotFoundError:
                copied = False  # deleted, or moved into place by an update: the row read below tells
            current = self._load(artifact_id)  # ArtifactNotFoundError once deleted
            if current["version"] == row["version"]:
                if not copied:
                    self._raise_missing_bytes(row)
                return
            row = current
            copy.update(bytes=row["bytes"], sha256=row["sha256"], mime=row["mime"])
            copy["meta"] = self._merged_meta(row, new_meta, merge=True) if new_meta else dict(row["meta"] or {})
        raise ArtifactStoreError(f"artifact {artifact_id!r} kept changing while it was copied; retry")

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
            grid.validate_meta(new_meta, self.settings.max_meta_bytes)

        def change(row: Row, conn: Any) -> Row:
            if new_session_id is not None and new_session_id != row["session_id"]:
                raise AccessDeniedError("cross-session moves are not allowed")
            values: Row = {}
            if filename is not None:
                values["filename"] = filename
            if new_meta is not None:
                values["meta"] = self._merged_meta(row, new_meta, merge=True)
            return values

        return self._to_metadata(self._updated(self._update_row(artifact_id, user_id, session_id, change), user_id, session_id))

    def delete(
        self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None
    ) -> bool:
        """Delete the artifact's bytes and row. ``False`` if there was nothing to delete."""
        caller = self._caller(user_id, session_id)
        try:
            row = self._load(artifact_id, allow_expired=True)
        except ArtifactNotFoundError:
            return False
        self._require(row, caller, write=True)
        return self._purge([row["row_id"]], event="artifact_deleted", caller=caller)[0] == 1

    def _purge(
        self, row_ids: list[int], *, event: str | None = None, caller: Caller | None = None
    ) -> tuple[int, int]:
        """Tombstone, delete bytes, delete rows, report ``event`` for each.
        Returns (rows removed, bytes freed)."""
        with self.catalog.write() as conn:
            before = self._rows_for_event(conn, event, row_ids)
            claimed = self.catalog.mark_deleting(conn, row_ids, time.time())
        self.blobs.delete_many(
            [key for row in claimed for key in (row["key"], row["pending_key"]) if key]
        )
        with self.catalog.write() as conn:
            self.catalog.delete_artifact_rows(conn, [r["row_id"] for r in claimed])
        if before:
            mine = {r["row_id"] for r in claimed}
            self._emit_rows(event, [r for r in before if r["row_id"] in mine], caller)
        return len(claimed), sum(r["bytes"] for r in claimed)

    # -- keys ---------------------------------------------------------------------------

    def parse_grid_key(self, key: str) -> GridKey:
        """Split a grid key into sandbox, scope, session/user and artifact id."""
        return grid.parse_grid_key(key)

    def get_canonical_prefix(self, session_id: str) -> str:
        """The key prefix of a session's session-scoped artifacts."""
        return f"grid/{self.sandbox_id}/sessions/{grid.validate_id(session_id, 'session_id')}/"

    def generate_artifact_key(self, session_id: str, artifact_id: str) -> str:
        return grid.make_key(self.sandbox_id, "session", artifact_id, session_id=session_id)

    # -- identity-bound views -------------------------------------------------------------

    def as_user(self, user_id: str, session_id: str | None = None) -> "BoundStore":
        """A view of this store whose every call acts as ``user_id`` (and ``session_id``)."""
        from .views import BoundStore

        return BoundStore(self, user_id=grid.validate_id(user_id, "user_id"), session_id=session_id)

    def as_session(self, session_id: str, user_id: str | None = None) -> "BoundStore":
        """A view of this store whose every call acts as ``session_id``."""
        from .views import BoundStore

        return BoundStore(self, user_id=user_id, session_id=grid.validate_id(session_id, "session_id"))

    def as_admin(self) -> "BoundStore":
        """An explicit admin view: the only way to act without identity in strict mode."""
        from .views import BoundStore

        return BoundStore(self, admin=True)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the catalog's connections and the backend's clients. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.sessions.close()
        self.catalog.close()
        self.blobs.close()

    def __enter__(self) -> "ArtifactStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<ArtifactStore provider={self.storage_provider} sandbox={self.sandbox_id!r} "
            f"catalog={self.catalog.safe_url}>"
        )

