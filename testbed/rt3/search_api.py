"""The interface the pattern-set search (RL controller and its baselines) calls.

* :meth:`PatternSearchAPI.build` — "build a pattern set from these choices" (level + allowed candidates per layer);
* :meth:`PatternSearchAPI.accuracy` — evaluate it on the shared backbone, optionally after a short fine-tune of a
  copy (the backbone itself is never modified);
* :meth:`PatternSearchAPI.predict_rt3_latency_ms` — RT3's operation-count latency model counted as the
  reference does (:mod:`testbed.rt3.opcount`), a PREDICTION, not a measurement:
  latency(f) = (3.0 / f_GHz) · (mults/1e4 · 0.014370 + adds/1e4 · 0.014575) ms;
  :meth:`PatternSearchAPI.predict_latency_ms` is the earlier per-token variant (× tokens, no embedding);
* :meth:`PatternSearchAPI.measure_latency_ms` — the median wall time of the packed set on this machine (torch or
  onnxruntime).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from devices.errors import BadInputError
from testbed.rt3.masking import Masks
from testbed.rt3.packed_model import pack_model
from testbed.rt3.pp import Choices, PatternSet, PatternSpace, build_pattern_set
from testbed.rt3.train import Task, TrainConfig, evaluate, train

#: RT3's calibration (utils/runs_number_reward.py): ms per 1e4 multiplications / additions at 3 GHz.
RT3_MS_PER_1E4_MULTS = 0.014370
RT3_MS_PER_1E4_ADDS = 0.014575
RT3_CALIBRATION_GHZ = 3.0


@dataclass
class OpCounts:
    """Multiplications and additions of the masked linears for ``tokens`` tokens."""

    mults: int
    adds: int


def op_counts(masks: Masks, tokens: int) -> OpCounts:
    """Ops of the masked linears: one multiply per kept weight and token; adds = kept − 1 per kept row."""
    mults = adds = 0
    for m in masks.values():
        nnz = int(m.sum())
        rows = int(m.any(1).sum())
        mults += nnz * tokens
        adds += max(0, nnz - rows) * tokens
    return OpCounts(mults, adds)


class PatternSearchAPI:
    """Bound to one BP backbone, its pattern space and a task."""

    def __init__(self, model: nn.Module, bp_masks: Masks, space: PatternSpace, task: Task, eval_split: str = "valid"):
        self.model = model
        self.bp_masks = bp_masks
        self.space = space
        self.task = task
        self.eval_split = eval_split

    @property
    def layers(self) -> list[str]:
        return list(self.space.candidates)

    def build(self, choices: Choices, name: str = "candidate") -> PatternSet:
        return build_pattern_set(self.model, self.bp_masks, self.space, choices, name)

    def accuracy(
        self, pattern_set: PatternSet, finetune: TrainConfig | None = None, max_batches: int | None = None
    ) -> float:
        """Accuracy of the set on the eval split; with ``finetune``, after training a copy with its masks."""
        model = self.model
        if finetune is not None:
            model = copy.deepcopy(self.model)
            train(model, self.task, finetune, mask_sets=[pattern_set.masks], fixed_mask=self.bp_masks)
        return evaluate(model, self.task, self.eval_split, masks=pattern_set.masks, max_batches=max_batches).accuracy

    def predict_rt3_latency_ms(self, pattern_set: PatternSet, freq_ghz: float) -> float:
        """PREDICTED latency with RT3's reference counting (:mod:`testbed.rt3.opcount`): every counted weight
        once (no tokens), the embedding and decoder included, zero fractions from the set's masks."""
        from testbed.rt3.opcount import latency_from_ops_ms, model_ops

        shapes = {n: (int(p.shape[0]), int(p.shape[1])) for n, p in self.model.named_parameters() if p.dim() == 2}
        zeros = {n: 1.0 - float(m.float().mean()) for n, m in pattern_set.masks.items()}
        mults, adds = model_ops(shapes, zeros)
        return latency_from_ops_ms(mults, adds, freq_ghz)

    @staticmethod
    def predict_latency_ms(pattern_set: PatternSet, freq_ghz: float, tokens: int = 35) -> float:
        """PREDICTED latency from operation counts with RT3's constants (not a measurement)."""
        if freq_ghz <= 0:
            raise BadInputError(f"frequency must be positive, got {freq_ghz} GHz")
        ops = op_counts(pattern_set.masks, tokens)
        base = ops.mults / 1e4 * RT3_MS_PER_1E4_MULTS + ops.adds / 1e4 * RT3_MS_PER_1E4_ADDS
        return RT3_CALIBRATION_GHZ / freq_ghz * base

    def measure_latency_ms(
        self,
        pattern_set: PatternSet,
        inputs: Sequence[Tensor],
        repeats: int = 20,
        warmup: int = 3,
        backend: str = "torch",
        threads: int = 1,
    ) -> float:
        """MEASURED median latency (ms) of the packed set on this machine, ``torch`` or ``ort`` backend.

        ``inputs`` are the model's positional inputs (tokens; or input_ids, attention_mask). Raises
        BadInputError for an unknown backend.
        """
        packed = pack_model(self.model, pattern_set.masks)
        run: Callable[[], object]
        if backend == "torch":
            run = partial(packed, *inputs)
        elif backend == "ort":
            from devices.ort_runtime import OrtReconfigurableModel
            from testbed.rt3.checkpoint import model_description
            from testbed.rt3.export import example_inputs, export_onnx

            desc = model_description(self.model)
            names, _ = example_inputs(desc)
            rt = OrtReconfigurableModel([export_onnx(packed, desc, seq=int(inputs[0].shape[1]))], threads=threads)
            run = partial(rt.run, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
        else:
            raise BadInputError(f"unknown backend {backend!r}; choose torch or ort")
        times = []
        with torch.inference_mode():
            for i in range(warmup + repeats):
                t0 = time.perf_counter()
                run()
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)
