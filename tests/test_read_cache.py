"""The SQLite catalog's read cache (``catalog._ReadCache``) answers a request's session and
artifact reads without running them again while nothing changed. These tests check that it is
invisible: every change, made through any path of this store, another store on the same file,
another thread or another process, is seen by the very next read; a transaction's uncommitted
rows are never kept; the cache stays bounded.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from sqlalchemy import text

from chuk_artifacts import ArtifactStore
from chuk_artifacts.catalog import READ_CACHE_ROWS


@pytest.fixture(params=["memory", "filesystem"])
def sqlite_store(request, make_store) -> ArtifactStore:
    return make_store(request.param)


def _summary(store: ArtifactStore, aid: str, sid: str) -> str:
    return store.metadata(aid, session_id=sid).summary


def test_a_change_through_any_path_of_the_store_is_read_at_once(sqlite_store):
    store = sqlite_store
    sid = store.create_session(user_id="alice")
    aid = store.store(b"x", mime="text/plain", summary="one", session_id=sid)
    assert _summary(store, aid, sid) == "one"
    assert _summary(store, aid, sid) == "one"  # now answered from the cache
    store.update_metadata(aid, summary="two", session_id=sid)  # the request path (driver)
    assert _summary(store, aid, sid) == "two"
    with store.catalog.write() as conn:  # SQLAlchemy's path, as the maintenance code takes
        conn.execute(text("UPDATE artifacts SET summary = 'three' WHERE artifact_id = :a"), {"a": aid})
    assert _summary(store, aid, sid) == "three"
    store.delete(aid, session_id=sid)
    assert not store.exists(aid, session_id=sid)


def test_a_session_change_is_read_at_once(sqlite_store):
    store = sqlite_store
    sid = store.create_session(user_id="alice")
    aid = store.store(b"x", mime="text/plain", session_id=sid)
    assert store.exists(aid, session_id=sid)
    store.delete_session(sid)
    assert not store.validate_session(sid)
    assert not store.exists(aid, session_id=sid)


def test_another_store_on_the_same_file_sees_each_change_at_once(make_store):
    writer, reader = make_store("filesystem"), make_store("filesystem")  # two catalogs, one file
    sid = writer.create_session(user_id="alice")
    aid = writer.store(b"x", mime="text/plain", summary="one", session_id=sid)
    for summary in ("two", "three", "four"):
        assert reader.metadata(aid, session_id=sid).summary != summary
        writer.update_metadata(aid, summary=summary, session_id=sid)
        assert reader.metadata(aid, session_id=sid).summary == summary
    writer.delete(aid, session_id=sid)
    assert not reader.exists(aid, session_id=sid)


def test_another_process_writing_the_file_is_seen_at_once(make_store):
    store = make_store("filesystem")
    sid = store.create_session(user_id="alice")
    aid = store.store(b"x", mime="text/plain", summary="one", session_id=sid)
    assert _summary(store, aid, sid) == "one"
    path = store.catalog.url.database
    script = (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], timeout=30)\n"
        "db.execute('UPDATE artifacts SET summary = ? WHERE artifact_id = ?', (sys.argv[3], sys.argv[2]))\n"
        "db.commit()\n"
    )
    for summary in ("from another process", "and again"):
        subprocess.run([sys.executable, "-c", script, path, aid, summary], check=True)
        assert _summary(store, aid, sid) == summary


def test_each_thread_sees_the_others_changes_at_once(make_store):
    store = make_store("filesystem")
    sid = store.create_session(user_id="alice")
    aid = store.store(b"x", mime="text/plain", summary="0", session_id=sid)
    seen: list[tuple[str, str]] = []
    go, done = threading.Event(), threading.Event()

    def reader() -> None:  # its own connection and cache
        _summary(store, aid, sid)
        for i in range(1, 21):
            go.wait()
            go.clear()
            seen.append((str(i), _summary(store, aid, sid)))
            done.set()

    t = threading.Thread(target=reader)
    t.start()
    for i in range(1, 21):
        store.update_metadata(aid, summary=str(i), session_id=sid)
        go.set()
        assert done.wait(10)
        done.clear()
    t.join()
    assert all(wanted == got for wanted, got in seen) and len(seen) == 20


def test_uncommitted_rows_are_never_kept(sqlite_store):
    store = sqlite_store
    aid = store.store(b"x", mime="text/plain", summary="committed", scope="sandbox")
    catalog = store.catalog
    assert catalog.artifact(aid)["summary"] == "committed"

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        with catalog.tx() as tx:
            tx.cursor.execute("UPDATE artifacts SET summary = 'rolled back' WHERE artifact_id = ?", (aid,))
            # the same connection reads its own uncommitted change ...
            assert catalog.artifact(aid)["summary"] == "rolled back"
            raise Undo
    # ... which the cache did not keep
    assert catalog.artifact(aid)["summary"] == "committed"


def test_the_cache_is_bounded(sqlite_store):
    store = sqlite_store
    sid = store.create_session()
    ids = [store.store(b"x", mime="text/plain", session_id=sid) for _ in range(3)]
    catalog = store.catalog
    for i in range(READ_CACHE_ROWS + 50):  # unknown ids are read (and kept) too
        assert catalog.artifact(f"missing{i}") is None
    for aid in ids:
        assert store.exists(aid, session_id=sid)
    caches = [catalog._shared_cache] if catalog.in_memory else [h.cache for h in catalog._thread_connections]
    assert caches and all(len(c.rows) <= READ_CACHE_ROWS for c in caches)
    assert any(c.rows for c in caches)


def test_postgresql_is_read_afresh_every_time(make_store):
    store = make_store("postgres")
    sid = store.create_session(user_id="alice")
    aid = store.store(b"x", mime="text/plain", summary="one", session_id=sid)
    assert _summary(store, aid, sid) == "one"
    with store.catalog.write() as conn:
        conn.execute(text("UPDATE artifacts SET summary = 'two' WHERE artifact_id = :a"), {"a": aid})
    assert _summary(store, aid, sid) == "two"
