"""The ``sqlite`` backend's own promises: one file for the whole store, a ``store()`` whose bytes
and row commit in one transaction, bounded chunk reads, and how ``ARTIFACT_SQLITE_PATH`` and
``ARTIFACT_CATALOG_URL`` decide the file. (The behavioural suite runs on it through ``BACKENDS``.)"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from chuk_artifacts import ArtifactStore, ProviderError, fsck, migrate
from chuk_artifacts.config import Settings
from chuk_artifacts.schema import blob_intents
from chuk_artifacts.sqlite_blobs import SQLiteBlobs


def objects(path: Path) -> list[tuple[str | None, int]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT key, size FROM blob_objects ORDER BY key").fetchall()


@pytest.mark.parametrize("name", ["sqlite", "vfs-sqlite", " VFS-SQLite "])
def test_both_spellings_name_the_provider(tmp_path: Path, name: str) -> None:
    with ArtifactStore(storage_provider=name, sqlite_path=str(tmp_path / "a.db")) as store:
        assert store.storage_provider == "sqlite"
        assert store.metadata(store.store(b"x", mime="text/plain")).storage_provider == "sqlite"


def test_the_whole_store_is_one_file_that_can_be_copied(tmp_path: Path) -> None:
    path = tmp_path / "one" / "artifacts.db"
    with ArtifactStore(storage_provider="sqlite", sqlite_path=str(path)) as store:
        aid = store.store(b"payload" * 1000, mime="text/plain", scope="user", user_id="alice", ttl=None)
        assert store.catalog.url.database == str(path.resolve())
        assert store.writer.joint
    assert {p.name for p in path.parent.iterdir()} <= {"artifacts.db", "artifacts.db-wal", "artifacts.db-shm"}
    copy = tmp_path / "backup.db"
    shutil.copy(path, copy)  # closed: the WAL is checkpointed into the file
    with ArtifactStore(storage_provider="sqlite", sqlite_path=str(copy)) as restored:
        assert restored.retrieve(aid, user_id="alice") == b"payload" * 1000


def test_a_store_whose_transaction_fails_after_its_bytes_leaves_neither(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "a.db"
    with ArtifactStore(storage_provider="sqlite", sqlite_path=str(path)) as store:
        written = []
        original = store.blobs.put

        def put_then_fail(key: str, data: bytes) -> None:
            original(key, data)
            written.append(store.blobs.size(key))  # visible inside the transaction ...
            raise ProviderError("the disk went away")

        monkeypatch.setattr(store.blobs, "put", put_then_fail)
        with pytest.raises(ProviderError, match="disk went away"):
            store.store(b"never committed", mime="text/plain")
        assert written == [len(b"never committed")]
        monkeypatch.undo()
        assert objects(path) == []  # ... and rolled back with the row: no orphan, no intent
        with store.catalog.read() as conn:
            assert conn.execute(blob_intents.select()).first() is None
        assert store.search(limit=10) == []
        assert fsck.check(store).ok


def test_a_batch_commits_all_its_bytes_or_none(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with ArtifactStore(storage_provider="sqlite", sqlite_path=str(path), quota_sandbox_bytes=10) as store:
        with pytest.raises(Exception, match="quota"):
            store.store_batch([{"data": b"12345", "mime": "text/plain"}, {"data": b"678901", "mime": "text/plain"}])
        assert objects(path) == []
        ids = store.store_batch([{"data": b"12345", "mime": "text/plain"}, {"data": b"6789", "mime": "text/plain"}])
        assert sorted(size for _key, size in objects(path)) == [4, 5]
        assert [store.retrieve(i) for i in ids] == [b"12345", b"6789"]


def test_a_ranged_read_reads_only_the_chunks_it_needs(tmp_path: Path) -> None:
    blobs = SQLiteBlobs(tmp_path / "b.db", chunk_size=1024)
    try:
        data = bytes(range(256)) * 64  # 16 chunks
        blobs.put("grid/s/k", data)
        with sqlite3.connect(tmp_path / "b.db") as conn:
            sizes = [n for (n,) in conn.execute("SELECT length(data) FROM blob_chunks ORDER BY seq")]
        assert sizes == [1024] * 16
        reads: list[str] = []
        with blobs.open_read("grid/s/k") as f:
            f.raw.conn.set_trace_callback(reads.append)  # type: ignore[attr-defined]
            f.seek(5000)
            assert f.read(100) == data[5000:5100]
        assert len([r for r in reads if "blob_chunks" in r]) == 1
    finally:
        blobs.close()


def test_a_reader_keeps_reading_the_object_it_opened_while_it_is_replaced(tmp_path: Path) -> None:
    blobs = SQLiteBlobs(tmp_path / "b.db", chunk_size=1024)
    try:
        blobs.put("grid/s/k", b"a" * 5000)
        with blobs.open_read("grid/s/k") as f:
            first = f.read(1024)
            blobs.put("grid/s/k", b"b" * 3000)
            blobs.delete("grid/s/k")
            assert first + f.read() == b"a" * 5000
    finally:
        blobs.close()


def test_an_interrupted_streamed_write_is_removed_by_discard_partial(tmp_path: Path) -> None:
    blobs = SQLiteBlobs(tmp_path / "b.db", chunk_size=1024)
    try:
        writing = blobs.open_write("grid/s/k")
        f = writing.__enter__()  # a writer killed here never exits the block
        f.write(b"z" * 4096)
        assert not blobs.exists("grid/s/k")
        assert objects(tmp_path / "b.db") == [(None, 4096)]  # its chunks so far, unpublished
        [partial] = blobs.keys("grid/s/")
        assert partial.startswith("grid/s/.tmp-k.")  # as a local temp file beside its target
        assert blobs.size(partial) == 4096 and blobs.modified(partial) is not None
        blobs.discard_partial("grid/s/k")
        assert objects(tmp_path / "b.db") == []
        assert list(blobs.keys("grid/")) == []
    finally:
        blobs.close()


def test_fsck_reports_an_abandoned_streamed_write_as_a_stale_temp_and_repairs_it(tmp_path: Path) -> None:
    with ArtifactStore(storage_provider="sqlite", sqlite_path=str(tmp_path / "a.db")) as store:
        key = f"grid/{store.sandbox_id}/shared/abandoned"
        writing = store.blobs.open_write(key)
        writing.__enter__().write(b"q" * (2 << 20))  # a writer killed mid-stream
        young = fsck.check(store)
        assert young.ok and young.in_flight == 1
        old = fsck.check(store, grace=0, repair=True)
        [(kind, action)] = [(p.kind, p.action) for p in old.problems]
        assert kind == "stale-temp" and action.startswith("quarantined to _quarantine/")
        quarantined = action.removeprefix("quarantined to ")
        assert store.blobs.get(quarantined) == b"q" * (2 << 20)  # kept whole, under its temp name
        assert [key for key, _size in objects(tmp_path / "a.db")] == [quarantined]
        assert fsck.check(store, grace=0).ok


def test_the_file_is_the_catalogs_own(tmp_path: Path) -> None:
    assert Settings(storage_provider="sqlite", sqlite_path=str(tmp_path / "x.db")).resolved_catalog_url() == (
        f"sqlite:///{(tmp_path / 'x.db').resolve()}"
    )
    other = tmp_path / "catalog.db"
    settings = Settings(storage_provider="sqlite", sqlite_path=str(tmp_path / "x.db"), catalog_url=f"sqlite:///{other}")
    assert settings.sqlite_blob_path() == str(other.resolve())  # a SQLite catalog URL moves both
    pg = Settings(storage_provider="sqlite", sqlite_path=str(tmp_path / "x.db"), catalog_url="postgresql://h/db")
    assert pg.sqlite_blob_path() == str((tmp_path / "x.db").resolve())  # bytes stay in the file


def test_with_a_catalog_elsewhere_the_bytes_follow_the_intent_protocol(tmp_path: Path) -> None:
    path = tmp_path / "bytes.db"
    with ArtifactStore(storage_provider="sqlite", sqlite_path=str(path), catalog_url="sqlite://") as store:
        assert not store.writer.joint
        aid = store.store(b"kept", mime="text/plain")
        assert store.retrieve(aid) == b"kept"
        assert [size for _key, size in objects(path)] == [4]


def test_an_in_memory_database_is_refused_with_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="ARTIFACT_SQLITE_PATH"):
        SQLiteBlobs(":memory:")


def test_the_catalog_upgrade_check_ignores_the_blob_tables(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    SQLiteBlobs(path).close()  # the backend's tables first, as a store opens them
    with ArtifactStore(storage_provider="sqlite", sqlite_path=str(path)) as store:
        assert store.catalog.schema_revision() == migrate.head_revision()


def test_migrations_down_and_up_leave_the_bytes_alone(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with ArtifactStore(storage_provider="sqlite", sqlite_path=str(path)) as store:
        store.store(b"bytes", mime="text/plain", scope="sandbox")
    url = f"sqlite:///{path}"
    migrate.downgrade(url, "0003_upload_owners")
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    assert [size for _key, size in objects(path)] == [5]


def test_the_seeds_environment_opens_one_file_store(tmp_path: Path) -> None:
    path = tmp_path / "seed" / "artifacts.db"
    settings = Settings.from_env({"ARTIFACT_PROVIDER": "vfs-sqlite", "ARTIFACT_SQLITE_PATH": str(path)})
    assert settings.storage_provider == "sqlite"
    assert settings.resolved_catalog_url() == f"sqlite:///{path.resolve()}" and settings.sqlite_blob_path() == str(
        path.resolve()
    )


@pytest.mark.parametrize(("durability", "level"), [("process", 1), ("power", 2)])
def test_power_durability_makes_every_blob_commit_synchronous_full(tmp_path: Path, durability: str, level: int) -> None:
    with ArtifactStore(storage_provider="sqlite", sqlite_path=str(tmp_path / "a.db"), durability=durability) as store:
        assert isinstance(store.blobs, SQLiteBlobs)
        conn = store.blobs._thread_connection()
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == level  # 1 NORMAL, 2 FULL
        with store.blobs.open_write("grid/default/shared/x") as f:  # a stream's own connection too
            f.write(b"x")
            assert f.conn.execute("PRAGMA synchronous").fetchone()[0] == level  # type: ignore[attr-defined]
