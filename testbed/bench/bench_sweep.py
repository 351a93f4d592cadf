"""Sweeps on Ray: a 16-cell simulated sweep on embedded Ray against the same cells one after another, same run.

The grid is the bundled rpi4 profile (two strategies, a bucket battery) × 4 request periods × 4 battery sizes (6-12 kJ);
both runs write every cell's run store (temporary directories). Reported: the sequential wall time, Ray's start-up
time, the sweep's wall time on Ray (start-up excluded), and ``speedup`` = sequential / Ray, which should approach
the number of cores; ``speedup_with_startup`` counts Ray's start-up too. Ray's per-task overhead is the wall time
of 200 empty tasks (submitted together, then gathered) per task, against a plain function call. ``quick`` sweeps
4 cells.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from testbed.distributed.cluster import ray_session
from testbed.distributed.grid import build_grid
from testbed.distributed.sweep import run_sweep

EXPERIMENT = """
name = "bench-sweep"
seed = 1
strategies = ["dense-max", "rt3"]
[requests]
period_ms = 200.0
deadline_ms = 115.0
[battery]
model = "bucket"
energy_j = 4000.0
[policy]
kind = "soc"
thresholds = [0.5, 0.2]
levels = ["f1500", "f1000", "f600"]
"""
TASKS = 200


def _noop(x: int) -> int:
    return x


def _task_overhead_s() -> tuple[float, float]:
    """(Ray's wall time per empty task, a plain call's) in seconds."""
    import ray

    task = ray.remote(num_cpus=1)(_noop)
    ray.get([task.remote(i) for i in range(8)])  # workers started
    t0 = time.perf_counter()
    ray.get([task.remote(i) for i in range(TASKS)])
    per_task = (time.perf_counter() - t0) / TASKS
    t0 = time.perf_counter()
    for i in range(TASKS):
        _noop(i)
    return per_task, (time.perf_counter() - t0) / TASKS


def run(quick: bool = False) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as d:
        work = Path(d)
        exp = work / "exp.toml"
        exp.write_text(EXPERIMENT)
        varies = ["requests.period_ms=150,200"] if quick else ["requests.period_ms=100,150,200,250"]
        varies.append("battery.energy_j=3000,4000" if quick else "battery.energy_j=6000,8000,10000,12000")
        grid = build_grid(exp, varies)
        t0 = time.perf_counter()
        seq = run_sweep(grid, work / "sequential", sequential=True)
        seq_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ray_session(None, cores) as info:
            startup_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            par = run_sweep(grid, work / "ray")
            ray_s = time.perf_counter() - t1
            per_task_s, call_s = _task_overhead_s()
    same = all(
        {s: r.life_s for s, r in a.results.items()} == {s: r.life_s for s, r in b.results.items()}
        for a, b in zip(seq.cells, par.cells, strict=True)
    )
    return {
        "cells": len(grid.cells),
        "cores": cores,
        "load_avg_1min": round(os.getloadavg()[0], 2),  # other work on the machine caps the speed-up
        "cluster": info.describe(),
        "sequential_wall_s": round(seq_s, 3),
        "ray_startup_s": round(startup_s, 3),
        "ray_wall_s": round(ray_s, 3),
        "speedup": round(seq_s / ray_s, 2),
        "speedup_with_startup": round(seq_s / (ray_s + startup_s), 2),
        "same_results": same,
        "ray_task_overhead_ms": round(per_task_s * 1e3, 3),
        "plain_call_us": round(call_s * 1e6, 3),
        "ray_overhead_over_call": round(per_task_s / call_s, 1) if call_s > 0 else None,
    }
