"""Lazy start-up: ``import chuk_artifacts``, ``chuk-admin --version`` and ``--help`` import none of
SQLAlchemy, alembic and fsspec; the public names still resolve, and commands that need the catalog
still work (test_cli.py and test_cli_commands.py run them).

Each probe runs in a fresh interpreter, since the test process has imported everything already.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

import chuk_artifacts
from chuk_artifacts import cli as admin
from chuk_artifacts.hookspecs import hookimpl
from chuk_artifacts.plugins import ensure_plugins_loaded

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sqlalchemy", "alembic", "fsspec")

# Runs chuk-admin's ``main`` with the arguments in argv[1] (JSON) and prints, as JSON, its exit
# code, its output, the heavy modules imported and whether the plugin manager was loaded.
PROBE = r"""
import contextlib, io, json, sys
from chuk_artifacts.cli import main

out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = main(json.loads(sys.argv[1]), standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
print(json.dumps({
    "code": code or 0,  # a command's callback returns None
    "output": out.getvalue(),
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in %r),
    "plugins_loaded": "pluggy" in sys.modules,
}))
""" % (HEAVY,)


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("CHUK_ARTIFACTS_PLUGINS", None)
    env.update(extra)
    return env


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _probe(*args: str, **env: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_python(PROBE, json.dumps(list(args)), env=_env(**env)))
    return result


def _builtin_paths(group: click.Group = admin.cli, prefix: tuple[str, ...] = ()) -> list[str]:
    """Every built-in command and group (nested ones too), as ``migrate upgrade`` and the like."""
    ctx = click.Context(group)
    paths = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if not (command.callback and command.callback.__module__.startswith(admin.__name__)):
            continue  # a plugin's command: what it imports is the plugin's business
        paths.append(" ".join((*prefix, name)))
        if isinstance(command, click.Group):
            paths.extend(_builtin_paths(command, (*prefix, name)))
    return paths


BUILTIN_PATHS = _builtin_paths()


# -- the package -----------------------------------------------------------------------------------


def test_importing_the_package_imports_no_submodule_and_nothing_heavy() -> None:
    loaded = json.loads(
        _python(
            "import json, sys, chuk_artifacts; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('chuk_artifacts.') "
            f"or m.split('.')[0] in {HEAVY!r})))"
        )
    )
    assert loaded == []


def test_the_light_modules_import_nothing_heavy() -> None:
    modules = ["errors", "models", "config", "grid", "hookspecs", "plugins", "cli_group", "cli_artifacts", "cli"]
    heavy = json.loads(
        _python(
            "import importlib, json, sys\n"
            "found = {}\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module('chuk_artifacts.' + name)\n"
            f"    found[name] = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
            "print(json.dumps(found))\n"
        )
    )
    assert heavy == {name: [] for name in modules}


@pytest.mark.parametrize("name", chuk_artifacts.__all__)
def test_every_public_name_resolves_to_its_modules_object(name: str) -> None:
    value = getattr(chuk_artifacts, name)
    home = sys.modules[value.__module__]
    assert home.__name__.startswith("chuk_artifacts.")
    assert getattr(home, name) is value


def test_the_public_names_in_a_fresh_interpreter() -> None:
    """``from chuk_artifacts import *`` gives exactly ``__all__``; ``dir()`` lists all of it."""
    out = json.loads(
        _python(
            "import json\n"
            "import chuk_artifacts\n"
            "listed = dir(chuk_artifacts)\n"
            "namespace = {}\n"
            "exec('from chuk_artifacts import *', namespace)\n"
            "print(json.dumps({'all': chuk_artifacts.__all__, 'dir': listed,\n"
            "                  'star': sorted(k for k in namespace if k != '__builtins__')}))\n"
        )
    )
    assert sorted(out["star"]) == sorted(out["all"])
    assert set(out["all"]) <= set(out["dir"])


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        chuk_artifacts.NoSuchThing  # noqa: B018
    assert not hasattr(chuk_artifacts, "NoSuchThing")


def test_the_type_checking_imports_match_the_lazy_table() -> None:
    """What IDEs and mypy see (the ``if TYPE_CHECKING:`` imports) is what ``__getattr__`` loads."""
    tree = ast.parse((ROOT / "chuk_artifacts" / "__init__.py").read_text(encoding="utf-8"))
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"]
    seen = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert seen == dict(chuk_artifacts._HOMES)
    assert sorted(seen) == sorted(chuk_artifacts.__all__)


def test_the_version_is_pyprojects() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert match is not None
    assert chuk_artifacts.__version__ == match.group(1)


# -- chuk-admin ------------------------------------------------------------------------------------


def test_version_loads_no_plugin_and_nothing_heavy() -> None:
    got = _probe("--version")
    assert got["code"] == 0
    assert got["output"] == f"chuk-admin, version {chuk_artifacts.__version__}\n"
    assert got["heavy"] == []
    assert not got["plugins_loaded"]


def test_help_with_the_built_in_plugins_imports_nothing_heavy() -> None:
    """``--help`` loads the plugins to list their commands; ours import no catalog for that."""
    got = _probe("--help", CHUK_ARTIFACTS_PLUGINS="")
    assert got["code"] == 0 and got["plugins_loaded"]
    listed = re.findall(r"^  (\S+)", got["output"].split("Commands:", 1)[1], re.MULTILINE)
    assert sorted(listed) == sorted(p for p in BUILTIN_PATHS if " " not in p)
    assert got["heavy"] == []


@pytest.mark.xfail(
    strict=True, reason=("chuk-artifacts-audit imports SQLAlchemy when it is loaded (chuk_artifacts_audit.sinks)")
)
def test_help_with_the_installed_plugins_imports_nothing_heavy() -> None:
    got = _probe("--help")
    assert got["code"] == 0 and "audit" in got["output"]
    assert got["heavy"] == []


@pytest.mark.parametrize("path", BUILTIN_PATHS)
def test_help_of_a_built_in_command_imports_nothing_heavy(path: str) -> None:
    """With every installed plugin: a built-in command's help does not even load the plugins."""
    got = _probe(*path.split(), "--help")
    assert got["code"] == 0 and f"Usage: chuk-admin {path}" in got["output"]
    assert got["heavy"] == []
    assert not got["plugins_loaded"]


