"""Hardware in the loop: the ECM as battery term, and a search measured through an emulated board's agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.errors import BadInputError
from testbed.agent.launch import start_local_agent
from testbed.search.agent_latency import AgentLatency, masks_digest
from testbed.search.compare import BUNDLED_ACCURACY_TABLE
from testbed.search.layerspace import RT3_DEADLINES_MS, TableEvaluator, load_accuracy_table, opcount_cost_table
from testbed.search.problem import SearchConfig
from testbed.search.reward import RewardConfig, battery_runs, ecm_level_times_s, ecm_runs
from testbed.search.runner import search_run

from .conftest import SMALL, make_problem


def test_ecm_runs_fall_short_of_the_ideal_bucket_and_follow_latency() -> None:
    power = [0.215, 0.114, 0.079]
    split = [0.5, 0.3, 0.2]
    times = ecm_level_times_s("phone-lco", tuple(split), tuple(power))
    assert all(t > 0 for t in times)
    lat = [100.0, 100.0, 100.0]
    ecm = ecm_runs("phone-lco", split, power, lat)
    assert ecm == [int(t * 1000 // 100.0) for t in times]
    assert ecm_runs("phone-lco", split, power, [50.0, 50.0, 50.0])[0] == pytest.approx(2 * ecm[0], abs=1)
    # a phone cell (about 33 kJ) with losses affords fewer runs than RT3's ideal 37.8 kJ bucket
    assert sum(ecm) < sum(battery_runs(37800.0, split, power, lat))
    with pytest.raises(BadInputError, match="battery term"):
        RewardConfig(battery_model="peukert")


def test_the_layer_search_scores_with_the_ecm_term() -> None:
    acc = load_accuracy_table(BUNDLED_ACCURACY_TABLE)
    bucket = TableEvaluator(opcount_cost_table(), acc, RT3_DEADLINES_MS)
    ecm = TableEvaluator(opcount_cost_table(), acc, RT3_DEADLINES_MS, RewardConfig(battery_model="ecm"))
    cand = (7,) * 10 + (8,) * 10 + (9,) * 10
    a, b = bucket.evaluate(cand)[0], ecm.evaluate(cand)[0]
    assert a.terms.runs != b.terms.runs and b.terms.runs > 0


@pytest.mark.slow
def test_search_with_agent_measures_each_new_set_once(bp_checkpoint_dir: Path, tmp_path: Path) -> None:
    with start_local_agent(tmp_path / "agent") as agent:
        token = tmp_path / "agent" / "token"
        problem = make_problem(
            bp_checkpoint_dir,
            agent=agent.url,
            agent_token_file=str(token),
            agent_inferences=5,
            deadlines_ms=(1e6,),
            runs_range=(0.0, 1e9),
            acc_range=(0.0, 1.0),
        )
        lat = problem.latency
        assert isinstance(lat, AgentLatency) and lat.source.startswith("measured: agent")
        ev = problem.evaluator
        first, _ = ev.evaluate(ev.space.structured_seeds()[0])
        n = lat.measured_sets
        assert n == problem.space.n_freq_levels  # one artifact per new set, every level measured
        _again, hit = ev.evaluate(ev.space.structured_seeds()[0])
        assert hit and lat.measured_sets == n
        ps = ev.pattern_set(tuple(first.candidate), 0)
        assert (masks_digest(ps), 0) in lat.cache
        assert all(x > 0 for x in first.latency_ms) and all(p > 0 for p in first.power_w)
        lat.close()
        over = {
            "algo": "structured",
            "budget": 3,
            "agent": agent.url,
            "agent_token_file": str(token),
            "agent_inferences": 5,
            "deadlines_ms": (1e6,),
            "runs_range": (0.0, 1e9),
            "acc_range": (0.0, 1.0),
        }
        out = search_run(
            tmp_path / "search",
            ckpt=bp_checkpoint_dir,
            cfg=SearchConfig(**{**SMALL, **over}),  # type: ignore[arg-type]
            artifact=False,
        )
        assert out.summary.latency_source.startswith("measured: agent")
        assert out.summary.evaluations == 3
