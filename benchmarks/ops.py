"""Store / retrieve / metadata throughput, sequential and with 32 concurrent callers, through
the sync API and the async facade, next to the raw references (``refs.py``)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chuk_artifacts import AsyncArtifactStore

from .backends import build_store, raw_fs
from .common import Case, KiB, MiB, interleave, median, now, paired_ratio, percentile, summary
from .refs import RawCatalog, atomic_write

SIZES = {"1KiB": KiB, "1MiB": MiB}
CALLERS = 32
POOL = 32  # artifacts (and raw objects) the read cases cycle through
OPS = ("store", "retrieve", "metadata")
OVERHEAD_PAIRS = 41  # alternating (sync, async) batch pairs for the async facade's per-call cost
OVERHEAD_BATCH_SECONDS = 0.02


def run(spec: dict[str, Any], *, quick: bool, rounds: int, log: Callable[[str], None]) -> dict[str, Any]:
    store = build_store(spec, "ops")
    astore = AsyncArtifactStore(sync_store=store)
    loop = asyncio.new_event_loop()
    threads = ThreadPoolExecutor(max_workers=CALLERS, thread_name_prefix="bench")
    fs, prefix = raw_fs(spec, store)
    raw_db = None if spec["name"] == "memory" else os.path.join(spec["workdir"], "raw-catalog.db")
    raw = RawCatalog(raw_db)
    out: dict[str, Any] = {
        "callers": CALLERS,
        "async_default_executor_workers": min(32, (os.cpu_count() or 1) + 4),
        "identity": "session_id= (a session created up front; access is checked on every call)",
    }
    try:
        sid = store.create_session()
        for label, size in SIZES.items():
            log(f"  {spec['name']} ops {label}")
            out[label] = _size(
                spec,
                store,
                astore,
                loop,
                threads,
                fs,
                prefix,
                raw,
                sid,
                size,
                quick=quick,
                rounds=rounds,
            )
    finally:
        threads.shutdown()
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        raw.close()
        store.close()
    return out


def _size(
    spec: dict[str, Any],
    store: Any,
    astore: AsyncArtifactStore,
    loop: asyncio.AbstractEventLoop,
    threads: ThreadPoolExecutor,
    fs: Any,
    prefix: str,
    raw: RawCatalog,
    sid: str,
    size: int,
    *,
    quick: bool,
    rounds: int,
) -> dict[str, Any]:
    data = os.urandom(size)
    mime = "application/octet-stream"
    local = spec["name"] == "filesystem"

    # Read pools: artifacts of ours, objects + rows of the raw reference.
    ids = [store.store(data, mime=mime, filename="object.bin", session_id=sid) for _ in range(POOL)]
    raw_paths = [f"{prefix}/pool-{size}-{i}" for i in range(POOL)]
    for p in raw_paths:
        fs.pipe_file(p, data)
    raw_rows = [raw.insert(p, size) for p in raw_paths]

    written_ids: list[str] = []
    written_paths: list[str] = []
    inserted_rows: list[str] = []

    def tidy() -> None:
        for aid in written_ids:
            store.delete(aid)
        for p in written_paths:
            fs.rm_file(p)
        raw.delete(inserted_rows)
        written_ids.clear(), written_paths.clear(), inserted_rows.clear()

    def fresh_path() -> str:
        path = f"{prefix}/{uuid.uuid4().hex}"
        written_paths.append(path)
        return path

    # -- the operations, one call each ------------------------------------------------------
    def op_store() -> None:
        written_ids.append(store.store(data, mime=mime, filename="object.bin", session_id=sid))

    def op_retrieve(i: int) -> None:
        store.retrieve(ids[i % POOL], session_id=sid)

    def op_metadata(i: int) -> None:
        store.metadata(ids[i % POOL], session_id=sid)

    async def aop_store() -> None:
        written_ids.append(await astore.store(data, mime=mime, filename="object.bin", session_id=sid))

    async def aop_retrieve(i: int) -> None:
        await astore.retrieve(ids[i % POOL], session_id=sid)

    async def aop_metadata(i: int) -> None:
        await astore.metadata(ids[i % POOL], session_id=sid)

    sync_ops = {"store": lambda i: op_store(), "retrieve": op_retrieve, "metadata": op_metadata}
    async_ops = {"store": lambda i: aop_store(), "retrieve": aop_retrieve, "metadata": aop_metadata}

    def sequential(fn: Callable[[int], None]) -> Callable[[int], float]:
        def go(n: int) -> float:
            t = now()
            for i in range(n):
                fn(i)
            return now() - t

        return go

    def concurrent(fn: Callable[[int], None]) -> Callable[[int], float]:
        def worker(k: int, per: int) -> None:
            for i in range(per):
                fn(k * per + i)

        def go(n: int) -> float:
            per = n // CALLERS
            t = now()
            for f in [threads.submit(worker, k, per) for k in range(CALLERS)]:
                f.result()
            return now() - t

        return go

    def async_sequential(fn: Callable[[int], Any]) -> Callable[[int], float]:
        async def batch(n: int) -> float:
            t = now()
            for i in range(n):
                await fn(i)
            return now() - t

        return lambda n: loop.run_until_complete(batch(n))

    def async_concurrent(fn: Callable[[int], Any]) -> Callable[[int], float]:
        async def task(k: int, per: int) -> None:
            for i in range(per):
                await fn(k * per + i)

        async def batch(n: int) -> float:
            per = n // CALLERS
            t = now()
            await asyncio.gather(*(task(k, per) for k in range(CALLERS)))
            return now() - t

        return lambda n: loop.run_until_complete(batch(n))

    # -- references -----------------------------------------------------------------------
    def ref_write(i: int) -> None:
        fs.pipe_file(fresh_path(), data)

    def ref_read(i: int) -> None:
        fs.cat_file(raw_paths[i % POOL])

    def ref_insert(i: int) -> None:
        inserted_rows.append(raw.insert(f"{prefix}/row-{uuid.uuid4().hex}", size))

    def ref_select(i: int) -> None:
        raw.select(raw_rows[i % POOL])

    def ref_write_insert(i: int) -> None:
        path = fresh_path()
        fs.pipe_file(path, data)
        inserted_rows.append(raw.insert(path, size))

    def ref_write_insert_fsync(i: int) -> None:
        path = fresh_path()
        atomic_write(path, data)
        inserted_rows.append(raw.insert(path, size))

    def ref_select_read(i: int) -> None:
        raw.select(raw_rows[i % POOL])
        fs.cat_file(raw_paths[i % POOL])

    refs = {
        "fsspec_write": ref_write,
        "fsspec_read": ref_read,
        "sql_insert": ref_insert,
        "sql_select": ref_select,
        "raw_write_insert": ref_write_insert,
        "raw_select_read": ref_select_read,
    }
    if local:
        refs["raw_write_insert_fsync"] = ref_write_insert_fsync

    cases = [Case(f"ref:{name}", sequential(fn), after=tidy) for name, fn in refs.items()]
    for op in OPS:
        cases += [
            Case(f"sync:sequential:{op}", sequential(sync_ops[op]), after=tidy),
            Case(f"async:sequential:{op}", async_sequential(async_ops[op]), after=tidy),
            Case(f"sync:concurrent:{op}", concurrent(sync_ops[op]), after=tidy, multiple=CALLERS),
            Case(f"async:concurrent:{op}", async_concurrent(async_ops[op]), after=tidy, multiple=CALLERS),
        ]
    target, lo, hi = (0.0, 8, 8) if quick else (0.3, 16, 5000)
    if size >= MiB:
        target *= 1.5
    for case in cases:
        case.calibrate(target, lo, hi)
    samples = interleave(cases, rounds)

    result: dict[str, Any] = {
        "bytes": size,
        "batch": {c.name: c.n for c in cases},
        "references": {name: summary(samples[f"ref:{name}"]) for name in refs},
    }
    for api in ("sync", "async"):
        result[api] = {
            mode: {op: summary(samples[f"{api}:{mode}:{op}"]) for op in OPS} for mode in ("sequential", "concurrent")
        }
    ours = lambda op: samples[f"sync:sequential:{op}"]
    ratios = {
        "store_vs_raw_write_insert": paired_ratio(ours("store"), samples["ref:raw_write_insert"]),
        "retrieve_vs_raw_select_read": paired_ratio(ours("retrieve"), samples["ref:raw_select_read"]),
        "metadata_vs_sql_select": paired_ratio(ours("metadata"), samples["ref:sql_select"]),
    }
    if local:
        ratios["store_vs_raw_write_insert_fsync"] = paired_ratio(ours("store"), samples["ref:raw_write_insert_fsync"])
    result["ratios"] = ratios
    # The facade's own cost per call is small next to a call's spread on a busy machine, so
    # the difference of the round medians above (5 pairs) comes out at either sign. Measured
    # instead from many short alternating pairs of batches (sync, then async, then the other
    # way round), each pair back to back: the median of the per-pair differences.
    pairs = 3 if quick else OVERHEAD_PAIRS
    result["async_overhead_us"] = {}
    result["async_overhead_spread_us"] = {}
    for op in OPS:
        per_call = 1 / (median(samples[f"sync:sequential:{op}"]) or 1)
        n = 4 if quick else max(4, min(200, int(OVERHEAD_BATCH_SECONDS / per_call)))
        run_sync, run_async = sequential(sync_ops[op]), async_sequential(async_ops[op])
        diffs = []
        for p in range(pairs):
            seconds = {}
            for api in ("sync", "async") if p % 2 == 0 else ("async", "sync"):
                seconds[api] = (run_sync if api == "sync" else run_async)(n) / n
                tidy()
            diffs.append((seconds["async"] - seconds["sync"]) * 1e6)
        result["async_overhead_us"][op] = median(diffs)
        result["async_overhead_spread_us"][op] = [percentile(diffs, 25), percentile(diffs, 75)]
    result["async_overhead_method"] = f"median over {pairs} alternating pairs of short sequential batches"
    for aid in ids:
        store.delete(aid)
    for p in raw_paths:
        fs.rm_file(p)
    raw.delete(raw_rows)
    return result
