"""Multipart uploads over real HTTP: parts PUT to signed gateway URLs, verified on completion.

Every store here uses ``multipart_min_part_size=1024`` so parts stay small. On ``s3`` the parts
go to S3's own multipart upload through SigV4 URLs, and S3 verifies them (the test server's
minimum part size is 1 KiB too).
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    AsyncArtifactStore,
    InvalidArgumentError,
    MultipartUploadCompleteRequest,
    MultipartUploadInitRequest,
    MultipartUploadPart,
)

MIN = 1024
NATIVE_PRESIGN = True  # on s3, ``serve`` gives a store whose URLs S3 serves (no gateway)


@pytest.fixture
def gw(serve, backend):
    return serve(backend, multipart_min_part_size=MIN)


def initiate(store, **kwargs):
    kwargs.setdefault("filename", "large_video.mp4")
    kwargs.setdefault("mime_type", "video/mp4")
    kwargs.setdefault("user_id", "alice")
    return store.initiate_multipart_upload(MultipartUploadInitRequest(**kwargs))


def upload_part(store, http, upload_id, number, data, user_id="alice"):
    """PUT one part to its signed URL; return the ETag from the response."""
    url = store.get_part_upload_url(upload_id, number, user_id=user_id)
    r = http("PUT", url, data=data)
    assert r.status == 200, r.body
    return r.headers["ETag"]


def complete(store, upload_id, parts, user_id="alice", **kwargs):
    return store.complete_multipart_upload(
        MultipartUploadCompleteRequest(
            upload_id=upload_id,
            parts=[MultipartUploadPart(PartNumber=n, ETag=e) for n, e in parts],
            user_id=user_id,
            **kwargs,
        )
    )


def part_blobs(store):
    """Parts held for unfinished uploads: part blobs, or the parts S3 itself holds."""
    if not store.blobs.native_multipart:
        return sorted(store.blobs.keys("_uploads/"))
    call, bucket = store.blobs.fs.call_s3, store.blobs.bucket
    held = []
    for upload in call("list_multipart_uploads", Bucket=bucket).get("Uploads", []):
        listed = call("list_parts", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        held += [f"{upload['Key']}/{p['PartNumber']}" for p in listed.get("Parts", [])]
    return sorted(held)


def gateway_only(gw, why):
    if gw.store.blobs.native_multipart:
        pytest.skip(why)


PARTS = [os.urandom(MIN + 100), os.urandom(MIN), os.urandom(300)]


# -- the happy path ---------------------------------------------------------------------------


def test_three_part_upload_assembles_the_concatenated_bytes(gw, http):
    init = initiate(gw.store, scope="user", ttl=3600, meta={"project": "Q4-demo", "resolution": "4K"})
    etags = [upload_part(gw.store, http, init["upload_id"], n, d) for n, d in enumerate(PARTS, 1)]
    aid = complete(gw.store, init["upload_id"], list(zip([1, 2, 3], etags)), summary="4K video")
    whole = b"".join(PARTS)
    assert aid == init["artifact_id"]
    meta = gw.store.metadata(aid, user_id="alice")
    assert meta.bytes == len(whole)
    assert meta.sha256 == hashlib.sha256(whole).hexdigest()
    assert (meta.scope, meta.owner_id) == ("user", "alice")
    assert meta.meta == {"project": "Q4-demo", "resolution": "4K"}
    assert (meta.filename, meta.mime, meta.summary) == ("large_video.mp4", "video/mp4", "4K video")
    assert meta.ttl == 3600
    assert gw.store.retrieve(aid, user_id="alice") == whole


def test_completed_upload_is_served_by_its_presigned_url(gw, http):
    init = initiate(gw.store)
    etags = [upload_part(gw.store, http, init["upload_id"], n, d) for n, d in enumerate(PARTS, 1)]
    aid = complete(gw.store, init["upload_id"], list(zip([1, 2, 3], etags)))
    assert http("GET", gw.store.presign(aid)).body == b"".join(PARTS)


def test_completion_removes_the_part_blobs(gw, http):
    init = initiate(gw.store)
    etags = [upload_part(gw.store, http, init["upload_id"], n, d) for n, d in enumerate(PARTS, 1)]
    assert len(part_blobs(gw.store)) == 3
    complete(gw.store, init["upload_id"], list(zip([1, 2, 3], etags)))
    assert part_blobs(gw.store) == []


def test_part_etag_is_the_quoted_md5_of_the_part(gw, http):
    init = initiate(gw.store)
    etag = upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    assert etag == f'"{hashlib.md5(PARTS[0]).hexdigest()}"'


def test_parts_may_be_uploaded_in_any_order(gw, http):
    init = initiate(gw.store)
    etags = {n: upload_part(gw.store, http, init["upload_id"], n, PARTS[n - 1]) for n in (3, 1, 2)}
    aid = complete(gw.store, init["upload_id"], [(n, etags[n]) for n in (1, 2, 3)])
    assert gw.store.retrieve(aid) == b"".join(PARTS)


def test_part_numbers_may_have_gaps(gw, http):
    init = initiate(gw.store)
    e2 = upload_part(gw.store, http, init["upload_id"], 2, PARTS[0])
    e7 = upload_part(gw.store, http, init["upload_id"], 7, PARTS[2])
    aid = complete(gw.store, init["upload_id"], [(2, e2), (7, e7)])
    assert gw.store.retrieve(aid) == PARTS[0] + PARTS[2]


def test_single_small_part_is_a_valid_upload(gw, http):
    init = initiate(gw.store)
    etag = upload_part(gw.store, http, init["upload_id"], 1, b"tiny")
    aid = complete(gw.store, init["upload_id"], [(1, etag)])
    assert gw.store.retrieve(aid) == b"tiny"


def test_etags_are_accepted_with_or_without_quotes(gw, http):
    init = initiate(gw.store)
    etag = upload_part(gw.store, http, init["upload_id"], 1, b"tiny")
    aid = complete(gw.store, init["upload_id"], [(1, etag.strip('"'))])
    assert gw.store.retrieve(aid) == b"tiny"


def test_artifact_is_not_visible_before_completion(gw, http):
    init = initiate(gw.store)
    upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(init["artifact_id"])
    assert list(gw.store.search()) == []


def test_reuploading_a_part_replaces_it(gw, http):
    init = initiate(gw.store)
    first = upload_part(gw.store, http, init["upload_id"], 1, b"a" * MIN)
    second = upload_part(gw.store, http, init["upload_id"], 1, b"b" * MIN)
    assert second != first
    last = upload_part(gw.store, http, init["upload_id"], 2, b"end")
    aid = complete(gw.store, init["upload_id"], [(1, second), (2, last)])
    assert gw.store.retrieve(aid) == b"b" * MIN + b"end"
    assert len(part_blobs(gw.store)) == 0


def test_completion_with_a_replaced_parts_old_etag_fails(gw, http):
    init = initiate(gw.store)
    first = upload_part(gw.store, http, init["upload_id"], 1, b"a" * MIN)
    upload_part(gw.store, http, init["upload_id"], 1, b"b" * MIN)
    with pytest.raises(InvalidArgumentError):
        complete(gw.store, init["upload_id"], [(1, first)])
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(init["artifact_id"])


# -- refused completions ------------------------------------------------------------------------


def test_wrong_etag_is_refused_and_registers_nothing(gw, http):
    init = initiate(gw.store)
    etags = [upload_part(gw.store, http, init["upload_id"], n, d) for n, d in enumerate(PARTS, 1)]
    with pytest.raises(InvalidArgumentError):
        complete(gw.store, init["upload_id"], [(1, etags[0]), (2, '"etag-part-2"'), (3, etags[2])])
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(init["artifact_id"])
    assert list(gw.store.search()) == []


def test_upload_is_still_completable_after_a_wrong_etag(gw, http):
    init = initiate(gw.store)
    etags = [upload_part(gw.store, http, init["upload_id"], n, d) for n, d in enumerate(PARTS, 1)]
    with pytest.raises(InvalidArgumentError):
        complete(gw.store, init["upload_id"], [(1, "etag-part-1"), (2, etags[1]), (3, etags[2])])
    aid = complete(gw.store, init["upload_id"], list(zip([1, 2, 3], etags)))
    assert gw.store.retrieve(aid) == b"".join(PARTS)


def test_seed_style_mock_etags_are_refused(gw, http):
    init = initiate(gw.store)
    for n, d in enumerate(PARTS, 1):
        upload_part(gw.store, http, init["upload_id"], n, d)
    with pytest.raises(InvalidArgumentError):
        complete(gw.store, init["upload_id"], [(n, f"etag-part-{n}") for n in (1, 2, 3)])


def test_listing_a_part_never_uploaded_fails_and_registers_nothing(gw, http):
    init = initiate(gw.store)
    e1 = upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    e3 = upload_part(gw.store, http, init["upload_id"], 3, PARTS[2])
    with pytest.raises(InvalidArgumentError):
        complete(gw.store, init["upload_id"], [(1, e1), (2, e1), (3, e3)])
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(init["artifact_id"])


def test_completing_with_no_parts_uploaded_fails(gw):
    init = initiate(gw.store)
    with pytest.raises(InvalidArgumentError):
        complete(gw.store, init["upload_id"], [(1, '"0"')])
    with pytest.raises(InvalidArgumentError):
        complete(gw.store, init["upload_id"], [])
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(init["artifact_id"])


@pytest.mark.parametrize("order", [[2, 1, 3], [1, 3, 2], [3, 2, 1]], ids=str)
def test_parts_listed_out_of_order_are_refused(gw, http, order):
    init = initiate(gw.store)
    etags = {n: upload_part(gw.store, http, init["upload_id"], n, PARTS[n - 1]) for n in (1, 2, 3)}
    with pytest.raises(InvalidArgumentError):
        complete(gw.store, init["upload_id"], [(n, etags[n]) for n in order])
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(init["artifact_id"])


def test_parts_listed_twice_are_refused(gw, http):
    init = initiate(gw.store)
    etags = {n: upload_part(gw.store, http, init["upload_id"], n, PARTS[n - 1]) for n in (1, 2, 3)}
    with pytest.raises(InvalidArgumentError):
        complete(gw.store, init["upload_id"], [(1, etags[1]), (2, etags[2]), (2, etags[2]), (3, etags[3])])
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(init["artifact_id"])


def test_non_last_part_below_the_minimum_is_refused(gw, http):
    init = initiate(gw.store)
    e1 = upload_part(gw.store, http, init["upload_id"], 1, b"x" * (MIN - 1))
    e2 = upload_part(gw.store, http, init["upload_id"], 2, b"y" * MIN)
    with pytest.raises(InvalidArgumentError):
        complete(gw.store, init["upload_id"], [(1, e1), (2, e2)])
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(init["artifact_id"])


def test_non_last_part_of_exactly_the_minimum_is_accepted(gw, http):
    init = initiate(gw.store)
    e1 = upload_part(gw.store, http, init["upload_id"], 1, b"x" * MIN)
    e2 = upload_part(gw.store, http, init["upload_id"], 2, b"y")
    aid = complete(gw.store, init["upload_id"], [(1, e1), (2, e2)])
    assert gw.store.metadata(aid).bytes == MIN + 1


def test_completing_twice_raises_and_keeps_the_artifact(gw, http):
    init = initiate(gw.store)
    etags = [upload_part(gw.store, http, init["upload_id"], n, d) for n, d in enumerate(PARTS, 1)]
    parts = list(zip([1, 2, 3], etags))
    aid = complete(gw.store, init["upload_id"], parts)
    with pytest.raises(ArtifactNotFoundError):
        complete(gw.store, init["upload_id"], parts)
    assert gw.store.retrieve(aid) == b"".join(PARTS)
    assert len(gw.store.search()) == 1


def test_part_url_of_a_completed_upload_is_refused(gw, http):
    init = initiate(gw.store)
    url = gw.store.get_part_upload_url(init["upload_id"], 2, user_id="alice")
    etag = upload_part(gw.store, http, init["upload_id"], 1, b"only")
    aid = complete(gw.store, init["upload_id"], [(1, etag)])
    status = http("PUT", url, data=b"late part").status
    assert status == 404 if gw.server else status >= 400  # moto answers 500 (S3: 404, test_s3.py)
    assert part_blobs(gw.store) == []
    assert gw.store.retrieve(aid) == b"only"


def test_parts_given_as_dicts_are_accepted(gw, http):
    init = initiate(gw.store)
    etag = upload_part(gw.store, http, init["upload_id"], 1, b"dict part")
    aid = gw.store.complete_multipart_upload(
        MultipartUploadCompleteRequest(
            upload_id=init["upload_id"], parts=[{"PartNumber": 1, "ETag": etag}], user_id="alice"
        )
    )
    assert gw.store.retrieve(aid) == b"dict part"


def test_concurrent_completions_produce_one_artifact(gw, http):
    import threading

    init = initiate(gw.store)
    etags = [upload_part(gw.store, http, init["upload_id"], n, d) for n, d in enumerate(PARTS, 1)]
    parts = list(zip([1, 2, 3], etags))
    barrier = threading.Barrier(4)
    outcomes = []

    def finish():
        barrier.wait()
        try:
            outcomes.append(complete(gw.store, init["upload_id"], parts))
        except ArtifactStoreError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=finish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o for o in outcomes if isinstance(o, str)] == [init["artifact_id"]]
    assert all(not isinstance(o, InvalidArgumentError) for o in outcomes)
    assert gw.store.retrieve(init["artifact_id"]) == b"".join(PARTS)
    assert len(gw.store.search()) == 1
    assert part_blobs(gw.store) == []


@pytest.mark.parametrize("expires", [0, 7 * 86400 + 1])
def test_part_url_rejects_a_bad_expiry(gw, expires):
    init = initiate(gw.store)
    with pytest.raises(InvalidArgumentError):
        gw.store.get_part_upload_url(init["upload_id"], 1, expires=expires, user_id="alice")


def test_another_session_cannot_use_a_session_scoped_upload(gw):
    init = initiate(gw.store, user_id=None, session_id="sess-one")
    with pytest.raises(AccessDeniedError):
        gw.store.get_part_upload_url(init["upload_id"], 1, session_id="sess-two")
    assert gw.store.get_part_upload_url(init["upload_id"], 1, session_id="sess-one")


# -- abort and cleanup ----------------------------------------------------------------------------


def test_abort_removes_the_part_blobs(gw, http):
    init = initiate(gw.store)
    upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    upload_part(gw.store, http, init["upload_id"], 2, PARTS[1])
    assert len(part_blobs(gw.store)) == 2
    assert gw.store.abort_multipart_upload(init["upload_id"], user_id="alice") is True
    assert part_blobs(gw.store) == []


def test_aborted_upload_is_gone(gw, http):
    init = initiate(gw.store)
    etag = upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    gw.store.abort_multipart_upload(init["upload_id"], user_id="alice")
    with pytest.raises(ArtifactNotFoundError):
        gw.store.get_part_upload_url(init["upload_id"], 2, user_id="alice")
    with pytest.raises(ArtifactNotFoundError):
        complete(gw.store, init["upload_id"], [(1, etag)])
    with pytest.raises(ArtifactNotFoundError):
        gw.store.abort_multipart_upload(init["upload_id"], user_id="alice")
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(init["artifact_id"])


def test_part_url_issued_before_abort_no_longer_stores_anything(gw, http):
    init = initiate(gw.store)
    url = gw.store.get_part_upload_url(init["upload_id"], 1, user_id="alice")
    gw.store.abort_multipart_upload(init["upload_id"], user_id="alice")
    status = http("PUT", url, data=PARTS[0]).status
    assert status == 404 if gw.server else status >= 400  # moto answers 500 (S3: 404, test_s3.py)
    assert part_blobs(gw.store) == []


def test_stale_uploads_are_removed_by_cleanup_after_their_window(serve, backend, clock, http):
    gw = serve(backend, multipart_min_part_size=MIN)
    init = initiate(gw.store)
    upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    upload_part(gw.store, http, init["upload_id"], 2, PARTS[1])
    clock.advance(gw.store.settings.upload_ttl + 1)
    result = gw.store.cleanup_expired_sessions()
    assert result.uploads == 1
    assert part_blobs(gw.store) == []
    with pytest.raises(ArtifactNotFoundError):
        gw.store.get_part_upload_url(init["upload_id"], 3, user_id="alice")


def test_cleanup_leaves_uploads_within_their_window(serve, backend, clock, http):
    gw = serve(backend, multipart_min_part_size=MIN)
    init = initiate(gw.store, scope="user")
    etag = upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    clock.advance(gw.store.settings.upload_ttl - 60)
    assert gw.store.cleanup_expired_sessions().uploads == 0
    assert len(part_blobs(gw.store)) == 1
    aid = complete(gw.store, init["upload_id"], [(1, etag)])
    assert gw.store.retrieve(aid, user_id="alice") == PARTS[0]


def test_upload_past_its_window_cannot_be_completed_even_before_cleanup(serve, backend, clock, http):
    gw = serve(backend, multipart_min_part_size=MIN)
    init = initiate(gw.store)
    etag = upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    clock.advance(gw.store.settings.upload_ttl + 1)
    with pytest.raises(ArtifactNotFoundError):
        complete(gw.store, init["upload_id"], [(1, etag)])


def test_upload_window_follows_the_upload_ttl_setting(serve, backend, clock, http):
    gw = serve(backend, multipart_min_part_size=MIN, upload_ttl=600)
    init = initiate(gw.store)
    upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    clock.advance(601)
    assert gw.store.cleanup_expired_sessions().uploads == 1
    assert part_blobs(gw.store) == []


def test_part_in_flight_when_the_upload_completes_leaves_no_orphan(gw, http, slow_put, writing):
    gateway_only(gw, "S3 parts never pass through the store; S3 refuses parts of finished uploads")
    init = initiate(gw.store)
    etag = upload_part(gw.store, http, init["upload_id"], 1, b"first")
    url = gw.store.get_part_upload_url(init["upload_id"], 2, user_id="alice")
    opened = writing(gw.store, "_uploads/")
    slow = slow_put(url, b"L" * 4000).start()
    assert opened.wait(10)
    aid = complete(gw.store, init["upload_id"], [(1, etag)])
    status, _ = slow.finish()
    assert status >= 400
    assert part_blobs(gw.store) == []
    assert gw.store.retrieve(aid) == b"first"


def test_part_in_flight_when_the_upload_is_aborted_leaves_no_orphan(gw, http, slow_put, writing):
    gateway_only(gw, "S3 parts never pass through the store; S3 refuses parts of aborted uploads")
    init = initiate(gw.store)
    url = gw.store.get_part_upload_url(init["upload_id"], 1, user_id="alice")
    opened = writing(gw.store, "_uploads/")
    slow = slow_put(url, b"L" * 4000).start()
    assert opened.wait(10)
    assert gw.store.abort_multipart_upload(init["upload_id"], user_id="alice")
    status, _ = slow.finish()
    assert status >= 400
    assert part_blobs(gw.store) == []


# -- access -----------------------------------------------------------------------------------------


def test_another_user_cannot_get_part_urls(gw):
    init = initiate(gw.store, user_id="alice")
    with pytest.raises(AccessDeniedError):
        gw.store.get_part_upload_url(init["upload_id"], 1, user_id="bob")


def test_another_user_cannot_complete(gw, http):
    init = initiate(gw.store, user_id="alice")
    etag = upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    with pytest.raises(AccessDeniedError):
        complete(gw.store, init["upload_id"], [(1, etag)], user_id="bob")
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(init["artifact_id"])
    assert complete(gw.store, init["upload_id"], [(1, etag)], user_id="alice") == init["artifact_id"]


def test_another_user_cannot_abort(gw, http):
    init = initiate(gw.store, user_id="alice")
    etag = upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    with pytest.raises(AccessDeniedError):
        gw.store.abort_multipart_upload(init["upload_id"], user_id="bob")
    assert len(part_blobs(gw.store)) == 1
    assert complete(gw.store, init["upload_id"], [(1, etag)]) == init["artifact_id"]


def test_users_cannot_start_sandbox_scoped_uploads(gw):
    with pytest.raises(AccessDeniedError):
        initiate(gw.store, user_id="alice", scope="sandbox")


def test_admin_sandbox_scoped_upload_is_readable_by_everyone(gw, http):
    init = initiate(gw.store, user_id=None, scope="sandbox", filename="shared_assets.zip", mime_type="application/zip")
    etag = upload_part(gw.store, http, init["upload_id"], 1, b"shared", user_id=None)
    aid = complete(gw.store, init["upload_id"], [(1, etag)], user_id=None)
    assert gw.store.retrieve(aid, user_id="bob") == b"shared"
    assert gw.store.metadata(aid).scope == "sandbox"


@pytest.mark.parametrize("number", [0, 10001, -1, True, 1.0, "1"])
def test_invalid_part_numbers_are_rejected(gw, number):
    init = initiate(gw.store)
    with pytest.raises(InvalidArgumentError):
        gw.store.get_part_upload_url(init["upload_id"], number, user_id="alice")


@pytest.mark.parametrize("number", [1, 10000])
def test_part_numbers_at_the_limits_are_accepted(gw, http, number):
    init = initiate(gw.store)
    etag = upload_part(gw.store, http, init["upload_id"], number, b"edge")
    aid = complete(gw.store, init["upload_id"], [(number, etag)])
    assert gw.store.retrieve(aid) == b"edge"


def test_completion_listing_an_invalid_part_number_is_rejected(gw, http):
    init = initiate(gw.store)
    etag = upload_part(gw.store, http, init["upload_id"], 1, b"x")
    with pytest.raises(InvalidArgumentError):
        complete(gw.store, init["upload_id"], [(0, etag)])


def test_unknown_upload_id_is_not_found(gw):
    with pytest.raises(ArtifactNotFoundError):
        gw.store.get_part_upload_url("f" * 32, 1, user_id="alice")


def test_part_url_is_bound_to_its_part_number(gw, http):
    from urllib.parse import urlsplit, urlunsplit

    gateway_only(gw, "moto accepts any signature; SigV4 part URLs are checked against SeaweedFS")
    init = initiate(gw.store)
    url = gw.store.get_part_upload_url(init["upload_id"], 1, user_id="alice")
    parts = urlsplit(url)
    other = urlunsplit(parts._replace(path=parts.path.replace("/part/1", "/part/2")))
    assert http("PUT", other, data=b"x").status == 403
    assert part_blobs(gw.store) == []


def test_mime_with_line_breaks_is_rejected_at_initiation(gw):
    with pytest.raises(InvalidArgumentError):
        initiate(gw.store, mime_type="video/mp4\r\nX-Evil: 1")


# -- the seed README's workflow through the async facade ----------------------------------------


def test_seed_multipart_workflow_runs_through_the_async_facade(gw, http):
    data_parts = [os.urandom(MIN * 2), os.urandom(MIN * 2), os.urandom(MIN // 2)]

    async def main():
        store = AsyncArtifactStore(sync_store=gw.store)
        # Step 1: Initiate multipart upload
        init_request = MultipartUploadInitRequest(
            filename="large_video.mp4",
            mime_type="video/mp4",
            user_id="alice",
            scope="user",
            ttl=3600,
            meta={"project": "Q4-demo", "resolution": "4K"},
        )
        result = await store.initiate_multipart_upload(init_request)
        upload_id = result["upload_id"]
        artifact_id = result["artifact_id"]

        # Step 2: presigned URL per part; the client PUTs the part and keeps the ETag
        parts = []
        for part_num in range(1, len(data_parts) + 1):
            presigned_url = await store.get_part_upload_url(
                upload_id=upload_id, part_number=part_num, expires=3600, user_id="alice"
            )
            response = await asyncio.to_thread(http, "PUT", presigned_url, data_parts[part_num - 1])
            parts.append(MultipartUploadPart(PartNumber=part_num, ETag=response.headers["ETag"]))

        # Step 3: Complete the multipart upload
        complete_request = MultipartUploadCompleteRequest(
            upload_id=upload_id, parts=parts, summary="4K video upload (multipart)", user_id="alice"
        )
        final_artifact_id = await store.complete_multipart_upload(complete_request)
        metadata = await store.metadata(final_artifact_id)
        content = await store.retrieve(final_artifact_id, user_id="alice")
        return artifact_id, final_artifact_id, metadata, content

    artifact_id, final_id, metadata, content = asyncio.run(main())
    whole = b"".join(data_parts)
    assert final_id == artifact_id
    assert metadata.bytes == len(whole)
    assert metadata.scope == "user"
    assert metadata.summary == "4K video upload (multipart)"
    assert metadata.sha256 == hashlib.sha256(whole).hexdigest()
    assert content == whole


def test_seed_abort_workflow_runs_through_the_async_facade(gw, http):
    async def main():
        store = AsyncArtifactStore(sync_store=gw.store)
        init_request = MultipartUploadInitRequest(filename="large_file.mp4", mime_type="video/mp4")
        result = await store.initiate_multipart_upload(init_request)
        upload_id = result["upload_id"]
        url = await store.get_part_upload_url(upload_id, 1)
        await asyncio.to_thread(http, "PUT", url, b"partial")
        aborted = await store.abort_multipart_upload(upload_id)
        try:
            await store.get_part_upload_url(upload_id, 2)
        except ArtifactStoreError as exc:
            return aborted, exc
        return aborted, None

    aborted, error = asyncio.run(main())
    assert aborted is True
    assert isinstance(error, ArtifactNotFoundError)
    assert part_blobs(gw.store) == []


# -- a part uploaded again ------------------------------------------------------------------------


def test_a_part_uploaded_again_replaces_it_and_its_old_bytes(gw, http):
    gateway_only(gw, "S3 keeps its own parts")
    init = initiate(gw.store)
    first = upload_part(gw.store, http, init["upload_id"], 1, PARTS[0])
    again = os.urandom(len(PARTS[0]))  # same size, other bytes
    second = upload_part(gw.store, http, init["upload_id"], 1, again)
    last = upload_part(gw.store, http, init["upload_id"], 2, PARTS[2])
    assert first != second and len(part_blobs(gw.store)) == 2  # the first attempt's bytes are gone
    with pytest.raises(InvalidArgumentError, match="ETag"):
        complete(gw.store, init["upload_id"], [(1, first), (2, last)])
    aid = complete(gw.store, init["upload_id"], [(1, second), (2, last)])
    assert gw.store.retrieve(aid, user_id="alice") == again + PARTS[2]
    assert part_blobs(gw.store) == []


def test_a_part_uploaded_during_completion_cannot_change_what_is_assembled(gw, http):
    """Completion checked part 1's ETag; a PUT of other bytes for part 1 while the parts are
    being read must neither change the artifact nor be recorded."""
    gateway_only(gw, "S3 assembles its own parts")
    store = gw.store
    init = initiate(store)
    etags = [upload_part(store, http, init["upload_id"], n, d) for n, d in enumerate(PARTS, 1)]
    url = store.get_part_upload_url(init["upload_id"], 1, user_id="alice")
    sneaked = os.urandom(len(PARTS[0]))
    responses = []
    original_open_read = store.blobs.open_read

    def open_read(key):
        if key.startswith("_uploads/") and not responses:
            responses.append(http("PUT", url, data=sneaked))
        return original_open_read(key)

    store.blobs.open_read = open_read
    aid = complete(store, init["upload_id"], list(zip([1, 2, 3], etags)))
    store.blobs.open_read = original_open_read
    assert responses and responses[0].status == 409  # the upload was already being completed
    assert store.retrieve(aid, user_id="alice") == b"".join(PARTS)
    assert part_blobs(store) == []
