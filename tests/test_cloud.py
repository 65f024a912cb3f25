"""Azure Blob Storage (Azurite) and Google Cloud Storage (gcp-storage-emulator) specifics: how
URLs are presigned, how a missing container or bucket is reported, and the install hint of a
missing extra. Their store behaviour is the parametrised suite's (``backend`` = azure, gcs) and
the conformance kit's (``tests/test_conformance.py``)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from chuk_artifacts import ArtifactStore
from chuk_artifacts.errors import InvalidArgumentError, ProviderError

DATA = b"cloud bytes " * 1000


# -- Azure: SAS download URLs, uploads through the gateway ---------------------------------------


def test_azure_download_url_is_a_sas_url_that_azurite_serves(make_store, http):
    store = make_store("azure")
    aid = store.store(DATA, mime="text/csv", filename="report.csv", user_id="alice")
    url = store.presign(aid, user_id="alice")
    assert "sig=" in urlsplit(url).query and "/chuk-" in url  # served by Azure, not the gateway
    r = http("GET", url)
    assert r.status == 200
    assert r.body == DATA
    assert r.headers["Content-Type"] == "text/csv"
    assert 'filename="report.csv"' in r.headers["Content-Disposition"]


def test_azure_refuses_a_sas_url_for_another_blob_or_with_a_changed_signature(make_store, http):
    store = make_store("azure")
    first = store.store(b"first", mime="text/plain", user_id="alice")
    second = store.store(b"second", mime="text/plain", user_id="alice")
    url = urlsplit(store.presign(first, user_id="alice"))
    other_key = urlsplit(store.presign(second, user_id="alice")).path
    assert http("GET", urlunsplit(url._replace(path=other_key))).status == 403
    forged = url.query.replace("sig=", "sig=A")
    assert http("GET", urlunsplit(url._replace(query=forged))).status == 403


def test_azure_refuses_an_expired_sas_url(make_store, http):
    store = make_store("azure")
    aid = store.store(b"soon gone", mime="text/plain")
    url = store.presign(aid, 1)
    time.sleep(2.5)
    assert http("GET", url).status == 403


def test_azure_uploads_go_through_the_gateway(serve, http):
    gw = serve("azure")
    url, aid = gw.store.presign_upload(user_id="alice", filename="up.bin")
    assert url.startswith(gw.url)
    assert http("PUT", url, data=DATA).status == 200
    gw.store.register_uploaded_artifact(aid, user_id="alice")
    assert gw.store.retrieve(aid, user_id="alice") == DATA
    assert http("GET", gw.store.presign(aid, user_id="alice")).body == DATA


def test_azure_missing_container_is_reported_as_such(azurite, tmp_path):
    with ArtifactStore(
        storage_provider="azure",
        bucket="no-such-container",
        azure_connection_string=azurite,
        sqlite_path=str(tmp_path / "c.db"),
    ) as store:
        with pytest.raises(ProviderError, match="container 'no-such-container' does not exist") as caught:
            store.store(b"x", mime="text/plain")
        assert caught.value.reason == "bucket_missing"
        health = store.blobs.check()
        assert health["status"] == "error" and health["reason"] == "bucket_missing"


def test_azure_without_credentials_says_which_settings_it_needs(tmp_path):
    pytest.importorskip("adlfs")
    with pytest.raises(InvalidArgumentError, match="AZURE_STORAGE_CONNECTION_STRING"):
        ArtifactStore(storage_provider="azure", bucket="artifacts", sqlite_path=str(tmp_path / "c.db"))


# -- GCS: gateway URLs ----------------------------------------------------------------------------


def test_gcs_urls_are_gateway_urls_that_stream_from_the_bucket(serve, http):
    gw = serve("gcs")
    aid = gw.store.store(DATA, mime="text/plain", filename="g.txt", user_id="alice")
    url = gw.store.presign(aid, user_id="alice")
    assert url.startswith(gw.url)
    assert http("GET", url).body == DATA
    upload_url, upload_aid = gw.store.presign_upload(user_id="alice", filename="u.bin")
    assert http("PUT", upload_url, data=b"uploaded").status == 200
    gw.store.register_uploaded_artifact(upload_aid, user_id="alice")
    assert gw.store.retrieve(upload_aid, user_id="alice") == b"uploaded"


def test_gcs_missing_bucket_is_reported_as_such(gcs_emulator, tmp_path):
    with ArtifactStore(
        storage_provider="gcs",
        bucket="no-such-bucket",
        gcs_endpoint_url=gcs_emulator,
        sqlite_path=str(tmp_path / "c.db"),
    ) as store:
        with pytest.raises(ProviderError, match="bucket 'no-such-bucket' does not exist") as caught:
            store.retrieve(store.store(b"x", mime="text/plain"))
        assert caught.value.reason == "bucket_missing"
        assert store.blobs.check()["reason"] == "bucket_missing"


# -- a provider whose extra is missing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "module", "extra"), [("azure", "adlfs", "azure"), ("gcs", "gcsfs", "gcs"), ("s3", "s3fs", "s3")]
)
def test_a_provider_without_its_extra_is_refused_with_the_pip_command(monkeypatch, provider, module, extra):
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name.split(".")[0] == module else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(InvalidArgumentError) as caught:
        ArtifactStore(storage_provider=provider)
    assert f"pip install 'chuk-artifacts[{extra}]'" in str(caught.value)
