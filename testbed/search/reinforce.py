"""REINFORCE for the LSTM controller: moving-average baseline, entropy bonus, seeded sampling.

Per proposal (RT3: one child per episode)::

    advantage = (reward − baseline) / moving RMS of the advantages (0 for the first reward)
    loss      = −advantage · log π(candidate) − entropy_weight · H(π along the candidate)
    baseline ← decay · baseline + (1 − decay) · reward          (the first reward initialises it)

The advantage is scaled by a moving RMS (same decay) so that the step size does not depend on the reward's
units (RT3's rewards span about ±1; a toy table or another weighting may not).

Adam with optional staircase decay of the learning rate (RT3: ×0.5 every 50 steps, with RMSProp). Sampling
uses a private :class:`torch.Generator`, whose state is part of :meth:`Reinforce.state_dict` together with the
policy, the optimizer, the baseline and the step count, so a resumed search continues exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from devices.errors import BadInputError
from testbed.search.controller import LSTMPolicy
from testbed.search.space import Candidate


@dataclass(frozen=True)
class ReinforceConfig:
    """Controller and learning settings (hidden 35 as RT3; the rest chosen on the toy and demo problems)."""

    hidden: int = 35
    lr: float = 0.003
    baseline_decay: float = 0.9
    entropy_weight: float = 0.01
    grad_clip: float = 5.0
    lr_decay: float = 1.0
    lr_decay_every: int = 50
    optimizer: str = "adam"  # adam | rmsprop (RT3's)

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "rmsprop"):
            raise BadInputError(f"RL optimizer {self.optimizer!r}: choose adam or rmsprop")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise BadInputError(f"baseline decay must be in [0, 1), got {self.baseline_decay}")
        if self.lr <= 0 or self.hidden < 1 or self.lr_decay_every < 1:
            raise BadInputError("lr, hidden and lr_decay_every must be positive")
        if self.entropy_weight < 0:
            raise BadInputError(f"entropy weight must be ≥ 0, got {self.entropy_weight}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Reinforce:
    """The RL searcher (:class:`~testbed.search.searcher.Searcher`) over decisions with ``sizes`` options."""

    name = "rl"

    def __init__(self, sizes: Sequence[int], seed: int = 0, config: ReinforceConfig | None = None) -> None:
        self.config = config or ReinforceConfig()
        torch.manual_seed(seed)  # initial weights
        self.policy = LSTMPolicy(sizes, hidden=self.config.hidden)
        opt = torch.optim.Adam if self.config.optimizer == "adam" else torch.optim.RMSprop
        self.optimizer: torch.optim.Optimizer = opt(self.policy.parameters(), lr=self.config.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=self.config.lr_decay_every, gamma=self.config.lr_decay
        )
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline: float | None = None
        self.sq_dev = 0.0
        self.steps = 0
        self.last_loss = 0.0

    def ask(self) -> Candidate:
        return tuple(self.policy.sample(self.generator))

    def tell(self, candidate: Candidate, reward: float) -> None:
        """One policy-gradient step on ``candidate`` with ``reward``, then update the baseline."""
        baseline = reward if self.baseline is None else self.baseline
        advantage = reward - baseline
        d = self.config.baseline_decay
        self.sq_dev = d * self.sq_dev + (1.0 - d) * advantage * advantage
        advantage = advantage / (self.sq_dev**0.5 + 1e-8) if self.steps > 0 else 0.0
        log_prob, entropy = self.policy.log_prob(candidate)
        loss = -advantage * log_prob - self.config.entropy_weight * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.baseline = d * baseline + (1.0 - d) * reward
        self.steps += 1
        self.last_loss = float(loss.detach())

    def probabilities(self, candidate: Candidate) -> float:
        """Probability the policy assigns to ``candidate`` (for tests and reports)."""
        with torch.no_grad():
            return float(self.policy.log_prob(candidate)[0].exp())

    def state_dict(self) -> dict[str, Any]:
        """A deep copy of everything that decides later proposals (tensors are not shared with the live state)."""
        return copy.deepcopy(
            {
                "policy": self.policy.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "generator": self.generator.get_state(),
                "baseline": self.baseline,
                "sq_dev": self.sq_dev,
                "steps": self.steps,
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]
        self.sq_dev = float(state["sq_dev"])
        self.steps = int(state["steps"])
