"""Run an experiment: every configured strategy, one run store, resumable after a crash or SIGKILL.

:func:`run_experiment` creates ``out_dir/run.sqlite`` (or reopens ``resume_dir``), writes the
manifest, then simulates each strategy (``sim`` mode; ``hil`` mode is :mod:`testbed.experiment.hil`),
committing rows and a checkpoint at most every second. On resume, finished strategies are skipped
and an unfinished one continues from its last checkpoint, so the result equals an uninterrupted
run's. A ``summary.json`` with every strategy's result is written at the end.

Failure modes: :class:`BadInputError` for a bad configuration, a profile that lacks a configured
level or pattern set, an existing run in ``out_dir``, or a resume whose configuration differs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from testbed.experiment.battery_step import BucketBattery, EcmBattery, SteppedBattery
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.policy import Policy, make_policy
from testbed.experiment.profile_table import ProfileTable, load_profile_table
from testbed.experiment.simulate import Arrivals, Simulation, read_request_trace
from testbed.experiment.strategy import make_plan
from testbed.runstore.manifest import base_manifest
from testbed.runstore.store import RunStore

ProgressFn = Callable[[str, float], None]


def commit_interval_s() -> float:
    """Seconds between run-store commits: 1 s, or ``TESTBED_COMMIT_INTERVAL_S`` (tests use a shorter one)."""
    raw = os.environ.get("TESTBED_COMMIT_INTERVAL_S", "1.0")
    try:
        value = float(raw)
    except ValueError:
        raise BadInputError(f"TESTBED_COMMIT_INTERVAL_S={raw!r} is not a number") from None
    if not value > 0:
        raise BadInputError(f"TESTBED_COMMIT_INTERVAL_S must be > 0, got {raw}")
    return value


def make_battery(cfg: ExperimentConfig) -> SteppedBattery:
    """The configured stepped battery (bucket or ECM)."""
    b = cfg.battery
    if b.model == "bucket":
        assert b.energy_j is not None
        return BucketBattery(b.energy_j, b.soc0, b.efficiency, b.static_power_w)
    from testbed.battery.cell import load_cell

    assert b.cell is not None
    return EcmBattery(load_cell(cfg.resolve(b.cell) or b.cell), b.soc0, b.efficiency, b.static_power_w)


def make_arrivals(cfg: ExperimentConfig) -> Arrivals:
    r = cfg.requests
    if r.period_ms is not None:
        return Arrivals(period_s=r.period_ms / 1000.0)
    path = cfg.resolve(r.trace)
    assert path is not None
    return read_request_trace(path)


def load_table(cfg: ExperimentConfig) -> ProfileTable:
    return load_profile_table(cfg.resolve(cfg.profile.table) or cfg.profile.table)


def build_simulation(cfg: ExperimentConfig, strategy: str, store: RunStore | None = None) -> Simulation:
    """A ready-to-run :class:`Simulation` of ``strategy`` under ``cfg``."""
    table = load_table(cfg)
    policy: Policy = make_policy(cfg.policy, table, cfg.resolve(cfg.policy.trace))
    arrivals = make_arrivals(cfg)
    plan = make_plan(
        strategy, table, policy.levels_used(), cfg.requests.deadline_ms, arrivals.mean_period_s(), cfg.strategy
    )
    return Simulation(
        strategy,
        plan,
        policy,
        make_battery(cfg),
        table,
        arrivals,
        deadline_ms=cfg.requests.deadline_ms,
        switch_ms=cfg.strategy.switch_ms,
        record_interval_s=cfg.battery.record_interval_s,
        seed=cfg.seed,
        max_duration_s=cfg.requests.max_duration_s,
        store=store,
    )


def _config_json(cfg: ExperimentConfig) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cfg.model_dump_json())
    return data


def _manifest(cfg: ExperimentConfig) -> dict[str, Any]:
    m = base_manifest(_config_json(cfg), "simulation" if cfg.mode == "sim" else "hardware-in-the-loop", cfg.seed)
    table = load_table(cfg)
    m.update(
        {
            "board": cfg.board.profile,
            "governor": f"policy:{cfg.policy.kind}",
            "meter": f"profile-table:{table.path} ({table.meta.get('source', 'measured')})",
            "clock_offsets": {"sim": 0.0},
            "profile_meta": table.meta,
        }
    )
    return m


def open_run(cfg: ExperimentConfig, out_dir: Path | None, resume_dir: Path | None) -> RunStore:
    """Create a new run store in ``out_dir`` or reopen ``resume_dir`` (same configuration required)."""
    if resume_dir is not None:
        store = RunStore.open(resume_dir, commit_interval_s())
        old = store.manifest().get("config")
        new = _config_json(cfg)
        if old != new:
            store.conn.close()
            raise BadInputError(f"{resume_dir}: the run was started with a different experiment configuration")
        return store
    if out_dir is None:
        raise BadInputError("give --out DIR for a new run or --resume DIR to continue one")
    return RunStore.create(out_dir, _manifest(cfg), commit_interval_s())


def _bind(progress: ProgressFn | None, strategy: str) -> Callable[[float], None] | None:
    if progress is None:
        return None

    def report(frac: float) -> None:
        progress(strategy, frac)

    return report


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: Path | None = None,
    resume_dir: Path | None = None,
    progress: ProgressFn | None = None,
    on_start: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run (or resume) every strategy of ``cfg``; returns results per strategy."""
    if cfg.mode == "hil":
        from testbed.experiment.hil import run_hil

        return run_hil(cfg, out_dir, resume_dir, progress, on_start)
    store = open_run(cfg, out_dir, resume_dir)
    try:
        if resume_dir is not None:
            for name in store.mark_interrupted():
                store.add("events", (None, 0.0, "interrupted", f"phase {name} did not end; resumed"))
        store.begin_phase("resume" if resume_dir is not None else "setup")
        store.end_phase("resume" if resume_dir is not None else "setup")
        done = store.results()
        for strategy in cfg.strategies:
            if strategy in done:
                continue
            if on_start is not None:
                on_start(strategy)
            sim = build_simulation(cfg, strategy, store)
            ck = store.checkpoint(strategy)
            if ck is not None:
                store.discard_after(strategy, ck[0])
                sim.restore(ck[1])
            else:
                store.clear_strategy(strategy)
            store.begin_phase(f"strategy:{strategy}")
            result = sim.run(_bind(progress, strategy))
            store.set_result(strategy, result)
            store.end_phase(f"strategy:{strategy}")
        results = store.results()
        summary: dict[str, dict[str, Any]] = {s: results[s] for s in cfg.strategies}
        (store.path.parent / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        store.set_manifest("finished_wall", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return summary
    finally:
        store.close()
