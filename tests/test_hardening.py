"""Regression tests of the hardening pass (issue 20): sessions stay a security boundary after
delete and expiry, reads of a changing artifact are consistent, queries are bounded, and every
bad input is an ``InvalidArgumentError``.

Each test names the item of the issue it pins down. Items 2-4, 8 and 16 (sessions) are in
``test_sessions.py``, which also runs with the Redis sessions provider; 11 (``Range``) in
``test_gateway.py``; 12 and 15 (terminal escapes, exit codes) in ``test_cli_first_hour.py``.
"""

from __future__ import annotations

import base64
import json
import math
import os
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactExpiredError,
    ArtifactNotFoundError,
    ArtifactStore,
    InvalidArgumentError,
    ProviderError,
    QuotaExceededError,
)
from chuk_artifacts.config import MAX_TTL, Settings
from chuk_artifacts.grid import MAX_FILENAME_BYTES, MAX_META_FILTER_ENTRIES
from chuk_artifacts.models import MultipartUploadInitRequest, StreamDownloadRequest

HOUR = 3600
NATIVE_PRESIGN = True  # the gateway tests below skip s3 themselves; the presign cap covers it


def ids(listing):
    return {m.artifact_id for m in listing}


# -- 1. meta filters are bounded ----------------------------------------------------------------


def test_a_meta_filter_with_too_many_entries_is_an_invalid_argument(store):
    store.store(b"x", mime="text/plain", user_id="alice", meta={"k0": 0})
    too_many = {f"k{i}": i for i in range(MAX_META_FILTER_ENTRIES + 1)}
    with pytest.raises(InvalidArgumentError, match="at most 64"):
        store.search(user_id="alice", meta_filter=too_many)
    with pytest.raises(InvalidArgumentError):
        store.search(meta_filter={f"k{i}": i for i in range(1500)})  # was a 502 on SQLite


def test_a_meta_filter_at_the_limit_matches_exactly(store):
    meta = {f"k{i}": i for i in range(MAX_META_FILTER_ENTRIES)}
    hit = store.store(b"x", mime="text/plain", user_id="alice", meta=meta)
    store.store(b"y", mime="text/plain", user_id="alice", meta={**meta, "k63": "other"})
    started = time.perf_counter()
    found = store.search(user_id="alice", meta_filter=meta)
    assert ids(found) == {hit}
    assert time.perf_counter() - started < 5  # planned and run in one grouped sub-select
    assert ids(store.search(user_id="alice", meta_filter={**meta, "k1": 2})) == set()


def test_postgres_statements_are_cut_off_by_the_statement_timeout(make_store):
    store = make_store("postgres", statement_timeout=0.2)
    from sqlalchemy import text

    with pytest.raises(ProviderError, match="statement timeout"):
        with store.catalog.read() as conn:
            conn.execute(text("SELECT pg_sleep(3)"))
    store.store(b"still usable", mime="text/plain")  # the pool hands out a working connection


# -- 2, 3. a deleted (or provider-expired) session is no key to what it held ---------------------
# (in tests/test_sessions.py, which runs on every catalog and with the Redis sessions provider)


# -- 4. an expired session is no identity; storing into it replaces it ---------------------------
# (in tests/test_sessions.py, which runs on every catalog and with the Redis sessions provider)


# -- 5. a session view never acts as another user -----------------------------------------------


def test_a_session_view_refuses_another_user_even_for_an_ownerless_session(store):
    anonymous = store.create_session()
    view = store.as_session(anonymous)
    aid = view.store(b"x", mime="text/plain")
    with pytest.raises(AccessDeniedError, match="this view acts as session_id"):
        view.read_file(aid, user_id="bob")
    with pytest.raises(AccessDeniedError):
        view.store(b"y", mime="text/plain", user_id="bob")
    owned = store.create_session(user_id="alice")
    alices = store.as_session(owned)
    doc = alices.store(b"z", mime="text/plain")
    assert alices.read_file(doc, user_id="alice") == b"z"  # naming its own user is harmless


# -- 6. a download racing an update is one version or the other, never torn ---------------------


@pytest.mark.parametrize("backend", ["memory", "filesystem"])
def test_downloads_racing_updates_are_never_torn(store):
    versions = [bytes([65 + i]) * (1000 + 997 * i) for i in range(4)]
    aid = store.store(versions[0], mime="application/octet-stream")
    stop = threading.Event()
    errors: list[BaseException] = []

    def update() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                store.update_file(aid, data=versions[i % len(versions)])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=update)
    thread.start()
    seen = 0
    try:
        for _ in range(400):
            body = b"".join(store.stream_download(StreamDownloadRequest(artifact_id=aid, chunk_size=512)))
            assert body in versions, f"torn read: {len(body)} bytes starting {body[:4]!r}"
            seen += 1
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert seen == 400


