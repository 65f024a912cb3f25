"""fsck: the catalog compared with the bytes, on every backend; damage is made on purpose.

(``chuk-admin fsck`` only formats ``chuk_artifacts.fsck.check``; its CLI tests are in
test_cli_commands.py.)
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest

from chuk_artifacts import ArtifactStore, MultipartUploadInitRequest
from chuk_artifacts.fsck import QUARANTINE_PREFIX, check


def sandbox_artifact(store: ArtifactStore, data: bytes = b"payload") -> str:
    return store.store(data, mime="application/octet-stream", scope="sandbox")


def key_of(store: ArtifactStore, artifact_id: str) -> str:
    with store.catalog.read() as conn:
        return store.catalog.get_artifact(conn, artifact_id)["key"]


def row_of(store: ArtifactStore, artifact_id: str) -> dict[str, Any] | None:
    with store.catalog.read() as conn:
        return store.catalog.get_artifact(conn, artifact_id)


def snapshot(store: ArtifactStore) -> tuple[list[str], list[tuple[str, str, int]]]:
    """Every blob key and every artifact row (id, state, version): to prove nothing changed."""
    keys = sorted(k for p in ("grid/", "_uploads/", "_quarantine/") for k in store.blobs.keys(p))
    with store.catalog.read() as conn:
        rows = store.catalog.iter_artifact_rows(conn, store.sandbox_id, 0, 10_000)
    return keys, sorted((r["artifact_id"], r["state"], r["version"]) for r in rows)


def kinds(report: Any) -> list[str]:
    return sorted(p.kind for p in report.problems)


def orphan_key(store: ArtifactStore, name: str = "orphan0001") -> str:
    return f"grid/{store.sandbox_id}/shared/{name}"


# -- finding ----------------------------------------------------------------------------------------


def test_a_healthy_store_has_no_problems(store: ArtifactStore) -> None:
    for i in range(3):
        sandbox_artifact(store, b"x" * i)
    store.store(b"u", mime="text/plain", user_id="alice", scope="user")
    report = check(store, verify=True)
    assert report.ok and report.problems == []
    assert (report.rows, report.blobs, report.verified) == (4, 4, 4)


def test_walks_more_rows_than_one_batch(store: ArtifactStore) -> None:
    store.store_batch([{"data": b"%d" % i, "mime": "text/plain"} for i in range(1203)], scope="sandbox")
    report = check(store)
    assert report.ok and report.rows == 1203 and report.blobs == 1203


def test_finds_a_row_whose_bytes_are_missing(store: ArtifactStore) -> None:
    artifact_id = sandbox_artifact(store)
    store.blobs.delete(key_of(store, artifact_id))
    report = check(store)
    (problem,) = report.problems
    assert (problem.kind, problem.artifact_id, problem.fixed) == ("missing", artifact_id, False)
    assert not report.ok


def test_finds_a_size_mismatch(store: ArtifactStore) -> None:
    artifact_id = sandbox_artifact(store, b"twelve bytes")
    store.blobs.put(key_of(store, artifact_id), b"three")
    (problem,) = check(store).problems
    assert problem.kind == "size-mismatch" and "5 bytes" in problem.detail


def test_finds_a_same_size_content_change_only_when_verifying(store: ArtifactStore) -> None:
    artifact_id = sandbox_artifact(store, b"abc")
    store.blobs.put(key_of(store, artifact_id), b"xyz")
    assert check(store).ok
    (problem,) = check(store, verify=True).problems
    assert (problem.kind, problem.artifact_id) == ("sha256-mismatch", artifact_id)


def test_finds_an_orphan_blob(store: ArtifactStore) -> None:
    sandbox_artifact(store)
    store.blobs.put(orphan_key(store), b"nobody's")
    report = check(store)
    (problem,) = report.problems
    assert (problem.kind, problem.key, problem.artifact_id) == ("orphan", orphan_key(store), "orphan0001")
    assert report.blobs == 2


def test_a_blob_at_an_invalid_grid_key_is_an_orphan(store: ArtifactStore) -> None:
    key = f"grid/{store.sandbox_id}/not/a/valid/layout/x"
    store.blobs.put(key, b"?")
    (problem,) = check(store).problems
    assert (problem.kind, problem.key, problem.artifact_id) == ("orphan", key, None)


def test_checking_changes_nothing(store: ArtifactStore) -> None:
    damaged = sandbox_artifact(store)
    store.blobs.delete(key_of(store, damaged))
    resized = sandbox_artifact(store)
    store.blobs.put(key_of(store, resized), b"other size!")
    store.blobs.put(orphan_key(store), b"orphan")
    before = snapshot(store)
    report = check(store, verify=True, grace=0)
    assert kinds(report) == ["missing", "orphan", "size-mismatch"]
    assert snapshot(store) == before


def test_the_report_is_json(store: ArtifactStore) -> None:
    store.blobs.put(orphan_key(store), b"x")
    data = json.loads(json.dumps(check(store).to_dict()))
    assert data["ok"] is False and data["remaining"] == 1 and data["problems"][0]["kind"] == "orphan"
    assert data["checked"] == {"rows": 0, "blobs": 1, "verified": 0}


# -- what is not a problem ----------------------------------------------------------------------------


def test_parts_of_a_live_multipart_upload_are_referenced(store: ArtifactStore) -> None:
    upload = store.initiate_multipart_upload(MultipartUploadInitRequest(filename="f", mime_type="text/plain"))
    store.receive_part(upload["upload_id"], 1, iter([b"part one"]))
    report = check(store)
    assert report.ok and report.blobs == 1


def test_parts_of_an_upload_that_no_longer_exists_are_orphans(store: ArtifactStore) -> None:
    upload = store.initiate_multipart_upload(MultipartUploadInitRequest(filename="f", mime_type="text/plain"))
    store.receive_part(upload["upload_id"], 1, iter([b"part one"]))
    with store.catalog.write() as conn:
        store.catalog.delete_upload(conn, upload["upload_id"])
    (problem,) = check(store).problems
    assert problem.kind == "orphan-part" and problem.key.startswith(
        f"_uploads/{store.sandbox_id}/{upload['upload_id']}/"
    )


def test_bytes_of_a_presigned_upload_not_yet_registered_are_referenced(store: ArtifactStore) -> None:
    _url, artifact_id = store.presign_upload(filename="later.bin")
    with store.catalog.read() as conn:
        upload = store.catalog.get_upload_by_artifact(conn, artifact_id)
    store.blobs.put(upload["key"], b"uploaded, not registered yet")
    assert check(store).ok


def test_a_tombstone_is_neither_missing_nor_its_blob_an_orphan(store: ArtifactStore) -> None:
    gone = sandbox_artifact(store)
    half = sandbox_artifact(store)
    row_ids = [row_of(store, gone)["row_id"], row_of(store, half)["row_id"]]
    with store.catalog.write() as conn:
        store.catalog.mark_deleting(conn, row_ids, time.time())
    store.blobs.delete(key_of(store, gone))  # a delete interrupted after removing the bytes
    report = check(store)
    assert report.ok and report.rows == 2 and report.blobs == 1


def test_other_sandboxes_health_probes_and_quarantine_are_left_alone(store: ArtifactStore) -> None:
    store.blobs.put("grid/other-sandbox/shared/elsewhere", b"not ours")
    store.blobs.put("_uploads/other-sandbox/u1/00001", b"not ours")
    store.blobs.put("_chuk/health-leftover", b"ok")
    store.blobs.put(f"{QUARANTINE_PREFIX}20240101T000000Z/grid/{store.sandbox_id}/shared/old", b"q")
    report = check(store, repair=True, grace=0)
    assert report.ok and report.blobs == 0


# -- temp files of interrupted writes (local files only) -------------------------------------------------


@pytest.fixture
def fs_store(make_store: Any) -> ArtifactStore:
    return make_store("filesystem")


def _temp_file(store: ArtifactStore, age: float) -> tuple[str, str]:
    artifact_id = sandbox_artifact(store)
    key = key_of(store, artifact_id)
    temp_key = key.rsplit("/", 1)[0] + "/.tmp-interrupted-1234abcd"
    path = store.blobs.path(temp_key)
    with open(path, "wb") as f:
        f.write(b"half a write")
    os.utime(path, (time.time() - age, time.time() - age))
    return temp_key, path


def test_a_young_temp_file_is_a_write_in_progress(fs_store: ArtifactStore) -> None:
    _temp_file(fs_store, age=10)
    report = check(fs_store, repair=True)
    assert report.ok and report.in_flight == 1


def test_an_old_temp_file_is_reported_and_quarantined(fs_store: ArtifactStore) -> None:
    temp_key, path = _temp_file(fs_store, age=7200)
    report = check(fs_store)
    (problem,) = report.problems
    assert problem.kind == "stale-temp" and "2.0 h old" in problem.detail
    repaired = check(fs_store, repair=True)
    assert repaired.ok and repaired.problems[0].action.startswith("quarantined to _quarantine/")
    assert not os.path.exists(path)
    assert fs_store.blobs.get(f"{repaired.quarantine}{temp_key}") == b"half a write"


# -- repairing ----------------------------------------------------------------------------------------


def test_repair_quarantines_an_orphan(store: ArtifactStore) -> None:
    kept = sandbox_artifact(store)
    store.blobs.put(orphan_key(store), b"nobody's")
    report = check(store, repair=True, grace=0)
    assert report.ok
    assert report.quarantine.startswith(QUARANTINE_PREFIX) and report.quarantine.endswith("Z/")
    (problem,) = report.problems
    assert problem.action == f"quarantined to {report.quarantine}{orphan_key(store)}"
    assert store.blobs.get(f"{report.quarantine}{orphan_key(store)}") == b"nobody's"
    assert not store.blobs.exists(orphan_key(store))
    assert store.retrieve(kept) == b"payload"
    assert check(store).ok  # the quarantine is not rescanned


def test_delete_orphans_deletes_instead_of_quarantining(store: ArtifactStore) -> None:
    store.blobs.put(orphan_key(store), b"nobody's")
    report = check(store, delete_orphans=True, grace=0)
    assert report.ok and report.problems[0].action == "deleted" and report.quarantine is None
    assert not store.blobs.exists(orphan_key(store))
    assert list(store.blobs.keys(QUARANTINE_PREFIX)) == []


def test_repair_leaves_orphans_younger_than_the_grace_period(store: ArtifactStore) -> None:
    store.blobs.put(orphan_key(store), b"maybe a write in progress")
    report = check(store, repair=True)  # default grace: an hour
    (problem,) = report.problems
    assert not problem.fixed and "grace" in problem.detail and not report.ok
    assert store.blobs.exists(orphan_key(store))


def test_repair_does_not_touch_a_blob_adopted_since_it_was_found(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row that commits between the finding and the repair keeps its bytes."""
    from chuk_artifacts import fsck

    key = orphan_key(store, "late0001")
    store.blobs.put(key, b"late")
    original = fsck._repair_blob

    def commit_first(store_: ArtifactStore, problem: Any, *args: Any, **kwargs: Any) -> Any:
        row = {
            "artifact_id": "late0001",
            "sandbox_id": store.sandbox_id,
            "scope": "sandbox",
            "session_id": None,
            "owner_id": None,
            "key": key,
            "bytes": 4,
            "sha256": "",
            "stored_at": time.time(),
            "updated_at": time.time(),
            "expires_at": None,
            "state": "committed",
            "version": 1,
            "storage_provider": store.storage_provider,
            "session_provider": store.session_provider,
            "mime": "text/plain",
            "summary": "",
            "meta": {},
            "filename": None,
            "ttl": None,
        }
        with store.catalog.write() as conn:
            store.catalog.insert_artifact(conn, row)
        return original(store_, problem, *args, **kwargs)

    monkeypatch.setattr(fsck, "_repair_blob", commit_first)
    report = check(store, repair=True, grace=0)
    assert [p.fixed for p in report.problems] == [False]
    assert store.blobs.get(key) == b"late"


