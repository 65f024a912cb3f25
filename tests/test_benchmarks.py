"""The benchmark runner still runs: a quick smoke run in a subprocess, checked for the shape of
its results (never for timings — the performance targets live in the benchmark itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_run_writes_every_section(tmp_path: Path) -> None:
    output, page = tmp_path / "results.json", tmp_path / "performance.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTIFACT_", "S3_", "AWS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [
            sys.executable, "-m", "benchmarks", "--quick", "--backends", "memory,filesystem",
            "--output", str(output), "--markdown", str(page), "--workdir", str(tmp_path / "work"),
        ],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(output.read_text())

    assert {"machine", "command", "config", "backends", "ops", "scale", "streaming", "cleanup", "targets"} <= set(results)
    assert {"cpu", "cores", "ram_gib", "python", "os", "disk"} <= set(results["machine"])
    for backend in ("memory", "filesystem"):
        assert results["backends"][backend]["status"] == "ok"
        for size in ("1KiB", "1MiB"):
            ops = results["ops"][backend][size]
            for api in ("sync", "async"):
                for mode in ("sequential", "concurrent"):
                    assert set(ops[api][mode]) == {"store", "retrieve", "metadata"}
                    assert all(v["median"] > 0 for v in ops[api][mode].values())
            assert {"fsspec_write", "fsspec_read", "sql_insert", "sql_select", "raw_write_insert",
                    "raw_select_read"} <= set(ops["references"])
            assert set(ops["async_overhead_us"]) == {"store", "retrieve", "metadata"}
        scale = results["scale"][backend]
        for n in scale["sizes"]:
            for query in scale[str(n)]["queries"].values():
                assert {"median_ms", "p95_ms"} <= set(query)
        stream = results["streaming"][backend]
        assert {"upload", "async_upload", "download", "async_download", "raw_upload", "raw_download"} <= set(stream["mib_per_s"])
        assert results["cleanup"][backend]["artifacts_per_s"] > 0
    assert "raw_write_insert_fsync" in results["ops"]["filesystem"]["1KiB"]["references"]
    assert {t["status"] for t in results["targets"]} <= {"PASS", "MISS", "SKIP", "REPORTED"}

    text = page.read_text()
    assert "### Targets" in text and results["machine"]["cpu"] in text and results["command"] in text
