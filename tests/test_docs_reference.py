"""The reference lists in the docs are complete and match the code:

- every module of ``chuk_artifacts/`` is in the module map of ``docs/index.md``;
- every table of the catalog (with its primary key and other columns), every index and unique
  constraint (with its table and columns) is in ``docs/architecture.md``;
- every hook of ``hookspecs.py`` is in the hooks table of ``docs/architecture.md``, with its
  arguments, and marked ``firstresult`` exactly when it is;
- every ``chuk-admin`` command and subcommand has its section in ``docs/cli.md``, and the
  output shown for ``chuk-admin migrate current`` is the command's real output.

A name counts only where the list has it: in its row of the table (or its section heading),
not anywhere in the prose. Rows or headings naming something that no longer exists fail too.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import UniqueConstraint

from chuk_artifacts import hookspecs, migrate, schema
from chuk_artifacts.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "chuk_artifacts"


# -- reading Markdown tables ---------------------------------------------------------------------


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    line: int  # of the header, 1-based


def _cells(line: str) -> list[str]:
    """The cells of one table line; a ``|`` inside a code span or escaped does not split."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    cells, current, in_code = [], [], False
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body) and body[i + 1] == "|":
            current.append("|")
            i += 2
            continue
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    cells.append("".join(current).strip())
    return cells


