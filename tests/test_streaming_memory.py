"""Streaming keeps memory bounded: 256 MiB up and down on the filesystem and sqlite backends, peak RSS growth
under 64 MiB (the published package grew by ~2x the object size). Each run is a fresh subprocess
so the peak (``ru_maxrss``) belongs to this measurement alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
TOTAL_MIB = 256
LIMIT_MIB = 64

_COMMON = """
import asyncio, hashlib, os, resource, sys
from chuk_artifacts import ArtifactStore, AsyncArtifactStore, StreamDownloadRequest, StreamUploadRequest

MIB = 1024 * 1024
TOTAL = int(sys.argv[2])

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

store = ArtifactStore(storage_provider=sys.argv[3], fs_root=sys.argv[1], sqlite_path=sys.argv[1] + "/artifacts.db")
sent = hashlib.sha256()

def source():
    for _ in range(TOTAL):
        chunk = os.urandom(MIB)
        sent.update(chunk)
        yield chunk
"""

_SYNC = (
    _COMMON
    + """
warm = store.stream_upload(StreamUploadRequest(data_stream=[os.urandom(MIB)] * 2, mime="application/octet-stream"))
for _ in store.stream_download(StreamDownloadRequest(artifact_id=warm)):
    pass
baseline = peak_kib()

aid = store.stream_upload(StreamUploadRequest(
    data_stream=source(), mime="application/octet-stream", content_length=TOTAL * MIB))
got, size = hashlib.sha256(), 0
for chunk in store.stream_download(StreamDownloadRequest(artifact_id=aid)):
    got.update(chunk)
    size += len(chunk)
assert size == TOTAL * MIB, size
assert got.hexdigest() == sent.hexdigest() == store.metadata(aid).sha256
print("GROWTH_KIB", peak_kib() - baseline)
store.close()
"""
)

_ASYNC = (
    _COMMON
    + """
astore = AsyncArtifactStore(sync_store=store)

async def asource(n):
    for chunk in (source() if n is None else [os.urandom(MIB)] * n):
        await asyncio.sleep(0)
        yield chunk

async def roundtrip(n=None):
    aid = await astore.stream_upload(StreamUploadRequest(
        data_stream=asource(n), mime="application/octet-stream"))
    got, size = hashlib.sha256(), 0
    async for chunk in astore.stream_download(StreamDownloadRequest(artifact_id=aid)):
        got.update(chunk)
        size += len(chunk)
    return aid, got.hexdigest(), size

async def main():
    await roundtrip(2)
    baseline = peak_kib()
    aid, digest, size = await roundtrip()
    assert size == TOTAL * MIB, size
    assert digest == sent.hexdigest() == (await astore.metadata(aid)).sha256
    print("GROWTH_KIB", peak_kib() - baseline)

asyncio.run(main())
store.close()
"""
)


def _peak_growth_mib(script: str, tmp_path: Path, provider: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for var in [v for v in env if v.startswith("ARTIFACT_")]:
        del env[var]
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(tmp_path / "artifacts"), str(TOTAL_MIB), provider],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("GROWTH_KIB")][-1]
    growth = int(line.split()[1]) / 1024
    print(f"peak RSS growth streaming {TOTAL_MIB} MiB up and down on {provider}: {growth:.1f} MiB")
    return growth


PROVIDERS = pytest.mark.parametrize("provider", ["filesystem", "sqlite"])


@pytest.mark.slow
@PROVIDERS
def test_streaming_256_mib_keeps_peak_rss_growth_under_64_mib(tmp_path, provider):
    assert _peak_growth_mib(_SYNC, tmp_path, provider) < LIMIT_MIB


@pytest.mark.slow
@PROVIDERS
def test_async_streaming_256_mib_keeps_peak_rss_growth_under_64_mib(tmp_path, provider):
    assert _peak_growth_mib(_ASYNC, tmp_path, provider) < LIMIT_MIB
