"""retrieve() of 1 KiB on the filesystem backend: the current code vs two catalog paths.

- ``P1``: the caller's session and the artifact read in ONE SQLAlchemy read transaction
  (today: two, one in ``_caller`` → ``sessions.get`` and one in ``_load``).
- ``P2``: one driver-level statement (artifact LEFT JOIN the caller's session) on a pooled
  DBAPI connection kept per thread, no explicit BEGIN/COMMIT, then a plain ``open().read()``.

Both keep the checks of the real call (session live, artifact committed and in the session,
size matches); neither is a drop-in replacement.
"""

from __future__ import annotations

import json
import os
import threading
import time

from fsspec.implementations.local import LocalFileSystem

from ..refs import RawCatalog
from .common import compare, scratch_store, timed

N = 1000


def main() -> None:
    store, workdir = scratch_store("filesystem", "retrieve")
    sid = store.create_session()
    data = os.urandom(1024)
    ids = [store.store(data, mime="application/octet-stream", session_id=sid) for _ in range(32)]
    raw = RawCatalog(os.path.join(workdir, "raw.db"))
    os.makedirs(os.path.join(workdir, "raw"))
    paths = [os.path.join(workdir, "raw", f"p{i}") for i in range(32)]
    for p in paths:
        with open(p, "wb") as f:
            f.write(data)
    rows = [raw.insert(p, 1024) for p in paths]
    catalog, sandbox = store.catalog, store.sandbox_id

    fs = LocalFileSystem()

    def ref() -> None:  # the benchmark's raw_select_read
        for i in range(N):
            raw.select(rows[i % 32])
            fs.cat_file(paths[i % 32])

    def current() -> None:
        for i in range(N):
            store.retrieve(ids[i % 32], session_id=sid)

    def one_transaction() -> None:
        for i in range(N):
            with catalog.read() as conn:
                session = catalog.get_session(conn, sandbox, sid)
                row = catalog.get_artifact(conn, ids[i % 32])
            assert session["expires_at"] > time.time() and row["session_id"] == sid and row["state"] == "committed"
            with open(store.blobs.path(row["key"]), "rb") as f:
                assert len(f.read()) == row["bytes"]

    local = threading.local()
    sql = (
        "SELECT a.*, s.expires_at AS session_expires_at FROM artifacts a "
        "LEFT JOIN sessions s ON s.sandbox_id = ? AND s.session_id = ? WHERE a.artifact_id = ?"
    )

    def driver_level() -> None:
        for i in range(N):
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = catalog.engine.raw_connection()
            cur = conn.cursor()
            cur.execute(sql, (sandbox, sid, ids[i % 32]))
            row = dict(zip([d[0] for d in cur.description], cur.fetchone()))
            cur.close()
            assert row["session_expires_at"] > time.time() and row["session_id"] == sid and row["state"] == "committed"
            row["meta"] = json.loads(row["meta"]) if isinstance(row["meta"], str) else row["meta"]
            with open(store.blobs.path(row["key"]), "rb") as f:
                assert len(f.read()) == row["bytes"]

    compare(
        {
            "raw select + read": timed(ref, N),
            "retrieve (current)": timed(current, N),
            "P1 one read transaction": timed(one_transaction, N),
            "P2 driver-level joined SELECT": timed(driver_level, N),
        },
        rounds=7,
        unit="ops/s",
    )
    store.close()


if __name__ == "__main__":
    main()
