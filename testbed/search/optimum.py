"""The exact optimum of the layer-sparsity space (an upper bound every searcher's curve is drawn against).

On :class:`~testbed.search.layerspace.TableEvaluator`'s problem the reward separates by frequency level except
for RT3's monotonic term: level *k* contributes ``w_k · a_k / (acc_high − acc_low) + runs_k / (runs_high −
runs_low)``, where its accuracy ``a_k = clip(dense − Σ_g drop[g][s_g])`` falls with the summed drop and its
runs (ideal bucket or ECM: ``floor(t_k · 1000 / latency_k)``) fall with its summed latency. So a level's best
candidates lie on the Pareto front of (summed drop, summed latency) over its layers' choices, built exactly
by merging one layer at a time and dropping dominated points (a few hundred points for RT3's 10 tensors ×
10 sparsities, against 10¹⁰ candidates per level). The optimum is the best combination of one feasible front
point per level, with the monotonic penalty applied as the reward does: exact, not a heuristic, in about a
second. It is an upper bound for the SEARCH, computed from the tables the search is scored on; no searcher
sees it.

Raises :class:`BadInputError` where the reward does not separate: a memory term (the union of the levels'
tensors) or an accuracy function other than the additive table.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from devices.errors import BadInputError
from testbed.search.layerspace import TableEvaluator
from testbed.search.reward import config_runs
from testbed.search.space import Candidate


@dataclass(frozen=True)
class LevelFront:
    """One level's Pareto front: per point the layers' sparsity indices, summed drop, accuracy, latency, value."""

    level: str
    choices: tuple[tuple[int, ...], ...]
    drop: tuple[float, ...]
    accuracy: tuple[float, ...]
    latency_ms: tuple[float, ...]
    runs: tuple[int, ...]
    value: tuple[float, ...]  # the level's share of the reward (accuracy share + runs share), deadline ignored
    deadline_ms: float

    def feasible(self) -> np.ndarray:
        return np.asarray(self.latency_ms) <= self.deadline_ms


@dataclass(frozen=True)
class Optimum:
    """The best reward of the space, its candidate and each level's share of it."""

    reward: float
    candidate: Candidate
    level_values: tuple[float, ...]
    accuracy: tuple[float, ...]
    latency_ms: tuple[float, ...]
    front_sizes: tuple[int, ...]
    wall_s: float
    source: str = "exact: per-level Pareto fronts of (summed accuracy drop, summed latency), joined over levels"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pareto(points: list[tuple[tuple[int, ...], float, float]]) -> list[tuple[tuple[int, ...], float, float]]:
    """Points (choices, drop, latency) not dominated in (drop, latency), by rising latency."""
    points.sort(key=lambda t: (t[2], t[1]))
    out: list[tuple[tuple[int, ...], float, float]] = []
    best = math.inf
    for p in points:
        if p[1] < best - 1e-15:
            out.append(p)
            best = p[1]
    return out


def _check(ev: TableEvaluator) -> None:
    if ev.memory is not None and ev.memory.weight > 0:
        raise BadInputError("the exact optimum needs a reward that separates by level (no memory term)")
    if ev._accuracy_fn is not None:
        raise BadInputError("the exact optimum needs the additive accuracy table (no accuracy function)")


def level_values(ev: TableEvaluator, k: int, accuracy: float, runs: int) -> float:
    """Level ``k``'s share of the reward: ``w_accuracy·w_k·a_k / acc_span + w_battery·runs_k / runs_span``."""
    rc = ev.reward_config
    w = rc.weights(ev.space.n_freq_levels)
    return rc.w_accuracy * w[k] * accuracy / (rc.acc_high - rc.acc_low) + rc.w_battery * runs / (
        rc.runs_high - rc.runs_low
    )


