"""A filesystem store keeps everything across process restarts: bytes, metadata, sessions, moves."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from chuk_artifacts import ArtifactStore
from chuk_artifacts.errors import ArtifactNotFoundError

REPO = Path(__file__).resolve().parents[1]

WRITER = """
import json
from chuk_artifacts import ArtifactStore

with ArtifactStore() as s:  # configured by ARTIFACT_PROVIDER / ARTIFACT_FS_ROOT only
    sid = s.create_session(user_id="alice", session_id="sess-alice")
    ids = {
        "session": s.store(b"session bytes", mime="text/plain", summary="a note",
                           meta={"kind": "session", "n": 1}, filename="notes/a.txt", session_id=sid),
        "user": s.store(b"user bytes", mime="application/json", meta={"kind": "user"},
                        filename="profile.json", user_id="alice", scope="user"),
        "sandbox": s.store(b"shared bytes", mime="image/png", meta={"kind": "sandbox"},
                           filename="logo.png", scope="sandbox"),
        "moved": s.store(b"draft", mime="text/plain", filename="drafts/report.txt", session_id=sid),
    }
    s.move_file(ids["moved"], new_filename="final/report.txt", session_id=sid)
    print(json.dumps(ids))
"""

READER = """
import json, sys
from chuk_artifacts import ArtifactStore

ids = json.loads(sys.argv[1])
with ArtifactStore() as s:
    md = s.metadata(ids["session"], session_id="sess-alice")
    out = {
        "session": s.retrieve(ids["session"], session_id="sess-alice").decode(),
        "user": s.retrieve(ids["user"], user_id="alice").decode(),
        "sandbox": s.retrieve(ids["sandbox"], user_id="bob").decode(),
        "session_meta": [md.summary, md.meta, md.filename, md.scope, md.owner_id],
        "search_user_scope": [m.artifact_id for m in s.search(user_id="alice", scope="user")],
        "search_meta": [m.artifact_id for m in s.search(meta_filter={"kind": "sandbox"})],
        "search_mime": [m.artifact_id for m in s.search(mime_prefix="application/")],
        "list_session": [m.artifact_id for m in s.list_by_session("sess-alice")],
        "moved_filename": s.metadata(ids["moved"]).filename,
        "dir_final": [m.artifact_id for m in s.get_directory_contents("sess-alice", "final/")],
        "dir_drafts": [m.artifact_id for m in s.get_directory_contents("sess-alice", "drafts/")],
        "session_valid": s.validate_session("sess-alice"),
        "reused_session": s.metadata(s.store(b"later", mime="text/plain", user_id="alice")).session_id,
    }
print(json.dumps(out))
"""


def run_python(code: str, root: Path, *args: str, cwd: Path) -> Any:
    """Run ``code`` in a fresh interpreter configured for a filesystem store at ``root``."""
    # Module-scoped callers run before the autouse env cleaner: drop the library's variables here.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTIFACT_", "SESSION_"))}
    env.update(ARTIFACT_PROVIDER="filesystem", ARTIFACT_FS_ROOT=str(root))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def restarted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One writer process, then one reader process, on the same root (shared by the tests)."""
    base = tmp_path_factory.mktemp("persistence")
    root, cwd = base / "root", base / "cwd"
    cwd.mkdir()
    ids = run_python(WRITER, root, cwd=cwd)
    read = run_python(READER, root, json.dumps(ids), cwd=cwd)
    return {"root": root, "cwd": cwd, "ids": ids, "read": read}


@pytest.fixture
def reopened(restarted) -> ArtifactStore:
    """The test process's own store on the root the subprocesses wrote."""
    store = ArtifactStore(storage_provider="filesystem", fs_root=str(restarted["root"]))
    yield store
    store.close()


# -- a second process reads what the first wrote -----------------------------------------------


def test_bytes_of_every_scope_survive_a_restart(restarted):
    read = restarted["read"]
    assert (read["session"], read["user"], read["sandbox"]) == ("session bytes", "user bytes", "shared bytes")


def test_metadata_survives_a_restart(restarted):
    assert restarted["read"]["session_meta"] == [
        "a note",
        {"kind": "session", "n": 1},
        "notes/a.txt",
        "session",
        "alice",
    ]


def test_search_by_user_and_scope_works_after_a_restart(restarted):
    assert restarted["read"]["search_user_scope"] == [restarted["ids"]["user"]]


def test_search_by_meta_works_after_a_restart(restarted):
    assert restarted["read"]["search_meta"] == [restarted["ids"]["sandbox"]]


def test_search_by_mime_prefix_works_after_a_restart(restarted):
    assert restarted["read"]["search_mime"] == [restarted["ids"]["user"]]


