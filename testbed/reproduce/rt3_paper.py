"""``testbed reproduce rt3-paper``: RT3's own accounting end to end, then one assumption at a time toward a board.

**The paper's number.** RT3's public code (``utils/runs_number_reward.py``, see
``testbed/battery/rt3_accounting.py``) counts the inference *runs* an ideal 37.8 kJ bucket affords, split
0.5/0.3/0.2 over 1.4/1.0/0.8 GHz at ``f·V²·10⁻¹`` W, each run taking the op-count latency of RT3's LM
(:mod:`testbed.rt3.opcount`). RT3's set at a level is the densest sparsity of the reference's pruning list
(1 % … 99 %) whose op-count latency meets that level's timing constraint (115 / 104 / 94 ms, the reference's
``rl_controller.py``); the baseline is the unpruned model at 1.4 GHz on the whole battery. ``paper_ratio`` is
that computation done exactly (:func:`~testbed.battery.rt3_accounting.rt3_runs`).

**The waterfall.** Each step is a simulated run (strategies ``dense-max`` and ``rt3``) in its own run store
under ``OUT/steps/<k>-<slug>/``, on a profile table written beside it; each changes one assumption of the one
before:

0. RT3's accounting as a run (op-count latency, f·V² power, no idle power, back-to-back inferences, RT3's
   bucket) — it reproduces ``paper_ratio``;
1. the board's measured latency (the experiment's profile: its model, levels and pattern sets) instead of
   op counts; power still f·V² with V interpolated on RT3's voltage table;
2. the board's measured power instead of f·V²;
3. requests every ``period_ms`` instead of back to back (the board idles at 0 W between them);
4. the board's idle power between requests;
5. the equivalent-circuit battery (the experiment's cell, or ``phone-lco``) instead of the bucket;
6. the pattern-set switch cost (``switch_ms``, RT3's 45 ms by default).

The ratio of every step is rt3's inferences over dense-max's (RT3's "runs"; with periodic requests it is
the battery-life ratio). Batteries are sized for a few thousand baseline inferences (ratios do not depend on
the bucket size; the ECM cell is the bundled cell with its capacity divided by :data:`ECM_SCALE`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from devices.errors import BadInputError
from testbed.battery.cell import write_scaled_cell
from testbed.battery.rt3_accounting import RT3_ENERGY_J, RT3_FREQ_GHZ, RT3_SPLIT, RT3_VOLT_V, rt3_power_w, rt3_runs
from testbed.experiment.config import ExperimentConfig, load_experiment, parse_experiment
from testbed.experiment.policy import make_policy
from testbed.experiment.runner import run_experiment
from testbed.paths import data_dir
from testbed.rt3.opcount import RT3_LM, LMShape, opcount_latency_ms
from testbed.runstore.results import StrategyResult
from traces.profile import ProfileRow, ProfileTable, build_table, load_profile_table

#: RT3's timing constraints per level, high → low frequency (reference ``rl_controller.py``).
RT3_CONSTRAINTS_MS = (115.0, 104.0, 94.0)
#: The reference's pattern-pruning list: zeros per 10 000 weights (``pattern_pruning_CPU.py``).
RT3_PRUNING_LIST = (100, 1300, 2500, 3700, 5000, 6200, 7500, 8700, 9300, 9900)
#: Baseline inferences each step's battery is sized for.
BASELINE_INFERENCES = 4000
#: The ECM step's cell: the bundled cell with its capacity divided by this (a demo-sized battery).
ECM_SCALE = 25.0
#: Deadline of back-to-back steps (no request is late when requests queue by design).
NO_DEADLINE_MS = 1e9


@dataclass(frozen=True)
class PaperAccounting:
    """RT3's computation on an LM shape: the sets per level, runs, and the ratio to the dense baseline."""

    shape: dict[str, int]
    freq_ghz: tuple[float, ...]
    volt_v: tuple[float, ...]
    constraints_ms: tuple[float, ...]
    sparsity: tuple[float, ...]
    latency_ms: tuple[float, ...]
    dense_latency_ms: float
    runs: int
    runs_per_level: list[int]
    baseline_runs: int
    ratio: float
    baseline: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paper_accounting(shape: LMShape = RT3_LM) -> PaperAccounting:
    """RT3's accounting exactly as the reference computes it (see the module text)."""
    sparsity: list[float] = []
    for f, limit in zip(RT3_FREQ_GHZ, RT3_CONSTRAINTS_MS, strict=True):
        fits = [z / 1e4 for z in RT3_PRUNING_LIST if opcount_latency_ms(shape, z / 1e4, f) <= limit]
        if not fits:
            raise BadInputError(f"no sparsity of RT3's pruning list meets {limit} ms at {f} GHz on this shape")
        sparsity.append(fits[0])
    lat = tuple(opcount_latency_ms(shape, s, f) for s, f in zip(sparsity, RT3_FREQ_GHZ, strict=True))
    rt3 = rt3_runs(RT3_ENERGY_J, RT3_SPLIT, RT3_FREQ_GHZ, RT3_VOLT_V, lat)
    dense_ms = opcount_latency_ms(shape, 0.0, RT3_FREQ_GHZ[0])
    base = rt3_runs(RT3_ENERGY_J, (1.0,), RT3_FREQ_GHZ[:1], RT3_VOLT_V[:1], (dense_ms,))
    return PaperAccounting(
        shape=asdict(shape), freq_ghz=RT3_FREQ_GHZ, volt_v=RT3_VOLT_V, constraints_ms=RT3_CONSTRAINTS_MS,
        sparsity=tuple(sparsity), latency_ms=lat, dense_latency_ms=dense_ms, runs=rt3.runs,
        runs_per_level=rt3.runs_per_level, baseline_runs=base.runs, ratio=rt3.runs / base.runs,
        baseline=f"the unpruned model at {RT3_FREQ_GHZ[0]} GHz on the whole battery",
    )  # fmt: skip


