"""Streaming measurements in a fresh process: ``python -m benchmarks.stream_worker SPEC``.

SPEC is JSON: ``backend`` (a backend spec), ``ops`` (run in that order), ``source`` (a local
file of ``size`` bytes) and, for downloads, ``artifact_id``. Prints one JSON line per op:
seconds, MiB/s and the peak RSS growth during the op. The kernel's high-water mark is reset
(``/proc/self/clear_refs``) just before each op, so the peak is that op's own; where the reset
is unavailable, ``ru_maxrss`` is used and each op should run in its own process.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from typing import Any

from chuk_artifacts import AsyncArtifactStore, StreamDownloadRequest, StreamUploadRequest

from .backends import build_store, raw_fs

CHUNK = 64 * 1024  # the library's default chunk size, and shutil's copy buffer on Linux


def _status(field: str) -> int | None:
    """A ``/proc/self/status`` figure in KiB (VmRSS, VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Peak:
    """Peak RSS growth (MiB) of the block it wraps."""

    def __enter__(self) -> Peak:  # noqa: PYI034
        gc.collect()
        self.reset = _reset_peak()
        self.before = _status("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: object) -> None:
        peak = _status("VmHWM") if self.reset else None
        self.peak = peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.growth_mib = max(0, self.peak - self.before) / 1024


def main(argv: list[str]) -> list[dict[str, Any]]:
    spec = json.loads(argv[0])
    backend, size = spec["backend"], spec["size"]
    store = build_store(backend, spec["tag"])
    fs, prefix = raw_fs(backend, store)
    results = []
    try:
        artifact_id = spec.get("artifact_id")
        if artifact_id is None:  # memory: nothing survives a process, so store the object here
            with open(spec["source"], "rb") as src:
                artifact_id = store.stream_upload(StreamUploadRequest(src, mime="application/octet-stream", ttl=None))
        key = store.metadata(artifact_id).key
        # Warm-up, untimed: in a fresh process the first request to a remote backend pays for
        # the client, credentials and connection; without this it lands on whichever op runs
        # first (the order alternates), penalising one side of a ratio.
        store.blobs.fs.info(store.blobs.path(key))
        fs.pipe_file(f"{prefix}/warm-up-{os.getpid()}", b"x")
        fs.rm_file(f"{prefix}/warm-up-{os.getpid()}")
        for op in spec["ops"]:
            with Peak() as peak:
                t = time.perf_counter()
                created = _run(op, store, fs, prefix, spec, artifact_id, key)
                seconds = time.perf_counter() - t
            results.append(
                {
                    "op": op,
                    "seconds": seconds,
                    "mib_per_s": size / (1024 * 1024) / seconds,
                    "rss_growth_mib": round(peak.growth_mib, 2),
                    "rss_method": "VmHWM reset" if peak.reset else "ru_maxrss",
                }
            )
            if isinstance(created, str) and op in ("upload", "async_upload"):
                store.delete(created)
            elif isinstance(created, str):
                fs.rm_file(created)
    finally:
        store.close()
    return results


def _run(
    op: str, store: Any, fs: Any, prefix: str, spec: dict[str, Any], artifact_id: str | None, key: str | None
) -> Any:
    source, size = spec["source"], spec["size"]
    if op == "upload":
        with open(source, "rb") as src:
            return store.stream_upload(
                StreamUploadRequest(
                    src,
                    mime="application/octet-stream",
                    content_length=size,
                    ttl=None,
                )
            )
    if op == "async_upload":
        return asyncio.run(_async_upload(store, source, size))
    if op == "download":
        with open(os.devnull, "wb") as sink:
            sink.writelines(store.stream_download(StreamDownloadRequest(artifact_id)))
        return None
    if op == "async_download":
        return asyncio.run(_async_download(store, artifact_id))
    if op == "raw_upload":  # shutil over fsspec files: the same backend, no library
        path = f"{prefix}/stream-{os.getpid()}"
        with open(source, "rb") as src, fs.open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        return path
    if op == "raw_upload_fsync":  # what LocalBlobs guarantees, by hand
        os.makedirs(prefix, exist_ok=True)
        path = os.path.join(prefix, f"stream-{os.getpid()}")
        fd, tmp = tempfile.mkstemp(dir=prefix)
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, path)
        return path
    if op == "raw_download":
        with store.blobs.fs.open(store.blobs.path(key), "rb") as src, open(os.devnull, "wb") as sink:
            shutil.copyfileobj(src, sink, CHUNK)
        return None
    raise ValueError(f"unknown op {op!r}")


async def _async_upload(store: Any, source: str, size: int) -> str:
    astore = AsyncArtifactStore(sync_store=store)

    async def chunks():  # an async source, as an async app would hand it over
        with open(source, "rb") as src:  # noqa: ASYNC230 - a page-cached local file
            while chunk := src.read(CHUNK):
                yield chunk

    return await astore.stream_upload(
        StreamUploadRequest(
            chunks(),
            mime="application/octet-stream",
            content_length=size,
            ttl=None,
        )
    )


async def _async_download(store: Any, artifact_id: str) -> None:
    astore = AsyncArtifactStore(sync_store=store)
    with open(os.devnull, "wb") as sink:  # noqa: ASYNC230 - /dev/null never blocks
        async for chunk in astore.stream_download(StreamDownloadRequest(artifact_id)):
            sink.write(chunk)


if __name__ == "__main__":
    for line in main(sys.argv[1:]):
        print(json.dumps(line))
