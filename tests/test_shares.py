"""Share links: revocable, expiring, counted URLs, over real HTTP on every backend.

The store's rules (who may share, list and revoke; the token and what is stored of it; bad
arguments), then the gateway's ``/s/<token>`` with urllib against a live server: bytes and
headers, HEAD / 304 / Range, an exact download limit under 20 racing requests, revocation,
deletion, expiry, passwords, refusals that change nothing; the S3 redirect against SeaweedFS
(which checks every SigV4 signature); and two gateway processes on one PostgreSQL catalog.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from chuk_artifacts import (
    AccessDeniedError,
    ArtifactNotFoundError,
    ArtifactStore,
    AsyncArtifactStore,
    InvalidArgumentError,
    ShareGoneError,
    SharePasswordError,
)
from chuk_artifacts.shares import MAX_PASSWORD_FAILURES, REDIRECT_SECONDS

ROOT = Path(__file__).resolve().parents[1]
DATA = bytes(range(256)) * 8  # 2 KiB, every byte value
#: Backends whose bytes the gateway streams itself (S3 redirects: ``test_s3_*`` below).
STREAMED = ["memory", "filesystem", "postgres"]


def token_of(link: Any) -> str:
    return str(link.url.rsplit("/", 1)[1])


def share_row(store: ArtifactStore, share_id: str) -> dict[str, Any]:
    row = store.catalog.share(share_id)
    assert row is not None
    return row


def put(store: ArtifactStore, data: bytes = DATA, **kwargs: Any) -> str:
    kwargs.setdefault("mime", "application/x-test")
    kwargs.setdefault("user_id", "alice")
    kwargs.setdefault("scope", "user")
    kwargs.setdefault("filename", "report.bin")
    return store.store(data, **kwargs)


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"anyone:{password}".encode()).decode()}


# -- the store's rules ---------------------------------------------------------------------------


def test_sharing_needs_read_access(store):
    aid = put(store)
    with pytest.raises(AccessDeniedError):
        store.share(aid, user_id="bob")
    with pytest.raises(ArtifactNotFoundError):
        store.share("0" * 32, user_id="alice")
    link = store.share(aid, user_id="alice")
    assert (link.artifact_id, link.created_by, link.downloads, link.state) == (aid, "alice", 0, "active")
    shared = store.store(b"for all", mime="text/plain", scope="sandbox")
    assert store.share(shared, user_id="bob").created_by == "bob"  # anyone may read sandbox artifacts


def test_the_token_is_256_random_bits_and_only_its_hash_is_stored(store):
    aid = put(store)
    link = store.share(aid, user_id="alice", password="pw")
    token = token_of(link)
    assert link.url == f"{store.settings.public_url}/s/{token}"
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    row = share_row(store, link.share_id)
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(row) and "pw" not in str(row["password_hash"]).split("$")
    assert token_of(store.share(aid, user_id="alice")) != token
    (listed,) = [s for s in store.list_shares(user_id="alice") if s.share_id == link.share_id]
    assert listed.url is None and listed.has_password


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"expires": 0}, "expires"),
        ({"expires": 366 * 86400}, "expires"),
        ({"expires": "1h"}, "expires"),
        ({"max_downloads": 0}, "max_downloads"),
        ({"max_downloads": True}, "max_downloads"),
        ({"password": ""}, "password"),
        ({"disposition": "download"}, "disposition"),
    ],
)
def test_bad_arguments_are_refused_and_create_nothing(kwargs, message):
    with ArtifactStore() as store:
        aid = put(store)
        with pytest.raises(InvalidArgumentError, match=message):
            store.share(aid, user_id="alice", **kwargs)
        assert store.list_shares(include_inactive=True) == []


def test_each_caller_lists_the_links_they_created(store):
    a1, a2 = put(store), put(store)
    mine = [store.share(a1, user_id="alice"), store.share(a2, user_id="alice", max_downloads=1)]
    sid = store.create_session()
    theirs = store.share(store.store(b"s", mime="text/plain", session_id=sid), session_id=sid)
    assert [s.share_id for s in store.list_shares(user_id="alice")] == [m.share_id for m in reversed(mine)]
    assert [s.share_id for s in store.list_shares(a1, user_id="alice")] == [mine[0].share_id]
    assert [s.share_id for s in store.list_shares(session_id=sid)] == [theirs.share_id]
    assert store.list_shares(user_id="bob") == []
    assert {s.share_id for s in store.list_shares()} == {mine[0].share_id, mine[1].share_id, theirs.share_id}
    store.revoke_share(mine[0].share_id, user_id="alice")
    assert [s.share_id for s in store.list_shares(user_id="alice")] == [mine[1].share_id]
    states = {s.share_id: s.state for s in store.list_shares(user_id="alice", include_inactive=True)}
    assert states == {mine[0].share_id: "revoked", mine[1].share_id: "active"}


def test_who_may_revoke(store):
    aid = put(store, scope="sandbox", user_id=None)
    link = store.share(aid, user_id="bob")
    with pytest.raises(AccessDeniedError):
        store.revoke_share(link.share_id, user_id="carol")  # may read the artifact, but not change it
    assert store.revoke_share(link.share_id, user_id="bob")
    assert not store.revoke_share(link.share_id, user_id="bob")  # already revoked
    other = store.share(aid, user_id="bob")
    assert store.revoke_share(other.share_id)  # the application
    owned = store.share(put(store), user_id="alice")
    assert store.as_user("alice").revoke_share(owned.share_id)
    assert not store.revoke_share("no-such-share")
    with pytest.raises(InvalidArgumentError):
        store.revoke_share("../x")


def test_views_and_the_async_facade_have_the_same_methods():
    import asyncio

    async def main() -> None:
        async with AsyncArtifactStore() as astore:
            aid = await astore.store(b"async", mime="text/plain", user_id="alice", scope="user")
            alice = astore.as_user("alice")
            link = await alice.share(aid, max_downloads=2)
            assert [s.share_id for s in await alice.list_shares()] == [link.share_id]
            with pytest.raises(AccessDeniedError):
                await astore.as_user("bob").share(aid)
            assert await alice.revoke_share(link.share_id)
            assert await astore.list_shares(aid) == []

    asyncio.run(main())


def test_open_share_counts_only_downloads():
    with ArtifactStore() as store:
        link = store.share(put(store), max_downloads=1, user_id="alice")
        for _ in range(3):
            opened = store.open_share(token_of(link))
        assert opened.metadata.bytes == len(DATA) and share_row(store, link.share_id)["downloads"] == 0
        assert b"".join(opened.download(0, 4, 1024).chunks or []) == DATA[:4]
        with pytest.raises(ShareGoneError) as gone:
            opened.download(0, 4, 1024)  # opened before the limit was reached: still refused
        assert gone.value.reason == "exhausted" and share_row(store, link.share_id)["downloads"] == 1


def test_open_share_tells_a_missing_password_from_a_wrong_one():
    with ArtifactStore() as store:
        link = store.share(put(store), password="pw", user_id="alice")
        with pytest.raises(SharePasswordError) as missing:
            store.open_share(token_of(link))
        with pytest.raises(SharePasswordError) as wrong:
            store.open_share(token_of(link), password="PW")
        assert (missing.value.required, wrong.value.required) == (True, False)
        assert missing.value.http_status == 401
        assert store.open_share(token_of(link), password="pw").share.has_password


def test_cleanup_removes_expired_links_and_keeps_the_others(store, clock):
    aid = put(store)
    brief = store.share(aid, expires=60, user_id="alice")
    lasting = store.share(aid, expires=3600, user_id="alice")
    revoked = store.share(aid, user_id="alice")
    store.revoke_share(revoked.share_id)
    clock.advance(61)
    store.cleanup_expired_sessions(dry_run=True)
    assert store.catalog.share(brief.share_id) is not None  # a dry run changes nothing
    store.cleanup_expired_sessions()
    assert store.catalog.share(brief.share_id) is None
    left = {s.share_id: s.state for s in store.list_shares(user_id="alice", include_inactive=True)}
    assert left == {lasting.share_id: "active", revoked.share_id: "revoked"}


def test_a_link_opens_only_while_its_creator_could_read_the_artifact():
    with ArtifactStore() as store:
        sid = store.create_session(user_id="alice")
        aid = store.store(b"session bytes", mime="text/plain", session_id=sid)
        link = store.share(aid, session_id=sid)
        assert store.open_share(token_of(link)).metadata.artifact_id == aid
        store.delete_session(sid)
        with pytest.raises(ArtifactNotFoundError):
            store.open_share(token_of(link))


# -- over HTTP: the gateway streams the bytes ----------------------------------------------------


@pytest.fixture(params=STREAMED)
def gw(request, serve):
    return serve(request.param)


def test_get_serves_the_bytes_with_their_headers(gw, http):
    aid = put(gw.store, filename="Quartalsbericht Ä.pdf", mime="application/pdf")
    r = http("GET", gw.store.share(aid, user_id="alice").url)
    assert (r.status, r.body) == (200, DATA)
    assert r.headers["Content-Type"] == "application/pdf"
    assert r.headers["Content-Length"] == str(len(DATA))
    assert r.headers["ETag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''Quartalsbericht%20%C3%84.pdf" in r.headers["Content-Disposition"]
    assert r.headers["Cache-Control"] == "no-store"
    inline = http("GET", gw.store.share(aid, user_id="alice", disposition="inline").url)
    assert inline.headers["Content-Disposition"].startswith("inline;")


def test_head_and_not_modified_count_nothing_and_a_range_counts_one(gw, http):
    link = gw.store.share(put(gw.store), max_downloads=3, user_id="alice")
    head = http("HEAD", link.url)
    assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", str(len(DATA)))
    etag = head.headers["ETag"]
    assert http("GET", link.url, headers={"If-None-Match": etag}).status == 304
    assert share_row(gw.store, link.share_id)["downloads"] == 0
    part = http("GET", link.url, headers={"Range": "bytes=10-19"})
    assert (part.status, part.body) == (206, DATA[10:20])
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(DATA)}"
    stale = http("GET", link.url, headers={"Range": "bytes=0-0", "If-Range": '"other"'})
    assert (stale.status, stale.body) == (200, DATA)  # If-Range does not match: the whole object
    assert http("GET", link.url, headers={"Range": f"bytes={len(DATA)}-"}).status == 416  # not counted
    assert share_row(gw.store, link.share_id)["downloads"] == 2
    assert http("GET", link.url).status == 200
    assert http("GET", link.url).status == 410


def test_a_limit_of_five_gives_exactly_five_of_twenty_concurrent_downloads(gw):
    link = gw.store.share(put(gw.store), max_downloads=5, user_id="alice")
    start = threading.Barrier(20)

    def download(_: int) -> tuple[int, bytes]:
        start.wait()
        try:
            with urllib.request.urlopen(link.url, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, b""

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(download, range(20)))
    assert sorted(status for status, _ in results) == [200] * 5 + [410] * 15
    assert all(body == DATA for status, body in results if status == 200)
    assert share_row(gw.store, link.share_id)["downloads"] == 5


def test_revocation_takes_effect_on_the_next_request(gw, http):
    link = gw.store.share(put(gw.store), user_id="alice")
    assert http("GET", link.url).status == 200
    assert gw.store.revoke_share(link.share_id, user_id="alice")
    r = http("GET", link.url)
    assert r.status == 410 and b"revoked" in r.body
    assert http("HEAD", link.url).status == 410


def test_deleting_the_artifact_kills_its_links(gw, http):
    aid = put(gw.store)
    links = [gw.store.share(aid, user_id="alice") for _ in range(2)]
    other = gw.store.share(put(gw.store), user_id="alice")
    assert gw.store.delete(aid, user_id="alice")
    for link in links:
        assert http("GET", link.url).status == 404
        assert gw.store.catalog.share(link.share_id) is None  # deleted with the artifact
    assert http("GET", other.url).status == 200


def test_expired_links_and_expired_artifacts_are_refused(gw, http, clock):
    link = gw.store.share(put(gw.store), expires=60, user_id="alice")
    brief = gw.store.share(put(gw.store, ttl=30), user_id="alice")
    assert http("GET", link.url).status == 200 and http("GET", brief.url).status == 200
    clock.advance(31)
    assert http("GET", brief.url).status == 410  # the artifact expired
    clock.advance(30)
    r = http("GET", link.url)
    assert r.status == 410 and b"expired" in r.body


def test_refusals_change_nothing(gw, http, clock):
    store = gw.store
    revoked = store.share(put(store), user_id="alice")
    store.revoke_share(revoked.share_id)
    exhausted = store.share(put(store), max_downloads=1, user_id="alice")
    assert http("GET", exhausted.url).status == 200
    expiring = store.share(put(store), expires=5, user_id="alice")
    clock.advance(6)
    before = {link.share_id: share_row(store, link.share_id) for link in (revoked, exhausted, expiring)}
    for link in (revoked, exhausted, expiring):
        for method in ("GET", "HEAD", "GET"):
            assert http(method, link.url, headers=basic("guess")).status == 410
    assert {sid: share_row(store, sid) for sid in before} == before


def test_unknown_and_malformed_tokens_get_404_and_other_methods_405(gw, http):
    link = gw.store.share(put(gw.store), user_id="alice")
    base = link.url.rsplit("/", 1)[0]
    token = token_of(link)
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), token[:20], "x" * 43, "..%2F" + token[5:]):
        assert http("GET", f"{base}/{bad}").status == 404
    assert http("PUT", link.url, data=b"x").status == 405
    assert http("DELETE", link.url).status == 405
    assert share_row(gw.store, link.share_id)["downloads"] == 0


def test_password_protected_links(gw, http):
    link = gw.store.share(put(gw.store), password="correct horse", user_id="alice")
    missing = http("GET", link.url)
    assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Basic ")
    assert share_row(gw.store, link.share_id)["failed_attempts"] == 0  # asking is not failing
    assert http("GET", link.url, headers=basic("wrong")).status == 401
    assert share_row(gw.store, link.share_id)["failed_attempts"] == 1
    ok = http("GET", link.url, headers=basic("correct horse"))
    assert (ok.status, ok.body) == (200, DATA)
    for _ in range(MAX_PASSWORD_FAILURES - 1):
        assert http("GET", link.url, headers=basic("wrong")).status == 401
    assert http("GET", link.url, headers=basic("correct horse")).status == 410  # locked
    assert share_row(gw.store, link.share_id)["failed_attempts"] == MAX_PASSWORD_FAILURES
    assert share_row(gw.store, link.share_id)["downloads"] == 1


def test_passwords_are_compared_in_constant_time(monkeypatch):
    import hmac

    from chuk_artifacts import shares

    compared = []
    original = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(shares.hmac, "compare_digest", spy)
    stored = shares.hash_password("secret")
    assert shares.check_password("secret", stored) and not shares.check_password("secreT", stored)
    assert len(compared) == 2 and all(len(a) == len(b) == 32 for a, b in compared)
    assert stored != shares.hash_password("secret")  # a fresh salt every time
    assert not shares.check_password("secret", "not-a-hash")


# -- S3: a redirect to a fresh presigned URL (SeaweedFS checks every signature) ------------------


@pytest.fixture
def s3_gateway(seaweedfs, weed_bucket, tmp_path) -> Iterator[Any]:
    """A store on a SeaweedFS bucket whose share links a live gateway answers."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from chuk_artifacts.gateway import make_app

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, None, server_class=Server, handler_class=Quiet)
    options = seaweedfs.store_options(weed_bucket, tmp_path)
    store = ArtifactStore(**options, public_url=f"http://127.0.0.1:{server.server_port}")
    server.set_app(make_app(store))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield store
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        store.close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def no_redirect(method: str, url: str) -> tuple[int, Any]:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, method=method), timeout=30) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers


