"""One-off A/B experiments behind the "Analysis" of docs/performance.md.

Each prototypes a change to chuk-artifacts *outside* the library (a replacement function, or a
monkeypatch applied in this process only) and measures it interleaved with the current code and
the raw reference: ``python -m benchmarks.experiments.NAME``. They reach into internals, so they
may need adjusting as the library changes; they are not part of the benchmark run.
"""
