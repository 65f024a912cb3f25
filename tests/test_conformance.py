"""The conformance kit (``chuk_artifacts.testing``) run against the built-in backends and the
built-in catalog session provider — the same kit the plugins in ``plugins/`` run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chuk_artifacts import ArtifactStore
from chuk_artifacts.blobs import LocalBlobs, MemoryBlobs
from chuk_artifacts.catalog import Catalog
from chuk_artifacts.sessions import CatalogSessions
from chuk_artifacts.sqlite_blobs import SQLiteBlobs
from chuk_artifacts.testing import BackendConformance, SessionProviderConformance


class TestMemoryBlobs(BackendConformance):
    @pytest.fixture
    def blobs(self) -> Iterator[MemoryBlobs]:
        blobs = MemoryBlobs()
        yield blobs
        blobs.close()


class TestLocalBlobs(BackendConformance):
    @pytest.fixture
    def blobs(self, tmp_path: Path) -> LocalBlobs:
        return LocalBlobs(tmp_path / "root")


class TestFilesystemStore(BackendConformance):
    """The kit through a store built the ordinary way (``storage_provider="filesystem"``)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ArtifactStore]:
        with ArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path / "fs")) as store:
            yield store


class TestSQLiteBlobs(BackendConformance):
    """The sqlite backend on a file of its own (with an in-memory catalog: no joint transactions)."""

    @pytest.fixture
    def blobs(self, tmp_path: Path) -> Iterator[SQLiteBlobs]:
        blobs = SQLiteBlobs(tmp_path / "bytes.db", chunk_size=4096)  # small chunks: many per object
        yield blobs
        blobs.close()


class TestSQLiteStore(BackendConformance):
    """The kit through a store built the ordinary way: bytes and catalog in one file."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ArtifactStore]:
        with ArtifactStore(storage_provider="sqlite", sqlite_path=str(tmp_path / "store.db")) as store:
            yield store


class TestCatalogSessionsOnSQLite(SessionProviderConformance):
    @pytest.fixture
    def sessions(self, tmp_path: Path) -> Iterator[Callable[..., Any]]:
        catalog = Catalog(f"sqlite:///{tmp_path}/catalog.db")  # a file: shared by every provider
        yield lambda sandbox_id, ttl_seconds: CatalogSessions(catalog, sandbox_id, ttl_seconds)
        catalog.close()


class TestCatalogSessionsInMemory(SessionProviderConformance):
    @pytest.fixture
    def sessions(self) -> Iterator[Callable[..., Any]]:
        catalog = Catalog("sqlite://")
        yield lambda sandbox_id, ttl_seconds: CatalogSessions(catalog, sandbox_id, ttl_seconds)
        catalog.close()


class TestCatalogSessionsOnPostgres(SessionProviderConformance):
    @pytest.fixture
    def sessions(self, postgres_url: str) -> Iterator[Callable[..., Any]]:
        catalog = Catalog(postgres_url)
        yield lambda sandbox_id, ttl_seconds: CatalogSessions(catalog, sandbox_id, ttl_seconds)
        catalog.close()


class TestAzureStore(BackendConformance):
    """The kit on Azure Blob Storage (Azurite on loopback, ``tests/fixtures/cloud.py``)."""

    @pytest.fixture
    def store(self, azure_container: dict[str, Any]) -> Iterator[ArtifactStore]:
        with ArtifactStore(storage_provider="azure", **azure_container) as store:
            yield store


class TestGCSStore(BackendConformance):
    """The kit on Google Cloud Storage (gcp-storage-emulator on loopback)."""

    @pytest.fixture
    def store(self, gcs_bucket: dict[str, Any]) -> Iterator[ArtifactStore]:
        with ArtifactStore(storage_provider="gcs", **gcs_bucket) as store:
            yield store
