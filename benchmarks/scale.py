"""Search and list_by_session latency as the catalog grows (1k, 10k, 100k artifacts).

One store per size, filled with ``store_batch``: sessions of 100 artifacts, each session its own
user (so a bigger catalog has more tenants, as a real one does), four MIME types, five
directories, ten ``kind`` values and a unique ``serial`` in meta, and a summary with a word of
its session's own (``w000123``: a selective term of full-text search, 100 matches at every size).
Every tenth session belongs to one ``heavy`` user instead, whose own data grows with the catalog
(10% of it).

Queries run round-robin over the sizes, so every size sees the same machine load. Each asks for
a first page of ``PAGE`` rows, and the data is laid out so that the page is full at every size
(except the queries for one row and for none). The tenant queries are the target: their cost
must not grow with the catalog. The ``heavy_`` queries show what a caller's own growing data
costs; they are reported, not held to the target.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from .backends import build_store
from .common import median, now, percentile

SESSION_SIZE = 100
HEAVY = "heavy"
MIMES = ("text/plain", "application/json", "image/png", "image/jpeg")
PAYLOAD = b"x" * 64
PAGE = 20
DIRS = 5


def _fill(store: Any, total: int, log: Callable[[str], None]) -> dict[str, Any]:
    """``total`` artifacts in sessions of ``SESSION_SIZE``; returns the fill's figures."""
    if hasattr(store.blobs, "fsync"):
        store.blobs.fsync = False  # bulk load only: the queries never read these bytes
    sessions: list[tuple[str, str, str]] = []  # (session, user, its word) of the tenants (not the heavy user)
    t = now()
    serial = 0
    index = 0
    while serial < total:
        user = HEAVY if index % 10 == 0 else f"user{index}"
        index += 1
        sid = store.create_session(user_id=user)
        word = f"w{index:06d}"
        if user != HEAVY:
            sessions.append((sid, user, word))
        items = []
        for _ in range(min(SESSION_SIZE, total - serial)):
            items.append(
                {
                    "data": PAYLOAD,
                    "mime": MIMES[serial % len(MIMES)],
                    "filename": f"dir{serial % DIRS}/file-{serial:07d}.txt",
                    "meta": {"kind": f"k{serial % 10}", "serial": serial},
                    "summary": f"batch {word} item",
                }
            )
            serial += 1
        store.store_batch(items, session_id=sid, user_id=user, ttl=None)
    seconds = now() - t
    if hasattr(store.blobs, "fsync"):
        store.blobs.fsync = True
    return {
        "artifacts": total,
        "seconds": round(seconds, 3),
        "artifacts_per_s": round(total / seconds, 1),
        "sessions": sessions,
    }


def _user(f: dict[str, Any], r: random.Random) -> str:
    return r.choice(f["sessions"])[1]


Query = Callable[[Any, dict[str, Any], random.Random], Any]

#: name -> query(store, fill, rng): a random tenant's requests, and the application's (admin).
QUERIES: dict[str, Query] = {
    "list_by_session": lambda s, f, r: s.list_by_session(r.choice(f["sessions"])[0], limit=PAGE),
    "search_user": lambda s, f, r: s.search(user_id=_user(f, r), limit=PAGE),
    "search_user_mime": lambda s, f, r: s.search(user_id=_user(f, r), mime_prefix="image/", limit=PAGE),
    "search_user_filename": lambda s, f, r: s.search(
        user_id=_user(f, r), filename_prefix=f"dir{r.randrange(DIRS)}/", limit=PAGE
    ),
    "search_user_no_match": lambda s, f, r: s.search(user_id=_user(f, r), mime_prefix="video/", limit=PAGE),
    "search_meta_common": lambda s, f, r: s.search(meta_filter={"kind": f"k{r.randrange(10)}"}, limit=PAGE),
    "search_meta_unique": lambda s, f, r: s.search(meta_filter={"serial": r.randrange(f["artifacts"])}, limit=PAGE),
    "search_no_match": lambda s, f, r: s.search(mime_prefix="video/", limit=PAGE),
    # Full-text search for a selective term (its matches do not grow with the catalog): a session's
    # word, by its tenant and by the application; one filename's serial; a word found nowhere.
    "text_search_user": lambda s, f, r: s.search(user_id=(t := r.choice(f["sessions"]))[1], text=t[2], limit=PAGE),
    "text_search_selective": lambda s, f, r: s.search(text=r.choice(f["sessions"])[2], limit=PAGE),
    "text_search_snippet": lambda s, f, r: s.search(text=r.choice(f["sessions"])[2], snippet=True, limit=PAGE),
    "text_search_unique": lambda s, f, r: s.search(text=f"{r.randrange(f['artifacts']):07d}", limit=PAGE),
    "text_search_no_match": lambda s, f, r: s.search(text="nowhere", limit=PAGE),
    # One user owning 10% of the catalog: a first page is still cheap where matches are dense;
    # where none match, the user's own rows are walked (other users' never are).
    "heavy_search_user": lambda s, f, r: s.search(user_id=HEAVY, limit=PAGE),
    "heavy_search_mime": lambda s, f, r: s.search(user_id=HEAVY, mime_prefix="image/", limit=PAGE),
    "heavy_search_no_match": lambda s, f, r: s.search(user_id=HEAVY, mime_prefix="video/", limit=PAGE),
}


def run(
    spec: dict[str, Any], sizes: list[int], *, rounds: int, calls: int, log: Callable[[str], None]
) -> dict[str, Any]:
    stores: dict[int, Any] = {}
    fills: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {
        "sizes": sizes,
        "page_size": PAGE,
        "session_size": SESSION_SIZE,
        "layout": "one user per session; every tenth session the heavy user's",
    }
    try:
        for n in sizes:
            log(f"  {spec['name']} scale: filling {n} artifacts")
            stores[n] = build_store(spec, f"scale-{n}")
            fills[n] = _fill(stores[n], n, log)
        rng = random.Random(42)
        samples: dict[int, dict[str, list[float]]] = {n: {q: [] for q in QUERIES} for n in sizes}
        for n in sizes:  # warm-up: caches and prepared statements, not measured
            for query in QUERIES.values():
                query(stores[n], fills[n], rng)
        for r in range(rounds):
            for n in sizes if r % 2 == 0 else reversed(sizes):
                for name, query in QUERIES.items():
                    for _ in range(calls):
                        t = now()
                        query(stores[n], fills[n], rng)
                        samples[n][name].append((now() - t) * 1000)
        for n in sizes:
            fill = {k: v for k, v in fills[n].items() if k != "sessions"}
            out[str(n)] = {
                "fill": fill,
                "queries": {
                    name: {
                        "median_ms": round(median(values), 4),
                        "p95_ms": round(percentile(values, 95), 4),
                        "calls": len(values),
                    }
                    for name, values in samples[n].items()
                },
            }
        small, large = str(sizes[0]), str(sizes[-1])
        out["growth"] = {
            name: {
                "median": round(out[large]["queries"][name]["median_ms"] / out[small]["queries"][name]["median_ms"], 3),
                "p95": round(out[large]["queries"][name]["p95_ms"] / out[small]["queries"][name]["p95_ms"], 3),
            }
            for name in QUERIES
        }
    finally:
        for store in stores.values():
            store.close()
    return out
