"""A stand-in for ``benchmarks/published_worker.py`` in tests: it speaks the worker protocol
(JSON lines) without the published package, so the runner's side of the ``published`` section
is exercised with no network and no second venv. It checks the requests it gets against the
protocol and answers with made-up timings (which no test may read as a measurement)."""

from __future__ import annotations

import json
import sys

RUN_CASES = {"store", "retrieve", "metadata", "exists", "update_metadata", "delete", "stream_upload", "stream_download"}
QUERY_CASES = {"list", "search_user", "search_user_mime"}


def main() -> int:
    config = json.loads(sys.argv[1])
    assert config["backend"] in ("memory", "filesystem"), config
    assert config["backend"] == "memory" or config.get("root"), config

    def send(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    send(
        {
            "ready": True,
            "package": "chuk-artifacts",
            "version": "stub",
            "module": __file__,
            "python": sys.version.split()[0],
            "backend": config["backend"],
        }
    )
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        n = request.get("n", 1)
        if op == "quit":
            send({"ok": True})
            return 0
        if op == "after":
            send({"ok": True})
        elif (
            op == "run"
            and request.get("case") in RUN_CASES
            and request.get("mode", "sequential") in ("sequential", "concurrent")
            and n >= 1
        ):
            send({"ok": True, "seconds": 1e-4 * n})
        elif op == "query" and request.get("case") in QUERY_CASES and n >= 1:
            send({"ok": True, "seconds": 1e-3 * n, "rows": 20})
        elif op in ("populate", "fill") and n >= 1:
            send({"ok": True, "seconds": 1e-4 * n, "sessions": -(-n // 100), "stored": n})
        else:
            send({"ok": False, "error": f"stub: unexpected request {op} {request}"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
