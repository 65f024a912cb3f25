"""Every request-path query is served by an index, so its cost does not grow with the catalog.

Two kinds of evidence, neither of them timing:

* the plan — each SELECT/UPDATE/DELETE a request path runs is replayed under
  ``EXPLAIN QUERY PLAN`` and no plan line may be a full scan of a table;
* the work — SQLite's virtual-machine steps for a request (counted with a progress handler)
  stay flat when the catalog grows by thousands of artifacts the request does not match.

``get_stats`` is exempt: it is a report over the whole sandbox, not a request path.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytest

from chuk_artifacts import ArtifactStore
from chuk_artifacts.config import Settings

SIGNAL = 5  # artifacts of each kind a request matches
PAST = 3600.0


# -- building a catalog ------------------------------------------------------------------------


def build(store: ArtifactStore) -> dict[str, Any]:
    """A few hundred artifacts of every scope, plus expired ones and expired sessions."""
    ctx: dict[str, Any] = {}
    alice = store.create_session(user_id="alice", session_id="sess-alice")
    ctx["session"] = alice
    ctx["ids"] = store.store_batch(
        [
            {
                "data": b"doc %d" % i,
                "mime": "text/markdown",
                "filename": f"docs/{i}.md",
                "meta": {"project": "apollo", "n": i},
            }
            for i in range(SIGNAL)
        ],
        session_id=alice,
    )
    store.store_batch(
        [{"data": b"img", "mime": "image/png", "filename": f"img/{i}.png"} for i in range(SIGNAL)],
        user_id="alice",
        scope="user",
    )
    store.store_batch(
        [{"data": b"shared", "mime": "text/plain", "filename": f"shared/{i}.txt"} for i in range(SIGNAL)],
        scope="sandbox",
    )
    for u in range(12):  # other users, each with a session full of artifacts
        sid = store.create_session(user_id=f"user{u}")
        store.store_batch(
            [
                {
                    "data": b"x",
                    "mime": ("text/plain", "application/json")[i % 2],
                    "filename": f"work/{u}/{i}.txt",
                    "meta": {"project": f"p{u}", "i": i},
                }
                for i in range(20)
            ],
            session_id=sid,
            ttl=None,
        )
    return ctx


def add_expired(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Artifacts and sessions that expired an hour ago (for the cleanup sweep to find)."""
    now = time.time()
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: now - PAST)
        sid = store.create_session(user_id="gone", ttl_hours=0.01)
        store.store_batch([{"data": b"old", "mime": "text/plain"} for _ in range(SIGNAL)], session_id=sid, ttl=60)
        store.store_batch(
            [{"data": b"old", "mime": "text/plain"} for _ in range(SIGNAL)], user_id="alice", scope="user", ttl=60
        )


def add_noise(store: ArtifactStore, sessions: int, per_session: int) -> None:
    """Artifacts no request below matches: other users, other mime types, names and meta."""
    for j in range(sessions):
        sid = store.create_session(user_id=f"noise{j}")
        store.store_batch(
            [
                {
                    "data": b"n",
                    "mime": "application/x-noise",
                    "filename": f"noise/{j}/{i}",
                    "meta": {"project": f"noise{i % 7}"},
                }
                for i in range(per_session)
            ],
            session_id=sid,
            ttl=None,
        )


# -- the request paths -------------------------------------------------------------------------

Op = Callable[[ArtifactStore, dict[str, Any]], Any]


def _store_then_delete(store: ArtifactStore, ctx: dict[str, Any]) -> Callable[[], Any]:
    artifact_id = store.store(b"temp", mime="text/plain", user_id="alice")
    return lambda: store.delete(artifact_id, user_id="alice")


def _open_a_share(store: ArtifactStore, ctx: dict[str, Any]) -> bytes:
    link = store.share(ctx["ids"][4], max_downloads=3, user_id="alice")
    opened = store.open_share(link.url.rsplit("/", 1)[1])
    return b"".join(opened.download(0, 1, 1024).chunks or [])


