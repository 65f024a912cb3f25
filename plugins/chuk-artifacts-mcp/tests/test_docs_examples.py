"""The ``py`` examples of docs/mcp.md run (the core suite runs only ``python`` blocks, without
this plugin necessarily installed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "mcp.md"
BLOCKS = re.findall(r"^```py[ \t]*\n(.*?)^```[ \t]*$", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def test_the_doc_has_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("source", BLOCKS)
def test_example_runs(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(source, str(DOC), "exec"), {"__name__": "__docs__"})


def test_every_tool_is_in_the_doc() -> None:
    from chuk_artifacts_mcp import TOOL_NAMES

    text = DOC.read_text(encoding="utf-8")
    documented = re.findall(r"^\| `(artifact_[a-z_0-9]+)` \|", text, re.MULTILINE)
    assert tuple(documented) == TOOL_NAMES
