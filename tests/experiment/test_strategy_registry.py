"""The strategy registry: the seam where a user adds a strategy by name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devices.errors import BadInputError
from testbed.experiment import strategy as strategy_mod
from testbed.experiment.strategy import Plan, PlanRequest, make_plan, register_strategy, strategy_names
from traces.profile import load_profile_table

from .helpers import flat_profile

LEVELS = {"f1500": (1_500_000, 4.0, 2.0), "f600": (600_000, 2.5, 1.5)}
SETS = {
    "dense": (0.0, 0.90, {"f1500": 10.0, "f600": 25.0}),
    "s50": (0.5, 0.88, {"f1500": 5.0, "f600": 12.0}),
    "s75": (0.75, 0.80, {"f1500": 3.0, "f600": 7.0}),
}


@dataclass
class Settings:
    static_set: str | None = None
    rt3_sets: dict[str, str] = field(default_factory=dict)
    min_accuracy: float | None = None


@pytest.fixture
def sparsest_everywhere() -> Iterator[str]:
    @register_strategy("sparsest", "the sparsest set at the policy's level")
    def plan(req: PlanRequest) -> Plan:
        return Plan(req.strategy, {lv: (lv, req.table.pattern_sets[-1]) for lv in req.policy_levels})

    yield "sparsest"
    strategy_mod.STRATEGIES.unregister("sparsest")


def test_the_five_strategies_are_registered_in_order() -> None:
    assert strategy_names()[:5] == ("dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle")
    assert all(e.summary for e in strategy_mod.STRATEGIES.entries())


def test_a_registered_strategy_is_planned_by_name(tmp_path: Path, sparsest_everywhere: str) -> None:
    table = load_profile_table(flat_profile(tmp_path / "p.csv", LEVELS, SETS))
    plan = make_plan(sparsest_everywhere, table, ["f1500", "f600"], 8.0, 0.2, Settings())
    assert plan.choice == {"f1500": ("f1500", "s75"), "f600": ("f600", "s75")}


def test_the_bundled_strategies_choose_what_their_names_say(tmp_path: Path) -> None:
    table = load_profile_table(flat_profile(tmp_path / "p.csv", LEVELS, SETS))
    levels = ["f1500", "f600"]
    assert make_plan("dense-max", table, levels, 8.0, 0.2, Settings()).choice == {
        "f1500": ("f1500", "dense"),
        "f600": ("f1500", "dense"),
    }
    # the densest set meeting 8 ms at every level is s75; rt3 switches: s50 at f1500, s75 at f600
    assert make_plan("static-sparse", table, levels, 8.0, 0.2, Settings()).choice["f1500"] == ("f1500", "s75")
    assert make_plan("rt3", table, levels, 8.0, 0.2, Settings()).choice == {
        "f1500": ("f1500", "s50"),
        "f600": ("f600", "s75"),
    }


def test_an_unknown_strategy_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    table = load_profile_table(flat_profile(tmp_path / "p.csv", LEVELS, SETS))
    with pytest.raises(BadInputError, match=r"unknown strategy 'nosuch'; known: dense-max, dvfs-dense"):
        make_plan("nosuch", table, ["f1500"], 8.0, 0.2, Settings())


def test_registering_a_name_twice_is_an_error() -> None:
    with pytest.raises(BadInputError, match="already registered"):
        register_strategy("rt3", "again")(lambda req: Plan(req.strategy, {}))
