"""Programmatic catalog migrations (what ``chuk-admin migrate`` calls).

The alembic revisions live in the repository's top-level ``migrations/`` and ship inside the wheel
as ``chuk_artifacts/_migrations``, so this works from a checkout and from a plain ``pip install``.
No ``alembic.ini`` is needed: the alembic ``Config`` is built here. Alembic is imported inside the
functions so that importing ``chuk_artifacts`` stays cheap.

Every function that touches a database accepts an SQLAlchemy ``Engine`` or a URL string::

    from chuk_artifacts import migrate
    migrate.upgrade("sqlite:///artifacts.db")
    assert migrate.current_revision("sqlite:///artifacts.db") == migrate.head_revision()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection, Engine

EngineOrUrl = Union["Engine", str]

_PACKAGE_DIR = Path(__file__).resolve().parent


def script_location() -> str:
    """The directory holding ``env.py`` and ``versions/``.

    ``chuk_artifacts/_migrations`` in an installed wheel, else the checkout's top-level
    ``migrations/`` (source tree or editable install).
    """
    for candidate in (_PACKAGE_DIR / "_migrations", _PACKAGE_DIR.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return str(candidate)
    raise FileNotFoundError(
        "chuk-artifacts migrations not found: expected "
        f"{_PACKAGE_DIR / '_migrations'} (installed wheel) or "
        f"{_PACKAGE_DIR.parent / 'migrations'} (source checkout); the installation is incomplete"
    )


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An alembic ``Config`` for the catalog, without an ini file.

    :param url: the database URL (``sqlalchemy.url``), used when no connection is given.
    :param connection: an open connection to migrate on (``config.attributes["connection"]``).
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location())
    if url is not None:
        # ConfigParser interpolation treats "%" specially (URL-encoded passwords).
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _connect(engine_or_url: EngineOrUrl, *, begin: bool) -> Iterator[Connection]:
    """A connection to ``engine_or_url``; an engine made from a URL is disposed afterwards."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import NullPool

    if isinstance(engine_or_url, Engine):
        engine, owned = engine_or_url, False
    elif isinstance(engine_or_url, str):
        engine, owned = create_engine(engine_or_url, poolclass=NullPool), True
    else:
        raise TypeError(f"expected an SQLAlchemy Engine or a URL string, got {engine_or_url!r}")
    try:
        with engine.begin() if begin else engine.connect() as connection:
            yield connection
    finally:
        if owned:
            engine.dispose()


def upgrade(engine_or_url: EngineOrUrl, revision: str = "head") -> None:
    """Migrate the catalog forward to ``revision`` (default: the newest)."""
    from alembic import command

    with _connect(engine_or_url, begin=True) as connection:
        command.upgrade(alembic_config(connection=connection), revision)


def downgrade(engine_or_url: EngineOrUrl, revision: str) -> None:
    """Migrate the catalog back to ``revision`` (``"base"`` drops every table)."""
    from alembic import command

    with _connect(engine_or_url, begin=True) as connection:
        command.downgrade(alembic_config(connection=connection), revision)


def current_revision(engine_or_url: EngineOrUrl) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with _connect(engine_or_url, begin=False) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision shipped with this version of chuk-artifacts."""
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover - the package always ships at least one revision
        raise RuntimeError(f"no migration revisions in {script_location()}")
    return head


def history() -> list[tuple[str, str | None, str]]:
    """Every shipped revision, oldest first, as ``(revision, down_revision, doc)``."""
    scripts = list(_scripts().walk_revisions())  # newest first
    rows: list[tuple[str, str | None, str]] = []
    for script in reversed(scripts):
        down = script.down_revision
        if isinstance(down, (tuple, list)):  # a merge point
            down = ",".join(down)
        rows.append((script.revision, down, script.doc or ""))
    return rows


def known_revisions() -> set[str]:
    """Every revision id this version of chuk-artifacts ships."""
    return {revision for revision, _, _ in history()}


def stamp(engine_or_url: EngineOrUrl, revision: str = "head") -> None:
    """Record ``revision`` as the catalog's version without running any migration."""
    from alembic import command

    with _connect(engine_or_url, begin=True) as connection:
        command.stamp(alembic_config(connection=connection), revision)