def rt3_voltage_v(freq_ghz: float) -> float:
    """A core voltage for ``freq_ghz`` on RT3's table (least-squares line through its three points)."""
    slope, icept = np.polyfit(RT3_FREQ_GHZ, RT3_VOLT_V, 1)
    return float(slope * freq_ghz + icept)


def _row(ps: str, lv: str, f_khz: int, sp: float, acc: float, p50: float, p90: float, p99: float, power_w: float,
         idle_w: float) -> ProfileRow:  # fmt: skip
    return ProfileRow(ps, lv, f_khz, sp, acc, p50, p90, p99, power_w * p50 / 1e3, power_w, power_w, idle_w, 0, 1)


def paper_table(acc: PaperAccounting, shape: LMShape = RT3_LM) -> ProfileTable:
    """Step 0's profile: the unpruned set and RT3's set per level, op-count latency, f·V² power, no idle."""
    sets = [("dense", 0.0)] + [(f"rt3-{round(s * 100)}", s) for s in dict.fromkeys(acc.sparsity)]
    rows = []
    for f, v in zip(acc.freq_ghz, acc.volt_v, strict=True):
        lv, power = f"f{round(f * 1000)}", rt3_power_w(f, v)
        for ps, sp in sets:
            ms = opcount_latency_ms(shape, sp, f)
            rows.append(_row(ps, lv, round(f * 1e6), sp, 0.0, ms, ms, ms, power, 0.0))
    meta = {"board": "rt3-reference", "source": "model: RT3 reference accounting (op counts, f·V² power)"}
    return build_table(rows, meta)


def board_table(table: ProfileTable, levels: Sequence[str], *, fv2_power: bool, idle: bool) -> ProfileTable:
    """The experiment's profile restricted to ``levels``, with f·V² power (RT3's) or its own, idle power or 0."""
    rows = []
    for ps in table.pattern_sets:
        for lv in levels:
            r = table.get(ps, lv)
            power = rt3_power_w(r.freq_khz / 1e6, rt3_voltage_v(r.freq_khz / 1e6)) if fv2_power else r.mean_power_w
            idle_w = r.idle_power_w if idle else 0.0
            rows.append(_row(ps, lv, r.freq_khz, r.sparsity, r.accuracy, r.latency_p50_ms, r.latency_p90_ms,
                             r.latency_p99_ms, power, idle_w))  # fmt: skip
    meta = dict(table.meta)
    meta["source"] = (
        f"{table.meta.get('source', 'profile')}; reproduce step: "
        + ("f·V² power" if fv2_power else "board power")
        + ("" if idle else ", idle power 0")
    )
    return build_table(rows, meta)


