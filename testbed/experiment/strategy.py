"""Strategies: which (frequency level, pattern set) runs, given the level the policy asks for.

- ``dense-max`` — the densest set at the top level, whatever the policy says;
- ``dvfs-dense`` — the densest set at the policy's level (deadline misses counted);
- ``static-sparse`` — one pattern set everywhere: ``strategy.static_set`` or the densest set whose
  p99 latency meets the deadline at every level the policy uses;
- ``rt3`` — the set switches with the level: ``strategy.rt3_sets[level]`` or the densest set meeting
  the deadline at that level (the sparsest if none does);
- ``oracle`` — at each moment the (level, set) pair with the least energy per request period among
  those meeting the deadline with accuracy ≥ ``strategy.min_accuracy`` (default: rt3's accuracy at
  the policy's level), idle power for the rest of the period included.

A :class:`Plan` maps each policy level to a choice once, so the simulator's inner loop is a lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.errors import BadInputError
from testbed.experiment.config import StrategyCfg
from testbed.experiment.profile_table import ProfileTable


@dataclass(frozen=True)
class Plan:
    """``choice[policy_level] = (level, pattern_set)``; ``follows_policy`` False for dense-max."""

    strategy: str
    choice: dict[str, tuple[str, str]]
    follows_policy: bool = True


def _meets(table: ProfileTable, ps: str, lv: str, deadline_ms: float) -> bool:
    return table.get(ps, lv).latency_p99_ms <= deadline_ms


def rt3_set(table: ProfileTable, level: str, deadline_ms: float, cfg: StrategyCfg) -> str:
    """The pattern set RT3 runs at ``level`` (configured, else densest meeting the deadline)."""
    if level in cfg.rt3_sets:
        return cfg.rt3_sets[level]
    for ps in table.pattern_sets:
        if _meets(table, ps, level, deadline_ms):
            return ps
    return table.pattern_sets[-1]


def period_energy_j(table: ProfileTable, ps: str, lv: str, period_s: float) -> float:
    """Energy of one request period: the inference, then idle power until the next request."""
    row = table.get(ps, lv)
    busy_s = row.latency_p50_ms / 1000.0
    return row.energy_per_inference_j + row.idle_power_w * max(period_s - busy_s, 0.0)


def make_plan(
    strategy: str, table: ProfileTable, policy_levels: list[str], deadline_ms: float, period_s: float, cfg: StrategyCfg
) -> Plan:
    """Precompute the strategy's choice for each level the policy can ask for.

    Raises :class:`BadInputError` for pattern sets or levels the profile does not have.
    """
    for name in [cfg.static_set, *cfg.rt3_sets.values()]:
        if name is not None and name not in table.pattern_sets:
            raise BadInputError(f"strategy: unknown pattern set {name!r} ({', '.join(table.pattern_sets)})")
    for lv in cfg.rt3_sets:
        if lv not in table.levels:
            raise BadInputError(f"strategy.rt3_sets: unknown level {lv!r} ({', '.join(table.levels)})")
    dense, top = table.pattern_sets[0], table.levels[0]
    if strategy == "dense-max":
        return Plan(strategy, {lv: (top, dense) for lv in policy_levels}, follows_policy=False)
    if strategy == "dvfs-dense":
        return Plan(strategy, {lv: (lv, dense) for lv in policy_levels})
    if strategy == "static-sparse":
        static = cfg.static_set
        if static is None:
            ok = [ps for ps in table.pattern_sets if all(_meets(table, ps, lv, deadline_ms) for lv in policy_levels)]
            static = ok[0] if ok else table.pattern_sets[-1]
        return Plan(strategy, {lv: (lv, static) for lv in policy_levels})
    if strategy == "rt3":
        return Plan(strategy, {lv: (lv, rt3_set(table, lv, deadline_ms, cfg)) for lv in policy_levels})
    if strategy == "oracle":
        choice: dict[str, tuple[str, str]] = {}
        for lv in policy_levels:
            floor = cfg.min_accuracy
            if floor is None:
                floor = table.accuracy(rt3_set(table, lv, deadline_ms, cfg))
            options = [
                (period_energy_j(table, ps, cand, period_s), cand, ps)
                for cand in table.levels
                for ps in table.pattern_sets
                if _meets(table, ps, cand, deadline_ms) and table.accuracy(ps) >= floor - 1e-12
            ]
            if not options:  # nothing feasible: fall back to what rt3 does
                choice[lv] = (lv, rt3_set(table, lv, deadline_ms, cfg))
            else:
                _, best_lv, best_ps = min(options)
                choice[lv] = (best_lv, best_ps)
        return Plan(strategy, choice)
    raise BadInputError(f"unknown strategy {strategy!r}")
