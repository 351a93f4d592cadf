"""Typed results: StrategyResult and SearchSummary round trip through JSON and through the run store."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from devices.errors import BadInputError
from testbed.runstore.manifest import base_manifest
from testbed.runstore.results import Extrapolation, SearchSummary, StrategyResult, result_from_dict
from testbed.runstore.store import RunStore

SIM = StrategyResult.from_counts(
    "rt3", life_s=7200.0, inferences=100, deadline_misses=4, accuracy_time_weighted=0.9, switches=2,
    level_changes=2, load_energy_j=378.0, soc_end=0.0, end_reason="empty",
    time_at_level_s={"f1500": 3600.0, "f600": 3600.0}, time_at_set_s={"dense": 7200.0}, wall_s=0.5,
)  # fmt: skip
HIL = StrategyResult.from_counts(
    "dvfs-dense", life_s=12.5, inferences=40, deadline_misses=0, accuracy_time_weighted=0.91, switches=0,
    level_changes=1, load_energy_j=1.2, soc_end=0.0, end_reason="empty", time_at_level_s={"f1500": 12.5},
    time_at_set_s={"dense": 12.5}, wall_s=13.0, throttled_windows=1, compressed=False,
)  # fmt: skip


def _compressed() -> StrategyResult:
    from dataclasses import replace

    ex = Extrapolation({"f1500": 0.02, "f600": 0.04}, 0.04, "validation windows", {"dense@f1500": 3})
    return replace(SIM, strategy="oracle", compressed=True, extrapolation=ex)


def _search() -> SearchSummary:
    return SearchSummary(
        algo="rl", reward=0.25, terms={"reward": 0.25, "deadline_met": [True]}, candidate=[1, 0, 2],
        levels=[{"level": "f1500", "sparsity": 0.5, "deadline_met": True}], all_deadlines_met=True,
        latency_source="predicted: op-count (RT3)", evaluations=4, proposals=6, memo_hits=2, wall_s=1.5,
        stopped="budget", curve=[0.1, 0.25],
    )  # fmt: skip


def test_derived_fields_and_the_sim_keys() -> None:
    assert SIM.life_h == pytest.approx(2.0) and SIM.miss_rate == pytest.approx(0.04)
    keys = list(SIM.to_dict())
    assert keys == [
        "strategy", "life_s", "life_h", "inferences", "deadline_misses", "miss_rate", "accuracy_time_weighted",
        "switches", "level_changes", "load_energy_j", "soc_end", "end_reason", "time_at_level_s", "time_at_set_s",
        "wall_s",
    ]  # fmt: skip
    assert {"throttled_windows", "compressed"} <= set(HIL.to_dict())
    assert "extrapolation" in _compressed().to_dict()


@pytest.mark.parametrize("result", [SIM, HIL, _compressed(), _search()])
def test_json_round_trip(result: StrategyResult | SearchSummary) -> None:
    again = result_from_dict(json.loads(json.dumps(result.to_dict())))
    assert type(again) is type(result) and again == result


def test_round_trip_through_the_store(tmp_path: Path) -> None:
    nan = StrategyResult.from_counts(
        "dense-max", life_s=0.0, inferences=0, deadline_misses=0, accuracy_time_weighted=math.nan, switches=0,
        level_changes=0, load_energy_j=0.0, soc_end=1.0, end_reason="duration_cap", time_at_level_s={},
        time_at_set_s={},
    )  # fmt: skip
    with RunStore.create(tmp_path, base_manifest({}, "simulation", 0)) as store:
        for unit, r in (("rt3", SIM), ("dvfs-dense", HIL), ("oracle", _compressed()), ("search:rl", _search())):
            store.set_result(unit, r)
        store.set_result("dense-max", nan)
    with RunStore.open(tmp_path) as store:
        got = store.results()
        assert store.finished_units() == ["rt3", "dvfs-dense", "oracle", "search:rl", "dense-max"]
    assert got["rt3"] == SIM and got["dvfs-dense"] == HIL and got["oracle"] == _compressed()
    assert got["search:rl"] == _search()
    back = got["dense-max"]
    assert isinstance(back, StrategyResult) and math.isnan(back.accuracy_time_weighted) and back.miss_rate == 0.0


def test_a_bad_stored_result_names_the_key() -> None:
    d = SIM.to_dict()
    del d["life_s"]
    with pytest.raises(BadInputError, match=r"'rt3'.*missing key 'life_s'"):
        StrategyResult.from_dict(d)
    with pytest.raises(BadInputError, match=r"inferences='many' is not valid"):
        StrategyResult.from_dict({**SIM.to_dict(), "inferences": "many"})
    with pytest.raises(BadInputError, match="compressed"):
        StrategyResult.from_dict({**SIM.to_dict(), "compressed": "yes"})