def test_s3_links_redirect_to_a_fresh_short_lived_presigned_url(s3_gateway, seaweedfs, http):
    aid = put(s3_gateway, filename="data.bin")
    link = s3_gateway.share(aid, max_downloads=3, disposition="inline", user_id="alice")
    head = http("HEAD", link.url)  # answered by the gateway from the catalog: nothing counted
    assert (head.status, head.headers["Content-Length"]) == (200, str(len(DATA)))
    assert share_row(s3_gateway, link.share_id)["downloads"] == 0
    status, headers = no_redirect("GET", link.url)
    assert status == 307 and headers["Location"].startswith(seaweedfs.endpoint + "/")
    query = {k: v[0] for k, v in parse_qs(urlsplit(headers["Location"]).query).items()}
    assert 1 <= int(query["X-Amz-Expires"]) <= REDIRECT_SECONDS
    assert query["response-content-disposition"].startswith("inline;")
    full = http("GET", link.url)  # urllib follows the redirect to SeaweedFS
    assert (full.status, full.body) == (200, DATA)
    assert full.headers["Content-Disposition"].startswith("inline;")
    part = http("GET", link.url, headers={"Range": "bytes=100-199"})  # the Range goes along
    assert (part.status, part.body) == (206, DATA[100:200])
    assert share_row(s3_gateway, link.share_id)["downloads"] == 3
    assert http("GET", link.url).status == 410
    tampered = headers["Location"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert http("GET", tampered).status == 403  # the redirect's URL is really signed


def test_s3_links_die_with_their_artifact_and_on_revocation(s3_gateway, http):
    gone, kept = put(s3_gateway), put(s3_gateway)
    dead = s3_gateway.share(gone, user_id="alice")
    revoked = s3_gateway.share(kept, user_id="alice")
    s3_gateway.delete(gone, user_id="alice")
    s3_gateway.revoke_share(revoked.share_id, user_id="alice")
    assert no_redirect("GET", dead.url)[0] == 404
    assert no_redirect("GET", revoked.url)[0] == 410


# -- two gateway processes on one PostgreSQL catalog ---------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def two_gateways(make_store, tmp_path) -> Iterator[tuple[ArtifactStore, list[str]]]:
    """A store on PostgreSQL and two ``chuk-admin serve`` processes on its catalog and root."""
    store = make_store("postgres")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ARTIFACT_PROVIDER": "filesystem",
        "ARTIFACT_FS_ROOT": store.settings.fs_root,
        "ARTIFACT_CATALOG_URL": store.catalog.engine.url.render_as_string(hide_password=False),
    }
    ports = [_free_port(), _free_port()]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "from chuk_artifacts.cli import main; main()", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, proc in zip(urls, procs):
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"{url}/s/{'x' * 43}", timeout=5)
                except urllib.error.HTTPError:
                    break  # it answers (404)
                except urllib.error.URLError:
                    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                    time.sleep(0.05)
            else:
                pytest.fail(f"the gateway at {url} did not start")
        yield store, urls
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
            if proc.stderr:
                proc.stderr.close()


