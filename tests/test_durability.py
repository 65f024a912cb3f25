"""The durability setting (``docs/reliability.md``): what an acknowledged write survives.

``process`` (the default) survives a killed process (``tests/test_crash.py`` kills writers at
every step); ``power`` adds what an OS crash or power loss needs: SQLite commits that fsync the
WAL (``synchronous=FULL``) and the directory of every renamed file fsynced. A power cut cannot be
simulated here, so these tests check that each of those steps is taken.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import chuk_artifacts.blobs as blobs_module
from chuk_artifacts import ArtifactStore, InvalidArgumentError, Settings


def _synchronous(store: ArtifactStore) -> tuple[int, int]:
    """``PRAGMA synchronous`` on the catalog's pooled and driver-level connections."""
    with store.catalog.read() as conn:
        pooled = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    driver = store.catalog._thread_connection().execute("PRAGMA synchronous").fetchone()[0]
    return int(pooled), int(driver)


def test_the_default_survives_a_killed_process_and_says_so(tmp_path: Path) -> None:
    with ArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path)) as store:
        assert store.settings.durability == "process"
        assert _synchronous(store) == (1, 1)  # NORMAL: WAL commits are not fsynced one by one


def test_power_durability_fsyncs_every_sqlite_commit(tmp_path: Path) -> None:
    with ArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path), durability="power") as store:
        assert _synchronous(store) == (2, 2)  # FULL
        sid = store.create_session()
        aid = store.store(b"kept", mime="text/plain", session_id=sid)
        assert store.retrieve(aid, session_id=sid) == b"kept"


def test_power_durability_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACT_DURABILITY", "Power")
    assert Settings.from_env().durability == "power"


def test_an_unknown_durability_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgumentError, match="process, power.*ARTIFACT_DURABILITY"):
        ArtifactStore(durability="strong")
    monkeypatch.setenv("ARTIFACT_DURABILITY", "fsync")
    with pytest.raises(InvalidArgumentError, match="ARTIFACT_DURABILITY"):
        Settings.from_env()


@pytest.mark.parametrize("durability, fsyncs_directories", [("process", False), ("power", True)])
def test_renamed_files_have_their_directory_fsynced_only_for_power(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: str, fsyncs_directories: bool
) -> None:
    synced: list[str] = []
    real = blobs_module._fsync_directory
    monkeypatch.setattr(blobs_module, "_fsync_directory", lambda path: (synced.append(path), real(path)))
    root = tmp_path / "root"
    with ArtifactStore(storage_provider="filesystem", fs_root=str(root), durability=durability) as store:
        sid = store.create_session()
        aid = store.store(b"one", mime="text/plain", session_id=sid)
        key = store.metadata(aid, session_id=sid).key
        store.update_file(aid, data=b"two", session_id=sid)  # staged, then renamed into place
        assert store.retrieve(aid, session_id=sid) == b"two"
    artifact_dir = os.path.dirname(os.path.realpath(root / key))
    if not fsyncs_directories:
        assert synced == []
        return
    # The new file's directory after each rename (the store and the move of the update) ...
    assert synced.count(artifact_dir) >= 2
    # ... and every directory that was created for it, in its parent, up to the root.
    created = Path(artifact_dir)
    parents = {str(p) for p in [created.parent, created.parent.parent]}
    assert parents <= set(synced)
    assert all(p.startswith(os.path.realpath(root)) for p in synced)
