"""stream_upload of 256 MiB on the filesystem backend: sha256 computed in the writing thread
(current ``streaming.copy_stream``) vs in a helper thread, a MiB of chunks at a time, overlapped
with the writes (hashlib and file writes both release the GIL). Monkeypatched in this process."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import chuk_artifacts.streaming as streaming

from .. import stream_worker
from ..backends import raw_fs
from ..common import MiB
from ..stream import _source
from .common import compare, scratch_store

SIZE = 256 * MiB


def copy_stream_overlapped(chunks, target, *, total=None, progress=None):  # type: ignore[no-untyped-def]
    digest = hashlib.sha256()
    size, batch, batched, pending = 0, [], 0, None

    def hash_all(items):  # type: ignore[no-untyped-def]
        for item in items:
            digest.update(item)

    with ThreadPoolExecutor(1) as pool:
        for chunk in chunks:
            target.write(chunk)
            size += len(chunk)
            batch.append(chunk)
            batched += len(chunk)
            if progress is not None:
                progress(size, total)
            if batched >= MiB:
                if pending is not None:
                    pending.result()  # in order, and at most two MiB held
                pending = pool.submit(hash_all, batch)
                batch, batched = [], 0
        if pending is not None:
            pending.result()
    hash_all(batch)
    return size, digest.hexdigest()


def main() -> None:
    store, workdir = scratch_store("filesystem", "upload")
    source = _source(workdir, SIZE)
    fs, prefix = raw_fs({"name": "filesystem", "workdir": workdir}, store)
    job = {"source": source, "size": SIZE}
    current = streaming.copy_stream

    def case(op: str, copy):  # type: ignore[no-untyped-def]
        def run() -> float:
            import time

            streaming.copy_stream = copy
            t = time.perf_counter()
            created = stream_worker._run(op, store, fs, prefix, job, None, None)
            rate = SIZE / MiB / (time.perf_counter() - t)
            if op in ("upload", "async_upload"):
                store.delete(created)
            else:
                os.unlink(created)
            return rate

        return run

    compare(
        {
            "raw copy + fsync": case("raw_upload_fsync", current),
            "upload (current)": case("upload", current),
            "upload, hash overlapped": case("upload", copy_stream_overlapped),
            "async_upload (current)": case("async_upload", current),
            "async_upload, hash overlapped": case("async_upload", copy_stream_overlapped),
        },
        rounds=8,
        unit="MiB/s",
    )
    streaming.copy_stream = current
    store.close()


if __name__ == "__main__":
    main()