def test_listing_a_session_works_after_a_restart(restarted):
    ids = restarted["ids"]
    assert set(restarted["read"]["list_session"]) == {ids["session"], ids["user"], ids["moved"]}


def test_a_move_done_in_another_process_is_persisted(restarted):
    assert restarted["read"]["moved_filename"] == "final/report.txt"


def test_a_moved_file_is_listed_under_its_new_directory_only(restarted):
    assert restarted["read"]["dir_final"] == [restarted["ids"]["moved"]]
    assert restarted["read"]["dir_drafts"] == []


def test_sessions_survive_a_restart(restarted):
    assert restarted["read"]["session_valid"] is True


def test_a_users_live_session_is_reused_after_a_restart(restarted):
    assert restarted["read"]["reused_session"] == "sess-alice"


def test_the_test_process_reads_what_the_subprocesses_wrote(restarted, reopened):
    ids = restarted["ids"]
    assert reopened.retrieve(ids["user"], user_id="alice") == b"user bytes"
    assert reopened.metadata(ids["moved"]).filename == "final/report.txt"
    assert [m.artifact_id for m in reopened.search(meta_filter={"kind": "user"})] == [ids["user"]]


def test_access_rules_still_apply_after_a_restart(restarted, reopened):
    from chuk_artifacts.errors import AccessDeniedError

    with pytest.raises(AccessDeniedError):
        reopened.retrieve(restarted["ids"]["user"], user_id="bob")


def test_the_bytes_live_at_their_grid_keys_under_the_root(restarted, reopened):
    for artifact_id in restarted["ids"].values():
        key = reopened.metadata(artifact_id).key
        assert (restarted["root"] / key).is_file()


# -- where the catalog lives -------------------------------------------------------------------


def test_the_catalog_is_a_sqlite_file_inside_the_root(restarted):
    catalog = restarted["root"] / "catalog.db"
    with sqlite3.connect(catalog) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert {"artifacts", "sessions", "alembic_version"} <= names


def test_the_catalog_uses_wal_journaling(restarted):
    conn = sqlite3.connect(restarted["root"] / "catalog.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_nothing_is_written_to_the_working_directory(restarted):
    assert list(restarted["cwd"].iterdir()) == []


def test_nothing_is_written_beside_the_root(restarted):
    assert sorted(p.name for p in restarted["root"].parent.iterdir()) == ["cwd", "root"]


# -- two stores in one process on the same root ------------------------------------------------


@pytest.fixture
def pair(tmp_path: Path):
    root = str(tmp_path / "shared-root")
    first = ArtifactStore(storage_provider="filesystem", fs_root=root)
    second = ArtifactStore(storage_provider="filesystem", fs_root=root)
    yield first, second
    first.close()
    second.close()


def test_a_second_store_on_the_same_root_reads_the_firsts_writes(pair):
    first, second = pair
    artifact_id = first.store(b"hello", mime="text/plain", meta={"k": 1}, user_id="alice", scope="user")
    assert second.retrieve(artifact_id, user_id="alice") == b"hello"
    assert second.metadata(artifact_id).meta == {"k": 1}


def test_a_second_store_finds_the_firsts_writes_by_search(pair):
    first, second = pair
    artifact_id = first.store(b"x", mime="text/csv", meta={"tag": "shared"}, scope="sandbox")
    assert [m.artifact_id for m in second.search(meta_filter={"tag": "shared"})] == [artifact_id]


def test_metadata_changes_are_seen_by_the_other_store(pair):
    first, second = pair
    artifact_id = first.store(b"x", mime="text/plain", filename="old.txt", scope="sandbox")
    second.move_file(artifact_id, new_filename="new.txt")
    assert first.metadata(artifact_id).filename == "new.txt"


def test_content_updates_are_seen_by_the_other_store(pair):
    first, second = pair
    artifact_id = first.store(b"version 1", mime="text/plain", scope="sandbox")
    second.update_file(artifact_id, data=b"version 2")
    assert first.retrieve(artifact_id) == b"version 2"


def test_a_delete_in_one_store_is_seen_by_the_other(pair):
    first, second = pair
    artifact_id = first.store(b"x", mime="text/plain", scope="sandbox")
    assert second.delete(artifact_id) is True
    with pytest.raises(ArtifactNotFoundError):
        first.retrieve(artifact_id)


def test_a_session_created_in_one_store_is_reused_by_the_other(pair):
    first, second = pair
    sid = first.create_session(user_id="carol")
    artifact_id = second.store(b"x", mime="text/plain", user_id="carol")
    assert second.metadata(artifact_id).session_id == sid
