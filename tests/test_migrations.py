"""The alembic revisions build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from chuk_artifacts import migrate
from chuk_artifacts.schema import SCHEMA_REVISION, Base, is_text_index_table

PG_ADMIN_URL = os.environ.get("CHUK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def schema_diff(engine: sa.Engine) -> list:
    """What alembic autogenerate would change to make the database match ``Base.metadata``."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "compare_server_default": True},
        )
        diff = compare_metadata(context, Base.metadata)

    # alembic_version is alembic's own table, not part of the catalog's metadata; the full-text
    # index differs by database and is created by its own DDL (schema.TEXT_INDEX_DDL).
    def ours(d: tuple) -> bool:
        if d[0] == "remove_table":
            return d[1].name != "alembic_version" and not is_text_index_table(d[1].name)
        if d[0] == "remove_index":
            return not is_text_index_table(d[1].table.name)
        return True

    return [d for d in diff if ours(d)]


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


@pytest.fixture
def sqlite_engine(tmp_path: Path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield engine
    engine.dispose()


def test_head_revision_is_the_revision_the_code_expects():
    assert migrate.head_revision() == SCHEMA_REVISION


def test_history_starts_at_the_initial_revision():
    revisions = migrate.history()
    assert revisions[0][:2] == ("0001_initial", None)
    assert revisions[-1][0] == migrate.head_revision()


def test_script_location_holds_the_alembic_environment():
    location = Path(migrate.script_location())
    assert (location / "env.py").is_file()
    assert (location / "versions").is_dir()


def test_importing_migrate_does_not_import_alembic():
    code = "import sys, chuk_artifacts.migrate; print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_upgrade_of_an_empty_sqlite_file_matches_the_metadata(sqlite_engine):
    assert migrate.current_revision(sqlite_engine) is None

    migrate.upgrade(sqlite_engine)

    assert migrate.current_revision(sqlite_engine) == SCHEMA_REVISION
    assert "alembic_version" in table_names(sqlite_engine)
    assert schema_diff(sqlite_engine) == []


def test_upgrade_accepts_a_url(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'by-url.db'}"
    migrate.upgrade(url)
    assert migrate.current_revision(url) == SCHEMA_REVISION


def test_upgrade_is_idempotent(sqlite_engine):
    migrate.upgrade(sqlite_engine)
    migrate.upgrade(sqlite_engine)
    assert migrate.current_revision(sqlite_engine) == SCHEMA_REVISION


def test_downgrade_to_base_removes_every_table_and_upgrade_works_again(sqlite_engine):
    migrate.upgrade(sqlite_engine)

    migrate.downgrade(sqlite_engine, "base")

    assert table_names(sqlite_engine) <= {"alembic_version"}
    assert migrate.current_revision(sqlite_engine) is None

    migrate.upgrade(sqlite_engine)
    assert migrate.current_revision(sqlite_engine) == SCHEMA_REVISION
    assert schema_diff(sqlite_engine) == []


def test_upgrade_rejects_something_that_is_not_an_engine_or_url():
    with pytest.raises(TypeError):
        migrate.upgrade(42)  # type: ignore[arg-type]


# --- PostgreSQL -------------------------------------------------------------------------------


def _unavailable(reason: str):
    """Skip locally; in CI a missing PostgreSQL is a broken environment, so fail."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgres_engine():
    """A PostgreSQL engine on a freshly created, uniquely named database (dropped afterwards)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'chuk-artifacts[postgres]')")

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"chuk_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _unavailable(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.orig}")

    engine = sa.create_engine(sa.make_url(PG_ADMIN_URL).set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.mark.postgres
def test_upgrade_of_an_empty_postgres_database_matches_the_metadata(postgres_engine):
    migrate.upgrade(postgres_engine)

    assert migrate.current_revision(postgres_engine) == SCHEMA_REVISION
    assert schema_diff(postgres_engine) == []


@pytest.mark.postgres
def test_postgres_keeps_json_as_text_and_uses_byte_order_collation(postgres_engine):
    migrate.upgrade(postgres_engine)

    columns = {c["name"]: c for c in sa.inspect(postgres_engine).get_columns("artifacts")}
    assert isinstance(columns["meta"]["type"], sa.JSON)
    assert not isinstance(columns["meta"]["type"], sa.dialects.postgresql.JSONB)
    assert columns["filename"]["type"].collation == "C"
    assert columns["mime"]["type"].collation == "C"


@pytest.mark.postgres
def test_postgres_downgrade_to_base_and_upgrade_again(postgres_engine):
    migrate.upgrade(postgres_engine)
    migrate.downgrade(postgres_engine, "base")
    assert table_names(postgres_engine) <= {"alembic_version"}

    migrate.upgrade(postgres_engine)
    assert schema_diff(postgres_engine) == []


# --- 0002: quota usage of the rows already there -------------------------------------------------


def _usage_after_upgrade_from_0001(url: str) -> None:
    """A catalog with artifacts, taken back to 0001 and upgraded again, has the usage its rows
    add up to (the migration computes it), and keeps working."""
    from chuk_artifacts import ArtifactStore

    with ArtifactStore(storage_provider="memory", catalog_url=url) as store:
        store.store(b"a" * 10, mime="text/plain", user_id="alice", scope="user")
        store.store(b"b" * 20, mime="text/plain", user_id="alice", scope="user")
        store.store(b"c" * 5, mime="text/plain", user_id="bob")
        store.store(b"d" * 7, mime="text/plain")  # no owner: counts for the sandbox only
        expected = {who: store.usage(who or None)["bytes"] for who in ("", "alice", "bob")}
    migrate.downgrade(url, "0001_initial")
    assert "quota_usage" not in table_names(sa.create_engine(url))
    migrate.upgrade(url)
    with ArtifactStore(storage_provider="memory", catalog_url=url, quota_user_bytes=31) as store:
        assert {who: store.usage(who or None)["bytes"] for who in ("", "alice", "bob")} == expected
        assert store.usage("alice")["bytes"] == 30 and store.usage()["count"] == 4
        store.store(b"e", mime="text/plain", user_id="alice", scope="user")
        with pytest.raises(Exception, match="quota"):
            store.store(b"f", mime="text/plain", user_id="alice", scope="user")


def test_upgrade_from_0001_computes_quota_usage_on_sqlite(tmp_path: Path):
    _usage_after_upgrade_from_0001(f"sqlite:///{tmp_path / 'catalog.db'}")


@pytest.mark.postgres
def test_upgrade_from_0001_computes_quota_usage_on_postgres(postgres_engine):
    _usage_after_upgrade_from_0001(postgres_engine.url.render_as_string(hide_password=False))


# --- 0005: the full-text index of the rows already there -----------------------------------------


def _fulltext_after_upgrade_from_0004(url: str, root: Path) -> None:
    """A catalog upgraded to 0005 finds its artifacts by name, summary and meta at once, and by
    content after ``reindex``; deletes keep the index in step."""
    from chuk_artifacts import ArtifactStore

    kwargs = {"storage_provider": "filesystem", "fs_root": str(root), "catalog_url": url}
    with ArtifactStore(**kwargs) as store:
        old = store.store(b"content kestrel", mime="text/plain", filename="Caf\u00e9.txt", summary="old summary")
        tagged = store.store(b"-", mime="application/octet-stream", meta={"bird": ["merlin"]})
    migrate.downgrade(url, "0004_shares")
    assert "artifact_text" not in table_names(sa.create_engine(url))
    migrate.upgrade(url)
    with ArtifactStore(**kwargs) as store:
        assert [h.artifact_id for h in store.search(text="cafe summary")] == [old]
        assert [h.artifact_id for h in store.search(text="merlin")] == [tagged]
        assert store.search(text="kestrel") == []  # the bytes: reindex reads them
        assert store.reindex() == 2
        assert [h.artifact_id for h in store.search(text="kestrel")] == [old]
        store.delete(old)
        with store.catalog.read() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM artifact_text")).scalar_one() == 1


def test_upgrade_to_0005_indexes_existing_artifacts_on_sqlite(tmp_path: Path):
    _fulltext_after_upgrade_from_0004(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path / "root")


@pytest.mark.postgres
def test_upgrade_to_0005_indexes_existing_artifacts_on_postgres(postgres_engine, tmp_path: Path):
    _fulltext_after_upgrade_from_0004(postgres_engine.url.render_as_string(hide_password=False), tmp_path / "root")
