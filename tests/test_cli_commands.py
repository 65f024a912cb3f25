"""chuk-admin's everyday and operations commands, run as a user runs them.

Every test points the CLI at a temporary home (``CHUK_ARTIFACTS_HOME``) or root: nothing touches
the real ``~/.local/share/chuk-artifacts``. ``run`` uses click's ``CliRunner`` in standalone mode,
which is exactly what the ``chuk-admin`` script does (errors: one line, exit code 1 or 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from chuk_artifacts import ArtifactStore, MultipartUploadInitRequest
from chuk_artifacts.cli import cli, human_bytes, table

ROOT = Path(__file__).resolve().parents[1]
BINARY = bytes(range(256)) * 1200 + os.urandom(4093)  # every byte value, not a chunk multiple


def run(*args: str, input: bytes | str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def ok(*args: str, input: bytes | str | None = None) -> str:
    result = run(*args, input=input)
    assert result.exit_code == 0, result.output
    return result.stdout


def one_error_line(result: Result) -> str:
    """The single stderr line of a failed command (no traceback, no usage block)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """chuk-admin's default store, in a temporary directory."""
    path = tmp_path / "home"
    monkeypatch.setenv("CHUK_ARTIFACTS_HOME", str(path))
    return path


@pytest.fixture
def store(home: Path) -> Iterator[ArtifactStore]:
    """The same store as the CLI's default, opened by the test."""
    with ArtifactStore(storage_provider="filesystem", fs_root=str(home)) as s:
        yield s


def put(*args: str, input: bytes | None = None) -> str:
    return ok("put", *args, input=input).strip()


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


# -- the default store ---------------------------------------------------------------------------


def test_put_then_ls_works_on_a_fresh_machine_in_the_default_home(home: Path, tmp_path: Path) -> None:
    artifact_id = put(write(tmp_path / "report.pdf", b"%PDF-1.7 tiny"))
    listing = ok("ls")
    assert artifact_id in listing and "report.pdf" in listing and "application/pdf" in listing
    assert (home / "catalog.db").is_file()


def test_the_default_home_is_persistent_across_store_objects(home: Path, tmp_path: Path) -> None:
    artifact_id = put(write(tmp_path / "a.txt", b"kept"))
    with ArtifactStore(storage_provider="filesystem", fs_root=str(home)) as store:
        assert store.retrieve(artifact_id) == b"kept"


