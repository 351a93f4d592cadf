"""``testbed reproduce sensitivity``: where RT3 pays — the rt3/dense-max battery-life ratio over the request
period (duty cycle) and a scale on the profile's idle power, from one experiment's profile.

Each grid point is a simulation of ``dense-max`` and ``rt3`` (the experiment's policy, deadline, pattern sets
and switch cost) on a bucket sized for about :data:`BASELINE_INFERENCES` dense-max inferences (the ratio
does not depend on the bucket's size); periods below the slowest chosen inference are skipped. The grid is
written as ``OUT/sensitivity.csv`` (``period_ms, idle_scale, ratio, rt3_life_s, dense_max_life_s``) with
the scaled profiles beside it under ``OUT/profiles/``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from testbed.experiment.assemble import build_simulation, config_json
from testbed.experiment.config import ExperimentConfig, load_experiment, parse_experiment
from testbed.reproduce.rt3_paper import bundled_experiment
from traces.profile import ProfileRow, ProfileTable, build_table, load_profile_table

#: Request periods as multiples of the experiment's deadline, and scales on its idle power.
PERIOD_FACTORS = (1.05, 1.25, 1.75, 2.5, 4.0, 7.0, 12.0, 25.0)
IDLE_SCALES = (0.0, 0.5, 1.0, 1.5)
BASELINE_INFERENCES = 3000


def scaled_idle(table: ProfileTable, scale: float) -> ProfileTable:
    """``table`` with every idle power multiplied by ``scale``."""
    rows = [ProfileRow(**{**r.__dict__, "idle_power_w": r.idle_power_w * scale}) for r in table.rows.values()]
    return build_table(rows, {**table.meta, "idle_scale": f"{scale:g}"})


def _point(cfg: ExperimentConfig, table_path: Path, period_ms: float, energy_j: float) -> dict[str, float]:
    data: dict[str, Any] = config_json(cfg)
    data.pop("base_dir", None)
    data["strategies"] = ["dense-max", "rt3"]
    data["profile"] = {"table": str(table_path)}
    data["requests"] = {"period_ms": period_ms, "deadline_ms": cfg.requests.deadline_ms}
    data["battery"] = {"model": "bucket", "energy_j": energy_j, "record_interval_s": 60.0}
    data["mode"] = "sim"
    point = parse_experiment(data, str(table_path), str(table_path.parent))
    life = {s: build_simulation(point, s).run().life_s for s in ("dense-max", "rt3")}
    return {"rt3_life_s": life["rt3"], "dense_max_life_s": life["dense-max"], "ratio": life["rt3"] / life["dense-max"]}


def sensitivity_grid(
    out: Path,
    experiment: Path | None = None,
    period_factors: Sequence[float] = PERIOD_FACTORS,
    idle_scales: Sequence[float] = IDLE_SCALES,
    say: Callable[[str], None] | None = None,
) -> tuple[Path, float]:
    """Compute the grid into ``out/sensitivity.csv``; returns its path and the experiment's own period (ms)."""
    import pandas as pd

    cfg = load_experiment(experiment or bundled_experiment())
    table = load_profile_table(cfg.profile.table)
    deadline = cfg.requests.deadline_ms
    own_period = cfg.requests.period_ms if cfg.requests.period_ms is not None else 1.2 * deadline
    dense = table.get(table.pattern_sets[0], table.levels[0])
    rows: list[dict[str, float]] = []
    (out / "profiles").mkdir(parents=True, exist_ok=True)
    for scale in idle_scales:
        path = out / "profiles" / f"profile-idle-x{scale:g}.csv"
        scaled = scaled_idle(table, scale)
        path.write_text(scaled.to_csv(), encoding="utf-8")
        for factor in period_factors:
            period = factor * deadline
            if period <= dense.latency_p99_ms:
                continue
            energy = BASELINE_INFERENCES * (
                dense.energy_per_inference_j + dense.idle_power_w * scale * (period - dense.latency_p50_ms) / 1e3
            )
            if say is not None:
                say(f"period {period:.4g} ms, idle power x {scale:g}")
            rows.append({"period_ms": round(period, 4), "idle_scale": scale, **_point(cfg, path, period, energy)})
    grid = out / "sensitivity.csv"
    pd.DataFrame(rows).to_csv(grid, index=False)
    return grid, own_period
