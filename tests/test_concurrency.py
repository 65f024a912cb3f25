"""Many threads and many asyncio tasks on ONE store over a SQLite file catalog and local files.

- 16 threads x 1,000 mixed operations (store, retrieve, update_metadata merges, update_file,
  copy_file, delete, search / list_by_session with pagination, metadata, extend_ttl) on one sync
  store: no error of any kind (in particular no "database is locked"), every thread's view of its
  own artifacts is exactly what it did, no merge into a shared artifact is lost, and afterwards
  the catalog and the bytes agree (``chuk_artifacts.fsck`` is clean, every sha256 matches).
- 200 concurrent tasks on the async facade over the same kind of store, with the same checks.
- Targeted, deterministic interleavings of a reader/copier with a writer on the SAME artifact
  (forced with hooks on the blob layer, not left to luck).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import time
import traceback
from collections import Counter
from typing import Any

import pytest

from chuk_artifacts import (
    ArtifactCorruptedError,
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreError,
    AsyncArtifactStore,
    fsck,
)

THREADS = 16
OPS_PER_THREAD = 1000
TASKS = 200
#: Above this many live artifacts a thread prefers deleting (keeps listings small and fast).
MAX_MINE = 24
PAGE = 10  # listings are read in pages this small, so cursors are used under concurrency too

#: Operation mix of a thread (weights). ``counter`` is update_metadata merging into ONE shared row.
OPS = {
    "store": 8,
    "retrieve": 18,
    "counter": 14,
    "update_file": 5,
    "update_metadata": 5,
    "copy_file": 3,
    "delete": 6,
    "search": 3,
    "list_by_session": 3,
    "metadata": 14,
    "extend_ttl": 8,
    "read_shared": 13,
}


@pytest.fixture(params=["filesystem", "sqlite"])
def fs_store(make_store, request) -> ArtifactStore:
    """A SQLite *file* catalog (WAL): beside files under a root (``filesystem``), or holding the
    bytes too (``sqlite``: every writer of bytes and rows contends for one file's lock)."""
    store = make_store(request.param)
    assert store.catalog.is_sqlite and not store.catalog.in_memory
    assert store.catalog.url.database.endswith("catalog.db" if request.param == "filesystem" else "artifacts.db")
    return store


# -- the model a thread keeps of its own artifacts ----------------------------------------------


class Model:
    """What one thread has done: its live artifacts with their bytes, meta, scope and ttl."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.scope: dict[str, str] = {}
        self.ttl: dict[str, int | None] = {}

    def add(self, aid: str, data: bytes, meta: dict[str, Any], scope: str, ttl: int | None) -> None:
        self.data[aid], self.meta[aid], self.scope[aid], self.ttl[aid] = data, dict(meta), scope, ttl

    def remove(self, aid: str) -> None:
        for table in (self.data, self.meta, self.scope, self.ttl):
            del table[aid]


def all_pages(call: Any, **kwargs: Any) -> list[Any]:
    """Every item of a paginated listing, following ``next_cursor``; no item may repeat."""
    items, cursor, seen = [], None, set()
    while True:
        page = call(limit=PAGE, cursor=cursor, **kwargs)
        for meta in page:
            assert meta.artifact_id not in seen, f"{meta.artifact_id} listed twice across pages"
            seen.add(meta.artifact_id)
        items += list(page)
        cursor = page.next_cursor
        if cursor is None:
            return items


def payload(tag: str, rng: random.Random) -> bytes:
    """Bytes of a random length (sometimes empty) that name who wrote them."""
    return f"{tag}|".encode() * rng.choice([0, 1, 3, 17, 60, 200])


def assert_consistent(store: ArtifactStore) -> list[Any]:
    """fsck (with sha256 verification) is clean, every live row's bytes hash to its sha256, and
    the blobs under grid/ are exactly the live rows' keys. Returns the live artifacts."""
    report = fsck.check(store, verify=True, grace=0)
    assert report.problems == [], report.to_dict()
    assert report.in_flight == 0
    live = all_pages(store.search)
    assert report.rows == len(live)  # no tombstone or half-written row is left behind
    for meta in live:
        data = store.blobs.get(meta.key)
        assert len(data) == meta.bytes, meta.artifact_id
        assert hashlib.sha256(data).hexdigest() == meta.sha256, meta.artifact_id
    assert set(store.blobs.keys(f"grid/{store.sandbox_id}/")) == {m.key for m in live}
    return live


# -- 16 threads x 1,000 operations on one sync store ----------------------------------------------


def run_thread(
    store: ArtifactStore,
    t: int,
    counter_id: str,
    shared: dict[str, bytes],
    start: threading.Barrier,
    model: Model,
    counts: Counter,
    increments: list[int],
) -> None:
    rng = random.Random(1000 + t)
    user = f"user-{t}"
    sid = store.create_session(user_id=user)
    ops, weights = zip(*OPS.items())
    start.wait()
    for i in range(OPS_PER_THREAD):
        op = rng.choices(ops, weights)[0]
        if (
            op in ("retrieve", "update_file", "update_metadata", "copy_file", "delete", "metadata", "extend_ttl")
            and not model.data
        ):
            op = "store"
        if op == "store" and len(model.data) >= MAX_MINE:
            op = "delete"
        # Every identity form the owner may use: user, session, or both.
        ident = rng.choice([{"user_id": user}, {"session_id": sid}, {"user_id": user, "session_id": sid}])
        aid = rng.choice(sorted(model.data)) if model.data else None
        if op == "store":
            scope = rng.choice(["session", "user"])
            data, meta = payload(f"{t}-{i}", rng), {"thread": t, "i": i}
            ttl = rng.choice([None, 600, 3600]) if scope == "user" else 900
            new = store.store(
                data,
                mime="application/octet-stream",
                meta=meta,
                scope=scope,
                ttl=ttl,
                filename=f"t{t}/f{i}.bin",
                session_id=sid,
                **({"user_id": user} if scope == "user" or rng.random() < 0.5 else {}),
            )
            model.add(new, data, meta, scope, ttl)
        elif op == "retrieve":
            assert store.retrieve(aid, **ident) == model.data[aid]
        elif op == "counter":
            increments[t] += 1
            store.update_metadata(counter_id, meta={f"t{t}": increments[t]}, merge=True, user_id="counter-owner")
        elif op == "update_file":
            data = payload(f"{t}-{i}-u", rng)
            assert store.update_file(aid, data=data, meta={"v": i}, **ident) is True
            model.data[aid] = data
            model.meta[aid]["v"] = i
        elif op == "update_metadata":
            md = store.update_metadata(aid, meta={"m": i}, summary=f"s{i}", **ident)
            model.meta[aid]["m"] = i
            assert md.meta == model.meta[aid] and md.summary == f"s{i}"
        elif op == "copy_file":
            new = store.copy_file(aid, new_meta={"copy_of": aid}, **ident)
            model.add(new, model.data[aid], {**model.meta[aid], "copy_of": aid}, model.scope[aid], model.ttl[aid])
        elif op == "delete":
            assert store.delete(aid, **ident) is True
            model.remove(aid)
        elif op == "search":
            if rng.random() < 0.5:
                found = all_pages(store.search, user_id=user)
                assert {m.artifact_id for m in found} == set(model.data)
            else:
                scoped = all_pages(store.search, user_id=user, scope="user", meta_filter={"thread": t})
                assert {m.artifact_id for m in scoped} == {
                    a for a, s in model.scope.items() if s == "user" and model.meta[a].get("thread") == t
                }
        elif op == "list_by_session":
            listed = all_pages(store.list_by_session, session_id=sid, user_id=user)
            assert {m.artifact_id for m in listed} == set(model.data)
        elif op == "metadata":
            md = store.metadata(aid, **ident)
            data = model.data[aid]
            assert (md.bytes, md.sha256, md.meta, md.scope) == (
                len(data),
                hashlib.sha256(data).hexdigest(),
                model.meta[aid],
                model.scope[aid],
            )
            assert md.owner_id == user and md.session_id == sid
        elif op == "extend_ttl":
            before = model.ttl[aid]
            md = store.extend_ttl(aid, 30, **ident)
            if before is not None:
                model.ttl[aid] = before + 30
            assert md.ttl == model.ttl[aid]
        elif op == "read_shared":
            name = rng.choice(sorted(shared))
            assert store.retrieve(name, user_id=user) == shared[name]
        counts[op] += 1


@pytest.mark.slow  # 30-60 s on 2 busy cores; still part of the default run
def test_sixteen_threads_of_mixed_operations_on_one_sqlite_file_store(fs_store):
    store = fs_store
    counter_id = store.store(b"counter", mime="text/plain", scope="user", user_id="counter-owner", meta={})
    shared = {}
    for n in range(4):  # read by every thread while the others write
        data = f"shared-{n}".encode() * (n * 50)
        shared[store.store(data, mime="text/plain", scope="sandbox")] = data

    start = threading.Barrier(THREADS)
    models = [Model() for _ in range(THREADS)]
    counts: list[Counter] = [Counter() for _ in range(THREADS)]
    increments = [0] * THREADS
    errors: list[str] = []

    def worker(t: int) -> None:
        try:
            run_thread(store, t, counter_id, shared, start, models[t], counts[t], increments)
        except BaseException:  # noqa: BLE001 - every failure is reported below, with its traceback
            errors.append(f"thread {t}:\n{traceback.format_exc()}")
            start.abort()

    began = time.monotonic()
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    elapsed = time.monotonic() - began
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    assert errors == [], "\n".join(errors)[-6000:]
    assert not any("database is locked" in e for e in errors)

    total = Counter()
    for c in counts:
        total.update(c)
    assert sum(total.values()) == THREADS * OPS_PER_THREAD
    assert set(total) == set(OPS), total  # every kind of operation really ran

    # No lost update: each thread's last merge into the shared row is there, with its count.
    assert store.metadata(counter_id).meta == {f"t{t}": n for t, n in enumerate(increments) if n}
    assert sum(increments) == total["counter"]

    # Each thread's artifacts are exactly what it did, bytes and metadata.
    for t, model in enumerate(models):
        mine = {m.artifact_id: m for m in all_pages(store.search, user_id=f"user-{t}")}
        assert set(mine) == set(model.data)
        for aid, data in model.data.items():
            assert store.retrieve(aid) == data
            assert mine[aid].meta == model.meta[aid]
    live = assert_consistent(store)
    assert len(live) == sum(len(m.data) for m in models) + len(shared) + 1
    print(f"\n{THREADS}x{OPS_PER_THREAD} operations in {elapsed:.1f} s: {dict(total)}")


# -- 200 concurrent tasks on the async facade ----------------------------------------------------


async def run_task(astore: AsyncArtifactStore, k: int, counter_id: str) -> dict[str, Any]:
    """One task's life: its own session, a few artifacts, merges into the shared counter."""
    rng = random.Random(k)
    user = f"auser-{k % 25}"  # 8 tasks per user: user-level operations overlap too
    sid = await astore.create_session(user_id=user)
    mine: dict[str, bytes] = {}
    for i in range(2):
        data = payload(f"a{k}-{i}", rng)
        aid = await astore.store(
            data,
            mime="application/octet-stream",
            session_id=sid,
            user_id=user,
            meta={"task": k, "i": i},
            scope=rng.choice(["session", "user"]),
        )
        mine[aid] = data
    first, second = list(mine)
    await astore.update_metadata(counter_id, meta={f"k{k}": 1}, user_id="counter-owner")
    assert await astore.retrieve(first, session_id=sid) == mine[first]
    new = payload(f"a{k}-new", rng)
    await astore.update_file(second, data=new, user_id=user)
    mine[second] = new
    copy = await astore.copy_file(second, user_id=user, session_id=sid)
    mine[copy] = new
    assert await astore.delete(first, session_id=sid) is True
    del mine[first]
    md = await astore.extend_ttl(copy, 60, user_id=user)
    assert md.sha256 == hashlib.sha256(new).hexdigest()
    found = await astore.search(user_id=user, meta_filter={"task": k}, limit=1000)
    assert {m.artifact_id for m in found} == set(mine)
    # identity-free stores of a user: concurrent tasks must share the user's live session
    implicit = await astore.store(b"implicit", mime="text/plain", user_id=f"implicit-{k % 10}")
    await astore.update_metadata(counter_id, meta={f"k{k}": 2}, user_id="counter-owner")
    return {"mine": mine, "merges": 2, "implicit": implicit}


def test_two_hundred_concurrent_async_tasks_on_one_sqlite_file_store(fs_store):
    store = fs_store
    counter_id = store.store(b"counter", mime="text/plain", scope="user", user_id="counter-owner", meta={})
    astore = AsyncArtifactStore(sync_store=store)

    async def main() -> list[Any]:
        return await asyncio.gather(*(run_task(astore, k, counter_id) for k in range(TASKS)), return_exceptions=True)

    began = time.monotonic()
    results = asyncio.run(main())
    elapsed = time.monotonic() - began
    failures = [(k, r) for k, r in enumerate(results) if isinstance(r, BaseException)]
    assert failures == [], "\n".join(
        f"task {k}: " + "".join(traceback.format_exception(r))[-1500:] for k, r in failures[:5]
    )

    assert store.metadata(counter_id).meta == {f"k{k}": r["merges"] for k, r in enumerate(results)}
    for k, result in enumerate(results):
        for aid, data in result["mine"].items():
            assert store.retrieve(aid) == data
    # one live session per user, even though 20 tasks stored for each implicit user at once
    for n in range(10):
        sessions = {store.metadata(r["implicit"]).session_id for k, r in enumerate(results) if k % 10 == n}
        assert len(sessions) == 1, (n, sessions)
    live = assert_consistent(store)
    assert len(live) == 1 + sum(len(r["mine"]) + 1 for r in results)
    print(f"\n{TASKS} async tasks in {elapsed:.1f} s")


# -- forced interleavings on ONE artifact ----------------------------------------------------------
#
# A reader or copier that reads an artifact's row and then its bytes without holding the row's
# lock can meet an update_file or a delete of the same artifact in between. Hooks on the blob
# layer (the calls every implementation makes: ``put`` to write bytes, ``get``/``copy`` to read
# them) make each interleaving happen every time instead of once in a thousand runs.

OLD, NEW = b"old" * 10, b"new-and-longer" * 10


def once(store: ArtifactStore, name: str, before: Any) -> None:
    """Make the next ``store.blobs.<name>(...)`` call run ``before()`` first (once)."""
    original = getattr(store.blobs, name)

    def hooked(*args: Any, **kwargs: Any) -> Any:
        setattr(store.blobs, name, original)
        before()
        return original(*args, **kwargs)

    setattr(store.blobs, name, hooked)


def test_retrieve_while_an_update_file_is_in_flight_gives_old_or_new_bytes(fs_store):
    """The update has written its new bytes but not committed its row; a retrieve then must
    not report corruption: it returns the old bytes or the new ones."""
    store = fs_store
    aid = store.store(OLD, mime="text/plain", user_id="alice")
    written, go = threading.Event(), threading.Event()
    original_put = store.blobs.put

    def put(key: str, data: bytes) -> None:
        original_put(key, data)
        if data == NEW:
            written.set()  # the new bytes are somewhere; the update has not returned yet
            go.wait(10)

    store.blobs.put = put  # type: ignore[method-assign]
    updater = threading.Thread(target=lambda: store.update_file(aid, data=NEW, user_id="alice"))
    updater.start()
    outcome: dict[str, Any] = {}

    def read() -> None:
        try:
            outcome["data"] = store.retrieve(aid, user_id="alice")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    reader = threading.Thread(target=read)
    try:
        assert written.wait(10), "update_file never wrote its bytes through blobs.put"
        reader.start()
        reader.join(2)  # a reader may also wait for the writer: then it finishes after ``go``
    finally:
        go.set()
        updater.join(10)
    reader.join(10)
    assert "error" not in outcome, repr(outcome.get("error"))
    assert outcome["data"] in (OLD, NEW)
    assert store.retrieve(aid) == NEW


@pytest.mark.parametrize("backend", ["memory", "filesystem"])
def test_retrieve_after_its_row_was_read_and_an_update_committed_gives_the_new_bytes(make_store, backend):
    store = make_store(backend)
    aid = store.store(OLD, mime="text/plain", user_id="alice")
    once(store, "get", lambda: store.update_file(aid, data=NEW, user_id="alice"))
    assert store.retrieve(aid, user_id="alice") in (OLD, NEW)
    assert store.retrieve(aid) == NEW


@pytest.mark.parametrize("backend", ["memory", "filesystem"])
def test_copy_file_racing_update_file_gives_a_copy_whose_row_matches_its_bytes(make_store, backend):
    store = make_store(backend)
    aid = store.store(OLD, mime="text/plain", user_id="alice")
    once(store, "copy", lambda: store.update_file(aid, data=NEW, user_id="alice"))
    copy_id = store.copy_file(aid, user_id="alice")
    md = store.metadata(copy_id)
    data = store.blobs.get(md.key)
    assert (len(data), hashlib.sha256(data).hexdigest()) == (md.bytes, md.sha256)
    assert store.retrieve(copy_id) in (OLD, NEW)
    assert fsck.check(store, verify=True, grace=0).problems == []


@pytest.mark.parametrize("backend", ["memory", "filesystem"])
def test_copy_file_racing_delete_raises_not_found_and_leaves_nothing(make_store, backend):
    store = make_store(backend)
    aid = store.store(b"doomed", mime="text/plain", user_id="alice")
    once(store, "copy", lambda: store.delete(aid, user_id="alice"))
    try:
        store.copy_file(aid, user_id="alice")
    except ArtifactStoreError as exc:  # anything else (a bare FileNotFoundError) fails the test
        assert isinstance(exc, ArtifactNotFoundError), repr(exc)
    # either way: no row and no bytes left over
    assert store.search() == []
    assert list(store.blobs.keys()) == []


@pytest.mark.parametrize("backend", ["memory", "filesystem"])
def test_retrieve_racing_delete_raises_not_found_not_corruption(make_store, backend):
    store = make_store(backend)
    aid = store.store(b"doomed", mime="text/plain", user_id="alice")
    once(store, "get", lambda: store.delete(aid, user_id="alice"))
    with pytest.raises(ArtifactNotFoundError) as info:
        store.retrieve(aid, user_id="alice")
    assert not isinstance(info.value, ArtifactCorruptedError)
