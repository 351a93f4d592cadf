"""REINFORCE for the search controllers: baselines, batches, per-level credit, shaped learning, seeded sampling.

Per proposal (RT3: one child per episode)::

    advantage = (reward − baseline) / moving RMS of the advantages (0 for the first reward)
    loss      = −advantage · log π(candidate) − entropy_weight · H(π along the candidate)
    baseline ← decay · baseline + (1 − decay) · reward          (the first reward initialises it)

The advantage is scaled by a moving RMS (same decay) so that the step size does not depend on the reward's
units (RT3's rewards span about ±1; a toy table or another weighting may not).

With ``batch`` > 1 the controller draws ``batch`` candidates, then takes ONE step on their mean loss with the
batch's own mean as baseline and the advantages divided by the batch's standard deviation (several samples
per update: a far less noisy gradient than one child per step). ``entropy_decay`` multiplies the entropy
weight after every update (annealing). ``shaped`` replaces the flat deadline penalty in what the controller
LEARNS from (never in the reported reward): an infeasible candidate's reward minus
``Σ_k max(0, latency_k / deadline_k − 1)``, so it learns how far from the deadlines it is
(:meth:`Reinforce.tell_evaluation`; the runner calls it when a searcher has it). ``credit`` ``per-level``
splits what is learnt by frequency level: the decisions of level *k* learn from level *k*'s share of the
reward only — ``w_accuracy·w_k·a_k / (acc_high − acc_low)`` when the level meets its deadline, else
``deadline_reward`` (minus its distance with ``shaped``), plus ``w_battery·runs_k / (runs_high − runs_low)``
and the monotonic term — each normalised over the batch (a per-level baseline); decisions without a level
learn from the total. ``soft_deadline`` μ > 0 turns the deadline into a soft constraint for learning (a
Lagrangian relaxation): a level over its deadline keeps its accuracy share and loses ``μ · (latency /
deadline − 1)``, so the policy can sit ON the deadline instead of keeping clear of a −1 cliff; the reported
reward still gives −1. ``policy`` ``lstm`` is RT3's autoregressive controller, ``factorised`` the
independent per-decision logits with shared per-level and per-layer vectors of
:class:`~testbed.search.controller.FactorisedPolicy`, ``ordinal`` the bell over ordered options of
:class:`~testbed.search.controller.OrdinalPolicy` (``min_sd_steps``, ``free_logits``). ``risk_quantile``
ε < 1 (with a batch) makes the baseline the batch's (1 − ε) quantile and ignores the samples below it
(risk-seeking policy gradient: it maximises the best reward rather than the mean). The settings tuned on the
layer space are :data:`testbed.search.compare.TUNED_RL` (the README says how each was chosen).

Adam or RMSProp with optional staircase decay of the learning rate (RT3: ×0.5 every 50 steps, with RMSProp).
Sampling uses a private :class:`torch.Generator`, whose state is part of :meth:`Reinforce.state_dict` together with the
policy, the optimizer, the baseline and the step count, so a resumed search continues exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from devices.errors import BadInputError
from testbed.search.controller import FactorisedPolicy, LSTMPolicy, OrdinalPolicy
from testbed.search.space import Candidate, Decision

if TYPE_CHECKING:
    from testbed.search.evaluator import Evaluation
    from testbed.search.reward import RewardConfig


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
    policy: str = "lstm"  # lstm (RT3's) | factorised | ordinal
    batch: int = 1  # candidates per update (RT3: 1)
    entropy_decay: float = 1.0  # entropy weight × this after every update
    shaped: bool = False  # learn from the distance to the deadlines instead of a flat penalty
    credit: str = "total"  # total | per-level (each level's decisions learn from that level's share)
    soft_deadline: float = 0.0  # > 0: learn from accuracy − this × relative excess (a soft constraint), not −1
    min_sd_steps: float = 0.5  # ordinal policy: the bell's sd never falls below this many option steps
    free_logits: bool = True  # ordinal policy: free per-option logits on top of the bell
    risk_quantile: float = 1.0  # < 1 (batch > 1): learn only from the batch's top share (risk-seeking)

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "rmsprop"):
            raise BadInputError(f"RL optimizer {self.optimizer!r}: choose adam or rmsprop")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise BadInputError(f"baseline decay must be in [0, 1), got {self.baseline_decay}")
        if self.lr <= 0 or self.hidden < 1 or self.lr_decay_every < 1:
            raise BadInputError("lr, hidden and lr_decay_every must be positive")
        if self.policy not in ("lstm", "factorised", "ordinal"):
            raise BadInputError(f"RL policy {self.policy!r}: choose lstm, factorised or ordinal")
        if self.credit not in ("total", "per-level"):
            raise BadInputError(f"RL credit {self.credit!r}: choose total or per-level")
        if self.credit == "per-level" and self.batch < 2:
            raise BadInputError("RL per-level credit needs a batch of at least 2 candidates")
        if self.soft_deadline < 0:
            raise BadInputError(f"RL soft deadline slope must be ≥ 0, got {self.soft_deadline}")
        if not 0.0 < self.risk_quantile <= 1.0:
            raise BadInputError(f"RL risk quantile must be in (0, 1], got {self.risk_quantile}")
        if self.batch < 1 or not 0.0 < self.entropy_decay <= 1.0:
            raise BadInputError("RL batch must be ≥ 1 and entropy decay in (0, 1]")
        if self.entropy_weight < 0:
            raise BadInputError(f"entropy weight must be ≥ 0, got {self.entropy_weight}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Reinforce:
    """The RL searcher (:class:`~testbed.search.searcher.Searcher`) over decisions with ``sizes`` options."""

    name = "rl"

    def __init__(
        self,
        sizes: Sequence[int],
        seed: int = 0,
        config: ReinforceConfig | None = None,
        decisions: Sequence[Decision] | None = None,
    ) -> None:
        self.config = config or ReinforceConfig()
        torch.manual_seed(seed)  # initial weights
        self.policy: LSTMPolicy | FactorisedPolicy | OrdinalPolicy
        context = [(d.level, d.layer) for d in decisions] if decisions is not None else None
        if self.config.policy == "factorised":
            self.policy = FactorisedPolicy(sizes, context)
        elif self.config.policy == "ordinal":
            self.policy = OrdinalPolicy(sizes, context, self.config.min_sd_steps, self.config.free_logits)
        else:
            self.policy = LSTMPolicy(sizes, hidden=self.config.hidden)
        self.decision_levels = [d.level for d in decisions] if decisions is not None else [None] * len(sizes)
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
        self.entropy_weight = self.config.entropy_weight
        self.pending: list[tuple[Candidate, float, tuple[float, ...] | None]] = []

    def ask(self) -> Candidate:
        return tuple(self.policy.sample(self.generator))

    def tell_evaluation(
        self,
        candidate: Candidate,
        evaluation: Evaluation,
        deadlines_ms: Sequence[float],
        reward_config: RewardConfig | None = None,
    ) -> None:
        """:meth:`tell` with what the controller learns from (``shaped``, ``credit``: see the module text)."""
        terms = evaluation.terms
        lat = evaluation.deadline_latency_ms
        soft = self.config.soft_deadline
        shaped = self.config.shaped or soft > 0
        excess = [max(0.0, x / d - 1.0) if shaped else 0.0 for x, d in zip(lat, deadlines_ms, strict=True)]
        reward = evaluation.reward
        if (self.config.credit == "per-level" or soft > 0) and reward_config is None:
            raise BadInputError("per-level credit and a soft deadline need the reward's configuration")
        if not terms.all_deadlines_met and soft > 0 and reward_config is not None:
            rc = reward_config
            as_met = rc.w_accuracy * (terms.weighted_accuracy - rc.acc_low) / (rc.acc_high - rc.acc_low)
            reward += as_met - rc.w_accuracy * terms.accuracy_term - soft * sum(excess)
        elif not terms.all_deadlines_met:
            reward -= sum(excess)
        per_level = None
        if self.config.credit == "per-level" and reward_config is not None:
            rc = reward_config
            k = len(lat)
            w = rc.weights(k)
            acc_span = rc.acc_high - rc.acc_low
            runs_span = rc.runs_high - rc.runs_low
            per_level = tuple(
                (
                    rc.w_accuracy * w[i] * evaluation.accuracy[i] / acc_span
                    if terms.deadline_met[i]
                    else rc.w_accuracy * w[i] * evaluation.accuracy[i] / acc_span - soft * excess[i]
                    if soft > 0
                    else rc.w_accuracy * rc.deadline_reward - excess[i]
                )
                + rc.w_battery * terms.runs_per_level[i] / runs_span
                + terms.monotonic_term
                for i in range(k)
            )
        self._tell(candidate, reward, per_level)

    def tell(self, candidate: Candidate, reward: float) -> None:
        """A policy-gradient step on ``candidate`` with ``reward`` (with ``batch`` > 1: once the batch is full)."""
        self._tell(candidate, reward, None)

    def _tell(self, candidate: Candidate, reward: float, per_level: tuple[float, ...] | None) -> None:
        if self.config.batch > 1:
            self.pending.append((tuple(candidate), float(reward), per_level))
            if len(self.pending) >= self.config.batch:
                self._batch_step()
            return
        baseline = reward if self.baseline is None else self.baseline
        advantage = reward - baseline
        d = self.config.baseline_decay
        self.sq_dev = d * self.sq_dev + (1.0 - d) * advantage * advantage
        advantage = advantage / (self.sq_dev**0.5 + 1e-8) if self.steps > 0 else 0.0
        log_prob, entropy = self.policy.log_prob(candidate)
        loss = -advantage * log_prob - self.entropy_weight * entropy
        self._step(loss)
        self.baseline = d * baseline + (1.0 - d) * reward

    def _batch_step(self) -> None:
        rewards = torch.tensor([r for _, r, _ in self.pending], dtype=torch.float64)
        eps = self.config.risk_quantile
        total = _normalised(rewards, eps)
        levels = [lv for _, _, lv in self.pending]
        per_level = (
            _normalised(torch.tensor(levels, dtype=torch.float64), eps)
            if all(lv is not None for lv in levels)
            else None
        )
        loss = torch.zeros(())
        for b, (cand, _, _) in enumerate(self.pending):
            steps, entropy = self.policy.step_log_probs(cand)
            adv = [
                float(per_level[b, lv]) if per_level is not None and lv is not None else float(total[b])
                for lv in self.decision_levels
            ]
            loss = loss - (torch.tensor(adv, dtype=steps.dtype) * steps).sum() - self.entropy_weight * entropy
        loss = loss / len(self.pending)
        self._step(loss)
        self.baseline = float(rewards.mean())
        self.pending = []

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.entropy_weight *= self.config.entropy_decay
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
                "entropy_weight": self.entropy_weight,
                "pending": list(self.pending),
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
        self.entropy_weight = float(state.get("entropy_weight", self.config.entropy_weight))
        self.pending = [
            (tuple(c), float(r), None if lv is None else tuple(lv)) for c, r, lv in state.get("pending", [])
        ]


def _normalised(values: torch.Tensor, risk_quantile: float = 1.0) -> torch.Tensor:
    """``(x − mean) / sd`` along the batch (dim 0); zeros where the batch does not vary.

    With ``risk_quantile`` ε < 1 the baseline is the batch's (1 − ε) quantile and samples below it get 0
    (risk-seeking policy gradient: the policy learns from its best ε of samples only, which maximises the
    best reward found rather than the mean)."""
    if risk_quantile < 1.0:
        q = torch.quantile(values, 1.0 - risk_quantile, dim=0)
        centred = (values - q).clamp_min(0.0)
    else:
        centred = values - values.mean(dim=0)
    sd = values.std(dim=0) if len(values) > 1 else torch.zeros_like(values[0])
    return torch.where(sd > 1e-12, centred / sd.clamp_min(1e-12), torch.zeros_like(centred))
