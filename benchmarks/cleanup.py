"""Cleanup rate: how fast ``cleanup_expired_sessions()`` removes expired artifacts (bytes and
rows), in artifacts per second."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .backends import build_store
from .common import median, now

BATCH = 500
PAYLOAD = b"y" * 1024


def run(spec: dict[str, Any], count: int, *, rounds: int, log: Callable[[str], None]) -> dict[str, Any]:
    rates, seconds = [], []
    for r in range(rounds):
        store = build_store(spec, f"cleanup-{r}")
        try:
            log(f"  {spec['name']} cleanup round {r + 1}/{rounds}: {count} expired artifacts")
            if hasattr(store.blobs, "fsync"):
                store.blobs.fsync = False  # bulk load only; the cleanup is what is timed
            sid = store.create_session()
            deadline = 0.0
            for start in range(0, count, BATCH):
                n = min(BATCH, count - start)
                store.store_batch([{"data": PAYLOAD, "mime": "application/octet-stream"}] * n, session_id=sid, ttl=1)
                deadline = time.time() + 1
            if hasattr(store.blobs, "fsync"):
                store.blobs.fsync = True
            time.sleep(max(0.0, deadline - time.time()) + 0.05)
            t = now()
            result = store.cleanup_expired_sessions()
            elapsed = now() - t
            if result.artifacts != count:
                raise RuntimeError(f"cleanup removed {result.artifacts} artifacts, expected {count}")
            rates.append(count / elapsed)
            seconds.append(elapsed)
        finally:
            store.close()
    return {
        "artifacts": count,
        "artifacts_per_s": round(median(rates), 1),
        "seconds": round(median(seconds), 3),
        "samples_artifacts_per_s": [round(x, 1) for x in rates],
    }
