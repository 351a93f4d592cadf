"""The exact optimum of the layer space equals brute force; the diagnosis explains the comparison; the ordinal
policy and the risk-seeking baseline behave as documented."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch

from devices.errors import BadInputError
from testbed.search.compare import BUNDLED_ACCURACY_TABLE, compare_tables, main
from testbed.search.compare_report import diagnosis_table
from testbed.search.controller import OrdinalPolicy
from testbed.search.diagnose import diagnose_space, first_feasible
from testbed.search.layerspace import (
    LayerAccuracyTable,
    LayerCostTable,
    TableEvaluator,
    load_accuracy_table,
    opcount_cost_table,
)
from testbed.search.memory import packed_memory_term
from testbed.search.optimum import exact_optimum, level_fronts
from testbed.search.reinforce import Reinforce, ReinforceConfig, _normalised

LEVELS = (0.0, 0.5, 0.9)


def _tiny(deadlines: tuple[float, ...] = (9.0, 11.0)) -> TableEvaluator:
    """3 layers × 3 sparsities × 2 frequency levels: 3⁶ = 729 candidates, small enough for brute force."""
    base = [[6.0, 3.0, 1.0], [4.0, 2.5, 0.5], [2.0, 1.0, 0.2]]
    lat = tuple(tuple((b, 1.6 * b) for b in row) for row in base)
    cost = LayerCostTable(
        ("a", "b", "c"), LEVELS, ("fast", "slow"), lat, (0.5, 0.8), (2.0, 1.0), "test: hand-made table"
    )
    drops = ((0.0, 0.05, 0.3), (0.0, 0.02, 0.1), (0.0, 0.01, 0.04))
    acc = LayerAccuracyTable(("a", "b", "c"), LEVELS, 0.6, drops, "test table")
    return TableEvaluator(cost, acc, deadlines)


@pytest.mark.parametrize("deadlines", [(9.0, 11.0), (6.0, 7.0), (20.0, 30.0)])
def test_exact_optimum_equals_brute_force_over_every_candidate(deadlines: tuple[float, ...]) -> None:
    ev = _tiny(deadlines)
    brute = max(ev.evaluate(c)[0].reward for c in itertools.product(range(3), repeat=6))
    opt = exact_optimum(_tiny(deadlines))
    assert opt.reward == pytest.approx(brute, abs=1e-12)
    assert ev.evaluate(opt.candidate)[0].reward == pytest.approx(opt.reward, abs=1e-12)


def test_fronts_are_pareto_and_the_optimum_refuses_a_memory_term() -> None:
    ev = _tiny()
    for f in level_fronts(ev):
        pairs = list(zip(f.latency_ms, f.drop, strict=True))
        assert all(b[0] >= a[0] and b[1] < a[1] for a, b in itertools.pairwise(pairs))  # faster ⇒ larger drop
    rt3 = TableEvaluator(opcount_cost_table(), load_accuracy_table(BUNDLED_ACCURACY_TABLE), (115.0, 104.0, 94.0))
    opt = exact_optimum(rt3)
    assert all(lat <= d for lat, d in zip(opt.latency_ms, (115.0, 104.0, 94.0), strict=True))
    assert math.fsum(opt.level_values) > opt.reward  # the constants of the reward are negative
    with_memory = TableEvaluator(
        opcount_cost_table(), load_accuracy_table(BUNDLED_ACCURACY_TABLE), (115.0,), memory=packed_memory_term(1.0)
    )
    with pytest.raises(BadInputError, match="memory"):
        exact_optimum(with_memory)
    with pytest.raises(BadInputError, match="feasible"):
        exact_optimum(_tiny((0.1, 0.1)))


def test_diagnosis_of_the_space_and_of_the_runs() -> None:
    ev = _tiny()
    diag = diagnose_space(ev, samples=2000)
    assert ev.n_evaluations == 0  # the caller's memo is untouched
    assert 0.0 < diag.random_feasible_share <= min(diag.random_level_feasible_share)
    assert len(diag.variance.per_decision) == 6 and diag.structured_seed_evaluations == 3  # C(3, 2)
    assert diag.variance.interactions == pytest.approx(1 - sum(diag.variance.per_decision))
    ev.evaluate((2, 2, 2, 2, 2, 2))
    ev.evaluate((0, 0, 0, 0, 0, 0))
    assert first_feasible(list(ev.memo.values())) == 1


@pytest.mark.slow
def test_the_comparison_reports_each_algorithms_gap_to_the_optimum() -> None:
    out = compare_tables(
        opcount_cost_table(), load_accuracy_table(BUNDLED_ACCURACY_TABLE), ["structured", "random"], [0, 1], budget=40
    )
    opt = out["diagnosis"]["optimum"]["reward"]
    for algo in ("structured", "random"):
        gaps = out["summary"][algo]["gap_to_optimum"]
        best = [r["best_reward"] for r in out["runs"] if r["algo"] == algo]
        assert gaps["gap_mean"] == pytest.approx(opt - sum(best) / 2) and gaps["gap_mean"] >= 0
    table = diagnosis_table(json.loads(json.dumps(out)))
    assert f"Exact optimum of the space {opt:+.4f}" in table and "| structured | " in table


@pytest.mark.slow
def test_python_m_compare_draws_the_why_figure_and_refuses_it_with_a_memory_term(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fig, tab = tmp_path / "why.png", tmp_path / "t.md"
    args = ["--budget", "12", "--seeds", "0,1", "--algos", "structured,rl-factorised"]
    assert main([*args, "--why-figure", str(fig), "--table", str(tab)]) == 0
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Exact optimum of the space" in tab.read_text() and "| rl-factorised |" in tab.read_text()
    bad = tmp_path / "bad.png"
    assert main([*args, "--memory-weight", "1", "--why-figure", str(bad)]) == 2
    assert not bad.exists() and "memory term" in capsys.readouterr().err


def test_ordinal_policy_is_a_distribution_and_its_spread_has_a_floor() -> None:
    sizes = [4, 3, 5]
    pol = OrdinalPolicy(sizes, [(0, "a"), (0, "b"), (1, "a")])
    total = sum(math.exp(float(pol.log_prob(c)[0].detach())) for c in itertools.product(*(range(n) for n in sizes)))
    assert total == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():  # push every centre to the last option and the precision far past its cap
        pol.loc.fill_(50.0)
        pol.log_prec.fill_(50.0)
        pol.theta.zero_()
    logits = pol.all_logits().detach()
    p_last = [float(torch.softmax(logits[i, :n], -1)[-1]) for i, n in enumerate(sizes)]
    assert all(0.5 < p < 0.95 for p in p_last)  # σ ≥ half a step: the neighbour keeps its share
    with pytest.raises(BadInputError):
        OrdinalPolicy(sizes, min_sd_steps=0.0)


def test_ordinal_reinforce_climbs_an_ordered_reward_and_resumes() -> None:
    sizes = [10] * 6
    cfg = ReinforceConfig(policy="ordinal", batch=5, lr=0.2, entropy_weight=0.0)

    def reward(c: tuple[int, ...]) -> float:
        return -sum(abs(a - 7) for a in c)  # best: every decision at option 7

    rl = Reinforce(sizes, seed=0, config=cfg)
    for _ in range(300):
        c = rl.ask()
        rl.tell(c, reward(c))
    assert sum(abs(g - 7) for g in rl.policy.greedy()) <= 1  # the bell's mode sits on the optimum (± one step)
    twin = Reinforce(sizes, seed=5, config=cfg)
    twin.load_state_dict(rl.state_dict())
    assert [rl.ask() for _ in range(5)] == [twin.ask() for _ in range(5)]


def test_risk_seeking_baseline_learns_from_the_top_share_only() -> None:
    r = torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0], dtype=torch.float64)
    adv = _normalised(r, risk_quantile=0.4)
    assert (adv[:3] == 0).all() and 0 < adv[3] < adv[4]
    assert torch.allclose(_normalised(r), (r - r.mean()) / r.std())
    with pytest.raises(BadInputError, match="risk"):
        ReinforceConfig(risk_quantile=0.0)
