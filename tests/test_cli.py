"""chuk-admin: migrate and serve."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from chuk_artifacts import ArtifactStore
from chuk_artifacts import migrate as migrations
from chuk_artifacts.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_migrate_upgrade_creates_a_catalog_at_head(tmp_path: Path) -> None:
    code, out = run("migrate", "upgrade", "--catalog", f"sqlite:///{tmp_path}/c.db")
    assert code == 0
    assert migrations.current_revision(f"sqlite:///{tmp_path}/c.db") == migrations.head_revision()
    assert migrations.head_revision() in out


def test_migrate_current_reports_none_then_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    assert "(none)" in run("migrate", "current", "--catalog", url)[1]
    run("migrate", "upgrade", "--catalog", url)
    assert "(head)" in run("migrate", "current", "--catalog", url)[1]


def test_migrate_downgrade_to_base_drops_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    run("migrate", "upgrade", "--catalog", url)
    code, _ = run("migrate", "downgrade", "base", "--catalog", url)
    assert code == 0
    assert migrations.current_revision(url) is None


def test_migrate_uses_the_filesystem_catalog_inside_the_root(tmp_path: Path) -> None:
    code, _ = run("migrate", "upgrade", "--provider", "filesystem", "--root", str(tmp_path / "store"))
    assert code == 0
    assert (tmp_path / "store" / "catalog.db").exists()


def test_migrate_stamp_records_a_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    code, _ = run("migrate", "stamp", "--catalog", url)
    assert code == 0
    assert migrations.current_revision(url) == migrations.head_revision()


def test_migrate_history_lists_shipped_revisions() -> None:
    code, out = run("migrate", "history")
    assert code == 0
    assert migrations.head_revision() in out


def test_migrate_with_no_options_targets_the_default_persistent_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHUK_ARTIFACTS_HOME", str(tmp_path / "home"))
    code, out = run("migrate", "upgrade")
    assert code == 0 and "catalog at" in out
    assert (tmp_path / "home" / "catalog.db").is_file()
    assert "(head)" in run("migrate", "current")[1]


def test_migrate_refuses_an_explicit_in_memory_catalog_with_a_clear_error() -> None:
    result = CliRunner().invoke(cli, ["migrate", "current", "--provider", "memory"])
    assert result.exit_code == 2
    assert "memory provider" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def _commands(group=cli, prefix=()):  # type: ignore[no-untyped-def]
    """(path, command) of every command and group of chuk-admin, nested ones included.

    Through ``list_commands``/``get_command``, not ``group.commands``: chuk-admin adds the plugins'
    commands only when it is asked for its list.
    """
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*prefix, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in _commands()])
def test_every_command_has_help_text(path: str) -> None:
    command = {" ".join(p): c for p, c in _commands()}[path]
    assert command.help, f"chuk-admin {path} has no help text"
    code, out = run(*path.split(), "--help")
    assert code == 0 and "Usage" in out


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in _commands()])
def test_every_command_is_documented_in_docs_cli_md(path: str) -> None:
    """docs/cli.md has a heading per command, `chuk-admin <path>`, and an example that runs it."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert f"## `chuk-admin {path}`" in text or f"### `chuk-admin {path}`" in text, (
        f"chuk-admin {path} is not documented in docs/cli.md"
    )
    assert f"chuk-admin {path}" in text.split(f"`chuk-admin {path}`", 1)[1], f"no example of chuk-admin {path}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_urls_signed_by_another_instance_on_the_same_store(tmp_path: Path) -> None:
    port = _free_port()
    root = tmp_path / "store"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ARTIFACT_PROVIDER": "filesystem",
        "ARTIFACT_FS_ROOT": str(root),
        "ARTIFACT_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    with ArtifactStore(
        storage_provider="filesystem", fs_root=str(root), public_url=f"http://127.0.0.1:{port}"
    ) as store:
        artifact_id = store.store(b"served bytes", mime="text/plain", filename="s.txt", user_id="u")
        url = store.presign(artifact_id)
        server = subprocess.Popen(
            [sys.executable, "-c", "from chuk_artifacts.cli import main; main()", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            body = None
            for _ in range(100):
                try:
                    body = urllib.request.urlopen(url, timeout=5).read()
                    break
                except urllib.error.URLError:
                    time.sleep(0.1)
            assert body == b"served bytes"
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(url.replace("signature=", "signature=A"), timeout=5)
            assert denied.value.code == 403
        finally:
            server.terminate()
            server.wait(timeout=10)
