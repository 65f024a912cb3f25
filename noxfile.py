"""Developer and CI tasks: ``nox`` (tests), ``nox -s lint``, ``nox -s typecheck``, ``nox -s wheel``,
``nox -s bench``.

Dependency lists come from ``pyproject.toml`` (``[dependency-groups]`` and extras), never from here.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent

nox.options.default_venv_backend = "uv" if shutil.which("uv") else "venv"
nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True


def _load_pyproject() -> dict:
    try:
        return nox.project.load_toml(str(ROOT / "pyproject.toml"))
    except AttributeError:  # nox older than 2024.3
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib
        with open(ROOT / "pyproject.toml", "rb") as f:
            return tomllib.load(f)


def group(name: str) -> list[str]:
    """The requirements of one PEP 735 dependency group in pyproject.toml."""
    pyproject = _load_pyproject()
    resolve = getattr(getattr(nox, "project", None), "dependency_groups", None)
    if resolve is not None:
        return list(resolve(pyproject, name))
    # Fallback for old nox: plain requirement strings only (no include-group).
    return [r for r in pyproject["dependency-groups"][name] if isinstance(r, str)]


#: First-party plugin distributions (``plugins/``), installed beside the checkout so that the
#: test suite finds them through their entry points, as a user's environment would.
PLUGIN_DISTS = ("plugins/chuk-artifacts-redis", "plugins/chuk-artifacts-audit", "plugins/chuk-artifacts-mcp")


def _editable_plugins() -> list[str]:
    return [arg for dist in PLUGIN_DISTS for arg in ("-e", dist)]


def install(session: nox.Session, *args: str) -> None:
    """``session.install`` with a current pip first: the pip bundled with older Pythons backtracks
    the wrong way between aiobotocore's botocore pin and moto's boto3 and gives up."""
    if session.venv_backend != "uv":
        session.install("--quiet", "--upgrade", "pip")
    session.install(*args)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite against the checkout (editable install), PostgreSQL driver and the
    first-party plugins included. The azure backend's tests need Azurite (npm; ``.ci/run``
    installs it into ``$CHUK_TEST_TOOLS``), the gcs backend's gcp-storage-emulator (the test group)."""
    install(session, "-e", ".[postgres,s3,azure,gcs]", *_editable_plugins(), *group("test"))
    args = session.posargs or ["-n", "auto"]
    session.run("pytest", *args)


@nox.session
def plugins(session: nox.Session) -> None:
    """The plugin distributions' own tests, the plugin-system tests, and the session tests with
    ``SESSION_PROVIDER=redis`` (needs redis-server on 127.0.0.1:6379; fails in CI without it)."""
    install(session, "-e", ".[postgres]", *_editable_plugins(), *group("test"))
    for dist in PLUGIN_DISTS:
        session.run("pytest", f"{dist}/tests", *session.posargs)
    # The cloud backends' kit runs in ``tests`` (their extras and emulators are installed there).
    session.run(
        "pytest", "tests/test_plugins.py", "tests/test_conformance.py", "-k", "not Azure and not GCS", *session.posargs
    )
    # The session provider is under test here, not the storage backend: skip the s3 cases.
    session.run("pytest", "tests/test_sessions.py", "--session-provider=redis", "-k", "not s3", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Static checks: ruff's lint rules (import sorting included) and its formatting, checked only.

    To fix what it reports: ``ruff check --fix .`` then ``ruff format .``."""
    session.install(*group("lint"))
    paths = session.posargs or ["."]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy in strict mode on the package (``[tool.mypy]`` in pyproject.toml says what and how).
    The azure extra is installed: the Azure SDK ships its own types, and they are checked."""
    install(session, "-e", ".[azure]", *group("typecheck"))
    session.run("mypy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark suite: results JSON in benchmarks/results/ and the tables of
    docs/performance.md. Arguments go to the runner: ``nox -s bench -- --quick`` for a smoke run.

    Its ``published`` section makes (once, then reuses) benchmarks/.published-venv with
    ``pip install chuk-artifacts==0.11.4``; without network it is reported as skipped."""
    install(session, "-e", ".[s3,postgres]", *group("bench"))
    command = "nox -s bench" + (" -- " + " ".join(session.posargs) if session.posargs else "")
    session.run("python", "-m", "benchmarks", "--command", command, *session.posargs)


@nox.session
def wheel(session: nox.Session) -> None:
    """Build the wheel, install it (not the checkout) and prove the migrations ship inside it."""
    build_dir = Path(tempfile.mkdtemp(prefix="chuk-wheel-"))
    work_dir = Path(tempfile.mkdtemp(prefix="chuk-wheel-cwd-"))
    try:
        session.run("python", "-m", "pip", "wheel", "--no-deps", "-w", str(build_dir), str(ROOT))
        (wheel_file,) = build_dir.glob("chuk_artifacts-*.whl")
        session.install(str(wheel_file))

        # From an unrelated directory, so the checkout cannot shadow the installed package.
        session.chdir(work_dir)
        check = (
            "import chuk_artifacts.migrate as m, pathlib; "
            "loc = m.script_location(); print(loc); "
            "assert pathlib.Path(loc).name == '_migrations', loc; "
            f"url = 'sqlite:///' + {str(work_dir / 'catalog.db')!r}; "
            "m.upgrade(url); "
            "rev = m.current_revision(url); print(rev); "
            "assert rev == m.head_revision(), rev"
        )
        session.run("python", "-c", check)

        # chuk-admin from the wheel: migrate its default store, then a put/get round trip.
        env = {"CHUK_ARTIFACTS_HOME": str(work_dir / "home")}
        session.run("chuk-admin", "--help", silent=True)
        session.run("chuk-admin", "migrate", "upgrade", env=env)
        session.run("chuk-admin", "migrate", "current", env=env)
        payload = bytes(range(256)) * 64
        (work_dir / "payload.bin").write_bytes(payload)
        out = session.run("chuk-admin", "put", "payload.bin", env=env, silent=True)
        artifact_id = out.strip().splitlines()[-1]
        session.run("chuk-admin", "get", artifact_id, "-o", "copy.bin", env=env)
        if (work_dir / "copy.bin").read_bytes() != payload:
            session.error("chuk-admin put/get round trip returned different bytes")
        session.run("chuk-admin", "fsck", "--verify", env=env)
    finally:
        session.chdir(ROOT)
        shutil.rmtree(build_dir, ignore_errors=True)
        shutil.rmtree(work_dir, ignore_errors=True)