def test_two_gateway_processes_on_one_postgresql_catalog_enforce_one_limit(two_gateways):
    store, urls = two_gateways
    link = store.share(put(store), max_downloads=5, user_id="alice")
    token = token_of(link)
    start = threading.Barrier(20)

    def download(i: int) -> int:
        start.wait()
        try:
            with urllib.request.urlopen(f"{urls[i % 2]}/s/{token}", timeout=30) as response:
                assert response.read() == DATA
                return int(response.status)
        except urllib.error.HTTPError as exc:
            with exc:
                return int(exc.code)

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(download, range(20)))
    assert sorted(statuses) == [200] * 5 + [410] * 15
    assert share_row(store, link.share_id)["downloads"] == 5

    other = store.share(put(store), user_id="alice")
    assert all(urllib.request.urlopen(f"{url}/s/{token_of(other)}", timeout=10).status == 200 for url in urls)
    store.revoke_share(other.share_id, user_id="alice")
    for url in urls:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/s/{token_of(other)}", timeout=10)
        assert refused.value.code == 410


def test_basic_auth_parsing():
    from chuk_artifacts.gateway import _basic_password

    assert _basic_password(basic("p:w")["Authorization"]) == "p:w"  # only the first colon splits
    assert _basic_password("Bearer abc") is None
    assert _basic_password("Basic !!!") is None
    assert _basic_password(None) is None