@pytest.mark.parametrize("backend", ["memory", "filesystem"])
def test_a_gateway_read_of_an_artifact_changed_meanwhile_is_refused_not_torn(serve, backend):
    gw = serve(backend)
    aid = gw.store.store(b"old bytes", mime="text/plain")
    row = gw.store.catalog.artifact(aid)
    blob = gw.store.signed_blob(row["key"])  # headers are made from this version
    gw.store.update_file(aid, data=b"the new, longer bytes")
    from chuk_artifacts.errors import ArtifactStoreError

    with pytest.raises(ArtifactStoreError, match="changed while it was being read"):
        blob.read(0, blob.metadata.bytes, 4)


# -- 7. presigned lifetimes are capped by the artifact's expiry ----------------------------------


def test_presigned_urls_never_outlive_the_artifact(store):
    aid = store.store(b"x", mime="text/plain", ttl=120)
    url = store.presign(aid, expires=86400)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    if "X-Amz-Expires" in query:  # S3 / COS: signed natively
        assert int(query["X-Amz-Expires"]) <= 120
    else:
        assert int(query["expires"]) <= time.time() + 120
    forever = store.store(b"y", mime="text/plain", ttl=None)
    query = {k: v[0] for k, v in parse_qs(urlsplit(store.presign(forever, expires=7200)).query).items()}
    lifetime = int(query["X-Amz-Expires"]) if "X-Amz-Expires" in query else int(query["expires"]) - time.time()
    assert lifetime > 7000


# -- 8. a sweep never removes a write made into a session replaced while it ran -------------------
# (in tests/test_sessions.py, which runs on every catalog and with the Redis sessions provider)


# -- 9. uploads in progress are limited -----------------------------------------------------------


def test_open_uploads_per_owner_are_limited(make_store, backend):
    store = make_store(backend, max_open_uploads=3)
    for _ in range(3):
        store.presign_upload(user_id="alice")
    with pytest.raises(QuotaExceededError, match="ARTIFACT_MAX_OPEN_UPLOADS"):
        store.presign_upload(user_id="alice")
    with pytest.raises(QuotaExceededError):
        store.initiate_multipart_upload(
            MultipartUploadInitRequest(filename="x", mime_type="text/plain", user_id="alice")
        )
    store.presign_upload(user_id="bob")  # the limit is per owner


def test_racing_openers_cannot_pass_the_upload_limit(make_store):
    store = make_store("filesystem", max_open_uploads=5)
    outcomes: list[str] = []

    def open_one() -> None:
        try:
            store.presign_upload(user_id="alice")
            outcomes.append("ok")
        except QuotaExceededError:
            outcomes.append("refused")

    threads = [threading.Thread(target=open_one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 5


@pytest.mark.parametrize("backend", ["memory", "filesystem"])
def test_an_upload_body_past_the_quota_is_refused_and_not_kept(serve, backend, http):
    gw = serve(backend, quota_user_bytes=100)
    gw.store.store(b"x" * 60, mime="text/plain", user_id="alice")
    url, aid = gw.store.presign_upload(user_id="alice", filename="big.bin")
    r = http("PUT", url, data=b"y" * 65536)
    assert r.status == 413
    with pytest.raises(ArtifactNotFoundError):
        gw.store.register_uploaded_artifact(aid, user_id="alice")
    assert gw.store.blobs.size(upload_key(gw.store, aid)) is None
    gw.store.store(b"z" * 40, mime="text/plain", user_id="alice")  # the room is still there


def test_no_upload_opens_for_an_owner_out_of_room(make_store, backend):
    store = make_store(backend, quota_user_bytes=10)
    store.store(b"0123456789", mime="text/plain", user_id="alice")
    with pytest.raises(QuotaExceededError):
        store.presign_upload(user_id="alice")


# -- 10. forged cursors --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [2**64, 2**70, -1])
def test_a_cursor_with_an_impossible_row_id_is_an_invalid_argument(store, value):
    forged = base64.urlsafe_b64encode(json.dumps([value]).encode()).decode().rstrip("=")
    with pytest.raises(InvalidArgumentError, match="invalid cursor"):
        store.search(cursor=forged)
    with pytest.raises(InvalidArgumentError, match="invalid cursor"):
        store.search(user_id="alice", cursor=forged)


# -- 13. settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("default_ttl", MAX_TTL + 1),
        ("default_ttl", 0),
        ("session_ttl_hours", math.nan),
        ("session_ttl_hours", math.inf),
        ("session_ttl_hours", 1e300),
        ("upload_ttl", 10**20),
        ("max_meta_bytes", -1),
        ("statement_timeout", math.nan),
        ("max_open_uploads", 0),
        ("quota_user_bytes", 2**64),
    ],
)
def test_settings_refuse_values_that_would_fail_later(field, value):
    with pytest.raises(InvalidArgumentError, match=field):
        Settings(**{field: value}).normalized()


