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
    seq_a, seq_b = [], []
    for rl, seq in ((a, seq_a), (b, seq_b)):
        for _ in range(15):
            c = rl.ask()
            rl.tell(c, _reward(c))
            seq.append(c)
    assert seq_a == seq_b
