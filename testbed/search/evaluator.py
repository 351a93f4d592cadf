"""Evaluation of candidates: build the K pattern sets, their accuracy, latency per level, reward — with a memo.

Two memos:

* the **candidate memo** (key :meth:`SearchSpace.key`): a candidate seen before is never evaluated again; its
  stored :class:`Evaluation` is returned and flagged as a memo hit (RT3's memo of explored children);
* the **pattern-set cache** (mask-only accuracy): candidates share pattern sets, so a set's masks, sparsity and
  accuracy are kept by set key (LRU, ``set_cache_size`` entries).

Accuracy modes (:class:`AccuracyConfig`): ``mask`` evaluates each set's masks on the frozen backbone;
``finetune`` first fine-tunes a copy of the backbone jointly on the K sets (RT3: one short epoch per child,
loss weights 0.5/0.3/0.2), which is slower and makes the set cache useless.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from devices.errors import BadInputError
from testbed.rt3.pp import PatternSet, default_loss_weights
from testbed.rt3.search_api import PatternSearchAPI
from testbed.rt3.train import TrainConfig, evaluate, train
from testbed.search.latency import LatencyModel, LevelCost
from testbed.search.reward import RewardConfig, RewardTerms, compute_reward
from testbed.search.space import Candidate, CandidateKey, SearchSpace


@dataclass(frozen=True)
class AccuracyConfig:
    """How accuracy is measured: ``mode`` mask|finetune, eval batches (None = whole split), fine-tune settings."""

    mode: str = "mask"
    eval_batches: int | None = 4
    finetune_steps: int = 20
    finetune_lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("mask", "finetune"):
            raise BadInputError(f"accuracy mode {self.mode!r}: choose mask or finetune")
        if self.eval_batches is not None and self.eval_batches < 1:
            raise BadInputError(f"eval batches must be ≥ 1, got {self.eval_batches}")
        if self.finetune_steps < 1:
            raise BadInputError(f"fine-tune steps must be ≥ 1, got {self.finetune_steps}")


@dataclass
class Evaluation:
    """One evaluated candidate: per level (fastest first) its set's sparsity, accuracy and cost; the reward."""

    candidate: list[int]
    index: int  # 0-based order of distinct evaluations
    sparsity: list[float]
    accuracy: list[float]
    latency_ms: list[float]
    deadline_latency_ms: list[float]
    power_w: list[float]
    extrapolated: list[bool]
    terms: RewardTerms
    eval_s: float
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def reward(self) -> float:
        return self.terms.reward

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evaluation:
        return cls(**{**d, "terms": RewardTerms(**d["terms"])})


