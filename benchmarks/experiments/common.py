"""Shared by the experiments: a scratch store, interleaved rounds, a printed table."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("CHUK_ARTIFACTS_PLUGINS", "")

from ..backends import build_store  # noqa: E402


def scratch_store(backend: str, tag: str) -> tuple[Any, str]:
    workdir = tempfile.mkdtemp(prefix=f"chuk-experiment-{tag}-")
    return build_store({"name": backend, "workdir": workdir}, tag), workdir


def compare(cases: dict[str, Callable[[], float]], rounds: int, unit: str) -> None:
    """Run every case once per round (order alternating); each returns a rate. The first case
    is the reference: ratios are medians of per-round ratios to it."""
    for fn in cases.values():  # warm-up
        fn()
    rates: dict[str, list[float]] = {k: [] for k in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            rates[name].append(cases[name]())
    ref = rates[names[0]]
    print(f"load average {os.getloadavg()[0]:.2f}; {rounds} rounds")
    for name, v in rates.items():
        ratio = statistics.median(a / b for a, b in zip(v, ref))
        print(f"{name:34} {statistics.median(v):10,.0f} {unit}   vs {names[0]}: {ratio:.2f}")


def timed(fn: Callable[[], Any], amount: float) -> Callable[[], float]:
    """A case returning ``amount`` per second of ``fn``."""

    def case() -> float:
        t = time.perf_counter()
        fn()
        return amount / (time.perf_counter() - t)

    return case