def test_a_catalog_command_still_imports_the_catalog(tmp_path: Path) -> None:
    """The other side of the probe: it does see the stack a command that needs it imports."""
    got = _probe("ls", "--root", str(tmp_path / "store"), "--provider", "filesystem")
    assert got["code"] == 0 and "no artifacts" in got["output"]
    assert {"sqlalchemy", "fsspec"} <= {m.split(".")[0] for m in got["heavy"]}


# -- plugin commands, added on first need ---------------------------------------------------------


class _Greeter:
    """A plugin adding ``hello`` and trying to replace the built-in ``put``."""

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @cli.command()
        def hello() -> None:
            """Say hello."""
            click.echo("hello")

        @cli.command()
        def put() -> None:
            """Not the real put."""


def _group() -> admin.AdminGroup:
    group = admin.AdminGroup(name="chuk-admin")
    group.add_command(click.Command("put", callback=lambda: None, help="The built-in put."))
    return group


def test_plugin_commands_load_when_listed_and_built_ins_win() -> None:
    pm = ensure_plugins_loaded()
    plugin = pm.register(_Greeter(), name="test-startup-greeter")
    try:
        group = _group()
        ctx = click.Context(group)
        assert group.get_command(ctx, "put").help == "The built-in put."
        assert not group.plugin_commands_added  # a built-in name needs no plugin
        assert "hello" in group.list_commands(ctx)
        assert group.plugin_commands_added
        assert group.get_command(ctx, "put").help == "The built-in put."
    finally:
        pm.unregister(name=plugin)


def test_an_unknown_name_loads_the_plugin_commands() -> None:
    pm = ensure_plugins_loaded()
    plugin = pm.register(_Greeter(), name="test-startup-greeter")
    try:
        group = _group()
        command = group.get_command(click.Context(group), "hello")
        assert command is not None and command.help == "Say hello."
        assert group.get_command(click.Context(group), "nosuch") is None
    finally:
        pm.unregister(name=plugin)


# -- shell completion ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("chuk-admin mig", "1", "plain,migrate"),
        ("chuk-admin migrate up", "2", "plain,upgrade"),
        ("chuk-admin au", "1", "plain,audit"),  # a plugin's command
        ("chuk-admin --ver", "1", "plain,--version"),
    ],
)
def test_shell_completion(words: str, cword: str, expected: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from chuk_artifacts.cli import main; main()"],
        env=_env(_CHUK_ADMIN_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=cword),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout.splitlines()
