"""A writer process for tests/test_crash.py, killed with SIGKILL while it works.

``python tests/crash_worker.py ROOT random SEED`` runs random operations until it is killed.
``python tests/crash_worker.py ROOT point NAME`` arms one crash point, then runs the operation
that reaches it; the process kills itself there.

Every operation is announced on stdout before it starts and reported after it returns, so the
test knows which outcomes are allowed for an operation that the kill interrupted.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sys
import time

from chuk_artifacts import ArtifactStore, StreamUploadRequest

USER = "crash"


def say(*words: object) -> None:
    """One journal line in one write: print() writes each word separately, so with unbuffered
    output (``PYTHONUNBUFFERED``) a kill could land mid-line. A pipe write this short is atomic."""
    sys.stdout.write(" ".join(map(str, words)) + "\n")
    sys.stdout.flush()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def crash_before(obj: object, name: str) -> None:
    """Kill this process when ``obj.name`` is next called, before it runs."""

    def wrapper(*args: object, **kwargs: object) -> object:
        die()

    setattr(obj, name, wrapper)


def crash_after(obj: object, name: str) -> None:
    """Kill this process when ``obj.name`` next returns."""
    original = getattr(obj, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        original(*args, **kwargs)
        die()

    setattr(obj, name, wrapper)


def crash_before_commit(store: ArtifactStore) -> None:
    """Kill ``store``/``store_batch`` with the bytes written and the row not committed: before
    the commit claims the intents, or (bytes in the catalog's own transaction, ``joint``) once
    the bytes are written inside that transaction."""
    if store.writer.joint:
        crash_after(store.blobs, "put")
    else:
        crash_before(store.catalog, "claim_intents")


def open_store(root: str, provider: str = "filesystem") -> ArtifactStore:
    """The store under ``root``: files and a catalog file, or (``sqlite``) one SQLite file."""
    if provider == "sqlite":
        return ArtifactStore(storage_provider="sqlite", sqlite_path=f"{root}/artifacts.db")
    return ArtifactStore(storage_provider=provider, fs_root=root)


def existing(store: ArtifactStore) -> list[str]:
    return [m.artifact_id for m in store.search(user_id=USER, scope="user", limit=1000)]


def payload(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice([0, 1, 4096, 65536, 300_000]))


def do_store(store: ArtifactStore, rng: random.Random) -> None:
    data = payload(rng)
    say("storing", sha(data))
    aid = store.store(data, mime="application/octet-stream", scope="user", user_id=USER, ttl=None)
    say("stored", aid, sha(data))


def do_batch(store: ArtifactStore, rng: random.Random) -> None:
    items = [payload(rng) for _ in range(3)]
    for data in items:
        say("storing", sha(data))
    ids = store.store_batch(
        [{"data": d, "mime": "application/octet-stream"} for d in items], user_id=USER, scope="user", ttl=None
    )
    for aid, data in zip(ids, items):
        say("stored", aid, sha(data))


def do_stream(store: ArtifactStore, rng: random.Random, *, crash_after: int | None = None) -> None:
    chunks = [rng.randbytes(65536) for _ in range(rng.randint(1, 12) if crash_after is None else 8)]
    data = b"".join(chunks)

    def source():
        for n, chunk in enumerate(chunks):
            if crash_after is not None and n == crash_after:
                die()
            yield chunk

    say("storing", sha(data))
    aid = store.stream_upload(
        StreamUploadRequest(data_stream=source(), mime="application/octet-stream", scope="user", user_id=USER, ttl=None)
    )
    say("stored", aid, sha(data))


def do_update(store: ArtifactStore, rng: random.Random, aid: str) -> None:
    data = payload(rng)
    say("updating", aid, sha(data))
    store.update_file(aid, data=data, user_id=USER)
    say("updated", aid, sha(data))


def do_copy(store: ArtifactStore, aid: str) -> None:
    say("copying", aid)
    new = store.copy_file(aid, user_id=USER)
    say("copied", aid, new)


def do_delete(store: ArtifactStore, aid: str) -> None:
    say("deleting", aid)
    store.delete(aid, user_id=USER)
    say("deleted", aid)


def do_expiring_cleanup(store: ArtifactStore) -> None:
    """Artifacts that expire, then a cleanup that sweeps them."""
    ids = store.store_batch(
        [{"data": b"x" * 1000, "mime": "text/plain"} for _ in range(5)], user_id=USER, scope="user", ttl=1
    )
    for aid in ids:
        say("expiring", aid)
    time.sleep(1.1)
    say("cleanup")
    store.cleanup_expired_sessions()
    say("cleaned")


def random_ops(store: ArtifactStore, seed: int) -> None:
    rng = random.Random(seed)
    ids = existing(store)
    while True:
        op = rng.choice(["store", "store", "batch", "stream", "update", "update", "copy", "delete", "cleanup"])
        if op == "store" or not ids:
            do_store(store, rng)
        elif op == "batch":
            do_batch(store, rng)
        elif op == "stream":
            do_stream(store, rng)
        elif op == "update":
            do_update(store, rng, rng.choice(ids))
        elif op == "copy":
            do_copy(store, rng.choice(ids))
        elif op == "delete":
            aid = rng.choice(ids)
            ids.remove(aid)
            do_delete(store, aid)
            continue
        else:
            say("cleanup")
            store.cleanup_expired_sessions()
            say("cleaned")
        ids = existing(store)


def crash_point(store: ArtifactStore, name: str) -> None:
    rng = random.Random(name)
    ids = existing(store)
    target = ids[0]
    if name == "store-before-commit":  # bytes written, row not inserted
        crash_before_commit(store)
        do_store(store, rng)
    elif name == "batch-before-commit":
        crash_before_commit(store)
        do_batch(store, rng)
    elif name == "stream-midway":  # a temp file half written
        do_stream(store, rng, crash_after=5)
    elif name == "update-before-commit":  # new bytes staged, row unchanged
        crash_before(store.catalog, "claim_intents")
        do_update(store, rng, target)
    elif name == "update-before-move":  # row committed, bytes still at the staging key
        crash_before(store.blobs, "move")
        do_update(store, rng, target)
    elif name == "update-before-clear":  # bytes moved into place, pending_key still set
        crash_before(store.catalog, "clear_pending")
        do_update(store, rng, target)
    elif name == "copy-before-commit":
        crash_before(store.catalog, "claim_intents")
        do_copy(store, target)
    elif name == "delete-after-tombstone":  # row tombstoned, bytes still there
        crash_before(store.blobs, "delete")
        do_delete(store, target)
    elif name == "delete-before-rows":  # bytes gone, tombstone still there
        crash_before(store.catalog, "remove_one")  # (a batch's: delete_artifact_rows)
        do_delete(store, target)
    elif name == "cleanup-midway":  # some expired artifacts swept, the rest tombstoned
        original = store.blobs.delete
        calls = []

        def delete(*args: object, **kwargs: object) -> object:
            calls.append(1)
            if len(calls) == 3:
                die()
            return original(*args, **kwargs)

        store.blobs.delete = delete  # type: ignore[method-assign]
        do_expiring_cleanup(store)
    else:
        raise SystemExit(f"unknown crash point {name!r}")
    say("survived", name)


def main() -> None:
    root, mode, arg, provider = sys.argv[1:5]
    store = open_store(root, provider)
    say("ready")
    if mode == "random":
        random_ops(store, int(arg))
    else:
        crash_point(store, arg)


if __name__ == "__main__":
    main()
