"""The answer's parts: profile quality, the derived deadline, the oracle's bound, search sets, the headline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.errors import BadInputError
from testbed.experiment.config import StrategyCfg, load_experiment
from testbed.experiment.deadline import derive_deadline
from testbed.experiment.quality import assess, monotonicity_violations
from testbed.experiment.runner import run_experiment
from testbed.experiment.search_sets import rt3_sets_from_search
from testbed.experiment.strategy import make_plan, oracle_rule, period_energy_j
from testbed.paths import profile_table_path
from tests.experiment.helpers import flat_profile, write_experiment
from traces.profile import ProfileRow, build_table, load_profile_table

LEVELS = {"hi": (1_500_000, 4.0, 2.0), "mid": (1_000_000, 3.0, 1.8), "lo": (600_000, 2.5, 1.6)}
SETS = {
    "dense": (0.0, 0.90, {"hi": 10.0, "mid": 15.0, "lo": 25.0}),
    "s50": (0.5, 0.88, {"hi": 6.0, "mid": 9.0, "lo": 14.0}),
    "s75": (0.75, 0.80, {"hi": 4.0, "mid": 6.0, "lo": 9.0}),
}


def test_the_bundled_modelled_profile_is_monotone_and_says_it_is_modelled() -> None:
    q = assess(load_profile_table(profile_table_path("rpi4")))
    assert q.monotone and q.origin == "modelled" and q.verdict() == "modelled"
    assert "modelled rpi4 profile" in q.provenance() and q.to_dict()["monotone"] is True


def test_a_faster_level_that_is_slower_breaks_monotonicity() -> None:
    rows = []
    for lv, f, p99 in (("f1500", 1_500_000, 12.8), ("f600", 600_000, 8.2)):  # the profile
        rows.append(ProfileRow("dense", lv, f, 0.0, 0.9, 5.0, 6.0, p99, 0.01, 4.0, 4.0, 3.0, 0, 3))
    t = build_table(rows, {"source": "measured through the device agent (emulated board)", "host_load_max": "2.6",
                           "rel_ci": "0.05", "max_rel_ci": "0.2"})  # fmt: skip
    assert [v[1] for v in monotonicity_violations(t)] == ["f600→f1500"]
    q = assess(t)
    assert not q.monotone and q.ci_met is False and q.flagged and q.origin == "emulated"
    assert "host load 2.60" in q.verdict() and "under host load 2.60" in q.provenance()


def test_derived_deadline_is_met_by_dense_at_the_top_and_sparsest_at_the_bottom(tmp_path: Path) -> None:
    t = load_profile_table(flat_profile(tmp_path / "p.csv", LEVELS, SETS))
    d = derive_deadline(t)
    assert d.deadline_ms is not None
    assert t.get("dense", "hi").latency_p99_ms <= d.deadline_ms and t.get("s75", "lo").latency_p99_ms <= d.deadline_ms
    assert t.get("dense", "lo").latency_p99_ms > d.deadline_ms
    flat = {k: (sp, acc, {lv: 5.0 for lv in LEVELS}) for k, (sp, acc, _) in SETS.items()}
    none = derive_deadline(load_profile_table(flat_profile(tmp_path / "q.csv", LEVELS, flat)))
    assert none.deadline_ms is None and "no deadline exists" in none.rule
    with pytest.raises(BadInputError):
        derive_deadline(t, ["nope"])


def test_the_oracle_never_spends_more_per_request_than_rt3(tmp_path: Path) -> None:
    """rt3 forced onto sets that miss the deadline at ``mid`` and ``lo`` is cheaper there than every feasible
    pair at its accuracy: the bound still takes rt3's own pair rather than a dearer one."""
    t = load_profile_table(flat_profile(tmp_path / "p.csv", LEVELS, SETS))
    cfg = StrategyCfg(rt3_sets={"hi": "dense", "mid": "dense", "lo": "s50"})
    rt3 = make_plan("rt3", t, list(LEVELS), 12.0, 0.05, cfg)
    oracle = make_plan("oracle", t, list(LEVELS), 12.0, 0.05, cfg)
    for lv in LEVELS:
        (o_lv, o_ps), (r_lv, r_ps) = oracle.choice[lv], rt3.choice[lv]
        assert period_energy_j(t, o_ps, o_lv, 0.05) <= period_energy_j(t, r_ps, r_lv, 0.05) + 1e-12
    assert "rt3's at the same policy level" in oracle_rule(cfg)
    assert "0.85" in oracle_rule(StrategyCfg(min_accuracy=0.85))


def test_rt3_runs_the_sets_the_search_chose(tmp_path: Path) -> None:
    t = load_profile_table(flat_profile(tmp_path / "p.csv", LEVELS, SETS))
    best = tmp_path / "search" / "best.json"
    best.parent.mkdir()
    best.write_text(json.dumps({"levels": [{"level": "hi", "sparsity": 0.5}, {"level": "lo", "sparsity": 0.75}]}))
    assert rt3_sets_from_search(best.parent, t) == {"hi": "s50", "lo": "s75"}
    best.write_text(json.dumps({"levels": [{"level": "hi", "sparsity": 0.6}]}))
    with pytest.raises(BadInputError, match=r"profile the search's best\.rt3"):
        rt3_sets_from_search(best, t)


def test_a_run_states_its_headline_quality_and_oracle_rule(tmp_path: Path) -> None:
    profile = flat_profile(tmp_path / "p.csv", LEVELS, SETS)
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"levels": [{"level": lv, "sparsity": 0.5} for lv in LEVELS]}))
    exp = write_experiment(
        tmp_path / "e.toml",
        f"""
name = "answer"
strategies = ["dense-max", "static-sparse", "rt3", "oracle"]
[profile]
table = "{profile}"
[requests]
period_ms = 50.0
deadline_ms = 12.0
[battery]
model = "bucket"
energy_j = 40.0
[policy]
thresholds = [0.5, 0.2]
levels = ["hi", "mid", "lo"]
[strategy]
search_result = "{best}"
""",
    )
    results = run_experiment(load_experiment(exp), tmp_path / "run")
    assert set(results["rt3"].time_at_set_s) == {"s50"}  # exactly the search's sets
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["profile_quality"]["monotone"] is True
    assert summary["headline"].startswith("rt3 lasted ") and "as long as dense-max" in summary["headline"]
    assert "oracle" in summary["headline"] and "accuracy 0.880 vs 0.900" in summary["headline"]
    assert summary["oracle_rule"].startswith("oracle: ")
    assert results["oracle"].life_s >= results["rt3"].life_s * 0.999
