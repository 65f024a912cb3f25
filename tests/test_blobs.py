"""The byte layer: memory stores are private, local writes are atomic and confined to the root."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from chuk_artifacts.blobs import LocalBlobs, MemoryBlobs
from chuk_artifacts.errors import ProviderError

KEY = "grid/sbx/shared/a1"


class Boom(Exception):
    """Raised by a test in the middle of a write."""


@pytest.fixture
def local(tmp_path: Path) -> LocalBlobs:
    return LocalBlobs(tmp_path / "root")


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# -- memory: one private filesystem per store ------------------------------------------------


def test_memory_blobs_of_two_instances_are_isolated():
    first, second = MemoryBlobs(), MemoryBlobs()
    first.put(KEY, b"first")

    assert second.exists(KEY) is False
    assert list(second.keys()) == []
    with pytest.raises(FileNotFoundError):
        second.get(KEY)


def test_memory_blobs_of_two_stores_are_isolated(make_store):
    one, two = make_store("memory"), make_store("memory")
    artifact_id = one.store(b"secret", mime="text/plain", scope="sandbox")
    key = one.metadata(artifact_id).key

    assert one.blobs.get(key) == b"secret"
    assert two.blobs.exists(key) is False


def test_memory_blobs_are_invisible_to_fsspecs_global_memory_filesystem():
    blobs = MemoryBlobs()
    blobs.put(KEY, b"private")
    global_fs = fsspec.filesystem("memory")

    assert not global_fs.exists(blobs.path(KEY))
    assert not global_fs.exists(KEY)
    assert all(KEY not in path for path in global_fs.find("/"))


def test_memory_blobs_do_not_write_into_fsspecs_global_store():
    from fsspec.implementations.memory import MemoryFileSystem

    before = set(MemoryFileSystem.store)
    MemoryBlobs().put(KEY, b"private")

    assert set(MemoryFileSystem.store) == before


def test_memory_open_write_publishes_nothing_when_the_writer_fails():
    blobs = MemoryBlobs()
    blobs.put(KEY, b"old")

    with pytest.raises(Boom):
        with blobs.open_write(KEY) as f:
            f.write(b"new but never finished")
            raise Boom

    assert blobs.get(KEY) == b"old"


def test_memory_close_drops_every_object():
    blobs = MemoryBlobs()
    blobs.put(KEY, b"x")
    blobs.close()
    assert blobs.exists(KEY) is False


# -- local: atomic writes ----------------------------------------------------------------------


def test_local_open_write_failure_keeps_previous_content(local: LocalBlobs):
    local.put(KEY, b"previous")

    with pytest.raises(Boom):
        with local.open_write(KEY) as f:
            f.write(b"half of the new content")
            raise Boom

    assert local.get(KEY) == b"previous"


def test_local_open_write_failure_leaves_no_temp_files(local: LocalBlobs):
    local.put(KEY, b"previous")

    with pytest.raises(Boom):
        with local.open_write(KEY) as f:
            f.write(b"partial")
            raise Boom

    assert files_under(Path(local.root_dir)) == [Path(local.path(KEY))]


def test_local_open_write_failure_on_a_new_key_creates_no_object(local: LocalBlobs):
    with pytest.raises(Boom):
        with local.open_write(KEY) as f:
            f.write(b"partial")
            raise Boom

    assert local.exists(KEY) is False
    assert files_under(Path(local.root_dir)) == []


def test_local_content_is_invisible_until_open_write_commits(local: LocalBlobs):
    local.put(KEY, b"old")
    with local.open_write(KEY) as f:
        f.write(b"new")
        assert local.get(KEY) == b"old"
    assert local.get(KEY) == b"new"


def test_local_successful_write_leaves_no_temp_files(local: LocalBlobs):
    local.put(KEY, b"one")
    local.put(KEY, b"two")
    assert files_under(Path(local.root_dir)) == [Path(local.path(KEY))]


# -- put / delete / keys on both ---------------------------------------------------------------


@pytest.fixture(params=["memory", "local"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path):
    b = MemoryBlobs() if request.param == "memory" else LocalBlobs(tmp_path / "root")
    yield b
    b.close()


def test_put_replaces_content(blobs):
    blobs.put(KEY, b"a much longer first version")
    blobs.put(KEY, b"short")
    assert blobs.get(KEY) == b"short"
    assert blobs.size(KEY) == 5


def test_put_of_empty_bytes_stores_an_empty_object(blobs):
    blobs.put(KEY, b"")
    assert blobs.exists(KEY)
    assert blobs.get(KEY) == b""


def test_delete_is_idempotent(blobs):
    blobs.put(KEY, b"x")
    assert blobs.delete(KEY) is True
    assert blobs.delete(KEY) is False
    assert blobs.exists(KEY) is False


def test_get_of_a_missing_key_raises_file_not_found_not_provider_error(blobs):
    with pytest.raises(FileNotFoundError):
        blobs.get("grid/sbx/shared/missing")


def test_size_of_a_missing_key_is_none(blobs):
    assert blobs.size("grid/sbx/shared/missing") is None


def test_keys_lists_exactly_what_exists(blobs):
    keys = {"grid/s/shared/a", "grid/s/users/u/b", "grid/s/sessions/x/c"}
    for key in keys:
        blobs.put(key, b"x")
    blobs.delete("grid/s/shared/a")

    assert set(blobs.keys()) == keys - {"grid/s/shared/a"}


def test_keys_honours_the_prefix(blobs):
    blobs.put("grid/s/shared/a", b"x")
    blobs.put("grid/t/shared/b", b"x")
    assert list(blobs.keys("grid/t/")) == ["grid/t/shared/b"]


def test_keys_of_an_empty_store_is_empty(blobs):
    assert list(blobs.keys()) == []


def test_copy_duplicates_the_bytes(blobs):
    blobs.put(KEY, b"payload")
    blobs.copy(KEY, "grid/sbx/shared/a2")
    assert blobs.get("grid/sbx/shared/a2") == b"payload"
    assert blobs.get(KEY) == b"payload"


# -- local: confinement to the root ------------------------------------------------------------

TRAVERSALS = [
    "../escape",
    "../../etc/passwd",
    "grid/../../escape",
    "grid/sbx/../../../escape",
    "/etc/passwd",
    "/tmp/absolute",
    "..",
    ".",
    "",
    "grid/..",
]


@pytest.mark.parametrize("key", TRAVERSALS)
def test_local_path_rejects_keys_outside_the_root(local: LocalBlobs, key: str):
    with pytest.raises(ProviderError):
        local.path(key)


@pytest.mark.parametrize("key", ["../escape", "grid/../../escape", "/tmp/absolute-chuk"])
def test_local_put_refuses_traversal_and_writes_nothing(local: LocalBlobs, tmp_path: Path, key: str):
    with pytest.raises(ProviderError):
        local.put(key, b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["root"]
    assert files_under(tmp_path) == []


def test_local_dotted_names_inside_the_root_are_allowed(local: LocalBlobs):
    local.put("grid/sbx/shared/a..b", b"x")
    assert local.path("grid/sbx/shared/a..b").startswith(local.root_dir + os.sep)
    assert local.get("grid/sbx/shared/a..b") == b"x"
