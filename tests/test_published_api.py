"""Code written for the published package (chuk-artifacts 0.11.4) runs unchanged: its import
paths, the keys its callers read, and the argument checks its request models make."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactStore,
    InvalidArgumentError,
    MultipartUploadCompleteRequest,
    MultipartUploadInitRequest,
    MultipartUploadPart,
    StreamDownloadRequest,
    StreamUploadRequest,
)

#: The published package's modules that user code imports from, and the names it imports
#: (its README, its examples and its own test modules). Names of the published package that
#: exist only for its internals (operation classes, response models, namespace API) are not here.
PUBLISHED_IMPORTS = {
    "chuk_artifacts": [
        "ArtifactStore",
        "ArtifactMetadata",
        "StreamUploadRequest",
        "StreamDownloadRequest",
        "MultipartUploadInitRequest",
        "MultipartUploadCompleteRequest",
        "MultipartUploadPart",
        "ArtifactStoreError",
        "ArtifactNotFoundError",
        "ArtifactExpiredError",
        "ArtifactCorruptedError",
        "ProviderError",
        "SessionError",
        "AccessDeniedError",
    ],
    "chuk_artifacts.exceptions": [
        "ArtifactStoreError",
        "ArtifactNotFoundError",
        "ArtifactExpiredError",
        "ArtifactCorruptedError",
        "ProviderError",
        "SessionError",
        "AccessDeniedError",
    ],
    "chuk_artifacts.models": [
        "ArtifactMetadata",
        "StreamUploadRequest",
        "StreamDownloadRequest",
        "MultipartUploadInitRequest",
        "MultipartUploadCompleteRequest",
        "MultipartUploadPart",
    ],
    "chuk_artifacts.store": ["ArtifactStore"],
    "chuk_artifacts.config": ["configure_memory", "configure_filesystem", "configure_s3", "configure_ibm_cos"],
}


@pytest.mark.parametrize(
    "module, name", [(module, name) for module, names in PUBLISHED_IMPORTS.items() for name in names]
)
def test_every_published_import_path_works(module: str, name: str) -> None:
    value = getattr(importlib.import_module(module), name)
    # one class behind every path: `except chuk_artifacts.exceptions.X` catches what the store raises
    assert value is getattr(importlib.import_module("chuk_artifacts"), name, value)


def test_the_exceptions_module_lists_the_hierarchy_of_errors() -> None:
    exceptions = importlib.import_module("chuk_artifacts.exceptions")
    errors = importlib.import_module("chuk_artifacts.errors")
    assert all(getattr(exceptions, name) is getattr(errors, name) for name in exceptions.__all__)
    assert set(exceptions.__all__) == set(errors.__all__)


@pytest.fixture
def store():
    with ArtifactStore() as s:
        yield s


def test_get_stats_has_the_published_totals_and_they_are_real(store: ArtifactStore) -> None:
    assert store.get_stats()["total_artifacts"] == 0
    store.store(b"abc", mime="text/plain", summary="", user_id="alice")
    store.store(b"hello", mime="text/plain", summary="", session_id="s1")
    stats = store.get_stats()
    assert (stats["total_artifacts"], stats["total_bytes"]) == (2, 8)


def test_initiate_multipart_upload_returns_the_session_id(store: ArtifactStore) -> None:
    sid = store.create_session(user_id="alice")
    init = store.initiate_multipart_upload(
        MultipartUploadInitRequest(filename="v.bin", mime_type="video/mp4", session_id=sid, user_id="alice")
    )
    assert init["session_id"] == sid
    user_scoped = store.initiate_multipart_upload(
        MultipartUploadInitRequest(filename="v.bin", user_id="alice", scope="user")
    )
    assert "session_id" in user_scoped


def test_update_file_with_nothing_to_change_is_a_value_error(store: ArtifactStore) -> None:
    aid = store.store(b"abc", mime="text/plain", summary="s", user_id="alice")
    before = store.metadata(aid)
    with pytest.raises(ValueError, match="something to change"):
        store.update_file(aid, user_id="alice")
    assert store.metadata(aid) == before


def test_copy_to_an_invalid_session_id_is_a_value_error_not_a_denial(store: ArtifactStore) -> None:
    aid = store.store(b"abc", mime="text/plain", summary="", session_id="s1")
    with pytest.raises(InvalidArgumentError, match="target_session_id") as caught:
        store.copy_file(aid, target_session_id="../etc", session_id="s1")
    assert isinstance(caught.value, ValueError) and not isinstance(caught.value, AccessDeniedError)
    with pytest.raises(AccessDeniedError):  # a valid but different session is still a denial
        store.copy_file(aid, target_session_id="s2", session_id="s1")


@pytest.mark.parametrize(
    "build",
    [
        lambda: MultipartUploadPart(PartNumber=0, ETag='"e"'),
        lambda: MultipartUploadPart(PartNumber=10001, ETag='"e"'),
        lambda: MultipartUploadPart(PartNumber=True, ETag='"e"'),
        lambda: MultipartUploadPart(PartNumber=1, ETag=""),
        lambda: MultipartUploadCompleteRequest(upload_id="u", parts=[]),
        lambda: MultipartUploadCompleteRequest(upload_id="", parts=[MultipartUploadPart(1, '"e"')]),
        lambda: MultipartUploadCompleteRequest(upload_id="u", parts=[{"PartNumber": 1}]),
        lambda: MultipartUploadInitRequest(filename="", mime_type="text/plain"),
        lambda: MultipartUploadInitRequest(filename="a", mime_type="text/plain", ttl=0),
        lambda: MultipartUploadInitRequest(filename="a", mime_type="text/plain", scope="global"),
        lambda: StreamUploadRequest(data_stream=[b"x"], mime=""),
        lambda: StreamUploadRequest(data_stream=[b"x"], mime="text/plain", ttl=-1),
        lambda: StreamUploadRequest(data_stream=[b"x"], mime="text/plain", chunk_size=0),
        lambda: StreamUploadRequest(data_stream=[b"x"], mime="text/plain", content_length=-1),
        lambda: StreamDownloadRequest(artifact_id=""),
        lambda: StreamDownloadRequest(artifact_id="a", chunk_size=0),
        lambda: StreamDownloadRequest(artifact_id="a", start=-1),
    ],
)
def test_request_objects_refuse_invalid_values_when_built(build) -> None:
    with pytest.raises(InvalidArgumentError):
        build()


@pytest.mark.parametrize(
    "request_, field",
    [
        (MultipartUploadPart(1, '"e"'), "PartNumber"),
        (MultipartUploadInitRequest(filename="a", mime_type="text/plain"), "ttl"),
        (MultipartUploadCompleteRequest(upload_id="u", parts=[MultipartUploadPart(1, '"e"')]), "upload_id"),
        (StreamUploadRequest(data_stream=[b"x"], mime="text/plain"), "mime"),
        (StreamDownloadRequest(artifact_id="a"), "chunk_size"),
    ],
)
def test_request_objects_cannot_be_changed_after_they_are_checked(request_: object, field: str) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(request_, field, 0)


def test_parts_may_be_given_as_dicts_as_the_published_models_coerce_them() -> None:
    parts = [{"PartNumber": 1, "ETag": '"a"'}]
    request = MultipartUploadCompleteRequest(upload_id="u", parts=parts)  # type: ignore[list-item]
    parts.append({"PartNumber": 2, "ETag": '"b"'})  # the request keeps its own copy
    assert request.parts == [MultipartUploadPart(1, '"a"')]