@pytest.mark.parametrize(("var", "raw"), [("ARTIFACT_SESSION_TTL_HOURS", "nan"), ("ARTIFACT_DEFAULT_TTL", "1e99")])
def test_settings_from_the_environment_refuse_them_too(monkeypatch, var, raw):
    monkeypatch.setenv(var, raw)
    with pytest.raises(InvalidArgumentError, match=var):
        Settings.from_env()


# -- 14. one filename rule on every catalog --------------------------------------------------------


def test_filenames_are_capped_in_bytes_alike_on_every_catalog(store):
    emoji = "\U0001f600"
    longest = emoji * (MAX_FILENAME_BYTES // 4)
    aid = store.store(b"x", mime="text/plain", filename=longest)
    assert store.metadata(aid).filename == longest
    with pytest.raises(InvalidArgumentError, match="bytes in UTF-8"):
        store.store(b"x", mime="text/plain", filename=emoji * 700)
    with pytest.raises(InvalidArgumentError):
        store.update_metadata(aid, filename=emoji * 700)


# -- 16. reading through a session extends it -------------------------------------------------------
# (in tests/test_sessions.py, which runs on every catalog and with the Redis sessions provider)


# -- 17. session ids ---------------------------------------------------------------------------------


def test_generated_session_ids_carry_128_random_bits_and_nothing_else():
    with ArtifactStore() as store:
        made = {store.create_session(user_id="alice") for _ in range(50)}
    assert len(made) == 50
    for sid in made:
        prefix, token = sid.split("-", 1)
        assert prefix == "sess" and len(token) == 32 and int(token, 16) >= 0
        assert "alice" not in sid and str(int(time.time()))[:6] not in sid


# -- 18. symbolic links planted under the filesystem root ------------------------------------------


def test_the_filesystem_backend_does_not_follow_planted_symlinks(make_store, tmp_path):
    store = make_store("filesystem")
    sid = store.create_session(user_id="alice")
    aid = store.store(b"inside", mime="text/plain", session_id=sid)
    outside = tmp_path / "outside"
    outside.mkdir()
    row = store.catalog.artifact(aid)
    session_dir = os.path.dirname(store.blobs.path(row["key"]))
    sessions_dir = os.path.dirname(session_dir)
    planted = os.path.join(sessions_dir, "sess-planted")
    os.symlink(outside, planted)
    with pytest.raises(ProviderError, match="symbolic link"):
        store.store(b"escape", mime="text/plain", session_id="sess-planted")
    assert list(outside.iterdir()) == []
    # a file replaced by a link to something outside is not read through
    secret = outside / "secret"
    secret.write_bytes(b"secret")
    path = store.blobs.path(row["key"])
    os.unlink(path)
    os.symlink(secret, path)
    with pytest.raises((ProviderError, ArtifactExpiredError, Exception)) as caught:
        store.read_file(aid)
    assert b"secret" not in str(caught.value).encode()


def test_fsck_reports_a_symlinked_directory_instead_of_aborting(make_store, tmp_path):
    from chuk_artifacts.fsck import check

    store = make_store("filesystem")
    store.store(b"x", mime="text/plain", user_id="alice")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "stray").write_bytes(b"?")
    os.symlink(outside, os.path.join(store.blobs.root_dir, "grid", "default", "linked"))
    report = check(store, repair=True, grace=0)
    assert (outside / "stray").exists()  # nothing outside the root is touched
    assert any("symbolic link" in str(problem) for problem in report.problems)


def upload_key(store, artifact_id):
    with store.catalog.read() as conn:
        return store.catalog.get_upload_by_artifact(conn, artifact_id)["key"]