@dataclass(frozen=True)
class StepSpec:
    """One waterfall step before it runs."""

    change: str
    table: ProfileTable
    levels: list[str]
    period_ms: float | None  # None: back to back
    deadline_ms: float
    battery: str  # "rt3-accounting" | "bucket" | "ecm"
    switch_ms: float
    rt3_sets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepResult:
    """A step's outcome: its change, ratio (rt3 / dense-max inferences) and where its run lies."""

    change: str
    ratio: float
    run: str
    life_ratio: float
    rt3_inferences: int
    baseline_inferences: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _baseline_energy_j(spec: StepSpec) -> float:
    """Bucket energy that affords about :data:`BASELINE_INFERENCES` dense-max inferences under ``spec``."""
    t = spec.table
    row = t.get(t.pattern_sets[0], spec.levels[0])
    per_request = row.energy_per_inference_j
    if spec.period_ms is not None:
        per_request += row.idle_power_w * max(spec.period_ms - row.latency_p50_ms, 0.0) / 1e3
    return BASELINE_INFERENCES * per_request


def _experiment(spec: StepSpec, table_path: Path, cell: str | None, seed: int) -> ExperimentConfig:
    battery: dict[str, Any] = {"model": spec.battery, "record_interval_s": 5.0}
    if spec.battery == "ecm":
        battery["cell"] = cell
    else:
        battery["energy_j"] = _baseline_energy_j(spec)
    requests: dict[str, Any] = {"deadline_ms": spec.deadline_ms}
    # back to back: requests arrive far faster than any inference, so the board never idles
    requests["period_ms"] = spec.period_ms if spec.period_ms is not None else 1e-6
    data = {
        "name": f"reproduce: {spec.change}", "mode": "sim", "seed": seed, "strategies": ["dense-max", "rt3"],
        "profile": {"table": str(table_path)}, "requests": requests, "battery": battery,
        "policy": {"kind": "soc", "thresholds": [0.5, 0.2], "levels": spec.levels},
        "strategy": {"switch_ms": spec.switch_ms, "rt3_sets": spec.rt3_sets},
    }  # fmt: skip
    return parse_experiment(data, str(table_path.parent / "experiment.toml"), str(table_path.parent))


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isascii() and c.isalnum() else " " for c in text.lower()).split())[:40]


def waterfall_specs(
    cfg: ExperimentConfig, acc: PaperAccounting, shape: LMShape = RT3_LM
) -> tuple[list[StepSpec], str | None]:
    """The steps for experiment ``cfg`` (its profile, levels, deadline, period, cell and switch cost)."""
    table = load_profile_table(cfg.profile.table)
    levels = make_policy(cfg.policy, table).levels_used()
    if len(levels) != 3:
        raise BadInputError(f"the experiment's policy uses {len(levels)} levels; RT3's accounting has three")
    period = cfg.requests.period_ms
    if period is None:
        raise BadInputError("reproduce needs an experiment with requests.period_ms (not a request trace)")
    deadline = cfg.requests.deadline_ms
    cell = cfg.battery.cell if cfg.battery.model == "ecm" and cfg.battery.cell else "phone-lco"
    cell_name = Path(cell).stem.removeprefix("cell-")
    paper_levels = [f"f{round(f * 1000)}" for f in acc.freq_ghz]
    rt3_sets = {lv: f"rt3-{round(s * 100)}" for lv, s in zip(paper_levels, acc.sparsity, strict=True)}
    switch = cfg.strategy.switch_ms
    fv2 = board_table(table, levels, fv2_power=True, idle=False)
    own = board_table(table, levels, fv2_power=False, idle=False)
    full = board_table(table, levels, fv2_power=False, idle=True)
    specs = [
        StepSpec("RT3's accounting on RT3's LM (op counts, f·V² power, no idle, back to back, bucket)",
                 paper_table(acc, shape), paper_levels, None, NO_DEADLINE_MS, "rt3-accounting", 0.0, rt3_sets),
        StepSpec("measured latency of the profiled model on the board's levels instead of op counts", fv2, levels,
                 None, deadline, "rt3-accounting", 0.0),
        StepSpec("board power instead of f·V²", own, levels, None, deadline, "rt3-accounting", 0.0),
        StepSpec(f"a request every {period:g} ms instead of back to back (idle at 0 W)", own, levels, period,
                 deadline, "rt3-accounting", 0.0),
        StepSpec("idle power between requests", full, levels, period, deadline, "bucket", 0.0),
        StepSpec(f"equivalent-circuit battery ({cell_name}, capacity / {ECM_SCALE:g}) instead of the bucket", full,
                 levels, period, deadline, "ecm", 0.0),
        StepSpec(f"pattern-set switch cost {switch:g} ms", full, levels, period, deadline, "ecm", switch),
    ]  # fmt: skip
    return specs, cell


