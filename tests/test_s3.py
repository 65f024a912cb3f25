"""The S3 / IBM COS backend against a real SigV4-validating server: SeaweedFS (``weed mini``).

moto (the parametrized suite in the other modules) accepts any signature, any expiry and any part
size; SeaweedFS checks them as S3 does. What this module shows (issue #4):

- presigned GET, presigned PUT (then ``register_uploaded_artifact``) and multipart part URLs work
  from plain ``urllib``; a tampered, expired or re-targeted URL is refused with 403 and changes
  nothing;
- a 3-part multipart upload with S3's real 5 MiB minimum; a wrong ETag, a missing part or a small
  middle part fails and registers nothing;
- a 256 MiB ``stream_upload`` from a generator keeps peak RSS growth under 64 MiB (subprocess);
- IBM COS configured from the environment, as an S3-compatible endpoint;
- ``S3_SSE_ALGORITHM`` is sent on every write (put, multipart, copy);
- a missing bucket, wrong credentials, no credentials or a dead endpoint give a clear
  ``ProviderError`` in seconds, and ``validate_configuration()`` says which;
- one client per store, reused; no keys → the default AWS credential chain, resolved per store.

The server (conftest ``seaweedfs``) starts once per test process; without the ``weed`` binary
these tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import pytest

from chuk_artifacts import (
    ArtifactStore,
    MultipartUploadCompleteRequest,
    MultipartUploadInitRequest,
    MultipartUploadPart,
    Settings,
    StreamDownloadRequest,
    StreamUploadRequest,
)
from chuk_artifacts.errors import ArtifactNotFoundError, InvalidArgumentError, ProviderError
from chuk_artifacts.s3 import BLOCK_SIZE

pytestmark = pytest.mark.s3

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
#: A failure must be reported within this many seconds (no hang, no long retry loop).
QUICK = 10.0


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def make(seaweedfs: Any, weed_bucket: str, tmp_path: Path) -> Iterator[Callable[..., ArtifactStore]]:
    """``make(**overrides)``: a store on this test's SeaweedFS bucket; all closed afterwards."""
    made: list[ArtifactStore] = []

    def build(**overrides: Any) -> ArtifactStore:
        store = ArtifactStore(**{**seaweedfs.store_options(weed_bucket, tmp_path), **overrides})
        made.append(store)
        return store

    yield build
    for store in made:
        store.close()


@pytest.fixture
def s3(make: Callable[..., ArtifactStore]) -> ArtifactStore:
    return make()


@pytest.fixture
def no_aws_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty AWS home: no shared credentials or config, no profile, no instance metadata.
    Returns the credentials file path (empty) for the test to fill."""
    for var in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(var, raising=False)
    credentials = tmp_path / "aws-credentials"
    config = tmp_path / "aws-config"
    credentials.write_text("")
    config.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return credentials


def with_query(url: str, **changes: str) -> str:
    """``url`` with some query parameters replaced; every other byte of it is kept as signed."""
    parts = urlsplit(url)
    pairs = []
    for pair in parts.query.split("&"):
        name = unquote(pair.split("=", 1)[0])
        pairs.append(f"{pair.split('=', 1)[0]}={quote(changes[name], safe='')}" if name in changes else pair)
    assert set(changes) <= {unquote(p.split("=", 1)[0]) for p in parts.query.split("&")}
    return urlunsplit(parts._replace(query="&".join(pairs)))


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def tampered(url: str) -> str:
    """The same URL with one hex digit of its SigV4 signature changed."""
    signature = query_of(url)["X-Amz-Signature"]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    return with_query(url, **{"X-Amz-Signature": flipped})


def retargeted(url: str, bucket: str, key: str) -> str:
    """The same signed query, pointed at another object."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{bucket}/{key}"))


#: What S3 answers (403) to a URL whose signature does not cover the request, or has expired.
REFUSALS = {"SignatureDoesNotMatch", "AccessDenied"}


def refused(result: Any) -> str:
    """Assert S3 refused the request as unauthorised (403 with an S3 error); its error code."""
    import re

    assert result.status == 403, (result.status, result.body[:300])
    code = re.search(rb"<Code>([^<]+)</Code>", result.body)
    assert code is not None and code.group(1).decode() in REFUSALS, result.body[:300]
    return code.group(1).decode()


