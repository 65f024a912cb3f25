"""The chuk-artifacts benchmark suite: ``python -m benchmarks`` (or ``nox -s bench``).

Every figure of ours is measured next to a *reference*: the raw cost of the same underlying
operations (an fsspec write or read of the same bytes, one plain SQL row, ``shutil`` copying a
file), timed in the same run and interleaved round by round with our measurement, so results
are ratios that survive a noisy, shared machine. See ``docs/performance.md``.
"""
