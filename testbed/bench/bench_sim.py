"""Simulation speed: 10 hours of device time at 5 requests per second (goal ≤ 3.6 s, ≥ 10⁴ × real time).

Runs the ``rt3`` strategy on the bundled rpi4 profile under RT3's 50/30/20 SoC policy, every
inference, switch and battery step recorded in a real run store (temporary directory), once with the
ideal bucket and once with the Thevenin ECM (an 18650 cell scaled to last the 10 hours). Reports
simulated time / wall time and whether the 3.6-s goal was met. ``quick`` simulates 1 hour.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from testbed.battery.cell import load_cell
from testbed.battery.ecm import EcmBattery
from testbed.battery.model import BatteryParams
from testbed.experiment.assemble import build_simulation
from testbed.experiment.config import parse_experiment
from testbed.runstore.manifest import base_manifest
from testbed.runstore.store import RunStore

GOAL_WALL_S = 3.6
RATE_HZ = 5.0


def _config(sim_s: float, model: str) -> dict[str, Any]:
    battery: dict[str, Any] = {"model": model, "record_interval_s": 10.0}
    if model == "bucket":
        battery["energy_j"] = 4.0 * sim_s  # ~4 W average: the policy visits every level before the cap
    else:
        battery["cell"] = "nmc-18650"
    return {
        "name": "bench-sim",
        "strategies": ["rt3"],
        "requests": {"period_ms": 1000.0 / RATE_HZ, "deadline_ms": 115.0, "max_duration_s": sim_s},
        "battery": battery,
        "policy": {"kind": "soc", "thresholds": [0.5, 0.2], "levels": ["f1500", "f1000", "f600"]},
    }


def _one(sim_s: float, model: str, workdir: Path) -> dict[str, Any]:
    cfg = parse_experiment(_config(sim_s, model), "<bench>")
    store = RunStore.create(workdir / model, base_manifest(cfg.model_dump(), "simulation", 0))
    sim = build_simulation(cfg, "rt3", store)
    if model == "ecm":  # a cell big enough for the whole window (4× an 18650)
        cell = load_cell("nmc-18650")
        sim.battery = EcmBattery(BatteryParams(cell=dataclasses.replace(cell, capacity_ah=cell.capacity_ah * 4.0)))
    t0 = time.perf_counter()
    result = sim.run()
    store.close()
    wall = time.perf_counter() - t0
    return {
        "sim_h": round(result.life_s / 3600.0, 3),
        "inferences": result.inferences,
        "wall_s": round(wall, 3),
        "sim_over_wall": round(result.life_s / wall, 1),
        "goal_wall_s": GOAL_WALL_S * sim_s / 36000.0,
        "goal_met": wall <= GOAL_WALL_S * sim_s / 36000.0,
        "end_reason": result.end_reason,
    }


def run(quick: bool = False) -> dict[str, Any]:
    sim_s = 3600.0 if quick else 36000.0
    with tempfile.TemporaryDirectory() as d:
        return {
            "what": f"{sim_s / 3600:g} h of device time at {RATE_HZ:g} requests/s, rt3, rpi4 profile, run store on",
            "bucket": _one(sim_s, "bucket", Path(d)),
            "ecm": _one(sim_s, "ecm", Path(d)),
        }
