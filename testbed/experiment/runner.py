"""Run an experiment: every configured strategy, one run store, resumable after a crash or SIGKILL.

:func:`run_experiment` is the one entry point for both fidelities: ``sim`` mode is here, ``hil`` mode
is :mod:`testbed.experiment.hil`. Both go through the run executor
(:mod:`testbed.runstore.executor`): it creates ``out_dir/run.sqlite`` (or reopens ``resume_dir``),
writes the manifest, and runs each strategy without a result from its last checkpoint; rows and a
checkpoint are committed at most every second, so a resumed run's result equals an uninterrupted
run's. ``summary.json`` (every strategy's :class:`~testbed.runstore.results.StrategyResult`, plus the run's
``headline``, ``profile_quality`` and ``oracle_rule``: :func:`answer`) and the manifest's ``finished_wall``
are written at the end.

Failure modes: :class:`BadInputError` for a bad configuration, a profile that lacks a configured
level or pattern set, an existing run in ``out_dir``, or a resume whose configuration differs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from testbed.experiment.assemble import build_simulation, config_json, load_table, make_arrivals
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.headline import annotate_summary, headline
from testbed.experiment.hil import run_hil
from testbed.experiment.quality import assess
from testbed.experiment.strategy import oracle_rule
from testbed.runstore.executor import ProgressFn, RunDescription, RunExecutor, UnitContext
from testbed.runstore.results import StrategyResult
from traces.profile import ProfileTable


def describe_sim(cfg: ExperimentConfig, table: ProfileTable) -> RunDescription:
    """A simulated run's manifest entries: the board profile, the policy, and the profile table as the meter."""
    return RunDescription(
        config=config_json(cfg),
        fidelity="simulation",
        seed=cfg.seed,
        board=cfg.board.profile,
        governor=f"policy:{cfg.policy.kind}",
        meter=f"profile-table:{table.path} ({table.meta.get('source', 'measured')})",
        clock_offsets={"sim": 0.0},
        extra={"profile_meta": table.meta},
    )


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: Path | None = None,
    resume_dir: Path | None = None,
    progress: ProgressFn | None = None,
    on_start: Callable[[str], None] | None = None,
) -> dict[str, StrategyResult]:
    """Run (or resume) every strategy of ``cfg``; returns the results per strategy, in ``cfg.strategies`` order.

    ``progress(strategy, fraction of the battery used)`` and ``on_start(strategy)`` report as it goes.
    """
    if cfg.mode == "hil":
        results = run_hil(cfg, out_dir, resume_dir, progress, on_start)
    else:
        results = _run_sim(cfg, out_dir, resume_dir, progress, on_start)
    run_dir = resume_dir if resume_dir is not None else out_dir
    if run_dir is not None:
        annotate_summary(Path(run_dir), answer(cfg, results))
    return results


def answer(cfg: ExperimentConfig, results: dict[str, StrategyResult]) -> dict[str, Any]:
    """The run's headline, its profile's quality verdict and the oracle's accuracy rule (what
    :func:`~testbed.experiment.headline.annotate_summary` adds to ``summary.json``)."""
    quality = assess(load_table(cfg))
    return {
        "headline": headline([(cfg.battery.model, results)], quality),
        "profile_quality": quality.to_dict(),
        "oracle_rule": oracle_rule(cfg.strategy),
    }


def _run_sim(
    cfg: ExperimentConfig,
    out_dir: Path | None,
    resume_dir: Path | None,
    progress: ProgressFn | None,
    on_start: Callable[[str], None] | None,
) -> dict[str, StrategyResult]:
    table, arrivals = load_table(cfg), make_arrivals(cfg)

    def simulate(ctx: UnitContext) -> StrategyResult:
        sim = build_simulation(cfg, ctx.unit, ctx.store, table, arrivals)
        if ctx.resume_from is not None:
            sim.restore(ctx.resume_from.state)
        return sim.run(ctx.progress)

    with RunExecutor.open(config_json(cfg), lambda: describe_sim(cfg, table), out_dir, resume_dir) as run:
        with run.phase(run.setup_phase):
            pass
        run.run_units(cfg.strategies, simulate, progress, on_start)
        return run.finish(cfg.strategies, StrategyResult)
