"""Many processes on one store: a shared catalog (PostgreSQL or a SQLite file) and one root, or
(``sqlite``) one SQLite file holding the catalog and the bytes.

Afterwards the catalog and the bytes agree exactly, no metadata merge is lost, and concurrent
cleanups remove every expired artifact exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chuk_artifacts import ArtifactStore

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = ["filesystem", "sqlite", "postgres"]
#: Operations per worker: the full 500 on PostgreSQL (the scale-out catalog), fewer on SQLite.
OPS = {"filesystem": 200, "sqlite": 200, "postgres": 500}

WORKER = textwrap.dedent(
    """
    import json, random, sys
    from chuk_artifacts import ArtifactStore, ArtifactNotFoundError

    worker, ops, shared = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = random.Random(worker)
    user = f"user-{worker}"
    mine, merged, counts = [], [], {"store": 0, "merge": 0, "copy": 0, "delete": 0, "search": 0}
    with ArtifactStore() as store:
        for i in range(ops):
            op = rng.choice(["store", "store", "merge", "merge", "copy", "delete", "search"])
            if op in ("copy", "delete") and not mine:
                op = "store"
            if op == "store":
                data = f"{worker}-{i}-".encode() * rng.randint(1, 50)
                mine.append(store.store(data, mime="text/plain", user_id=user, scope="user",
                                        meta={"worker": worker, "i": i}))
            elif op == "merge":
                key = f"w{worker}-{i}"
                store.update_metadata(shared, meta={key: i}, merge=True, user_id="shared")
                merged.append(key)
            elif op == "copy":
                mine.append(store.copy_file(rng.choice(mine), user_id=user))
            elif op == "delete":
                victim = mine.pop(rng.randrange(len(mine)))
                assert store.delete(victim, user_id=user)
            else:
                found = store.search(user_id=user, scope="user", meta_filter={"worker": worker}, limit=1000)
                assert {m.artifact_id for m in found} == set(mine), "search disagrees with my writes"
            counts[op] += 1
    print(json.dumps({"mine": mine, "merged": merged, "counts": counts}))
    """
)

CLEANER = textwrap.dedent(
    """
    import json
    from chuk_artifacts import ArtifactStore
    with ArtifactStore() as store:
        result = store.cleanup_expired_sessions()
    print(json.dumps(result.to_dict()))
    """
)


@pytest.fixture(params=CATALOGS)
def shared(request, make_store, tmp_path):
    """A store plus the environment that points other processes at the same catalog and root."""
    store = make_store(request.param)
    store.test_ops = OPS[request.param]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ARTIFACT_PROVIDER": store.storage_provider,
        "ARTIFACT_FS_ROOT": store.settings.fs_root,
        "ARTIFACT_SQLITE_PATH": store.settings.sqlite_path,
        "ARTIFACT_CATALOG_URL": store.catalog.safe_url if store.settings.catalog_url else "",
    }
    if not store.settings.catalog_url:
        env.pop("ARTIFACT_CATALOG_URL")
    return store, env


def consistency_problems(store: ArtifactStore) -> list[str]:
    """Every live row has its bytes (size and sha256), and every blob under grid/ has a row."""
    problems, keys, cursor = [], set(), None
    while True:
        page = store.search(limit=1000, cursor=cursor)
        for meta in page:
            keys.add(meta.key)
            data = store.blobs.get(meta.key)
            if len(data) != meta.bytes or hashlib.sha256(data).hexdigest() != meta.sha256:
                problems.append(f"bytes of {meta.artifact_id} do not match its row")
        cursor = page.next_cursor
        if cursor is None:
            break
    blobs = set(store.blobs.keys("grid/"))
    problems += [f"row without bytes: {k}" for k in sorted(keys - blobs)]
    problems += [f"bytes without row: {k}" for k in sorted(blobs - keys)]
    return problems


def test_four_processes_of_mixed_operations_lose_nothing(shared):
    store, env = shared
    shared_id = store.store(b"shared", mime="text/plain", user_id="shared", scope="user", meta={})
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(n), str(store.test_ops), shared_id],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert sum(sum(r["counts"].values()) for r in results) == 4 * store.test_ops
    merged = {key for r in results for key in r["merged"]}
    assert set(store.metadata(shared_id).meta) == merged  # no merge lost
    for n, result in enumerate(results):
        live = store.search(user_id=f"user-{n}", scope="user", limit=1000)
        assert {m.artifact_id for m in live} == set(result["mine"])
    assert consistency_problems(store) == []


def test_two_concurrent_cleanups_remove_each_expired_artifact_exactly_once(shared):
    store, env = shared
    for batch in range(10):
        store.store_batch(
            [{"data": f"{batch}-{i}".encode(), "mime": "text/plain"} for i in range(500)],
            user_id=f"user-{batch % 3}",
            scope="user",
            ttl=3600,
        )
    keeper = store.store(b"keep", mime="text/plain", user_id="keeper", scope="user")
    with store.catalog.write() as conn:  # make the 5,000 expire without waiting an hour
        conn.exec_driver_sql("UPDATE artifacts SET expires_at = 1 WHERE expires_at IS NOT NULL")

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLEANER], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    removed = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        removed.append(json.loads(out.strip().splitlines()[-1])["artifacts"])

    assert sum(removed) == 5000
    assert [m.artifact_id for m in store.search(limit=1000)] == [keeper]
    assert set(store.blobs.keys("grid/")) == {store.metadata(keeper).key}