def _revoke_a_share(store: ArtifactStore, ctx: dict[str, Any]) -> bool:
    return store.revoke_share(store.share(ctx["ids"][4], user_id="alice").share_id, user_id="alice")


REQUESTS: dict[str, Op] = {
    "retrieve_as_user": lambda s, c: s.retrieve(c["ids"][0], user_id="alice"),
    "retrieve_as_session": lambda s, c: s.retrieve(c["ids"][0], session_id=c["session"]),
    "metadata": lambda s, c: s.metadata(c["ids"][1], user_id="alice"),
    "exists": lambda s, c: s.exists(c["ids"][1], session_id=c["session"]),
    "list_by_session": lambda s, c: s.list_by_session(c["session"]),
    "list_by_session_next_page": lambda s, c: s.list_by_session(
        c["session"], limit=2, cursor=s.list_by_session(c["session"], limit=2).next_cursor
    ),
    "get_directory_contents": lambda s, c: s.get_directory_contents(c["session"], "docs/"),
    "get_directory_contents_next_page": lambda s, c: s.get_directory_contents(
        c["session"],
        "docs/",
        limit=2,
        cursor=s.get_directory_contents(c["session"], "docs/", limit=2).next_cursor,
    ),
    "search_by_user_and_scope": lambda s, c: s.search(user_id="alice", scope="user"),
    "search_by_user": lambda s, c: s.search(user_id="alice"),
    "search_by_mime_prefix": lambda s, c: s.search(mime_prefix="image/"),
    "search_by_user_and_mime_prefix": lambda s, c: s.search(user_id="alice", mime_prefix="image/"),
    "search_by_meta_filter": lambda s, c: s.search(meta_filter={"project": "apollo"}),
    "search_by_meta_filter_next_page": lambda s, c: s.search(
        meta_filter={"project": "apollo"},
        limit=2,
        cursor=s.search(meta_filter={"project": "apollo"}, limit=2).next_cursor,
    ),
    "search_by_two_meta_entries": lambda s, c: s.search(meta_filter={"project": "apollo", "n": 3}),
    "search_by_session": lambda s, c: s.search(session_id=c["session"]),
    "search_by_filename_prefix": lambda s, c: s.search(filename_prefix="shared/"),
    "search_by_user_and_filename_prefix": lambda s, c: s.search(user_id="alice", filename_prefix="img/"),
    "search_sandbox_scope_as_user": lambda s, c: s.search(user_id="bob", scope="sandbox"),
    "store_with_user_id": lambda s, c: s.store(b"new", mime="text/plain", user_id="alice"),
    "store_for_a_new_user": lambda s, c: s.store(b"new", mime="text/plain", user_id=f"new{time.time_ns()}"),
    "update_metadata": lambda s, c: s.update_metadata(c["ids"][2], meta={"touched": True}, user_id="alice"),
    "move_file": lambda s, c: s.move_file(c["ids"][3], new_filename="docs/3-moved.md", user_id="alice"),
    "cleanup_expired_sessions": lambda s, c: s.cleanup_expired_sessions(),
    "validate_session": lambda s, c: s.validate_session(c["session"]),
    "share_open_and_download": _open_a_share,
    "share_revoke": _revoke_a_share,
    "list_shares_of_a_user": lambda s, c: s.list_shares(user_id="alice"),
    "list_shares_of_an_artifact": lambda s, c: s.list_shares(c["ids"][4], include_inactive=True),
}


# -- capturing and explaining SQL --------------------------------------------------------------


