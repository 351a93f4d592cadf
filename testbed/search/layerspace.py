"""RT3's search space where decisions interact: a sparsity per pruned layer and per frequency level.

A candidate gives every counted layer ``g`` a sparsity level ``s[k][g]`` (one of RT3's ten) at every frequency
level ``k`` (fastest first). The decisions interact through

* the **deadline** of each level: its latency is the SUM of what its layers cost at that level,
  ``latency_k = fixed_k + Σ_g T[g, s[k][g], k]`` (a per-layer, per-level table: RT3's op-count model per
  tensor, or times measured on this machine and scaled to the board, or measured through an agent), so a
  denser layer must be paid for by sparser ones;
* the **accuracy** of each level (a per-layer sensitivity table: dense accuracy minus the drop each layer
  causes alone at that sparsity, measured on the real model; an additive, first-order proxy whose rank
  correlation with real masked/fine-tuned accuracy is reported by :mod:`testbed.search.signal`);
* RT3's **monotonic** term (accuracy must not rise as frequency falls) and the **battery** term (runs of the
  ideal bucket over all levels), which couple the levels.
* optionally the **memory** term (:mod:`testbed.search.memory`): the resident bytes of the union of the
  levels' packed tensors, so a tensor that two levels prune alike is held once — a term that is not a sum
  over levels.

:class:`TableEvaluator` scores a candidate from the two tables in microseconds, which is what makes a
300-evaluation × 5-seed comparison of searchers affordable on two cores; every result says that its
accuracy is the table proxy, and where its latency came from.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from devices.errors import BadInputError, ParseError
from testbed.battery.rt3_accounting import RT3_FREQ_GHZ, RT3_VOLT_V, rt3_power_w
from testbed.rt3.opcount import RT3_LM, LMShape, latency_from_ops_ms, op_tensors
from testbed.rt3.pp import RT3_LEVELS
from testbed.search.evaluator import Evaluation
from testbed.search.memory import MemoryTerm
from testbed.search.reward import RewardConfig, calibrated, compute_reward, config_runs
from testbed.search.space import Candidate, Decision

#: RT3's deadlines per level (RL/rl_input.py: 115 ms "high", 104 "middle", 94 "low").
RT3_DEADLINES_MS = (115.0, 104.0, 94.0)


@dataclass(frozen=True)
class LayerCostTable:
    """Latency (ms) of every layer at every sparsity level and frequency level: ``latency_ms[g][s][k]``.

    ``fixed_ms[k]`` is what the candidate cannot change (unpruned parts), ``power_w[k]`` the mean power while
    inferring at level ``k``; ``source`` says where the numbers come from (predicted, emulated or measured),
    ``provenance`` how a measured table was taken (:mod:`testbed.search.layer_profile`).
    """

    layers: tuple[str, ...]
    sparsity_levels: tuple[float, ...]
    level_names: tuple[str, ...]
    latency_ms: tuple[tuple[tuple[float, ...], ...], ...]
    fixed_ms: tuple[float, ...]
    power_w: tuple[float, ...]
    source: str
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        g, s, k = len(self.layers), len(self.sparsity_levels), len(self.level_names)
        arr = np.asarray(self.latency_ms, dtype=float)
        if arr.shape != (g, s, k):
            raise BadInputError(
                f"latency table has shape {arr.shape}, expected (layers, sparsities, levels)={(g, s, k)}"
            )
        if len(self.fixed_ms) != k or len(self.power_w) != k:
            raise BadInputError(f"need one fixed latency and one power per level ({k})")
        if not np.isfinite(arr).all() or any(p <= 0 for p in self.power_w):
            raise BadInputError("latency table values must be finite and powers positive")

    def array(self) -> np.ndarray:
        return np.asarray(self.latency_ms, dtype=float)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerCostTable:
        return cls(
            tuple(d["layers"]),
            tuple(float(x) for x in d["sparsity_levels"]),
            tuple(d["level_names"]),
            tuple(tuple(tuple(float(v) for v in row) for row in layer) for layer in d["latency_ms"]),
            tuple(float(x) for x in d["fixed_ms"]),
            tuple(float(x) for x in d["power_w"]),
            str(d["source"]),
            dict(d.get("provenance") or {}),
        )


def opcount_cost_table(
    shape: LMShape = RT3_LM,
    sparsity_levels: Sequence[float] = RT3_LEVELS,
    freq_ghz: Sequence[float] = RT3_FREQ_GHZ,
    volt_v: Sequence[float] = RT3_VOLT_V,
) -> LayerCostTable:
    """RT3's op-count latency per counted tensor (:func:`testbed.rt3.opcount.op_tensors`) — a PREDICTION.

    The formula is affine in the op counts, so the per-tensor latencies sum exactly to
    :func:`~testbed.rt3.opcount.opcount_latency_ms` of the whole model; power is RT3's ``f·V²`` model.
    """
    if len(freq_ghz) != len(volt_v):
        raise BadInputError(f"{len(freq_ghz)} frequencies but {len(volt_v)} voltages")
    tensors = op_tensors(shape)
    lat = tuple(
        tuple(
            tuple(latency_from_ops_ms(t.mults * (1 - p), t.adds - t.mults * p, f) for f in freq_ghz)
            for p in sparsity_levels
        )
        for t in tensors
    )
    return LayerCostTable(
        tuple(t.name for t in tensors),
        tuple(float(p) for p in sparsity_levels),
        tuple(f"{f:g}GHz" for f in freq_ghz),
        lat,
        tuple(0.0 for _ in freq_ghz),
        tuple(rt3_power_w(f, v) for f, v in zip(freq_ghz, volt_v, strict=True)),
        f"predicted: RT3 op-count model per tensor, shape {shape}",
    )


@dataclass(frozen=True)
class LayerAccuracyTable:
    """Accuracy proxy: ``dense_accuracy − Σ_g drop[g][s_g]``, clipped to [0, 1].

    ``drop[g][s]`` = dense accuracy − accuracy with only layer ``g`` pruned to sparsity level ``s`` (measured);
    ``source`` names the model and data it was measured on.
    """

    layers: tuple[str, ...]
    sparsity_levels: tuple[float, ...]
    dense_accuracy: float
    drop: tuple[tuple[float, ...], ...]
    source: str

    def __post_init__(self) -> None:
        arr = np.asarray(self.drop, dtype=float)
        if arr.shape != (len(self.layers), len(self.sparsity_levels)):
            raise BadInputError(f"accuracy drop table has shape {arr.shape}, expected (layers, sparsities)")

    def accuracy(self, levels: Sequence[int]) -> float:
        """Proxy accuracy with layer ``g`` at sparsity index ``levels[g]``."""
        d = math.fsum(self.drop[g][s] for g, s in enumerate(levels))
        return min(1.0, max(0.0, self.dense_accuracy - d))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerAccuracyTable:
        return cls(
            tuple(d["layers"]),
            tuple(float(x) for x in d["sparsity_levels"]),
            float(d["dense_accuracy"]),
            tuple(tuple(float(v) for v in row) for row in d["drop"]),
            str(d["source"]),
        )


def save_table(path: Path, table: LayerCostTable | LayerAccuracyTable) -> None:
    kind = "latency" if isinstance(table, LayerCostTable) else "accuracy"
    Path(path).write_text(json.dumps({"kind": kind, **table.to_dict()}, indent=1))


def load_accuracy_table(path: Path) -> LayerAccuracyTable:
    """An accuracy table written by :func:`save_table`; ParseError naming the file for a wrong or broken one."""
    data = _load(path, "accuracy")
    try:
        return LayerAccuracyTable.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ParseError(path, None, f"not an accuracy table ({exc})") from None


def load_cost_table(path: Path) -> LayerCostTable:
    """A latency table written by :func:`save_table`; ParseError naming the file for a wrong or broken one."""
    data = _load(path, "latency")
    try:
        return LayerCostTable.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ParseError(path, None, f"not a latency table ({exc})") from None


def _load(path: Path, kind: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: no such file")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ParseError(p, exc.lineno, f"invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise ParseError(p, None, f'expected a {kind} table ("kind": "{kind}")')
    return data


def align(cost: LayerCostTable, acc: LayerAccuracyTable) -> LayerAccuracyTable:
    """``acc`` re-keyed to ``cost``'s layers when both list the same number of layers in the same roles.

    The op-count table names RT3's tensors; a sensitivity table measured on a smaller model of the same
    structure (embedding, per layer in_proj/out_proj/linear1/linear2, decoder) lists them in the same order.
    Raises BadInputError when the layer counts or sparsity levels differ.
    """
    if len(cost.layers) != len(acc.layers):
        raise BadInputError(f"latency table has {len(cost.layers)} layers, accuracy table {len(acc.layers)}")
    if not np.allclose(cost.sparsity_levels, acc.sparsity_levels):
        raise BadInputError("latency and accuracy tables list different sparsity levels")
    return replace(acc, layers=cost.layers)


class LayerSparsitySpace:
    """Decisions: for each frequency level (fastest first), for each layer, one of the sparsity levels."""

    def __init__(self, layers: Sequence[str], sparsity_levels: Sequence[float], level_names: Sequence[str]) -> None:
        if not layers or not sparsity_levels or not level_names:
            raise BadInputError("a layer space needs layers, sparsity levels and frequency levels")
        self.layers = list(layers)
        self.sparsity_levels = tuple(float(s) for s in sparsity_levels)
        self.level_names = list(level_names)
        self.n_freq_levels = len(self.level_names)
        n = len(self.sparsity_levels)
        self.decisions = [
            Decision(f"{lv}:{layer}", n, layer, k) for k, lv in enumerate(self.level_names) for layer in self.layers
        ]

    @property
    def sizes(self) -> list[int]:
        return [d.n_options for d in self.decisions]

    def cardinality(self) -> int:
        return len(self.sparsity_levels) ** len(self.decisions)

    def log10_size(self) -> float:
        return len(self.decisions) * math.log10(len(self.sparsity_levels))

    def validate(self, candidate: Sequence[int]) -> Candidate:
        cand = tuple(int(a) for a in candidate)
        if len(cand) != len(self.decisions):
            raise BadInputError(f"candidate has {len(cand)} decisions, the space has {len(self.decisions)}")
        if any(not 0 <= a < len(self.sparsity_levels) for a in cand):
            raise BadInputError(f"candidate option outside 0…{len(self.sparsity_levels) - 1}")
        return cand

    def key(self, candidate: Sequence[int]) -> Candidate:
        return self.validate(candidate)

    def per_level(self, candidate: Candidate) -> list[tuple[int, ...]]:
        """Sparsity index of every layer, per frequency level."""
        g = len(self.layers)
        return [tuple(candidate[k * g : (k + 1) * g]) for k in range(self.n_freq_levels)]

    def describe(self, candidate: Candidate) -> dict[str, object]:
        return {
            "sparsity_per_layer_per_level": [
                [self.sparsity_levels[s] for s in lv] for lv in self.per_level(self.validate(candidate))
            ]
        }

    # -- what the structured baseline walks -------------------------------------------------------------

    def structured_seeds(self) -> list[Candidate]:
        """Every strictly increasing triple (K-tuple) of sparsity levels, all layers of a level at its level."""
        g = len(self.layers)
        out = []
        for combo in itertools.combinations(range(len(self.sparsity_levels)), self.n_freq_levels):
            out.append(tuple(s for s in combo for _ in range(g)))
        return out

    def coordinates(self) -> list[int]:
        """Decision indices in the order the greedy pass visits them (level by level, layer by layer)."""
        return list(range(len(self.decisions)))


def weighted_sparsity(cost: LayerCostTable, levels: Sequence[int]) -> float:
    """Mean sparsity of a level's layers weighted by their dense cost at the fastest level (for reports; a
    measured table's negative costs — noise — count as 0, and without any positive cost the mean is plain)."""
    dense = np.clip(cost.array()[:, 0, 0], 0.0, None)
    w = dense / dense.sum() if dense.sum() > 0 else np.full(len(dense), 1 / len(dense))
    return float(sum(w[g] * cost.sparsity_levels[s] for g, s in enumerate(levels)))