_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def tables(path: Path) -> list[Table]:
    """Every pipe table of a Markdown file (outside fenced code blocks)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Table] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif (
            not in_fence
            and line.lstrip().startswith("|")
            and i + 1 < len(lines)
            and _SEPARATOR.match(lines[i + 1].strip())
        ):
            header = [c.lower() for c in _cells(line)]
            rows = []
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                row = _cells(lines[j])
                assert len(row) == len(header), f"{path.name}:{j + 1}: {len(row)} cells, header has {len(header)}"
                rows.append(row)
                j += 1
            found.append(Table(header, rows, i + 1))
            i = j
            continue
        i += 1
    return found


def the_table(path: Path, header: list[str]) -> Table:
    """The one table of ``path`` with exactly this header."""
    matches = [t for t in tables(path) if t.header == header]
    assert len(matches) == 1, f"{path.name}: expected one table headed {header}, found {len(matches)}"
    return matches[0]


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def names(cell: str) -> list[str]:
    """The names in a cell such as ``\\`a\\`, \\`b\\``` (``—`` for none)."""
    return [] if cell.strip() in ("—", "-", "") else code_spans(cell)


def assert_same(actual: Iterable[str], listed: Iterable[str], what: str, doc: str) -> None:
    """``listed`` names exactly ``actual``: nothing missing, nothing that does not exist."""
    missing, stale = sorted(set(actual) - set(listed)), sorted(set(listed) - set(actual))
    assert not missing, f"{what} missing from {doc}: {missing}"
    assert not stale, f"{doc} lists {what} that do not exist: {stale}"


def test_table_reader() -> None:
    assert _cells("| `a|b` | c \\| d | e |") == ["`a|b`", "c | d", "e"]
    assert names("`x`, `y`") == ["x", "y"] and names("—") == []


# -- docs/index.md: the module map ---------------------------------------------------------------


def test_every_module_is_in_the_module_map() -> None:
    table = the_table(DOCS / "index.md", ["module", "responsibility"])
    listed: list[str] = []
    for first, responsibility in table.rows:
        modules = [span for span in code_spans(first) if re.fullmatch(r"\w+\.py", span)]
        assert modules, f"docs/index.md: a module map row names no module: {first!r}"
        assert responsibility.strip(), f"docs/index.md: no responsibility for {modules}"
        listed += modules
    actual = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert_same(actual, listed, "modules", "docs/index.md's module map")
    assert len(listed) == len(set(listed)), "a module is in the module map twice"


# -- docs/architecture.md: tables, indexes, hooks ------------------------------------------------

ARCHITECTURE = DOCS / "architecture.md"
#: Not in ``schema.py``'s metadata, but in every catalog: alembic's own table.
ALEMBIC_TABLES = {"alembic_version": (["version_num"], [])}


def _schema_tables() -> dict[str, tuple[list[str], list[str]]]:
    """table → (primary key columns, other columns), in declaration order."""
    out = dict(ALEMBIC_TABLES)
    for table in schema.Base.metadata.sorted_tables:
        key = [c.name for c in table.primary_key.columns]
        out[table.name] = (key, [c.name for c in table.columns if c.name not in key])
    return out


def test_every_catalog_table_is_documented_with_its_columns() -> None:
    table = the_table(ARCHITECTURE, ["table", "one row per", "primary key", "other columns", "notes"])
    documented: dict[str, tuple[list[str], list[str]]] = {}
    for name_cell, per, key, others, _notes in table.rows:
        (name,) = code_spans(name_cell)
        assert name not in documented, f"table {name} is documented twice"
        assert per.strip(), f"table {name}: 'one row per' is empty"
        documented[name] = (names(key), names(others))
    expected = _schema_tables()
    assert_same(expected, documented, "tables", "docs/architecture.md")
    for name, (key, others) in expected.items():
        assert documented[name][0] == key, f"table {name}: primary key"
        assert documented[name][1] == others, f"table {name}: other columns (in schema.py's order)"


def _schema_indexes() -> dict[str, tuple[str, list[str], bool]]:
    """index or unique constraint → (table, columns, unique)."""
    out: dict[str, tuple[str, list[str], bool]] = {}
    for table in schema.Base.metadata.sorted_tables:
        for index in table.indexes:
            out[str(index.name)] = (table.name, [c.name for c in index.columns], bool(index.unique))
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint):
                out[str(constraint.name)] = (table.name, [c.name for c in constraint.columns], True)
    return out


def test_every_index_is_documented_with_its_columns() -> None:
    table = the_table(ARCHITECTURE, ["index", "table", "columns", "serves"])
    documented: dict[str, tuple[str, list[str], bool]] = {}
    for name_cell, table_cell, columns, serves in table.rows:
        (name,) = code_spans(name_cell)
        (on,) = code_spans(table_cell)
        assert name not in documented, f"index {name} is documented twice"
        assert serves.strip(), f"index {name}: what it serves is not said"
        documented[name] = (on, names(columns), "unique" in name_cell.replace(f"`{name}`", ""))
    expected = _schema_indexes()
    assert len(expected) > 10  # the schema was read
    assert_same(expected, documented, "indexes", "docs/architecture.md")
    for name, (on, columns, unique) in expected.items():
        assert documented[name][0] == on, f"index {name}: table"
        assert documented[name][1] == columns, f"index {name}: columns"
        assert documented[name][2] == unique, f"index {name}: say 'unique' exactly for unique ones"


def _hooks() -> dict[str, tuple[list[str], bool]]:
    """hook → (argument names, firstresult)."""
    out = {}
    for name, func in vars(hookspecs).items():
        options = getattr(func, "chuk_artifacts_spec", None)
        if options is not None:
            out[name] = (list(inspect.signature(func).parameters), bool(options.get("firstresult")))
    return out


def test_every_hook_is_documented_with_its_arguments() -> None:
    table = the_table(ARCHITECTURE, ["hook", "called", "returns"])
    documented: dict[str, tuple[list[str] | None, bool]] = {}
    for first, called, returns in table.rows:
        spans = code_spans(first)
        for i, span in enumerate(spans):
            match = re.fullmatch(r"(\w+)\s*(?:\(([^)]*)\))?", span)
            if not match or span == "firstresult":
                continue
            name, args = match.group(1), match.group(2)
            if args is None:  # ``a`` / ``b`` ``(x, y)``: the next argument list in the row
                args = next((s[1:-1] for s in spans[i + 1 :] if s.startswith("(") and s.endswith(")")), None)
            arguments = None if args is None else [a.strip() for a in args.split(",") if a.strip()]
            assert name not in documented, f"hook {name} is documented twice"
            assert called.strip() and returns.strip(), f"hook {name}: when it is called, what it returns"
            documented[name] = (arguments, "firstresult" in spans)
    expected = _hooks()
    assert len(expected) > 5  # the hook specifications were read
    assert_same(expected, documented, "hooks", "docs/architecture.md")
    for name, (arguments, firstresult) in expected.items():
        assert documented[name][0] == arguments, f"hook {name}: arguments"
        assert documented[name][1] == firstresult, f"hook {name}: marked `firstresult` exactly when it is"


# -- docs/cli.md: every command --------------------------------------------------------------------

CLI_DOC = DOCS / "cli.md"
#: The section of docs/cli.md for commands that plugins add (present only when installed).
PLUGIN_SECTION = "Commands from plugins"


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> dict[str, click.Command]:
    """Every command and subcommand below ``group``, as 'migrate upgrade'-style paths."""
    out: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = (*prefix, name)
        out[" ".join(path)] = command
        if isinstance(command, click.Group):
            out.update(_commands(command, path))
    return out


def _first_party(command: click.Command) -> bool:
    """Built in, or from a first-party plugin (``plugins/``): the ones docs/cli.md documents."""
    module = getattr(command.callback, "__module__", "") or ""
    return module.split(".")[0] in (
        "chuk_artifacts",
        "chuk_artifacts_audit",
        "chuk_artifacts_redis",
        "chuk_artifacts_mcp",
    )


def _cli_headings() -> dict[str, str]:
    """'migrate upgrade' → the title of the ``##`` section its heading is in."""
    out: dict[str, str] = {}
    section = ""
    in_fence = False
    for line in CLI_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence:
            continue
        heading = re.fullmatch(r"(#{2,4}) (.+?)\s*", line)
        if not heading:
            continue
        command = re.fullmatch(r"`chuk-admin ([a-z0-9 _-]+)`", heading.group(2))
        if len(heading.group(1)) == 2 and not command:
            section = heading.group(2)
        if command:
            assert command.group(1) not in out, f"docs/cli.md: two sections for {command.group(1)}"
            out[command.group(1)] = section
    return out


