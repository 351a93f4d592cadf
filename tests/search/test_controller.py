from __future__ import annotations

import itertools
import math

import pytest
import torch

from devices.errors import BadInputError
from testbed.search.controller import LSTMPolicy
from testbed.search.reinforce import Reinforce, ReinforceConfig

SIZES = [4, 3, 5]
#: A fixed reward table with one clear optimum: reward = Σ TABLE[i][a_i]; argmax = (2, 0, 4).
TABLE = [[0.1, 0.3, 1.0, 0.0], [0.9, 0.2, 0.4], [0.0, 0.2, 0.1, 0.3, 1.0]]
OPTIMUM = (2, 0, 4)


def _reward(c: tuple[int, ...]) -> float:
    return sum(TABLE[i][a] for i, a in enumerate(c))


def test_policy_is_a_distribution_over_all_sequences() -> None:
    torch.manual_seed(0)
    pol = LSTMPolicy(SIZES, hidden=8)
    total = sum(math.exp(float(pol.log_prob(c)[0].detach())) for c in itertools.product(*(range(n) for n in SIZES)))
    assert total == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(BadInputError):
        pol.log_prob((0, 0, 5))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reinforce_converges_to_the_argmax_of_a_fixed_table(seed: int) -> None:
    rl = Reinforce(SIZES, seed=seed)
    before = rl.probabilities(OPTIMUM)
    for _ in range(400):
        c = rl.ask()
        rl.tell(c, _reward(c))
    assert before < 0.05
    assert rl.probabilities(OPTIMUM) > 0.9
    assert tuple(rl.policy.greedy()) == OPTIMUM


def test_without_reward_signal_the_policy_stays_spread() -> None:
    rl = Reinforce(SIZES, seed=0, config=ReinforceConfig(entropy_weight=0.0))
    for _ in range(200):
        rl.tell(rl.ask(), 1.0)  # constant reward: zero advantage, no learning
    assert rl.probabilities(OPTIMUM) < 0.05


def test_state_dict_round_trip_continues_the_same_sequence() -> None:
    a = Reinforce(SIZES, seed=3)
    for _ in range(20):
        c = a.ask()
        a.tell(c, _reward(c))
    b = Reinforce(SIZES, seed=99)
    b.load_state_dict(a.state_dict())
    seq_a: list[tuple[int, ...]] = []
    seq_b: list[tuple[int, ...]] = []
    for rl, seq in ((a, seq_a), (b, seq_b)):
        for _ in range(15):
            c = rl.ask()
            rl.tell(c, _reward(c))
            seq.append(c)
    assert seq_a == seq_b


