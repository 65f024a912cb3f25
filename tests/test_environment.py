"""``config.ENVIRONMENT_VARIABLES`` names every environment variable the library reads, only
``config.py`` reads the environment, and the tests' isolation clears exactly that list.

The reads are watched twice: by running the configuration's readers with ``os.environ``
replaced by a recording mapping (this catches names built at run time, such as the loop over
``config._ENV``), and by reading ``config.py``'s source for lookups with a literal name (this
catches a branch the calls above did not take).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import types
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import pytest

from chuk_artifacts import config

PACKAGE = Path(config.__file__).resolve().parent
ROOT = Path(__file__).resolve().parent.parent
LISTED = set(config.ENVIRONMENT_VARIABLES)


class RecordingEnviron(MutableMapping[str, str]):
    """An environment that records every name looked up, set or removed."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.read: set[str] = set()
        self.written: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self.values[name]

    def __contains__(self, name: object) -> bool:
        self.read.add(str(name))
        return name in self.values

    def __setitem__(self, name: str, value: str) -> None:
        self.written.add(name)
        self.values[name] = value

    def __delitem__(self, name: str) -> None:
        self.written.add(name)
        del self.values[name]

    def __iter__(self) -> Iterator[str]:
        self.read.add("<every variable: the environment was iterated>")
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


class _OsWith(types.ModuleType):
    """The ``os`` module, but with another ``environ`` (and ``getenv`` reading it)."""

    def __init__(self, environ: RecordingEnviron) -> None:
        super().__init__("os")
        self.environ = environ

    def getenv(self, name: str, default: str | None = None) -> str | None:
        return self.environ.get(name, default)

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> RecordingEnviron:
    """The environment as ``config.py`` sees it, for this test: a recording copy of
    ``os.environ`` without the listed names. (Only config's own reads are recorded, not those
    of the libraries it calls, such as ``Path.expanduser`` reading ``HOME``.)"""
    env = RecordingEnviron({k: v for k, v in os.environ.items() if k not in LISTED})
    monkeypatch.setattr(config, "os", _OsWith(env))
    return env


def test_the_configuration_reads_only_listed_variables(recorded: RecordingEnviron) -> None:
    config.Settings.from_env()
    config.PluginSettings.from_env()
    config.cli_home()
    config.cli_settings()
    recorded.values[config.CLI_HOME_VAR] = "/nowhere"
    config.cli_home()
    assert recorded.read, "nothing was read: the recorder is not where the configuration reads"
    unlisted = sorted(recorded.read - LISTED)
    assert not unlisted, f"config.py reads {unlisted}: add them to config.ENVIRONMENT_VARIABLES"


def test_every_listed_variable_is_read(recorded: RecordingEnviron) -> None:
    config.Settings.from_env()
    config.PluginSettings.from_env()
    config.cli_settings()
    assert sorted(LISTED - recorded.read) == [], "listed in ENVIRONMENT_VARIABLES, never read"


def test_the_configure_helpers_set_only_listed_variables(recorded: RecordingEnviron) -> None:
    config.configure_memory()
    config.configure_filesystem("/tmp/x")
    config.configure_s3(bucket="b", access_key="a", secret_key="s", region="r", endpoint_url="e")
    config.configure_ibm_cos(bucket="b", access_key="a", secret_key="s", endpoint="e")
    assert recorded.written and recorded.written <= LISTED, sorted(recorded.written - LISTED)


def _is_environ(node: ast.expr) -> bool:
    """``os.environ``, or a name ``environ`` (config's readers take it as a parameter)."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _literal_reads(tree: ast.Module) -> set[str]:
    """Names looked up with a literal (or a module constant) in ``environ.get(X)``,
    ``environ[X]``, ``X in environ``, ``os.getenv(X)``."""
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def name(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    found: set[str] = set()
    for node in ast.walk(tree):
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if (node.func.attr in ("get", "pop", "setdefault") and _is_environ(node.func.value)) or (
                node.func.attr == "getenv"
            ):
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            key = node.slice
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            key = node.left
        if key is not None and (literal := name(key)) is not None:
            found.add(literal)
    return found


def test_config_source_reads_no_unlisted_variable() -> None:
    tree = ast.parse((PACKAGE / "config.py").read_text(encoding="utf-8"))
    reads = _literal_reads(tree)
    assert "CHUK_ARTIFACTS_HOME" in reads and "XDG_DATA_HOME" in reads  # the scan sees them
    assert sorted(reads - LISTED) == [], "config.py reads these: add them to ENVIRONMENT_VARIABLES"


def test_the_source_scan_finds_every_kind_of_lookup() -> None:
    tree = ast.parse(
        "import os\nNAME = 'D'\n"
        "def f(environ):\n"
        "    os.environ.get('A'); environ['B']; 'C' in environ; environ.get(NAME); os.getenv('E')\n"
    )
    assert _literal_reads(tree) == {"A", "B", "C", "D", "E"}


def _reads_the_process_environment(tree: ast.Module) -> list[int]:
    """Lines of ``os.environ`` / ``os.getenv`` / ``from os import environ|getenv``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(a.name in ("environ", "environb", "getenv") for a in node.names):
                lines.append(node.lineno)
    return lines


#: Modules that may read the environment besides ``config.py``: the test kit's own variables
#: (``CHUK_TEST_POSTGRES_URL``, ``CI`` in ``testing.py``) belong to the test run, not to a store,
#: and must survive the suite's isolation of the store's variables (so they are not in
#: ``ENVIRONMENT_VARIABLES``).
_TEST_RUN_READERS = {"testing.py"}


def test_only_config_reads_the_environment() -> None:
    offenders = [
        f"{path.name}:{line}"
        for path in sorted(PACKAGE.glob("*.py"))
        if path.name != "config.py" and path.name not in _TEST_RUN_READERS
        for line in _reads_the_process_environment(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not offenders, (
        f"the environment is read outside config.py: {offenders}; read it in config.py and list "
        "the variable in ENVIRONMENT_VARIABLES"
    )


# -- the tests' isolation (tests/fixtures/environment.py) --------------------------------------


def test_the_environment_is_clean(tmp_path: Path) -> None:
    """What every test sees: none of the listed variables, but chuk-admin's home in tmp_path;
    variables of the tests themselves are kept."""
    leaked = sorted(v for v in LISTED - {config.CLI_HOME_VAR} if v in os.environ)
    assert not leaked
    assert os.environ[config.CLI_HOME_VAR] == str(tmp_path / "chuk-home")
    assert os.environ.get("CHUK_TEST_KEPT", "kept") == "kept"


def test_isolation_clears_every_listed_variable(tmp_path: Path) -> None:
    """The test above, in a pytest run whose environment sets every listed variable."""
    env = {**os.environ, **{var: "leaked" for var in LISTED}, "CHUK_TEST_KEPT": "kept"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            f"{__file__}::test_the_environment_is_clean",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
