"""Assemble an experiment's parts from its configuration, for the simulator and the hil runner alike.

The profile table and the request arrivals are read once per run (:func:`load_table`,
:func:`make_arrivals`) and handed to :func:`strategy_parts` for each strategy: the policy over the table's
levels, the strategy's plan and a fresh battery. :func:`build_simulation` puts them into a ready-to-run
:class:`~testbed.experiment.simulate.Simulation`. Paths in the configuration are already resolved
(:func:`~testbed.experiment.config.load_experiment`).

Failure modes: :class:`~devices.errors.BadInputError` (or :class:`~devices.errors.ParseError`) for a
profile that lacks a configured level or pattern set, or an unreadable table, trace or cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from testbed.battery import registry
from testbed.battery.cell import load_cell
from testbed.battery.model import BatteryModel, BatteryParams
from testbed.experiment.config import ExperimentConfig, StrategyCfg
from testbed.experiment.policy import Policy, make_policy
from testbed.experiment.search_sets import rt3_sets_from_search
from testbed.experiment.simulate import Arrivals, Simulation, read_request_trace
from testbed.experiment.strategy import Plan, make_plan
from testbed.runstore.store import RunStore
from traces.profile import ProfileTable, load_profile_table


def config_json(cfg: ExperimentConfig) -> dict[str, Any]:
    """The configuration as JSON: what the manifest records and what a resume must match."""
    data: dict[str, Any] = json.loads(cfg.model_dump_json())
    return data


def make_battery(cfg: ExperimentConfig) -> BatteryModel:
    """A fresh battery of the configured model (:mod:`testbed.battery.registry`); the cell is read only when
    the model is sized by it (a bucket given ``energy_j`` ignores ``cell``)."""
    b = cfg.battery
    sized_by = registry.spec(b.model).sized_by
    use_cell = b.cell is not None and (b.energy_j is None or "energy_j" not in sized_by)
    params = BatteryParams(
        energy_j=b.energy_j,
        cell=load_cell(b.cell) if use_cell and b.cell is not None else None,
        soc0=b.soc0,
        efficiency=b.efficiency,
        static_power_w=b.static_power_w,
    )
    return registry.create(b.model, params)


def make_arrivals(cfg: ExperimentConfig) -> Arrivals:
    """Periodic arrivals every ``requests.period_ms``, or the request trace's."""
    r = cfg.requests
    if r.period_ms is not None:
        return Arrivals(period_s=r.period_ms / 1000.0)
    assert r.trace is not None
    return read_request_trace(r.trace)


def load_table(cfg: ExperimentConfig) -> ProfileTable:
    """The run's profile table (parsed once per run; pass it on)."""
    return load_profile_table(cfg.profile.table)


def strategy_settings(cfg: ExperimentConfig, table: ProfileTable) -> StrategyCfg:
    """The ``[strategy]`` settings with ``search_result`` turned into rt3's sets on ``table``
    (:func:`~testbed.experiment.search_sets.rt3_sets_from_search`)."""
    s = cfg.strategy
    if s.search_result is None:
        return s
    return s.model_copy(update={"rt3_sets": rt3_sets_from_search(s.search_result, table), "search_result": None})


@dataclass(frozen=True)
class StrategyParts:
    """What one strategy's run is made of (the battery is new, full at ``battery.soc0``)."""

    policy: Policy
    arrivals: Arrivals
    plan: Plan
    battery: BatteryModel


def strategy_parts(cfg: ExperimentConfig, strategy: str, table: ProfileTable, arrivals: Arrivals) -> StrategyParts:
    """The policy, plan and a fresh battery of ``strategy`` under ``cfg`` on ``table``, with the run's
    ``arrivals``."""
    policy = make_policy(cfg.policy, table)
    plan = make_plan(
        strategy,
        table,
        policy.levels_used(),
        cfg.requests.deadline_ms,
        arrivals.mean_period_s(),
        strategy_settings(cfg, table),
        cfg.requests.deadline_tail,
    )
    return StrategyParts(policy, arrivals, plan, make_battery(cfg))


def build_simulation(
    cfg: ExperimentConfig,
    strategy: str,
    store: RunStore | None = None,
    table: ProfileTable | None = None,
    arrivals: Arrivals | None = None,
) -> Simulation:
    """A ready-to-run :class:`Simulation` of ``strategy`` under ``cfg`` (``table`` and ``arrivals``: the run's,
    read from ``cfg`` when not given), writing to ``store`` when given."""
    t = table if table is not None else load_table(cfg)
    parts = strategy_parts(cfg, strategy, t, arrivals if arrivals is not None else make_arrivals(cfg))
    return Simulation(
        strategy,
        parts.plan,
        parts.policy,
        parts.battery,
        t,
        parts.arrivals,
        deadline_ms=cfg.requests.deadline_ms,
        switch_ms=cfg.strategy.switch_ms,
        record_interval_s=cfg.battery.record_interval_s,
        seed=cfg.seed,
        max_duration_s=cfg.requests.max_duration_s,
        store=store,
    )
