"""How bytes and rows are written so that a process killed at any instant loses nothing.

The write ordering (``docs/reliability.md`` explains it with the failure at each step):

- **New bytes** (``store``, ``store_batch``, ``stream_upload``, ``copy_file``): record an intent
  for the key (``blob_intents``), write the bytes, then insert the row and remove the intent in
  one transaction. A crash before that commit leaves an intent; cleanup deletes its bytes.
- **Replaced bytes** (``update_file``): the new bytes go to a staging key (with an intent); one
  transaction points the row at them (``pending_key``, with their size and sha256) and removes
  the intent; then they are moved over the artifact's key and ``pending_key`` is cleared. Readers
  read ``pending_key`` first, so they always get the bytes the row describes. A crash after the
  commit leaves ``pending_key`` set; cleanup finishes the move.
- **Deletes**: the row is tombstoned, the bytes are removed, then the row (``store._purge``).
- **Quotas**: usage changes in the same transactions that insert, resize and delete rows.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Iterable

from .access import Caller
from .errors import ProviderError, QuotaExceededError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .catalog import Row

__all__ = ["WritesMixin", "staging_key"]

_BATCH = 500


def staging_key(key: str) -> str:
    """Where ``update_file`` writes new bytes before they replace those at ``key``."""
    return f"{key}~{uuid.uuid4().hex[:16]}"


class WritesMixin:
    """Intents, commits, staged updates, crash recovery and quota charges for ``ArtifactStore``."""

    # -- new bytes ------------------------------------------------------------------------------

    def _begin_writes(
        self, keys: list[str], *, owner_id: str | None = None, nbytes: int = 0, count: int | None = None
    ) -> None:
        """Record intents for ``keys`` before any byte is written. With quotas on, a write that
        could not fit (``nbytes`` more, ``count`` more artifacts: one per key unless given) is
        refused here, before its bytes are sent anywhere."""
        with self.catalog.write() as conn:
            self._precheck_quota(conn, owner_id, nbytes, len(keys) if count is None else count)
            self.catalog.add_intents(conn, self.sandbox_id, keys, time.time())

    def _abandon_writes(self, keys: list[str]) -> None:
        """Undo ``_begin_writes`` after a failure: remove the bytes, then the intents."""
        for key in keys:
            try:
                self.blobs.delete(key)
                self.blobs.discard_partial(key)
            except ProviderError:
                return  # the intents stay: cleanup retries
        with self.catalog.write() as conn:
            self.catalog.claim_intents(conn, keys)

    def _commit_rows(self, rows: list[Row], *, intents: bool = True, also: Any = None) -> None:
        """Insert ``rows`` (whose bytes are written) in one transaction that removes their
        intents and charges their usage; ``also(conn)`` runs in the same transaction.
        Expired artifacts are swept once if a quota refuses the rows."""
        for attempt in (1, 2):
            try:
                with self.catalog.write() as conn:
                    if intents:
                        keys = [r["key"] for r in rows]
                        if self.catalog.claim_intents(conn, keys) != len(keys):
                            raise ProviderError(
                                "the write outlived the upload window and cleanup gave it up; retry"
                            )
                    self._charge_rows(conn, rows)
                    for row in rows:
                        self.catalog.insert_artifact(conn, row)
                    if also is not None:
                        also(conn)
                return
            except QuotaExceededError:
                if attempt == 2 or not self._release_expired():
                    raise

    # -- replaced bytes ---------------------------------------------------------------------------

    def _read_blob(self, row: Row) -> bytes:
        """The bytes ``row`` describes: at its staging key while an update moves them into place."""
        pending = row.get("pending_key")
        if pending:
            try:
                return self.blobs.get(pending)
            except FileNotFoundError:
                pass  # moved into place (or superseded) since the row was read
        return self.blobs.get(row["key"])

    def _open_blob(self, row: Row) -> Any:
        pending = row.get("pending_key")
        if pending:
            try:
                return self.blobs.open_read(pending)
            except FileNotFoundError:
                pass
        return self.blobs.open_read(row["key"])

    def _copy_blob(self, row: Row, dst: str) -> None:
        pending = row.get("pending_key")
        if pending:
            try:
                return self.blobs.copy(pending, dst)
            except FileNotFoundError:
                pass
        self.blobs.copy(row["key"], dst)

    def _promote(self, artifact_id: str, staged: str) -> None:
        """Move an update's committed bytes from ``staged`` over the artifact's key, with the row
        locked so that moves of successive updates cannot overtake each other."""
        with self.catalog.write() as conn:
            row = self.catalog.get_artifact(conn, artifact_id, for_update=True)
            if row is None or row["pending_key"] != staged:
                return  # deleted, or superseded by a later update (which removes ``staged``)
            if self.blobs.size(staged) is not None:
                self.blobs.move(staged, row["key"])
            # else: moved by an earlier attempt that died before clearing pending_key
            self.catalog.clear_pending(conn, row["row_id"], staged)

    def _supersede(self, conn: Connection, staged: str) -> None:
        """An update committed over one whose bytes were never moved into place: those bytes are
        garbage now. An intent makes cleanup remove them if this process does not."""
        self.catalog.add_intents(conn, self.sandbox_id, [staged], time.time())

    def _drop_superseded(self, staged: str) -> None:
        try:
            self.blobs.delete(staged)
        except ProviderError:
            return
        with self.catalog.write() as conn:
            self.catalog.claim_intents(conn, [staged])

    # -- crash recovery (part of cleanup) -------------------------------------------------------

    def _recover_writes(self, now: float) -> int:
        """Finish what killed writers left, once older than the upload window: move staged
        updates into place, and delete bytes whose row was never committed. Returns how many."""
        before = now - self.settings.upload_ttl
        done = 0
        while True:
            with self.catalog.read() as conn:
                pending = self.catalog.stale_pending(conn, self.sandbox_id, before, _BATCH)
            for row in pending:
                self._promote(row["artifact_id"], row["pending_key"])
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

    @property
    def _quotas(self) -> Any:
        return self.settings.quotas

    def _charge_rows(self, conn: Connection, rows: Iterable[Row]) -> None:
        totals: dict[str | None, list[int]] = {}
        for row in rows:
            total = totals.setdefault(row["owner_id"], [0, 0])
            total[0] += row["bytes"]
            total[1] += 1
        for owner, (nbytes, count) in totals.items():
            self.catalog.charge(conn, self.sandbox_id, owner, nbytes, count, self._quotas)

    def _precheck_quota(self, conn: Connection, owner_id: str | None, nbytes: int, count: int) -> None:
        """Refuse early what cannot fit (the charge at commit is the atomic check)."""
        quotas = self._quotas
        if not quotas.enabled:
            return
        checks = [("", "sandbox")] + ([(owner_id, "user")] if owner_id is not None else [])
        for owner, kind in checks:
            max_bytes = getattr(quotas, f"{kind}_bytes")
            max_count = getattr(quotas, f"{kind}_count")
            used_bytes, used_count = self.catalog.usage(conn, self.sandbox_id, owner)
            if (max_bytes is not None and used_bytes + nbytes > max_bytes) or (
                max_count is not None and count and used_count + count > max_count
            ):
                if self._expired_exist(conn):
                    return  # the commit sweeps them and checks again
                who = f"user {owner!r}" if kind == "user" else f"sandbox {self.sandbox_id!r}"
                raise QuotaExceededError(
                    f"quota exceeded for {who}: {used_bytes} bytes in {used_count} artifacts, "
                    f"limits {max_bytes} bytes / {max_count} artifacts"
                )

    def _expired_exist(self, conn: Connection) -> bool:
        return bool(self.catalog.expired_artifact_ids(conn, self.sandbox_id, time.time(), 1))

    def _release_expired(self) -> int:
        """Sweep expired artifacts so that their usage is released; how many went."""
        removed = 0
        while True:
            with self.catalog.read() as conn:
                ids = self.catalog.expired_artifact_ids(conn, self.sandbox_id, time.time(), _BATCH)
            if not ids:
                return removed
            # A system action (as cleanup is), whoever's write needed the room.
            n, _ = self._purge(ids, event="artifact_expired", caller=Caller(None, None))
            removed += n
            if n == 0:
                return removed

    def usage(self, user_id: str | None = None) -> dict[str, Any]:
        """Bytes and artifact count held by ``user_id`` (or the whole sandbox), with the limits.

        Expired artifacts count until cleanup (or a write that needs their room) removes them.
        """
        if user_id is not None:
            from . import grid

            grid.validate_id(user_id, "user_id")
        with self.catalog.read() as conn:
            nbytes, count = self.catalog.usage(conn, self.sandbox_id, user_id or "")
        kind = "user" if user_id is not None else "sandbox"
        return {
            "bytes": nbytes,
            "count": count,
            "max_bytes": getattr(self._quotas, f"{kind}_bytes"),
            "max_count": getattr(self._quotas, f"{kind}_count"),
        }