def test_every_command_has_its_section_in_the_cli_doc() -> None:
    commands = {path for path, command in _commands(cli).items() if _first_party(command)}
    assert {"put", "ls", "migrate", "migrate upgrade"} <= commands  # the group was walked
    headings = _cli_headings()
    missing = sorted(commands - set(headings))
    assert not missing, f"no `### \\`chuk-admin COMMAND\\`` section in docs/cli.md for: {missing}"
    stale = sorted(h for h, section in headings.items() if h not in commands and section != PLUGIN_SECTION)
    assert not stale, f"docs/cli.md has sections for commands that do not exist: {stale}"


def _console_output(command: str) -> str:
    """The lines docs/cli.md shows after ``$ chuk-admin COMMAND`` (up to the next prompt)."""
    text = CLI_DOC.read_text(encoding="utf-8")
    match = re.search(rf"^\$ chuk-admin {re.escape(command)}\n((?:(?!\$ |```).*\n)*)", text, re.MULTILINE)
    assert match, f"docs/cli.md shows no `$ chuk-admin {command}`"
    return match.group(1)


def test_the_cli_doc_shows_the_real_migrate_current_output(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    migrate.upgrade(url)
    runner = CliRunner()
    plain = runner.invoke(cli, ["migrate", "current", "--catalog", url])
    assert plain.exit_code == 0, plain.output
    assert _console_output("migrate current") == plain.output
    as_json = runner.invoke(cli, ["migrate", "current", "--json", "--catalog", url])
    assert as_json.exit_code == 0, as_json.output
    shown, real = json.loads(_console_output("migrate current --json")), json.loads(as_json.output)
    assert list(shown) == list(real)
    assert {k: v for k, v in shown.items() if k != "catalog"} == {k: v for k, v in real.items() if k != "catalog"}


@pytest.mark.parametrize("doc", ["index.md", "architecture.md", "cli.md"])
def test_reference_tables_are_well_formed(doc: str) -> None:
    assert tables(DOCS / doc)  # every row has as many cells as its header (asserted while reading)
