"""Strategies: which (frequency level, pattern set) runs, given the level the policy asks for.

- ``dense-max`` — the densest set at the top level, whatever the policy says;
- ``dvfs-dense`` — the densest set at the policy's level (deadline misses counted);
- ``static-sparse`` — one pattern set everywhere: ``strategy.static_set`` or the densest set whose
  tail latency meets the deadline at every level the policy uses;
- ``rt3`` — the set switches with the level: ``strategy.rt3_sets[level]`` or the densest set meeting
  the deadline at that level (the sparsest if none does);
- ``oracle`` — at each moment the (level, set) pair with the least energy per request period among
  those meeting the deadline with accuracy ≥ ``strategy.min_accuracy`` (default: rt3's accuracy at
  the policy's level), idle power for the rest of the period included. rt3's own pair at that level is
  always a candidate, so the oracle never spends more per period than rt3: an upper bound on rt3's life
  by construction, at the accuracy rule :func:`oracle_rule` states (every output carries it).

"Meets the deadline" compares a cell's tail latency with it, read through the experiment's
:class:`~testbed.experiment.deadline.TailModel` (``requests.deadline_tail``: the cell's measured p99, or its
median × the profile's pooled p99/p50 over the policy's levels, the rule a pooled derived deadline uses).

A :class:`Plan` maps each policy level to a choice once, so the simulator's inner loop is a lookup.
Strategies are registered by name (:func:`register_strategy`): a new strategy is one planner function and one
call; the experiment config, the simulator and the hil runner find it through :func:`make_plan`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from devices.errors import BadInputError
from devices.registry import Registry
from testbed.experiment.deadline import TailModel
from traces.profile import ProfileTable


class StrategySettings(Protocol):
    """The ``[strategy]`` settings a planner may read (the experiment config's ``StrategyCfg`` is one)."""

    @property
    def static_set(self) -> str | None: ...

    @property
    def rt3_sets(self) -> Mapping[str, str]: ...

    @property
    def min_accuracy(self) -> float | None: ...


@dataclass(frozen=True)
class Plan:
    """``choice[policy_level] = (level, pattern_set)``; ``follows_policy`` False for dense-max."""

    strategy: str
    choice: dict[str, tuple[str, str]]
    follows_policy: bool = True


def _meets(table: ProfileTable, ps: str, lv: str, deadline_ms: float, tails: TailModel) -> bool:
    return tails.latency_ms(table.get(ps, lv)) <= deadline_ms


def rt3_set(
    table: ProfileTable, level: str, deadline_ms: float, cfg: StrategySettings, tails: TailModel | None = None
) -> str:
    """The pattern set RT3 runs at ``level`` (configured, else densest meeting the deadline; tails as
    ``tails`` reads them, default each cell's measured p99)."""
    if level in cfg.rt3_sets:
        return cfg.rt3_sets[level]
    for ps in table.pattern_sets:
        if _meets(table, ps, level, deadline_ms, tails or TailModel()):
            return ps
    return table.pattern_sets[-1]


def period_energy_j(table: ProfileTable, ps: str, lv: str, period_s: float) -> float:
    """Energy of one request period: the inference, then idle power until the next request."""
    row = table.get(ps, lv)
    busy_s = row.latency_p50_ms / 1000.0
    return row.energy_per_inference_j + row.idle_power_w * max(period_s - busy_s, 0.0)


@dataclass(frozen=True)
class PlanRequest:
    """What a planner gets: the profile, the levels the policy can ask for, the deadline, the period, settings."""

    strategy: str
    table: ProfileTable
    policy_levels: list[str]
    deadline_ms: float
    period_s: float
    settings: StrategySettings
    tails: TailModel = field(default_factory=TailModel)

    def meets(self, ps: str, lv: str) -> bool:
        """Whether set ``ps`` at level ``lv`` meets the deadline (its tail latency read through ``tails``)."""
        return _meets(self.table, ps, lv, self.deadline_ms, self.tails)


Planner = Callable[[PlanRequest], Plan]


#: The strategies by name, in registration order (the default list of an experiment).
STRATEGIES: Registry[Planner] = Registry("strategy")


def register_strategy(name: str, summary: str) -> Callable[[Planner], Planner]:
    """Decorator: register ``planner`` as strategy ``name`` (:class:`BadInputError` if the name is taken)."""
    return STRATEGIES.add(name, summary)


def strategy_names() -> tuple[str, ...]:
    """The registered strategies, in registration order (the default list of an experiment)."""
    return STRATEGIES.names()


@register_strategy("dense-max", "the densest set at the top level, whatever the policy says")
def _dense_max(req: PlanRequest) -> Plan:
    dense, top = req.table.pattern_sets[0], req.table.levels[0]
    return Plan(req.strategy, {lv: (top, dense) for lv in req.policy_levels}, follows_policy=False)


@register_strategy("dvfs-dense", "the densest set at the policy's level")
def _dvfs_dense(req: PlanRequest) -> Plan:
    dense = req.table.pattern_sets[0]
    return Plan(req.strategy, {lv: (lv, dense) for lv in req.policy_levels})


@register_strategy("static-sparse", "one pattern set at every level (configured, or the densest meeting the deadline)")
def _static_sparse(req: PlanRequest) -> Plan:
    table, static = req.table, req.settings.static_set
    if static is None:
        ok = [ps for ps in table.pattern_sets if all(req.meets(ps, lv) for lv in req.policy_levels)]
        static = ok[0] if ok else table.pattern_sets[-1]
    return Plan(req.strategy, {lv: (lv, static) for lv in req.policy_levels})


@register_strategy("rt3", "the pattern set switches with the level (searched sets, or densest meeting the deadline)")
def _rt3(req: PlanRequest) -> Plan:
    return Plan(
        req.strategy,
        {lv: (lv, rt3_set(req.table, lv, req.deadline_ms, req.settings, req.tails)) for lv in req.policy_levels},
    )


def oracle_rule(settings: StrategySettings) -> str:
    """The oracle's accuracy rule in words (stated in every output that shows the oracle)."""
    if settings.min_accuracy is not None:
        return (
            "oracle: least energy per request among (level, set) pairs meeting the deadline at accuracy ≥ "
            f"{settings.min_accuracy:g} (strategy.min_accuracy), rt3's own pair a candidate when it meets that"
        )
    return (
        "oracle: least energy per request among (level, set) pairs meeting the deadline at accuracy ≥ rt3's at "
        "the same policy level, rt3's own pair always a candidate (an upper bound on rt3 at rt3's accuracy)"
    )


@register_strategy("oracle", "least energy per period among pairs meeting the deadline and the accuracy floor")
def _oracle(req: PlanRequest) -> Plan:
    table, cfg, deadline_ms = req.table, req.settings, req.deadline_ms
    choice: dict[str, tuple[str, str]] = {}
    for lv in req.policy_levels:
        own = rt3_set(table, lv, deadline_ms, cfg, req.tails)
        floor = cfg.min_accuracy if cfg.min_accuracy is not None else table.accuracy(own)
        options = [
            (period_energy_j(table, ps, cand, req.period_s), cand, ps)
            for cand in table.levels
            for ps in table.pattern_sets
            if req.meets(ps, cand) and table.accuracy(ps) >= floor - 1e-12
        ]
        if table.accuracy(own) >= floor - 1e-12:  # rt3's own pair: never more energy per request than rt3
            options.append((period_energy_j(table, own, lv, req.period_s), lv, own))
        if not options:  # nothing feasible: fall back to what rt3 does
            choice[lv] = (lv, own)
        else:
            _, best_lv, best_ps = min(options)
            choice[lv] = (best_lv, best_ps)
    return Plan(req.strategy, choice)


def make_plan(
    strategy: str,
    table: ProfileTable,
    policy_levels: list[str],
    deadline_ms: float,
    period_s: float,
    cfg: StrategySettings,
    deadline_tail: str = "cell",
) -> Plan:
    """Precompute the strategy's choice for each level the policy can ask for; ``deadline_tail`` says how a
    cell's tail latency is read (:class:`~testbed.experiment.deadline.TailModel`, pooled over
    ``policy_levels``).

    Raises :class:`BadInputError` for an unknown strategy or tail, or pattern sets or levels the profile does
    not have.
    """
    planner = STRATEGIES.get(strategy)
    for name in [cfg.static_set, *cfg.rt3_sets.values()]:
        if name is not None and name not in table.pattern_sets:
            raise BadInputError(f"strategy: unknown pattern set {name!r} ({', '.join(table.pattern_sets)})")
    for lv in cfg.rt3_sets:
        if lv not in table.levels:
            raise BadInputError(f"strategy.rt3_sets: unknown level {lv!r} ({', '.join(table.levels)})")
    tails = TailModel.of(table, policy_levels, deadline_tail)
    return planner(PlanRequest(strategy, table, policy_levels, deadline_ms, period_s, cfg, tails))
