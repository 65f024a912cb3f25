"""cleanup_expired_sessions(dry_run=True) counts exactly what a real cleanup removes and changes
nothing; progress(kind, n) reports each batch. On every backend."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import event

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactStore,
    CleanupResult,
    MultipartUploadInitRequest,
    Settings,
)


def world(store: ArtifactStore, clock: Any) -> None:
    """Expired: 3 artifacts, 3 sessions (bob's holding a session-scoped artifact), a stale
    tombstone and a multipart upload with a part. Live: what is stored afterwards, and bob's
    user-scoped artifact (it outlives his session)."""
    for i in range(3):
        store.store(b"old %d" % i, mime="text/plain", ttl=30, user_id="alice", scope="user")
    short = store.create_session(user_id="bob", ttl_hours=0.01)  # 36 s
    store.store(b"in a short session", mime="text/plain", session_id=short, ttl=None)
    store.store(b"bob keeps this", mime="text/plain", session_id=short, scope="user", user_id="bob")
    tomb = store.store(b"half deleted", mime="text/plain", scope="sandbox")
    with store.catalog.read() as conn:
        row_id = store.catalog.get_artifact(conn, tomb)["row_id"]
    with store.catalog.write() as conn:
        store.catalog.mark_deleting(conn, [row_id], clock.now)  # a delete that crashed midway
    upload = store.initiate_multipart_upload(
        MultipartUploadInitRequest(filename="big.bin", mime_type="application/octet-stream", user_id="carol")
    )
    store.receive_part(upload["upload_id"], 1, iter([b"part"]))
    clock.advance(store.settings.upload_ttl + 10)  # past every expiry above
    store.store(b"live", mime="text/plain", scope="sandbox")
    store.store(b"fresh session artifact", mime="text/plain", user_id="dave")


def counts(store: ArtifactStore) -> tuple[int, int, int, list[str]]:
    with store.catalog.read() as conn:
        rows = store.catalog.count_artifact_rows(conn, store.sandbox_id)
        uploads = store.catalog.count_expired_uploads(conn, store.sandbox_id, float("inf"))
    sessions = len(store.sessions.expired(float("inf"), 10_000))
    blobs = sorted(k for p in ("grid/", "_uploads/") for k in store.blobs.keys(p))
    return rows, uploads, sessions, blobs


def test_dry_run_counts_what_cleanup_then_removes_and_changes_nothing(store: ArtifactStore, clock: Any) -> None:
    world(store, clock)
    before = counts(store)
    preview = store.cleanup_expired_sessions(dry_run=True)
    assert counts(store) == before
    assert store.cleanup_expired_sessions(dry_run=True).to_dict() == preview.to_dict()
    result = store.cleanup_expired_sessions()
    assert result.to_dict() == preview.to_dict()
    assert (preview.artifacts, preview.sessions, preview.uploads) == (5, 3, 1)
    assert preview.bytes == 3 * 5 + len(b"in a short session") + len(b"half deleted")
    assert store.cleanup_expired_sessions(dry_run=True).to_dict() == CleanupResult().to_dict()


def test_the_seed_call_still_works_and_is_an_int(store: ArtifactStore, clock: Any) -> None:
    store.store(b"x", mime="text/plain", ttl=1)
    clock.advance(5)
    result = store.cleanup_expired_sessions()
    assert isinstance(result, int) and result >= 1 and result.artifacts == 1


def test_progress_reports_every_batch_and_adds_up(store: ArtifactStore, clock: Any) -> None:
    world(store, clock)
    seen: dict[str, int] = {}
    result = store.cleanup_expired_sessions(progress=lambda kind, n: seen.__setitem__(kind, seen.get(kind, 0) + n))
    assert seen == {"artifacts": result.artifacts, "sessions": result.sessions, "uploads": result.uploads}


def test_a_dry_run_is_an_admin_task_in_strict_mode(make_store: Any) -> None:
    store = make_store("memory", strict=True)
    with pytest.raises(AccessDeniedError):
        store.cleanup_expired_sessions(dry_run=True)
    assert store.as_admin().cleanup_expired_sessions(dry_run=True) == 0


def test_dry_run_queries_never_scan_a_table(clock: Any) -> None:
    """The counting queries use the same indexes as the sweep (SQLite's query plans)."""
    store = ArtifactStore(settings=Settings())
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not executemany:
            statements.append((statement, parameters))

    try:
        world(store, clock)
        event.listen(store.catalog.engine, "before_cursor_execute", record)
        store.cleanup_expired_sessions(dry_run=True)
        event.remove(store.catalog.engine, "before_cursor_execute", record)
        scans = []
        with store.catalog.engine.connect() as conn:
            for statement, parameters in statements:
                if re.match(r"^\s*SELECT\b", statement, re.IGNORECASE):
                    plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
                    scans += [row[-1] for row in plan if row[-1].startswith("SCAN ") and "INDEX" not in row[-1]]
    finally:
        store.close()
    assert statements and scans == []