def objects(seaweedfs: Any, bucket: str, prefix: str = "") -> list[str]:
    listed = seaweedfs.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def head(seaweedfs: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return seaweedfs.client.head_object(Bucket=bucket, Key=key)
    except seaweedfs.client.exceptions.ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return None
        raise


def s3_parts(seaweedfs: Any, bucket: str, key: str, backend_upload_id: str) -> list[int]:
    """Part numbers S3 holds for a multipart upload."""
    listed = seaweedfs.client.list_parts(Bucket=bucket, Key=key, UploadId=backend_upload_id)
    return [p["PartNumber"] for p in listed.get("Parts", [])]


def backend_upload(store: ArtifactStore, upload_id: str) -> dict[str, Any]:
    with store.catalog.read() as conn:
        upload = store.catalog.get_upload(conn, upload_id)
    assert upload is not None and upload["backend_upload_id"]
    return upload


def initiate(store: ArtifactStore, **kwargs: Any) -> dict[str, Any]:
    return store.initiate_multipart_upload(
        MultipartUploadInitRequest(filename="big.bin", mime_type="application/octet-stream", **kwargs)
    )


def complete(store: ArtifactStore, upload_id: str, parts: list[tuple[int, str]]) -> str:
    return store.complete_multipart_upload(
        MultipartUploadCompleteRequest(
            upload_id=upload_id, parts=[MultipartUploadPart(PartNumber=n, ETag=e) for n, e in parts]
        )
    )


def put_part(store: ArtifactStore, http: Any, upload_id: str, number: int, data: bytes) -> str:
    result = http("PUT", store.get_part_upload_url(upload_id, number), data=data)
    assert result.status == 200, result.body
    etag = result.headers["ETag"]
    assert etag.strip('"') == hashlib.md5(data).hexdigest()
    return etag


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def streamed(store: ArtifactStore, artifact_id: str) -> bytes:
    return b"".join(store.stream_download(StreamDownloadRequest(artifact_id=artifact_id, chunk_size=MIB)))


# -- the server itself ---------------------------------------------------------------------------


def test_seaweedfs_checks_signatures(seaweedfs, weed_bucket):
    """The point of this module: unlike moto, the server refuses a request signed with a wrong key."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    forger = boto3.session.Session().client(
        "s3",
        endpoint_url=seaweedfs.endpoint,
        region_name="us-east-1",
        aws_access_key_id=seaweedfs.keys["aws_access_key_id"],
        aws_secret_access_key="not-the-secret",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as info:
        forger.put_object(Bucket=weed_bucket, Key="forged", Body=b"x")
    forger.close()
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert objects(seaweedfs, weed_bucket) == []


# -- presigned downloads ---------------------------------------------------------------------------


def test_presigned_get_downloads_with_plain_urllib(s3, seaweedfs, http):
    data = os.urandom(200_000)
    aid = s3.store(data, mime="text/csv", filename="report.csv", ttl=None)
    # A custom endpoint is signed with SigV4, explicitly (never a guess from the endpoint).
    assert s3.blobs.fs.s3.meta.config.signature_version == "s3v4"
    for url in (s3.presign_short(aid), s3.presign(aid, expires=120)):
        q = query_of(url)
        # SigV4 (never SigV2) even with a custom endpoint, signed with the store's key
        assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert q["X-Amz-Credential"].startswith(seaweedfs.keys["aws_access_key_id"] + "/")
        assert url.startswith(seaweedfs.endpoint + "/")
        result = http("GET", url)
        assert result.status == 200
        assert result.body == data
        assert result.headers["Content-Type"] == "text/csv"
        assert "report.csv" in result.headers["Content-Disposition"]
    assert query_of(s3.presign_short(aid))["X-Amz-Expires"] == "900"


def test_tampered_or_retargeted_download_url_is_refused(s3, seaweedfs, weed_bucket, http):
    secret = s3.store(b"secret bytes", mime="text/plain")
    public = s3.store(b"public bytes", mime="text/plain")
    url = s3.presign(public, expires=600)
    assert http("GET", url).body == b"public bytes"
    # The helpers keep a URL valid when they change nothing: a 403 below is the change's doing.
    assert http("GET", with_query(url, **{"X-Amz-Expires": "600"})).body == b"public bytes"
    assert http("GET", retargeted(url, weed_bucket, s3.metadata(public).key)).body == b"public bytes"

    for bad in (
        tampered(url),
        with_query(url, **{"X-Amz-Expires": "604800"}),  # a longer life than was signed
        retargeted(url, weed_bucket, s3.metadata(secret).key),  # another object, same signature
    ):
        result = http("GET", bad)
        refused(result)
        assert b"secret bytes" not in result.body
    assert http("GET", url).body == b"public bytes"


# -- presigned uploads ---------------------------------------------------------------------------


def test_presigned_put_then_register_records_real_size_and_sha256(s3, seaweedfs, weed_bucket, http):
    data = os.urandom(300_000)
    url, aid = s3.presign_upload(filename="upload.bin", mime_type="application/x-thing")
    assert query_of(url)["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert http("PUT", url, data=data).status == 200

    assert s3.register_uploaded_artifact(aid) == aid
    meta = s3.metadata(aid)
    assert (meta.bytes, meta.sha256, meta.filename, meta.mime) == (
        len(data),
        sha256(data),
        "upload.bin",
        "application/x-thing",
    )
    assert s3.retrieve(aid) == data
    assert http("GET", s3.presign_short(aid)).body == data
    # The staged object is gone; only the artifact remains in the bucket.
    assert objects(seaweedfs, weed_bucket) == [meta.key]

    # The URL is still valid, but it writes to a staging key: the artifact cannot change.
    assert http("PUT", url, data=b"overwritten").status == 200
    assert s3.retrieve(aid) == data
    assert s3.metadata(aid).sha256 == sha256(data)


def test_tampered_or_retargeted_upload_url_is_refused_and_changes_nothing(s3, seaweedfs, weed_bucket, http):
    victim = s3.store(b"original", mime="text/plain")
    victim_key = s3.metadata(victim).key
    url, aid = s3.presign_upload(filename="x.bin")

    refused(http("PUT", tampered(url), data=b"evil"))
    refused(http("PUT", with_query(url, **{"X-Amz-Expires": "604800"}), data=b"evil"))
    refused(http("PUT", retargeted(url, weed_bucket, victim_key), data=b"evil"))
    other_upload_url, other = s3.presign_upload(filename="y.bin")
    other_stage = urlsplit(other_upload_url).path.split("/", 2)[2]
    refused(http("PUT", retargeted(url, weed_bucket, other_stage), data=b"evil"))

    assert s3.retrieve(victim) == b"original"
    assert objects(seaweedfs, weed_bucket) == [victim_key]  # nothing staged, nothing replaced
    for pending in (aid, other):
        with pytest.raises(ArtifactNotFoundError):
            s3.register_uploaded_artifact(pending)
        assert not s3.exists(pending)

    # The URL, unchanged (through the same helper), still works: the refusals consumed nothing.
    own_stage = urlsplit(url).path.split("/", 2)[2]
    assert http("PUT", retargeted(url, weed_bucket, own_stage), data=b"good").status == 200
    assert s3.retrieve(s3.register_uploaded_artifact(aid)) == b"good"


def test_expired_urls_are_refused_and_change_nothing(s3, seaweedfs, weed_bucket, http):
    """GET, PUT and part URLs presigned for 1 s: refused 2 s later (one wait for all three)."""
    aid = s3.store(b"bytes", mime="text/plain")
    get_url = s3.presign(aid, expires=1)
    put_url, pending = s3.presign_upload(filename="late.bin", expires=1)
    init = initiate(s3)
    part_url = s3.get_part_upload_url(init["upload_id"], 1, expires=1)
    upload = backend_upload(s3, init["upload_id"])
    time.sleep(2.2)

    refused(http("GET", get_url))
    refused(http("PUT", put_url, data=b"too late"))
    refused(http("PUT", part_url, data=b"too late"))

    assert http("GET", s3.presign(aid, expires=60)).body == b"bytes"  # only time has changed
    with pytest.raises(ArtifactNotFoundError):
        s3.register_uploaded_artifact(pending)
    assert s3_parts(seaweedfs, weed_bucket, upload["key"], upload["backend_upload_id"]) == []
    assert objects(seaweedfs, weed_bucket) == [s3.metadata(aid).key]


# -- multipart uploads ---------------------------------------------------------------------------


@pytest.fixture
def three_parts() -> list[bytes]:
    """S3's real minimum: every part but the last has at least 5 MiB."""
    return [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(123_457)]


def test_multipart_upload_of_three_parts_through_part_urls(s3, seaweedfs, weed_bucket, http, three_parts):
    init = initiate(s3, summary="three parts")
    upload = backend_upload(s3, init["upload_id"])
    etags = [put_part(s3, http, init["upload_id"], n, d) for n, d in enumerate(three_parts, 1)]
    assert s3_parts(seaweedfs, weed_bucket, upload["key"], upload["backend_upload_id"]) == [1, 2, 3]

    aid = complete(s3, init["upload_id"], list(zip([1, 2, 3], etags)))
    assert aid == init["artifact_id"]
    whole = b"".join(three_parts)
    meta = s3.metadata(aid)
    assert (meta.bytes, meta.sha256, meta.filename) == (len(whole), sha256(whole), "big.bin")
    assert streamed(s3, aid) == whole
    assert head(seaweedfs, weed_bucket, meta.key)["ContentLength"] == len(whole)
    assert seaweedfs.client.list_multipart_uploads(Bucket=weed_bucket).get("Uploads", []) == []

    # The store issues no more part URLs, and one issued before completion stores nothing
    # (S3: 404 NoSuchUpload).
    with pytest.raises(ArtifactNotFoundError):
        s3.get_part_upload_url(init["upload_id"], 3)
    late = http("PUT", _part_url_for(s3, upload, 3), data=b"late")
    assert late.status == 404 and b"NoSuchUpload" in late.body
    assert streamed(s3, aid) == whole


def test_part_url_issued_before_abort_stores_nothing(s3, seaweedfs, weed_bucket, http):
    init = initiate(s3)
    upload = backend_upload(s3, init["upload_id"])
    url = s3.get_part_upload_url(init["upload_id"], 1)
    assert s3.abort_multipart_upload(init["upload_id"]) is True
    late = http("PUT", url, data=b"after abort")
    assert late.status == 404 and b"NoSuchUpload" in late.body
    assert seaweedfs.client.list_multipart_uploads(Bucket=weed_bucket).get("Uploads", []) == []
    assert objects(seaweedfs, weed_bucket) == []
    assert head(seaweedfs, weed_bucket, upload["key"]) is None


def _part_url_for(store: ArtifactStore, upload: dict[str, Any], number: int) -> str:
    """A part URL signed directly (the store no longer issues them once the upload is done)."""
    return store.presigner.part_url(upload, number, 60)


def test_multipart_wrong_etag_missing_or_small_part_registers_nothing(s3, seaweedfs, weed_bucket, http, three_parts):
    init = initiate(s3)
    upload = backend_upload(s3, init["upload_id"])
    etags = [put_part(s3, http, init["upload_id"], n, d) for n, d in enumerate(three_parts, 1)]
    small_middle = put_part(s3, http, init["upload_id"], 4, b"tiny")
    good = list(zip([1, 2, 3], etags))

    for parts in (
        [good[0], (2, '"' + "0" * 32 + '"'), good[2]],  # wrong ETag
        [*good, (5, '"' + "1" * 32 + '"')],  # a part that was never uploaded
        [good[0], good[1], (4, small_middle), (5, etags[2])],  # wrong part/ETag pairing
        [good[0], (3, etags[2]), (4, small_middle)],  # part 3 (123 KiB) is not last: too small
    ):
        with pytest.raises(InvalidArgumentError):
            complete(s3, init["upload_id"], parts)
        assert not s3.exists(init["artifact_id"])
        assert s3.search() == []
        assert head(seaweedfs, weed_bucket, upload["key"]) is None

    # Nothing was consumed: the right list still completes.
    aid = complete(s3, init["upload_id"], good)
    assert streamed(s3, aid) == b"".join(three_parts)
    assert s3.metadata(aid).sha256 == sha256(b"".join(three_parts))


def test_tampered_or_retargeted_part_url_is_refused(s3, seaweedfs, weed_bucket, http):
    init = initiate(s3)
    other = initiate(s3)
    upload = backend_upload(s3, init["upload_id"])
    other_upload = backend_upload(s3, other["upload_id"])
    url = s3.get_part_upload_url(init["upload_id"], 1)

    refused(http("PUT", tampered(url), data=b"evil"))
    refused(http("PUT", with_query(url, partNumber="2"), data=b"evil"))
    other_id = other_upload["backend_upload_id"]
    refused(http("PUT", with_query(url, uploadId=other_id), data=b"evil"))
    refused(http("PUT", retargeted(url, weed_bucket, other_upload["key"]), data=b"evil"))

    assert s3_parts(seaweedfs, weed_bucket, upload["key"], upload["backend_upload_id"]) == []
    assert s3_parts(seaweedfs, weed_bucket, other_upload["key"], other_id) == []
    # The same URL, unchanged (through the same helper), is accepted: only the edits were refused.
    assert http("PUT", with_query(url, partNumber="1"), data=b"fine").status == 200
    assert s3_parts(seaweedfs, weed_bucket, upload["key"], upload["backend_upload_id"]) == [1]


# -- streaming memory ------------------------------------------------------------------------------

_STREAM_SCRIPT = """
import hashlib, json, os, resource, sys, time
from chuk_artifacts import ArtifactStore, StreamDownloadRequest, StreamUploadRequest

MIB = 1024 * 1024
options, total = json.loads(sys.argv[1]), int(sys.argv[2])
store = ArtifactStore(**options)

def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])

def start_measuring():
    # Reset the peak (VmHWM) to the current RSS; else fall back to the ru_maxrss delta.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "VmHWM", status_kib("VmRSS")
    except OSError:
        return "ru_maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def peak_kib(how):
    return status_kib("VmHWM") if how == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

# Warm up: a multipart stream up and down, so pools and buffers exist before measuring.
warm = store.stream_upload(StreamUploadRequest(data_stream=[os.urandom(MIB)] * 20, mime="application/octet-stream"))
for _ in store.stream_download(StreamDownloadRequest(artifact_id=warm, chunk_size=MIB)):
    pass

how, baseline = start_measuring()
sent = hashlib.sha256()
block = os.urandom(MIB)

def source():  # a generator: 1 MiB at a time, every chunk different
    for i in range(total):
        chunk = i.to_bytes(8, "big") + block[8:]
        sent.update(chunk)
        yield chunk

t0 = time.monotonic()
aid = store.stream_upload(StreamUploadRequest(
    data_stream=source(), mime="application/octet-stream", content_length=total * MIB))
t1 = time.monotonic()
got, size = hashlib.sha256(), 0
for chunk in store.stream_download(StreamDownloadRequest(artifact_id=aid, chunk_size=MIB)):
    got.update(chunk)
    size += len(chunk)
t2 = time.monotonic()
meta = store.metadata(aid)
print(json.dumps({
    "how": how, "growth_kib": peak_kib(how) - baseline, "size": size, "meta_bytes": meta.bytes,
    "sent": sent.hexdigest(), "got": got.hexdigest(), "meta_sha256": meta.sha256,
    "upload_s": t1 - t0, "download_s": t2 - t1, "key": meta.key,
}))
store.close()
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads peak RSS from /proc (Linux)")
def test_stream_upload_of_256_mib_keeps_rss_growth_under_64_mib(seaweedfs, weed_bucket, tmp_path):
    """A generator of 256 MiB goes up as an S3 multipart upload and comes back as a stream; the
    subprocess's peak RSS grows by less than 64 MiB and the sha256 matches end to end."""
    total_mib, limit_mib = 256, 64
    options = seaweedfs.store_options(weed_bucket, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTIFACT_", "AWS_", "S3_", "IBM_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_STREAM_SCRIPT),
            json.dumps(options),
            str(total_mib),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    growth = out["growth_kib"] / 1024
    print(
        f"256 MiB via SeaweedFS: peak RSS growth {growth:.1f} MiB ({out['how']}), "
        f"up {out['upload_s']:.1f} s, down {out['download_s']:.1f} s"
    )
    assert out["size"] == out["meta_bytes"] == total_mib * MIB
    assert out["sent"] == out["got"] == out["meta_sha256"]
    assert growth < limit_mib
    stored = head(seaweedfs, weed_bucket, out["key"])
    assert stored["ContentLength"] == total_mib * MIB
    # Sent as an S3 multipart upload, part by part (its ETag says how many parts), not one PUT.
    parts = int(stored["ETag"].strip('"').rsplit("-", 1)[1])
    assert parts == -(-total_mib * MIB // BLOCK_SIZE)


# -- IBM COS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["ibm_cos", "vfs-ibm-cos"])
def test_ibm_cos_configured_from_the_environment(seaweedfs, weed_bucket, tmp_path, monkeypatch, http, provider):
    monkeypatch.setenv("ARTIFACT_PROVIDER", provider)
    monkeypatch.setenv("IBM_COS_ACCESS_KEY", seaweedfs.keys["aws_access_key_id"])
    monkeypatch.setenv("IBM_COS_SECRET_KEY", seaweedfs.keys["aws_secret_access_key"])
    monkeypatch.setenv("IBM_COS_ENDPOINT", seaweedfs.endpoint)
    monkeypatch.setenv("ARTIFACT_BUCKET", weed_bucket)
    monkeypatch.setenv("ARTIFACT_SQLITE_PATH", str(tmp_path / "cos.db"))
    # AWS keys in the environment must not be used for COS: its own keys win.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "aws-key-not-for-cos")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-not-for-cos")

    with ArtifactStore() as store:
        assert store.storage_provider == "ibm_cos"
        report = store.validate_configuration()
        assert report["status"] == "ok", report
        assert report["storage"]["endpoint"] == seaweedfs.endpoint
        assert report["storage"]["bucket"] == weed_bucket

        aid = store.store(b"cos bytes", mime="text/plain", filename="cos.txt")
        assert store.retrieve(aid) == b"cos bytes"
        stored = seaweedfs.client.get_object(Bucket=weed_bucket, Key=store.metadata(aid).key)
        assert stored["Body"].read() == b"cos bytes"

        url = store.presign_short(aid)
        assert url.startswith(seaweedfs.endpoint + "/" + weed_bucket + "/")
        assert query_of(url)["X-Amz-Credential"].startswith(seaweedfs.keys["aws_access_key_id"] + "/")
        assert http("GET", url).body == b"cos bytes"
        refused(http("GET", tampered(url)))

        put_url, pending = store.presign_upload(filename="in.txt")
        assert http("PUT", put_url, data=b"uploaded to cos").status == 200
        assert store.retrieve(store.register_uploaded_artifact(pending)) == b"uploaded to cos"


def test_ibm_cos_without_an_endpoint_is_a_clear_configuration_error(monkeypatch, tmp_path):
    monkeypatch.setenv("ARTIFACT_PROVIDER", "ibm_cos")
    monkeypatch.setenv("ARTIFACT_BUCKET", "some-bucket")
    monkeypatch.setenv("ARTIFACT_SQLITE_PATH", str(tmp_path / "cos.db"))
    with pytest.raises(InvalidArgumentError, match="IBM_COS_ENDPOINT"):
        ArtifactStore()


# -- server-side encryption ------------------------------------------------------------------------


def _record_sse(store: ArtifactStore) -> list[tuple[str, str | None]]:
    """(operation, x-amz-server-side-encryption header) of every request the store's client sends."""
    seen: list[tuple[str, str | None]] = []

    def record(request: Any, operation_name: str, **_: Any) -> None:
        value = request.headers.get("x-amz-server-side-encryption")
        seen.append((operation_name, value.decode() if isinstance(value, bytes) else value))

    store.blobs.fs.connect()
    store.blobs.fs.s3.meta.events.register("request-created.s3", record)
    return seen


def _headers_of(seen: list[tuple[str, str | None]], operation: str) -> set[str | None]:
    return {value for op, value in seen if op == operation}


def test_sse_algorithm_is_requested_on_every_write(make, seaweedfs, weed_bucket, http):
    store = make(s3_sse_algorithm="AES256")
    seen = _record_sse(store)

    put = store.store(b"small", mime="text/plain")
    assert _headers_of(seen, "PutObject") == {"AES256"}

    seen.clear()
    big = os.urandom(MIB)
    streamed_id = store.stream_upload(StreamUploadRequest(data_stream=[big] * 20, mime="application/octet-stream"))
    assert _headers_of(seen, "CreateMultipartUpload") == {"AES256"}
    assert len([op for op, _ in seen if op == "UploadPart"]) >= 2  # really a multipart write
    assert "CompleteMultipartUpload" in {op for op, _ in seen}

    seen.clear()
    url, registered = store.presign_upload(filename="p.bin")
    assert http("PUT", url, data=b"presigned").status == 200
    store.register_uploaded_artifact(registered)  # server-side copy from the staging key
    assert _headers_of(seen, "CopyObject") == {"AES256"}

    seen.clear()
    initiate(store)  # native multipart (part URLs): the upload is created encrypted
    assert _headers_of(seen, "CreateMultipartUpload") == {"AES256"}

    for aid in (put, streamed_id, registered):
        assert head(seaweedfs, weed_bucket, store.metadata(aid).key).get("ServerSideEncryption") == "AES256"
    assert store.retrieve(streamed_id) == big * 20


def test_without_sse_no_encryption_is_requested(s3, seaweedfs, weed_bucket):
    seen = _record_sse(s3)
    aid = s3.store(b"plain", mime="text/plain")
    assert _headers_of(seen, "PutObject") == {None}
    assert "ServerSideEncryption" not in head(seaweedfs, weed_bucket, s3.metadata(aid).key)


# -- failures: quick and clear -------------------------------------------------------------------


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


FAILURES = {
    "bucket_missing": lambda server: {"bucket": "chuk-no-such-bucket"},
    "access_denied:secret": lambda server: {"aws_secret_access_key": "wrong-secret"},
    "access_denied:key": lambda server: {
        "aws_access_key_id": "nobody",
        "aws_secret_access_key": "wrong",
    },
    "endpoint_unreachable": lambda server: {"s3_endpoint_url": f"http://127.0.0.1:{_closed_port()}"},
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failures_are_quick_clear_provider_errors(make, seaweedfs, case):
    reason = case.split(":")[0]
    store = make(**FAILURES[case](seaweedfs))

    def check(call: Callable[[], Any]) -> ProviderError:
        started = time.monotonic()
        with pytest.raises(ProviderError) as info:
            call()
        assert time.monotonic() - started < QUICK
        exc = info.value
        assert getattr(exc, "reason", None) == reason, str(exc)
        # No botocore chain behind it, nothing to scroll through: one clear message.
        assert exc.__cause__ is None and exc.__suppress_context__
        assert "Traceback" not in str(exc)
        return exc

    error = check(lambda: store.store(b"x", mime="text/plain"))
    if reason == "bucket_missing":
        assert "chuk-no-such-bucket" in str(error) and "does not exist" in str(error)
    elif reason == "access_denied":
        assert "refused access" in str(error) and "access key" in str(error)
    else:
        assert "cannot reach" in str(error) and store.blobs.endpoint_url in str(error)
    small = StreamUploadRequest(data_stream=[b"y" * 1000], mime="text/plain")
    check(lambda: store.stream_upload(small))
    # Against a dead endpoint each call costs a retry with backoff: keep that case short.
    if reason != "endpoint_unreachable":
        check(lambda: store.blobs.get("grid/anything"))
    assert store.search() == []  # nothing registered

    sent: list[str] = []
    store.blobs.fs.s3.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.method))
    started = time.monotonic()
    report = store.validate_configuration()
    assert time.monotonic() - started < QUICK
    if reason == "endpoint_unreachable":  # one retry (s3.MAX_ATTEMPTS), no longer budget
        assert sent == ["HEAD", "HEAD"]
    assert report["status"] == "error"
    assert report["storage"]["status"] == "error"
    assert report["storage"]["reason"] == reason, report
    # The catalog is local and fine: the report says which part failed.
    assert report["catalog"]["status"] == "ok"


def _outcome_within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s result or exception, run in a daemon thread: a call that hangs fails the
    test after ``seconds`` instead of hanging the run."""
    import threading

    box: list[Any] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still waiting after {seconds} s"
    return box[0]


def test_an_endpoint_that_never_answers_fails_within_the_configured_timeout(make, seaweedfs, monkeypatch):
    """A server that accepts connections and never answers (a hung proxy, a black-holed
    port): the configured read timeout bounds every call, however many retries there are."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel accepts the connections; nobody ever reads or answers
    try:
        monkeypatch.setenv("S3_READ_TIMEOUT", "0.5")
        assert Settings.from_env().s3_read_timeout == 0.5
        store = make(s3_endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}", s3_read_timeout=0.5)
        error = _outcome_within(QUICK, lambda: store.store(b"x", mime="text/plain"))
        assert isinstance(error, ProviderError) and error.reason == "endpoint_unreachable", repr(error)
        # An upload from a file object, for which botocore asks for "100-continue".
        upload = StreamUploadRequest(data_stream=[b"y" * 1000], mime="text/plain")
        assert isinstance(_outcome_within(QUICK, lambda: store.stream_upload(upload)), ProviderError)
        report = _outcome_within(QUICK, store.validate_configuration)
        assert report["storage"]["reason"] == "endpoint_unreachable", report
        assert store.search() == []
    finally:
        silent.close()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "4000"])
