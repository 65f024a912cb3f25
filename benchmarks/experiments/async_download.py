"""Async facade download of 256 MiB (to /dev/null) on a backend (argument: filesystem or
memory): the current bridge (``aio._BRIDGE_BYTES`` = 1 MiB batches, one ``to_thread`` per batch,
the next batch read only once the previous one has arrived) vs bigger batches, and vs one reader
thread per download handing batches over through a bounded queue (two batches in flight)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import chuk_artifacts.aio as aio
from chuk_artifacts import AsyncArtifactStore, StreamDownloadRequest, StreamUploadRequest

from ..common import MiB
from ..stream import _source
from .common import compare, scratch_store, timed

SIZE = 256 * MiB


def main() -> None:
    backend = sys.argv[1] if len(sys.argv) > 1 else "filesystem"
    store, workdir = scratch_store(backend, "download")
    with open(_source(workdir, SIZE), "rb") as src:
        aid = store.stream_upload(StreamUploadRequest(src, mime="application/octet-stream", ttl=None))

    def sync_download() -> None:
        with open(os.devnull, "wb") as sink:
            for chunk in store.stream_download(StreamDownloadRequest(aid)):
                sink.write(chunk)

    async def facade(batch: int) -> None:
        aio._BRIDGE_BYTES = batch
        astore = AsyncArtifactStore(sync_store=store)
        with open(os.devnull, "wb") as sink:
            async for chunk in astore.stream_download(StreamDownloadRequest(aid)):
                sink.write(chunk)

    async def reader_thread(batch: int, depth: int = 2) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        slots = threading.Semaphore(depth)
        chunks = await asyncio.to_thread(store.stream_download, StreamDownloadRequest(aid))

        def read() -> None:
            try:
                while True:
                    slots.acquire()
                    got, error = aio._take(chunks, batch)
                    loop.call_soon_threadsafe(queue.put_nowait, (got, error))
                    if not got or error is not None:
                        return
            finally:
                chunks.close()

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        with open(os.devnull, "wb") as sink:
            while True:
                got, error = await queue.get()
                slots.release()
                for chunk in got:
                    sink.write(chunk)
                if error is not None:
                    raise error
                if not got:
                    break
        thread.join()

    default = aio._BRIDGE_BYTES
    mib = SIZE / MiB
    compare(
        {
            "sync download": timed(sync_download, mib),
            "facade, 1 MiB batches (current)": timed(lambda: asyncio.run(facade(MiB)), mib),
            "facade, 8 MiB batches": timed(lambda: asyncio.run(facade(8 * MiB)), mib),
            "reader thread, 1 MiB x 2": timed(lambda: asyncio.run(reader_thread(MiB)), mib),
            "reader thread, 8 MiB x 2": timed(lambda: asyncio.run(reader_thread(8 * MiB)), mib),
        },
        rounds=7,
        unit="MiB/s",
    )
    aio._BRIDGE_BYTES = default
    store.close()


if __name__ == "__main__":
    main()