# -- chuk-admin share ----------------------------------------------------------------------------


def admin(*args: str, input: str | None = None) -> Any:
    from click.testing import CliRunner

    from chuk_artifacts.cli import cli

    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_chuk_admin_share_create_ls_revoke(tmp_path):
    root = tmp_path / "home"
    with ArtifactStore(storage_provider="filesystem", fs_root=str(root)) as store:
        aid = put(store)
    where = ("--provider", "filesystem", "--root", str(root))
    made = admin(
        "share", "create", aid, "--max-downloads", "2", "--user", "alice", "--password-stdin", *where, input="pw\n"
    )
    assert made.exit_code == 0, made.output
    url = made.stdout.strip()
    assert url.startswith("http://127.0.0.1:8787/s/") and re.search(r"downloads +0 of 2", made.stderr)
    created = admin("share", "create", aid, "--inline", "--json", *where)
    link = json_of(created.stdout)
    assert (link["disposition"], link["created_by"], link["url"].startswith("http")) == ("inline", None, True)
    listed = admin("share", "ls", "--user", "alice", *where).stdout
    assert listed.splitlines()[0].split() == ["SHARE", "ARTIFACT", "STATE", "DOWNLOADS", "EXPIRES", "PASSWORD"]
    assert len(listed.splitlines()) == 3 and "0 of 2" in listed and "yes" in listed
    every = json_of(admin("share", "ls", "--json", *where).stdout)
    assert len(every) == 2 and all(entry["url"] is None for entry in every)
    (mine,) = [e for e in every if e["created_by"] == "alice"]
    with ArtifactStore(storage_provider="filesystem", fs_root=str(root)) as store:
        assert store.open_share(url.rsplit("/", 1)[1], password="pw").share.share_id == mine["share_id"]
    denied = admin("share", "revoke", mine["share_id"], "--user", "bob", *where)
    assert denied.exit_code == 1 and denied.stderr.startswith("error: access denied")
    assert (
        admin("share", "revoke", mine["share_id"], "--user", "alice", *where).stdout == f"revoked {mine['share_id']}\n"
    )
    again = admin("share", "revoke", mine["share_id"], *where)
    assert again.exit_code == 1 and "already revoked" in again.stderr
    assert len(json_of(admin("share", "ls", "--json", *where).stdout)) == 1
    assert len(json_of(admin("share", "ls", "--all", "--json", *where).stdout)) == 2
    bad = admin("share", "create", aid, "--expires", "0", *where)
    assert bad.exit_code == 2


def json_of(text: str) -> Any:
    import json

    return json.loads(text)
