"""Battery-model and trace-parser benchmark: speed as ratios against baselines timed in the same run.

* ``ecm``: the Thevenin ECM (1 RC, bundled ``nmc-18650`` cell) on an 8-hour, 1 Hz inference-like power
  trace, repeated until the battery ends (goal: ≤ 0.1 s per 8 simulated hours). Baselines: the same
  algorithm written the obvious way with NumPy scalars per step (``np.interp`` OCV lookup), and the
  energy bucket (stepped the same way) on the same trace. ``life_ratio_ecm_over_bucket`` shows what the
  losses and the cut-off cost against RT3-style accounting.
* ``pybamm``: battery life of the ECM against ``pybamm.equivalent_circuit.Thevenin`` on the same cell and
  load (goal: ≤ 1 % difference), only when PyBaMM is installed.
* ``parsers``: rows/s of the DVFS and power readers (validation included) against ``csv.reader`` +
  ``float`` on the same file, and lines/s of the ftrace parser against ``str.split`` + ``float`` (the cost
  of parsing without any checks).
"""

from __future__ import annotations

import csv
import importlib.util
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from testbed.battery.cell import Cell, load_cell
from testbed.battery.simulate import Load, simulate, simulate_ecm, steps_from_trace
from traces.dvfs import read_dvfs
from traces.parsers.ftrace import parse_ftrace
from traces.power import PowerTrace, read_power

EIGHT_HOURS_S = 8 * 3600
GOAL_S = 0.1


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def inference_trace(seconds: int = EIGHT_HOURS_S, seed: int = 0) -> PowerTrace:
    """1 Hz load of a board running bursts of inference: 0.4 W idle, 1.2–2.8 W busy, ~45 % duty."""
    rng = np.random.default_rng(seed)
    busy = rng.random(seconds) < 0.45
    p = np.where(busy, rng.uniform(1.2, 2.8, seconds), 0.4)
    return PowerTrace(np.arange(float(seconds)), p)


def numpy_baseline(cell: Cell, load: Load) -> float:
    """The same explicit Thevenin step with NumPy scalars and ``np.interp`` each step (no interpolation
    of the end inside a step): the straightforward implementation the ECM is compared against."""
    xs, ys = np.array(cell.ocv_soc), np.array(cell.ocv_v)
    r0 = cell.r0_ohm
    r1, tau = cell.rc[0].r_ohm, cell.rc[0].tau_s
    q_as = 3600.0 * cell.capacity_ah
    dts, ps = np.array(load.dt_s), np.array(load.value)
    soc, v1, t = np.float64(1.0), np.float64(0.0), 0.0
    k = 0
    while True:
        dt, p = dts[k], ps[k]
        e = np.interp(soc, xs, ys) - v1
        disc = e * e - 4 * r0 * p
        if disc < 0:
            return t
        i = (e - np.sqrt(disc)) / (2 * r0)
        if e - i * r0 < cell.v_cutoff_v:
            return t
        soc = soc - i * dt / q_as
        if soc <= 0:
            return t
        a = np.exp(-dt / tau)
        v1 = v1 * a + r1 * i * (1 - a)
        t += dt
        k = (k + 1) % len(dts)


def bench_ecm(quick: bool) -> dict[str, Any]:
    cell = load_cell("nmc-18650")
    trace = inference_trace()
    load = steps_from_trace(trace)
    repeats = 2 if quick else 5
    t_ecm, res = _best(lambda: simulate_ecm(cell, load), repeats)
    t_steps, _ = _best(lambda: steps_from_trace(trace), repeats)
    t_np, life_np = _best(lambda: numpy_baseline(cell, load), 1)
    t_bucket, bucket = _best(lambda: simulate(cell, trace, model="energy-bucket"), repeats)
    per_8h = t_ecm * EIGHT_HOURS_S / res.life_s
    return {
        "cell": cell.name,
        "trace": "8 h at 1 Hz, 0.4 W idle / 1.2–2.8 W bursts",
        "life_h": round(res.life_s / 3600, 4),
        "end_reason": res.end_reason,
        "steps": res.steps,
        "ecm_wall_s": round(t_ecm, 4),
        "ecm_wall_per_8h_s": round(per_8h, 4),
        "trace_to_steps_wall_s": round(t_steps, 4),
        "goal_8h_s": GOAL_S,
        "meets_goal": per_8h + t_steps <= GOAL_S,
        "us_per_step": round(1e6 * t_ecm / res.steps, 3),
        "speedup_vs_numpy_scalar_loop": round(t_np / t_ecm, 2),
        "numpy_loop_life_rel_diff": round((life_np - res.life_s) / res.life_s, 6),
        "bucket_wall_s": round(t_bucket, 5),
        "life_ratio_ecm_over_bucket": round(res.life_s / bucket.life_s, 4),
    }


