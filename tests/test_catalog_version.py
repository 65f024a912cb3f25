"""The catalog's schema version: created when fresh, upgraded or refused when not current."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from chuk_artifacts import ArtifactStore, migrate
from chuk_artifacts.catalog import Catalog
from chuk_artifacts.errors import ArtifactStoreError, CatalogVersionError
from chuk_artifacts.schema import SCHEMA_REVISION

CATALOG_TABLES = {"artifacts", "artifact_meta", "sessions", "uploads", "upload_parts", "catalog_info"}
OLDER = "0000_older"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


@pytest.fixture
def url(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


def sql(db_path: Path, statement: str) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(statement).fetchall()
    conn.close()
    return rows


def tables(db_path: Path) -> set[str]:
    return {r[0] for r in sql(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def stamp(db_path: Path, revision: str) -> None:
    sql(db_path, f"UPDATE alembic_version SET version_num = '{revision}'")


def create_catalog(url: str) -> None:
    Catalog(url).close()


@pytest.fixture
def older_revision_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this version ships an older revision ``OLDER`` below the head."""
    real = migrate.known_revisions
    monkeypatch.setattr(migrate, "known_revisions", lambda: real() | {OLDER})


# -- a fresh catalog ---------------------------------------------------------------------------


def test_a_fresh_sqlite_catalog_gets_every_table_without_a_command(url, db_path):
    create_catalog(url)
    assert CATALOG_TABLES | {"alembic_version"} <= tables(db_path)


def test_a_fresh_sqlite_catalog_is_stamped_at_the_schema_revision(url, db_path):
    create_catalog(url)
    assert sql(db_path, "SELECT version_num FROM alembic_version") == [(SCHEMA_REVISION,)]
    assert migrate.current_revision(url) == SCHEMA_REVISION


def test_a_filesystem_store_creates_its_catalog_inside_the_root(tmp_path):
    root = tmp_path / "root"
    ArtifactStore(storage_provider="filesystem", fs_root=str(root)).close()
    assert sql(root / "catalog.db", "SELECT version_num FROM alembic_version") == [(SCHEMA_REVISION,)]


def test_reopening_a_current_catalog_keeps_its_data(tmp_path):
    root = str(tmp_path / "root")
    with ArtifactStore(storage_provider="filesystem", fs_root=root) as first:
        artifact_id = first.store(b"kept", mime="text/plain", scope="sandbox")
    with ArtifactStore(storage_provider="filesystem", fs_root=root) as second:
        assert second.retrieve(artifact_id) == b"kept"


def test_a_catalog_at_head_is_opened_even_with_auto_migrate_off(url):
    create_catalog(url)
    Catalog(url, auto_migrate=False).close()


# -- an unknown (newer) revision ---------------------------------------------------------------


def test_an_unknown_revision_is_refused_with_catalog_version_error(url, db_path):
    create_catalog(url)
    stamp(db_path, "zzzz")
    with pytest.raises(CatalogVersionError):
        Catalog(url)


def test_the_refusal_of_an_unknown_revision_names_it_and_says_what_to_do(url, db_path):
    create_catalog(url)
    stamp(db_path, "zzzz")
    with pytest.raises(CatalogVersionError) as info:
        Catalog(url)
    message = str(info.value)
    assert "'zzzz'" in message
    assert SCHEMA_REVISION in message
    assert "upgrade chuk-artifacts" in message


def test_an_unknown_revision_is_refused_even_with_auto_migrate_on(url, db_path):
    create_catalog(url)
    stamp(db_path, "zzzz")
    with pytest.raises(CatalogVersionError):
        Catalog(url, auto_migrate=True)
    assert sql(db_path, "SELECT version_num FROM alembic_version") == [("zzzz",)]


def test_a_store_on_a_catalog_of_unknown_revision_is_refused(tmp_path):
    root = tmp_path / "root"
    ArtifactStore(storage_provider="filesystem", fs_root=str(root)).close()
    stamp(root / "catalog.db", "zzzz")
    with pytest.raises(CatalogVersionError, match="zzzz"):
        ArtifactStore(storage_provider="filesystem", fs_root=str(root))


def test_catalog_version_error_is_an_artifact_store_error():
    assert issubclass(CatalogVersionError, ArtifactStoreError)


# -- a known older revision --------------------------------------------------------------------


@pytest.mark.usefixtures("older_revision_known")
def test_an_older_revision_is_refused_when_auto_migrate_is_off(url, db_path):
    create_catalog(url)
    stamp(db_path, OLDER)
    with pytest.raises(CatalogVersionError) as info:
        Catalog(url, auto_migrate=False)
    message = str(info.value)
    assert repr(OLDER) in message
    assert "chuk-admin migrate" in message


@pytest.mark.usefixtures("older_revision_known")
def test_the_refusal_of_an_older_revision_changes_nothing(url, db_path):
    create_catalog(url)
    stamp(db_path, OLDER)
    with pytest.raises(CatalogVersionError):
        Catalog(url, auto_migrate=False)
    assert sql(db_path, "SELECT version_num FROM alembic_version") == [(OLDER,)]


def test_sqlite_catalogs_migrate_automatically_by_default(url):
    catalog = Catalog(url)
    try:
        assert catalog.auto_migrate is True
    finally:
        catalog.close()


@pytest.mark.usefixtures("older_revision_known")
def test_an_older_sqlite_catalog_is_upgraded_automatically(url, db_path, monkeypatch):
    create_catalog(url)
    stamp(db_path, OLDER)
    upgraded: list[object] = []

    def fake_upgrade(engine_or_url, revision="head"):  # what the real upgrade leaves behind
        upgraded.append(engine_or_url)
        with engine_or_url.begin() as conn:
            conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{SCHEMA_REVISION}'")

    monkeypatch.setattr(migrate, "upgrade", fake_upgrade)
    catalog = Catalog(url)
    try:
        assert len(upgraded) == 1 and upgraded[0] is catalog.engine
        assert catalog.schema_revision() == SCHEMA_REVISION
    finally:
        catalog.close()


def test_a_catalog_upgraded_by_the_real_migrations_opens_without_a_command(url):
    migrate.upgrade(url)
    catalog = Catalog(url, auto_migrate=False)
    try:
        assert catalog.schema_revision() == SCHEMA_REVISION
    finally:
        catalog.close()


# -- tables without a version ------------------------------------------------------------------


def test_catalog_tables_without_a_version_are_refused_with_a_stamp_hint(url, db_path):
    create_catalog(url)
    sql(db_path, "DROP TABLE alembic_version")
    with pytest.raises(CatalogVersionError) as info:
        Catalog(url)
    assert "chuk-admin migrate stamp" in str(info.value)
    assert "alembic_version" not in tables(db_path)


# -- PostgreSQL: never migrated behind the operator's back -------------------------------------


@pytest.mark.postgres
@pytest.mark.usefixtures("older_revision_known")
def test_an_older_postgres_catalog_is_refused_not_migrated(postgres_url):
    Catalog(postgres_url).close()  # creates the schema if this worker's database is fresh
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{OLDER}'")
        try:
            with pytest.raises(CatalogVersionError, match="chuk-admin migrate"):
                Catalog(postgres_url)
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{SCHEMA_REVISION}'")
    finally:
        engine.dispose()