def test_factorised_policy_is_a_distribution_and_shares_level_vectors() -> None:
    from testbed.search.controller import FactorisedPolicy

    pol = FactorisedPolicy(SIZES)
    with torch.no_grad():
        for p in pol.parameters():
            p.uniform_(-1, 1)
    with torch.no_grad():
        total = sum(math.exp(float(pol.log_prob(c)[0])) for c in itertools.product(*(range(n) for n in SIZES)))
    assert total == pytest.approx(1.0, abs=1e-5)
    # two levels × two layers of 4 options: one shared vector per level and per layer
    ctx = [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    shared = FactorisedPolicy([4, 4, 4, 4], ctx)
    assert sorted(shared.shared.keys()) == ["layera_4", "layerb_4", "level0_4", "level1_4"]
    with torch.no_grad():
        shared.shared["level1_4"][3] = 5.0
    assert shared.greedy() == [0, 0, 3, 3]  # the level vector moves both of level 1's decisions
    steps, _ = shared.step_log_probs([0, 0, 3, 3])
    assert steps.shape == (4,) and float(steps.sum().detach()) == pytest.approx(
        float(shared.log_prob([0, 0, 3, 3])[0].detach())
    )


@pytest.mark.parametrize("policy", ["factorised", "lstm"])
def test_batched_reinforce_converges_and_resumes_mid_batch(policy: str) -> None:
    cfg = ReinforceConfig(policy=policy, batch=5, lr=0.1 if policy == "factorised" else 0.01, entropy_weight=0.0)
    rl = Reinforce(SIZES, seed=0, config=cfg)
    for _ in range(300):
        c = rl.ask()
        rl.tell(c, _reward(c))
    assert tuple(rl.policy.greedy()) == OPTIMUM
    for _ in range(2):  # leave a part-filled batch
        c = rl.ask()
        rl.tell(c, _reward(c))
    twin = Reinforce(SIZES, seed=7, config=cfg)
    twin.load_state_dict(rl.state_dict())
    assert twin.pending == rl.pending and len(rl.pending) == 2
    for _ in range(8):
        a, b = rl.ask(), twin.ask()
        assert a == b
        rl.tell(a, _reward(a))
        twin.tell(b, _reward(b))


def test_shaped_and_soft_deadline_learning_rewards_and_per_level_credit() -> None:
    from testbed.search.layerspace import LayerAccuracyTable, LayerCostTable, TableEvaluator
    from testbed.search.runner import run_search

    levels = (0.0, 0.5, 0.75)
    # two layers, two frequency levels; latency falls with sparsity, accuracy too
    lat = (((4.0, 8.0), (2.0, 4.0), (1.0, 2.0)), ((4.0, 8.0), (2.0, 4.0), (1.0, 2.0)))
    cost = LayerCostTable(("a", "b"), levels, ("hi", "lo"), lat, (0.0, 0.0), (2.0, 1.0), "test")
    acc = LayerAccuracyTable(("a", "b"), levels, 0.9, ((0.0, 0.05, 0.2), (0.0, 0.01, 0.02)), "test")
    ev = TableEvaluator(cost, acc, (6.0, 6.0))
    over, _ = ev.evaluate((0, 0, 2, 2))  # level hi: 8 ms > 6 ms
    assert over.terms.accuracy_term == -1.0
    rc = ev.reward_config
    seen = []
    for cfg in (
        ReinforceConfig(batch=2, shaped=True),
        ReinforceConfig(batch=2, soft_deadline=10.0),
        ReinforceConfig(batch=2, credit="per-level", soft_deadline=10.0),
    ):
        rl = Reinforce([3] * 4, config=cfg, decisions=ev.space.decisions)
        rl.tell_evaluation((0, 0, 2, 2), over, ev.deadlines_ms, rc)
        seen.append(rl.pending[0])
    excess = 8.0 / 6.0 - 1.0
    assert seen[0][1] == pytest.approx(over.reward - excess)
    as_met = (over.terms.weighted_accuracy - rc.acc_low) / (rc.acc_high - rc.acc_low)
    assert seen[1][1] == pytest.approx(over.reward + 1.0 + as_met - 10.0 * excess)
    per_level = seen[2][2]
    assert per_level is not None and len(per_level) == 2
    assert per_level[0] == pytest.approx(
        rc.weights(2)[0] * over.accuracy[0] / (rc.acc_high - rc.acc_low)
        - 10.0 * excess
        + over.terms.runs_per_level[0] / (rc.runs_high - rc.runs_low)
    )
    # the whole loop: per-level credit finds the best of the 81 candidates
    best = max(ev.evaluate(c)[0].reward for c in itertools.product(range(3), repeat=4))
    rl = Reinforce(
        ev.space.sizes,
        seed=0,
        config=ReinforceConfig(policy="factorised", batch=5, lr=0.3, credit="per-level", soft_deadline=3.0),
        decisions=ev.space.decisions,
    )
    res = run_search(rl, TableEvaluator(cost, acc, (6.0, 6.0)), 40)
    assert res.best.reward == pytest.approx(best)
    with pytest.raises(BadInputError, match="per-level"):
        ReinforceConfig(credit="per-level")  # needs a batch
    with pytest.raises(BadInputError, match="policy"):
        ReinforceConfig(policy="gru")
