"""chuk-admin as a newcomer meets it: bare commands, many files at once, short ids, readable
sizes, one-line errors that say what to do, output that user text cannot forge, and a
development server that says where it listens."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from chuk_artifacts import ArtifactStore
from chuk_artifacts.cli import MAX_TTL, cli, safe

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, input: bytes | str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def ok(*args: str, input: bytes | str | None = None) -> str:
    result = run(*args, input=input)
    assert result.exit_code == 0, result.output
    return result.stdout


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("CHUK_ARTIFACTS_HOME", str(path))
    monkeypatch.chdir(tmp_path)  # relative paths below are relative to tmp_path
    return path


def opened(home: Path) -> ArtifactStore:
    return ArtifactStore(storage_provider="filesystem", fs_root=str(home))


def tree(tmp_path: Path) -> dict[str, bytes]:
    files = {"photos/a.jpg": b"jpeg-a", "photos/2024/b.jpg": b"jpeg-bb", "photos/2024/deep/c.txt": b"ccc"}
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    return files


# -- the first commands ----------------------------------------------------------------------------


def test_bare_chuk_admin_prints_the_help_and_succeeds(home: Path) -> None:
    result = run()
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.startswith("Usage: ") and "Commands:" in result.stdout
    assert "put" in result.stdout and "migrate" in result.stdout


def test_migrate_alone_upgrades_to_head_and_its_subcommands_stay(home: Path, tmp_path: Path) -> None:
    from chuk_artifacts import migrate as migrations

    out = ok("migrate", "--root", str(tmp_path / "r"))
    assert out.strip() == f"catalog at {migrations.head_revision()}"
    assert ok("migrate", "current", "--root", str(tmp_path / "r")).strip().endswith("(head)")


def test_migrate_downgrade_to_base_says_base_not_none(home: Path, tmp_path: Path) -> None:
    root = str(tmp_path / "r")
    ok("migrate", "--root", root)
    assert ok("migrate", "downgrade", "base", "--root", root).strip() == "catalog at base (no tables)"


def test_a_missing_driver_module_is_one_line_with_the_install_command(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

    monkeypatch.setattr(ArtifactStore, "__init__", missing)
    result = CliRunner().invoke(cli, ["ls"])
    assert result.exit_code == 1
    assert one_error_line(result) == (
        "error: the Python module 'psycopg' is not installed: pip install 'chuk-artifacts[postgres]'"
    )


# -- put: many files, directories, stdin ---------------------------------------------------------


def test_put_of_several_files_stores_each_and_prints_id_size_and_name(home: Path, tmp_path: Path) -> None:
    files = tree(tmp_path)
    result = run("put", "photos/a.jpg", "photos/2024/b.jpg")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [(r[1:3], r[3]) for r in rows] == [(["6", "B"], "photos/a.jpg"), (["7", "B"], "photos/2024/b.jpg")]
    assert result.stderr.startswith("stored 2 files (13 B) in ")
    with opened(home) as store:
        for artifact_id, *_, name in rows:
            assert store.retrieve(artifact_id) == files[name]
            assert store.metadata(artifact_id).mime == "image/jpeg"


def test_put_recursive_keeps_relative_paths_as_filenames(home: Path, tmp_path: Path) -> None:
    files = tree(tmp_path)
    ids = json.loads(ok("put", "-r", "photos", "--json", "--user", "alice"))
    assert sorted(i["filename"] for i in ids) == sorted(files)
    assert all(i["bytes"] == len(files[i["filename"]]) for i in ids)
    with opened(home) as store:
        assert {store.metadata(i["artifact_id"]).filename for i in ids} == set(files)
        assert all(store.metadata(i["artifact_id"]).owner_id == "alice" for i in ids)


def test_put_recursive_of_an_absolute_directory_records_it_from_its_name(home: Path, tmp_path: Path) -> None:
    tree(tmp_path)
    ids = json.loads(ok("put", "-r", str(tmp_path / "photos" / "2024"), "--json"))
    assert sorted(i["filename"] for i in ids) == ["2024/b.jpg", "2024/deep/c.txt"]


def test_put_records_a_relative_path_as_given_and_an_absolute_one_by_name(home: Path, tmp_path: Path) -> None:
    tree(tmp_path)
    relative = json.loads(ok("put", "./photos/2024/b.jpg", "--json"))[0]["filename"]
    absolute = json.loads(ok("put", str(tmp_path / "photos" / "a.jpg"), "--json"))[0]["filename"]
    outside = json.loads(ok("put", "../" + tmp_path.name + "/photos/a.jpg", "--json"))[0]["filename"]
    assert (relative, absolute, outside) == ("photos/2024/b.jpg", "a.jpg", "a.jpg")


def test_put_of_a_directory_without_r_is_a_usage_error_that_names_the_fix(home: Path, tmp_path: Path) -> None:
    tree(tmp_path)
    result = run("put", "photos")
    assert result.exit_code == 2
    assert "pass -r" in one_error_line(result)
    assert not (home / "catalog.db").exists()


def test_put_filename_with_several_files_is_refused(home: Path, tmp_path: Path) -> None:
    tree(tmp_path)
    result = run("put", "photos/a.jpg", "photos/2024/b.jpg", "--filename", "x")
    assert result.exit_code == 2 and "--filename" in one_error_line(result)


def test_put_of_an_empty_stdin_is_refused_unless_allowed(home: Path) -> None:
    refused = run("put", "-", input=b"")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "--allow-empty" in one_error_line(refused)
    artifact_id = ok("put", "-", "--allow-empty", input=b"").strip()
    with opened(home) as store:
        assert store.search() and store.retrieve(artifact_id) == b""
        assert len(store.search()) == 1  # the refused one stored nothing


def test_put_draws_one_progress_bar_on_request(home: Path, tmp_path: Path) -> None:
    tree(tmp_path)
    result = run("put", "-r", "photos", "--progress")
    assert result.exit_code == 0
    assert "put" in result.stderr and len(result.stdout.splitlines()) == 3


def test_put_stores_two_hundred_files_in_one_process_quickly(home: Path, tmp_path: Path) -> None:
    for i in range(200):
        (tmp_path / "many" / f"{i:03}.txt").parent.mkdir(exist_ok=True)
        (tmp_path / "many" / f"{i:03}.txt").write_bytes(b"%d" % i)
    result = run("put", "-r", "many")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 200
    assert result.stderr.startswith("stored 200 files")
    with opened(home) as store:
        page = store.search(limit=1000)
        assert sorted(m.filename for m in page) == [f"many/{i:03}.txt" for i in range(200)]


@pytest.mark.parametrize("ttl", [str(MAX_TTL + 1), "9" * 30])
def test_put_refuses_an_out_of_range_ttl_with_exit_2(home: Path, tmp_path: Path, ttl: str) -> None:
    (tmp_path / "x").write_bytes(b"x")
    result = run("put", "x", "--ttl", ttl)
    assert result.exit_code == 2 and "--ttl" in one_error_line(result)


def test_the_clis_longest_ttl_is_the_stores() -> None:
    from chuk_artifacts.policy import MAX_TTL as STORE_MAX_TTL

    assert MAX_TTL == STORE_MAX_TTL


@pytest.mark.parametrize("meta", ["k" * 300 + "=v", "k=" + "x" * 70_000])
def test_put_refuses_meta_the_store_would_refuse_with_exit_2(home: Path, tmp_path: Path, meta: str) -> None:
    (tmp_path / "x").write_bytes(b"x")
    result = run("put", "x", "--meta", meta)
    assert result.exit_code == 2 and "--meta" in one_error_line(result)
    assert not (home / "catalog.db").exists()


# -- get: many ids, by name, to a directory --------------------------------------------------------


def test_get_of_several_ids_to_a_directory_recreates_the_tree(home: Path, tmp_path: Path) -> None:
    files = tree(tmp_path)
    ids = [i["artifact_id"] for i in json.loads(ok("put", "-r", "photos", "--json"))]
    (tmp_path / "out").mkdir()
    result = run("get", *ids, "-o", "out")
    assert result.exit_code == 0, result.output
    assert {
        str(p.relative_to(tmp_path / "out")): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()
    } == files


def test_get_by_name_within_a_session(home: Path, tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_bytes(b"mine")
    ok("put", "r.txt", "--session", "s1")
    (tmp_path / "r.txt").write_bytes(b"theirs")
    ok("put", "r.txt", "--session", "s2")
    assert run("get", "--name", "r.txt", "--session", "s1").stdout_bytes == b"mine"
    assert run("get", "--name", "r.txt", "--session", "s2").stdout_bytes == b"theirs"
    ambiguous = run("get", "--name", "r.txt")
    assert ambiguous.exit_code == 2 and "more than one artifact is named 'r.txt'" in one_error_line(ambiguous)
    missing = run("get", "--name", "nope.txt", "--session", "s1")
    assert missing.exit_code == 1
    assert one_error_line(missing) == "error: no artifact named 'nope.txt' in session 's1'"


def test_get_of_several_artifacts_needs_a_directory(home: Path, tmp_path: Path) -> None:
    tree(tmp_path)
    ids = ok("put", "photos/a.jpg").split() + ok("put", "photos/2024/b.jpg").split()
    result = run("get", *ids)
    assert result.exit_code == 2 and "--output DIRECTORY" in one_error_line(result)


def test_get_into_a_missing_directory_names_the_directory_not_a_temp_file(home: Path, tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"x")
    artifact_id = ok("put", "x").strip()
    result = run("get", artifact_id, "-o", "nodir/x")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "directory 'nodir' does not exist" in line and ".part" not in line


def test_an_unambiguous_id_prefix_is_accepted_by_get_info_presign_and_rm(home: Path, tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"short ids")
    artifact_id = ok("put", "x").strip()
    short = artifact_id[:8]
    assert run("get", short).stdout_bytes == b"short ids"
    assert json.loads(ok("info", short, "--json"))["artifact_id"] == artifact_id
    assert artifact_id in ok("presign", short)
    assert ok("rm", short).strip() == f"deleted {artifact_id}"


def test_an_ambiguous_id_prefix_is_refused_with_the_candidates(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    real = uuid.uuid4
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(hex="abcd" + real().hex[4:]))
    with opened(home) as store:
        ids = [store.store(b"x", mime="text/plain", scope="sandbox") for _ in range(2)]
    monkeypatch.setattr(uuid, "uuid4", real)
    assert all(i.startswith("abcd") for i in ids)
    result = run("get", "abcd")
    assert result.exit_code == 2 and result.stdout == ""
    line = one_error_line(result)
    assert "'abcd' is the start of several artifact ids" in line and all(i in line for i in ids)
    assert run("get", ids[0][:12]).stdout_bytes == b"x"  # a longer prefix picks one


def test_a_prefix_shorter_than_four_digits_is_taken_as_a_whole_id(home: Path, tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"x")
    artifact_id = ok("put", "x").strip()
    result = run("get", artifact_id[:3])
    assert result.exit_code == 1
    assert one_error_line(result) == f"error: artifact '{artifact_id[:3]}' not found"


# -- output that user text cannot forge ------------------------------------------------------------


def test_info_escapes_terminal_sequences_and_newlines_in_user_text(home: Path) -> None:
    with opened(home) as store:
        artifact_id = store.store(
            b"x",
            mime="text/plain",
            scope="sandbox",
            summary="ok\x1b]0;owned\x07\x1b[2J\nowner_id     admin",
            meta={"k\u202e": "v\x9b31m"},
        )
    out = ok("info", artifact_id)
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "\u202e" not in out
    lines = out.splitlines()
    assert not any(line.startswith("owner_id") and "admin" in line for line in lines)  # no forged field
    summary = next(line for line in lines if line.startswith("summary"))
    assert summary.split(None, 1)[1] == "ok\\x1b]0;owned\\x07\\x1b[2J\\x0aowner_id     admin"
    assert json.loads(ok("info", artifact_id, "--json"))["summary"].startswith("ok\x1b]")  # JSON stays exact


def test_listings_escape_user_text_in_every_column(home: Path) -> None:
    with opened(home) as store:
        store.store(b"x", mime="text/plain", scope="sandbox", filename="a\u2066b.txt")
    out = ok("ls")
    assert "\u2066" not in out and "a\\u2066b.txt" in out


def test_safe_leaves_ordinary_unicode_alone() -> None:
    assert safe("résumé 日本.pdf") == "résumé 日本.pdf"
    assert safe("tab\there") == "tab\\x09here"


# -- serve -----------------------------------------------------------------------------------------


def test_serve_prints_its_url_warns_about_the_public_url_logs_requests_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "CHUK_ARTIFACTS_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    env.pop("ARTIFACT_PUBLIC_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "chuk_artifacts.cli", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first = server.stdout.readline().decode()  # type: ignore[union-attr]
        assert first.startswith("serving ") and " at http://127.0.0.1:" in first
        base = first.rsplit(" at ", 1)[1].strip()
        with ArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path / "home"), public_url=base) as store:
            url = store.presign(store.store(b"served", mime="text/plain", scope="sandbox"))
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(line.decode().rstrip("\n") for line in server.stderr))  # type: ignore[union-attr]
        reader.start()
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read() == b"served"
        deadline = time.monotonic() + 20  # the request is logged once its handler thread finishes
        while not any('"GET /blob/' in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.02)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        reader.join(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0
    assert lines[0].startswith("warning: presigned URLs point at http://127.0.0.1:8787")
    assert f"ARTIFACT_PUBLIC_URL={base}" in lines[0]
    access = [line for line in lines if '"GET /blob/' in line]
    assert len(access) == 1 and access[0].endswith(" 200 6")
    assert not any("signature" in line for line in lines)  # the log never holds a usable URL
    assert lines[-1] == "stopped"


def test_json_output_is_exact_yet_writes_c1_controls_and_bidi_marks_escaped(home: Path) -> None:
    summary = "a\x9b2Jb\u202ec\x1bd résumé"
    with opened(home) as store:
        artifact_id = store.store(b"x", mime="text/plain", scope="sandbox", summary=summary)
    out = ok("info", artifact_id, "--json")
    assert not any(ch in out for ch in "\x9b\u202e\x1b")
    assert "résumé" in out  # ordinary text stays readable
    assert json.loads(out)["summary"] == summary


def test_put_stops_at_the_first_file_the_store_refuses_and_prints_what_it_stored(home: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_bytes(b"a")
    (tmp_path / "in" / "b\x01.txt").write_bytes(b"b")  # a filename the store refuses
    (tmp_path / "in" / "c.txt").write_bytes(b"c")
    result = run("put", "-r", "in")
    assert result.exit_code == 1
    assert [line.split()[-1] for line in result.stdout.splitlines()] == ["in/a.txt"]
    assert one_error_line(result) == "error: filename must not contain control characters"
    with opened(home) as store:
        assert [m.filename for m in store.search()] == ["in/a.txt"]


# -- short ids on every catalog --------------------------------------------------------------------


def test_short_ids_resolve_on_every_backend_and_catalog(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    from chuk_artifacts.cli_artifacts import resolve_id

    real = uuid.uuid4
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(hex="c0ffee" + real().hex[6:]))
    twins = [store.store(b"x", mime="text/plain", scope="sandbox") for _ in range(2)]
    monkeypatch.setattr(uuid, "uuid4", real)
    other = store.store(b"y", mime="text/plain", scope="sandbox")
    assert resolve_id(store, other[:10]) == other
    assert resolve_id(store, twins[1][:12]) == twins[1]
    with pytest.raises(click.UsageError, match="several artifact ids"):
        resolve_id(store, "c0ffee")
    with opened_elsewhere(store) as foreign:  # another sandbox's ids are not candidates
        assert resolve_id(foreign, other[:10]) == other[:10]


def opened_elsewhere(store: ArtifactStore) -> ArtifactStore:
    return ArtifactStore(settings=dataclasses.replace(store.settings, sandbox_id="elsewhere"))


def test_a_plugin_group_named_without_a_subcommand_prints_its_help_not_an_error(home: Path) -> None:
    from chuk_artifacts.cli import AdminGroup

    group = AdminGroup(name="chuk-admin")
    sub = click.Group("tools", help="A plugin's tools.")
    sub.add_command(click.Command("one", callback=lambda: None, help="The first tool."))
    group.add_command(sub)
    group.plugin_commands_added = True  # only these commands
    if not hasattr(click.exceptions, "NoArgsIsHelpError"):
        pytest.skip("click < 8.2 prints a group's help itself")
    result = CliRunner().invoke(group, ["tools"])
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.startswith("Usage: chuk-admin tools") and "The first tool." in result.stdout
