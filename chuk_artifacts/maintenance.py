"""Operations for ``ArtifactStore``: the cleanup sweep, configuration checks and statistics."""

from __future__ import annotations

import time
from typing import Any, Callable

from .errors import ArtifactStoreError
from .models import CleanupResult

__all__ = ["MaintenanceMixin"]

_BATCH = 500
_PREVIEW_SESSIONS = 1_000_000  # expired sessions a cleanup dry run counts at most


class MaintenanceMixin:
    """``cleanup_expired_sessions``, ``validate_configuration`` and ``get_stats``."""

    def cleanup_expired_sessions(
        self, *, dry_run: bool = False, progress: Callable[[str, int], None] | None = None
    ) -> CleanupResult:
        """Remove expired artifacts (bytes and rows), expired sessions with their artifacts, and
        uploads past their window with their parts.

        ``dry_run=True`` counts what would go and changes nothing. ``progress(kind, n)`` is called
        as each batch goes (kind ``artifacts``, ``sessions`` or ``uploads``).
        """
        caller = self._caller(None, None)  # an application (admin) task: strict mode needs as_admin()
        now = time.time()
        if dry_run:
            return self._cleanup_preview(now)
        report = progress or (lambda kind, n: None)
        artifacts = freed = 0
        while True:
            with self.catalog.read() as conn:
                ids = self.catalog.expired_artifact_ids(conn, self.sandbox_id, now, _BATCH)
            n, b = self._purge(ids, event="artifact_expired", caller=caller) if ids else (0, 0)
            artifacts, freed = artifacts + n, freed + b
            report("artifacts", n)
            if n == 0:
                break
        sessions = 0
        while True:
            # Through the session provider: its sessions need not live in the catalog.
            expired = mine = self.sessions.expired(now, _BATCH)
            for sid in mine:
                n, b = self._purge_session_artifacts(sid, event="artifact_expired", caller=caller)
                artifacts, freed = artifacts + n, freed + b
                report("artifacts", n)
            gone = self.sessions.delete_expired(mine, now)
            for sid in gone:
                self._emit("session_deleted", session_id=sid, caller=caller, expired=True)
            removed = len(gone)
            sessions += removed
            report("sessions", removed)
            if len(expired) < _BATCH or removed == 0:
                break
        uploads = self._cleanup_uploads(now)
        report("uploads", uploads)
        self._recover_writes(now)
        return CleanupResult(artifacts=artifacts, sessions=sessions, uploads=uploads, bytes=freed)

    def _cleanup_preview(self, now: float) -> CleanupResult:
        """What a cleanup at ``now`` would remove, counted without changing anything."""
        with self.catalog.read() as conn:
            artifacts, freed = self.catalog.count_sweepable_artifacts(conn, self.sandbox_id, now)
            uploads = self.catalog.count_expired_uploads(conn, self.sandbox_id, now)
        expired = self.sessions.expired(now, _PREVIEW_SESSIONS)
        for start in range(0, len(expired), _BATCH):
            with self.catalog.read() as conn:
                n, b = self.catalog.count_session_artifacts(
                    conn, self.sandbox_id, expired[start:start + _BATCH], now
                )
            artifacts, freed = artifacts + n, freed + b
        return CleanupResult(artifacts=artifacts, sessions=len(expired), uploads=uploads, bytes=freed)

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
        report["status"] = "ok" if all(
            part["status"] == "ok" for part in (report["catalog"], report["storage"], report["session"])
        ) else "error"
        return report

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
            "sessions": {"active": live_sessions},
            "usage": self.usage(),
        }
