"""Operations for ``ArtifactStore``: the cleanup sweep, configuration checks and statistics."""

from __future__ import annotations

import time
from typing import Any, Callable

from . import grid
from .core import StoreCore
from .errors import ArtifactStoreError, InvalidArgumentError
from .events import reports_denials
from .models import CleanupResult

__all__ = ["MaintenanceMethods"]

_BATCH = 500
_PREVIEW_SESSIONS = 1_000_000  # expired sessions a cleanup dry run counts at most


class MaintenanceMethods(StoreCore):
    """``cleanup_expired_sessions``, ``reindex``, ``validate_configuration``, ``get_stats`` and
    ``usage``."""

    @reports_denials
    def reindex(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the full-text index of this sandbox's artifacts: their names, summaries, meta
        values and the text of their content (at most ``text_index_bytes`` of each read).

        For catalogs whose artifacts were stored before the index existed (revision
        ``0005_fulltext`` indexes their names, not their content) or under a smaller
        ``text_index_bytes``, or after installing an ``extract_text`` plugin. Safe while the
        store is in use. ``progress(n)`` is called after each batch; returns how many were
        indexed.
        """
        self.policy.caller(None, None)  # an application (admin) task: strict mode needs as_admin()
        if progress is not None and not callable(progress):
            raise InvalidArgumentError("progress must be a callable or None")
        if not self.catalog.text_index:
            raise ArtifactStoreError(f"a {self.catalog.dialect} catalog has no full-text index")
        done, last = 0, -1
        while True:
            with self.catalog.read() as conn:
                rows = self.catalog.iter_artifact_rows(conn, self.sandbox_id, last, _BATCH)
            if not rows:
                return done
            last = rows[-1]["row_id"]
            n = self.writer.reindex([r for r in rows if r["state"] == "committed"])
            done += n
            if progress is not None:
                progress(n)

    @reports_denials
    def cleanup_expired_sessions(
        self, *, dry_run: bool = False, progress: Callable[[str, int], None] | None = None
    ) -> CleanupResult:
        """Remove expired artifacts (bytes and rows), expired sessions with their artifacts,
        uploads past their window with their parts, and share links past their expiry.

        ``dry_run=True`` counts what would go and changes nothing. ``progress(kind, n)`` is called
        as each batch goes (kind ``artifacts``, ``sessions`` or ``uploads``).
        """
        caller = self.policy.caller(None, None)  # an application (admin) task: strict mode needs as_admin()
        now = time.time()
        if dry_run:
            return self._cleanup_preview(now)
        report = progress or (lambda kind, n: None)
        artifacts = freed = 0
        while True:
            with self.catalog.read() as conn:
                ids = self.catalog.expired_artifact_ids(conn, self.sandbox_id, now, _BATCH)
            n, b = self.writer.purge(ids, event="artifact_expired", caller=caller) if ids else (0, 0)
            artifacts, freed = artifacts + n, freed + b
            report("artifacts", n)
            if n == 0:
                break
        sessions = uploads = 0
        while True:
            # Through the session provider: its sessions need not live in the catalog.
            expired = mine = self.sessions.expired(now, _BATCH)
            for sid in mine:
                # Only what was stored before the sweep began: a store that replaces the session
                # meanwhile (an expired session is replaced, never revived) keeps its artifact.
                n, b = self.writer.purge_session(sid, event="artifact_expired", caller=caller, stored_before=now)
                artifacts, freed = artifacts + n, freed + b
                report("artifacts", n)
                dropped = self.writer.drop_session_uploads(sid, created_before=now)
                uploads += dropped
                report("uploads", dropped)
            gone = self.sessions.delete_expired(mine, now)
            for sid in gone:
                self.events.emit("session_deleted", session_id=sid, caller=caller, expired=True)
            removed = len(gone)
            sessions += removed
            report("sessions", removed)
            if len(expired) < _BATCH or removed == 0:
                break
        expired_uploads = self.writer.cleanup_uploads(now)
        uploads += expired_uploads
        report("uploads", expired_uploads)
        with self.catalog.write() as conn:  # share links past their expiry: rows only, no bytes
            self.catalog.delete_expired_shares(conn, self.sandbox_id, now)
        self.writer.recover(now)
        return CleanupResult(artifacts=artifacts, sessions=sessions, uploads=uploads, bytes=freed)

    def _cleanup_preview(self, now: float) -> CleanupResult:
        """What a cleanup at ``now`` would remove, counted without changing anything."""
        with self.catalog.read() as conn:
            artifacts, freed = self.catalog.count_sweepable_artifacts(conn, self.sandbox_id, now)
            uploads = self.catalog.count_expired_uploads(conn, self.sandbox_id, now)
        expired = self.sessions.expired(now, _PREVIEW_SESSIONS)
        for start in range(0, len(expired), _BATCH):
            batch = expired[start : start + _BATCH]
            with self.catalog.read() as conn:
                n, b = self.catalog.count_session_artifacts(conn, self.sandbox_id, batch, now)
                uploads += self.catalog.count_session_uploads(conn, self.sandbox_id, batch, now)
            artifacts, freed = artifacts + n, freed + b
        return CleanupResult(artifacts=artifacts, sessions=len(expired), uploads=uploads, bytes=freed)

    @reports_denials
    def validate_configuration(self) -> dict[str, Any]:
        """Check the catalog, the storage backend and the session provider for real."""
        report: dict[str, Any] = {}
        try:
            revision = self.catalog.schema_revision()
            report["catalog"] = {"status": "ok", "url": self.catalog.safe_url, "revision": revision}
        except ArtifactStoreError as exc:
            report["catalog"] = {"status": "error", "url": self.catalog.safe_url, "error": str(exc)}
        # The backend probes itself; S3 reports why it fails (``reason``: bucket_missing, …).
        report["storage"] = {"provider": self.storage_provider, **self.blobs.check()}
        try:
            self.sessions.get("health-check")
            report["session"] = {"status": "ok", "provider": self.session_provider}
        except ArtifactStoreError as exc:
            report["session"] = {"status": "error", "provider": self.session_provider, "error": str(exc)}
        report["status"] = (
            "ok"
            if all(part["status"] == "ok" for part in (report["catalog"], report["storage"], report["session"]))
            else "error"
        )
        return report

    @reports_denials
    def get_stats(self) -> dict[str, Any]:
        """Real counts and bytes of live artifacts (by scope) and live sessions in this sandbox."""
        now = time.time()
        with self.catalog.read() as conn:
            artifacts = self.catalog.artifact_stats(conn, self.sandbox_id, now)
        live_sessions = self.sessions.count_live(now)
        return {
            "storage_provider": self.storage_provider,
            "session_provider": self.session_provider,
            "bucket": self.bucket,
            "sandbox_id": self.sandbox_id,
            "catalog": self.catalog.safe_url,
            "artifacts": artifacts,
            # the published package's keys (always None there), here the same live totals
            "total_artifacts": artifacts["count"],
            "total_bytes": artifacts["bytes"],
            "sessions": {"active": live_sessions},
            "usage": self.usage(),
        }

    @reports_denials
    def usage(self, user_id: str | None = None) -> dict[str, Any]:
        """Bytes and artifact count held by ``user_id`` (or the whole sandbox), with the limits.

        Expired artifacts count until cleanup (or a write that needs their room) removes them.
        """
        if user_id is not None:
            grid.validate_id(user_id, "user_id")
        nbytes, count = self.writer.usage(user_id or "")
        kind = "user" if user_id is not None else "sandbox"
        quotas = self.settings.quotas
        return {
            "bytes": nbytes,
            "count": count,
            "max_bytes": getattr(quotas, f"{kind}_bytes"),
            "max_count": getattr(quotas, f"{kind}_count"),
        }
