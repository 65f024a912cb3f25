"""The write protocol: how bytes and rows are written so that a killed process loses nothing.

``Writer`` is the one object every write path goes through (store, batch, write_file, update,
stream upload, copy, move, register, multipart completion, delete, cleanup). The ordering, with
the failure at each step, is explained in ``docs/reliability.md``:

- **New bytes** (``create``, ``create_streamed``, copies): record an intent for the key
  (``blob_intents``), write the bytes, then insert the row and remove the intent in one
  transaction. A crash before that commit leaves an intent; cleanup deletes its bytes. On a
  *volatile* backend (memory: the bytes die with the process) there is nothing a crash could
  leave behind, so the bytes are written and the row inserted in one transaction, no intent.
  On a backend whose bytes live in the catalog's own SQLite file (``sqlite``), ``create``
  writes them *inside* the row's transaction (``joint``): both commit, or neither.
- **Replaced bytes** (``replace``): the new bytes go to a staging key (with an intent); one
  transaction points the row at them (``pending_key``, with their size and sha256) and removes
  the intent; then they are moved over the artifact's key and ``pending_key`` is cleared.
  Readers read ``pending_key`` first (``read_blob``), so they always get the bytes the row
  describes. A crash after the commit leaves ``pending_key`` set; cleanup finishes the move.
- **Deletes** (``delete_one``, ``purge``): the row is tombstoned, the bytes are removed, then the
  row.
- **Quotas**: usage changes in the same transactions that insert, resize and delete rows.
- **Full-text index**: the text of new bytes (hook ``extract_text``, from at most
  ``text_index_bytes`` of them: the payload in memory, or a bounded read of bytes that were
  streamed, uploaded or copied) is taken before the row's transaction and written in it, so
  the index never disagrees with a committed row.

The request path's transactions run on the catalog's driver-level ``Tx`` (prebuilt statements);
batches and maintenance use SQLAlchemy connections. The writer reports what it removed to the
lifecycle hooks (``Events``); it never calls the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

from . import grid
from .access import Caller
from .errors import (
    ArtifactStoreError,
    ProviderError,
    QuotaExceededError,
)
from .fulltext import is_text_mime

if TYPE_CHECKING:
    from .blobs import Blobs
    from .catalog import Catalog, Tx
    from .config import Settings
    from .events import Events
    from .models import Row

__all__ = ["Writer", "read_blob", "open_blob", "copy_blob", "hash_blob", "UPLOAD_FIELDS"]

T = TypeVar("T")

_BATCH = 500
_BUILTIN_TEXT = "chuk_artifacts.builtin_text"
#: What an upload row says about the artifact it becomes (columns of both tables).
UPLOAD_FIELDS = (
    "artifact_id",
    "sandbox_id",
    "scope",
    "session_id",
    "owner_id",
    "key",
    "filename",
    "mime",
    "summary",
    "meta",
    "ttl",
)
_COPY_CHUNK = 1 << 20
logger = logging.getLogger("chuk_artifacts.writes")


# -- reading what the protocol wrote --------------------------------------------------------------


def _pending_first(row: Row, op: Callable[[str], T]) -> T:
    """``op`` on the key whose bytes ``row`` describes: its staging key (``pending_key``) while an
    update moves them into place, else — or once they have been moved — the artifact's key."""
    pending = row.get("pending_key")
    if pending:
        try:
            return op(pending)
        except FileNotFoundError:
            pass  # moved into place (or superseded) since the row was read
    return op(row["key"])


def read_blob(blobs: Blobs, row: Row) -> bytes:
    """The bytes ``row`` describes."""
    return _pending_first(row, blobs.get)


def open_blob(blobs: Blobs, row: Row) -> IO[bytes]:
    """A file of the bytes ``row`` describes."""
    return _pending_first(row, blobs.open_read)


def copy_blob(blobs: Blobs, row: Row, dst: str) -> None:
    """Copy the bytes ``row`` describes to ``dst``."""
    _pending_first(row, lambda key: blobs.copy(key, dst))


