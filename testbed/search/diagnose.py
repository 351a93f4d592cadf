"""Why a searcher wins or loses on the layer-sparsity space: numbers the comparison reports beside its curves.

For the problem of :func:`testbed.search.compare.compare_tables` (two tables, RT3's reward):

* the **exact optimum** (:mod:`testbed.search.optimum`) and each level's share of it, so every run's gap
  splits by frequency level (``level_gaps``: the optimum's share of level *k* minus the run's best's);
* how rare **feasibility** is: the share of uniform random candidates meeting every deadline, and each level's
  own deadline (the levels must hold at once);
* a **variance decomposition** of the reward over uniform random candidates: each decision's first-order
  share ``Var_j(E[R | x_i = j]) / Var(R)`` (a binned Sobol main effect), summed per level; what the main
  effects leave is the share carried by interactions (the deadline's AND over a level's tensors and over
  levels);
* the **level landscape**: each level's Pareto front (value of its share of the reward against latency), on
  which a run's best level is placed.

:class:`SpaceDiagnosis` is stored in the comparison's JSON (``diagnosis``) and drawn and tabled by
:mod:`testbed.search.compare_report`. Raises :class:`BadInputError` where the optimum does (a memory term).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from testbed.search.evaluator import Evaluation
from testbed.search.layerspace import TableEvaluator
from testbed.search.optimum import Optimum, exact_optimum, level_fronts, level_values


@dataclass(frozen=True)
class VarianceShare:
    """First-order reward variance shares over uniform random candidates (per decision, per level)."""

    samples: int
    per_decision: tuple[float, ...]
    per_level: tuple[float, ...]
    interactions: float  # 1 − Σ first-order shares


@dataclass(frozen=True)
class SpaceDiagnosis:
    """What makes the space hard, independent of any searcher (see the module text)."""

    optimum: Optimum
    random_feasible_share: float
    random_level_feasible_share: tuple[float, ...]
    variance: VarianceShare
    level_names: tuple[str, ...]
    fronts_latency_ms: tuple[tuple[float, ...], ...]
    fronts_value: tuple[tuple[float, ...], ...]
    deadlines_ms: tuple[float, ...]
    structured_seed_evaluations: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose_space(ev: TableEvaluator, samples: int = 10000, seed: int = 0) -> SpaceDiagnosis:
    """The space's optimum, feasibility, variance shares and fronts (``ev``'s memo is left untouched)."""
    probe = TableEvaluator(ev.cost, ev.acc_table, ev.deadlines_ms, reward=ev.reward_config, calibrate=False)
    optimum = exact_optimum(probe)
    rng = np.random.default_rng(seed)
    sizes = probe.space.sizes
    x = np.stack([rng.integers(n, size=samples) for n in sizes], axis=1)
    rewards = np.empty(samples)
    met = np.empty((samples, probe.space.n_freq_levels), dtype=bool)
    for i, row in enumerate(x):
        e, _ = probe.evaluate(tuple(int(v) for v in row))
        rewards[i] = e.reward
        met[i] = e.terms.deadline_met
    var = float(rewards.var())
    shares = []
    for i, n in enumerate(sizes):
        means = [rewards[x[:, i] == j].mean() for j in range(n) if (x[:, i] == j).any()]
        shares.append(float(np.var(means)) / var if var > 0 else 0.0)
    levels = [d.level for d in probe.space.decisions]
    per_level = tuple(
        float(sum(s for s, lv in zip(shares, levels, strict=True) if lv == k)) for k in range(probe.space.n_freq_levels)
    )
    fronts = level_fronts(probe)
    return SpaceDiagnosis(
        optimum=optimum,
        random_feasible_share=float(met.all(axis=1).mean()),
        random_level_feasible_share=tuple(float(v) for v in met.mean(axis=0)),
        variance=VarianceShare(samples, tuple(shares), per_level, 1.0 - float(sum(shares))),
        level_names=tuple(probe.space.level_names),
        fronts_latency_ms=tuple(f.latency_ms for f in fronts),
        fronts_value=tuple(f.value for f in fronts),
        deadlines_ms=tuple(probe.deadlines_ms),
        structured_seed_evaluations=len(probe.space.structured_seeds()),
    )


def best_level_values(ev: TableEvaluator, best: Evaluation) -> list[float]:
    """Each level's share of the reward of ``best`` (as the optimum's ``level_values``)."""
    return [
        float(level_values(ev, k, best.accuracy[k], best.terms.runs_per_level[k])) for k in range(len(best.accuracy))
    ]


def first_feasible(evaluations: Sequence[Evaluation]) -> int | None:
    """1-based index of the first distinct evaluation that met every deadline (None: none did)."""
    for e in sorted(evaluations, key=lambda e: e.index):
        if e.terms.all_deadlines_met:
            return e.index + 1
    return None


def run_gaps(diag: dict[str, Any], runs: Sequence[dict[str, Any]], algo: str) -> dict[str, Any]:
    """Per algorithm: mean gap to the optimum, its split by level, first feasible evaluation, stuck seeds.

    For a best that meets every deadline and is monotonic the level gaps sum to the gap (the reward's other
    terms are constants then).

    ``diag`` is :meth:`SpaceDiagnosis.to_dict`, ``runs`` the comparison's rows (``best_level_values``,
    ``first_feasible_evaluation``, ``best_accuracy``). A seed is "in the sparse corner" when its best gives the
    fastest level no accuracy (the proxy's 0): it traded the fastest level's accuracy for battery runs.
    """
    opt = diag["optimum"]
    mine = [r for r in runs if r["algo"] == algo]
    gaps = [opt["reward"] - r["best_reward"] for r in mine]
    by_level = [
        statistics.fmean(opt["level_values"][k] - r["best_level_values"][k] for r in mine)
        for k in range(len(opt["level_values"]))
    ]
    firsts = [r["first_feasible_evaluation"] for r in mine if r["first_feasible_evaluation"] is not None]
    return {
        "gap_mean": statistics.fmean(gaps),
        "gap_by_level": by_level,
        "first_feasible_median": statistics.median(firsts) if firsts else None,
        "seeds_never_feasible": sum(r["first_feasible_evaluation"] is None for r in mine),
        "seeds_in_sparse_corner": sum(r["best_accuracy"][0] <= 0.0 for r in mine),
        "seeds": len(mine),
    }
