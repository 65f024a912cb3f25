"""The README's shell session (the ```console block of "Try it") runs as printed, in a fresh
temporary HOME with no chuk-artifacts settings: each ``$`` command succeeds and prints what the
README shows (ids and times aside: the README's example id stands for the one ``put`` printed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
_CONSOLE = re.compile(r"^```console[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_ID = re.compile(r"\b[0-9a-f]{32}\b")


def try_it_session() -> list[tuple[str, list[str]]]:
    """(command, the output lines the README shows for it) of the "Try it" console block."""
    section = README.split("## Try it", 1)[1].split("\n## ", 1)[0]
    (block,) = _CONSOLE.findall(section)
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def test_the_readme_shell_session_runs_as_shown_in_a_fresh_home(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ARTIFACT_", "SESSION_", "CHUK_ARTIFACTS_")) and k != "XDG_DATA_HOME"
    }
    env.update(HOME=str(home), PATH=os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")]))
    steps = try_it_session()
    assert any(command.startswith("chuk-admin put") for command, _ in steps)
    example_id = real_id = None
    for command, shown in steps:
        if real_id is not None:  # the README's id (or a start of it) stands for the real one
            command = re.sub(r"\b[0-9a-f]{4,32}\b", lambda m: real_id[: len(m.group())], command)
        result = subprocess.run(
            ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, f"$ {command}\n{result.stderr}"
        printed = result.stdout.splitlines()
        if command.startswith("chuk-admin put"):
            example_id, real_id = shown[0], printed[0]
        if example_id and real_id:
            printed = [line.replace(real_id, example_id) for line in printed]
        assert [_TIME.sub("<time>", line) for line in printed] == [_TIME.sub("<time>", line) for line in shown], (
            f"$ {command}"
        )
    assert example_id is not None and _ID.fullmatch(example_id)
    # the store went where docs/cli.md says: chuk-admin's home under the (fresh) HOME
    if sys.platform.startswith("linux"):
        assert (home / ".local" / "share" / "chuk-artifacts" / "catalog.db").is_file()
    assert not (work / "artifacts").exists()


def test_the_licence_the_package_metadata_names_is_shipped_with_it() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib on Python 3.10
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert re.search(r'^license = "MIT"$', pyproject, re.MULTILINE)
    assert licence.startswith("MIT License\n") and "chuk-artifacts contributors" in licence
