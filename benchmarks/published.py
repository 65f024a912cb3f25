"""Ours against the published package (chuk-artifacts 0.11.4 from PyPI), measured in the same run.

The published package runs in a venv of its own (``benchmarks/.published-venv``, made here with
``pip install chuk-artifacts==0.11.4`` and reused while it holds that version), in a separate
process: ``published_worker.py``, which imports only the standard library and the published
package. It answers "run case X for N operations" with the seconds it took, timed inside the
worker, so the runner can treat each published case as one more ``Case`` and interleave it
with ours round by round (``common.interleave``): ratios are medians of per-round ratios
(``common.paired_ratio``), ours ÷ published, above 1 = ours faster.

Measured here:

- ``ops``: store / retrieve / metadata / exists / update_metadata / delete of 1 KiB and 1 MiB,
  one at a time and 32 in flight. Ours through the sync API (32 threads) and the async facade
  (32 asyncio tasks), with ``session_id=`` on every call; on the filesystem also with
  ``ARTIFACT_DURABILITY=power`` (skipped, with the reason, where our package does not know
  it). The published package through its async API (32 tasks under one ``asyncio.gather``).
- ``scale``: list_by_session and search latency at each catalog size.
- ``streaming``: upload and download MiB/s of one object.
- ``populate``: seconds to store 100,000 artifacts of 1 KiB with 32 in flight.
- ``cli``: ``chuk-admin --version`` against ``python -c "import click"``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from chuk_artifacts import ArtifactStore, AsyncArtifactStore, StreamDownloadRequest, StreamUploadRequest

from .common import Case, KiB, MiB, interleave, median, now, paired_ratio, summary

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "published_worker.py"
DEFAULT_VENV = HERE / ".published-venv"
PACKAGE = "chuk-artifacts"
VERSION = "0.11.4"
BACKENDS = ("memory", "filesystem")
SIZES = {"1KiB": KiB, "1MiB": MiB}
OPS = ("store", "retrieve", "metadata", "exists", "update_metadata", "delete")
MODES = ("sequential", "concurrent")
APIS = ("sync", "async")
QUERIES = ("list", "search_user", "search_user_mime")
CALLERS = 32
POOL = 32
PAGE = 20
GROUP = 100
MIME = "application/octet-stream"
MIMES = ("text/plain", "application/json", "image/png", "image/jpeg")
CHUNK = 64 * KiB
FILL_TTL = 86400  # the query catalog must not expire during the run (the published package refuses ttl=None)


class Unavailable(Exception):
    """The published side cannot run here; the message says why (reported as skipped)."""


class WorkerError(RuntimeError):
    pass


# -- the published package's venv and worker ------------------------------------------------


def _version_of(python: str) -> str | None:
    try:
        proc = subprocess.run(
            [python, "-I", "-c", f"import importlib.metadata as m; print(m.version({PACKAGE!r}))"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "no output"


def ensure_venv(venv: Path, log: Callable[[str], None]) -> str:
    """The Python of a venv holding chuk-artifacts==VERSION: reused, else (re)made with pip."""
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if python.exists() and _version_of(str(python)) == VERSION:
        return str(python)
    log(f"  published: creating {venv} (pip install {PACKAGE}=={VERSION})")
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--retries",
            "1",
            "--timeout",
            "30",
            f"{PACKAGE}=={VERSION}",
        ],
    ]
    for argv in steps:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise Unavailable(f"cannot create the published venv ({shlex.join(argv[:4])}): {exc}") from None
        if proc.returncode != 0:
            raise Unavailable(
                f"cannot create the published venv ({shlex.join(argv[:4])} exited {proc.returncode}): "
                f"{_tail(proc.stderr or proc.stdout)}"
            )
    found = _version_of(str(python))
    if found != VERSION:
        raise Unavailable(f"the published venv holds {PACKAGE} {found!r}, not {VERSION}")
    return str(python)


def worker_command(options: dict[str, Any], log: Callable[[str], None]) -> tuple[list[str], dict[str, Any]]:
    """The command that starts a worker (the config JSON is appended), and where it came from.

    ``options``: ``worker`` (a command speaking the protocol, for tests; no venv is made),
    ``python`` (an interpreter that already has the published package) or ``venv``.
    """
    if options.get("worker"):
        return shlex.split(options["worker"]), {"source": "worker command", "command": options["worker"]}
    python = options.get("python")
    if python:
        found = _version_of(python)
        if found != VERSION:
            raise Unavailable(f"{python} has {PACKAGE} {found!r}, not {VERSION}")
        source = {"source": "interpreter", "python": python}
    else:
        venv = Path(options.get("venv") or DEFAULT_VENV)
        python = ensure_venv(venv, log)
        source = {"source": "venv", "venv": str(venv)}
    # -I: PYTHONPATH, the user site and the script's directory stay off sys.path, so only the
    # published package can be imported as chuk_artifacts.
    return [python, "-I", str(WORKER)], source


class Worker:
    """One worker process (one backend; the published memory store is process-wide)."""

    def __init__(self, command: list[str], config: dict[str, Any], scratch: str) -> None:
        os.makedirs(scratch, exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if k != "PYTHONPATH" and not k.startswith(("ARTIFACT_", "SESSION_", "CHUK_"))
        }
        self.log_path = os.path.join(scratch, "worker.log")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [*command, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=scratch,
            env=env,
            text=True,
            bufsize=1,
        )
        self.info = self._read()
        if not self.info.get("ready"):
            self.close()
            raise WorkerError(f"worker did not start: {self.info}")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait(10)
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                raise WorkerError(f"worker exited ({code}): {_tail(f.read(), 5)}")
        return json.loads(line)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if not answer.get("ok"):
            raise WorkerError(f"published worker, {op} {args}: {answer.get('error')}")
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("quit")
                self.proc.wait(30)
            except (OSError, ValueError, WorkerError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self._log.close()


# -- our side ---------------------------------------------------------------------------------


def _our_store(backend: str, root: str, variant: str) -> tuple[ArtifactStore | None, str | None]:
    """Our store, or (None, reason) when ``variant`` cannot be built here."""
    if backend == "memory":
        return ArtifactStore(storage_provider="memory"), None
    if variant == "default":
        return ArtifactStore(storage_provider="filesystem", fs_root=root), None
    old = os.environ.get("ARTIFACT_DURABILITY")
    os.environ["ARTIFACT_DURABILITY"] = "power"
    try:
        store = ArtifactStore(storage_provider="filesystem", fs_root=root)
    except Exception as exc:  # noqa: BLE001 - reported as the reason for skipping
        return None, f"construction with ARTIFACT_DURABILITY=power raised {type(exc).__name__}: {exc}"
    finally:
        if old is None:
            del os.environ["ARTIFACT_DURABILITY"]
        else:
            os.environ["ARTIFACT_DURABILITY"] = old
    value = getattr(store.settings, "durability", None)
    if value is None or "power" not in str(getattr(value, "value", value)).lower():
        store.close()
        return None, (
            "our package does not know ARTIFACT_DURABILITY yet (the store was built, but its "
            f"settings report durability={value!r})"
        )
    return store, None


class Ours:
    """One of our stores with its async facade, event loop and 32 caller threads."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self.astore = AsyncArtifactStore(sync_store=store)
        self.loop = asyncio.new_event_loop()
        self.threads = ThreadPoolExecutor(max_workers=CALLERS, thread_name_prefix="bench-pub")
        self.sid = store.create_session()
        self.data: dict[int, bytes] = {}
        self.pools: dict[int, list[str]] = {}
        self.written: list[str] = []

    def bytes_of(self, size: int) -> bytes:
        if size not in self.data:
            self.data[size] = os.urandom(size)
        return self.data[size]

    def pool(self, size: int) -> list[str]:
        if size not in self.pools:
            self.pools[size] = self.batch(size, POOL)
        return self.pools[size]

    def batch(self, size: int, n: int) -> list[str]:
        """``n`` artifacts stored untimed (``store_batch`` in chunks)."""
        item = {"data": self.bytes_of(size), "mime": MIME, "filename": "object.bin"}
        ids: list[str] = []
        for start in range(0, n, 256):
            ids += self.store.store_batch([item] * min(256, n - start), session_id=self.sid)
        return ids

    def tidy(self) -> None:
        ids, self.written = self.written, []
        for aid in ids:
            self.store.delete(aid, session_id=self.sid)

    # Timed loops: ``fn(i)`` n times, one at a time or from 32 callers.
    def sync_many(self, fn: Callable[[int], Any], n: int, mode: str) -> float:
        if mode == "sequential":
            t = now()
            for i in range(n):
                fn(i)
            return now() - t
        per = -(-n // CALLERS)

        def caller(k: int) -> None:
            for i in range(k * per, min(n, (k + 1) * per)):
                fn(i)

        t = now()
        for f in [self.threads.submit(caller, k) for k in range(CALLERS)]:
            f.result()
        return now() - t

    def async_many(self, fn: Callable[[int], Any], n: int, mode: str) -> float:
        async def go() -> float:
            if mode == "sequential":
                t = now()
                for i in range(n):
                    await fn(i)
                return now() - t
            per = -(-n // CALLERS)

            async def caller(k: int) -> None:
                for i in range(k * per, min(n, (k + 1) * per)):
                    await fn(i)

            t = now()
            await asyncio.gather(*(caller(k) for k in range(CALLERS)))
            return now() - t

        return self.loop.run_until_complete(go())

    def run(self, api: str, op: str, size: int, mode: str, n: int) -> float:
        s, a, sid = self.store, self.astore, self.sid
        data = self.bytes_of(size)
        written = self.written
        if op in ("retrieve", "metadata", "exists", "update_metadata"):
            ids = self.pool(size)
        if op == "delete":
            ids = self.batch(size, n)  # untimed: what the timed loop deletes
        if api == "sync":
            calls: dict[str, Callable[[int], Any]] = {
                "store": lambda i: written.append(
                    s.store(data, mime=MIME, summary="bench", filename="object.bin", session_id=sid)
                ),
                "retrieve": lambda i: s.retrieve(ids[i % POOL], session_id=sid),
                "metadata": lambda i: s.metadata(ids[i % POOL], session_id=sid),
                "exists": lambda i: s.exists(ids[i % POOL], session_id=sid),
                "update_metadata": lambda i: s.update_metadata(ids[i % POOL], meta={"n": i}, session_id=sid),
                "delete": lambda i: s.delete(ids[i], session_id=sid),
            }
            return self.sync_many(calls[op], n, mode)

        async def store_one(i: int) -> None:
            written.append(await a.store(data, mime=MIME, summary="bench", filename="object.bin", session_id=sid))

        acalls: dict[str, Callable[[int], Any]] = {
            "store": store_one,
            "retrieve": lambda i: a.retrieve(ids[i % POOL], session_id=sid),
            "metadata": lambda i: a.metadata(ids[i % POOL], session_id=sid),
            "exists": lambda i: a.exists(ids[i % POOL], session_id=sid),
            "update_metadata": lambda i: a.update_metadata(ids[i % POOL], meta={"n": i}, session_id=sid),
            "delete": lambda i: a.delete(ids[i], session_id=sid),
        }
        return self.async_many(acalls[op], n, mode)

    def close(self) -> None:
        self.tidy()
        self.threads.shutdown()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()
        self.store.close()


def _published_case(
    worker: Worker,
    name: str,
    case: str,
    *,
    size: int = KiB,
    mode: str = "sequential",
    multiple: int = 1,
    tidy: bool = True,
) -> Case:
    return Case(
        name,
        lambda n: worker.call("run", case=case, n=n, size=size, mode=mode)["seconds"],
        after=(lambda: worker.call("after")) if tidy else None,
        multiple=multiple,
    )


# -- the parts of the section ----------------------------------------------------------------


def _ops(
    backend: str, worker: Worker, workdir: str, *, quick: bool, rounds: int, log: Callable[[str], None]
) -> dict[str, Any]:
    variants: dict[str, Ours] = {}
    skipped: dict[str, str] = {}
    try:
        for variant in ("default", "power") if backend == "filesystem" else ("default",):
            store, reason = _our_store(backend, os.path.join(workdir, f"ours-ops-{backend}-{variant}"), variant)
            if store is None:
                skipped[variant] = reason or "unavailable"
                log(f"  ours {backend} {variant}: skipped — {reason}")
            else:
                variants[variant] = Ours(store)
        out: dict[str, Any] = {
            "worker": worker.info,
            "variants": {v: "measured" for v in variants} | {v: f"skipped: {r}" for v, r in skipped.items()},
        }
        for label, size in SIZES.items():
            log(f"  published ops {backend} {label}")
            cases: list[Case] = []
            for op in OPS:  # grouped by operation, so each comparison runs close together
                for variant, ours in variants.items():
                    for api in APIS:
                        for mode in MODES:
                            cases.append(
                                Case(
                                    f"ours:{variant}:{api}:{mode}:{op}",
                                    lambda n, o=ours, a=api, p=op, m=mode, z=size: o.run(a, p, z, m, n),
                                    after=ours.tidy,
                                    multiple=CALLERS if mode == "concurrent" else 1,
                                )
                            )
                for mode in MODES:
                    cases.append(
                        _published_case(
                            worker,
                            f"published:{mode}:{op}",
                            op,
                            size=size,
                            mode=mode,
                            multiple=CALLERS if mode == "concurrent" else 1,
                        )
                    )
            if quick:  # a smoke run: no warm-up, the smallest batches (32 for 32 in flight)
                for case in cases:
                    case.n = max(case.multiple, 4)
            else:
                for case in cases:  # the memory backends hold every stored MiB until tidied
                    case.calibrate(0.2, 16, 256 if size >= MiB else 5000)
            samples = interleave(cases, rounds)
            res: dict[str, Any] = {"bytes": size, "batch": {c.name: c.n for c in cases}}
            res["ours"] = {
                v: {
                    api: {mode: {op: summary(samples[f"ours:{v}:{api}:{mode}:{op}"]) for op in OPS} for mode in MODES}
                    for api in APIS
                }
                for v in variants
            }
            res["published"] = {mode: {op: summary(samples[f"published:{mode}:{op}"]) for op in OPS} for mode in MODES}
            res["ratios"] = {  # ours ÷ published, same number in flight; > 1: ours faster
                v: {
                    api: {
                        mode: {
                            op: paired_ratio(samples[f"ours:{v}:{api}:{mode}:{op}"], samples[f"published:{mode}:{op}"])
                            for op in OPS
                        }
                        for mode in MODES
                    }
                    for api in APIS
                }
                for v in variants
            }
            res["in_flight"] = {  # 32 in flight ÷ one at a time
                "ours": {
                    v: {
                        api: {
                            op: paired_ratio(
                                samples[f"ours:{v}:{api}:concurrent:{op}"], samples[f"ours:{v}:{api}:sequential:{op}"]
                            )
                            for op in OPS
                        }
                        for api in APIS
                    }
                    for v in variants
                },
                "published": {
                    op: paired_ratio(samples[f"published:concurrent:{op}"], samples[f"published:sequential:{op}"])
                    for op in OPS
                },
            }
            out[label] = res
        return out
    finally:
        for ours in variants.values():
            ours.close()


def _ops_all(
    workers: dict[str, Worker], workdir: str, *, quick: bool, rounds: int, log: Callable[[str], None]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend, worker in workers.items():
        try:
            out[backend] = _ops(backend, worker, workdir, quick=quick, rounds=rounds, log=log)
        except Exception as exc:  # noqa: BLE001 - recorded; the other backend still runs
            out[backend] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _calibrate_slow(case: Case, target: float, lo: int, hi: int) -> None:
    """Like ``Case.calibrate``, for calls that may take a second each: one call to warm up,
    one to time, then the batch size."""
    case.run(1)
    case.after()
    if target <= 0:
        case.n = lo
        return
    seconds = case.run(1)
    case.after()
    case.n = int(min(hi, max(lo, target / max(seconds, 1e-6))))


def _fill_ours(store: ArtifactStore, n: int) -> tuple[float, list[tuple[str, str]]]:
    """The published worker's ``fill`` layout, through ``store_batch``. As in ``scale.py``,
    filesystem blobs are written without fsync during the fill only (the queries never read
    them), where the store still has that switch."""
    no_fsync = hasattr(store.blobs, "fsync")
    if no_fsync:
        store.blobs.fsync = False
    sessions: list[tuple[str, str]] = []
    t = now()
    serial = 0
    k = 0
    while serial < n:
        user = f"user{k}"
        k += 1
        sid = store.create_session(user_id=user)
        sessions.append((sid, user))
        groups: dict[str, list[dict[str, Any]]] = {"session": [], "user": []}
        for _ in range(min(GROUP, n - serial)):
            groups["user" if serial % 2 else "session"].append(
                {
                    "data": b"x" * 64,
                    "mime": MIMES[serial % len(MIMES)],
                    "summary": "bench",
                    "filename": f"file-{serial:07d}.txt",
                    "meta": {"kind": f"k{serial % 10}", "serial": serial},
                }
            )
            serial += 1
        for scope, items in groups.items():
            if items:
                store.store_batch(items, session_id=sid, user_id=user, ttl=FILL_TTL, scope=scope)
    seconds = now() - t
    if no_fsync:
        store.blobs.fsync = True
    return seconds, sessions


def _scale(
    backends: list[str],
    command: list[str],
    workdir: str,
    sizes: list[int],
    *,
    fs_max: int,
    quick: bool,
    rounds: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend in backends:
        stores: list[Ours] = []
        workers: list[Worker] = []
        try:
            out[backend] = _scale_backend(
                backend, command, workdir, sizes, stores, workers, fs_max=fs_max, quick=quick, rounds=rounds, log=log
            )
        except Exception as exc:  # noqa: BLE001 - recorded; the other backend still runs
            out[backend] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for w in workers:
                w.close()
            for o in stores:
                o.close()
    return out


def _scale_backend(
    backend: str,
    command: list[str],
    workdir: str,
    sizes: list[int],
    stores: list[Ours],
    workers: list[Worker],
    *,
    fs_max: int,
    quick: bool,
    rounds: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    published_sizes = [n for n in sizes if backend != "filesystem" or n <= fs_max]
    res: dict[str, Any] = {"sizes": sizes, "published_sizes": published_sizes, "page_size": PAGE}
    if published_sizes != sizes:
        res["published_capped"] = (
            f"the published filesystem provider was measured up to {fs_max:,} artifacts only "
            "(--published-fs-max): its fill takes minutes there and every query walks the whole bucket"
        )
    rows: dict[str, int] = {}
    rng = random.Random(42)
    cases: list[Case] = []

    def ours_query(name: str, o: Ours, q: str, sessions: list[tuple[str, str]], api: str) -> Callable[[int], float]:
        def call(sid: str, user: str) -> Any:
            target: Any = o.store if api == "sync" else o.astore
            if q == "list":
                return target.list_by_session(sid, limit=PAGE)
            if q == "search_user":
                return target.search(user_id=user, limit=PAGE)
            return target.search(user_id=user, mime_prefix="image/", limit=PAGE)

        def go(k: int) -> float:
            got: Any = ()
            t = now()
            for _ in range(k):
                sid, user = rng.choice(sessions)
                got = call(sid, user) if api == "sync" else o.loop.run_until_complete(call(sid, user))
            seconds = now() - t
            rows[name] = len(got)
            return seconds

        return go

    def published_query(name: str, w: Worker, q: str) -> Callable[[int], float]:
        def go(k: int) -> float:
            answer = w.call("query", case=q, n=k)
            rows[name] = answer.get("rows")
            return answer["seconds"]

        return go

    for n in sizes:
        log(f"  published scale {backend}: filling {n:,} (ours)")
        store, _ = _our_store(backend, os.path.join(workdir, f"ours-scale-{backend}-{n}"), "default")
        assert store is not None
        ours = Ours(store)
        stores.append(ours)
        seconds, sessions = _fill_ours(store, n)
        res[str(n)] = {"fill_seconds": {"ours": round(seconds, 3)}, "queries": {}}
        worker = None
        if n in published_sizes:
            log(f"  published scale {backend}: filling {n:,} (published)")
            worker = Worker(
                command,
                {"backend": backend, "root": os.path.join(workdir, f"pub-scale-{backend}-{n}")},
                os.path.join(workdir, f"pub-scale-{backend}-{n}-cwd"),
            )
            workers.append(worker)
            res[str(n)]["fill_seconds"]["published"] = round(worker.call("fill", n=n, ttl=FILL_TTL)["seconds"], 3)
        for q in QUERIES:
            for api in APIS:
                name = f"{n}:ours:{api}:{q}"
                cases.append(Case(name, ours_query(name, ours, q, sessions, api)))
            if worker is not None:
                name = f"{n}:published:{q}"
                cases.append(Case(name, published_query(name, worker, q)))
    target = 0.0 if quick else 0.2
    for case in cases:
        _calibrate_slow(case, target, 2 if quick else 1, 200)
    samples = interleave(cases, rounds)
    for n in sizes:
        for q in QUERIES:
            entry: dict[str, Any] = {}
            for api in APIS:
                entry[f"ours_{api}_ms"] = 1000 / (median(samples[f"{n}:ours:{api}:{q}"]) or 1)
                entry[f"ours_{api}_rows"] = rows.get(f"{n}:ours:{api}:{q}")
            pub = samples.get(f"{n}:published:{q}")
            if pub is not None:
                entry["published_ms"] = 1000 / (median(pub) or 1)
                entry["published_rows"] = rows.get(f"{n}:published:{q}")
                for api in APIS:  # calls/s ours ÷ published: above 1 = ours faster
                    entry[f"ratio_{api}"] = paired_ratio(samples[f"{n}:ours:{api}:{q}"], pub)
            res[str(n)]["queries"][q] = entry
    return res


def _streaming(
    workers: dict[str, Worker], workdir: str, size: int, *, rounds: int, log: Callable[[str], None]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend, worker in workers.items():
        log(f"  published streaming {backend}: {size / MiB:g} MiB")
        ours: Ours | None = None
        try:
            store, _ = _our_store(backend, os.path.join(workdir, f"ours-stream-{backend}"), "default")
            assert store is not None
            ours = Ours(store)
            out[backend] = _stream_backend(ours, worker, size, rounds=rounds)
        except Exception as exc:  # noqa: BLE001 - recorded; the other backend still runs
            out[backend] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            if ours is not None:
                ours.close()
    return out


def _stream_backend(ours: Ours, worker: Worker, size: int, *, rounds: int) -> dict[str, Any]:
    data = ours.bytes_of(size)
    s, a, sid = ours.store, ours.astore, ours.sid

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), CHUNK):
            yield data[start : start + CHUNK]

    async def achunks() -> Any:
        for start in range(0, len(data), CHUNK):
            yield data[start : start + CHUNK]

    source = s.stream_upload(StreamUploadRequest(chunks(), mime=MIME, filename="download.bin", session_id=sid))

    def upload(n: int) -> float:
        t = now()
        for _ in range(n):
            ours.written.append(
                s.stream_upload(StreamUploadRequest(chunks(), mime=MIME, filename="stream.bin", session_id=sid))
            )
        return now() - t

    def async_upload(n: int) -> float:
        async def go() -> float:
            t = now()
            for _ in range(n):
                ours.written.append(
                    await a.stream_upload(
                        StreamUploadRequest(achunks(), mime=MIME, filename="stream.bin", session_id=sid)
                    )
                )
            return now() - t

        return ours.loop.run_until_complete(go())

    def download(n: int) -> float:
        t = now()
        for _ in range(n):
            got = sum(len(c) for c in s.stream_download(StreamDownloadRequest(source, session_id=sid)))
        seconds = now() - t
        if got != size:
            raise RuntimeError(f"stream_download returned {got} bytes of {size}")
        return seconds

    def async_download(n: int) -> float:
        async def go() -> float:
            got = 0
            t = now()
            for _ in range(n):
                got = 0
                async for c in a.stream_download(StreamDownloadRequest(source, session_id=sid)):
                    got += len(c)
            seconds = now() - t
            if got != size:
                raise RuntimeError(f"stream_download returned {got} bytes of {size}")
            return seconds

        return ours.loop.run_until_complete(go())

    cases = [
        Case("ours:sync:upload", upload, after=ours.tidy),
        Case("ours:async:upload", async_upload, after=ours.tidy),
        _published_case(worker, "published:upload", "stream_upload", size=size),
        Case("ours:sync:download", download),
        Case("ours:async:download", async_download),
        _published_case(worker, "published:download", "stream_download", size=size, tidy=False),
    ]
    for case in cases:
        _calibrate_slow(case, 0.0, 1, 1)
    samples = interleave(cases, rounds)
    mib = {name: [ops * size / MiB for ops in values] for name, values in samples.items()}
    return {
        "size_mib": size / MiB,
        "chunk_size": CHUNK,
        "source": "an in-memory buffer, in 64 KiB chunks (a generator; an async generator for async APIs)",
        "sink": "each chunk counted and dropped",
        "mib_per_s": {name: round(median(v) or 0, 1) for name, v in mib.items()},
        "ratios": {
            f"{api}_{d}": paired_ratio(mib[f"ours:{api}:{d}"], mib[f"published:{d}"])
            for api in APIS
            for d in ("upload", "download")
        },
    }


def _populate(
    backends: list[str],
    command: list[str],
    workdir: str,
    count: int,
    *,
    fs_max: int,
    deadline: float,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Seconds to store ``count`` artifacts of 1 KiB with 32 in flight, one fresh store each.

    A side still storing after ``deadline`` seconds stops there (the 60 s target is missed by
    then); it reports how many it stored in that time.
    """
    out: dict[str, Any] = {}
    for backend in backends:
        res: dict[str, Any] = {"artifacts": count, "bytes": KiB, "in_flight": CALLERS, "deadline_s": deadline}
        for side in ("published", "ours_async", "ours_sync"):
            root = os.path.join(workdir, f"populate-{backend}-{side}")
            n = min(count, fs_max) if side == "published" and backend == "filesystem" else count
            log(f"  populate {backend} {side}: {n:,} artifacts")
            try:
                if side == "published":
                    worker = Worker(command, {"backend": backend, "root": root}, root + "-cwd")
                    try:
                        answer = worker.call("populate", n=n, size=KiB, deadline=deadline)
                    finally:
                        worker.close()
                    seconds, done = answer["seconds"], answer.get("stored", n)
                else:
                    seconds, done = _populate_ours(backend, root, side, n, deadline)
                res[side] = {
                    "artifacts": done,
                    "seconds": round(seconds, 3),
                    "artifacts_per_s": round(done / seconds, 1),
                }
                if done < n:
                    res[side]["stopped_at_deadline"] = n
            except Exception as exc:  # noqa: BLE001 - recorded
                res[side] = {"error": f"{type(exc).__name__}: {exc}"}
            finally:
                shutil.rmtree(root, ignore_errors=True)
                shutil.rmtree(root + "-cwd", ignore_errors=True)
        out[backend] = res
    return out


def _populate_ours(backend: str, root: str, side: str, n: int, deadline: float) -> tuple[float, int]:
    """(seconds, artifacts stored): 32 threads on the sync API or 32 tasks on the async facade,
    each storing its share one after another, until done or ``deadline`` seconds."""
    store, _ = _our_store(backend, root, "default")
    assert store is not None
    ours = Ours(store)
    data, sid = ours.bytes_of(KiB), ours.sid
    per = -(-n // CALLERS)
    done = [0] * CALLERS
    try:
        start = now()
        stop = start + deadline
        if side == "ours_sync":

            def caller(k: int) -> None:
                for _ in range(k * per, min(n, (k + 1) * per)):
                    if now() > stop:
                        return
                    store.store(data, mime=MIME, filename="object.bin", session_id=sid)
                    done[k] += 1

            for f in [ours.threads.submit(caller, k) for k in range(CALLERS)]:
                f.result()
        else:

            async def acaller(k: int) -> None:
                for _ in range(k * per, min(n, (k + 1) * per)):
                    if now() > stop:
                        return
                    await ours.astore.store(data, mime=MIME, filename="object.bin", session_id=sid)
                    done[k] += 1

            async def go() -> None:
                await asyncio.gather(*(acaller(k) for k in range(CALLERS)))

            ours.loop.run_until_complete(go())
        return now() - start, sum(done)
    finally:
        ours.close()


def _cli(runs: int) -> dict[str, Any]:
    """Wall time of ``chuk-admin --version`` against ``python -c "import click"``, interleaved."""
    admin = Path(sys.executable).parent / "chuk-admin"
    if admin.exists():
        admin_argv = [str(admin), "--version"]
    elif shutil.which("chuk-admin"):
        admin_argv = [str(shutil.which("chuk-admin")), "--version"]
    else:  # no console script installed: the same entry point through this interpreter
        admin_argv = [
            sys.executable,
            "-c",
            "import sys; from chuk_artifacts.cli import main; sys.argv[0] = 'chuk-admin'; main()",
            "--version",
        ]
    click_argv = [sys.executable, "-c", "import click"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    times: dict[str, list[float]] = {"chuk_admin": [], "import_click": []}
    output = ""
    for r in range(runs + 1):  # the first pair warms the page cache and is not counted
        for name in ("chuk_admin", "import_click") if r % 2 == 0 else ("import_click", "chuk_admin"):
            argv = admin_argv if name == "chuk_admin" else click_argv
            t = now()
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
            seconds = now() - t
            if proc.returncode != 0:
                raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}: {_tail(proc.stderr)}")
            if name == "chuk_admin":
                output = proc.stdout.strip()
            if r:
                times[name].append(seconds)
    return {
        "command": shlex.join(admin_argv),
        "reference": 'python -c "import click"',
        "output": output,
        "runs": runs,
        "chuk_admin_ms": round(1000 * (median(times["chuk_admin"]) or 0), 1),
        "import_click_ms": round(1000 * (median(times["import_click"]) or 0), 1),
        "ratio": median([a / b for a, b in zip(times["chuk_admin"], times["import_click"]) if b]),
        "samples_ms": {k: [round(1000 * x, 1) for x in v] for k, v in times.items()},
    }


def run(
    backends: list[str],
    workdir: str,
    options: dict[str, Any],
    *,
    quick: bool,
    rounds: int,
    scale_sizes: list[int],
    stream_bytes: int,
    populate_count: int,
    fs_max: int,
    populate_deadline: float = 120.0,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The whole section. ``status`` is ``skipped`` (with ``reason``) when the published package
    cannot be installed or started here; each part records its own ``error`` otherwise."""
    backends = [b for b in backends if b in BACKENDS]
    out: dict[str, Any] = {"package": f"{PACKAGE}=={VERSION}", "backends": backends, "in_flight": CALLERS}
    workers: dict[str, Worker] = {}  # one per backend for ops and streaming
    try:
        command, source = worker_command(options, log)
        for backend in backends:
            workers[backend] = Worker(
                command,
                {"backend": backend, "root": os.path.join(workdir, f"pub-{backend}")},
                os.path.join(workdir, f"pub-{backend}-cwd"),
            )
    except (Unavailable, WorkerError, OSError) as exc:
        for w in workers.values():
            w.close()
        log(f"published: skipped — {exc}")
        return {**out, "status": "skipped", "reason": str(exc)}
    out.update(status="ok", worker=source, published=next(iter(workers.values())).info if workers else None)
    try:
        _parts(
            out,
            workers,
            command,
            backends,
            workdir,
            quick=quick,
            rounds=rounds,
            scale_sizes=scale_sizes,
            stream_bytes=stream_bytes,
            populate_count=populate_count,
            fs_max=fs_max,
            populate_deadline=populate_deadline,
            log=log,
        )
    finally:
        for w in workers.values():
            w.close()
    return out


def _parts(
    out: dict[str, Any],
    workers: dict[str, Worker],
    command: list[str],
    backends: list[str],
    workdir: str,
    *,
    quick: bool,
    rounds: int,
    scale_sizes: list[int],
    stream_bytes: int,
    populate_count: int,
    fs_max: int,
    populate_deadline: float,
    log: Callable[[str], None],
) -> None:
    parts: list[tuple[str, Callable[[], Any]]] = [
        ("ops", lambda: _ops_all(workers, workdir, quick=quick, rounds=rounds, log=log)),
        ("streaming", lambda: _streaming(workers, workdir, stream_bytes, rounds=rounds, log=log)),
        (
            "scale",
            lambda: _scale(backends, command, workdir, scale_sizes, fs_max=fs_max, quick=quick, rounds=rounds, log=log),
        ),
        (
            "populate",
            lambda: _populate(
                backends, command, workdir, populate_count, fs_max=fs_max, deadline=populate_deadline, log=log
            ),
        ),
        ("cli", lambda: _cli(2 if quick else 15)),
    ]
    for key, part in parts:
        started = time.perf_counter()
        try:
            out[key] = part()
        except Exception as exc:  # noqa: BLE001 - recorded; the run goes on, exits non-zero
            import traceback

            traceback.print_exc()
            out[key] = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"  published {key}: {time.perf_counter() - started:.0f} s")


def errors(result: dict[str, Any]) -> list[str]:
    """Every ``error`` recorded anywhere in the section's results."""
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("error"), str):
                found.append(f"{path}: {node['error']}")
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))

    walk(result, "")
    return found