def run_steps(
    specs: Sequence[StepSpec],
    out: Path,
    cell: str | None,
    seed: int = 1,
    say: Callable[[str], None] | None = None,
) -> list[StepResult]:
    """Run every step into ``out/steps/<k>-<slug>/run`` (profile beside it); a finished step is reused."""
    results: list[StepResult] = []
    scaled: str | None = None
    for k, spec in enumerate(specs):
        d = out / "steps" / f"{k}-{_slug(spec.change)}"
        d.mkdir(parents=True, exist_ok=True)
        table_path = d / "profile.csv"
        table_path.write_text(spec.table.to_csv(), encoding="utf-8")
        if spec.battery == "ecm" and scaled is None:
            scaled = str(write_scaled_cell(cell or "phone-lco", ECM_SCALE, d))
        cfg = _experiment(spec, table_path, scaled, seed)
        run_dir = d / "run"
        if say is not None:
            say(f"step {k}: {spec.change}")
        if (run_dir / "summary.json").exists():
            from testbed.runstore.reader import RunReader

            with RunReader.open(run_dir) as reader:
                res = {s: r for s, r in reader.results().items() if isinstance(r, StrategyResult)}
        else:
            res = run_experiment(cfg, run_dir, run_dir if run_dir.exists() else None)
        results.append(_step_result(spec.change, res, run_dir))
    return results


def _step_result(change: str, res: dict[str, StrategyResult], run_dir: Path) -> StepResult:
    a, b = res["rt3"], res["dense-max"]
    ratio = a.inferences / b.inferences if b.inferences else math.nan
    life = a.life_s / b.life_s if b.life_s > 0 else math.nan
    return StepResult(change, ratio, str(run_dir), life, a.inferences, b.inferences)


def bundled_experiment() -> Path:
    """The experiment reproduce starts from by default (the bundled Pi 4 experiment, ECM battery)."""
    return data_dir() / "experiment-rpi4-ecm.toml"


def reproduce_rt3_paper(
    out: Path, experiment: Path | None = None, say: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the whole reproduction into ``out``; returns what ``--json`` prints (also ``out/reproduce.json``)."""
    cfg = load_experiment(experiment or bundled_experiment())
    acc = paper_accounting()
    specs, cell = waterfall_specs(cfg, acc)
    steps = run_steps(specs, out, cell, cfg.seed, say)
    result = {
        "paper_ratio": acc.ratio,
        "baseline": acc.baseline,
        "paper": acc.to_dict(),
        "experiment": str(experiment or bundled_experiment()),
        "steps": [{"change": s.change, "ratio": s.ratio, "life_ratio": s.life_ratio, "run": s.run} for s in steps],
        "ratio_is": "rt3 inferences / dense-max inferences (RT3's runs); with periodic requests = battery-life ratio",
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "reproduce.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