def test_s3_timeouts_are_validated(monkeypatch, value):
    monkeypatch.setenv("S3_CONNECT_TIMEOUT", value)
    with pytest.raises(InvalidArgumentError, match="s3_connect_timeout"):
        Settings.from_env()


def test_no_credentials_anywhere_is_a_clear_provider_error(seaweedfs, weed_bucket, tmp_path, no_aws_profile):
    settings = Settings(
        storage_provider="s3",
        bucket=weed_bucket,
        s3_endpoint_url=seaweedfs.endpoint,
        sqlite_path=str(tmp_path / "c.db"),
    )
    with ArtifactStore(settings=settings) as store:
        started = time.monotonic()
        with pytest.raises(ProviderError) as info:
            store.store(b"x", mime="text/plain")
        assert time.monotonic() - started < QUICK
        assert info.value.reason == "no_credentials"
        assert info.value.__cause__ is None and info.value.__suppress_context__
        report = store.validate_configuration()
        assert report["storage"]["reason"] == "no_credentials", report
    assert objects(seaweedfs, weed_bucket) == []


def test_validate_configuration_is_ok_on_a_good_bucket(s3, weed_bucket, seaweedfs):
    report = s3.validate_configuration()
    assert report["status"] == "ok", report
    assert report["storage"] == {
        **report["storage"],
        "status": "ok",
        "provider": "s3",
        "bucket": weed_bucket,
        "endpoint": seaweedfs.endpoint,
    }
    assert objects(seaweedfs, weed_bucket) == []  # the probe cleans up after itself


