"""The benchmark runner still runs: a quick smoke run in a subprocess, checked for the shape of
its results (never for timings — the performance targets live in the benchmark itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUB_WORKER = Path(__file__).resolve().parent / "published_stub_worker.py"
OPS = {"store", "retrieve", "metadata", "exists", "update_metadata", "delete"}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTIFACT_", "S3_", "AWS_", "CHUK_BENCH_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--backends",
            "memory,filesystem",
            "--output",
            str(tmp_path / "results.json"),
            "--markdown",
            str(tmp_path / "performance.md"),
            "--workdir",
            str(tmp_path / "work"),
            *args,
        ],
        check=False,
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quick_benchmark_run_writes_every_section(tmp_path: Path) -> None:
    output, page = tmp_path / "results.json", tmp_path / "performance.md"
    # The published section needs the published package's venv (network): tested below.
    proc = _bench(tmp_path, "--sections", "ops,scale,stream,cleanup")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(output.read_text())

    assert {"machine", "command", "config", "backends", "ops", "scale", "streaming", "cleanup", "targets"} <= set(
        results
    )
    assert {"cpu", "cores", "ram_gib", "python", "os", "disk"} <= set(results["machine"])
    for backend in ("memory", "filesystem"):
        assert results["backends"][backend]["status"] == "ok"
        for size in ("1KiB", "1MiB"):
            ops = results["ops"][backend][size]
            for api in ("sync", "async"):
                for mode in ("sequential", "concurrent"):
                    assert set(ops[api][mode]) == {"store", "retrieve", "metadata"}
                    assert all(v["median"] > 0 for v in ops[api][mode].values())
            assert {
                "fsspec_write",
                "fsspec_read",
                "sql_insert",
                "sql_select",
                "raw_write_insert",
                "raw_select_read",
            } <= set(ops["references"])
            assert set(ops["async_overhead_us"]) == {"store", "retrieve", "metadata"}
        scale = results["scale"][backend]
        for n in scale["sizes"]:
            for query in scale[str(n)]["queries"].values():
                assert {"median_ms", "p95_ms"} <= set(query)
        stream = results["streaming"][backend]
        assert {"upload", "async_upload", "download", "async_download", "raw_upload", "raw_download"} <= set(
            stream["mib_per_s"]
        )
        assert results["cleanup"][backend]["artifacts_per_s"] > 0
    assert "raw_write_insert_fsync" in results["ops"]["filesystem"]["1KiB"]["references"]
    assert {t["status"] for t in results["targets"]} <= {"PASS", "MISS", "SKIP", "REPORTED"}

    text = page.read_text()
    assert "### Targets" in text and results["machine"]["cpu"] in text and results["command"] in text


def test_published_section_runs_against_a_stub_worker(tmp_path: Path) -> None:
    """The runner's side of ``published`` (our cases, the protocol, ratios, targets, the page),
    with a stub that speaks the worker protocol in place of the published package."""
    proc = _bench(
        tmp_path,
        "--sections",
        "published",
        "--published-worker",
        f"{sys.executable} {STUB_WORKER}",
        "--scale-sizes",
        "100,200",
        "--populate-count",
        "64",
        "--published-stream-mib",
        "1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    pub = results["published"]
    assert pub["status"] == "ok" and pub["published"]["version"] == "stub"
    for backend in ("memory", "filesystem"):
        variants = pub["ops"][backend]["variants"]
        assert variants["default"] == "measured"
        if backend == "filesystem":  # measured where our package knows it, else skipped with the reason
            assert variants["power"] == "measured" or variants["power"].startswith("skipped: ")
        for size in ("1KiB", "1MiB"):
            entry = pub["ops"][backend][size]
            assert set(entry["published"]["sequential"]) == OPS
            for variant, by_api in entry["ratios"].items():
                for api in ("sync", "async"):
                    for mode in ("sequential", "concurrent"):
                        assert set(by_api[api][mode]) == OPS
                        assert all(v > 0 for v in by_api[api][mode].values())
                        assert all(entry["ours"][variant][api][mode][op]["median"] > 0 for op in OPS)
                assert set(entry["in_flight"]["ours"][variant]["sync"]) == OPS
        scale = pub["scale"][backend]
        for n in (100, 200):
            for query in ("list", "search_user", "search_user_mime"):
                q = scale[str(n)]["queries"][query]
                assert {"ours_sync_ms", "ours_async_ms", "published_ms", "ratio_sync", "ratio_async"} <= set(q)
                assert q["ours_sync_rows"] == 20  # a full page: the catalog layout holds
        assert set(pub["streaming"][backend]["ratios"]) == {
            "sync_upload",
            "async_upload",
            "sync_download",
            "async_download",
        }
        for side in ("ours_async", "ours_sync", "published"):
            assert pub["populate"][backend][side]["artifacts"] == 64
    assert pub["cli"]["ratio"] > 0 and pub["cli"]["output"]
    names = " ".join(t["target"] for t in results["targets"])
    assert "published package" in names and "32 in flight never slower" in names and "chuk-admin --version" in names
    assert {t["status"] for t in results["targets"]} <= {"PASS", "MISS", "SKIP", "REPORTED"}
    text = (tmp_path / "performance.md").read_text()
    assert "### Ours vs the published package (chuk-artifacts 0.11.4)" in text


def test_published_section_skips_when_its_venv_cannot_be_made(tmp_path: Path) -> None:
    proc = _bench(tmp_path, "--sections", "published", "--published-venv", "/dev/null/no-venv-here")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["published"]["status"] == "skipped" and results["published"]["reason"]
    assert [t["status"] for t in results["targets"] if "published package" in t["target"]] == ["SKIP"]
    assert "Skipped:" in (tmp_path / "performance.md").read_text()
