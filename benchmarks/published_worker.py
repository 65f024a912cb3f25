"""The published package's side of the ``published`` section, run in that package's own venv.

    <venv>/bin/python -I published_worker.py CONFIG

This file imports only the standard library and the *published* ``chuk_artifacts`` (from PyPI,
installed in a venv of its own by ``benchmarks/published.py``), never our checkout or the other
benchmark modules (they import our package). ``-I`` keeps ``PYTHONPATH`` and the script's
directory off ``sys.path``, so the checkout cannot shadow the published package.

CONFIG is JSON: ``backend`` (``memory`` or ``filesystem``) and, for the filesystem, ``root``.
The published filesystem provider reads ``ARTIFACT_FS_ROOT`` once, when it is imported, so it
is set here before the import; its memory provider keeps every store's objects in one
process-wide dict, so one worker process serves one backend (and one catalog size).

Protocol: JSON lines. The worker prints ``{"ready": true, ...}``, then answers each request
line on stdin with one line on stdout: ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``.
Requests (``op``):

- ``run``: ``case`` (store, retrieve, metadata, exists, update_metadata, delete,
  stream_upload, stream_download), ``size`` (bytes),
  ``mode`` (``sequential``: one at a time; ``concurrent``: 32 tasks under one
  ``asyncio.gather``, each doing its share one after another), ``n`` (operations) →
  ``seconds`` (timed here, so the pipe's round trip is not in the figure).
- ``after``: untimed tidy-up (deletes what ``run`` stored).
- ``populate``: ``n`` artifacts of ``size`` bytes, 32 in flight, stopping after ``deadline``
  seconds → ``seconds`` and ``stored``.
- ``fill``: ``n`` artifacts laid out for the search and list queries → ``seconds``.
- ``query``: ``case`` (list, search_user, search_user_mime), ``n`` calls, each for a random
  session or user of the fill → ``seconds`` and ``rows`` (what the last call returned).
- ``quit``.

Quirks of the published package handled here: ``ttl=None`` is refused (the default 900 s is
used, or 86400 s for the query catalog so nothing expires during a run); its filesystem
provider fails every store without ``filename=``; its ``search`` needs ``user_id``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time

CALLERS = 32
POOL = 32
MIMES = ("text/plain", "application/json", "image/png", "image/jpeg")
GROUP = 100  # artifacts per session of the query catalog: half session scope, half user scope
PAGE = 20
CHUNK = 64 * 1024


def main() -> int:
    config = json.loads(sys.argv[1])
    backend = config["backend"]
    os.environ["ARTIFACT_PROVIDER"] = backend
    os.environ["SESSION_PROVIDER"] = "memory"
    os.environ["ARTIFACT_SANDBOX_ID"] = "bench"
    if backend == "filesystem":
        os.makedirs(config["root"], exist_ok=True)
        os.environ["ARTIFACT_FS_ROOT"] = config["root"]  # read at import time
    # The protocol owns stdout: anything the package prints goes to stderr (a log file).
    protocol = sys.stdout
    sys.stdout = sys.stderr

    import importlib.metadata

    import chuk_artifacts
    from chuk_artifacts import ArtifactStore, StreamDownloadRequest, StreamUploadRequest

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    store = ArtifactStore(storage_provider=backend, session_provider="memory", sandbox_id="bench")
    bench = Bench(store, loop, StreamUploadRequest, StreamDownloadRequest)

    def send(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    send(
        {
            "ready": True,
            "package": "chuk-artifacts",
            "version": importlib.metadata.version("chuk-artifacts"),
            "module": chuk_artifacts.__file__,
            "python": sys.version.split()[0],
            "backend": backend,
        }
    )
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            send({"ok": True})
            break
        try:
            result = getattr(bench, "op_" + op)(**request)
            send({"ok": True, **result})
        except Exception as exc:  # noqa: BLE001 - reported to the runner, which records it
            send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    loop.close()
    return 0


class Bench:
    def __init__(self, store, loop, upload_request, download_request) -> None:
        self.store = store
        self.loop = loop
        self.Up = upload_request
        self.Down = download_request
        self.sid = loop.run_until_complete(store.create_session())
        self.data: dict[int, bytes] = {}
        self.pools: dict[int, list[str]] = {}
        self.streamed: dict[int, str] = {}
        self.written: list[str] = []
        self.sessions: list[tuple[str, str]] = []  # (session, user) of the query catalog
        self.rng = random.Random(42)
        self.last_rows = 0

    # -- helpers --------------------------------------------------------------------------

    def _bytes(self, size: int) -> bytes:
        if size not in self.data:
            self.data[size] = os.urandom(size)
        return self.data[size]

    async def _store(self, size: int) -> str:
        return await self.store.store(
            self._bytes(size),
            mime="application/octet-stream",
            summary="bench",
            filename="object.bin",
            session_id=self.sid,
        )

    async def _many(self, fn, n: int, mode: str) -> float:
        """``n`` calls of ``fn(i)``: one at a time, or 32 tasks each doing its share."""
        if mode == "sequential":
            t = time.perf_counter()
            for i in range(n):
                await fn(i)
            return time.perf_counter() - t
        per = -(-n // CALLERS)

        async def caller(k: int) -> None:
            for i in range(k * per, min(n, (k + 1) * per)):
                await fn(i)

        t = time.perf_counter()
        await asyncio.gather(*(caller(k) for k in range(CALLERS)))
        return time.perf_counter() - t

    async def _pool(self, size: int) -> list[str]:
        if size not in self.pools:
            self.pools[size] = [await self._store(size) for _ in range(POOL)]
        return self.pools[size]

    def _chunks(self, size: int):
        data = self._bytes(size)

        async def gen():
            for start in range(0, len(data), CHUNK):
                yield data[start : start + CHUNK]

        return gen()

    # -- requests -------------------------------------------------------------------------

    def op_run(self, case: str, n: int, size: int = 1024, mode: str = "sequential") -> dict:
        return {"seconds": self.loop.run_until_complete(getattr(self, "_case_" + case)(n, size, mode))}

    def op_after(self) -> dict:
        async def tidy() -> None:
            ids, self.written = self.written, []
            for start in range(0, len(ids), CALLERS):
                await asyncio.gather(*(self.store.delete(a, session_id=self.sid) for a in ids[start : start + CALLERS]))

        self.loop.run_until_complete(tidy())
        return {}

    async def _case_store(self, n: int, size: int, mode: str) -> float:
        async def one(i: int) -> None:
            self.written.append(await self._store(size))

        return await self._many(one, n, mode)

    async def _case_retrieve(self, n: int, size: int, mode: str) -> float:
        ids = await self._pool(size)
        return await self._many(lambda i: self.store.retrieve(ids[i % POOL], session_id=self.sid), n, mode)

    async def _case_metadata(self, n: int, size: int, mode: str) -> float:
        ids = await self._pool(size)  # the published metadata() takes no identity
        return await self._many(lambda i: self.store.metadata(ids[i % POOL]), n, mode)

    async def _case_exists(self, n: int, size: int, mode: str) -> float:
        ids = await self._pool(size)  # nor does exists()
        return await self._many(lambda i: self.store.exists(ids[i % POOL]), n, mode)

    async def _case_update_metadata(self, n: int, size: int, mode: str) -> float:
        ids = await self._pool(size)
        return await self._many(lambda i: self.store.update_metadata(ids[i % POOL], meta={"n": i}), n, mode)

    async def _case_delete(self, n: int, size: int, mode: str) -> float:
        victims: list[str] = []
        for start in range(0, n, CALLERS):  # untimed: what the timed loop deletes
            victims += await asyncio.gather(*(self._store(size) for _ in range(min(CALLERS, n - start))))
        return await self._many(lambda i: self.store.delete(victims[i], session_id=self.sid), n, mode)

    async def _case_stream_upload(self, n: int, size: int, mode: str) -> float:
        async def one(i: int) -> None:
            self.written.append(
                await self.store.stream_upload(
                    self.Up(
                        data_stream=self._chunks(size),
                        mime="application/octet-stream",
                        summary="bench",
                        filename="stream.bin",
                        session_id=self.sid,
                    )
                )
            )

        return await self._many(one, n, mode)

    async def _case_stream_download(self, n: int, size: int, mode: str) -> float:
        if size not in self.streamed:
            self.streamed[size] = await self.store.stream_upload(
                self.Up(
                    data_stream=self._chunks(size),
                    mime="application/octet-stream",
                    summary="bench",
                    filename="download.bin",
                    session_id=self.sid,
                )
            )
        aid = self.streamed[size]

        async def one(i: int) -> None:
            got = 0
            async for chunk in self.store.stream_download(self.Down(artifact_id=aid, session_id=self.sid)):
                got += len(chunk)
            if got != size:
                raise RuntimeError(f"stream_download returned {got} bytes of {size}")

        return await self._many(one, n, mode)

    # -- population and the query catalog -------------------------------------------------

    def op_populate(self, n: int, size: int = 1024, deadline: float = 1e9) -> dict:
        """``n`` stores of ``size`` bytes, 32 tasks under one ``asyncio.gather``, each storing
        its share one after another, until done or ``deadline`` seconds (left in place: a
        worker of its own)."""
        data = os.urandom(size)
        per = -(-n // CALLERS)
        done = [0] * CALLERS

        async def caller(k: int, stop: float) -> None:
            for i in range(k * per, min(n, (k + 1) * per)):
                if time.perf_counter() > stop:
                    return
                await self.store.store(
                    data, mime="application/octet-stream", summary="bench", filename=f"p{i}.bin", session_id=self.sid
                )
                done[k] += 1

        async def go() -> float:
            t = time.perf_counter()
            await asyncio.gather(*(caller(k, t + deadline) for k in range(CALLERS)))
            return time.perf_counter() - t

        seconds = self.loop.run_until_complete(go())
        return {"seconds": seconds, "stored": sum(done)}

    def op_fill(self, n: int, ttl: int = 86400) -> dict:
        """``n`` artifacts in sessions of ``GROUP``: each session its own user, half of its
        artifacts session scope and half user scope (the published ``search`` only sees user
        scope, its ``list_by_session`` only session scope); 32 stores in flight."""
        plan: list[tuple[str, str, int]] = []

        async def fill() -> float:
            t = time.perf_counter()
            serial = 0
            k = 0
            while serial < n:
                user = f"user{k}"
                k += 1
                sid = await self.store.create_session(user_id=user)
                self.sessions.append((sid, user))
                for _ in range(min(GROUP, n - serial)):
                    plan.append((sid, user, serial))
                    serial += 1

            async def one(i: int) -> None:
                sid, user, s = plan[i]
                user_scope = s % 2 == 1
                await self.store.store(
                    b"x" * 64,
                    mime=MIMES[s % len(MIMES)],
                    summary="bench",
                    filename=f"file-{s:07d}.txt",
                    meta={"kind": f"k{s % 10}", "serial": s},
                    session_id=sid,
                    user_id=user,
                    ttl=ttl,
                    scope="user" if user_scope else "session",
                )

            await self._many(one, len(plan), "concurrent")
            return time.perf_counter() - t

        return {"seconds": self.loop.run_until_complete(fill()), "sessions": len(self.sessions)}

    async def _queries(self, n: int, call) -> float:
        rows = 0
        t = time.perf_counter()
        for _ in range(n):
            rows = len(await call(self.rng.choice(self.sessions)))
        seconds = time.perf_counter() - t
        self.last_rows = rows
        return seconds

    def op_query(self, case: str, n: int) -> dict:
        calls = {
            "list": lambda su: self.store.list_by_session(su[0], limit=PAGE),
            "search_user": lambda su: self.store.search(user_id=su[1], limit=PAGE),
            "search_user_mime": lambda su: self.store.search(user_id=su[1], mime_prefix="image/", limit=PAGE),
        }
        seconds = self.loop.run_until_complete(self._queries(n, calls[case]))
        return {"seconds": seconds, "rows": self.last_rows}


if __name__ == "__main__":
    raise SystemExit(main())