# -- clients -----------------------------------------------------------------------------------------


@pytest.fixture
def client_creations(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many botocore clients are created: ``aio`` (s3fs) and ``sync`` (presigning)."""
    import botocore.session
    from aiobotocore.session import AioSession

    counts = {"aio": 0, "sync": 0}
    aio_create, sync_create = AioSession.create_client, botocore.session.Session.create_client

    def aio(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["aio"] += 1
        return aio_create(self, *args, **kwargs)

    def sync(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["sync"] += 1
        return sync_create(self, *args, **kwargs)

    monkeypatch.setattr(AioSession, "create_client", aio)
    monkeypatch.setattr(botocore.session.Session, "create_client", sync)
    return counts


def test_one_client_per_store_reused_across_operations(make, client_creations, http):
    store = make()
    assert client_creations == {"aio": 0, "sync": 0}  # nothing is connected until first use
    ids = [store.store(f"item {i}".encode(), mime="text/plain") for i in range(10)]
    client = store.blobs.fs.s3
    for aid in ids:
        assert store.retrieve(aid).startswith(b"item ")
        assert store.exists(aid)
        store.metadata(aid)
        assert http("GET", store.presign(aid, expires=60)).status == 200
    big = store.stream_upload(StreamUploadRequest(data_stream=[os.urandom(MIB)] * 10, mime="application/octet-stream"))
    assert len(streamed(store, big)) == 10 * MIB
    url, pending = store.presign_upload(filename="p.bin")
    assert http("PUT", url, data=b"p").status == 200
    store.register_uploaded_artifact(pending)
    init = initiate(store)
    store.get_part_upload_url(init["upload_id"], 1)
    store.abort_multipart_upload(init["upload_id"])
    store.copy_file(ids[0])
    store.delete(ids[1])
    assert store.validate_configuration()["status"] == "ok"

    assert client_creations == {"aio": 1, "sync": 1}
    assert store.blobs.fs.s3 is client

    other = make()  # another store has a client of its own
    other.store(b"x", mime="text/plain")
    assert client_creations == {"aio": 2, "sync": 1}
    assert other.blobs.fs.s3 is not client


# -- credentials -----------------------------------------------------------------------------------


def _chain_settings(seaweedfs: Any, bucket: str, tmp_path: Path, name: str) -> Settings:
    """Settings with no keys at all: whatever the AWS credential chain finds is used."""
    return Settings(
        storage_provider="s3",
        bucket=bucket,
        s3_endpoint_url=seaweedfs.endpoint,
        sqlite_path=str(tmp_path / f"{name}.db"),
    )


def _works(store: ArtifactStore, http: Any) -> None:
    aid = store.store(b"via the chain", mime="text/plain")
    assert store.retrieve(aid) == b"via the chain"
    assert http("GET", store.presign(aid, expires=60)).body == b"via the chain"  # presigner too


def test_default_credential_chain_from_environment(seaweedfs, weed_bucket, tmp_path, monkeypatch, no_aws_profile, http):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.keys["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.keys["aws_secret_access_key"])
    with ArtifactStore(settings=_chain_settings(seaweedfs, weed_bucket, tmp_path, "env")) as store:
        assert store.blobs._credentials == {
            "aws_access_key_id": None,
            "aws_secret_access_key": None,
        }
        _works(store, http)


def test_default_credential_chain_from_shared_credentials_file(
    seaweedfs, weed_bucket, tmp_path, monkeypatch, no_aws_profile, http
):
    no_aws_profile.write_text(
        "[default]\n"
        f"aws_access_key_id = {seaweedfs.keys['aws_access_key_id']}\n"
        f"aws_secret_access_key = {seaweedfs.keys['aws_secret_access_key']}\n"
    )
    monkeypatch.setenv("ARTIFACT_PROVIDER", "s3")
    monkeypatch.setenv("ARTIFACT_BUCKET", weed_bucket)
    monkeypatch.setenv("S3_ENDPOINT_URL", seaweedfs.endpoint)
    monkeypatch.setenv("ARTIFACT_SQLITE_PATH", str(tmp_path / "file.db"))
    with ArtifactStore() as store:
        assert store.settings.aws_access_key_id is None
        _works(store, http)


def test_default_credential_chain_is_resolved_per_store(
    seaweedfs, weed_bucket, tmp_path, monkeypatch, no_aws_profile, http
):
    """Credentials found by the chain belong to the store that found them: a store made after
    the environment changed uses the new keys (rotated keys, another account in one process)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.keys["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "a-stale-secret")
    with ArtifactStore(settings=_chain_settings(seaweedfs, weed_bucket, tmp_path, "stale")) as stale:
        with pytest.raises(ProviderError) as info:
            stale.store(b"x", mime="text/plain")
        assert info.value.reason == "access_denied"
        url = stale.presign_upload(filename="x")[0]
        refused(http("PUT", url, data=b"x"))

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.keys["aws_secret_access_key"])
    with ArtifactStore(settings=_chain_settings(seaweedfs, weed_bucket, tmp_path, "fresh")) as fresh:
        _works(fresh, http)


# -- bulk delete (cleanup) ---------------------------------------------------------------------


def test_cleanup_deletes_in_batches_and_leaves_live_objects(make, seaweedfs, weed_bucket, monkeypatch, clock):
    """Expired artifacts go in ``DeleteObjects`` batches (3 keys each here, 1,000 in production);
    keys already gone are no error; a live artifact's object stays."""
    import chuk_artifacts.s3 as s3_module

    monkeypatch.setattr(s3_module, "_DELETE_BATCH", 3)
    store = make()
    calls: list[str] = []
    call_s3 = store.blobs.fs.call_s3

    def spy(method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        return call_s3(method, *args, **kwargs)

    monkeypatch.setattr(store.blobs.fs, "call_s3", spy)
    doomed = [store.store(b"x%d" % i, mime="text/plain", ttl=10) for i in range(7)]
    keep = store.store(b"keep", mime="text/plain", ttl=None)
    keys = [store.metadata(a)["key"] for a in doomed]
    seaweedfs.client.delete_object(Bucket=weed_bucket, Key=keys[0])  # already gone
    calls.clear()
    clock.advance(11)
    result = store.cleanup_expired_sessions()
    assert result.artifacts == 7
    assert calls.count("delete_objects") == 3 and "delete_object" not in calls
    left = objects(seaweedfs, weed_bucket, f"grid/{store.sandbox_id}/")
    assert left == [store.metadata(keep)["key"]]
    assert store.retrieve(keep) == b"keep"


def test_bulk_delete_reports_keys_the_server_refused(s3, monkeypatch):
    def refuse(method: str, **kwargs: Any) -> Any:
        assert method == "delete_objects"
        return {"Errors": [{"Key": "grid/x", "Code": "AccessDenied", "Message": "Access Denied"}]}

    monkeypatch.setattr(s3.blobs.fs, "call_s3", refuse)
    with pytest.raises(ProviderError, match="failed to delete 1 of 2 objects.*AccessDenied") as info:
        s3.blobs.delete_many(["grid/x", "grid/y"])
    assert info.value.reason == "access_denied"
