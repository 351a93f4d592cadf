"""The accuracy signal of the layer-sparsity search, and how far it can be trusted.

* :func:`measure_layer_sensitivity` — the per-layer sensitivity table (:class:`LayerAccuracyTable`): for every
  counted tensor and sparsity level, the accuracy with only that tensor magnitude-pruned (element-wise, on
  top of the BP masks when given), measured on ``eval_batches`` batches of a split;
* :func:`level_masks` — the real masks of one frequency level of a candidate (every tensor at its level);
* :func:`signal_check` — on a seeded sample of candidate levels, the table proxy's accuracy next to the real
  masked accuracy and next to the accuracy after a short masked fine-tune of a copy (the "fuller" signal),
  with Spearman rank correlations between them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from devices.errors import BadInputError
from testbed.rt3.masking import Masks
from testbed.rt3.train import Task, TrainConfig, evaluate, train
from testbed.search.layerspace import LayerAccuracyTable


def magnitude_mask(weight: Tensor, sparsity: float, base: Tensor | None = None) -> Tensor:
    """Keep the largest-|w| weights so that ``sparsity`` of the tensor is zero (at least what ``base`` prunes)."""
    w = weight.detach().abs()
    if base is not None:
        w = torch.where(base, w, torch.zeros_like(w))
    n_zero = min(w.numel(), round(sparsity * w.numel()))
    if base is not None:
        n_zero = max(n_zero, int((~base).sum()))
    mask = torch.ones_like(w, dtype=torch.bool)
    if n_zero > 0:
        idx = w.flatten().argsort()[:n_zero]
        mask.view(-1)[idx] = False
    return mask


def level_masks(model: nn.Module, names: Sequence[str], levels: Sequence[float], base: Masks | None = None) -> Masks:
    """Masks with tensor ``names[g]`` magnitude-pruned to sparsity ``levels[g]``."""
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise BadInputError(f"model has no parameter(s) {', '.join(missing)}")
    return {n: magnitude_mask(params[n], s, (base or {}).get(n)) for n, s in zip(names, levels, strict=True)}


@torch.no_grad()
def measure_layer_sensitivity(
    model: nn.Module,
    task: Task,
    names: Sequence[str],
    sparsity_levels: Sequence[float],
    base: Masks | None = None,
    eval_batches: int | None = 8,
    split: str = "valid",
    source: str = "",
) -> LayerAccuracyTable:
    """Accuracy drop of every tensor alone at every level (see the module text)."""
    base_masks = {n: m for n, m in (base or {}).items() if n in names}
    dense = evaluate(model, task, split, masks=base_masks or None, max_batches=eval_batches).accuracy
    params = dict(model.named_parameters())
    drop = []
    for n in names:
        row = []
        for s in sparsity_levels:
            masks = dict(base_masks)
            masks[n] = magnitude_mask(params[n], s, base_masks.get(n))
            row.append(dense - evaluate(model, task, split, masks=masks, max_batches=eval_batches).accuracy)
        drop.append(tuple(row))
    return LayerAccuracyTable(
        tuple(names), tuple(float(s) for s in sparsity_levels), float(dense), tuple(drop), source or task.source
    )


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    if len(a) != len(b) or len(a) < 2:
        raise BadInputError("rank correlation needs two equally long lists of at least 2 values")

    def ranks(x: Sequence[float]) -> np.ndarray:
        arr = np.asarray(x, dtype=float)
        order = arr.argsort(kind="mergesort")
        r = np.empty(len(arr))
        r[order] = np.arange(len(arr), dtype=float)
        for v in np.unique(arr):
            tie = arr == v
            r[tie] = r[tie].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclass
class SignalCheck:
    """Proxy, masked and fine-tuned accuracy of sampled candidate levels, and their rank correlations."""

    sparsities: list[list[float]]
    proxy: list[float]
    masked: list[float]
    finetuned: list[float]
    spearman_proxy_vs_finetuned: float
    spearman_masked_vs_finetuned: float
    spearman_proxy_vs_masked: float
    finetune_steps: int
    eval_batches: int | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def signal_check(
    model: nn.Module,
    task: Task,
    table: LayerAccuracyTable,
    names: Sequence[str],
    n_samples: int = 12,
    finetune_steps: int = 40,
    eval_batches: int | None = 8,
    base: Masks | None = None,
    seed: int = 0,
    lr: float = 1e-3,
) -> SignalCheck:
    """Rank correlation of the table proxy (and of masked accuracy) with accuracy after a masked fine-tune.

    Samples ``n_samples`` per-layer level vectors (seeded; each tensor's level uniform), then for each: the
    proxy, the accuracy of the real masks on the frozen model, and the accuracy after ``finetune_steps`` masked
    training steps of a copy. Raises BadInputError for fewer than 3 samples.
    """
    if n_samples < 3:
        raise BadInputError(f"need at least 3 samples for a rank correlation, got {n_samples}")
    rng = np.random.default_rng(seed)
    n = len(table.sparsity_levels)
    sparsities, proxy, masked, tuned = [], [], [], []
    for _ in range(n_samples):
        idx = tuple(int(i) for i in rng.integers(0, n, size=len(names)))
        levels = [table.sparsity_levels[i] for i in idx]
        masks = level_masks(model, names, levels, base)
        sparsities.append(levels)
        proxy.append(table.accuracy(idx))
        masked.append(evaluate(model, task, "valid", masks=masks, max_batches=eval_batches).accuracy)
        copy_model = copy.deepcopy(model)
        train(
            copy_model,
            task,
            TrainConfig(1, lr, seed=seed, max_steps=finetune_steps, progress=False, label="signal"),
            mask_sets=[masks],
            fixed_mask=masks,
        )
        tuned.append(evaluate(copy_model, task, "valid", max_batches=eval_batches).accuracy)
    return SignalCheck(
        sparsities,
        proxy,
        masked,
        tuned,
        spearman(proxy, tuned),
        spearman(masked, tuned),
        spearman(proxy, masked),
        finetune_steps,
        eval_batches,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.search.signal CKPT --out TABLE.json [--check N]``: measure a sensitivity table."""
    import argparse
    import json
    import sys
    from pathlib import Path

    from devices.errors import TestbedError
    from testbed.rt3.checkpoint import Checkpoint
    from testbed.rt3.models import prunable_names
    from testbed.rt3.pp import RT3_LEVELS
    from testbed.rt3.tasks import build_task
    from testbed.search.layerspace import save_table

    p = argparse.ArgumentParser(prog="python -m testbed.search.signal")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--eval-batches", type=int, default=8)
    p.add_argument("--check", type=int, default=0, help="also rank-correlate on N sampled candidates")
    p.add_argument("--finetune-steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        ck = Checkpoint.load(a.checkpoint)
        task, _ = build_task(ck.data, vocab=ck.vocab)
        model = ck.model
        names = prunable_names(model)
        if "encoder.weight" in dict(model.named_parameters()):
            names = ["encoder.weight", *names]  # RT3 counts (and prunes) the embedding table too
        src = f"{task.source}; model {ck.description.get('family')} {ck.description.get('config', {})}"
        table = measure_layer_sensitivity(model, task, names, RT3_LEVELS, ck.bp_masks, a.eval_batches, source=src)
        save_table(a.out, table)
        out: dict[str, object] = {"table": str(a.out), "dense_accuracy": table.dense_accuracy}
        if a.check:
            out["check"] = signal_check(
                model, task, table, names, a.check, a.finetune_steps, a.eval_batches, ck.bp_masks
            ).to_dict()
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    except TestbedError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