def test_missing_rows_are_kept_unless_drop_missing(store: ArtifactStore) -> None:
    artifact_id = sandbox_artifact(store)
    store.blobs.delete(key_of(store, artifact_id))
    assert not check(store, repair=True, delete_orphans=True, grace=0).ok
    assert row_of(store, artifact_id) is not None
    report = check(store, drop_missing=True)
    assert report.ok and report.problems[0].action == "dropped"
    assert row_of(store, artifact_id) is None
    assert check(store).ok


def test_drop_missing_reports_a_delete_event(store: ArtifactStore) -> None:
    from chuk_artifacts.hookspecs import hookimpl
    from chuk_artifacts.plugins import ensure_plugins_loaded

    seen: list[str] = []

    class Audit:
        @hookimpl
        def artifact_deleted(self, store: Any, metadata: Any, caller: Any) -> None:
            seen.append(metadata.artifact_id)

    artifact_id = sandbox_artifact(store)
    store.blobs.delete(key_of(store, artifact_id))
    pm = ensure_plugins_loaded()
    plugin = Audit()
    pm.register(plugin)
    try:
        check(store, drop_missing=True)
    finally:
        pm.unregister(plugin)
    assert seen == [artifact_id]


def test_mismatches_are_never_repaired(store: ArtifactStore) -> None:
    resized = sandbox_artifact(store, b"abc")
    store.blobs.put(key_of(store, resized), b"abcd")
    changed = sandbox_artifact(store, b"xyz")
    store.blobs.put(key_of(store, changed), b"XYZ")
    before = snapshot(store)
    report = check(store, verify=True, repair=True, delete_orphans=True, drop_missing=True, grace=0)
    assert kinds(report) == ["sha256-mismatch", "size-mismatch"] and not report.ok
    assert snapshot(store) == before
    assert store.blobs.get(key_of(store, resized)) == b"abcd"


