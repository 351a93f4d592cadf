"""Benchmarks run by ``make bench``.

Each module ``testbed/bench/bench_<name>.py`` defines ``run(quick: bool) -> dict`` returning JSON-ready
results in which every speed claim is a ratio against a baseline measured in the same run. The runner
prints one JSON object keyed by benchmark name. Timings never appear as assertions in tests.
"""