def level_fronts(ev: TableEvaluator) -> list[LevelFront]:
    """Every level's Pareto front (see the module text)."""
    _check(ev)
    lat = ev.cost.array()
    drop = np.asarray(ev.acc_table.drop, dtype=float)
    n_layers, n_sparsity, n_levels = lat.shape
    rc = ev.reward_config
    fronts = []
    for k in range(n_levels):
        cur: list[tuple[tuple[int, ...], float, float]] = [((), 0.0, float(ev.cost.fixed_ms[k]))]
        for g in range(n_layers):
            cur = _pareto([((*c, s), d + drop[g, s], t + lat[g, s, k]) for c, d, t in cur for s in range(n_sparsity)])
        accs, lats, runs, vals = [], [], [], []
        for _, d, t in cur:
            a = min(1.0, max(0.0, ev.acc_table.dense_accuracy - d))
            latency = max(t, 1e-9)
            others = [1.0] * n_levels
            others[k] = latency
            r = config_runs(rc, n_levels, ev.cost.power_w, others)[k]
            accs.append(a)
            lats.append(latency)
            runs.append(int(r))
            vals.append(float(level_values(ev, k, a, int(r))))
        fronts.append(
            LevelFront(
                ev.space.level_names[k],
                tuple(c for c, _, _ in cur),
                tuple(d for _, d, _ in cur),
                tuple(accs),
                tuple(lats),
                tuple(runs),
                tuple(vals),
                ev.deadlines_ms[k],
            )
        )
    return fronts


def exact_optimum(ev: TableEvaluator) -> Optimum:
    """The best reward over every candidate of ``ev``'s space (see the module text); checked by evaluating it.

    For three or more levels the last two are joined as a matrix per point of the others (about 10⁵ cells
    each for RT3's tables). Raises :class:`BadInputError` as the module text says, or when no candidate meets
    every deadline (then the search's best is a penalised one and there is nothing to bound).
    """
    t0 = time.perf_counter()
    fronts = level_fronts(ev)
    rc = ev.reward_config
    w = rc.weights(len(fronts))
    feas = [np.flatnonzero(f.feasible()) for f in fronts]
    if any(len(f) == 0 for f in feas):
        raise BadInputError("no candidate meets every deadline: the space has no feasible optimum")
    acc = [np.asarray(f.accuracy)[i] for f, i in zip(fronts, feas, strict=True)]
    runs = [np.asarray(f.runs, dtype=float)[i] for f, i in zip(fronts, feas, strict=True)]
    span, runs_span = rc.acc_high - rc.acc_low, rc.runs_high - rc.runs_low
    best, arg = -math.inf, None
    heads = [range(len(a)) for a in acc[:-2]] if len(acc) > 2 else []
    for head in itertools.product(*heads):
        wa_head = sum(w[k] * acc[k][i] for k, i in enumerate(head))
        runs_head = sum(runs[k][i] for k, i in enumerate(head))
        mono_head = all(acc[k][head[k]] >= acc[k + 1][head[k + 1]] for k in range(len(head) - 1))
        if len(acc) == 1:
            wa, rr, mono = w[0] * acc[0], runs[0], np.ones(len(acc[0]), dtype=bool)
        else:
            a1, a2 = acc[-2][:, None], acc[-1][None, :]
            wa = wa_head + w[-2] * a1 + w[-1] * a2
            rr = runs_head + runs[-2][:, None] + runs[-1][None, :]
            mono = (a1 >= a2) & mono_head
            if head:
                mono = mono & (acc[len(head) - 1][head[-1]] >= a1)
        reward = (
            rc.w_accuracy * (wa - rc.acc_low) / span
            - rc.monotonic_penalty * (~mono)
            + rc.w_battery * (rr - rc.runs_low) / runs_span
        )
        j = np.unravel_index(int(np.argmax(reward)), np.shape(reward))
        if float(reward[j]) > best:
            best, arg = float(reward[j]), (*head, *(int(x) for x in j))
    assert arg is not None
    picks = [int(feas[k][i]) for k, i in enumerate(arg)]
    cand = tuple(s for k, p in enumerate(picks) for s in fronts[k].choices[p])
    check, _ = TableEvaluator(ev.cost, ev.acc_table, ev.deadlines_ms, reward=rc, calibrate=False).evaluate(cand)
    return Optimum(
        reward=check.reward,
        candidate=cand,
        level_values=tuple(float(fronts[k].value[p]) for k, p in enumerate(picks)),
        accuracy=tuple(check.accuracy),
        latency_ms=tuple(check.latency_ms),
        front_sizes=tuple(len(f.choices) for f in fronts),
        wall_s=time.perf_counter() - t0,
    )