def test_a_negative_grace_is_refused(store: ArtifactStore) -> None:
    from chuk_artifacts import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        check(store, grace=-1)


def test_progress_reports_rows_then_blobs(store: ArtifactStore) -> None:
    for _ in range(3):
        sandbox_artifact(store)
    calls: list[tuple[str, int, int | None]] = []
    check(store, progress=lambda phase, done, total: calls.append((phase, done, total)))
    assert calls == [("rows", 3, 3), ("blobs", 3, 3)]


# -- while the store is in use --------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["filesystem", "sqlite"])
def test_fsck_while_the_store_is_in_use_reports_no_damage_and_repairs_nothing(make_store: Any, provider: str) -> None:
    store = make_store(provider)
    stable = [sandbox_artifact(store, b"stable %d" % i) for i in range(20)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            n = 0
            while not stop.is_set():
                n += 1
                artifact_id = store.store(b"v" * (n % 50), mime="text/plain", scope="sandbox")
                store.update_file(artifact_id, data=b"w" * (n % 70 + 1))
                if n % 2:
                    store.delete(artifact_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        reports = [check(store, verify=True, repair=True) for _ in range(5)]
    finally:
        stop.set()
        worker.join()
    assert errors == []
    for report in reports:
        # Only a write in flight can look like an orphan for a moment; nothing is repaired.
        assert {p.kind for p in report.problems} <= {"orphan"}
        assert not any(p.fixed for p in report.problems)
    assert list(store.blobs.keys(QUARANTINE_PREFIX)) == []
    assert all(store.retrieve(a).startswith(b"stable") for a in stable)
