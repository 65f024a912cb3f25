"""Profile one hot path of the benchmark: ``python -m benchmarks.profile OP [--backend B] [...]``.

OP is ``store``, ``retrieve`` or ``metadata`` (1 KiB by default, ``session_id=`` on every call,
as in the ops section), or a streaming op of ``stream_worker`` (``upload``, ``async_upload``,
``download``, ``async_download``; 256 MiB by default). Prints the wall time per call without
the profiler, then cProfile's figures: each function's share of the profiled total, with its
``file:line``. This is how the findings in docs/performance.md ("Analysis") were made.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from typing import Any

from .backends import build_store
from .common import KiB, MiB

OPS = ("store", "retrieve", "metadata")
STREAM_OPS = ("upload", "async_upload", "download", "async_download")


def _call_op(store: Any, op: str, data: bytes, sid: str, ids: list[str]) -> Any:
    written: list[str] = []

    def call(i: int) -> None:
        if op == "store":
            written.append(store.store(data, mime="application/octet-stream", filename="object.bin", session_id=sid))
        elif op == "retrieve":
            store.retrieve(ids[i % len(ids)], session_id=sid)
        else:
            store.metadata(ids[i % len(ids)], session_id=sid)

    def tidy() -> None:
        for aid in written:
            store.delete(aid)
        written.clear()

    return call, tidy


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n")[0])
    p.add_argument("op", choices=OPS + STREAM_OPS)
    p.add_argument("--backend", default="filesystem", choices=("memory", "filesystem"))
    p.add_argument("--calls", type=int, default=2000, help="calls per pass (store, retrieve, metadata)")
    p.add_argument("--size", type=int, help="bytes per object (default 1 KiB; streaming 256 MiB)")
    p.add_argument("--top", type=int, default=30, help="functions to print")
    p.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"))
    args = p.parse_args(argv)
    os.environ.setdefault("CHUK_ARTIFACTS_PLUGINS", "")
    workdir = tempfile.mkdtemp(prefix="chuk-profile-")
    spec = {"name": args.backend, "workdir": workdir}
    store = build_store(spec, "profile")
    profiler = cProfile.Profile()
    try:
        if args.op in OPS:
            data = os.urandom(args.size or KiB)
            sid = store.create_session()
            ids = [store.store(data, mime="application/octet-stream", session_id=sid) for _ in range(32)]
            call, tidy = _call_op(store, args.op, data, sid, ids)
            for i in range(100):  # warm-up
                call(i)
            tidy()
            t = time.perf_counter()
            for i in range(args.calls):
                call(i)
            wall = (time.perf_counter() - t) / args.calls
            tidy()
            profiler.enable()
            for i in range(args.calls):
                call(i)
            profiler.disable()
            tidy()
            print(f"{args.op} ({args.backend}, {len(data)} bytes): {wall * 1e6:,.0f} µs per call without the profiler")
        else:
            from chuk_artifacts import StreamUploadRequest

            from . import stream_worker
            from .backends import raw_fs
            from .stream import _source

            size = args.size or 256 * MiB
            source = _source(workdir, size)
            with open(source, "rb") as src:
                aid = store.stream_upload(StreamUploadRequest(src, mime="application/octet-stream", ttl=None))
            fs, prefix = raw_fs(spec, store)
            key = store.metadata(aid).key
            job = {"source": source, "size": size}

            def once(profile: bool = False) -> float:
                if profile:
                    profiler.enable()
                t = time.perf_counter()
                created = stream_worker._run(args.op, store, fs, prefix, job, aid, key)
                seconds = time.perf_counter() - t
                if profile:
                    profiler.disable()
                if isinstance(created, str):  # an uploaded artifact: removed, untimed
                    store.delete(created)
                return seconds

            once()  # warm-up: page cache, imports
            wall = once()
            once(profile=True)
            print(
                f"{args.op} ({args.backend}, {size / MiB:g} MiB): {size / MiB / wall:,.0f} MiB/s without the profiler"
            )
    finally:
        store.close()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][3 if args.sort == "cumulative" else 2], reverse=True)  # type: ignore[attr-defined]
    print(f"profiled total {total:.3f} s; share of it per function ({args.sort}):")
    print(f"{'cum %':>6} {'own %':>6} {'calls':>8}  function")
    for (file, line, name), (_cc, ncalls, tt, ct, _callers) in rows[: args.top]:
        where = file if file.startswith("~") else os.path.relpath(file) if os.path.isabs(file) else file
        print(f"{100 * ct / total:6.1f} {100 * tt / total:6.1f} {ncalls:8d}  {where}:{line}({name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