class CandidateEvaluator:
    """Evaluates candidates of ``space`` on ``api`` with a latency model, deadlines and a reward configuration.

    Raises :class:`BadInputError` when the deadlines do not match the latency model's levels.
    """

    def __init__(
        self,
        api: PatternSearchAPI,
        space: SearchSpace,
        latency: LatencyModel,
        deadlines_ms: Sequence[float],
        reward: RewardConfig,
        accuracy: AccuracyConfig | None = None,
        set_cache_size: int = 256,
    ) -> None:
        k = len(latency.level_names)
        if space.n_freq_levels != k:
            raise BadInputError(f"the space has {space.n_freq_levels} frequency levels, the latency model {k}")
        if len(deadlines_ms) != k or any(d <= 0 for d in deadlines_ms):
            raise BadInputError(f"need {k} positive deadlines (one per level), got {list(deadlines_ms)}")
        self.api = api
        self.space = space
        self.latency = latency
        self.deadlines_ms = [float(d) for d in deadlines_ms]
        self.reward_config = reward
        self.accuracy_config = accuracy or AccuracyConfig()
        self.memo: dict[CandidateKey, Evaluation] = {}
        self.hits = 0
        self._sets: OrderedDict[tuple[int, tuple[int | None, ...]], tuple[PatternSet, float | None]] = OrderedDict()
        self._cache_size = set_cache_size

    @property
    def n_evaluations(self) -> int:
        """Distinct candidates evaluated so far."""
        return len(self.memo)

    # -- pattern sets ----------------------------------------------------------------------------------------

    def pattern_set(self, candidate: Candidate, k: int) -> PatternSet:
        """The pattern set of level ``k`` (built once, then cached)."""
        return self._set_entry(candidate, k)[0]

    def _set_entry(self, candidate: Candidate, k: int) -> tuple[PatternSet, float | None]:
        key = self.space.set_key(candidate, k)
        hit = self._sets.get(key)
        if hit is not None:
            self._sets.move_to_end(key)
            return hit
        ps = self.api.build(self.space.choices(candidate)[k], name=f"L{k}")
        entry: tuple[PatternSet, float | None] = (ps, None)
        self._put(key, entry)
        return entry

    def _put(self, key: tuple[int, tuple[int | None, ...]], entry: tuple[PatternSet, float | None]) -> None:
        self._sets[key] = entry
        self._sets.move_to_end(key)
        while len(self._sets) > self._cache_size:
            self._sets.popitem(last=False)

    def _mask_accuracy(self, candidate: Candidate, k: int) -> float:
        ps, acc = self._set_entry(candidate, k)
        if acc is None:
            acc = self.api.accuracy(ps, max_batches=self.accuracy_config.eval_batches)
            self._put(self.space.set_key(candidate, k), (ps, acc))
        return acc

    def _finetuned_accuracies(self, sets: list[PatternSet]) -> list[float]:
        cfg = self.accuracy_config
        model = copy.deepcopy(self.api.model)
        train(
            model,
            self.api.task,
            TrainConfig(1, cfg.finetune_lr, seed=cfg.seed, max_steps=cfg.finetune_steps, progress=False),
            mask_sets=[s.masks for s in sets],
            loss_weights=default_loss_weights(len(sets)),
            fixed_mask=self.api.bp_masks,
        )
        return [
            evaluate(model, self.api.task, self.api.eval_split, masks=s.masks, max_batches=cfg.eval_batches).accuracy
            for s in sets
        ]

    # -- candidates ------------------------------------------------------------------------------------------

    def evaluate(self, candidate: Sequence[int]) -> tuple[Evaluation, bool]:
        """The evaluation of ``candidate`` and whether it came from the memo (no work done)."""
        cand = self.space.validate(candidate)
        key = self.space.key(cand)
        known = self.memo.get(key)
        if known is not None:
            self.hits += 1
            return known, True
        t0 = time.perf_counter()
        k = self.space.n_freq_levels
        sets = [self.pattern_set(cand, i) for i in range(k)]
        if self.accuracy_config.mode == "mask":
            acc = [self._mask_accuracy(cand, i) for i in range(k)]
        else:
            acc = self._finetuned_accuracies(sets)
        costs: list[LevelCost] = [self.latency.cost(s, i) for i, s in enumerate(sets)]
        terms = compute_reward(
            acc,
            [c.latency_ms for c in costs],
            [c.deadline_latency_ms for c in costs],
            [c.power_w for c in costs],
            self.deadlines_ms,
            self.reward_config,
        )
        ev = Evaluation(
            candidate=list(cand),
            index=len(self.memo),
            sparsity=[s.sparsity for s in sets],
            accuracy=acc,
            latency_ms=[c.latency_ms for c in costs],
            deadline_latency_ms=[c.deadline_latency_ms for c in costs],
            power_w=[c.power_w for c in costs],
            extrapolated=[c.extrapolated for c in costs],
            terms=terms,
            eval_s=time.perf_counter() - t0,
            description=self.space.describe(cand),
        )
        self.memo[key] = ev
        return ev, False

    def restore(self, evaluations: Sequence[Evaluation]) -> None:
        """Refill the memo from a checkpoint (evaluations in their original order)."""
        self.memo = {self.space.key(e.candidate): e for e in sorted(evaluations, key=lambda e: e.index)}
