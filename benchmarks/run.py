"""The benchmark runner: ``python -m benchmarks [--quick] [...]`` (``--help`` for options).

Writes the results as JSON (``benchmarks/results/<timestamp>.json`` by default) and, for a full
run, regenerates the tables of ``docs/performance.md``. Exits non-zero if a section failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from typing import Any

from . import cleanup, ops, published, report, scale, stream
from .backends import ALL_BACKENDS, Unavailable, prepare
from .common import MiB, load, machine, source_state

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECTIONS = ("ops", "scale", "stream", "cleanup", "published")


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few rounds: a smoke run (CI)")
    p.add_argument("--backends", type=_csv, default=list(ALL_BACKENDS), help="comma-separated (default: all)")
    p.add_argument(
        "--sections", type=_csv, default=list(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    p.add_argument(
        "--scale-backends",
        type=_csv,
        default=["memory", "filesystem"],
        help="backends for the search/list scale section (default: memory,filesystem)",
    )
    p.add_argument("--rounds", type=int, help="interleaved rounds per figure (default 5; quick 2)")
    p.add_argument(
        "--scale-sizes",
        type=lambda v: [int(x) for x in _csv(v)],
        help="catalog sizes (default 1000,10000,100000; quick 1000,1500)",
    )
    p.add_argument("--stream-mib", type=int, help="streamed object size in MiB (default 256; quick 4)")
    p.add_argument("--cleanup-count", type=int, help="expired artifacts per cleanup (default 5000; quick 200)")
    p.add_argument(
        "--s3-server",
        choices=("auto", "weed", "moto", "none"),
        default="auto",
        help="loopback S3 server for the s3 backend (auto: SeaweedFS, else moto)",
    )
    g = p.add_argument_group(
        "published", "the published package (chuk-artifacts 0.11.4) as a side: section `published`"
    )
    g.add_argument(
        "--published-venv",
        default=os.environ.get("CHUK_BENCH_PUBLISHED_VENV"),
        help="venv for the published package, made with pip on first use and reused "
        "(default benchmarks/.published-venv; env CHUK_BENCH_PUBLISHED_VENV)",
    )
    g.add_argument(
        "--published-python",
        default=os.environ.get("CHUK_BENCH_PUBLISHED_PYTHON"),
        help="an interpreter that already has chuk-artifacts==0.11.4: no venv is made "
        "(env CHUK_BENCH_PUBLISHED_PYTHON)",
    )
    g.add_argument(
        "--published-worker",
        default=os.environ.get("CHUK_BENCH_PUBLISHED_WORKER"),
        help="a command speaking the worker protocol instead of the published package "
        "(for tests; env CHUK_BENCH_PUBLISHED_WORKER)",
    )
    g.add_argument(
        "--published-fs-max",
        type=int,
        default=10000,
        help="largest catalog / population on the published filesystem provider (default 10000)",
    )
    g.add_argument("--populate-count", type=int, help="artifacts populated at 32 in flight (default 100000; quick 500)")
    g.add_argument(
        "--populate-deadline",
        type=float,
        default=120.0,
        help="seconds after which a population stops and reports what it stored (default 120: twice the 60 s target)",
    )
    g.add_argument(
        "--published-stream-mib", type=int, help="object streamed against the published package (default 64; quick 4)"
    )
    p.add_argument("--output", help="results JSON (default benchmarks/results/<timestamp>.json)")
    p.add_argument("--markdown", help="page whose tables to regenerate (default docs/performance.md on full runs)")
    p.add_argument("--no-markdown", action="store_true", help="do not touch any markdown page")
    p.add_argument("--workdir", help="scratch directory (default: a new temporary directory, removed after)")
    p.add_argument("--command", help="the command to record as having produced the results")
    p.add_argument(
        "--plugins",
        default=None,
        metavar="NAMES",
        help="entry-point plugins to load (CHUK_ARTIFACTS_PLUGINS; default: none, so "
        "third-party plugins installed alongside do not add their cost)",
    )
    p.add_argument("--report-only", metavar="JSON", help="regenerate the markdown from a results file and exit")
    args = p.parse_args(argv)
    q = args.quick
    args.published_scale_sizes = args.scale_sizes or ([200, 400] if q else [1000, 10000, 100000])
    args.rounds = args.rounds or (2 if q else 5)
    args.scale_sizes = args.scale_sizes or ([1000, 1500] if q else [1000, 10000, 100000])
    args.stream_mib = args.stream_mib or (4 if q else 256)
    args.cleanup_count = args.cleanup_count or (200 if q else 5000)
    args.populate_count = args.populate_count or (500 if q else 100000)
    args.published_stream_mib = args.published_stream_mib or (4 if q else 64)
    for name in args.sections:
        if name not in SECTIONS:
            p.error(f"unknown section {name!r}")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.report_only:
        with open(args.report_only, encoding="utf-8") as f:
            results = json.load(f)
        results["targets"] = report.evaluate(results)
        path = args.markdown or os.path.join(ROOT, "docs", "performance.md")
        report.update_doc(path, report.render(results))
        log(f"wrote {path}")
        return 0

    # Measure the library, not whatever plugins happen to be installed (inherited by workers).
    if args.plugins is not None:
        os.environ["CHUK_ARTIFACTS_PLUGINS"] = args.plugins
    else:
        os.environ.setdefault("CHUK_ARTIFACTS_PLUGINS", "")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or os.path.join(HERE, "results", f"{stamp}{'-quick' if args.quick else ''}.json")
    workdir = args.workdir or tempfile.mkdtemp(prefix="chuk-bench-")
    os.makedirs(workdir, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "schema": 1,
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": args.command or shlex.join(["python", "-m", "benchmarks", *argv]),
        "quick": args.quick,
        "machine": machine(workdir),
        "source": source_state(ROOT),
        "config": {
            "rounds": args.rounds,
            "sections": args.sections,
            "backends": args.backends,
            "scale_backends": args.scale_backends,
            "scale_sizes": args.scale_sizes,
            "stream_mib": args.stream_mib,
            "cleanup_count": args.cleanup_count,
            "entry_point_plugins": os.environ["CHUK_ARTIFACTS_PLUGINS"] or "none",
            "populate_count": args.populate_count,
            "published_scale_sizes": args.published_scale_sizes,
            "published_stream_mib": args.published_stream_mib,
            "published_fs_max": args.published_fs_max,
            "populate_deadline": args.populate_deadline,
        },
        "backends": {},
        "ops": {},
        "scale": {},
        "streaming": {},
        "cleanup": {},
        "published": {},
    }
    failed = False
    servers = []
    specs: dict[str, dict[str, Any]] = {}
    try:
        for name in args.backends:
            try:
                spec, server = prepare(name, workdir, args.s3_server)
            except Unavailable as exc:
                log(f"{name}: skipped — {exc}")
                results["backends"][name] = {"status": "skipped", "reason": str(exc)}
                continue
            if server is not None:
                servers.append(server)
            specs[name] = spec
            results["backends"][name] = {"status": "ok", "server": spec.get("server")}

        def section(key: str, backend: str, fn: Any, *a: Any, **kw: Any) -> None:
            nonlocal failed
            try:
                results[key][backend] = fn(*a, **kw)
            except Exception as exc:  # noqa: BLE001 - recorded; the run goes on, exits non-zero
                failed = True
                traceback.print_exc()
                results[key][backend] = {"error": f"{type(exc).__name__}: {exc}"}

        for name, spec in specs.items():
            if "ops" in args.sections:
                log(f"{name}: store / retrieve / metadata")
                section("ops", name, ops.run, spec, quick=args.quick, rounds=args.rounds, log=log)
            if "scale" in args.sections and name in args.scale_backends:
                log(f"{name}: search / list latency at {args.scale_sizes}")
                section(
                    "scale",
                    name,
                    scale.run,
                    spec,
                    args.scale_sizes,
                    rounds=args.rounds,
                    calls=5 if args.quick else 20,
                    log=log,
                )
            if "stream" in args.sections:
                log(f"{name}: streaming {args.stream_mib} MiB")
                section(
                    "streaming",
                    name,
                    stream.run,
                    spec,
                    args.stream_mib * MiB,
                    rounds=1 if args.quick else args.rounds,
                    log=log,
                )
            if "cleanup" in args.sections:
                log(f"{name}: cleanup of {args.cleanup_count} expired artifacts")
                count = args.cleanup_count if name != "s3" else max(1, args.cleanup_count // 5)
                section("cleanup", name, cleanup.run, spec, count, rounds=1 if args.quick else 3, log=log)
        if "published" in args.sections:
            log("published package: ours vs chuk-artifacts 0.11.4")
            try:
                results["published"] = published.run(
                    [b for b in args.backends if b in specs],
                    workdir,
                    {"venv": args.published_venv, "python": args.published_python, "worker": args.published_worker},
                    quick=args.quick,
                    rounds=args.rounds,
                    scale_sizes=args.published_scale_sizes,
                    stream_bytes=args.published_stream_mib * MiB,
                    populate_count=args.populate_count,
                    fs_max=args.published_fs_max,
                    populate_deadline=args.populate_deadline,
                    log=log,
                )
                problems = published.errors(results["published"])
                for problem in problems:
                    log(f"published: error in {problem}")
                failed = failed or bool(problems)
            except Exception as exc:  # noqa: BLE001 - recorded; the run exits non-zero
                failed = True
                traceback.print_exc()
                results["published"] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        for server in servers:
            server.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    results["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_at_end"] = load()
    results["output"] = os.path.relpath(output, ROOT) if output.startswith(ROOT) else output
    results["targets"] = report.evaluate(results)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=False)
        f.write("\n")
    log(f"wrote {output}")
    markdown = (
        None
        if args.no_markdown
        else (args.markdown or (None if args.quick else os.path.join(ROOT, "docs", "performance.md")))
    )
    if markdown:
        report.update_doc(markdown, report.render(results))
        log(f"wrote {markdown}")
    for t in results["targets"]:
        log(f"{t['status']:8} {t['target']}: {t['measured']}")
    return 1 if failed else 0