def hash_blob(blobs: Blobs, key: str) -> tuple[int, str]:
    """(size, sha256) of the object at ``key``, read as a stream."""
    digest = hashlib.sha256()
    size = 0
    with blobs.open_read(key) as f:
        while chunk := f.read(_COPY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class Writer:
    """The write protocol of one store (one sandbox, one catalog, one byte backend)."""

    def __init__(
        self, settings: Settings, catalog: Catalog, blobs: Blobs, events: Events, *, session_provider: str
    ) -> None:
        self.settings = settings
        self.session_provider = session_provider
        self.sandbox_id = settings.sandbox_id
        self.catalog = catalog
        self.blobs = blobs
        self.events = events
        #: The bytes live in the catalog's own SQLite file: ``create`` writes them in the row's
        #: transaction, and any blob call made inside a catalog transaction must run on its
        #: connection (``_joined``), since a second connection would wait for that one's lock.
        self.joint = (
            blobs.database is not None
            and catalog.wal
            and catalog.url.database is not None
            and os.path.realpath(os.path.expanduser(catalog.url.database)) == blobs.database
        )

    def _joined(self, conn: Any) -> contextlib.AbstractContextManager[None]:
        """Blob calls inside the catalog transaction of ``conn`` (a ``Tx`` or an SQLAlchemy
        ``Connection``), on its connection when ``joint``."""
        if not self.joint:
            return contextlib.nullcontext()
        from .catalog import Tx

        dbapi = conn.cursor.connection if isinstance(conn, Tx) else conn.connection.dbapi_connection
        return self.blobs.joined(dbapi)

    @property
    def quotas(self) -> Any:
        return self.settings.quotas

    # -- the text of new bytes, for the full-text index -------------------------------------------

    def text_of(self, row: Row, data: bytes | None = None) -> str:
        """The text the full-text index keeps of the artifact ``row``'s bytes: ``data`` when
        they are in memory, else at most ``text_index_bytes`` of them read from its key. Bytes
        are read only if some plugin could extract text from them."""
        cap = self.settings.text_index_bytes
        if cap <= 0 or not self.catalog.text_index:
            return ""
        from .plugins import ensure_plugins_loaded

        hook = ensure_plugins_loaded().hook.extract_text
        mime, filename = row["mime"], row.get("filename")
        if not is_text_mime(mime) and all(impl.plugin_name == _BUILTIN_TEXT for impl in hook.get_hookimpls()):
            return ""  # nothing could extract text from it: neither read nor hook call
        if data is None:
            with open_blob(self.blobs, row) as f:
                data = f.read(cap)
            complete = row["bytes"] <= cap
        else:
            complete = len(data) <= cap
            data = data[:cap]
        try:
            text = hook(mime=mime, filename=filename, data=data, complete=complete)
        except Exception:
            logger.exception("extract_text failed for %s (%s): indexed without its content", row["artifact_id"], mime)
            return ""
        if not isinstance(text, str):
            return ""
        # At most ``cap`` bytes of UTF-8 (a character cut at the end dropped): what bounds the
        # index's copy and PostgreSQL's tsvector, whatever script the text is in.
        text = text[:cap].encode("utf-8", errors="replace")[:cap].decode("utf-8", errors="ignore")
        return text.replace("\x00", " ")

    def texts_of(self, rows: list[Row]) -> list[str]:
        return [self.text_of(row) for row in rows]

    def reindex(self, rows: list[Row]) -> int:
        """Write the full-text entries of ``rows`` anew (``chuk-admin reindex``): names, summary,
        meta and the text of their bytes. A row changed or deleted since it was read is left
        alone (whatever changed it indexed it); one whose bytes are missing gets no content.
        How many were written."""
        texts: list[str] = []
        for row in rows:
            try:
                texts.append(self.text_of(row))
            except FileNotFoundError:
                texts.append("")
        done = 0
        with self.catalog.tx() as tx:
            for row, text in zip(rows, texts):
                current = self.catalog.get_artifact(tx, row["artifact_id"], for_update=True)
                if current is not None and current["version"] == row["version"]:
                    self.catalog.set_text(tx, current, text)
                    done += 1
        return done

    # -- new bytes ------------------------------------------------------------------------------

    def create(self, rows: list[Row], payloads: list[bytes]) -> None:
        """New artifacts with their bytes (``store``, ``store_batch``): all of them or none."""
        keys = [r["key"] for r in rows]
        texts = [self.text_of(row, data) for row, data in zip(rows, payloads)]
        if self.joint:

            def write_bytes(tx: Tx) -> None:
                with self._joined(tx):
                    for row, data in zip(rows, payloads):
                        self.blobs.put(row["key"], data)

            self.commit(rows, intents=False, also=write_bytes, texts=texts)
            return
        if self.blobs.volatile:
            try:
                for row, data in zip(rows, payloads):
                    self.blobs.put(row["key"], data)
                self.commit(rows, intents=False, texts=texts)
            except BaseException:
                self.discard(keys)
                raise
            return
        self.begin(keys, owner_id=rows[0]["owner_id"] if rows else None, nbytes=sum(map(len, payloads)))
        try:
            for row, data in zip(rows, payloads):
                self.blobs.put(row["key"], data)
        except BaseException:
            self.abandon(keys)
            raise
        self.commit_written(rows, texts=texts)

    def create_streamed(self, row: Row, fill: Callable[[IO[bytes]], tuple[int, str]], *, expected: int = 0) -> None:
        """A new artifact whose bytes ``fill(target)`` streams in, returning (size, sha256)."""
        self.begin([row["key"]], owner_id=row["owner_id"], nbytes=expected)
        try:
            with self.blobs.open_write(row["key"]) as target:
                row["bytes"], row["sha256"] = fill(target)
        except BaseException:
            self.abandon([row["key"]])
            raise
        self.commit_written([row])

    def begin(self, keys: list[str], *, owner_id: str | None = None, nbytes: int = 0, count: int | None = None) -> None:
        """Record intents for ``keys`` before any byte is written. With quotas on, a write that
        could not fit (``nbytes`` more, ``count`` more artifacts: one per key unless given) is
        refused here, before its bytes are sent anywhere."""
        now = time.time()
        with self.catalog.tx() as tx:
            self._precheck_quota(tx, owner_id, nbytes, len(keys) if count is None else count)
            self.catalog.add_intents(tx, self.sandbox_id, keys, now)

    def abandon(self, keys: list[str]) -> None:
        """Undo ``begin`` after a failure: remove the bytes, then the intents."""
        for key in keys:
            try:
                self.blobs.delete(key)
                self.blobs.discard_partial(key)
            except ProviderError:
                return  # the intents stay: cleanup retries
        with self.catalog.tx() as tx:
            self.catalog.claim_intents(tx, keys)

    def discard(self, keys: Iterable[str]) -> None:
        """Remove bytes no row and no intent names (a failed write on a volatile backend, or
        an upload's bytes whose registration failed)."""
        for key in keys:
            try:
                self.blobs.delete(key)
            except ProviderError:
                pass  # an orphan blob: fsck finds it

    def commit(
        self,
        rows: list[Row],
        *,
        intents: bool = True,
        also: Callable[[Tx], Any] | None = None,
        texts: list[str] | None = None,
    ) -> None:
        """Insert ``rows`` (whose bytes are written) in one transaction that removes their
        intents and charges their usage; ``also(tx)`` runs in the same transaction.
        ``texts``: the text of each row's bytes (``text_of``; read from the bytes if not given).
        Expired artifacts are swept once if a quota refuses the rows."""
        if texts is None:
            texts = self.texts_of(rows)
        for attempt in (1, 2):
            try:
                with self.catalog.tx() as tx:
                    if intents:
                        keys = [r["key"] for r in rows]
                        if self.catalog.claim_intents(tx, keys) != len(keys):
                            raise ProviderError("the write outlived the upload window and cleanup gave it up; retry")
                    self._charge_rows(tx, rows)
                    for row, text in zip(rows, texts):
                        self.catalog.insert_artifact(tx, row, text=text)
                    if also is not None:
                        also(tx)
                return
            except QuotaExceededError:
                if attempt == 2 or not self.release_expired():
                    raise

    def commit_written(self, rows: list[Row], *, texts: list[str] | None = None) -> None:
        """``commit`` rows whose bytes are written under intents; on failure remove the bytes."""
        try:
            self.commit(rows, texts=texts)
        except BaseException:
            self.abandon([r["key"] for r in rows])
            raise

    # -- changed rows, replaced bytes -------------------------------------------------------------

    def update(
        self,
        artifact_id: str,
        check: Callable[[Row | None], Row],
        change: Callable[[Row, Tx], Row],
        *,
        text: str | None = None,
    ) -> Row:
        """Apply ``change(row, tx) -> values`` to the row, locked: concurrent updates (threads or
        processes) queue up, so none is lost and a merge always sees the previous one.
        ``check(row)`` returns the row if the caller may change it (it raises otherwise).
        ``text``: the text of new bytes, for the full-text index. Returns the committed row."""
        with self.catalog.tx() as tx:
            row = check(self.catalog.get_artifact(tx, artifact_id, for_update=True))
            values = change(row, tx)
            values["updated_at"] = time.time()
            if not self.catalog.update_artifact(tx, row["row_id"], row["version"], values, text=text):
                raise ArtifactStoreError(f"artifact {artifact_id!r} changed during its update")
        return {**row, **values, "version": row["version"] + 1}

    def replace(
        self,
        row: Row,
        payload: bytes,
        check: Callable[[Row | None], Row],
        change: Callable[[Row, Tx], Row],
    ) -> Row:
        """``update`` with new bytes for the artifact ``row`` (as read, access checked): they go
        to a staging key first, so the old ones stay readable and intact until the row commits,
        whatever happens to this process; then they are moved into place."""
        staged = grid.staging_key(row["key"])
        self.begin([staged], owner_id=row["owner_id"], nbytes=max(0, len(payload) - row["bytes"]), count=0)
        superseded: list[str] = []
        size, sha256 = len(payload), hashlib.sha256(payload).hexdigest()

        def change_bytes(current: Row, tx: Tx) -> Row:
            values = change(current, tx)
            values.update(bytes=size, sha256=sha256, pending_key=staged)
            if self.catalog.claim_intents(tx, [staged]) != 1:
                raise ProviderError("the update outlived the upload window and cleanup gave it up; retry")
            if size != current["bytes"]:
                self.catalog.charge(tx, self.sandbox_id, current["owner_id"], size - current["bytes"], 0, self.quotas)
            if current["pending_key"]:  # an earlier update's bytes, never moved into place
                self._supersede(tx, current["pending_key"])
                superseded.append(current["pending_key"])
            return values

        text = self.text_of(row, payload)  # the mime of the row as read (update_file keeps it)
        try:
            self.blobs.put(staged, payload)
            committed = self.update(row["artifact_id"], check, change_bytes, text=text)
        except BaseException:
            self.abandon([staged])
            raise
        # Committed: what follows only tidies up, and cleanup finishes it if this fails.
        for old in superseded:
            self._drop_superseded(old)
        try:
            self.promote(row["artifact_id"], staged)
        except ProviderError:
            pass  # readers use pending_key meanwhile
        return committed

    def promote(self, artifact_id: str, staged: str) -> None:
        """Move an update's committed bytes from ``staged`` over the artifact's key, with the row
        locked so that moves of successive updates cannot overtake each other."""
        with self.catalog.write() as conn:
            row = self.catalog.get_artifact(conn, artifact_id, for_update=True)
            if row is None or row["pending_key"] != staged:
                return  # deleted, or superseded by a later update (which removes ``staged``)
            with self._joined(conn):
                if self.blobs.size(staged) is not None:
                    self.blobs.move(staged, row["key"])
            # else: moved by an earlier attempt that died before clearing pending_key
            self.catalog.clear_pending(conn, row["row_id"], staged)

    def _supersede(self, tx: Tx, staged: str) -> None:
        """An update committed over one whose bytes were never moved into place: those bytes are
        garbage now. An intent makes cleanup remove them if this process does not."""
        self.catalog.add_intents(tx, self.sandbox_id, [staged], time.time())

    def _drop_superseded(self, staged: str) -> None:
        try:
            self.blobs.delete(staged)
        except ProviderError:
            return
        with self.catalog.tx() as tx:
            self.catalog.claim_intents(tx, [staged])

    # -- deletes ----------------------------------------------------------------------------------

    def delete_one(self, row: Row, *, event: str | None, caller: Caller | None) -> bool:
        """Tombstone, delete the bytes, delete the row of one artifact; report ``event``.
        (Volatile bytes cannot outlive a crash: the row goes in one transaction, then the bytes.)"""
        now = time.time()
        if self.blobs.volatile:
            with self.catalog.tx() as tx:
                claimed = self.catalog.delete_now(tx, row["row_id"], now)
            if claimed is None:
                return False
            self.blobs.delete_many([k for k in (claimed["key"], claimed["pending_key"]) if k])
            self.events.artifacts(event, [row], caller)
            return True
        with self.catalog.tx() as tx:
            claimed = self.catalog.delete_one(tx, row["row_id"], now)
        if claimed is None:
            return False
        self.blobs.delete_many([k for k in (claimed["key"], claimed["pending_key"]) if k])
        with self.catalog.tx() as tx:
            self.catalog.remove_one(tx, row["row_id"])
        self.events.artifacts(event, [row], caller)
        return True

    def purge(self, row_ids: list[int], *, event: str | None = None, caller: Caller | None = None) -> tuple[int, int]:
        """Tombstone, delete bytes, delete rows, report ``event`` for each.
        Returns (rows removed, bytes freed)."""
        with self.catalog.write() as conn:
            before = (
                self.catalog.get_artifacts_by_row_ids(conn, row_ids)
                if event is not None and row_ids and self.events.listening(event)
                else []
            )
            claimed = self.catalog.mark_deleting(conn, row_ids, time.time())
        self.blobs.delete_many([key for row in claimed for key in (row["key"], row["pending_key"]) if key])
        with self.catalog.write() as conn:
            self.catalog.delete_artifact_rows(conn, [r["row_id"] for r in claimed])
        if before:
            mine = {r["row_id"] for r in claimed}
            self.events.artifacts(event, [r for r in before if r["row_id"] in mine], caller)
        return len(claimed), sum(r["bytes"] for r in claimed)

    def purge_session(
        self,
        session_id: str,
        *,
        event: str | None = None,
        caller: Caller | None = None,
        stored_before: float | None = None,
    ) -> tuple[int, int]:
        """Every session-scoped artifact of ``session_id`` (with ``stored_before``: those stored
        before then); (rows removed, bytes freed). Its uploads: ``drop_session_uploads``."""
        count = freed = 0
        while True:
            with self.catalog.read() as conn:
                ids = self.catalog.session_artifact_ids(conn, self.sandbox_id, session_id, _BATCH, stored_before)
            n, b = self.purge(ids, event=event, caller=caller) if ids else (0, 0)
            count, freed = count + n, freed + b
            if n == 0:  # none left (or someone else is removing them)
                return count, freed

    def retire_session(self, session: Row) -> None:
        """What an expired ``session`` row held, before a new session of its id replaces it:
        its session-scoped artifacts and uploads from before it expired (a later write into the
        new session is never touched, whoever replaced it first)."""
        before = session["expires_at"]
        self.purge_session(session["session_id"], event="artifact_expired", caller=Caller(), stored_before=before)
        self.drop_session_uploads(session["session_id"], created_before=before)

    def drop_session_uploads(self, session_id: str, *, created_before: float | None = None) -> int:
        """End the uploads in progress into ``session_id``: its artifacts may not outlive it."""
        dropped = 0
        while True:
            with self.catalog.read() as conn:
                open_uploads = self.catalog.session_uploads(conn, self.sandbox_id, session_id, _BATCH, created_before)
            n = sum(1 for upload in open_uploads if self.drop_upload(upload))
            dropped += n
            if n == 0:
                return dropped

    # -- uploads becoming artifacts ---------------------------------------------------------------

    def open_upload(self, upload: Row) -> None:
        """Record a new upload in progress, within its owner's limits: at most
        ``max_open_uploads`` open at once (counted under a lock, so racing openers cannot pass
        it), and none for an owner whose byte quota is used up already."""
        owner = upload["owner_id"] if upload["owner_id"] is not None else f"session:{upload['session_id']}"
        limit = self.settings.max_open_uploads
        with self.catalog.write() as conn:
            self.catalog.lock(conn, f"uploads:{self.sandbox_id}:{owner}")
            count = self.catalog.count_open_uploads(conn, self.sandbox_id, upload["owner_id"], upload["session_id"])
            if count >= limit:
                raise QuotaExceededError(
                    f"{owner!r} has {count} uploads in progress, the most allowed (ARTIFACT_MAX_OPEN_UPLOADS="
                    f"{limit}): complete or abort one first"
                )
            if self.upload_room(upload, conn) == 0:
                raise QuotaExceededError(f"quota exceeded for {owner!r}: no room left for an upload")
            self.catalog.insert_upload(conn, upload)

    def upload_room(self, upload: Row, conn: Any = None) -> int | None:
        """The bytes ``upload``'s owner may still add before a byte quota is reached (``None``:
        no limit). Bytes received into open uploads count only when the upload completes, so
        a gateway receiving a body stops it here (``QuotaExceededError``, 413) rather than keep
        what could never be registered."""
        quotas = self.quotas
        limits = [("", quotas.sandbox_bytes)]
        if upload["owner_id"] is not None:
            limits.append((upload["owner_id"], quotas.user_bytes))
        room: int | None = None
        for owner, limit in limits:
            if limit is None:
                continue
            if conn is None:
                used, _count = self.usage(owner)
            else:
                used, _count = self.catalog.usage(conn, self.sandbox_id, owner)
            room = max(0, limit - used) if room is None else min(room, max(0, limit - used))
        return room

    @contextlib.contextmanager
    def claim_upload(self, upload: Row) -> Iterator[None]:
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

    def commit_upload(self, upload: Row, size: int, sha256: str, caller: Caller | None = None, **changes: Any) -> str:
        """Insert the artifact row for an upload whose bytes sit at its key; drop the upload."""
        now = time.time()
        row = {
            **{k: upload[k] for k in UPLOAD_FIELDS},
            **{k: v for k, v in changes.items() if v is not None},
            "bytes": size,
            "sha256": sha256,
            "stored_at": now,
            "updated_at": now,
            "state": "committed",
            "version": 1,
            "pending_key": None,
            "storage_provider": self.blobs.name,
            "session_provider": self.session_provider,
        }
        ttl = row["ttl"]
        row["expires_at"] = now + ttl if ttl else None
        try:  # the upload's row stood for its bytes until now (no intent): cleanup knows them
            texts = self.texts_of([row])
            self.commit(
                [row], intents=False, also=lambda tx: self.catalog.delete_upload(tx, upload["upload_id"]), texts=texts
            )
        except QuotaExceededError:
            raise  # the upload stays as it was: registrable once there is room
        except BaseException:
            self.discard([row["key"]])
            raise
        if caller is None:  # finished through a signed URL: the identity it was issued to
            caller = Caller(upload["owner_id"], upload["session_id"])
        self.events.artifacts("artifact_stored", [row], caller)
        return str(row["artifact_id"])

    def arrived_bytes(self, upload: Row) -> tuple[int, str]:
        """(size, sha256) of an upload's bytes, now at the artifact's key; ``FileNotFoundError``
        if nothing arrived. A native presigned PUT is copied there (server-side) from its stage."""
        if upload["kind"] == "presigned" and self.blobs.native_presign:
            self.blobs.copy(grid.staged_key(upload["sandbox_id"], upload["upload_id"]), upload["key"])
        return hash_blob(self.blobs, upload["key"])

    def drop_staged(self, upload: Row) -> None:
        if upload["kind"] == "presigned" and self.blobs.native_presign:
            try:
                self.blobs.delete(grid.staged_key(upload["sandbox_id"], upload["upload_id"]))
            except ProviderError:
                pass  # left for fsck; the upload is done

    def register_arrived(self, artifact_id: str) -> Row | None:
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
            or self.blobs.size(grid.staged_key(upload["sandbox_id"], upload["upload_id"])) is None
        ):
            return None
        with self.catalog.write() as conn:
            if not self.catalog.set_upload_state(conn, upload["upload_id"], "auto_register", "completing"):
                return None  # another caller is registering it right now
        try:
            size, sha256 = self.arrived_bytes(upload)
            self.commit_upload(upload, size, sha256)
        except BaseException as exc:
            with self.catalog.write() as conn:
                self.catalog.set_upload_state(conn, upload["upload_id"], "completing", "auto_register")
            if isinstance(exc, FileNotFoundError):
                return None
            raise
        self.drop_staged(upload)
        with self.catalog.read() as conn:
            return self.catalog.get_artifact(conn, artifact_id)

    def delete_upload_blobs(self, upload_id: str) -> None:
        """Every object under the upload's own prefix: its parts, and what any interrupted part
        upload left (listing one upload's prefix, not the bucket)."""
        try:
            for key in list(self.blobs.keys(grid.parts_prefix(self.sandbox_id, upload_id))):
                self.blobs.delete(key)
        except ProviderError:
            pass  # left for fsck (orphan-part); the rows are gone

    def drop_upload(self, upload: Row) -> bool:
        """Remove an upload's parts, any bytes uploaded to its key, and its rows."""
        with self.catalog.write() as conn:
            if not self.catalog.set_upload_state(conn, upload["upload_id"], upload["state"], "aborting"):
                return False
        self.delete_upload_blobs(upload["upload_id"])
        if upload.get("backend_upload_id"):
            self.blobs.abort_multipart(upload["key"], upload["backend_upload_id"])
        self.drop_staged(upload)
        if upload["kind"] == "presigned" or upload["state"] != "open":
            with self.catalog.read() as conn:
                registered = self.catalog.get_artifact(conn, upload["artifact_id"]) is not None
            if not registered:
                self.blobs.delete(upload["key"])
                self.blobs.discard_partial(upload["key"])
        with self.catalog.write() as conn:
            self.catalog.delete_upload(conn, upload["upload_id"])
        return True

    def cleanup_uploads(self, now: float) -> int:
        """Remove uploads past their expiry (and their bytes). Returns how many."""
        removed = 0
        while True:
            with self.catalog.read() as conn:
                stale = self.catalog.expired_uploads(conn, self.sandbox_id, now, _BATCH)
            dropped = sum(1 for u in stale if self.drop_upload(u))
            removed += dropped
            if dropped == 0:
                return removed

    # -- crash recovery (part of cleanup) -------------------------------------------------------

    def recover(self, now: float) -> int:
        """Finish what killed writers left, once older than the upload window: move staged
        updates into place, and delete bytes whose row was never committed. Returns how many."""
        before = now - self.settings.upload_ttl
        done = 0
        while True:
            with self.catalog.read() as conn:
                pending = self.catalog.stale_pending(conn, self.sandbox_id, before, _BATCH)
            for row in pending:
                self.promote(row["artifact_id"], row["pending_key"])
            done += len(pending)
            if len(pending) < _BATCH:
                break
        while True:
            with self.catalog.read() as conn:
                keys = self.catalog.stale_intents(conn, self.sandbox_id, before, _BATCH)
            for key in keys:
                with self.catalog.write() as conn:
                    claimed = self.catalog.claim_intents(conn, [key]) == 1
                if claimed:  # another cleanup did not take it first; no row names these bytes
                    self.blobs.delete(key)
                    self.blobs.discard_partial(key)
                    done += 1
            if len(keys) < _BATCH:
                break
        return done

    # -- quotas -----------------------------------------------------------------------------------

    def _charge_rows(self, tx: Tx, rows: Iterable[Row]) -> None:
        totals: dict[str | None, list[int]] = {}
        for row in rows:
            total = totals.setdefault(row["owner_id"], [0, 0])
            total[0] += row["bytes"]
            total[1] += 1
        for owner, (nbytes, count) in totals.items():
            self.catalog.charge(tx, self.sandbox_id, owner, nbytes, count, self.quotas)

    def _precheck_quota(self, tx: Tx, owner_id: str | None, nbytes: int, count: int) -> None:
        """Refuse early what cannot fit (the charge at commit is the atomic check)."""
        quotas = self.quotas
        if not quotas.enabled:
            return
        checks = [("", "sandbox")] + ([(owner_id, "user")] if owner_id is not None else [])
        for owner, kind in checks:
            max_bytes = getattr(quotas, f"{kind}_bytes")
            max_count = getattr(quotas, f"{kind}_count")
            used_bytes, used_count = self.catalog.usage(tx, self.sandbox_id, owner)
            if (max_bytes is not None and used_bytes + nbytes > max_bytes) or (
                max_count is not None and count and used_count + count > max_count
            ):
                if self.catalog.any_expired(tx, self.sandbox_id, time.time()):
                    return  # the commit sweeps them and checks again
                who = f"user {owner!r}" if kind == "user" else f"sandbox {self.sandbox_id!r}"
                raise QuotaExceededError(
                    f"quota exceeded for {who}: {used_bytes} bytes in {used_count} artifacts, "
                    f"limits {max_bytes} bytes / {max_count} artifacts"
                )

    def release_expired(self) -> int:
        """Sweep expired artifacts so that their usage is released; how many went."""
        removed = 0
        while True:
            with self.catalog.read() as conn:
                ids = self.catalog.expired_artifact_ids(conn, self.sandbox_id, time.time(), _BATCH)
            if not ids:
                return removed
            # A system action (as cleanup is), whoever's write needed the room.
            n, _ = self.purge(ids, event="artifact_expired", caller=Caller(None, None))
            removed += n
            if n == 0:
                return removed

    def usage(self, owner_id: str) -> tuple[int, int]:
        """(bytes, count) held by ``owner_id`` (``""``: the whole sandbox)."""
        with self.catalog.read() as conn:
            return self.catalog.usage(conn, self.sandbox_id, owner_id)
