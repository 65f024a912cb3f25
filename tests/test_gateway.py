"""Presigned URLs over real HTTP: the WSGI gateway on every backend of ``BACKENDS``
whose URLs are gateway URLs (memory, filesystem, sqlite …; S3's native URLs skip here).

Downloads (headers, ETag, Range, HEAD), refusal of tampered / expired / re-targeted URLs,
presigned uploads (register and auto-register), secrets that survive a restart, header safety.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

import pytest

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidArgumentError,
)
from chuk_artifacts.signing import UrlSigner

DATA = bytes(range(256)) * 4 + b"tail-of-the-artifact"  # 1044 bytes, every byte value


@pytest.fixture
def gw(serve, backend):
    return serve(backend)


def put_artifact(store, data=DATA, **kwargs):
    kwargs.setdefault("mime", "application/x-test")
    kwargs.setdefault("user_id", "alice")
    return store.store(data, **kwargs)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {**query_of(url), **changes}
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def filename_from(disposition: str) -> str | None:
    """The filename a browser takes from the header (RFC 6266: ``filename*`` wins)."""
    star = re.search(r"(?:^|;)\s*filename\*=([^;]*)", disposition)
    if star:
        charset, _, encoded = star.group(1).strip().partition("''")
        assert charset.upper() == "UTF-8"
        return unquote(encoded, encoding="utf-8", errors="strict")
    plain = re.search(r'(?:^|;)\s*filename="([^"]*)"', disposition)
    return plain.group(1) if plain else None


def blob_keys(store, prefix: str = "") -> list[str]:
    return sorted(store.blobs.keys(prefix))


# -- downloads --------------------------------------------------------------------------------


def test_presigned_get_returns_the_exact_bytes(gw, http):
    aid = put_artifact(gw.store)
    r = http("GET", gw.store.presign(aid))
    assert r.status == 200
    assert r.body == DATA
    assert r.headers["Content-Length"] == str(len(DATA))


def test_presigned_url_starts_with_the_public_url(gw):
    aid = put_artifact(gw.store)
    assert gw.store.presign(aid).startswith(gw.url + "/")


def test_presigned_get_sends_the_artifact_mime_as_content_type(gw, http):
    aid = put_artifact(gw.store, mime="image/png")
    r = http("GET", gw.store.presign(aid))
    assert r.headers["Content-Type"] == "image/png"


def test_presigned_get_etag_is_the_quoted_sha256(gw, http):
    aid = put_artifact(gw.store)
    r = http("GET", gw.store.presign(aid))
    assert r.headers["ETag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'


def test_presigned_get_content_disposition_names_the_file(gw, http):
    aid = put_artifact(gw.store, filename="report-2024.pdf")
    r = http("GET", gw.store.presign(aid))
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert 'filename="report-2024.pdf"' in disposition
    assert filename_from(disposition) == "report-2024.pdf"


def test_non_ascii_filename_is_sent_as_rfc5987_filename_star(gw, http):
    name = "résumé 日本.pdf"
    aid = put_artifact(gw.store, filename=name)
    r = http("GET", gw.store.presign(aid))
    disposition = r.headers["Content-Disposition"]
    disposition.encode("ascii")  # the header itself is pure ASCII
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.pdf" in disposition
    assert filename_from(disposition) == name


def test_filename_with_quotes_and_semicolons_gives_one_safe_disposition_header(gw, http):
    name = 'evil"; filename="x.exe"; a=b.txt'
    aid = put_artifact(gw.store, filename=name)
    r = http("GET", gw.store.presign(aid))
    dispositions = r.headers.get_all("Content-Disposition")
    assert len(dispositions) == 1
    value = dispositions[0]
    # exactly the two parameters the gateway writes, and the quoted fallback has no quote inside
    params = [p.strip() for p in value.split(";")]
    assert params[0] == "attachment"
    assert len(params) == 3
    assert params[1].startswith('filename="') and params[1].endswith('"')
    assert '"' not in params[1][len('filename="') : -1]
    assert params[2].startswith("filename*=UTF-8''")
    assert filename_from(value) == name
    assert r.headers.get_all("Content-Type") == ["application/x-test"]


def test_if_none_match_with_the_etag_answers_304_without_body(gw, http):
    aid = put_artifact(gw.store)
    url = gw.store.presign(aid)
    etag = http("GET", url).headers["ETag"]
    r = http("GET", url, headers={"If-None-Match": etag})
    assert r.status == 304
    assert r.body == b""
    assert r.headers["ETag"] == etag


def test_if_none_match_with_another_etag_answers_200(gw, http):
    aid = put_artifact(gw.store)
    r = http("GET", gw.store.presign(aid), headers={"If-None-Match": '"0000"'})
    assert r.status == 200
    assert r.body == DATA


def test_if_none_match_with_a_list_containing_the_etag_answers_304(gw, http):
    aid = put_artifact(gw.store)
    url = gw.store.presign(aid)
    etag = http("HEAD", url).headers["ETag"]
    assert http("GET", url, headers={"If-None-Match": f'"other", {etag}'}).status == 304
    assert http("GET", url, headers={"If-None-Match": f"W/{etag}"}).status == 304


def test_head_with_a_range_gives_partial_headers_and_no_body(gw, http):
    aid = put_artifact(gw.store)
    r = http("HEAD", gw.store.presign(aid), headers={"Range": "bytes=0-9"})
    assert r.status == 206
    assert r.body == b""
    assert r.headers["Content-Range"] == f"bytes 0-9/{len(DATA)}"


def test_gateway_of_a_strict_store_serves_urls_presigned_with_an_identity(serve, backend, http):
    gw = serve(backend, strict=True)
    aid = gw.store.store(DATA, mime="text/plain", user_id="alice", scope="user")
    url = gw.store.presign(aid, user_id="alice")
    assert http("GET", url).body == DATA
    upload_url, upload_aid = gw.store.presign_upload(user_id="alice", filename="s.bin")
    assert http("PUT", upload_url, data=b"strict").status == 200
    gw.store.register_uploaded_artifact(upload_aid, user_id="alice")
    assert gw.store.retrieve(upload_aid, user_id="alice") == b"strict"


def test_head_gives_the_headers_and_no_body(gw, http):
    aid = put_artifact(gw.store, mime="text/csv", filename="t.csv")
    r = http("HEAD", gw.store.presign(aid))
    assert r.status == 200
    assert r.body == b""
    assert r.headers["Content-Length"] == str(len(DATA))
    assert r.headers["Content-Type"] == "text/csv"
    assert r.headers["ETag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert filename_from(r.headers["Content-Disposition"]) == "t.csv"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-9", 0, 10), ("bytes=10-", 10, len(DATA)), ("bytes=-5", len(DATA) - 5, len(DATA))],
    ids=["first-ten", "open-ended", "suffix"],
)
def test_range_request_answers_206_with_the_slice(gw, http, header, start, end):
    aid = put_artifact(gw.store)
    r = http("GET", gw.store.presign(aid), headers={"Range": header})
    assert r.status == 206
    assert r.body == DATA[start:end]
    assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert r.headers["Content-Length"] == str(end - start)


def test_range_past_the_end_is_clamped_to_the_object(gw, http):
    aid = put_artifact(gw.store)
    r = http("GET", gw.store.presign(aid), headers={"Range": f"bytes=1040-{len(DATA) + 100}"})
    assert r.status == 206
    assert r.body == DATA[1040:]
    assert r.headers["Content-Range"] == f"bytes 1040-{len(DATA) - 1}/{len(DATA)}"


@pytest.mark.parametrize("header", [f"bytes={len(DATA)}-", "bytes=5000-6000", "bytes=-0", "bytes=9-3"])
def test_unsatisfiable_range_answers_416(gw, http, header):
    aid = put_artifact(gw.store)
    r = http("GET", gw.store.presign(aid), headers={"Range": header})
    assert r.status == 416
    assert r.headers["Content-Range"] == f"bytes */{len(DATA)}"


HUGE = "9" * 5000  # int() of more than 4300 digits raises ValueError (CPython's limit)


@pytest.mark.parametrize(
    ("header", "status", "body"),
    [
        (f"bytes={HUGE}-", 416, b""),  # starts past the end
        (f"bytes=0-{HUGE}", 206, DATA),  # ends past the end: clamped
        (f"bytes=-{HUGE}", 206, DATA),  # a suffix longer than the object: all of it
        (f"bytes={HUGE}-{HUGE}", 416, b""),
    ],
    ids=["start", "end", "suffix", "both"],
)
def test_range_bounds_of_thousands_of_digits_are_answered_not_a_500(gw, http, header, status, body):
    aid = put_artifact(gw.store)
    r = http("GET", gw.store.presign(aid), headers={"Range": header})
    assert (r.status, r.body) == (status, body)
    if status == 206:
        assert r.headers["Content-Range"] == f"bytes 0-{len(DATA) - 1}/{len(DATA)}"


@pytest.mark.parametrize("header", ["bytes=-5", f"bytes=-{HUGE}"])
def test_a_suffix_range_of_an_empty_artifact_sends_it_whole_with_200(gw, http, header):
    aid = put_artifact(gw.store, data=b"")
    r = http("GET", gw.store.presign(aid), headers={"Range": header})
    assert (r.status, r.body) == (200, b"")
    assert "Content-Range" not in r.headers  # never "bytes 0--1/0"
    assert r.headers["Content-Length"] == "0"


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=0-0", "bytes=-0"])
def test_a_range_from_a_position_of_an_empty_artifact_is_unsatisfiable(gw, http, header):
    aid = put_artifact(gw.store, data=b"")
    r = http("GET", gw.store.presign(aid), headers={"Range": header})
    assert (r.status, r.headers["Content-Range"]) == (416, "bytes */0")


def test_if_range_with_a_stale_etag_sends_the_whole_object(gw, http):
    aid = put_artifact(gw.store)
    r = http("GET", gw.store.presign(aid), headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert r.status == 200
    assert r.body == DATA


def test_large_object_round_trips_across_many_chunks(gw, http):
    data = os.urandom(3 * 1024 * 1024 + 17)
    url, aid = gw.store.presign_upload(user_id="alice", filename="big.bin")
    assert http("PUT", url, data=data).status == 200
    gw.store.register_uploaded_artifact(aid, user_id="alice")
    r = http("GET", gw.store.presign(aid))
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(data).digest()
    ranged = http("GET", gw.store.presign(aid), headers={"Range": "bytes=262000-2000000"})
    assert ranged.body == data[262000:2000001]


def test_presign_of_an_expired_artifact_raises_expired(serve, backend, clock):
    from chuk_artifacts import ArtifactExpiredError

    gw = serve(backend)
    aid = put_artifact(gw.store, ttl=60)
    clock.advance(61)
    with pytest.raises(ArtifactExpiredError):
        gw.store.presign(aid)


def test_presign_of_an_unknown_artifact_raises_not_found(gw):
    with pytest.raises(ArtifactNotFoundError):
        gw.store.presign("0" * 32)


# -- refused URLs -------------------------------------------------------------------------------


def test_tampered_signature_is_refused_with_403(gw, http):
    aid = put_artifact(gw.store)
    url = gw.store.presign(aid)
    sig = query_of(url)["signature"]
    bad = ("A" if sig[0] != "A" else "B") + sig[1:]
    r = http("GET", with_query(url, signature=bad))
    assert r.status == 403
    assert DATA not in r.body


def test_missing_signature_is_refused_with_403(gw, http):
    aid = put_artifact(gw.store)
    url = gw.store.presign(aid)
    r = http("GET", urlunsplit(urlsplit(url)._replace(query="")))
    assert r.status == 403


def test_tampered_expires_is_refused_with_403(gw, http):
    aid = put_artifact(gw.store)
    url = gw.store.presign(aid, expires=60)
    later = str(int(query_of(url)["expires"]) + 3600)
    r = http("GET", with_query(url, expires=later))
    assert r.status == 403
    assert DATA not in r.body


def test_url_retargeted_to_another_artifact_is_refused_and_leaves_it_intact(gw, http):
    mine = put_artifact(gw.store, b"mine", user_id="alice")
    other_data = b"bob's secret"
    other = put_artifact(gw.store, other_data, user_id="bob")
    url = gw.store.presign(mine, user_id="alice")
    r = http("GET", with_path(url, "/blob/" + gw.store.metadata(other).key))
    assert r.status == 403
    assert other_data not in r.body
    assert gw.store.retrieve(other) == other_data


def test_put_to_a_download_url_is_refused_with_403_and_changes_nothing(gw, http):
    aid = put_artifact(gw.store)
    url = gw.store.presign(aid)
    r = http("PUT", url, data=b"overwritten")
    assert r.status == 403
    assert gw.store.retrieve(aid) == DATA
    assert http("GET", url).body == DATA


def test_download_signature_moved_to_an_upload_path_is_refused(gw, http):
    aid = put_artifact(gw.store)
    get_url = gw.store.presign(aid)
    upload_url, upload_aid = gw.store.presign_upload(user_id="alice", filename="x.bin")
    r = http("PUT", with_path(get_url, urlsplit(upload_url).path), data=b"sneaky")
    assert r.status == 403
    with pytest.raises(ArtifactNotFoundError):
        gw.store.register_uploaded_artifact(upload_aid)
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(upload_aid)


def test_get_on_an_upload_url_is_refused_and_records_nothing(gw, http):
    upload_url, upload_aid = gw.store.presign_upload(user_id="alice", filename="x.bin")
    r = http("GET", upload_url)
    assert r.status == 403
    with pytest.raises(ArtifactNotFoundError):
        gw.store.register_uploaded_artifact(upload_aid)


def test_expired_download_url_is_refused_with_403(serve, backend, clock, http):
    gw = serve(backend)
    aid = put_artifact(gw.store, ttl=None)
    url = gw.store.presign(aid, expires=60)
    assert http("GET", url).status == 200
    clock.advance(61)
    r = http("GET", url)
    assert r.status == 403
    assert DATA not in r.body


def test_expired_upload_url_is_refused_with_403_and_records_nothing(serve, backend, clock, http):
    gw = serve(backend)
    url, aid = gw.store.presign_upload(user_id="alice", filename="late.bin", expires=60)
    clock.advance(61)
    r = http("PUT", url, data=b"too late")
    assert r.status == 403
    assert blob_keys(gw.store, "grid/") == []
    with pytest.raises(ArtifactNotFoundError):
        gw.store.register_uploaded_artifact(aid, user_id="alice")


def test_url_signed_with_another_secret_is_refused(serve, backend, http):
    gw = serve(backend, presign_secret="the-real-secret")
    aid = put_artifact(gw.store)
    path = "/blob/" + gw.store.metadata(aid).key
    forged = UrlSigner("some-other-secret", gw.url).sign("GET", path, 300)
    genuine = UrlSigner("the-real-secret", gw.url).sign("GET", path, 300)
    assert http("GET", forged).status == 403
    assert http("GET", genuine).body == DATA  # the same construction with the right secret works


def test_url_from_a_store_with_a_different_secret_is_refused(serve, make_store, backend, http):
    gw = serve(backend, presign_secret="secret-one")
    aid = put_artifact(gw.store)
    other = make_store("memory", presign_secret="secret-two", public_url=gw.url)
    row = {"key": gw.store.metadata(aid).key}
    assert http("GET", other.presigner.download_url(row, 300)).status == 403
    assert http("GET", gw.store.presigner.download_url(row, 300)).status == 200


# -- presign policy -----------------------------------------------------------------------------


def test_presign_for_a_caller_who_cannot_read_raises_access_denied(gw):
    aid = put_artifact(gw.store, user_id="alice", scope="user")
    with pytest.raises(AccessDeniedError):
        gw.store.presign(aid, user_id="bob")


def test_presign_for_the_owner_works(gw, http):
    aid = put_artifact(gw.store, user_id="alice", scope="user")
    assert http("GET", gw.store.presign(aid, user_id="alice")).body == DATA


@pytest.mark.parametrize("name", ["presign_short", "presign_medium", "presign_long"])
def test_presign_wrappers_deny_a_caller_who_cannot_read(gw, name):
    aid = put_artifact(gw.store, user_id="alice", scope="user")
    with pytest.raises(AccessDeniedError):
        getattr(gw.store, name)(aid, user_id="bob")


@pytest.mark.parametrize(
    ("name", "seconds"), [("presign_short", 900), ("presign_medium", 3600), ("presign_long", 86400)]
)
def test_presign_wrappers_expire_after_their_documented_duration(gw, http, name, seconds):
    aid = put_artifact(gw.store, ttl=None)  # an artifact that outlives every wrapper's URL
    url = getattr(gw.store, name)(aid)
    expires = int(query_of(url)["expires"])
    assert abs(expires - (time.time() + seconds)) <= 5
    assert http("GET", url).body == DATA


def test_presign_custom_expiry_is_in_the_url(gw):
    aid = put_artifact(gw.store)
    expires = int(query_of(gw.store.presign(aid, expires=123))["expires"])
    assert abs(expires - (time.time() + 123)) <= 5


@pytest.mark.parametrize("expires", [0, -1, 7 * 86400 + 1, 1.5, "60", True])
def test_presign_rejects_a_bad_expiry(gw, expires):
    aid = put_artifact(gw.store)
    with pytest.raises(InvalidArgumentError):
        gw.store.presign(aid, expires=expires)


def test_url_of_an_artifact_deleted_afterwards_answers_404(gw, http):
    aid = put_artifact(gw.store)
    url = gw.store.presign(aid)
    assert gw.store.delete(aid)
    assert http("GET", url).status == 404


def test_a_url_never_outlives_its_artifact(serve, backend, clock, http):
    gw = serve(backend)
    aid = put_artifact(gw.store, ttl=60)
    url = gw.store.presign(aid, expires=3600)
    assert int(query_of(url)["expires"]) <= time.time() + 60  # cut to what is left of the TTL
    assert http("GET", url).body == DATA
    clock.advance(61)
    r = http("GET", url)
    assert r.status == 403  # the URL expired with the artifact
    assert DATA not in r.body


def test_url_of_an_expired_artifact_answers_410(serve, backend, clock, http):
    """The gateway checks the artifact's own expiry too (here: the URL was signed for longer
    than the artifact lives, as a URL signed by an older version could be)."""
    gw = serve(backend)
    aid = put_artifact(gw.store, ttl=60)
    row = gw.store.catalog.artifact(aid)
    url = gw.store.presigner.download_url(row, 3600)
    clock.advance(61)
    r = http("GET", url)
    assert r.status == 410
    assert DATA not in r.body
    gw.store.cleanup_expired_sessions()
    assert http("GET", url).status == 404


def test_url_of_an_updated_artifact_serves_the_new_bytes_and_etag(gw, http):
    aid = put_artifact(gw.store)
    url = gw.store.presign(aid)
    gw.store.update_file(aid, data=b"new content")
    r = http("GET", url)
    assert r.body == b"new content"
    assert r.headers["ETag"] == f'"{hashlib.sha256(b"new content").hexdigest()}"'


def test_urls_survive_a_restart_on_the_filesystem_backend(serve, make_store, http):
    gw = serve("filesystem")
    first = gw.store
    aid = put_artifact(first, ttl=None)
    url = first.presign(aid)
    second = make_store("filesystem", public_url=gw.url)  # same fs_root, no configured secret
    gw.mount(second)
    first.close()
    r = http("GET", url)
    assert r.status == 200
    assert r.body == DATA


# -- presigned uploads --------------------------------------------------------------------------


def test_presigned_put_then_register_gives_the_artifact(gw, http):
    data = os.urandom(5000)
    session_id = "user_alice"
    url, aid = gw.store.presign_upload(
        session_id=session_id, filename="photo.jpg", mime_type="image/jpeg", expires=1800
    )
    r = http("PUT", url, data=data, headers={"Content-Type": "image/jpeg"})
    assert r.status == 200
    assert r.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    got = gw.store.register_uploaded_artifact(
        aid, mime="image/jpeg", summary="Profile pic", filename="photo.jpg", session_id=session_id
    )
    assert got == aid
    meta = gw.store.metadata(aid, session_id=session_id)
    assert meta.bytes == len(data)
    assert meta.sha256 == hashlib.sha256(data).hexdigest()
    assert (meta.mime, meta.summary, meta.filename) == ("image/jpeg", "Profile pic", "photo.jpg")
    assert gw.store.retrieve(aid, session_id=session_id) == data


def test_presigned_upload_of_empty_body_registers_an_empty_artifact(gw, http):
    url, aid = gw.store.presign_upload(user_id="alice", filename="empty.txt", mime_type="text/plain")
    assert http("PUT", url, data=b"").status == 200
    gw.store.register_uploaded_artifact(aid, user_id="alice")
    meta = gw.store.metadata(aid)
    assert (meta.bytes, meta.sha256) == (0, hashlib.sha256(b"").hexdigest())


def test_register_works_after_the_upload_url_expired(serve, backend, clock, http):
    gw = serve(backend)
    url, aid = gw.store.presign_upload(user_id="alice", filename="a.bin", expires=60)
    assert http("PUT", url, data=b"in time").status == 200
    clock.advance(120)
    assert http("PUT", url, data=b"too late").status == 403
    gw.store.register_uploaded_artifact(aid, user_id="alice")
    assert gw.store.retrieve(aid) == b"in time"


def test_presign_upload_user_scope_needs_a_user(gw):
    with pytest.raises(InvalidArgumentError):
        gw.store.presign_upload(session_id="sess-x", scope="user")


def test_presign_upload_sandbox_scope_is_admin_only(gw):
    with pytest.raises(AccessDeniedError):
        gw.store.presign_upload(user_id="alice", scope="sandbox")


@pytest.mark.parametrize("expires", [0, 7 * 86400 + 1])
def test_presign_upload_rejects_a_bad_expiry(gw, expires):
    with pytest.raises(InvalidArgumentError):
        gw.store.presign_upload(user_id="alice", expires=expires)


def test_register_before_any_put_raises_not_found_and_creates_nothing(gw):
    _, aid = gw.store.presign_upload(user_id="alice", filename="photo.jpg", mime_type="image/jpeg")
    with pytest.raises(ArtifactNotFoundError):
        gw.store.register_uploaded_artifact(aid, user_id="alice")
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(aid)
    assert list(gw.store.search()) == []


def test_upload_still_works_after_an_early_register_attempt(gw, http):
    url, aid = gw.store.presign_upload(user_id="alice", filename="photo.jpg", mime_type="image/jpeg")
    with pytest.raises(ArtifactNotFoundError):
        gw.store.register_uploaded_artifact(aid, user_id="alice")
    assert http("PUT", url, data=b"late bytes").status == 200
    gw.store.register_uploaded_artifact(aid, user_id="alice")
    assert gw.store.retrieve(aid) == b"late bytes"


def test_register_by_another_user_is_denied(gw, http):
    url, aid = gw.store.presign_upload(user_id="alice", filename="photo.jpg", mime_type="image/jpeg")
    assert http("PUT", url, data=b"alice's photo").status == 200
    with pytest.raises(AccessDeniedError):
        gw.store.register_uploaded_artifact(aid, user_id="bob")
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(aid)
    gw.store.register_uploaded_artifact(aid, user_id="alice")  # still the owner's to register
    assert gw.store.retrieve(aid, user_id="alice") == b"alice's photo"


def test_register_twice_raises_and_keeps_the_first(gw, http):
    url, aid = gw.store.presign_upload(user_id="alice", filename="a.bin")
    http("PUT", url, data=b"once")
    gw.store.register_uploaded_artifact(aid, user_id="alice")
    with pytest.raises(ArtifactNotFoundError):
        gw.store.register_uploaded_artifact(aid, user_id="alice")
    assert gw.store.retrieve(aid) == b"once"


def test_presign_upload_and_register_makes_the_artifact_on_put(gw, http):
    data = os.urandom(3000)
    url, aid = gw.store.presign_upload_and_register(
        mime="application/pdf", summary="auto", filename="doc.pdf", user_id="alice", meta={"k": "v"}
    )
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(aid)
    assert http("PUT", url, data=data).status == 200
    meta = gw.store.metadata(aid, user_id="alice")  # no register call
    assert meta.sha256 == hashlib.sha256(data).hexdigest()
    assert meta.bytes == len(data)
    assert (meta.mime, meta.summary, meta.filename, meta.meta) == ("application/pdf", "auto", "doc.pdf", {"k": "v"})
    assert gw.store.retrieve(aid, user_id="alice") == data


def test_auto_registered_upload_url_cannot_overwrite_the_artifact(gw, http):
    url, aid = gw.store.presign_upload_and_register(mime="text/plain", user_id="alice")
    assert http("PUT", url, data=b"first").status == 200
    second = http("PUT", url, data=b"second")
    assert second.status >= 400
    assert gw.store.retrieve(aid) == b"first"
    assert gw.store.metadata(aid).sha256 == hashlib.sha256(b"first").hexdigest()


def test_presigned_upload_url_is_bound_to_its_upload(gw, http):
    url_a, _ = gw.store.presign_upload(user_id="alice", filename="a.bin")
    url_b, aid_b = gw.store.presign_upload(user_id="alice", filename="b.bin")
    retargeted = with_path(url_a, urlsplit(url_b).path)
    assert http("PUT", retargeted, data=b"wrong place").status == 403
    with pytest.raises(ArtifactNotFoundError):
        gw.store.register_uploaded_artifact(aid_b, user_id="alice")


def test_unregistered_presigned_upload_is_swept_with_its_bytes(serve, backend, clock, http):
    gw = serve(backend)
    url, aid = gw.store.presign_upload(user_id="alice", filename="a.bin", expires=60)
    assert http("PUT", url, data=b"never registered").status == 200
    assert blob_keys(gw.store, "grid/") != []
    clock.advance(60 + gw.store.settings.upload_ttl + 1)
    result = gw.store.cleanup_expired_sessions()
    assert result.uploads == 1
    assert blob_keys(gw.store, "grid/") == []
    with pytest.raises(ArtifactNotFoundError):
        gw.store.register_uploaded_artifact(aid)


def raw_request(url: str, head: bytes, body: bytes = b"") -> bytes:
    """Send raw bytes, close our side, return the raw response (for malformed requests)."""
    import socket

    parts = urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            b"PUT " + target.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head + b"\r\n" + body
        )
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_upload_without_content_length_is_refused_and_records_nothing(gw):
    url, aid = gw.store.presign_upload_and_register(mime="text/plain", user_id="alice")
    response = raw_request(url, b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")
    assert response.startswith((b"HTTP/1.0 411", b"HTTP/1.1 411"))
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(aid)
    assert blob_keys(gw.store, "grid/") == []


def test_truncated_upload_body_registers_nothing(gw):
    url, aid = gw.store.presign_upload_and_register(mime="text/plain", user_id="alice")
    response = raw_request(url, b"Content-Length: 1000\r\n", b"only ten b")
    assert response.split(b" ", 2)[1] == b"400"
    with pytest.raises(ArtifactNotFoundError):
        gw.store.metadata(aid)
    assert blob_keys(gw.store, "grid/") == []


def test_second_put_before_register_replaces_the_first(gw, http):
    url, aid = gw.store.presign_upload(user_id="alice", filename="a.bin")
    http("PUT", url, data=b"first attempt")
    http("PUT", url, data=b"second")
    gw.store.register_uploaded_artifact(aid, user_id="alice")
    assert gw.store.retrieve(aid) == b"second"
    assert gw.store.metadata(aid).bytes == len(b"second")


# -- concurrent PUTs ---------------------------------------------------------------------------


def test_concurrent_puts_to_an_auto_register_url_leave_a_consistent_artifact(gw, http, slow_put, writing):
    url, aid = gw.store.presign_upload_and_register(mime="text/plain", user_id="alice")
    opened = writing(gw.store, "grid/")
    slow = slow_put(url, b"B" * 4000).start()
    assert opened.wait(10)  # the slow PUT has been accepted and is streaming its body
    fast = http("PUT", url, data=b"A" * 4000)
    slow_status, _ = slow.finish()
    assert min(fast.status, slow_status) == 200
    assert max(fast.status, slow_status) >= 400  # exactly one PUT wins
    data = gw.store.retrieve(aid)
    assert gw.store.metadata(aid).sha256 == hashlib.sha256(data).hexdigest()
    assert data == (b"A" * 4000 if fast.status == 200 else b"B" * 4000)


def test_put_in_flight_during_register_cannot_change_the_registered_bytes(gw, http, slow_put, writing):
    url, aid = gw.store.presign_upload(user_id="alice", filename="a.bin")
    assert http("PUT", url, data=b"A" * 4000).status == 200
    opened = writing(gw.store, "grid/")
    slow = slow_put(url, b"B" * 4000).start()
    assert opened.wait(10)
    try:
        gw.store.register_uploaded_artifact(aid, user_id="alice")
        registered_early = True
    except ArtifactStoreError:  # the upload is busy receiving; register after it
        registered_early = False
    slow.finish()
    if not registered_early:
        gw.store.register_uploaded_artifact(aid, user_id="alice")
    data = gw.store.retrieve(aid)
    assert gw.store.metadata(aid).sha256 == hashlib.sha256(data).hexdigest()
    assert data in (b"A" * 4000, b"B" * 4000)


# -- header injection ---------------------------------------------------------------------------


@pytest.mark.parametrize("mime", ["text/html\r\nX-Injected: 1", "text/plain\nSet-Cookie: a=b", "text/plain; x=\r\n"])
def test_mime_with_line_breaks_is_rejected_at_store_time(gw, mime):
    with pytest.raises(InvalidArgumentError):
        gw.store.store(b"x", mime=mime, user_id="alice")
    assert list(gw.store.search()) == []


def test_mime_with_line_breaks_is_rejected_for_presigned_uploads(gw):
    with pytest.raises(InvalidArgumentError):
        gw.store.presign_upload(user_id="alice", mime_type="image/jpeg\r\nX-Evil: 1")
    with pytest.raises(InvalidArgumentError):
        gw.store.presign_upload_and_register(mime="image/jpeg\r\nX-Evil: 1", user_id="alice")


def test_mime_with_line_breaks_is_rejected_at_register_time(gw, http):
    url, aid = gw.store.presign_upload(user_id="alice", filename="a.bin")
    http("PUT", url, data=b"x")
    with pytest.raises(InvalidArgumentError):
        gw.store.register_uploaded_artifact(aid, mime="text/html\r\nX-Evil: 1", user_id="alice")


def test_filename_with_line_breaks_is_rejected_at_store_time(gw):
    with pytest.raises(InvalidArgumentError):
        gw.store.store(b"x", mime="text/plain", filename="a\r\nX-Evil: 1.txt", user_id="alice")
