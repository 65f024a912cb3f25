"""The documentation is tested: every ``python`` block in README.md and docs/*.md runs, the
quick-start example runs, and every setting the library reads is documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chuk_artifacts import config

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_ENV_VARS = [var for _field, var, _kind in config._ENV]


def _python_blocks() -> list[tuple[str, str]]:
    """(id, source) of every ```python block, ids like ``README.md:57``."""
    blocks = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 2  # first line of code
            blocks.append((f"{path.relative_to(ROOT)}:{line}", match.group(1)))
    return blocks


BLOCKS = _python_blocks()


def test_docs_have_python_examples() -> None:
    assert len([b for b in BLOCKS if b[0].startswith("README.md")]) >= 5


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A temporary working directory and an environment without chuk-artifacts settings.

    Examples may set environment variables (``configure_filesystem``); they are restored after.
    """
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    saved = dict(os.environ)
    yield tmp_path
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize("source", [b[1] for b in BLOCKS], ids=[b[0] for b in BLOCKS])
def test_python_block_runs(source: str, isolated: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    exec(compile(source, "<doc block>", "exec"), namespace)


def test_quickstart_example_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    script = ROOT / "examples" / "quickstart.py"
    for run in (1, 2):
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "AccessDeniedError" in out
        assert "read back 32 bytes" in out
        assert f"search: {run} report(s) for alice" in out  # persisted across runs
    assert (tmp_path / "artifacts" / "catalog.db").is_file()


@pytest.mark.parametrize("var", _ENV_VARS)
def test_every_setting_is_in_the_readme(var: str) -> None:
    assert f"`{var}`" in README.read_text(encoding="utf-8")


@pytest.mark.parametrize("var", _ENV_VARS)
def test_every_setting_is_in_the_configuration_doc(var: str) -> None:
    assert f"`{var}`" in (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def test_readme_shows_the_two_newcomer_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "pip install -e . && python examples/quickstart.py" in text
    assert "pip install nox && nox -s tests" in text
    assert "nox -s tests" in text


def test_readme_does_not_link_to_missing_docs() -> None:
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            assert (path.parent / target).resolve().is_file(), f"{path.name} links to {target}"
