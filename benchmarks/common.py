"""Timing, statistics and machine description shared by the benchmark sections."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

KiB = 1024
MiB = 1024 * 1024


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


class Case:
    """One measured batch: ``run(n)`` performs ``n`` operations and returns the seconds taken
    (timing inside ``run``, so setup is excluded); ``after()`` tidies up, untimed."""

    def __init__(
        self,
        name: str,
        run: Callable[[int], float],
        *,
        after: Callable[[], None] | None = None,
        multiple: int = 1,
    ) -> None:
        self.name = name
        self.run = run
        self.after = after or (lambda: None)
        self.multiple = multiple  # n is rounded up to a multiple of this (e.g. 32 callers)
        self.n = multiple

    def calibrate(self, target_seconds: float, lo: int, hi: int) -> None:
        """Warm up, then pick the batch size that takes about ``target_seconds``
        (``target_seconds=0``: warm up only, batches of ``lo``)."""
        probe = max(self.multiple, 4 if self.multiple == 1 else self.multiple)
        self.run(probe)  # warm-up: caches, thread pools, prepared statements
        self.after()
        if target_seconds <= 0:
            self.n = max(self.multiple, -(-lo // self.multiple) * self.multiple)
            return
        seconds = self.run(probe)
        self.after()
        per_op = max(seconds / probe, 1e-7)
        n = int(min(hi, max(lo, target_seconds / per_op)))
        self.n = max(self.multiple, -(-n // self.multiple) * self.multiple)

    def once(self) -> float:
        """One batch; returns operations per second."""
        try:
            seconds = self.run(self.n)
        finally:
            self.after()
        return self.n / seconds


def interleave(cases: list[Case], rounds: int) -> dict[str, list[float]]:
    """Run every case once per round, alternating the order each round, so a reference and the
    measurement it is compared with see the same machine load. Returns ops/s per round."""
    samples: dict[str, list[float]] = {c.name: [] for c in cases}
    for r in range(rounds):
        for case in cases if r % 2 == 0 else reversed(cases):
            samples[case.name].append(case.once())
    return samples


def paired_ratio(ours: list[float], ref: list[float]) -> float | None:
    """Median of the per-round ratios (each round's pair was measured back to back)."""
    pairs = [a / b for a, b in zip(ours, ref) if b]
    return median(pairs)


def summary(samples: list[float]) -> dict[str, Any]:
    return {"median": median(samples), "samples": [round(s, 3) for s in samples]}


def load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _disk(path: str) -> dict[str, Any]:
    """The block device and filesystem ``path`` lives on, as far as Linux tells."""
    info: dict[str, Any] = {"path": path}
    try:
        st = os.stat(path)
        major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    except OSError:
        return info
    best = ""
    for line in (_read("/proc/mounts") or "").splitlines():
        parts = line.split()
        if len(parts) >= 3 and path.startswith(parts[1]) and len(parts[1]) >= len(best):
            best = parts[1]
            info.update(device=parts[0], mountpoint=parts[1], fstype=parts[2])
    dev = os.path.realpath(f"/sys/dev/block/{major}:{minor}")
    if os.path.isdir(dev):
        name = os.path.basename(dev)
        if not os.path.exists(os.path.join(dev, "queue")):  # a partition: its disk is the parent
            dev = os.path.dirname(dev)
            name = os.path.basename(dev)
        info["block_device"] = name
        rotational = _read(os.path.join(dev, "queue", "rotational"))
        model = _read(os.path.join(dev, "device", "model"))
        driver = os.path.basename(os.path.realpath(os.path.join(dev, "device", "driver")))
        if name.startswith("vd"):
            kind = "virtio block device (virtualised; the hypervisor's backing storage is unknown)"
        elif rotational == "0":
            kind = "SSD / non-rotational"
        elif rotational == "1":
            kind = "rotational (as reported by the kernel)"
        else:
            kind = "unknown"
        info.update(kind=kind, rotational=rotational, model=model, driver=driver or None)
    return info


def machine(workdir: str) -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = None
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = None
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1) if mem_kib else None,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "os": platform.platform(),
        "disk": _disk(os.path.realpath(workdir)),
        "load_average_at_start": load(),
        "hypervisor": "yes" if "hypervisor" in (_read("/proc/cpuinfo") or "") else "no",
    }


def source_state(root: str) -> dict[str, Any] | None:
    """The commit the measured code is at, and the files of the library that differ from it
    (uncommitted changes were measured too): without this a figure cannot be tied to code."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.rstrip() if proc.returncode == 0 else None

    commit = (git("rev-parse", "HEAD") or "").strip() or None
    if commit is None:
        return None
    status = git("status", "--porcelain", "--", "chuk_artifacts", "migrations", "pyproject.toml") or ""
    return {
        "commit": commit,
        "uncommitted_library_files": sorted(line[3:] for line in status.splitlines() if line.strip()),
    }


def now() -> float:
    return time.perf_counter()