def bench_pybamm(quick: bool) -> dict[str, Any]:
    if importlib.util.find_spec("pybamm") is None:
        return {"skipped": "PyBaMM not installed (pip install pybamm to run the cross-check)"}
    from testbed.battery.crosscheck import crosscheck
    from traces.power import constant_power

    cell = load_cell("phone-lco")
    out: dict[str, Any] = {"cell": cell.name, "goal_rel_diff": 0.01}
    cases: dict[str, PowerTrace] = {"constant_2w": constant_power(2.0)}
    if not quick:
        cases["bursts_10s_holds"] = PowerTrace(
            np.arange(0.0, 600.0, 10.0), np.where(np.arange(60) % 3 == 0, 2.5, 1.0), duration_s=600.0
        )
    for name, trace in cases.items():
        r = crosscheck(cell, trace)
        out[name] = {
            "ecm_life_s": round(r.ecm_life_s, 2),
            "pybamm_life_s": round(r.pybamm_life_s, 2),
            "rel_diff": round(r.relative_difference, 6),
            "within_goal": abs(r.relative_difference) <= 0.01,
            "speedup_vs_pybamm": round(r.pybamm_wall_s / r.ecm_wall_s, 1),
        }
    return out


def _csv_baseline(path: Path) -> int:
    """csv.reader and float() on each row, no checks."""
    n = 0
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if not row or row[0].startswith("#") or row[0] == "t_s":
                continue
            float(row[0])
            float(row[-1])
            n += 1
    return n


def _split_baseline(path: Path) -> int:
    """The least an ftrace reader must do: split each line, read the timestamp and the state."""
    n = 0
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            float(parts[3][:-1])
            int(parts[-2][len("state=") :])
            n += 1
    return n


def bench_parsers(quick: bool) -> dict[str, Any]:
    rows = 50_000 if quick else 200_000
    repeats = 2 if quick else 3
    rng = np.random.default_rng(1)
    out: dict[str, Any] = {"rows": rows}
    with tempfile.TemporaryDirectory() as d:
        power = Path(d) / "p.csv"
        with open(power, "w") as fh:
            fh.write("# power_trace v1\nt_s,power_w\n")
            fh.writelines(f"{k * 0.1:.1f},{p:.4f}\n" for k, p in enumerate(rng.uniform(0, 5, rows)))
        dvfs = Path(d) / "d.csv"
        freqs = rng.choice([600000, 1000000, 1500000], rows)
        with open(dvfs, "w") as fh:
            fh.write("# dvfs_trace v1; domains: policy0=cpu0-3\nt_s,domain,freq_khz\n")
            fh.writelines(f"{k * 0.01:.2f},policy0,{f}\n" for k, f in enumerate(freqs))
        ftrace = Path(d) / "trace.txt"
        with open(ftrace, "w") as fh:
            fh.writelines(
                f"  kworker/0:1-12 [000] d..2 {100 + k * 0.001:.6f}: cpu_frequency: state={f} cpu_id={k % 4}\n"
                for k, f in enumerate(freqs)
            )
        parsers: list[tuple[str, Callable[[Path], object], Callable[[Path], int], Path]] = [
            ("power_reader", read_power, _csv_baseline, power),
            ("dvfs_reader", read_dvfs, _csv_baseline, dvfs),
            ("ftrace_parser", parse_ftrace, _split_baseline, ftrace),
        ]
        for name, parse, baseline, path in parsers:
            out[name] = _parser_ratio(parse, baseline, path, rows, repeats)
    return out


def _parser_ratio(
    parse: Callable[[Path], object], baseline: Callable[[Path], int], path: Path, rows: int, repeats: int
) -> dict[str, Any]:
    t, _ = _best(lambda: parse(path), repeats)
    t_base, _ = _best(lambda: baseline(path), repeats)
    return {
        "rows_per_s": round(rows / t),
        "baseline_rows_per_s": round(rows / t_base),
        "baseline": baseline.__doc__.splitlines()[0] if baseline.__doc__ else baseline.__name__,
        "slowdown_vs_baseline": round(t / t_base, 2),
    }


def run(quick: bool) -> dict[str, Any]:
    """All battery/trace benchmarks as one JSON-ready dict."""
    return {"ecm": bench_ecm(quick), "parsers": bench_parsers(quick), "pybamm": bench_pybamm(quick)}