@contextmanager
def captured_sql(store: ArtifactStore) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the catalog's SQLite connection runs, whichever way it was sent
    (SQLAlchemy or the driver-level reads of the request path), as SQLite expands it: with the
    bound values inlined, so it is planned with no parameters."""
    assert store.catalog.in_memory, "one shared connection: tracing it sees every statement"
    statements: list[tuple[str, Any]] = []
    with store.catalog.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
    raw.set_trace_callback(lambda sql: statements.append((sql, ())))
    try:
        yield statements
    finally:
        raw.set_trace_callback(None)


_PLANNED = re.compile(r"^\s*(SELECT|UPDATE|DELETE)\b", re.IGNORECASE)


def query_plans(store: ArtifactStore, statements: list[tuple[str, Any]]) -> dict[str, list[str]]:
    """``EXPLAIN QUERY PLAN`` of every SELECT/UPDATE/DELETE, with the parameters it ran with."""
    plans: dict[str, list[str]] = {}
    with store.catalog.engine.connect() as conn:
        for statement, parameters in statements:
            if _PLANNED.match(statement) and statement not in plans:
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
                plans[statement] = [row[-1] for row in rows]
    return plans


def full_scans(plan: list[str]) -> list[str]:
    """Plan lines that read a whole table: ``SCAN t`` without ``USING [COVERING] INDEX``.

    ``SCAN x`` of a subquery that SQLite runs as a co-routine (``CO-ROUTINE x``) reads that
    subquery's rows, not a table; the subquery's own lines are in the plan and checked as well.
    """
    coroutines = {line.removeprefix("CO-ROUTINE ") for line in plan if line.startswith("CO-ROUTINE ")}
    return [
        line
        for line in plan
        if line.startswith("SCAN ")
        and "INDEX" not in line
        and line != "SCAN CONSTANT ROW"
        and line.removeprefix("SCAN ") not in coroutines
    ]


@pytest.fixture(scope="module")
def catalog_store() -> Iterator[tuple[ArtifactStore, dict[str, Any]]]:
    store = ArtifactStore(settings=Settings())  # no environment: the defaults, in memory
    with pytest.MonkeyPatch.context() as mp:
        ctx = build(store)
        add_expired(store, mp)
    yield store, ctx
    store.close()


def test_the_catalog_under_test_holds_a_few_hundred_artifacts(catalog_store):
    store, _ = catalog_store
    assert store.get_stats()["artifacts"]["count"] >= 250


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_request_path_queries_never_scan_a_table(catalog_store, request_name):
    store, ctx = catalog_store
    with captured_sql(store) as statements:
        REQUESTS[request_name](store, ctx)
    plans = query_plans(store, statements)

    assert plans, "the request ran no query at all"
    scans = {stmt: full_scans(plan) for stmt, plan in plans.items() if full_scans(plan)}
    assert scans == {}


def test_cleanup_plans_cover_the_sweep_that_deletes(monkeypatch):
    """The sweep's delete statements are planned too: run it when there is something to sweep."""
    store = ArtifactStore(settings=Settings())
    try:
        build(store)
        add_expired(store, monkeypatch)
        with captured_sql(store) as statements:
            result = store.cleanup_expired_sessions()
        plans = query_plans(store, statements)
    finally:
        store.close()

    assert result.artifacts >= 2 * SIGNAL and result.sessions >= 1
    assert any(s.lstrip().upper().startswith("DELETE") for s in plans)
    assert {s: full_scans(p) for s, p in plans.items() if full_scans(p)} == {}


def test_full_scans_detects_a_table_scan(catalog_store):
    """The detector itself: an unindexed predicate is reported, an indexed one is not."""
    store, _ = catalog_store
    scan = query_plans(store, [("SELECT * FROM artifacts WHERE summary = ?", ("x",))])
    seek = query_plans(store, [("SELECT * FROM artifacts WHERE artifact_id = ?", ("x",))])
    assert full_scans(next(iter(scan.values())))
    assert not full_scans(next(iter(seek.values())))


# -- the work stays flat as the catalog grows ---------------------------------------------------


class StepCounter:
    """Counts SQLite virtual-machine instructions on the store's (single) in-memory connection."""

    def __init__(self, store: ArtifactStore) -> None:
        raw = store.catalog.engine.raw_connection()
        self.dbapi = raw.driver_connection
        raw.close()
        self.steps = 0

    def _tick(self) -> int:
        self.steps += 1
        return 0

    def measure(self, call: Callable[[], Any]) -> int:
        self.steps = 0
        self.dbapi.set_progress_handler(self._tick, 1)
        try:
            call()
        finally:
            self.dbapi.set_progress_handler(None, 1)
        return self.steps