def test_root_option_before_or_after_the_command_points_elsewhere(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    first = put("--root", str(other), write(tmp_path / "a.txt", b"a"))
    second = ok("--root", str(other), "put", write(tmp_path / "b.txt", b"b")).strip()
    listing = ok("ls", "--root", str(other))
    assert first in listing and second in listing
    assert ok("ls").strip() == "no artifacts"  # the default home saw nothing
    assert not (home / "catalog.db").exists() or first not in ok("ls")


def test_the_commands_own_root_wins_over_the_groups(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    artifact_id = put("--root", str(b), write(tmp_path / "x.txt", b"x"))
    assert artifact_id in ok("--root", str(a), "ls", "--root", str(b))


def test_environment_provider_and_root_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACT_PROVIDER", "filesystem")
    monkeypatch.setenv("ARTIFACT_FS_ROOT", str(tmp_path / "env-root"))
    put(write(tmp_path / "x.txt", b"x"))
    assert (tmp_path / "env-root" / "catalog.db").is_file()


def test_an_explicit_memory_provider_is_used_with_a_note(home: Path, tmp_path: Path) -> None:
    result = run("put", "--provider", "memory", write(tmp_path / "x.txt", b"x"))
    assert result.exit_code == 0
    assert "memory provider keeps nothing" in result.stderr
    assert not home.exists()


# -- put / get -------------------------------------------------------------------------------------


def test_put_and_get_round_trip_binary_data_through_files(home: Path, tmp_path: Path) -> None:
    artifact_id = put(write(tmp_path / "blob.bin", BINARY))
    out = tmp_path / "out.bin"
    ok("get", artifact_id, "--output", str(out))
    assert out.read_bytes() == BINARY


def test_put_from_stdin_and_get_to_stdout_round_trip_binary_data(home: Path) -> None:
    artifact_id = put("-", "--filename", "piped.bin", input=BINARY)
    result = run("get", artifact_id)
    assert result.exit_code == 0
    assert result.stdout_bytes == BINARY


def test_put_records_mime_filename_summary_and_typed_meta(home: Path, tmp_path: Path) -> None:
    artifact_id = put(
        write(tmp_path / "photo.png", b"\x89PNG"),
        "--summary",
        "a photo",
        "--meta",
        "n=3",
        "--meta",
        "ok=true",
        "--meta",
        'tags=["a","b"]',
        "--meta",
        "name=alice",
        "--meta",
        "code=007",
        "--meta",
        "weird=NaN",
        "--meta",
        "empty=",
    )
    info = json.loads(ok("info", artifact_id, "--json"))
    assert info["mime"] == "image/png" and info["filename"] == "photo.png" and info["summary"] == "a photo"
    assert info["meta"] == {
        "n": 3,
        "ok": True,
        "tags": ["a", "b"],
        "name": "alice",
        "code": "007",
        "weird": "NaN",
        "empty": "",
    }


def test_put_from_stdin_without_options_is_octet_stream_without_a_filename(home: Path) -> None:
    info = json.loads(ok("info", put("-", input=b"raw"), "--json"))
    assert info["mime"] == "application/octet-stream" and info["filename"] is None


def test_put_mime_and_filename_options_win(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "data.txt", b"{}")
    info = json.loads(ok("info", put(path, "--mime", "application/json", "--filename", "d/x.json"), "--json"))
    assert (info["mime"], info["filename"]) == ("application/json", "d/x.json")


def test_put_scope_follows_the_identity_given(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "x.txt", b"x")
    admin = json.loads(ok("info", put(path), "--json"))
    user = json.loads(ok("info", put(path, "--user", "alice"), "--json"))
    session = json.loads(ok("info", put(path, "--session", "sess-1"), "--json"))
    assert (admin["scope"], admin["expires_at"]) == ("sandbox", None)
    assert (user["scope"], user["owner_id"], user["expires_at"]) == ("user", "alice", None)
    assert (session["scope"], session["session_id"], session["ttl"]) == ("session", "sess-1", 900)


def test_put_ttl_takes_seconds_or_none(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "x.txt", b"x")
    forever = json.loads(ok("info", put(path, "--session", "s", "--ttl", "none"), "--json"))
    minute = json.loads(ok("info", put(path, "--ttl", "60"), "--json"))
    assert forever["expires_at"] is None and forever["scope"] == "session"
    assert minute["ttl"] == 60 and minute["expires_at"] is not None


@pytest.mark.parametrize("ttl", ["abc", "0", "-5", "1.5", ""])
def test_put_refuses_a_bad_ttl_with_one_line_and_exit_2(home: Path, tmp_path: Path, ttl: str) -> None:
    result = run("put", write(tmp_path / "x.txt", b"x"), "--ttl", ttl)
    assert result.exit_code == 2
    assert "--ttl" in one_error_line(result)
    assert not (home / "catalog.db").exists()


@pytest.mark.parametrize("meta", ["novalue", "=x", " =x"])
def test_put_refuses_bad_meta_with_one_line_and_exit_2(home: Path, tmp_path: Path, meta: str) -> None:
    result = run("put", write(tmp_path / "x.txt", b"x"), "--meta", meta)
    assert result.exit_code == 2
    assert "KEY=VALUE" in one_error_line(result)


def test_put_of_a_missing_file_is_a_usage_error(home: Path, tmp_path: Path) -> None:
    result = run("put", str(tmp_path / "nope.txt"))
    assert result.exit_code == 2
    assert "does not exist" in one_error_line(result)


def test_put_refuses_a_user_scope_without_a_user(home: Path, tmp_path: Path) -> None:
    result = run("put", write(tmp_path / "x.txt", b"x"), "--scope", "user")
    assert result.exit_code == 1
    assert "user_id" in one_error_line(result)


def test_get_of_a_missing_artifact_exits_1_with_one_line(home: Path) -> None:
    result = run("get", "0123456789abcdef")
    assert result.exit_code == 1
    assert one_error_line(result) == "error: artifact '0123456789abcdef' not found"
    assert result.stdout == ""


def test_get_of_an_invalid_id_exits_1_with_one_line(home: Path) -> None:
    result = run("get", "../etc/passwd")
    assert result.exit_code == 1
    assert "artifact_id" in one_error_line(result)


def test_get_checks_access_for_the_identity_given(home: Path, tmp_path: Path) -> None:
    artifact_id = put(write(tmp_path / "x.txt", b"alice's"), "--user", "alice")
    assert run("get", artifact_id, "--user", "alice").stdout_bytes == b"alice's"
    denied = run("get", artifact_id, "--user", "bob")
    assert denied.exit_code == 1 and "access denied" in one_error_line(denied)


def test_get_to_a_file_is_all_or_nothing(home: Path, tmp_path: Path, store: ArtifactStore) -> None:
    artifact_id = put(write(tmp_path / "x.bin", BINARY))
    store.blobs.put(store.metadata(artifact_id).key, BINARY[: len(BINARY) // 2])  # damaged bytes
    target = tmp_path / "out" / "existing.bin"
    target.parent.mkdir()
    target.write_bytes(b"previous content")
    result = run("get", artifact_id, "-o", str(target))
    assert result.exit_code == 1
    assert "shorter than recorded" in one_error_line(result)
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in target.parent.iterdir()) == ["existing.bin"]  # no temp file left


def test_get_output_file_gets_ordinary_permissions(home: Path, tmp_path: Path) -> None:
    artifact_id = put(write(tmp_path / "x.txt", b"x"))
    out = tmp_path / "copy.txt"
    ok("get", artifact_id, "-o", str(out))
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == (0o666 & ~umask)


# -- ls / search / info / rm ------------------------------------------------------------------------


def _pages(*args: str) -> list[list[str]]:
    """Every page of ``chuk-admin ls ARGS --json``, following next_cursor."""
    pages, cursor = [], None
    while True:
        page = json.loads(ok("ls", *args, "--json", *(["--cursor", cursor] if cursor else [])))
        pages.append([a["artifact_id"] for a in page["artifacts"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_ls_paginates_with_the_printed_cursor(home: Path, store: ArtifactStore) -> None:
    ids = [store.store(b"%d" % i, mime="text/plain", scope="sandbox") for i in range(5)]
    first = ok("ls", "--limit", "2")
    cursor = first.strip().splitlines()[-1].removeprefix("next cursor: ")
    assert first.strip().splitlines()[-1].startswith("next cursor: ")
    assert ids[0] in first and ids[1] in first and ids[2] not in first
    second = ok("ls", "--limit", "2", "--cursor", cursor)
    assert ids[2] in second and ids[3] in second and ids[0] not in second
    assert _pages("--limit", "2") == [ids[0:2], ids[2:4], ids[4:5]]


def test_ls_with_a_session_lists_that_session(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "x.txt", b"x")
    mine = put(path, "--session", "sess-a")
    other = put(path, "--session", "sess-b")
    listing = ok("ls", "--session", "sess-a")
    assert mine in listing and other not in listing
    assert _pages("--session", "sess-a", "--limit", "1") == [[mine]]


def test_ls_refuses_a_forged_cursor(home: Path) -> None:
    result = run("ls", "--cursor", "not-a-cursor")
    assert result.exit_code == 1 and "invalid cursor" in one_error_line(result)


def test_ls_refuses_a_limit_out_of_range(home: Path) -> None:
    assert run("ls", "--limit", "0").exit_code == 2
    assert run("ls", "--limit", "1001").exit_code == 2


def test_search_filters_like_the_api(home: Path, store: ArtifactStore) -> None:
    png = store.store(
        b"p", mime="image/png", filename="img/a.png", user_id="alice", scope="user", meta={"project": "apollo", "n": 3}
    )
    jpg = store.store(
        b"j", mime="image/jpeg", filename="img/b.jpg", user_id="bob", scope="user", meta={"project": "gemini"}
    )
    txt = store.store(b"t", mime="text/plain", filename="notes.txt", scope="sandbox", meta={"project": "apollo"})

    def found(*args: str) -> set[str]:
        return {a["artifact_id"] for a in json.loads(ok("search", *args, "--json"))["artifacts"]}

    assert found("--mime", "image/") == {png, jpg}
    assert found("--meta", "project=apollo") == {png, txt}
    assert found("--meta", "project=apollo", "--meta", "n=3") == {png}
    assert found("--prefix", "img/") == {png, jpg}
    assert found("--scope", "sandbox") == {txt}
    assert found("--user", "alice", "--scope", "user") == {png}
    assert found("--mime", "video/") == set()


def test_search_prints_a_table(home: Path, store: ArtifactStore) -> None:
    store.store(b"p" * 3000, mime="image/png", filename="a.png", scope="sandbox")
    out = ok("search", "--mime", "image/")
    header, rule, row = out.strip().splitlines()
    assert header.split() == ["ID", "SCOPE", "OWNER", "SIZE", "MIME", "FILENAME", "STORED"]
    assert set(rule.replace(" ", "")) == {"-"} and "a.png" in row
    assert " 2.9 KiB " in row  # human sizes in tables; --json keeps exact bytes
    assert json.loads(ok("search", "--mime", "image/", "--json"))["artifacts"][0]["bytes"] == 3000


def test_search_with_no_match_says_so(home: Path) -> None:
    assert ok("search", "--mime", "video/").strip() == "no artifacts"


def test_search_with_words_is_a_full_text_search(home: Path, store: ArtifactStore) -> None:
    report = store.store(b"quarterly report for alice", mime="text/plain", filename="r.txt", user_id="alice")
    store.store(b"quarterly report for bob", mime="text/plain", filename="b.txt", user_id="bob")
    store.store(b"a quarterly memo", mime="text/plain", filename="m.txt", user_id="alice")
    hits = json.loads(ok("search", "--user", "alice", "quarterly", "report", "--json"))["artifacts"]
    assert [h["artifact_id"] for h in hits] == [report]
    assert "rank" in hits[0]
    out = ok("search", "--user", "alice", "report", "--snippet")
    assert report in out and "\u00abreport\u00bb" in out and "r.txt" in out


def test_search_refuses_a_bad_text_or_a_snippet_without_one(home: Path) -> None:
    result = run("search", "!!!")
    assert result.exit_code == 1 and "at least one word" in one_error_line(result)
    assert run("search", "--snippet").exit_code == 2


def test_reindex_indexes_the_content_of_artifacts_stored_without_it(home: Path, store: ArtifactStore) -> None:
    artifact_id = store.store(b"forgotten aardvark", mime="text/plain", filename="old.txt")
    with store.catalog.write() as conn:  # what a catalog migrated to 0005_fulltext has: no content
        conn.exec_driver_sql("UPDATE artifact_text SET content = '' ")
    assert store.search(text="aardvark") == []
    assert ok("reindex").strip() == "reindexed 1 artifact(s)"
    assert [h.artifact_id for h in store.search(text="aardvark")] == [artifact_id]
    assert json.loads(ok("reindex", "--json")) == {"reindexed": 1}


def test_info_prints_aligned_metadata(home: Path, tmp_path: Path) -> None:
    artifact_id = put(write(tmp_path / "x.txt", b"hello"), "--meta", "k=v")
    lines = dict(line.split(None, 1) for line in ok("info", artifact_id).splitlines() if len(line.split(None, 1)) == 2)
    assert lines["artifact_id"] == artifact_id and lines["bytes"] == "5" and lines["meta"] == '{"k": "v"}'


def test_info_of_a_missing_artifact_exits_1_with_one_line(home: Path) -> None:
    result = run("info", "missing")
    assert result.exit_code == 1 and one_error_line(result) == "error: artifact 'missing' not found"


def test_rm_deletes_bytes_and_rows(home: Path, tmp_path: Path, store: ArtifactStore) -> None:
    artifact_id = put(write(tmp_path / "x.txt", b"x"))
    key = store.metadata(artifact_id).key
    assert ok("rm", artifact_id).strip() == f"deleted {artifact_id}"
    assert not store.exists(artifact_id) and not store.blobs.exists(key)


def test_rm_reports_each_missing_artifact_and_exits_1(home: Path, tmp_path: Path) -> None:
    artifact_id = put(write(tmp_path / "x.txt", b"x"))
    result = run("rm", "nope", artifact_id)
    assert result.exit_code == 1
    assert one_error_line(result) == "error: artifact 'nope' not found"
    assert result.stdout.strip() == f"deleted {artifact_id}"


def test_rm_force_ignores_missing_artifacts(home: Path) -> None:
    assert run("rm", "-f", "nope").exit_code == 0


def test_rm_checks_access(home: Path, tmp_path: Path) -> None:
    artifact_id = put(write(tmp_path / "x.txt", b"x"), "--user", "alice")
    result = run("rm", artifact_id, "--user", "bob")
    assert result.exit_code == 1 and "access denied" in one_error_line(result)
    assert artifact_id in ok("ls")


# -- presign / serve ---------------------------------------------------------------------------------


def test_presign_prints_a_url_the_gateway_serves(
    serve: Any, http: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = serve("filesystem")
    monkeypatch.setenv("ARTIFACT_PUBLIC_URL", served.url)
    root = str(tmp_path / "artifacts")  # the root of the served store (conftest's make_store)
    artifact_id = put("--root", root, write(tmp_path / "x.bin", BINARY))
    url = ok("presign", artifact_id, "--expires", "60", "--root", root).strip()
    assert url.startswith(served.url + "/blob/grid/")
    response = http("GET", url)
    assert (response.status, response.body) == (200, BINARY)


def test_presign_refuses_bad_expiry_and_missing_artifacts(home: Path, tmp_path: Path) -> None:
    artifact_id = put(write(tmp_path / "x.txt", b"x"))
    assert run("presign", artifact_id, "--expires", "0").exit_code == 2
    assert run("presign", artifact_id, "--expires", str(8 * 86400)).exit_code == 2
    missing = run("presign", "nope")
    assert missing.exit_code == 1 and one_error_line(missing) == "error: artifact 'nope' not found"


# -- stats / validate / plugins -----------------------------------------------------------------------


def test_stats_counts_live_artifacts_by_scope(home: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "x.txt", b"12345")
    put(path)
    put(path, "--user", "alice")
    put(path, "--user", "alice")
    data = json.loads(ok("stats", "--json"))
    assert data["artifacts"]["count"] == 3 and data["artifacts"]["bytes"] == 15
    assert data["artifacts"]["by_scope"] == {"sandbox": {"count": 1, "bytes": 5}, "user": {"count": 2, "bytes": 10}}
    human = ok("stats")
    assert "3 (15 B)" in human and "SCOPE" in human and "filesystem" in human


def test_stats_shows_quota_usage(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACT_QUOTA_USER_BYTES", "1000")
    path = write(tmp_path / "x.txt", b"12345")
    put(path, "--user", "alice")
    put(path, "--user", "alice")
    put(path, "--user", "bob")
    data = json.loads(ok("stats", "--user", "alice", "--json"))
    assert data["usage"] == {"bytes": 15, "count": 3, "max_bytes": None, "max_count": None}
    assert data["user_usage"] == {"user_id": "alice", "bytes": 10, "count": 2, "max_bytes": 1000, "max_count": None}
    human = ok("stats", "--user", "alice")
    assert "usage of alice" in human and "2 artifacts, 10 B of 1000 B" in human


def test_validate_reports_every_part_ok(home: Path) -> None:
    out = ok("validate")
    assert [line.split()[:2] for line in out.splitlines()[2:]] == [
        ["catalog", "ok"],
        ["storage", "ok"],
        ["session", "ok"],
    ]
    assert json.loads(ok("validate", "--json"))["status"] == "ok"


def test_validate_exits_1_when_a_part_fails(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chuk_artifacts.blobs import LocalBlobs
    from chuk_artifacts.errors import ProviderError

    def broken(self: Any, key: str, data: bytes) -> None:
        raise ProviderError("disk full")

    monkeypatch.setattr(LocalBlobs, "put", broken)
    result = run("validate", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["storage"]["status"] == "error" and "disk full" in report["storage"]["error"]
    assert run("validate").exit_code == 1


def test_validate_of_an_unreachable_catalog_is_one_line(tmp_path: Path) -> None:
    result = run("validate", "--catalog", "postgresql+psycopg://nobody@127.0.0.1:1/none", "--root", str(tmp_path))
    assert result.exit_code == 1
    one_error_line(result)


def test_plugins_lists_the_built_ins_and_providers(home: Path) -> None:
    data = json.loads(ok("plugins", "--json"))
    names = {p["name"]: p for p in data["plugins"]}
    assert "storage_backend" in names["chuk_artifacts.backends"]["hooks"]
    assert names["chuk_artifacts.backends"]["distribution"] == "built-in"
    assert {"memory", "filesystem"} <= set(data["storage_providers"])
    assert "catalog" in data["session_providers"]
    human = ok("plugins")
    assert "chuk_artifacts.backends" in human and "storage providers" in human


# -- cleanup ----------------------------------------------------------------------------------------


def _raw_rows(store: ArtifactStore) -> int:
    with store.catalog.read() as conn:
        return store.catalog.count_artifact_rows(conn, store.sandbox_id)


def _all_blobs(store: ArtifactStore) -> list[str]:
    return sorted(k for prefix in ("grid/", "_uploads/", "_quarantine/") for k in store.blobs.keys(prefix))


def _grid_blobs(store: ArtifactStore) -> list[str]:
    return list(store.blobs.keys(f"grid/{store.sandbox_id}/"))


@pytest.fixture
def expired_world(home: Path, store: ArtifactStore, clock: Any) -> dict[str, Any]:
    """Expired: two artifacts, three sessions (one holding an artifact) and an upload with a part.
    Live: two sandbox artifacts."""
    expired = [store.store(b"old%d" % i, mime="text/plain", ttl=60, user_id="u", scope="user") for i in range(2)]
    short = store.create_session(user_id="v", ttl_hours=0.01)  # 36 s
    in_session = store.store(b"session", mime="text/plain", session_id=short, ttl=None)
    upload = store.initiate_multipart_upload(
        MultipartUploadInitRequest(filename="big.bin", mime_type="application/octet-stream")
    )
    store.receive_part(upload["upload_id"], 1, iter([b"part-bytes"]))
    live = [store.store(b"live%d" % i, mime="text/plain", scope="sandbox") for i in range(2)]
    clock.advance(store.settings.upload_ttl + 10)  # past every expiry above; live ones never expire
    return {"expired": expired, "in_session": in_session, "upload": upload, "live": live}


def test_cleanup_dry_run_prints_what_would_go_and_changes_nothing(
    expired_world: dict[str, Any], store: ArtifactStore
) -> None:
    rows, blobs, parts = _raw_rows(store), _grid_blobs(store), list(store.blobs.keys("_uploads/"))
    out = ok("cleanup", "--dry-run")
    assert out.strip() == "would remove 3 artifact(s) (15 B), 3 session(s), 1 upload(s)"
    assert (_raw_rows(store), _grid_blobs(store), list(store.blobs.keys("_uploads/"))) == (rows, blobs, parts)
    assert json.loads(ok("cleanup", "--dry-run", "--json")) == {
        "dry_run": True,
        "artifacts": 3,
        "sessions": 3,
        "uploads": 1,
        "bytes": 15,
    }
    assert _raw_rows(store) == rows


def test_cleanup_removes_expired_artifacts_sessions_and_uploads_with_their_bytes(
    expired_world: dict[str, Any], store: ArtifactStore
) -> None:
    out = ok("cleanup")
    assert out.strip() == "removed 3 artifact(s) (15 B), 3 session(s), 1 upload(s)"
    assert _raw_rows(store) == 2
    assert len(_grid_blobs(store)) == 2  # the live ones
    assert list(store.blobs.keys("_uploads/")) == []
    assert all(store.retrieve(a) for a in expired_world["live"])
    assert json.loads(ok("cleanup", "--json"))["artifacts"] == 0  # nothing left the second time


def test_cleanup_dry_run_matches_what_cleanup_then_removes(expired_world: dict[str, Any]) -> None:
    preview = json.loads(ok("cleanup", "--dry-run", "--json"))
    done = json.loads(ok("cleanup", "--json"))
    assert {**preview, "dry_run": False} == done


def test_cleanup_draws_a_progress_bar_on_request(expired_world: dict[str, Any]) -> None:
    result = run("cleanup", "--progress")
    assert result.exit_code == 0
    assert "cleanup" in result.stderr
    assert "removed 3 artifact(s)" in result.stdout


def test_cleanup_without_a_terminal_draws_no_progress_bar(expired_world: dict[str, Any]) -> None:
    result = run("cleanup")
    assert result.stderr == ""


def test_cleanup_is_safe_while_a_store_keeps_working(home: Path, store: ArtifactStore, clock: Any) -> None:
    expired = [store.store(b"x%d" % i, mime="text/plain", ttl=30, scope="sandbox") for i in range(40)]
    clock.advance(60)
    errors: list[BaseException] = []
    written: list[str] = []
    stop = threading.Event()

    def work() -> None:
        try:
            while not stop.is_set():
                artifact_id = store.store(b"fresh", mime="text/plain", user_id="w", scope="user")
                written.append(artifact_id)
                assert store.retrieve(artifact_id, user_id="w") == b"fresh"
                store.search(user_id="w", limit=5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        removed = 0
        for _ in range(3):
            removed += json.loads(ok("cleanup", "--json"))["artifacts"]
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join()
    assert errors == []
    assert removed == len(expired)
    assert written and all(store.retrieve(a, user_id="w") == b"fresh" for a in written)
    assert not any(store.exists(a) for a in expired)


def test_two_cleanups_at_once_from_separate_processes_remove_everything_once(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    with ArtifactStore(storage_provider="filesystem", fs_root=str(root)) as store:
        store.store_batch([{"data": b"x%d" % i, "mime": "text/plain"} for i in range(300)], ttl=1, scope="sandbox")
    time.sleep(1.2)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CHUK_ARTIFACTS_HOME": str(root)}
    command = [sys.executable, "-m", "chuk_artifacts.cli", "cleanup", "--json"]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    assert sum(json.loads(out)["artifacts"] for out, _ in outputs) == 300
    with ArtifactStore(storage_provider="filesystem", fs_root=str(root)) as store:
        assert _raw_rows(store) == 0 and _grid_blobs(store) == []


# -- fsck (the integrity logic itself is tested in test_fsck.py) ------------------------------------------


@pytest.fixture
def damaged(home: Path, store: ArtifactStore) -> dict[str, str]:
    """A store with one healthy artifact, one whose bytes are missing, one with the wrong size and
    one orphan blob."""
    healthy = store.store(b"healthy", mime="text/plain", scope="sandbox")
    missing = store.store(b"missing", mime="text/plain", scope="sandbox")
    store.blobs.delete(store.metadata(missing).key)
    resized = store.store(b"resized", mime="text/plain", scope="sandbox")
    store.blobs.put(store.metadata(resized).key, b"now longer than recorded")
    orphan = f"grid/{store.sandbox_id}/shared/orphan0123"
    store.blobs.put(orphan, b"nobody's")
    return {"healthy": healthy, "missing": missing, "resized": resized, "orphan": orphan}


def test_fsck_of_a_healthy_store_exits_0(home: Path, store: ArtifactStore) -> None:
    store.store(b"fine", mime="text/plain", scope="sandbox")
    out = ok("fsck", "--verify")
    assert out.strip() == "checked 1 row(s) and 1 blob(s) (1 hashed): 0 problem(s), 0 repaired, 0 remaining"


def test_fsck_reports_missing_orphans_and_mismatches_and_exits_1(damaged: dict[str, str]) -> None:
    result = run("fsck")
    assert result.exit_code == 1
    problems = {line.split()[0] for line in result.stdout.splitlines()[2:] if line.strip()}
    assert {"missing", "size-mismatch", "orphan"} <= problems
    assert "3 problem(s), 0 repaired, 3 remaining" in result.stdout


def test_fsck_without_repair_flags_changes_nothing(damaged: dict[str, str], store: ArtifactStore) -> None:
    rows = _raw_rows(store)
    keys = _all_blobs(store)
    run("fsck", "--verify", "--grace", "0")
    assert _raw_rows(store) == rows and _all_blobs(store) == keys


def test_fsck_json_lists_every_problem(damaged: dict[str, str]) -> None:
    result = run("fsck", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["ok"] is False and report["remaining"] == 3
    kinds = {(p["kind"], p["artifact_id"]) for p in report["problems"]}
    assert ("missing", damaged["missing"]) in kinds and ("size-mismatch", damaged["resized"]) in kinds
    assert ("orphan", "orphan0123") in kinds


def test_fsck_repair_quarantines_orphans_and_keeps_everything_else(
    damaged: dict[str, str], store: ArtifactStore
) -> None:
    result = run("fsck", "--repair", "--grace", "0", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 1  # the missing row and the size mismatch remain
    (orphan,) = [p for p in report["problems"] if p["kind"] == "orphan"]
    quarantined = f"{report['quarantine']}{damaged['orphan']}"
    assert orphan["action"] == f"quarantined to {quarantined}"
    assert store.blobs.get(quarantined) == b"nobody's" and not store.blobs.exists(damaged["orphan"])
    assert _raw_rows(store) == 3  # no row was touched
    second = json.loads(run("fsck", "--json").stdout)
    assert {p["kind"] for p in second["problems"]} == {"missing", "size-mismatch"}


def test_fsck_repair_leaves_young_orphans_in_place(damaged: dict[str, str], store: ArtifactStore) -> None:
    report = json.loads(run("fsck", "--repair", "--json").stdout)  # default grace: 1 hour
    (orphan,) = [p for p in report["problems"] if p["kind"] == "orphan"]
    assert orphan["action"] is None and "grace" in orphan["detail"]
    assert store.blobs.exists(damaged["orphan"])


def test_fsck_delete_orphans_and_drop_missing_fix_all_but_mismatches(
    damaged: dict[str, str], store: ArtifactStore
) -> None:
    result = run("fsck", "--delete-orphans", "--drop-missing", "--grace", "0", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert [p["kind"] for p in report["problems"] if not p["action"]] == ["size-mismatch"]
    assert not store.blobs.exists(damaged["orphan"]) and list(store.blobs.keys("_quarantine/")) == []
    with store.catalog.read() as conn:
        assert store.catalog.get_artifact(conn, damaged["missing"]) is None
    assert store.retrieve(damaged["healthy"]) == b"healthy"


def test_fsck_verify_finds_same_size_content_changes(home: Path, store: ArtifactStore) -> None:
    artifact_id = store.store(b"original", mime="text/plain", scope="sandbox")
    store.blobs.put(store.metadata(artifact_id).key, b"ORIGINAL")
    assert run("fsck").exit_code == 0  # sizes agree: only hashing can tell
    result = run("fsck", "--verify", "--json")
    assert result.exit_code == 1
    assert [p["kind"] for p in json.loads(result.stdout)["problems"]] == ["sha256-mismatch"]


def test_fsck_draws_progress_bars_on_request(damaged: dict[str, str]) -> None:
    result = run("fsck", "--progress")
    assert "rows" in result.stderr and "blobs" in result.stderr


def test_fsck_refuses_a_negative_grace(home: Path) -> None:
    assert run("fsck", "--grace", "-1").exit_code == 2


# -- --json everywhere, and main() semantics ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["ls"],
        ["search"],
        ["stats"],
        ["validate"],
        ["plugins"],
        ["cleanup"],
        ["cleanup", "--dry-run"],
        ["fsck"],
        ["migrate", "current"],
        ["migrate", "history"],
    ],
    ids=lambda a: " ".join(a),
)
def test_json_output_parses(home: Path, store: ArtifactStore, args: list[str]) -> None:
    store.store(b"x", mime="text/plain", scope="sandbox")
    json.loads(ok(*args, "--json"))


def test_info_json_parses(home: Path, tmp_path: Path) -> None:
    assert json.loads(ok("info", put(write(tmp_path / "x.txt", b"x")), "--json"))["bytes"] == 1


def _script(*args: str, env: dict[str, str], input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "chuk_artifacts.cli", *args],
        env={**env, "PYTHONPATH": str(ROOT)},
        input=input,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_the_script_turns_errors_into_one_line_and_an_exit_code(tmp_path: Path) -> None:
    env = {**os.environ, "CHUK_ARTIFACTS_HOME": str(tmp_path / "home")}
    missing = _script("get", "0123abcd", env=env)
    assert missing.returncode == 1 and missing.stdout == b""
    assert missing.stderr.decode().splitlines() == ["error: artifact '0123abcd' not found"]
    bad_ttl = _script("put", "-", "--ttl", "soon", env=env, input=b"x")
    assert bad_ttl.returncode == 2 and len(bad_ttl.stderr.decode().splitlines()) == 1
    unknown = _script("frobnicate", env=env)
    assert unknown.returncode == 2 and b"Traceback" not in unknown.stderr
    assert unknown.stderr.decode().startswith("error: No such command 'frobnicate'")


def test_the_script_round_trips_stdin_to_stdout(tmp_path: Path) -> None:
    env = {**os.environ, "CHUK_ARTIFACTS_HOME": str(tmp_path / "home")}
    put_result = _script("put", "-", env=env, input=BINARY)
    assert put_result.returncode == 0, put_result.stderr
    got = _script("get", put_result.stdout.decode().strip(), env=env)
    assert got.returncode == 0 and got.stdout == BINARY


def test_main_exits_with_the_command_status(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from chuk_artifacts.cli import main

    monkeypatch.setattr(sys, "argv", ["chuk-admin", "info", "nope"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    assert capsys.readouterr().err == "error: artifact 'nope' not found\n"


def test_a_database_error_is_one_line_too(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not sqlite" * 100)
    result = run("ls", "--catalog", f"sqlite:///{bad}")
    assert result.exit_code == 1
    one_error_line(result)


# -- the small formatters ---------------------------------------------------------------------------


def test_table_aligns_columns_and_right_aligns_numbers() -> None:
    text = table(("NAME", "SIZE"), [("a", 5), ("longer", 12345)], right=(1,))
    assert text.splitlines() == ["NAME     SIZE", "------  -----", "a           5", "longer  12345"]


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 1024**3)] == ["0 B", "1023 B", "1.0 KiB", "5.0 GiB"]