class TableEvaluator:
    """Scores candidates of a :class:`LayerSparsitySpace` from a latency table and an accuracy table.

    Same interface as :class:`testbed.search.evaluator.CandidateEvaluator` (``evaluate``, ``memo``, ``hits``,
    ``n_evaluations``, ``deadlines_ms``, ``restore``), so the runner and every searcher drive it unchanged.
    With ``calibrate`` the reward's normalisation is fitted to these tables (dense/sparsest uniform runs,
    dense accuracy) as :func:`testbed.search.reward.calibrated` does for pattern sets.
    """

    def __init__(
        self,
        cost: LayerCostTable,
        accuracy: LayerAccuracyTable,
        deadlines_ms: Sequence[float],
        reward: RewardConfig | None = None,
        calibrate: bool = True,
        accuracy_fn: Callable[[int, tuple[int, ...]], float] | None = None,
        memory: MemoryTerm | None = None,
    ) -> None:
        self.cost = cost
        self.acc_table = align(cost, accuracy)
        self.space = LayerSparsitySpace(cost.layers, cost.sparsity_levels, cost.level_names)
        k = self.space.n_freq_levels
        d = list(deadlines_ms)
        if len(d) == 1:
            d = d * k
        if len(d) != k or any(x <= 0 for x in d):
            raise BadInputError(f"need 1 or {k} positive deadlines, got {list(deadlines_ms)}")
        self.deadlines_ms = [float(x) for x in d]
        self._lat = cost.array()
        self._accuracy_fn = accuracy_fn
        cfg = reward or RewardConfig()
        if calibrate:
            g, n = len(cost.layers), len(cost.sparsity_levels)
            dense = config_runs(cfg, k, cost.power_w, self._latencies([(0,) * g] * k))
            sparse = config_runs(cfg, k, cost.power_w, self._latencies([(n - 1,) * g] * k))
            cfg = calibrated(cfg, sum(dense), sum(sparse), self.acc_table.dense_accuracy)
        self.reward_config = cfg
        self.memo: dict[Candidate, Evaluation] = {}
        self.hits = 0
        if memory is not None and len(memory.layers) != len(cost.layers):
            raise BadInputError(f"memory table has {len(memory.layers)} layers, latency table {len(cost.layers)}")
        self.memory = memory
        self.source = f"latency: {cost.source}; accuracy: table proxy ({accuracy.source})"
        if memory is not None and memory.weight > 0:
            self.source += f"; memory term weight {memory.weight:g} ({memory.source})"

    @property
    def n_evaluations(self) -> int:
        return len(self.memo)

    def _latencies(self, per_level: Sequence[Sequence[int]]) -> list[float]:
        out = []
        for k, levels in enumerate(per_level):
            total = self.cost.fixed_ms[k] + sum(self._lat[g, s, k] for g, s in enumerate(levels))
            out.append(max(float(total), 1e-9))
        return out

    def level_accuracy(self, k: int, levels: tuple[int, ...]) -> float:
        if self._accuracy_fn is not None:
            return self._accuracy_fn(k, levels)
        return self.acc_table.accuracy(levels)

    def evaluate(self, candidate: Sequence[int]) -> tuple[Evaluation, bool]:
        cand = self.space.validate(candidate)
        known = self.memo.get(cand)
        if known is not None:
            self.hits += 1
            return known, True
        t0 = time.perf_counter()
        per_level = self.space.per_level(cand)
        lat = self._latencies(per_level)
        acc = [self.level_accuracy(k, lv) for k, lv in enumerate(per_level)]
        power = list(self.cost.power_w)
        terms = compute_reward(acc, lat, lat, power, self.deadlines_ms, self.reward_config)
        if self.memory is not None:
            mem_term = self.memory.term(per_level)
            terms = replace(
                terms,
                memory_term=mem_term,
                resident_mb=self.memory.resident_bytes(per_level) / 1e6,
                reward=terms.reward + mem_term,
            )
        ev = Evaluation(
            candidate=list(cand),
            index=len(self.memo),
            sparsity=[weighted_sparsity(self.cost, lv) for lv in per_level],
            accuracy=acc,
            latency_ms=lat,
            deadline_latency_ms=lat,
            power_w=power,
            extrapolated=[False] * len(lat),
            terms=terms,
            eval_s=time.perf_counter() - t0,
            description=self.space.describe(cand),
        )
        self.memo[cand] = ev
        return ev, False

    def restore(self, evaluations: Sequence[Evaluation]) -> None:
        self.memo = {tuple(e.candidate): e for e in sorted(evaluations, key=lambda e: e.index)}