#: Requests whose work must not depend on how many unrelated artifacts exist.
FLAT = sorted(set(REQUESTS) - {"store_for_a_new_user"}) + ["delete"]
NOISE_SESSIONS, NOISE_PER_SESSION = 60, 25  # 1500 unrelated artifacts, 60 unrelated sessions


@pytest.fixture(scope="module")
def steps_small_and_large() -> dict[str, tuple[int, int]]:
    store = ArtifactStore(settings=Settings())
    try:
        ctx = build(store)
        counter = StepCounter(store)

        def measure_all() -> dict[str, int]:
            out = {}
            for name in FLAT:
                if name == "delete":
                    out[name] = counter.measure(_store_then_delete(store, ctx))
                else:
                    out[name] = counter.measure(lambda: REQUESTS[name](store, ctx))
            return out

        measure_all()  # warm up: sessions touched, first-time inserts done
        small = measure_all()
        add_noise(store, NOISE_SESSIONS, NOISE_PER_SESSION)
        large = measure_all()
    finally:
        store.close()
    return {name: (small[name], large[name]) for name in FLAT}


@pytest.mark.parametrize("request_name", FLAT)
def test_request_work_does_not_grow_with_unrelated_artifacts(steps_small_and_large, request_name):
    small, large = steps_small_and_large[request_name]
    # Six times more artifacts: an index seek costs a level or two more, a scan six times more.
    assert large <= small * 1.5 + 200, f"{request_name}: {small} VM steps grew to {large}"


def test_step_counter_sees_a_scan_grow():
    """The measure itself: a query that scans does cost more on a bigger catalog."""
    store = ArtifactStore(settings=Settings())
    try:
        build(store)
        counter = StepCounter(store)

        def scan() -> None:
            with store.catalog.read() as conn:
                conn.exec_driver_sql("SELECT count(*) FROM artifacts WHERE summary = 'nothing'").all()

        small = counter.measure(scan)
        add_noise(store, 10, 25)
        large = counter.measure(scan)
    finally:
        store.close()
    assert large > small * 1.5 + 200


def test_a_callers_prefix_search_does_not_grow_with_other_users_matches():
    """Other users' artifacts of the same MIME type and file names are unrelated to alice's
    search: it walks alice's own rows in order instead of every user's matches."""
    store = ArtifactStore(settings=Settings())
    try:
        build(store)
        counter = StepCounter(store)
        searches = {
            "mime": lambda: store.search(user_id="alice", mime_prefix="image/", limit=3),
            "filename": lambda: store.search(user_id="alice", filename_prefix="img/", limit=3),
            "session_mime": lambda: store.search(session_id="sess-alice", mime_prefix="text/", limit=3),
        }
        for search in searches.values():
            search()  # warm up
        small = {name: counter.measure(search) for name, search in searches.items()}
        for j in range(40):  # 1000 matches of other users: same MIME type, same names
            store.store_batch(
                [
                    {"data": b"o", "mime": ("image/png", "text/markdown")[i % 2], "filename": f"img/{i}.png"}
                    for i in range(25)
                ],
                user_id=f"other{j}",
                ttl=None,
            )
        large = {name: counter.measure(search) for name, search in searches.items()}
    finally:
        store.close()
    for name in searches:
        assert large[name] <= small[name] * 1.5 + 200, f"{name}: {small[name]} VM steps grew to {large[name]}"


def test_the_capture_sees_the_driver_level_reads(catalog_store):
    """retrieve reads the session and the artifact outside SQLAlchemy: they are planned too."""
    store, ctx = catalog_store
    with captured_sql(store) as statements:
        REQUESTS["retrieve_as_session"](store, ctx)
    planned = " ".join(query_plans(store, statements))
    assert re.search(r"\b(FROM|JOIN) artifacts\b", planned) and re.search(r"\b(FROM|JOIN) sessions\b", planned)
