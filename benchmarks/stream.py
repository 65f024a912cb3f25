"""Streaming throughput (MiB/s) and peak RSS growth for one large object, measured in a fresh
subprocess per round (``stream_worker.py``), interleaved with the raw ``shutil`` copy references
(the order of the operations alternates from round to round)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from chuk_artifacts import StreamUploadRequest

from .backends import build_store
from .common import MiB, median, paired_ratio

OPS_LOCAL = ("raw_upload", "raw_upload_fsync", "upload", "async_upload", "raw_download", "download", "async_download")
OPS_REMOTE = tuple(op for op in OPS_LOCAL if op != "raw_upload_fsync")


def _source(workdir: str, size: int) -> str:
    path = os.path.join(workdir, f"source-{size}.bin")
    if not os.path.exists(path) or os.path.getsize(path) != size:
        block = os.urandom(MiB)
        with open(path, "wb") as f:
            f.writelines(block for _ in range(size // MiB))
            f.write(block[: size % MiB])
    return path


def _worker(spec: dict[str, Any]) -> list[dict[str, Any]]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.stream_worker", json.dumps(spec)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"stream worker failed:\n{proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def run(spec: dict[str, Any], size: int, *, rounds: int, log: Callable[[str], None]) -> dict[str, Any]:
    source = _source(os.path.dirname(spec["workdir"]), size)
    ops = OPS_LOCAL if spec["name"] == "filesystem" else OPS_REMOTE
    artifact_id = None
    if spec["name"] != "memory":  # a stored object for the downloads, shared with the workers
        store = build_store(spec, "stream")
        try:
            with open(source, "rb") as src:
                artifact_id = store.stream_upload(StreamUploadRequest(src, mime="application/octet-stream", ttl=None))
        finally:
            store.close()
    samples: dict[str, list[dict[str, Any]]] = {op: [] for op in ops}
    for r in range(rounds):
        log(f"  {spec['name']} streaming round {r + 1}/{rounds}")
        order = list(ops if r % 2 == 0 else reversed(ops))
        for result in _worker(
            {
                "backend": spec,
                "ops": order,
                "size": size,
                "source": source,
                "tag": "stream",
                "artifact_id": artifact_id,
            }
        ):
            samples[result["op"]].append(result)
    speed = {op: [s["mib_per_s"] for s in samples[op]] for op in ops}
    out: dict[str, Any] = {
        "size_mib": size / MiB,
        "chunk_size": 65536,
        "sink": "/dev/null (downloads); a local file already in the page cache (uploads)",
        "mib_per_s": {op: round(median(v), 1) for op, v in speed.items()},
        "samples_mib_per_s": {op: [round(x, 1) for x in v] for op, v in speed.items()},
        "rss_growth_mib": {op: max(s["rss_growth_mib"] for s in samples[op]) for op in ops if not op.startswith("raw")},
        "rss_method": samples[ops[0]][0]["rss_method"],
    }
    upload_ref = "raw_upload_fsync" if spec["name"] == "filesystem" else "raw_upload"
    out["upload_reference"] = upload_ref
    out["ratios"] = {
        "upload_vs_raw": paired_ratio(speed["upload"], speed[upload_ref]),
        "async_upload_vs_raw": paired_ratio(speed["async_upload"], speed[upload_ref]),
        "download_vs_raw": paired_ratio(speed["download"], speed["raw_download"]),
        "async_download_vs_raw": paired_ratio(speed["async_download"], speed["raw_download"]),
    }
    if spec["name"] == "filesystem":
        out["ratios"]["upload_vs_raw_no_fsync"] = paired_ratio(speed["upload"], speed["raw_upload"])
    return out
